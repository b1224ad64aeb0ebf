"""Driving runs: one scheduler thread per run starts each task once its dependencies are done (tasks
without pending dependencies run in parallel, as on Databricks), one thread per task waits for its
process, and cancellation / timeouts ``SIGTERM`` the task's process group (``SIGKILL`` after the
grace period).

All state changes go through the :mod:`._runs` state machine under the Jobs API's condition lock.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from typing import Any, Protocol

from ._launch import TaskLauncher, kill_after_grace, signal_process_group
from ._runs import (
    Run,
    TaskRun,
    complete_task,
    decide,
    fail_internally,
    fail_run_internally,
    finalize_run,
    now_ms,
    set_state,
    skip,
)

__all__ = ["Scheduler", "SchedulerSettings"]


class SchedulerSettings(Protocol):
    """The Jobs API settings the scheduler reads (the :class:`JobsApi` attributes of the same names)."""

    startup_delay: float
    cancel_grace_seconds: float


class _Canceled(Exception):  # noqa: N818 - a signal, not an error
    """The task was canceled before its process started."""


class Scheduler:
    """Runs submitted runs to completion.

    Args:
        cond: The Jobs API's condition (its lock guards every run and task).
        launcher: Starts task processes.
        settings: Start-up delay and cancel grace period (read when used).
    """

    def __init__(
        self, cond: threading.Condition, launcher: TaskLauncher, settings: SchedulerSettings
    ) -> None:
        self._cond = cond
        self._launcher = launcher
        self._settings = settings

    def start(self, run: Run) -> None:
        """Start the run's scheduler thread."""
        run.thread = threading.Thread(
            target=self._drive, args=(run,), name=f"jobs-run-{run.run_id}", daemon=True
        )
        run.thread.start()

    # ---------------------------------------------------------------------------- cancel

    def request_cancel(self, run: Run, tasks: list[TaskRun], *, whole_run: bool = False) -> None:
        """Mark tasks canceled and ``SIGTERM`` the running ones (caller holds the lock)."""
        if run.finished:
            return
        if whole_run:
            run.cancel_requested = True
        for task in tasks:
            if task.finished or task.cancel_requested:
                continue
            task.cancel_requested = True
            if task.process is not None and task.process.poll() is None:
                set_state(task, "TERMINATING")
                signal_process_group(task.process, signal.SIGTERM)
                threading.Thread(
                    target=kill_after_grace,
                    args=(task.process, self._settings.cancel_grace_seconds),
                    name=f"jobs-kill-{task.run_id}",
                    daemon=True,
                ).start()
        if (run.cancel_requested or run.timed_out) and run.life_cycle_state == "RUNNING":
            set_state(run, "TERMINATING")
        self._cond.notify_all()

    def shutdown(self, runs: list[Run], timeout: float) -> None:
        """Cancel ``runs`` and kill what is still running after ``timeout`` seconds."""
        with self._cond:
            for run in runs:
                self.request_cancel(run, run.tasks, whole_run=True)
        deadline = time.monotonic() + timeout
        for run in runs:
            for task in run.tasks:
                proc = task.process
                if proc is not None and proc.poll() is None:
                    try:
                        proc.wait(max(0.0, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        signal_process_group(proc, signal.SIGKILL)
            if run.thread is not None:
                run.thread.join(max(0.1, deadline - time.monotonic()))

    # ----------------------------------------------------------------------------- drive

    def _drive(self, run: Run) -> None:
        """The run's scheduler thread: start tasks as their dependencies finish, then finalize."""
        try:
            deadline = time.monotonic() + run.timeout_seconds if run.timeout_seconds else None
            with self._cond:
                end = time.monotonic() + self._settings.startup_delay
                while not run.cancel_requested and time.monotonic() < end:
                    self._cond.wait(end - time.monotonic())
            while True:
                with self._cond:
                    if deadline is not None and time.monotonic() > deadline and not run.timed_out:
                        run.timed_out = True
                        for task in run.tasks:
                            if not task.finished:
                                task.timed_out = True
                        self.request_cancel(run, [t for t in run.tasks if not t.finished])
                    if all(t.finished for t in run.tasks):
                        break
                    self._start_ready_tasks(run, deadline)
                    self._cond.notify_all()
                    if not all(t.finished for t in run.tasks):
                        self._cond.wait(0.5)
            with self._cond:
                if run.life_cycle_state != "TERMINATING":
                    if run.life_cycle_state == "PENDING":
                        run.start_time = run.start_time or now_ms()
                    set_state(run, "TERMINATING")
                self._cond.notify_all()
            with self._cond:
                finalize_run(run)
                self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - an emulator bug: end the run INTERNAL_ERROR, never hang clients
            with self._cond:
                fail_run_internally(run, exc)
                self._cond.notify_all()

    def _start_ready_tasks(self, run: Run, deadline: float | None) -> None:
        """Start (or skip) the tasks whose dependencies are done (caller holds the lock)."""
        for task in run.tasks:
            if task.started or task.finished:
                continue
            decision = decide(task)
            if decision == "wait":
                if task.life_cycle_state != "BLOCKED":
                    set_state(task, "BLOCKED")
                continue
            if decision != "run":
                skip(task, decision)
                continue
            task.started = True
            task.start_time = now_ms()
            if run.life_cycle_state == "PENDING":
                run.start_time = task.start_time
                set_state(run, "RUNNING")
            set_state(task, "PENDING")
            threading.Thread(
                target=self._execute, args=(task, deadline), name=f"jobs-task-{task.run_id}", daemon=True
            ).start()

    # ------------------------------------------------------------------------------ task

    def _execute(self, task: TaskRun, deadline: float | None) -> None:
        """One task's thread: launch the process, wait (honouring timeouts), record the result."""
        error: str | None = None
        returncode: int | None = None
        try:
            task.dir.mkdir(parents=True, exist_ok=True)
            returncode = self._run_process(task, deadline)
        except _Canceled:
            pass
        except Exception as exc:  # noqa: BLE001 - could not start (a missing file, a bad interpreter): the task fails
            error = str(exc) or repr(exc)
            (task.dir / "stderr").write_text(error + "\n", encoding="utf-8")
            task.exec_end = now_ms()
        with self._cond:
            if task.life_cycle_state != "TERMINATING":
                set_state(task, "TERMINATING")
            self._cond.notify_all()
        try:
            self._launcher.deliver_cluster_logs(task)
            notebook = self._notebook_result(task)
            with self._cond:
                complete_task(task, returncode, error, task.logs.stderr, notebook)
                self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - an emulator bug: fail the task rather than hang the run
            with self._cond:
                fail_internally(task, exc)
                self._cond.notify_all()

    def _run_process(self, task: TaskRun, deadline: float | None) -> int:
        timeout = task.spec.get("timeout_seconds")
        task_deadline = time.monotonic() + float(timeout) if timeout else None
        if deadline is not None:
            task_deadline = deadline if task_deadline is None else min(deadline, task_deadline)
        with open(task.dir / "stdout", "wb") as out, open(task.dir / "stderr", "wb") as err:
            with self._cond:
                if task.cancel_requested:
                    raise _Canceled
                task.exec_start = now_ms()
                task.process = process = self._launcher.start(task, out, err)
                set_state(task, "RUNNING")
                self._cond.notify_all()
            while True:
                try:
                    remaining = None if task_deadline is None else max(0.0, task_deadline - time.monotonic())
                    returncode = process.wait(timeout=remaining)
                    break
                except subprocess.TimeoutExpired:
                    with self._cond:
                        task.timed_out = True
                        self.request_cancel(task.run, [task])
                    task_deadline = None
        task.exec_end = now_ms()
        return returncode

    @staticmethod
    def _notebook_result(task: TaskRun) -> dict[str, Any]:
        if task.kind != "notebook_task":
            return {}
        try:
            loaded = json.loads((task.dir / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}
