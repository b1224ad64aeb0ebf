"""pytest plugin (registered as a ``pytest11`` entry point): Databricks emulator fixtures.

Fixtures:

* ``databricks_emulator`` — a running :class:`~dagster_pipes_spark.testing.Emulator` with fresh
  state per test, stored under the test's ``tmp_path``. Configure it with the marker
  ``@pytest.mark.databricks_emulator(volumes=["main/default/pipes"], ...)`` (keyword arguments
  of ``Emulator``). Runtime profiles for the whole suite go in the ini option
  ``databricks_emulator_runtimes``, one ``RUNTIME = PYTHON`` per line (``$VARS`` expanded, e.g.
  ``15.4 = ${DAGSTER_PIPES_SPARK_RUNTIME_SPARK35}``); a marker's ``runtimes=`` replaces them.
* ``databricks_workspace_client`` — a real ``databricks.sdk.WorkspaceClient`` bound to it.
* ``fake_dbutils`` — a :class:`~dagster_pipes_spark.testing.FakeDbutils` bound to it.

Unserved endpoints: every test, whatever created its emulators (this fixture or its own
``Emulator(...)``), fails at teardown when an emulator of this process was asked for an endpoint it
does not serve: the client under test took a path the emulator cannot vouch for. A test that does
so on purpose asserts on ``Emulator.unserved_requests`` and calls ``clear_unserved_requests()``;
the ini option ``databricks_emulator_fail_on_unserved = false`` turns the check off.

This module imports nothing heavy (no ``databricks.sdk``, no ``pyspark``) at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._unserved import acknowledge_unserved, pending_unserved

if TYPE_CHECKING:
    from ._emulator import Emulator
    from .dbutils import FakeDbutils

_MARKER = "databricks_emulator"
_FAIL_ON_UNSERVED = "databricks_emulator_fail_on_unserved"
_RUNTIMES = "databricks_emulator_runtimes"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``databricks_emulator_fail_on_unserved`` ini option."""
    parser.addini(
        _FAIL_ON_UNSERVED,
        "fail a test during which a Databricks emulator was asked for an endpoint it does not serve",
        type="bool",
        default=True,
    )
    parser.addini(
        _RUNTIMES,
        "runtime profiles of the databricks_emulator fixture: one 'RUNTIME = PYTHON' per line "
        "(RUNTIME: a spark_version prefix such as 15.4, serverless or serverless:N; $VARS expanded)",
        type="linelist",
        default=[],
    )


def ini_runtimes(config: pytest.Config) -> dict[str, str]:
    """The ``databricks_emulator_runtimes`` ini option as ``{runtime: python}``."""
    runtimes: dict[str, str] = {}
    for line in config.getini(_RUNTIMES):
        key, sep, python = (part.strip() for part in str(line).partition("="))
        if not sep or not key or not python:
            raise pytest.UsageError(f"{_RUNTIMES}: expected 'RUNTIME = PYTHON', got {line!r}")
        runtimes[key] = os.path.expandvars(python)
    return runtimes


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``databricks_emulator`` marker."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): keyword arguments for the databricks_emulator fixture's Emulator "
        "(e.g. volumes=['main/default/pipes'], auto_create_volumes=True, record_requests=True).",
    )


@pytest.fixture(autouse=True)
def _databricks_emulator_serves_every_request(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test at teardown if an emulator was asked for an endpoint it does not serve."""
    yield
    unserved = pending_unserved()
    if unserved and request.config.getini(_FAIL_ON_UNSERVED):
        acknowledge_unserved()  # reported once, here: the next test starts clean
        listed = "\n  ".join(unserved)
        pytest.fail(
            f"the Databricks emulator was asked for {len(unserved)} request(s) to endpoints it does not "
            f"serve (404 ENDPOINT_NOT_FOUND):\n  {listed}\nServe them in dagster_pipes_spark.testing, or, "
            "for a test that sends them on purpose, assert on Emulator.unserved_requests and call "
            "clear_unserved_requests().",
            pytrace=False,
        )


@pytest.fixture
def databricks_emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Emulator]:
    """A running workspace emulator with fresh state, rooted at ``tmp_path / "databricks"``."""
    from ._emulator import Emulator

    options: dict[str, Any] = {}
    runtimes = ini_runtimes(request.config)
    if runtimes:
        options["runtimes"] = runtimes
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
    from .dbutils import FakeDbutils

    return FakeDbutils(host=databricks_emulator.url, token=databricks_emulator.token, verbose=False)
