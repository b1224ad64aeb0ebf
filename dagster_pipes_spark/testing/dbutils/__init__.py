"""A fake notebook ``dbutils`` (``fs``, ``widgets``, ``notebook``) for tests.

``FakeDbutils.fs`` speaks the DBFS and Files REST APIs of a workspace (normally the
:class:`~dagster_pipes_spark.testing.Emulator`, possibly running in another process) with the
standard library only: it has no ``databricks-sdk`` dependency, and this subpackage imports nothing
outside ``dagster_pipes_spark.testing`` (the emulator's notebook runner loads it in task
interpreters that do not have this package installed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .._rest import RestClient
from ._errors import DbutilsError, ExecutionError
from ._fs import FakeFs, FileInfo
from ._notebook import FakeNotebook, NotebookExit
from ._widgets import FakeWidgets, InputWidgetNotDefined

__all__ = [
    "DbutilsError",
    "ExecutionError",
    "FakeDbutils",
    "FakeFs",
    "FakeNotebook",
    "FakeWidgets",
    "FileInfo",
    "InputWidgetNotDefined",
    "NotebookExit",
]


class FakeDbutils:
    """A stand-in for the notebook ``dbutils`` object: ``fs``, ``widgets`` and ``notebook``.

    Args:
        host: Workspace URL (e.g. ``Emulator.url``); defaults to ``$DATABRICKS_HOST``. Only
            ``fs`` needs it.
        token: Bearer token; defaults to ``$DATABRICKS_TOKEN`` (or a placeholder).
        widgets: Bound widget values (a job's notebook parameters).
        verbose: Print what the real one prints (``Wrote N bytes.``, head truncation notices).
        max_retries: Retries of requests answered 429/503 (the real ``dbutils`` never sees
            those, so they are retried transparently).
        timeout: Per-request timeout in seconds.
    """

    def __init__(
        self,
        host: str | None = None,
        token: str | None = None,
        *,
        widgets: Mapping[str, Any] | None = None,
        verbose: bool = True,
        max_retries: int = 10,
        timeout: float = 60.0,
    ) -> None:
        host = host or os.environ.get("DATABRICKS_HOST")
        token = token or os.environ.get("DATABRICKS_TOKEN") or "dapi-fake-dbutils"
        if host and "://" not in host:
            host = "https://" + host
        rest = RestClient(host, token, max_retries=max_retries, timeout=timeout) if host else None
        self.host = host
        self.fs = FakeFs(rest, verbose=verbose)
        self.widgets = FakeWidgets(widgets)
        self.notebook = FakeNotebook()
