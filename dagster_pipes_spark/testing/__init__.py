"""Test doubles for Databricks: a loopback workspace emulator and a fake notebook ``dbutils``.

* :class:`Emulator` serves the DBFS 2.0 and Files (UC volumes) REST APIs on ``127.0.0.1`` with
  the platform's limits and error shapes, stores files in a real directory, and can inject
  faults; the real ``databricks.sdk.WorkspaceClient`` works against it unchanged. Its Jobs API
  (:class:`JobsApi`: ``runs/submit``, ``runs/get``, ``runs/get-output``, ``runs/cancel``,
  ``clusters/get``) runs Python-file, wheel and notebook tasks locally as subprocesses.
* :class:`FakeDbutils` is a notebook ``dbutils`` (``fs``, ``widgets``, ``notebook``) that talks
  to such a workspace with the standard library only.
* ``dagster_pipes_spark.testing.pytest_plugin`` provides the ``databricks_emulator`` fixture.

Nothing here imports ``databricks.sdk`` or ``pyspark`` at import time.
"""

from ._dbutils import (
    DbutilsError,
    ExecutionError,
    FakeDbutils,
    FakeFs,
    FakeNotebook,
    FakeWidgets,
    FileInfo,
    InputWidgetNotDefined,
    NotebookExit,
)
from ._emulator import DEFAULT_TOKEN, Emulator, FaultsHandle
from ._faults import FaultConfig, RequestRecord
from ._http import ApiError, EmulatorApi, Request, Response, Router
from ._jobs_api import JobsApi, TaskLogs
from ._remote import EmulatorControl

__all__ = [
    "DEFAULT_TOKEN",
    "ApiError",
    "DbutilsError",
    "Emulator",
    "EmulatorApi",
    "EmulatorControl",
    "ExecutionError",
    "FakeDbutils",
    "FakeFs",
    "FakeNotebook",
    "FakeWidgets",
    "FaultConfig",
    "FaultsHandle",
    "FileInfo",
    "InputWidgetNotDefined",
    "JobsApi",
    "NotebookExit",
    "Request",
    "RequestRecord",
    "Response",
    "Router",
    "TaskLogs",
]
