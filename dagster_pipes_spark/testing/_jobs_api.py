"""The Jobs API runs endpoints (and ``clusters/get``), running every task locally as a subprocess.

Endpoints (JSON shapes follow ``databricks.sdk.service.jobs`` / ``compute`` of databricks-sdk 0.60,
which calls the 2.2 paths; the 2.1 paths are served identically):

* ``POST /api/2.{1,2}/jobs/runs/submit`` → ``{"run_id"}``
* ``GET  /api/2.{1,2}/jobs/runs/get?run_id=`` → a ``Run`` (a task's own run id works too)
* ``GET  /api/2.{1,2}/jobs/runs/get-output?run_id=`` → a ``RunOutput`` (task runs / one-task runs)
* ``POST /api/2.{1,2}/jobs/runs/cancel`` → ``{}``
* ``GET  /api/2.{0,1}/clusters/get?cluster_id=`` → a RUNNING ``ClusterDetails`` for any id

Task types and how they run (``python`` is :attr:`JobsApi.python`, by default ``sys.executable``;
``PYSPARK_PYTHON`` in ``new_cluster.spark_env_vars`` overrides it, as on a cluster):

* ``spark_python_task``: ``python <python_file> *parameters``; ``python_file`` may be ``dbfs:/...``
  (the emulator's DBFS), ``/Volumes/...``, ``file:/...``, ``/Workspace/...`` (the emulated workspace
  file, :meth:`JobsApi.workspace_path`, if it exists, else the literal local path) or another
  absolute path (the local file if it exists, else the workspace file).
* ``python_wheel_task``: ``python -c <launcher> ...`` calls the installed distribution's entry
  point named ``entry_point`` (its ``console_scripts``, then its ``packages`` group — what the
  Databricks bundle templates declare — then any group), else any distribution's
  ``console_scripts`` entry of that name, else ``<package>.<entry_point>()`` as Databricks does.
  ``sys.argv`` is ``[package_name, *parameters]``, ``named_parameters`` becoming ``--key=value``.
* ``notebook_task``: ``python <_notebook.py> <notebook> @params.json`` (see
  :mod:`dagster_pipes_spark.testing._notebook`): ``base_parameters`` are the widgets,
  ``dbutils.notebook.exit(value)`` is the run output's ``notebook_output.result``.

Compute and environment: a task's environment is this process's environment, then
:meth:`Emulator.env` (``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN``), then the FUSE mapping, then
:attr:`JobsApi.extra_env`, then ``new_cluster.spark_env_vars``. Tasks on a cluster (``new_cluster``
or ``existing_cluster_id``) get both ``/dbfs`` and ``/Volumes`` FUSE mounts (the env vars
``DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT`` / ``DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT`` point at the
emulator's directories); tasks without compute run "serverless": ``/Volumes`` is mapped but the DBFS
root points at a directory that does not exist (serverless has no ``/dbfs`` FUSE) and notebooks get
a Spark Connect ``spark``. ``DATABRICKS_RUNTIME_VERSION`` is not set (add it via ``extra_env``).
Cluster tasks also get a ``SPARK_CONF_DIR`` whose ``spark-defaults.conf`` makes any Spark session
they start look like the cluster's: ``local[2]`` with small settings, the cluster's ``spark_conf``
and ``spark.databricks.clusterUsageTags.{clusterId,clusterLogDeliveryEnabled,clusterLogDestination}``
(what Pipes message writers read to announce the driver log location).

Run lifecycle (``state.life_cycle_state``; ``status.state`` mirrors it): ``PENDING`` from submit
until the first task process starts (after :attr:`JobsApi.startup_delay` seconds) → ``RUNNING`` →
``TERMINATING`` (log delivery) → ``TERMINATED`` with ``result_state`` ``SUCCESS``, ``FAILED``
(``state_message`` carries the failing task's exception line from its stderr), ``TIMEDOUT``,
``CANCELED`` or ``SUCCESS_WITH_FAILURES`` (a failure, but every leaf task succeeded). ``runs/cancel``
moves running tasks to ``TERMINATING``, sends ``SIGTERM`` to each task's process group (``SIGKILL``
after :attr:`JobsApi.cancel_grace_seconds`) and ends the run ``TERMINATED`` / ``CANCELED``.

Multi-task runs honour ``depends_on`` and ``run_if``: a task starts once its dependencies are done
and tasks without pending dependencies run in parallel (as on Databricks); a task whose condition
is not met ends ``SKIPPED`` with ``UPSTREAM_FAILED`` / ``UPSTREAM_CANCELED`` / ``EXCLUDED``.

Each task's stdout / stderr go to ``root/jobs/runs/<run_id>/<task_key>/{stdout,stderr}``
(:meth:`JobsApi.run_logs`); with a ``cluster_log_conf`` (``dbfs`` or ``volumes``) they are also
delivered to ``<destination>/<cluster_id>/driver/{stdout,stderr}`` when the task ends.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._http import ApiError, Request, Response, Router

if TYPE_CHECKING:
    from ._emulator import Emulator

__all__ = [
    "COMPUTE_ENV",
    "RUN_ID_ENV",
    "SUPPORTED_TASK_TYPES",
    "TASK_KEY_ENV",
    "JobsApi",
    "TaskLogs",
]

#: The task types the emulator runs.
SUPPORTED_TASK_TYPES = ("spark_python_task", "python_wheel_task", "notebook_task")
_OTHER_TASK_TYPES = (
    "spark_jar_task",
    "spark_submit_task",
    "pipeline_task",
    "sql_task",
    "dbt_task",
    "dbt_cloud_task",
    "dbt_platform_task",
    "run_job_task",
    "condition_task",
    "for_each_task",
    "clean_rooms_notebook_task",
    "dashboard_task",
    "power_bi_task",
    "gen_ai_compute_task",
)
#: ``classic`` (a cluster) or ``serverless``: set in every task's environment.
COMPUTE_ENV = "DATABRICKS_EMULATOR_COMPUTE"
#: The task's own run id, set in its environment.
RUN_ID_ENV = "DATABRICKS_EMULATOR_RUN_ID"
#: The task key, set in its environment.
TASK_KEY_ENV = "DATABRICKS_EMULATOR_TASK_KEY"

_DBFS_FUSE_ENV = "DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT"
_VOLUMES_FUSE_ENV = "DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT"
_SPARK_MODE_ENV = "DATABRICKS_EMULATOR_SPARK_MODE"  # read by _notebook.py
_SPARK_VERSION = "15.4.x-scala2.12"
_NOTEBOOK_RUNNER = Path(__file__).with_name("_notebook.py")
_ACTIVE = ("PENDING", "QUEUED", "BLOCKED", "RUNNING", "TERMINATING", "WAITING_FOR_RETRY")
_FINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
_LOGS_LIMIT = 5 * 1024 * 1024  # runs/get-output returns at most the last 5 MB of logs
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(: .*)?$")

# Runs in the task's Python (stdlib only): resolves and calls a wheel's entry point.
_WHEEL_LAUNCHER = r"""
import importlib, re, sys
from importlib import metadata

