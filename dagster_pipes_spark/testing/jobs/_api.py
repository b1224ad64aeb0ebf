"""The Jobs API runs endpoints (and ``clusters/get``) of the emulator.

Endpoints (JSON shapes follow ``databricks.sdk.service.jobs`` / ``compute`` of databricks-sdk 0.60,
which calls the 2.2 paths; the 2.1 paths are served identically):

* ``POST /api/2.{1,2}/jobs/runs/submit`` → ``{"run_id"}``
* ``GET  /api/2.{1,2}/jobs/runs/get?run_id=`` → a ``Run`` (a task's own run id works too)
* ``GET  /api/2.{1,2}/jobs/runs/get-output?run_id=`` → a ``RunOutput`` (task runs / one-task runs)
* ``POST /api/2.{1,2}/jobs/runs/cancel`` → ``{}``
* ``GET  /api/2.{0,1}/clusters/get?cluster_id=`` → a RUNNING ``ClusterDetails`` for any id

Tasks run locally as subprocesses (:mod:`._launch`), driven by :mod:`._scheduler` through the
state machine of :mod:`._runs`. Each task's stdout / stderr go to
``root/jobs/runs/<run_id>/<task_key>/{stdout,stderr}`` (:meth:`JobsApi.run_logs`); with a
``cluster_log_conf`` (``dbfs`` or ``volumes``) they are also delivered to
``<destination>/<cluster_id>/driver/{stdout,stderr}`` when the task ends.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._http import ApiError, Request, Response, Router
from .._storage import Storage
from ._launch import CLUSTER_SPARK_VERSION, TaskLauncher, Workspace
from ._profiles import RuntimeProfiles, python_executable
from ._render import run_json, task_as_run_json
from ._runs import Run, TaskLogs, TaskRun, now_ms, set_state
from ._scheduler import Scheduler
from ._validate import SUPPORTED_TASK_TYPES, bad_request, validate_submit

__all__ = ["JobsApi"]

_LOGS_LIMIT = 5 * 1024 * 1024  # runs/get-output returns at most the last 5 MB of logs


def _run_id_arg(req: Request, body: bool = False) -> int:
    args = req.json() if body else req.args()
    raw = args.get("run_id")
    if raw is None or raw == "":
        raise bad_request("Missing required field: run_id")
    if isinstance(raw, bool):
        raise bad_request(f"Invalid run_id: {raw!r}")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise bad_request(f"Invalid run_id: {raw!r}") from None


class JobsApi:
    """The emulated Jobs runs API and ``clusters/get`` (see the module docstring).

    Args:
        workspace: The workspace serving this API (its URL and client environment for tasks).
        storage: The workspace's storage (DBFS / volume paths, FUSE roots, run directories).
        python: Python executable (or a virtualenv directory) that runs tasks matching no runtime
            profile (``sys.executable`` by default).
        runtimes: Runtime profiles: ``{spark_version (prefix) | "serverless[:N]": python}`` (see
            :mod:`dagster_pipes_spark.testing.jobs._profiles`).
        strict_runtimes: Refuse tasks whose runtime matches no profile (instead of using ``python``).
        existing_cluster_log_conf: ``cluster_log_conf`` reported by ``clusters/get`` for every
            existing cluster (e.g. ``{"dbfs": {"destination": "dbfs:/cluster-logs"}}``); task logs
            of runs on existing clusters are delivered there.
        startup_delay: Seconds a run stays ``PENDING`` before its tasks start (cluster start-up).
        cancel_grace_seconds: Seconds between ``SIGTERM`` and ``SIGKILL`` on cancel / timeout.
        extra_env: Environment variables added to every task (below ``spark_env_vars``).
        inherit_env: Start tasks from this process's environment (else from an empty one plus
            ``PATH``, ``HOME``, ``JAVA_HOME``, ``PYTHONPATH`` and ``TMPDIR``).
    """

    def __init__(
        self,
        workspace: Workspace,
        storage: Storage,
        *,
        python: str | os.PathLike[str] | None = None,
        runtimes: Mapping[str, str | os.PathLike[str]] | None = None,
        strict_runtimes: bool = False,
        existing_cluster_log_conf: Mapping[str, Any] | None = None,
        startup_delay: float = 0.0,
        cancel_grace_seconds: float = 10.0,
        extra_env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
    ) -> None:
        self._workspace = workspace
        self._storage = storage
        self.python = python
        self.runtimes = RuntimeProfiles(runtimes, strict=strict_runtimes)
        self.existing_cluster_log_conf: dict[str, Any] | None = (
            dict(existing_cluster_log_conf) if existing_cluster_log_conf else None
        )
        self.startup_delay = startup_delay
        self.cancel_grace_seconds = cancel_grace_seconds
        self.extra_env: dict[str, str] = dict(extra_env or {})
        self.inherit_env = inherit_env
        self._cond = threading.Condition(threading.RLock())
        self._launcher = TaskLauncher(workspace, storage, self)
        self._scheduler = Scheduler(self._cond, self._launcher, self)
        self._runs: dict[int, Run] = {}
        self._task_runs: dict[int, TaskRun] = {}
        self._tokens: dict[str, int] = {}
        self._job_clusters: dict[str, TaskRun] = {}
        self._ids = itertools.count(random.randint(10**14, 2 * 10**14))
        self._job_ids = itertools.count(random.randint(10**14, 2 * 10**14))
        self._closed = False

    # ------------------------------------------------------------------------------ routes

    def register(self, router: Router) -> None:
        """Add the Jobs runs and ``clusters/get`` routes."""
        for version in ("2.1", "2.2"):
            for method, op, handler in (
                ("POST", "submit", self.submit),
                ("GET", "get", self.get),
                ("GET", "get-output", self.get_output),
                ("POST", "cancel", self.cancel),
            ):
                path = f"/api/{version}/jobs/runs/{op}"
                router.add(method, re.escape(path), handler, name=f"{method} {path}")
        for version in ("2.0", "2.1"):
            path = f"/api/{version}/clusters/get"
            router.add("GET", re.escape(path), self.cluster_get, name=f"GET {path}")

    # --------------------------------------------------------------------------- settings

    @property
    def python_executable(self) -> str:
        """The default task interpreter (:attr:`python` resolved; a venv dir → its ``bin/python``)."""
        return python_executable(self.python)

    @property
    def runs_root(self) -> Path:
        """Where task logs and scratch directories live: ``root/jobs/runs``."""
        return self._storage.root / "jobs" / "runs"

    @property
    def workspace_root(self) -> Path:
        """The emulated workspace file tree: ``/Workspace/x`` is ``root/Workspace/x``."""
        return self._launcher.workspace_root

    # ---------------------------------------------------------------------------- helpers

    def workspace_path(self, path: str) -> Path:
        """The emulated workspace file for ``/Workspace/x`` (or ``/x``): ``root/Workspace/x``.

        Put scripts and notebooks there to reference them as workspace paths in tasks.
        """
        return self._launcher.workspace_path(path)

    def _lookup(self, run_id: int) -> Run | TaskRun | None:
        return self._runs.get(run_id) or self._task_runs.get(run_id)

    def run_logs(self, run_id: int) -> dict[str, TaskLogs]:
        """stdout / stderr of a run's tasks by task key (a task run id gives just that task)."""
        with self._cond:
            obj = self._lookup(run_id)
            if isinstance(obj, Run):
                return {t.task_key: t.logs for t in obj.tasks}
            if obj is not None:
                return {obj.task_key: obj.logs}
        raise KeyError(f"Run {run_id} does not exist.")

    def state_history(self, run_id: int) -> list[str]:
        """The life-cycle states a run (or task run) went through, in order."""
        with self._cond:
            obj = self._lookup(run_id)
            if obj is None:
                raise KeyError(f"Run {run_id} does not exist.")
            return list(obj.history)

    def run_json(self, run_id: int) -> dict[str, Any]:
        """What ``runs/get`` answers for ``run_id``."""
        with self._cond:
            obj = self._lookup(run_id)
            if isinstance(obj, Run):
                return run_json(obj, self._workspace.url)
            if obj is not None:
                return task_as_run_json(obj, self._workspace.url)
        raise bad_request(f"Run {run_id} does not exist.")

    def wait(self, run_id: int, timeout: float = 60.0) -> dict[str, Any]:
        """Block until the run is in a final state; returns its ``runs/get`` JSON."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                obj = self._lookup(run_id)
                if obj is None:
                    raise KeyError(f"Run {run_id} does not exist.")
                if obj.finished:
                    return self.run_json(run_id)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"run {run_id} is still {obj.life_cycle_state} after {timeout}s")
                self._cond.wait(min(remaining, 0.5))

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every active run and kill its processes (called when the emulator stops)."""
        with self._cond:
            self._closed = True
            active = [r for r in self._runs.values() if not r.finished]
        self._scheduler.shutdown(active, timeout)
        with self._cond:
            self._closed = False

    # -------------------------------------------------------------------------- endpoints

    def submit(self, req: Request) -> Response:
        """``POST jobs/runs/submit``: validate, register and start the run; ``{"run_id"}``."""
        body = req.json()
        token = body.get("idempotency_token")
        if token is not None:
            if not isinstance(token, str) or len(token) > 64:
                raise bad_request("idempotency_token must be a string of at most 64 characters")
            with self._cond:
                if token in self._tokens:
                    return Response.json({"run_id": self._tokens[token]})
        tasks, environments, timeout = validate_submit(body)
        try:
            pythons = [self._launcher.select_python(t["task_key"], t, environments) for t in tasks]
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        with self._cond:
            if self._closed:
                raise ApiError(503, "TEMPORARILY_UNAVAILABLE", "The emulator is shutting down.")
            if token is not None and token in self._tokens:
                return Response.json({"run_id": self._tokens[token]})
            run = Run(
                run_id=next(self._ids),
                job_id=next(self._job_ids),
                run_name=str(body.get("run_name") or "Untitled"),
                body=body,
                submit_time=now_ms(),
                timeout_seconds=timeout,
            )
            set_state(run, "PENDING")
            run.tasks.extend(
                self._new_task_run(run, spec, python) for spec, python in zip(tasks, pythons, strict=True)
            )
            self._runs[run.run_id] = run
            for task_run in run.tasks:
                self._task_runs[task_run.run_id] = task_run
            if token is not None:
                self._tokens[token] = run.run_id
            self._scheduler.start(run)
        return Response.json({"run_id": run.run_id})

    def _new_task_run(self, run: Run, spec: dict[str, Any], python: str) -> TaskRun:
        kind = next(k for k in SUPPORTED_TASK_TYPES if spec.get(k) is not None)
        if spec.get("existing_cluster_id") is not None:
            compute, cluster_id = "existing_cluster", str(spec["existing_cluster_id"])
        elif spec.get("new_cluster") is not None:
            stamp = time.strftime("%m%d-%H%M%S", time.gmtime())
            compute, cluster_id = "new_cluster", f"{stamp}-{random.getrandbits(32):08x}"
        else:
            compute, cluster_id = "serverless", None
        task = TaskRun(
            run=run,
            spec=spec,
            task_key=spec["task_key"],
            run_id=next(self._ids),
            kind=kind,
            compute=compute,
            cluster_id=cluster_id,
            dir=self.runs_root / str(run.run_id) / spec["task_key"],
            python=python,
        )
        set_state(task, "PENDING")
        if compute == "new_cluster" and cluster_id is not None:
            self._job_clusters[cluster_id] = task
        return task

    def get(self, req: Request) -> Response:
        """``GET jobs/runs/get``: the run (or task run) as a ``Run`` object."""
        return Response.json(self.run_json(_run_id_arg(req)))

    def get_output(self, req: Request) -> Response:
        """``GET jobs/runs/get-output``: a task run's ``RunOutput`` (error, logs, notebook result)."""
        run_id = _run_id_arg(req)
        with self._cond:
            obj = self._lookup(run_id)
            if obj is None:
                raise bad_request(f"Run {run_id} does not exist.")
            if isinstance(obj, Run):
                if len(obj.tasks) != 1:
                    raise bad_request(
                        "Retrieving the output of runs with multiple tasks is not supported. "
                        "Please retrieve the output of each individual task run instead."
                    )
                obj = obj.tasks[0]
            task = obj
            out: dict[str, Any] = {"metadata": task_as_run_json(task, self._workspace.url)}
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
            obj = self._lookup(run_id)
            if obj is None:
                raise bad_request(f"Run {run_id} does not exist.")
            if isinstance(obj, Run):
                self._scheduler.request_cancel(obj, obj.tasks, whole_run=True)
            else:
                self._scheduler.request_cancel(obj.run, [obj])
        return Response.json({})

    def cluster_get(self, req: Request) -> Response:
        """``GET clusters/get``: any id is a RUNNING cluster (a run's job cluster reports its spec)."""
        cluster_id = req.args().get("cluster_id")
        if not cluster_id or not isinstance(cluster_id, str):
            raise bad_request("Missing required field: cluster_id")
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
                details.setdefault("spark_version", CLUSTER_SPARK_VERSION)
                return Response.json(details)
        details = {
            "cluster_id": cluster_id,
            "cluster_name": f"emulator-{cluster_id}",
            "cluster_source": "UI",
            "state": "RUNNING",
            "state_message": "",
            "spark_version": CLUSTER_SPARK_VERSION,
            "node_type_id": "emulator-local",
            "driver_node_type_id": "emulator-local",
            "num_workers": 0,
            "spark_conf": {"spark.master": "local[*, 4]", "spark.databricks.cluster.profile": "singleNode"},
            "spark_env_vars": {},
            "data_security_mode": "SINGLE_USER",
            "start_time": now_ms(),
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
