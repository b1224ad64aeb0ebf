"""pytest plugin (registered as a ``pytest11`` entry point): Databricks emulator fixtures.

Fixtures:

* ``databricks_emulator`` — a running :class:`~dagster_pipes_spark.testing.Emulator` with fresh
  state per test, stored under the test's ``tmp_path``. Configure it with the marker
  ``@pytest.mark.databricks_emulator(volumes=["main/default/pipes"], ...)`` (keyword arguments
  of ``Emulator``).
* ``databricks_workspace_client`` — a real ``databricks.sdk.WorkspaceClient`` bound to it.
* ``fake_dbutils`` — a :class:`~dagster_pipes_spark.testing.FakeDbutils` bound to it.

This module imports nothing heavy (no ``databricks.sdk``, no ``pyspark``) at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._dbutils import FakeDbutils
    from ._emulator import Emulator

_MARKER = "databricks_emulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``databricks_emulator`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): keyword arguments for the databricks_emulator fixture's Emulator "
        "(e.g. volumes=['main/default/pipes'], auto_create_volumes=True, record_requests=True).",
    )


@pytest.fixture
def databricks_emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Emulator]:
    """A running workspace emulator with fresh state, rooted at ``tmp_path / "databricks"``."""
    from ._emulator import Emulator

    options: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        options.update(marker.kwargs)
    options.setdefault("root", tmp_path / "databricks")
    with Emulator(**options) as emulator:
        yield emulator


@pytest.fixture
def databricks_workspace_client(databricks_emulator: Emulator) -> Any:
    """A real ``databricks.sdk.WorkspaceClient`` talking to ``databricks_emulator``."""
    return databricks_emulator.workspace_client()


@pytest.fixture
def fake_dbutils(databricks_emulator: Emulator) -> FakeDbutils:
    """A :class:`FakeDbutils` talking to ``databricks_emulator`` (quiet: no ``Wrote N bytes.``)."""
    from ._dbutils import FakeDbutils

    return FakeDbutils(host=databricks_emulator.url, token=databricks_emulator.token, verbose=False)
