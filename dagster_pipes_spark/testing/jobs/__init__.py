"""The emulator's Jobs API: runs submitted through ``jobs/runs/submit`` execute locally.

* :mod:`._api` — the endpoints (``runs/submit``, ``runs/get``, ``runs/get-output``,
  ``runs/cancel``, ``clusters/get``), request validation (:mod:`._validate`) and JSON shapes
  (:mod:`._render`);
* :mod:`._runs` — the run state machine; :mod:`._scheduler` — the threads that drive it;
* :mod:`._launch` — how a task becomes a process; :mod:`._profiles` — which Python runs it
  (runtime profiles); :mod:`._wheel_launcher` — the program that runs a wheel task's entry point.

The Jobs API depends on its workspace only through the :class:`Workspace` protocol and the storage.
"""

from ._api import JobsApi
from ._launch import CLUSTER_SPARK_VERSION, COMPUTE_ENV, RUN_ID_ENV, TASK_KEY_ENV, Workspace
from ._profiles import RuntimeProfiles, RuntimeSelection
from ._runs import TaskLogs
from ._validate import SUPPORTED_TASK_TYPES

__all__ = [
    "CLUSTER_SPARK_VERSION",
    "COMPUTE_ENV",
    "RUN_ID_ENV",
    "SUPPORTED_TASK_TYPES",
    "TASK_KEY_ENV",
    "JobsApi",
    "RuntimeProfiles",
    "RuntimeSelection",
    "TaskLogs",
    "Workspace",
]
