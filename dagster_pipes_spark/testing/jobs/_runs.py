"""The run state machine: runs and task runs, their life-cycle states and the rules that move them.

Pure bookkeeping (no threads, no processes); the caller holds the Jobs API's lock.

``state.life_cycle_state`` (``status.state`` mirrors it): ``PENDING`` from submit until the first
task process starts → ``RUNNING`` → ``TERMINATING`` (log delivery) → ``TERMINATED`` with
``result_state`` ``SUCCESS``, ``FAILED`` (``state_message`` carries the failing task's exception
line from its stderr), ``TIMEDOUT``, ``CANCELED`` or ``SUCCESS_WITH_FAILURES`` (a failure, but
every leaf task succeeded). A task whose ``run_if`` condition is not met ends ``SKIPPED`` with
``UPSTREAM_FAILED`` / ``UPSTREAM_CANCELED`` / ``EXCLUDED``.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "Lifecycle",
    "Run",
    "TaskLogs",
    "TaskRun",
    "complete_task",
    "decide",
    "finalize_run",
    "now_ms",
    "set_state",
    "skip",
]

ACTIVE_STATES = ("PENDING", "QUEUED", "BLOCKED", "RUNNING", "TERMINATING", "WAITING_FOR_RETRY")
FINAL_STATES = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(: .*)?$")


def now_ms() -> int:
    """The current time in epoch milliseconds (the API's timestamps)."""
    return int(time.time() * 1000)


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


@dataclass(eq=False, kw_only=True)
class Lifecycle:
    """What a run and a task run share: states, result, timing, cancellation and the state history."""

    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    termination_code: str | None = None
    start_time: int = 0
    end_time: int = 0
    cancel_requested: bool = False
    timed_out: bool = False
    history: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        """Whether it is in a final state."""
        return self.life_cycle_state in FINAL_STATES

    def set_result(self, result_state: str, termination_code: str, message: str) -> None:
        """Record the outcome (``state.result_state``, the termination code and the state message)."""
        self.result_state, self.termination_code, self.state_message = result_state, termination_code, message


@dataclass(eq=False, kw_only=True)
class TaskRun(Lifecycle):
    """One task of a run: its spec, compute, process and outcome."""

    run: Run
    spec: dict[str, Any]
    task_key: str
    run_id: int
    kind: str
    compute: str  # "new_cluster" | "existing_cluster" | "serverless"
    cluster_id: str | None
    dir: Path
    python: str
    exec_start: int = 0
    exec_end: int = 0
    process: subprocess.Popen[bytes] | None = None
    started: bool = False
    notebook_result: str | None = None
    error: str | None = None
    error_trace: str | None = None

    @property
    def depends_on(self) -> list[str]:
        """The task keys this task waits for."""
        return [str(d.get("task_key")) for d in self.spec.get("depends_on") or []]

    @property
    def logs(self) -> TaskLogs:
        """The task's stdout / stderr files."""
        return TaskLogs(self.task_key, self.run_id, self.dir / "stdout", self.dir / "stderr")


@dataclass(eq=False, kw_only=True)
class Run(Lifecycle):
    """One submitted run and its tasks."""

    run_id: int
    job_id: int
    run_name: str
    body: dict[str, Any]
    submit_time: int
    timeout_seconds: float | None
    tasks: list[TaskRun] = field(default_factory=list)
    thread: threading.Thread | None = None

    def task(self, key: str) -> TaskRun:
        """The task with key ``key``."""
        return next(t for t in self.tasks if t.task_key == key)


def set_state(obj: Lifecycle, life_cycle_state: str) -> None:
    """Move to ``life_cycle_state``, recording it in the history."""
    if obj.life_cycle_state != life_cycle_state or not obj.history:
        obj.history.append(life_cycle_state)
    obj.life_cycle_state = life_cycle_state


def decide(task: TaskRun) -> str:
    """``run``, ``wait`` or the result state of a skip, from the task's dependencies and ``run_if``."""
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


def skip(task: TaskRun, result_state: str) -> None:
    """End a task that never started (canceled before it ran, or its ``run_if`` not met)."""
    task.result_state = result_state
    task.end_time = now_ms()
    if result_state == "CANCELED":
        task.state_message = "Run cancelled."
        task.termination_code = "USER_CANCELED" if not task.timed_out else "CANCELED"
        if task.timed_out:
            task.result_state = "TIMEDOUT"
        set_state(task, "TERMINATED")
        return
    task.state_message = {
        "UPSTREAM_FAILED": "Upstream task(s) failed.",
        "UPSTREAM_CANCELED": "Upstream task(s) were cancelled.",
    }.get(result_state, "The run_if condition was not met.")
    task.termination_code = "SKIPPED"
    set_state(task, "SKIPPED")


def exception_line(stderr: str) -> str | None:
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


def complete_task(
    task: TaskRun, returncode: int | None, error: str | None, stderr: str, notebook: dict[str, Any]
) -> None:
    """Record how a task's process ended (``error``: it could not start) and end it ``TERMINATED``."""
    task.notebook_result = notebook.get("result")
    if task.timed_out:
        task.set_result("TIMEDOUT", "CANCELED", "Task timed out.")
    elif task.cancel_requested:
        task.set_result("CANCELED", "USER_CANCELED", "Run cancelled.")
    elif error is not None:
        task.set_result("FAILED", "RUN_EXECUTION_ERROR", error)
        task.error = error
    elif returncode == 0:
        task.set_result("SUCCESS", "SUCCESS", "")
    else:
        line = notebook.get("error") or exception_line(stderr) or ""
        line = str(line).strip().splitlines()[-1] if str(line).strip() else ""
        if not line:
            line = f"Process exited with code {returncode}"
        elif returncode not in (1, None):
            line = f"{line} (exit code {returncode})"
        task.error = line
        task.error_trace = notebook.get("error_trace") or _error_trace(stderr)
        task.set_result("FAILED", "RUN_EXECUTION_ERROR", line)
    task.end_time = now_ms()
    set_state(task, "TERMINATED")


def fail_internally(task: TaskRun, exc: BaseException) -> None:
    """End a task whose handling hit an emulator bug (rather than hang the run)."""
    task.error = f"Emulator error: {exc!r}"
    task.set_result("FAILED", "INTERNAL_ERROR", task.error)
    task.end_time = now_ms()
    set_state(task, "TERMINATED")


def finalize_run(run: Run) -> None:
    """The run's result from its tasks' results; ends it ``TERMINATED``."""
    bad = [t for t in run.tasks if t.result_state not in ("SUCCESS", "EXCLUDED")]
    leaves = [t for t in run.tasks if not any(t.task_key in o.depends_on for o in run.tasks)]
    if run.timed_out:
        run.set_result("TIMEDOUT", "CANCELED", "Run timed out.")
    elif run.cancel_requested:
        run.set_result("CANCELED", "USER_CANCELED", "Run cancelled.")
    elif not bad:
        run.set_result("SUCCESS", "SUCCESS", "")
    elif all(t.result_state in ("CANCELED", "UPSTREAM_CANCELED") for t in bad):
        run.set_result("CANCELED", "USER_CANCELED", "Run cancelled.")
    elif all(t.result_state in ("TIMEDOUT", "UPSTREAM_FAILED", "UPSTREAM_CANCELED") for t in bad):
        first = next((t for t in bad if t.result_state == "TIMEDOUT"), bad[0])
        run.set_result("TIMEDOUT", "CANCELED", f"Task {first.task_key} timed out.")
    else:
        first = next((t for t in bad if t.result_state in ("FAILED", "TIMEDOUT", "INTERNAL_ERROR")), bad[0])
        message = first.error or first.state_message or str(first.result_state)
        message = message if message.endswith((".", "!", "?")) else f"{message}."
        message = f"Task {first.task_key} failed with message: {message}"
        if any(t.life_cycle_state == "SKIPPED" for t in run.tasks):
            message += " This caused all downstream tasks to get skipped."
        if all(t.result_state in ("SUCCESS", "EXCLUDED") for t in leaves):
            run.set_result("SUCCESS_WITH_FAILURES", "SUCCESS_WITH_FAILURES", message)
        else:
            run.set_result("FAILED", "RUN_EXECUTION_ERROR", message)
    run.end_time = now_ms()
    set_state(run, "TERMINATED")


def fail_run_internally(run: Run, exc: BaseException) -> None:
    """End a run whose scheduler hit an emulator bug as ``INTERNAL_ERROR`` (never hang clients)."""
    run.state_message = f"Emulator error: {exc!r}"
    run.termination_code = "INTERNAL_ERROR"
    run.end_time = now_ms()
    set_state(run, "INTERNAL_ERROR")