package, name, args = sys.argv[1], sys.argv[2], sys.argv[3:]

def norm(text):
    return re.sub(r"[-_.]+", "-", text).lower()

def find():
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        dist = next((d for d in metadata.distributions() if norm(d.metadata["Name"] or "") == norm(package)), None)
    if dist is not None:
        own = [ep for ep in dist.entry_points if ep.name == name]
        for group in ("console_scripts", "packages"):
            for ep in own:
                if ep.group == group:
                    return ep.load
        if own:
            return own[0].load
    found = metadata.entry_points(group="console_scripts", name=name)
    for ep in found:
        return ep.load
    def fallback():
        module = importlib.import_module(package.replace("-", "_"))
        try:
            return getattr(module, name)
        except AttributeError:
            raise SystemExit(
                f"No entry point {name!r} in the metadata of package {package!r} and no function "
                f"{package.replace('-', '_')}.{name}"
            ) from None
    return fallback

target = find()()
sys.argv = [package, *args]
result = target()
sys.exit(result if isinstance(result, int) else 0)
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _bad(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _run_id_arg(req: Request, body: bool = False) -> int:
    args = req.json() if body else req.args()
    raw = args.get("run_id")
    if raw is None or raw == "":
        raise _bad("Missing required field: run_id")
    if isinstance(raw, bool):
        raise _bad(f"Invalid run_id: {raw!r}")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _bad(f"Invalid run_id: {raw!r}") from None


@dataclass(frozen=True)
class TaskLogs:
    """Where one task run's stdout and stderr are kept, with the text read on access."""

    task_key: str
    run_id: int
    stdout_path: Path
    stderr_path: Path

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def stdout(self) -> str:
        """The task's standard output so far."""
        return self._read(self.stdout_path)

    @property
    def stderr(self) -> str:
        """The task's standard error so far."""
        return self._read(self.stderr_path)


@dataclass(eq=False)
class _TaskRun:
    run: _Run
    spec: dict[str, Any]
    task_key: str
    run_id: int
    kind: str
    compute: str  # "new_cluster" | "existing_cluster" | "serverless"
    cluster_id: str | None
    dir: Path
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    termination_code: str | None = None
    start_time: int = 0
    exec_start: int = 0
    exec_end: int = 0
    end_time: int = 0
    process: subprocess.Popen[bytes] | None = None
    started: bool = False
    cancel_requested: bool = False
    timed_out: bool = False
    returncode: int | None = None
    notebook_result: str | None = None
    error: str | None = None
    error_trace: str | None = None
    history: list[str] = field(default_factory=list)

    @property
    def depends_on(self) -> list[str]:
        return [str(d.get("task_key")) for d in self.spec.get("depends_on") or []]

    @property
    def finished(self) -> bool:
        return self.life_cycle_state in _FINAL

    @property
    def logs(self) -> TaskLogs:
        return TaskLogs(self.task_key, self.run_id, self.dir / "stdout", self.dir / "stderr")


@dataclass(eq=False)
class _Run:
    run_id: int
    job_id: int
    run_name: str
    body: dict[str, Any]
    submit_time: int
    timeout_seconds: float | None
    tasks: list[_TaskRun] = field(default_factory=list)
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    termination_code: str | None = None
    start_time: int = 0
    end_time: int = 0
    cancel_requested: bool = False
    timed_out: bool = False
    history: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None

    def task(self, key: str) -> _TaskRun:
        return next(t for t in self.tasks if t.task_key == key)


def _set_state(obj: _Run | _TaskRun, life_cycle_state: str) -> None:
    if obj.life_cycle_state != life_cycle_state or not obj.history:
        obj.history.append(life_cycle_state)
    obj.life_cycle_state = life_cycle_state


def _v2_state(life_cycle_state: str) -> str:
    return {"SKIPPED": "TERMINATED", "INTERNAL_ERROR": "TERMINATED", "WAITING_FOR_RETRY": "WAITING"}.get(
        life_cycle_state, life_cycle_state
    )


def _termination_type(code: str | None) -> str:
    if code in ("SUCCESS", "USER_CANCELED", "SKIPPED"):
        return "SUCCESS"
    if code == "INTERNAL_ERROR":
        return "INTERNAL_ERROR"
    return "CLIENT_ERROR"


def _exception_line(stderr: str) -> str | None:
    """The last line of a Python traceback's exception (or the last line at all) in ``stderr``."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return None
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("Traceback (most recent call last)"):
            for line in lines[index + 1 :]:
                if not line.startswith((" ", "\t")) and _EXCEPTION_LINE.match(line):
                    return line
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line)
        if match and re.search(r"(Error|Exception|Exit|Interrupt|Terminated)$", match.group(1)):
            return line
    return lines[-1]


def _error_trace(stderr: str) -> str:
    start = stderr.rfind("Traceback (most recent call last)")
    text = stderr[start:] if start >= 0 else stderr
    return text[-20_000:]


class JobsApi:
    """The emulated Jobs runs API and ``clusters/get`` (see the module docstring).

    Args:
        emulator: The emulator serving this API (for its URL, token and storage).
        python: Python executable (or a virtualenv directory) that runs the tasks.
        existing_cluster_log_conf: ``cluster_log_conf`` reported by ``clusters/get`` for every
            existing cluster (e.g. ``{"dbfs": {"destination": "dbfs:/cluster-logs"}}``); task logs
            of runs on existing clusters are delivered there.
        startup_delay: Seconds a run stays ``PENDING`` before its tasks start (cluster start-up).
        cancel_grace_seconds: Seconds between ``SIGTERM`` and ``SIGKILL`` on cancel / timeout.
        extra_env: Environment variables added to every task (below ``spark_env_vars``).
        inherit_env: Start tasks from this process's environment (else from an empty one plus
            ``PATH``, ``HOME``, ``JAVA_HOME`` and ``PYTHONPATH``).
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        python: str | os.PathLike[str] | None = None,
        existing_cluster_log_conf: Mapping[str, Any] | None = None,
        startup_delay: float = 0.0,
        cancel_grace_seconds: float = 10.0,
        extra_env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
    ) -> None:
        self._emulator = emulator
        self.python = python
        self.existing_cluster_log_conf: dict[str, Any] | None = (
            dict(existing_cluster_log_conf) if existing_cluster_log_conf else None
        )
        self.startup_delay = startup_delay
        self.cancel_grace_seconds = cancel_grace_seconds
        self.extra_env: dict[str, str] = dict(extra_env or {})
        self.inherit_env = inherit_env
        self._cond = threading.Condition(threading.RLock())
        self._runs: dict[int, _Run] = {}
        self._task_runs: dict[int, _TaskRun] = {}
        self._tokens: dict[str, int] = {}
        self._job_clusters: dict[str, _TaskRun] = {}
        self._ids = itertools.count(random.randint(10**14, 2 * 10**14))
        self._job_ids = itertools.count(random.randint(10**14, 2 * 10**14))
        self._closed = False

    # ------------------------------------------------------------------------------ routes

    def register(self, router: Router) -> None:
        """Add the Jobs runs and ``clusters/get`` routes."""
        for version in ("2.1", "2.2"):
            prefix = f"/api/{version}/jobs/runs"
            router.add("POST", re.escape(f"{prefix}/submit"), self.submit, name=f"POST {prefix}/submit")
            router.add("GET", re.escape(f"{prefix}/get"), self.get, name=f"GET {prefix}/get")
            router.add(
                "GET", re.escape(f"{prefix}/get-output"), self.get_output, name=f"GET {prefix}/get-output"
            )
            router.add("POST", re.escape(f"{prefix}/cancel"), self.cancel, name=f"POST {prefix}/cancel")
        for version in ("2.0", "2.1"):
            path = f"/api/{version}/clusters/get"
            router.add("GET", re.escape(path), self.cluster_get, name=f"GET {path}")

    # --------------------------------------------------------------------------- settings

    @property
    def python_executable(self) -> str:
        """The interpreter that runs tasks (:attr:`python` resolved; a venv dir → its ``bin/python``)."""
        if self.python is None:
            return sys.executable
        path = Path(self.python)
        if path.is_dir():
            for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
                if candidate.exists():
                    return str(candidate)
        return str(path)

    @property
    def runs_root(self) -> Path:
        """Where task logs and scratch directories live: ``root/jobs/runs``."""
        return self._emulator.root / "jobs" / "runs"

    @property
    def workspace_root(self) -> Path:
        """The emulated workspace file tree: ``/Workspace/x`` is ``root/Workspace/x``."""
        return self._emulator.root / "Workspace"

    # ---------------------------------------------------------------------------- helpers

    def workspace_path(self, path: str) -> Path:
        """The emulated workspace file for ``/Workspace/x`` (or ``/x``): ``root/Workspace/x``.

        Put scripts and notebooks there to reference them as workspace paths in tasks.
        """
        text = path[len("/Workspace") :] if path == "/Workspace" or path.startswith("/Workspace/") else path
        return self.workspace_root / text.lstrip("/")

    def run_logs(self, run_id: int) -> dict[str, TaskLogs]:
        """stdout / stderr of a run's tasks by task key (a task run id gives just that task)."""
        with self._cond:
            if run_id in self._runs:
                return {t.task_key: t.logs for t in self._runs[run_id].tasks}
            if run_id in self._task_runs:
                task = self._task_runs[run_id]
                return {task.task_key: task.logs}
        raise KeyError(f"Run {run_id} does not exist.")

    def state_history(self, run_id: int) -> list[str]:
        """The life-cycle states a run (or task run) went through, in order."""
        with self._cond:
            obj: _Run | _TaskRun | None = self._runs.get(run_id) or self._task_runs.get(run_id)
            if obj is None:
                raise KeyError(f"Run {run_id} does not exist.")
            return list(obj.history)

    def run_json(self, run_id: int) -> dict[str, Any]:
        """What ``runs/get`` answers for ``run_id``."""
        with self._cond:
            if run_id in self._runs:
                return self._run_json(self._runs[run_id])
            if run_id in self._task_runs:
                return self._task_as_run_json(self._task_runs[run_id])
        raise _bad(f"Run {run_id} does not exist.")

    def wait(self, run_id: int, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the run is in a final state; returns its ``runs/get`` JSON."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                obj: _Run | _TaskRun | None = self._runs.get(run_id) or self._task_runs.get(run_id)
                if obj is None:
                    raise KeyError(f"Run {run_id} does not exist.")
                if obj.life_cycle_state in _FINAL:
                    return self.run_json(run_id)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"run {run_id} is still {obj.life_cycle_state} after {timeout}s")
                self._cond.wait(min(remaining, 0.5))

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every active run and kill its processes (called when the emulator stops)."""
        with self._cond:
            self._closed = True
            runs = [r for r in self._runs.values() if r.life_cycle_state not in _FINAL]
            for run in runs:
                self._request_cancel(run, run.tasks, whole_run=True)
        deadline = time.monotonic() + timeout
        for run in runs:
            for task in run.tasks:
                proc = task.process
                if proc is not None and proc.poll() is None:
                    try:
                        proc.wait(max(0.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        self._signal(proc, signal.SIGKILL)
            if run.thread is not None:
                run.thread.join(max(0.1, deadline - time.monotonic()))
        with self._cond:
            self._closed = False

    # -------------------------------------------------------------------------- endpoints

    def submit(self, req: Request) -> Response:
        """``POST jobs/runs/submit``: validate, register and start the run; ``{"run_id"}``."""
        body = req.json()
        token = body.get("idempotency_token")
        if token is not None:
            if not isinstance(token, str) or len(token) > 64:
                raise _bad("idempotency_token must be a string of at most 64 characters")
            with self._cond:
                if token in self._tokens:
                    return Response.json({"run_id": self._tokens[token]})
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not tasks:
            raise _bad("At least one task is required.")
        if len(tasks) > 100:
            raise _bad("A run can have at most 100 tasks.")
        environments = {
            str(e.get("environment_key")) for e in body.get("environments") or [] if isinstance(e, dict)
        }
        keys: list[str] = []
        for task in tasks:
            keys.append(self._validate_task(task, environments))
        if len(set(keys)) != len(keys):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise _bad(f"Task key {dup} is duplicated; task keys must be unique within a run.")
        for task in tasks:
            for dep in task.get("depends_on") or []:
                if not isinstance(dep, dict) or dep.get("task_key") not in keys:
                    raise _bad(
                        f"Task {task['task_key']} depends on {dep!r}, which is not a task of this run."
                    )
        self._check_acyclic(tasks)
        timeout = body.get("timeout_seconds")
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0
        ):
            raise _bad(f"Invalid timeout_seconds: {timeout!r}")
        with self._cond:
            if self._closed:
                raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "The emulator is shutting down.")
            if token is not None and token in self._tokens:
                return Response.json({"run_id": self._tokens[token]})
            run = _Run(
                run_id=next(self._ids),
                job_id=next(self._job_ids),
                run_name=str(body.get("run_name") or "Untitled"),
                body=body,
                submit_time=_now_ms(),
                timeout_seconds=float(timeout) if timeout else None,
            )
            _set_state(run, "PENDING")
            for spec in tasks:
                run.tasks.append(self._new_task_run(run, spec))
            self._runs[run.run_id] = run
            for task_run in run.tasks:
                self._task_runs[task_run.run_id] = task_run
            if token is not None:
                self._tokens[token] = run.run_id
            run.thread = threading.Thread(
                target=self._drive, args=(run,), name=f"jobs-run-{run.run_id}", daemon=True
            )
            run.thread.start()
        return Response.json({"run_id": run.run_id})

    def get(self, req: Request) -> Response:
        """``GET jobs/runs/get``: the run (or task run) as a ``Run`` object."""
        return Response.json(self.run_json(_run_id_arg(req)))

    def get_output(self, req: Request) -> Response:
        """``GET jobs/runs/get-output``: a task run's ``RunOutput`` (error, logs, notebook result)."""
        run_id = _run_id_arg(req)
        with self._cond:
            if run_id in self._runs:
                run = self._runs[run_id]
                if len(run.tasks) != 1:
                    raise _bad(
                        "Retrieving the output of runs with multiple tasks is not supported. "
                        "Please retrieve the output of each individual task run instead."
                    )
                task = run.tasks[0]
            elif run_id in self._task_runs:
                task = self._task_runs[run_id]
            else:
                raise _bad(f"Run {run_id} does not exist.")
            out: dict[str, Any] = {"metadata": self._task_as_run_json(task)}
            if task.error is not None:
                out["error"] = task.error
            if task.error_trace is not None:
                out["error_trace"] = task.error_trace
            if task.kind == "notebook_task":
                if task.notebook_result is not None:
                    out["notebook_output"] = {"result": task.notebook_result, "truncated": False}
                else:
                    out["notebook_output"] = {}
            else:
                logs = task.logs.stdout
                out["logs"] = logs[-_LOGS_LIMIT:]
                out["logs_truncated"] = len(logs) > _LOGS_LIMIT
        return Response.json(out)

    def cancel(self, req: Request) -> Response:
        """``POST jobs/runs/cancel``: cancel a run (or one task run) asynchronously."""
        run_id = _run_id_arg(req, body=True)
        with self._cond:
            if run_id in self._runs:
                run = self._runs[run_id]
                self._request_cancel(run, run.tasks, whole_run=True)
            elif run_id in self._task_runs:
                task = self._task_runs[run_id]
                self._request_cancel(task.run, [task])
            else:
                raise _bad(f"Run {run_id} does not exist.")
        return Response.json({})

    def cluster_get(self, req: Request) -> Response:
        """``GET clusters/get``: any id is a RUNNING cluster (a run's job cluster reports its spec)."""
        cluster_id = req.args().get("cluster_id")
        if not cluster_id or not isinstance(cluster_id, str):
            raise _bad("Missing required field: cluster_id")
        with self._cond:
            job_task = self._job_clusters.get(cluster_id)
            if job_task is not None:
                spec = dict(job_task.spec.get("new_cluster") or {})
                details: dict[str, Any] = {
                    **spec,
                    "cluster_id": cluster_id,
                    "cluster_name": f"job-{job_task.run.job_id}-run-{job_task.run_id}",
                    "cluster_source": "JOB",
                    "state": "TERMINATED" if job_task.finished else "RUNNING",
                    "start_time": job_task.start_time or job_task.run.submit_time,
                }
                if job_task.finished:
                    details["terminated_time"] = job_task.end_time
                    details["termination_reason"] = {"code": "JOB_FINISHED", "type": "SUCCESS"}
                details.setdefault("spark_version", _SPARK_VERSION)
                return Response.json(details)
        details = {
            "cluster_id": cluster_id,
            "cluster_name": f"emulator-{cluster_id}",
            "cluster_source": "UI",
            "state": "RUNNING",
            "state_message": "",
            "spark_version": _SPARK_VERSION,
            "node_type_id": "emulator-local",
            "driver_node_type_id": "emulator-local",
            "num_workers": 0,
            "spark_conf": {"spark.master": "local[*, 4]", "spark.databricks.cluster.profile": "singleNode"},
            "spark_env_vars": {},
            "data_security_mode": "SINGLE_USER",
            "start_time": _now_ms(),
            "creator_user_name": "emulator@localhost",
            "default_tags": {
                "Vendor": "Databricks",
                "Creator": "emulator@localhost",
                "ClusterId": cluster_id,
            },
        }
        if self.existing_cluster_log_conf:
            details["cluster_log_conf"] = self.existing_cluster_log_conf
        return Response.json(details)

    # -------------------------------------------------------------------------- validation

    def _validate_task(self, task: Any, environments: set[str]) -> str:
        if not isinstance(task, dict):
            raise _bad("Each task must be an object.")
        key = task.get("task_key")
        if not isinstance(key, str) or not key or not re.fullmatch(r"[\w\-.]{1,100}", key):
            raise _bad(f"Invalid task_key {key!r}: 1-100 characters of letters, digits, '_', '-' and '.'.")
        kinds = [k for k in (*SUPPORTED_TASK_TYPES, *_OTHER_TASK_TYPES) if task.get(k) is not None]
        if not kinds:
            raise _bad(f"Task {key} has no task type: one of {', '.join(SUPPORTED_TASK_TYPES)} is required.")
        if len(kinds) > 1:
            raise _bad(f"Task {key} has more than one task type: {', '.join(kinds)}.")
        kind = kinds[0]
        if kind not in SUPPORTED_TASK_TYPES:
            raise _bad(
                f"Task {key}: {kind} is not supported by the emulator ({', '.join(SUPPORTED_TASK_TYPES)} are)."
            )
        spec = task[kind]
        if not isinstance(spec, dict):
            raise _bad(f"Task {key}: {kind} must be an object.")
        if task.get("new_cluster") is not None and task.get("existing_cluster_id") is not None:
            raise _bad(f"Task {key}: new_cluster and existing_cluster_id are mutually exclusive.")
        if task.get("new_cluster") is not None and not isinstance(task["new_cluster"], dict):
            raise _bad(f"Task {key}: new_cluster must be an object.")
        env_key = task.get("environment_key")
        if env_key is not None and env_key not in environments:
            raise _bad(f"Task {key} references environment_key {env_key!r}, which is not in `environments`.")
        if kind == "spark_python_task":
            if not isinstance(spec.get("python_file"), str) or not spec["python_file"]:
                raise _bad(f"Task {key}: spark_python_task.python_file is required.")
            self._check_str_list(key, spec, "parameters")
        elif kind == "python_wheel_task":
            for name in ("package_name", "entry_point"):
                if not isinstance(spec.get(name), str) or not spec[name]:
                    raise _bad(f"Task {key}: python_wheel_task.{name} is required.")
            self._check_str_list(key, spec, "parameters")
            named = spec.get("named_parameters")
            if named is not None and not isinstance(named, dict):
                raise _bad(f"Task {key}: python_wheel_task.named_parameters must be an object.")
            if named and spec.get("parameters"):
                raise _bad(f"Task {key}: python_wheel_task accepts parameters or named_parameters, not both.")
        else:
            if not isinstance(spec.get("notebook_path"), str) or not spec["notebook_path"]:
                raise _bad(f"Task {key}: notebook_task.notebook_path is required.")
            params = spec.get("base_parameters")
            if params is not None and not isinstance(params, dict):
                raise _bad(f"Task {key}: notebook_task.base_parameters must be an object.")
        timeout = task.get("timeout_seconds")
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0
        ):
            raise _bad(f"Task {key}: invalid timeout_seconds {timeout!r}")
        return key

    @staticmethod
    def _check_str_list(key: str, spec: Mapping[str, Any], name: str) -> None:
        value = spec.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise _bad(f"Task {key}: {name} must be a list of strings.")

    @staticmethod
    def _check_acyclic(tasks: list[dict[str, Any]]) -> None:
        deps = {t["task_key"]: [d["task_key"] for d in t.get("depends_on") or []] for t in tasks}
        state: dict[str, int] = {}

        def visit(key: str, path: list[str]) -> None:
            if state.get(key) == 2:
                return
            if state.get(key) == 1:
                raise _bad(f"The task dependencies form a cycle: {' -> '.join([*path, key])}")
            state[key] = 1
            for dep in deps[key]:
                visit(dep, [*path, key])
            state[key] = 2

        for key in deps:
            visit(key, [])

    def _new_task_run(self, run: _Run, spec: dict[str, Any]) -> _TaskRun:
        kind = next(k for k in SUPPORTED_TASK_TYPES if spec.get(k) is not None)
        task_run_id = next(self._ids)
        if spec.get("existing_cluster_id") is not None:
            compute, cluster_id = "existing_cluster", str(spec["existing_cluster_id"])
        elif spec.get("new_cluster") is not None:
            stamp = time.strftime("%m%d-%H%M%S", time.gmtime())
            compute, cluster_id = "new_cluster", f"{stamp}-{random.getrandbits(32):08x}"
        else:
            compute, cluster_id = "serverless", None
        task_dir = self.runs_root / str(run.run_id) / spec["task_key"]
        task = _TaskRun(
            run=run,
            spec=spec,
            task_key=spec["task_key"],
            run_id=task_run_id,
            kind=kind,
            compute=compute,
            cluster_id=cluster_id,
            dir=task_dir,
        )
        _set_state(task, "PENDING")
        if compute == "new_cluster" and cluster_id is not None:
            self._job_clusters[cluster_id] = task
        return task

    # ----------------------------------------------------------------------------- JSON

    def _url(self, job_id: int, run_id: int) -> str:
        return f"{self._emulator.url}/?o=0#job/{job_id}/run/{run_id}"

    @staticmethod
    def _state_json(obj: _Run | _TaskRun) -> tuple[dict[str, Any], dict[str, Any]]:
        state: dict[str, Any] = {"life_cycle_state": obj.life_cycle_state, "state_message": obj.state_message}
        if obj.result_state is not None:
            state["result_state"] = obj.result_state
        state["user_cancelled_or_timedout"] = bool(obj.cancel_requested or obj.timed_out)
        status: dict[str, Any] = {"state": _v2_state(obj.life_cycle_state)}
        if obj.life_cycle_state in _FINAL and obj.termination_code is not None:
            status["termination_details"] = {
                "code": obj.termination_code,
                "type": _termination_type(obj.termination_code),
                "message": obj.state_message,
            }
        return state, status

    def _task_json(self, task: _TaskRun) -> dict[str, Any]:
        out = {k: v for k, v in task.spec.items() if k != "tags"}
        state, status = self._state_json(task)
        out.update(
            {
                "run_id": task.run_id,
                "task_key": task.task_key,
                "attempt_number": 0,
                "state": state,
                "status": status,
                "run_page_url": self._url(task.run.job_id, task.run_id),
                "start_time": task.start_time,
                "end_time": task.end_time,
                "setup_duration": max(0, task.exec_start - task.start_time) if task.exec_start else 0,
                "execution_duration": max(0, task.exec_end - task.exec_start) if task.exec_end else 0,
                "cleanup_duration": max(0, task.end_time - task.exec_end)
                if task.end_time and task.exec_end
                else 0,
                "run_duration": max(0, task.end_time - task.start_time)
                if task.end_time and task.start_time
                else 0,
                "run_if": task.spec.get("run_if") or "ALL_SUCCESS",
            }
        )
        if task.cluster_id is not None and task.started:
            out["cluster_instance"] = {"cluster_id": task.cluster_id, "spark_context_id": str(task.run_id)}
        return out

    def _run_json(self, run: _Run) -> dict[str, Any]:
        state, status = self._state_json(run)
        out: dict[str, Any] = {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "number_in_job": run.run_id,
            "original_attempt_run_id": run.run_id,
            "creator_user_name": "emulator@localhost",
            "run_name": run.run_name,
            "run_type": "SUBMIT_RUN",
            "format": "MULTI_TASK",
            "trigger": "ONE_TIME",
            "attempt_number": 0,
            "state": state,
            "status": status,
            "run_page_url": self._url(run.job_id, run.run_id),
            "start_time": run.start_time or run.submit_time,
            "end_time": run.end_time,
            "setup_duration": 0,
            "execution_duration": 0,
            "cleanup_duration": 0,
            "run_duration": max(0, run.end_time - run.submit_time) if run.end_time else 0,
            "tasks": [self._task_json(t) for t in run.tasks],
        }
        for name in ("environments", "git_source", "timeout_seconds"):
            if run.body.get(name) is not None:
                out[name] = run.body[name]
        return out

    def _task_as_run_json(self, task: _TaskRun) -> dict[str, Any]:
        state, status = self._state_json(task)
        return {
            "job_id": task.run.job_id,
            "run_id": task.run_id,
            "parent_run_id": task.run.run_id,
            "job_run_id": task.run.run_id,
            "number_in_job": task.run_id,
            "original_attempt_run_id": task.run_id,
            "creator_user_name": "emulator@localhost",
            "run_name": task.task_key,
            "run_type": "SUBMIT_RUN",
            "trigger": "ONE_TIME",
            "attempt_number": 0,
            "state": state,
            "status": status,
            "run_page_url": self._url(task.run.job_id, task.run_id),
            "start_time": task.start_time,
            "end_time": task.end_time,
            "tasks": [self._task_json(task)],
            **(
                {"cluster_instance": {"cluster_id": task.cluster_id, "spark_context_id": str(task.run_id)}}
                if task.cluster_id is not None and task.started
                else {}
            ),
        }

    # --------------------------------------------------------------------------- running

    def _request_cancel(self, run: _Run, tasks: list[_TaskRun], *, whole_run: bool = False) -> None:
        """Mark tasks canceled and SIGTERM the running ones (caller holds the lock)."""
        if run.life_cycle_state in _FINAL:
            return
        if whole_run:
            run.cancel_requested = True
        for task in tasks:
            if task.finished or task.cancel_requested:
                continue
            task.cancel_requested = True
            if task.process is not None and task.process.poll() is None:
                _set_state(task, "TERMINATING")
                self._signal(task.process, signal.SIGTERM)
                threading.Thread(
                    target=self._kill_later,
                    args=(task.process,),
                    name=f"jobs-kill-{task.run_id}",
                    daemon=True,
                ).start()
        if (run.cancel_requested or run.timed_out) and run.life_cycle_state == "RUNNING":
            _set_state(run, "TERMINATING")
        self._cond.notify_all()

    def _kill_later(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            proc.wait(self.cancel_grace_seconds)
        except subprocess.TimeoutExpired:
            self._signal(proc, signal.SIGKILL)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except (ProcessLookupError, OSError):
                pass

    def _drive(self, run: _Run) -> None:
        """The run's scheduler thread: start tasks as their dependencies finish, then finalize."""
        try:
            deadline = time.monotonic() + run.timeout_seconds if run.timeout_seconds else None
            with self._cond:
                end = time.monotonic() + self.startup_delay
                while not run.cancel_requested and time.monotonic() < end:
                    self._cond.wait(end - time.monotonic())
            while True:
                with self._cond:
                    if deadline is not None and time.monotonic() > deadline and not run.timed_out:
                        run.timed_out = True
                        for task in run.tasks:
                            if not task.finished:
                                task.timed_out = True
                        self._request_cancel(run, [t for t in run.tasks if not t.finished])
                    if all(t.finished for t in run.tasks):
                        break
                    for task in run.tasks:
                        if task.started or task.finished:
                            continue
                        decision = self._decide(task)
                        if decision == "wait":
                            if task.life_cycle_state != "BLOCKED":
                                _set_state(task, "BLOCKED")
                            continue
                        if decision != "run":
                            self._skip(task, decision)
                            continue
                        task.started = True
                        task.start_time = _now_ms()
                        if run.life_cycle_state == "PENDING":
                            run.start_time = task.start_time
                            _set_state(run, "RUNNING")
                        _set_state(task, "PENDING")
                        threading.Thread(
                            target=self._execute,
                            args=(task, deadline),
                            name=f"jobs-task-{task.run_id}",
                            daemon=True,
                        ).start()
                    self._cond.notify_all()
                    if not all(t.finished for t in run.tasks):
                        self._cond.wait(0.5)
            self._finalize(run)
        except Exception as exc:  # an emulator bug: surface it as INTERNAL_ERROR, never hang clients
            with self._cond:
                run.state_message = f"Emulator error: {exc!r}"
                run.termination_code = "INTERNAL_ERROR"
                run.end_time = _now_ms()
                _set_state(run, "INTERNAL_ERROR")
                self._cond.notify_all()

    def _decide(self, task: _TaskRun) -> str:
        """``run``, ``wait`` or the result state of a skip (caller holds the lock)."""
        run = task.run
        if task.cancel_requested or run.cancel_requested:
            return "CANCELED"
        deps = [run.task(key) for key in task.depends_on]
        if any(not d.finished for d in deps):
            return "wait"
        if not deps:
            return "run"
        results = [d.result_state for d in deps]
        ok = [r in ("SUCCESS", "SUCCESS_WITH_FAILURES") for r in results]
        failed = [r in ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED", "INTERNAL_ERROR") for r in results]
        canceled = [r in ("CANCELED", "UPSTREAM_CANCELED") for r in results]
        condition = task.spec.get("run_if") or "ALL_SUCCESS"
        met = {
            "ALL_SUCCESS": all(ok),
            "ALL_DONE": True,
            "NONE_FAILED": not any(failed) and not any(canceled),
            "AT_LEAST_ONE_SUCCESS": any(ok),
            "AT_LEAST_ONE_FAILED": any(failed),
            "ALL_FAILED": all(failed),
        }.get(condition, all(ok))
        if met:
            return "run"
        if condition in ("ALL_SUCCESS", "NONE_FAILED") or not any(ok):
            if any(canceled) and not any(failed):
                return "UPSTREAM_CANCELED"
            if any(failed) or any(canceled):
                return "UPSTREAM_FAILED"
        return "EXCLUDED"

    def _skip(self, task: _TaskRun, result_state: str) -> None:
        task.result_state = result_state
        task.end_time = _now_ms()
        if result_state == "CANCELED":
            task.state_message = "Run cancelled."
            task.termination_code = "USER_CANCELED" if not task.timed_out else "CANCELED"
            if task.timed_out:
                task.result_state = "TIMEDOUT"
            _set_state(task, "TERMINATED")
            return
        task.state_message = {
            "UPSTREAM_FAILED": "Upstream task(s) failed.",
            "UPSTREAM_CANCELED": "Upstream task(s) were cancelled.",
        }.get(result_state, "The run_if condition was not met.")
        task.termination_code = "SKIPPED"
        _set_state(task, "SKIPPED")

    def _execute(self, task: _TaskRun, deadline: float | None) -> None:
        """One task's thread: launch the process, wait (honouring timeouts), record the result."""
        error: str | None = None
        returncode: int | None = None
        try:
            task.dir.mkdir(parents=True, exist_ok=True)
            command, env, cwd = self._command(task)
            timeout = task.spec.get("timeout_seconds")
            task_deadline = time.monotonic() + float(timeout) if timeout else None
            if deadline is not None:
                task_deadline = deadline if task_deadline is None else min(deadline, task_deadline)
            with open(task.dir / "stdout", "wb") as out, open(task.dir / "stderr", "wb") as err:
                with self._cond:
                    if task.cancel_requested:
                        raise _Canceled
                    task.exec_start = _now_ms()
                    task.process = subprocess.Popen(
                        command,
                        env=env,
                        cwd=cwd,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        start_new_session=True,
                    )
                    _set_state(task, "RUNNING")
                    self._cond.notify_all()
                while True:
                    try:
                        remaining = (
                            None if task_deadline is None else max(0.0, task_deadline - time.monotonic())
                        )
                        returncode = task.process.wait(timeout=remaining)
                        break
                    except subprocess.TimeoutExpired:
                        with self._cond:
                            task.timed_out = True
                            self._request_cancel(task.run, [task])
                        task_deadline = None
            task.exec_end = _now_ms()
        except _Canceled:
            pass
        except Exception as exc:  # could not start: a missing file, a bad interpreter, ...
            error = str(exc) or repr(exc)
            (task.dir / "stderr").write_text(error + "\n", encoding="utf-8")
            task.exec_end = _now_ms()
        with self._cond:
            if task.life_cycle_state != "TERMINATING":
                _set_state(task, "TERMINATING")
            self._cond.notify_all()
        try:
            self._deliver_cluster_logs(task)
            self._complete(task, returncode, error)
        except Exception as exc:  # an emulator bug: fail the task rather than hang the run
            with self._cond:
                task.result_state, task.termination_code = "FAILED", "INTERNAL_ERROR"
                task.state_message = task.error = f"Emulator error: {exc!r}"
                task.end_time = _now_ms()
                _set_state(task, "TERMINATED")
                self._cond.notify_all()

    def _complete(self, task: _TaskRun, returncode: int | None, error: str | None) -> None:
        stderr = task.logs.stderr
        notebook: dict[str, Any] = {}
        if task.kind == "notebook_task":
            try:
                loaded = json.loads((task.dir / "result.json").read_text(encoding="utf-8"))
                notebook = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                notebook = {}
        with self._cond:
            task.returncode = returncode
            task.notebook_result = notebook.get("result")
            if task.timed_out:
                task.result_state, task.termination_code = "TIMEDOUT", "CANCELED"
                task.state_message = "Task timed out."
            elif task.cancel_requested:
                task.result_state, task.termination_code = "CANCELED", "USER_CANCELED"
                task.state_message = "Run cancelled."
            elif error is not None:
                task.result_state, task.termination_code = "FAILED", "RUN_EXECUTION_ERROR"
                task.state_message = error
                task.error = error
            elif returncode == 0:
                task.result_state, task.termination_code = "SUCCESS", "SUCCESS"
                task.state_message = ""
            else:
                line = notebook.get("error") or _exception_line(stderr) or ""
                line = str(line).strip().splitlines()[-1] if str(line).strip() else ""
                task.result_state, task.termination_code = "FAILED", "RUN_EXECUTION_ERROR"
                if not line:
                    line = f"Process exited with code {returncode}"
                elif returncode not in (1, None):
                    line = f"{line} (exit code {returncode})"
                task.error = line
                task.error_trace = notebook.get("error_trace") or _error_trace(stderr)
                task.state_message = line
            task.end_time = _now_ms()
            _set_state(task, "TERMINATED")
            self._cond.notify_all()

    def _finalize(self, run: _Run) -> None:
        with self._cond:
            if run.life_cycle_state != "TERMINATING":
                if run.life_cycle_state == "PENDING":
                    run.start_time = run.start_time or _now_ms()
                _set_state(run, "TERMINATING")
            self._cond.notify_all()
        with self._cond:
            bad = [t for t in run.tasks if t.result_state not in ("SUCCESS", "EXCLUDED")]
            leaves = [t for t in run.tasks if not any(t.task_key in o.depends_on for o in run.tasks)]
            if run.timed_out:
                run.result_state, run.termination_code = "TIMEDOUT", "CANCELED"
                run.state_message = "Run timed out."
            elif run.cancel_requested:
                run.result_state, run.termination_code = "CANCELED", "USER_CANCELED"
                run.state_message = "Run cancelled."
            elif not bad:
                run.result_state, run.termination_code = "SUCCESS", "SUCCESS"
                run.state_message = ""
            elif all(t.result_state in ("CANCELED", "UPSTREAM_CANCELED") for t in bad):
                run.result_state, run.termination_code = "CANCELED", "USER_CANCELED"
                run.state_message = "Run cancelled."
            elif all(t.result_state in ("TIMEDOUT", "UPSTREAM_FAILED", "UPSTREAM_CANCELED") for t in bad):
                first = next((t for t in bad if t.result_state == "TIMEDOUT"), bad[0])
                run.result_state, run.termination_code = "TIMEDOUT", "CANCELED"
                run.state_message = f"Task {first.task_key} timed out."
            else:
                first = next(
                    (t for t in bad if t.result_state in ("FAILED", "TIMEDOUT", "INTERNAL_ERROR")), bad[0]
                )
                if all(t.result_state in ("SUCCESS", "EXCLUDED") for t in leaves):
                    run.result_state, run.termination_code = "SUCCESS_WITH_FAILURES", "SUCCESS_WITH_FAILURES"
                else:
                    run.result_state, run.termination_code = "FAILED", "RUN_EXECUTION_ERROR"
                message = first.error or first.state_message or str(first.result_state)
                message = message if message.endswith((".", "!", "?")) else f"{message}."
                run.state_message = f"Task {first.task_key} failed with message: {message}"
                if any(t.life_cycle_state == "SKIPPED" for t in run.tasks):
                    run.state_message += " This caused all downstream tasks to get skipped."
            run.end_time = _now_ms()
            _set_state(run, "TERMINATED")
            self._cond.notify_all()

    # ----------------------------------------------------------------------------- tasks

    def _local_path(self, raw: str, what: str) -> Path:
        """Map a task's file reference (``dbfs:/``, ``/Volumes``, ``file:``, ``/Workspace``, local)."""
        if raw.startswith("dbfs:"):
            try:
                return self._emulator.storage.dbfs_path(raw)[1]
            except ApiError as exc:
                raise FileNotFoundError(f"{what} {raw}: {exc.message}") from None
        if raw.startswith("file:"):
            return Path("/" + raw[len("file:") :].lstrip("/"))
        if raw == "/Volumes" or raw.startswith("/Volumes/"):
            try:
                return self._emulator.storage.volume_path(raw).local
            except ApiError as exc:
                raise FileNotFoundError(f"{what} {raw}: {exc.message}") from None
        if "://" in raw:
            raise FileNotFoundError(
                f"{what} {raw}: only dbfs:/, /Volumes, file:/ and local paths are emulated"
            )
        if not raw.startswith("/"):
            raise FileNotFoundError(
                f"{what} {raw}: relative paths need a git_source, which the emulator does not support"
            )
        if raw.startswith("/Workspace/"):
            emulated = self.workspace_path(raw)
            if emulated.exists() or emulated.with_name(emulated.name + ".py").exists():
                return emulated
            return Path(raw)
        literal = Path(raw)
        if literal.exists() or literal.with_name(literal.name + ".py").exists():
            return literal
        return self.workspace_path(raw)

    def _env(self, task: _TaskRun) -> dict[str, str]:
        if self.inherit_env:
            env = dict(os.environ)
        else:
            env = {
                k: os.environ[k]
                for k in ("PATH", "HOME", "JAVA_HOME", "PYTHONPATH", "TMPDIR")
                if k in os.environ
            }
        for name in (
            "DAGSTER_PIPES_CONTEXT",
            "DAGSTER_PIPES_MESSAGES",
            "SPARK_REMOTE",
            "SPARK_CONNECT_MODE_ENABLED",
        ):
            env.pop(name, None)
        env.update(self._emulator.env())
        if task.compute == "serverless":
            env[_DBFS_FUSE_ENV] = str(self._emulator.root / "no-dbfs-fuse-on-serverless")
            env[_VOLUMES_FUSE_ENV] = str(self._emulator.volumes_root)
            env[_SPARK_MODE_ENV] = "connect"
            env[COMPUTE_ENV] = "serverless"
        else:
            env[_DBFS_FUSE_ENV] = str(self._emulator.dbfs_root)
            env[_VOLUMES_FUSE_ENV] = str(self._emulator.volumes_root)
            env[_SPARK_MODE_ENV] = "classic"
            env[COMPUTE_ENV] = "classic"
            env["SPARK_CONF_DIR"] = str(self._spark_defaults(task))
        env[RUN_ID_ENV] = str(task.run_id)
        env[TASK_KEY_ENV] = task.task_key
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        spark_env = (task.spec.get("new_cluster") or {}).get("spark_env_vars") or {}
        env.update({str(k): str(v) for k, v in spark_env.items()})
        return env

    def _log_conf(self, task: _TaskRun) -> dict[str, Any]:
        if task.compute == "new_cluster":
            return dict((task.spec.get("new_cluster") or {}).get("cluster_log_conf") or {})
        if task.compute == "existing_cluster":
            return dict(self.existing_cluster_log_conf or {})
        return {}

    def _spark_defaults(self, task: _TaskRun) -> Path:
        """A ``SPARK_CONF_DIR`` whose ``spark-defaults.conf`` pre-configures any session the task
        starts like the cluster's: ``local[2]``, small settings, ``clusterUsageTags`` (cluster id,
        log delivery) and the cluster's ``spark_conf`` (lowest precedence: the builder overrides)."""
        from ._notebook import LOCAL_SPARK_CONF

        conf: dict[str, str] = {"spark.master": "local[2]", **LOCAL_SPARK_CONF}
        tags = "spark.databricks.clusterUsageTags."
        conf[tags + "clusterId"] = str(task.cluster_id)
        conf[tags + "clusterName"] = f"emulator-{task.cluster_id}"
        log_conf = self._log_conf(task)
        destination = next(
            (
                str(v.get("destination"))
                for v in log_conf.values()
                if isinstance(v, dict) and v.get("destination")
            ),
            None,
        )
        conf[tags + "clusterLogDeliveryEnabled"] = "true" if destination else "false"
        if destination:
            conf[tags + "clusterLogDestination"] = destination
        spark_conf = (task.spec.get("new_cluster") or {}).get("spark_conf") or {}
        conf.update({str(k): str(v) for k, v in spark_conf.items()})
        directory = task.dir / "spark-conf"
        directory.mkdir(parents=True, exist_ok=True)
        lines = [f"{key} {' '.join(str(value).split())}" for key, value in conf.items()]
        (directory / "spark-defaults.conf").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return directory

    def _command(self, task: _TaskRun) -> tuple[list[str], dict[str, str], str]:
        env = self._env(task)
        spark_env = (task.spec.get("new_cluster") or {}).get("spark_env_vars") or {}
        python = str(spark_env.get("PYSPARK_PYTHON") or self.python_executable)
        spec = task.spec[task.kind]
        if task.kind == "spark_python_task":
            file = self._local_path(spec["python_file"], "Python file")
            if not file.is_file():
                raise FileNotFoundError(f"Python file {spec['python_file']} does not exist.")
            raw = spec["python_file"]
            in_storage = raw.startswith(("dbfs:", "/Volumes/")) or raw == "/Volumes"
            cwd = task.dir if in_storage else file.parent
            return [python, str(file), *(spec.get("parameters") or [])], env, str(cwd)
        if task.kind == "python_wheel_task":
            params = list(spec.get("parameters") or [])
            params += [f"--{k}={v}" for k, v in (spec.get("named_parameters") or {}).items()]
            command = [python, "-c", _WHEEL_LAUNCHER, spec["package_name"], spec["entry_point"], *params]
            return command, env, str(task.dir)
        notebook = self._local_path(spec["notebook_path"], "Notebook")
        from ._notebook import resolve_notebook_file

        try:
            notebook = resolve_notebook_file(notebook)
        except FileNotFoundError:
            raise FileNotFoundError(f"Notebook {spec['notebook_path']} does not exist.") from None
        params_file = task.dir / "params.json"
        params_file.write_text(json.dumps(spec.get("base_parameters") or {}), encoding="utf-8")
        command = [
            python,
            str(_NOTEBOOK_RUNNER),
            str(notebook),
            f"@{params_file}",
            "--result-file",
            str(task.dir / "result.json"),
        ]
        return command, env, str(notebook.parent)

    def _deliver_cluster_logs(self, task: _TaskRun) -> None:
        if task.cluster_id is None:
            return
        conf = self._log_conf(task)
        try:
            if (conf.get("dbfs") or {}).get("destination"):
                base = self._emulator.storage.dbfs_path(conf["dbfs"]["destination"])[1]
            elif (conf.get("volumes") or {}).get("destination"):
                base = self._emulator.storage.volume_path(conf["volumes"]["destination"]).local
            else:
                return
            driver = base / task.cluster_id / "driver"
            driver.mkdir(parents=True, exist_ok=True)
            for name in ("stdout", "stderr"):
                source = task.dir / name
                target = driver / name
                if source.exists():
                    if target.exists():  # several tasks on one existing cluster: append, as a driver would
                        with open(target, "ab") as dst, open(source, "rb") as src:
                            shutil.copyfileobj(src, dst)
                    else:
                        shutil.copyfile(source, target)
        except (ApiError, OSError):
            pass  # log delivery failures never fail a run (as on the platform)


class _Canceled(Exception):
    """The task was canceled before its process started."""
