"""The JSON shapes of the Jobs API: a run (``runs/get``), a task run, and a task run seen as a run.

Shapes follow ``databricks.sdk.service.jobs`` of databricks-sdk 0.60 (``Run``, ``RunTask``,
``RunState``, ``RunStatus``).
"""

from __future__ import annotations

from typing import Any

from ._runs import FINAL_STATES, Lifecycle, Run, TaskRun

__all__ = ["run_json", "task_as_run_json", "task_json"]


def _url(base_url: str, job_id: int, run_id: int) -> str:
    return f"{base_url}/?o=0#job/{job_id}/run/{run_id}"


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


def _state_json(obj: Lifecycle) -> tuple[dict[str, Any], dict[str, Any]]:
    state: dict[str, Any] = {"life_cycle_state": obj.life_cycle_state, "state_message": obj.state_message}
    if obj.result_state is not None:
        state["result_state"] = obj.result_state
    state["user_cancelled_or_timedout"] = bool(obj.cancel_requested or obj.timed_out)
    status: dict[str, Any] = {"state": _v2_state(obj.life_cycle_state)}
    if obj.life_cycle_state in FINAL_STATES and obj.termination_code is not None:
        status["termination_details"] = {
            "code": obj.termination_code,
            "type": _termination_type(obj.termination_code),
            "message": obj.state_message,
        }
    return state, status


def _cluster_instance(task: TaskRun) -> dict[str, Any]:
    if task.cluster_id is None or not task.started:
        return {}
    return {"cluster_instance": {"cluster_id": task.cluster_id, "spark_context_id": str(task.run_id)}}


def _run_fields(obj: Run | TaskRun, job_id: int, run_name: str, base_url: str) -> dict[str, Any]:
    """The fields of a ``Run`` common to a run and to a task run seen as a run."""
    state, status = _state_json(obj)
    return {
        "job_id": job_id,
        "run_id": obj.run_id,
        "number_in_job": obj.run_id,
        "original_attempt_run_id": obj.run_id,
        "creator_user_name": "emulator@localhost",
        "run_name": run_name,
        "run_type": "SUBMIT_RUN",
        "trigger": "ONE_TIME",
        "attempt_number": 0,
        "state": state,
        "status": status,
        "run_page_url": _url(base_url, job_id, obj.run_id),
    }


def task_json(task: TaskRun, base_url: str) -> dict[str, Any]:
    """A task of a run (``RunTask``): its spec plus state, timing and cluster."""
    state, status = _state_json(task)
    return {
        **{k: v for k, v in task.spec.items() if k != "tags"},
        "run_id": task.run_id,
        "task_key": task.task_key,
        "attempt_number": 0,
        "state": state,
        "status": status,
        "run_page_url": _url(base_url, task.run.job_id, task.run_id),
        "start_time": task.start_time,
        "end_time": task.end_time,
        "setup_duration": max(0, task.exec_start - task.start_time) if task.exec_start else 0,
        "execution_duration": max(0, task.exec_end - task.exec_start) if task.exec_end else 0,
        "cleanup_duration": max(0, task.end_time - task.exec_end) if task.end_time and task.exec_end else 0,
        "run_duration": max(0, task.end_time - task.start_time) if task.end_time and task.start_time else 0,
        "run_if": task.spec.get("run_if") or "ALL_SUCCESS",
        **_cluster_instance(task),
    }


def run_json(run: Run, base_url: str) -> dict[str, Any]:
    """A run (``Run``) with its tasks."""
    out: dict[str, Any] = {
        **_run_fields(run, run.job_id, run.run_name, base_url),
        "format": "MULTI_TASK",
        "start_time": run.start_time or run.submit_time,
        "end_time": run.end_time,
        "setup_duration": 0,
        "execution_duration": 0,
        "cleanup_duration": 0,
        "run_duration": max(0, run.end_time - run.submit_time) if run.end_time else 0,
        "tasks": [task_json(t, base_url) for t in run.tasks],
    }
    for name in ("environments", "git_source", "timeout_seconds"):
        if run.body.get(name) is not None:
            out[name] = run.body[name]
    return out


def task_as_run_json(task: TaskRun, base_url: str) -> dict[str, Any]:
    """A task run asked for by its own run id: a one-task ``Run``."""
    return {
        **_run_fields(task, task.run.job_id, task.task_key, base_url),
        "parent_run_id": task.run.run_id,
        "job_run_id": task.run.run_id,
        "start_time": task.start_time,
        "end_time": task.end_time,
        "tasks": [task_json(task, base_url)],
        **_cluster_instance(task),
    }
