"""Test doubles for Databricks: a loopback workspace emulator and a fake notebook ``dbutils``.

* :class:`Emulator` serves the DBFS 2.0 and Files (UC volumes) REST APIs on ``127.0.0.1`` with
  the platform's limits and error shapes (including the presigned-URL downloads and multipart
  uploads of newer databricks-sdk versions, and the host discovery document), stores files in a
  real directory, can inject faults, and counts requests to endpoints it does not serve; the real
  ``databricks.sdk.WorkspaceClient`` works against it unchanged. Its Jobs API (:class:`JobsApi`:
  ``runs/submit``, ``runs/get``, ``runs/get-output``, ``runs/cancel``, ``clusters/get``) runs
  Python-file, wheel and notebook tasks locally as subprocesses, in the Python of the runtime
  profile their ``spark_version`` / serverless environment selects.
* :class:`FakeDbutils` is a notebook ``dbutils`` (``fs``, ``widgets``, ``notebook``) that talks
  to such a workspace with the standard library only.
* ``dagster_pipes_spark.testing.pytest_plugin`` provides the ``databricks_emulator`` fixture and
  fails tests during which an emulator was asked for an endpoint it does not serve.
* :mod:`dagster_pipes_spark.testing.runtimes` builds Python environments for runtime profiles.

Nothing here imports ``databricks.sdk`` or ``pyspark`` at import time.
"""

from ._emulator import DEFAULT_TOKEN, Emulator, FaultsHandle
from ._faults import FaultConfig, RequestRecord
from ._http import ApiError, EmulatorApi, Request, Response, Router
from ._remote import EmulatorControl
from .dbutils import (
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
from .jobs import JobsApi, TaskLogs

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
