"""Validation of ``jobs/runs/submit`` bodies: what the platform refuses with ``400 INVALID_PARAMETER_VALUE``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._http import ApiError

__all__ = ["SUPPORTED_TASK_TYPES", "bad_request", "validate_submit"]

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


def bad_request(message: str) -> ApiError:
    """The platform's ``400 INVALID_PARAMETER_VALUE``."""
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _check_timeout(value: Any, what: str) -> None:
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0):
        raise bad_request(f"{what}{value!r}")


def validate_submit(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], float | None]:
    """Check a submit body; returns its tasks, its environments by key and its ``timeout_seconds``."""
    tasks = body.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise bad_request("At least one task is required.")
    if len(tasks) > 100:
        raise bad_request("A run can have at most 100 tasks.")
    environments = {
        str(e.get("environment_key")): e for e in body.get("environments") or [] if isinstance(e, dict)
    }
    keys = [_validate_task(task, set(environments)) for task in tasks]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise bad_request(f"Task key {dup} is duplicated; task keys must be unique within a run.")
    for task in tasks:
        for dep in task.get("depends_on") or []:
            if not isinstance(dep, dict) or dep.get("task_key") not in keys:
                raise bad_request(
                    f"Task {task['task_key']} depends on {dep!r}, which is not a task of this run."
                )
    _check_acyclic(tasks)
    timeout = body.get("timeout_seconds")
    _check_timeout(timeout, "Invalid timeout_seconds: ")
    return tasks, environments, float(timeout) if timeout else None


def _validate_task(task: Any, environments: set[str]) -> str:
    if not isinstance(task, dict):
        raise bad_request("Each task must be an object.")
    key = task.get("task_key")
    if not isinstance(key, str) or not key or not re.fullmatch(r"[\w\-.]{1,100}", key):
        raise bad_request(f"Invalid task_key {key!r}: 1-100 characters of letters, digits, '_', '-' and '.'.")
    kinds = [k for k in (*SUPPORTED_TASK_TYPES, *_OTHER_TASK_TYPES) if task.get(k) is not None]
    if not kinds:
        raise bad_request(
            f"Task {key} has no task type: one of {', '.join(SUPPORTED_TASK_TYPES)} is required."
        )
    if len(kinds) > 1:
        raise bad_request(f"Task {key} has more than one task type: {', '.join(kinds)}.")
    kind = kinds[0]
    if kind not in SUPPORTED_TASK_TYPES:
        raise bad_request(
            f"Task {key}: {kind} is not supported by the emulator ({', '.join(SUPPORTED_TASK_TYPES)} are)."
        )
    spec = task[kind]
    if not isinstance(spec, dict):
        raise bad_request(f"Task {key}: {kind} must be an object.")
    if task.get("new_cluster") is not None and task.get("existing_cluster_id") is not None:
        raise bad_request(f"Task {key}: new_cluster and existing_cluster_id are mutually exclusive.")
    if task.get("new_cluster") is not None and not isinstance(task["new_cluster"], dict):
        raise bad_request(f"Task {key}: new_cluster must be an object.")
    env_key = task.get("environment_key")
    if env_key is not None and env_key not in environments:
        raise bad_request(
            f"Task {key} references environment_key {env_key!r}, which is not in `environments`."
        )
    if kind == "spark_python_task":
        if not isinstance(spec.get("python_file"), str) or not spec["python_file"]:
            raise bad_request(f"Task {key}: spark_python_task.python_file is required.")
        _check_str_list(key, spec, "parameters")
    elif kind == "python_wheel_task":
        for name in ("package_name", "entry_point"):
            if not isinstance(spec.get(name), str) or not spec[name]:
                raise bad_request(f"Task {key}: python_wheel_task.{name} is required.")
        _check_str_list(key, spec, "parameters")
        named = spec.get("named_parameters")
        if named is not None and not isinstance(named, dict):
            raise bad_request(f"Task {key}: python_wheel_task.named_parameters must be an object.")
        if named and spec.get("parameters"):
            raise bad_request(
                f"Task {key}: python_wheel_task accepts parameters or named_parameters, not both."
            )
    else:
        if not isinstance(spec.get("notebook_path"), str) or not spec["notebook_path"]:
            raise bad_request(f"Task {key}: notebook_task.notebook_path is required.")
        params = spec.get("base_parameters")
        if params is not None and not isinstance(params, dict):
            raise bad_request(f"Task {key}: notebook_task.base_parameters must be an object.")
    _check_timeout(task.get("timeout_seconds"), f"Task {key}: invalid timeout_seconds ")
    return key


def _check_str_list(key: str, spec: Mapping[str, Any], name: str) -> None:
    value = spec.get(name)
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise bad_request(f"Task {key}: {name} must be a list of strings.")


def _check_acyclic(tasks: list[dict[str, Any]]) -> None:
    deps = {t["task_key"]: [d["task_key"] for d in t.get("depends_on") or []] for t in tasks}
    state: dict[str, int] = {}

    def visit(key: str, path: list[str]) -> None:
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            raise bad_request(f"The task dependencies form a cycle: {' -> '.join([*path, key])}")
        state[key] = 1
        for dep in deps[key]:
            visit(dep, [*path, key])
        state[key] = 2

    for key in deps:
        visit(key, [])
