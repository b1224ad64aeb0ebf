"""A real Spark cluster on loopback for the tests: a standalone master and one-core workers of the dev
venv's (pinned) pyspark, plus what a test needs around it (waits scaled to the machine's load, Spark's
event log read back, one clear error when something does not start, nothing left running).

Each worker has its own loopback address (``127.0.0.1``, ``127.0.0.2``, ...): Spark never launches a
speculative copy of a task on the host of a running attempt, so on one address speculation could not
happen. Every process starts in its own process group (executors, children of a worker, are in the
worker's) under :func:`_helpers.die_with_parent`, and :meth:`StandaloneCluster.stop` ends each group by
its leader's pid (``SIGTERM``, then ``SIGKILL``) and then every process of the cluster's tree still
alive; a finalizer does the same if the object is dropped or the interpreter exits, and the pytest
plugin reaps whatever this process started that still runs when the session ends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _helpers import die_with_parent

from dagster_pipes_spark.testing.pytest_plugin import descendant_pids

#: JVM options of the cluster's drivers and executors: quick to start, small (no C2 compiler, serial GC)
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def load_scaled(seconds: float, *, cap: float = 4.0) -> float:
    """``seconds`` stretched by how overloaded the machine is (1-minute load per core, 1 to ``cap``)."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * min(cap, max(1.0, load))


def java_or_skip() -> str:
    """The ``java`` Spark will run; skips the test without one (under ``CI=true`` it fails)."""
    home = os.environ.get("JAVA_HOME")
    java = (
        str(Path(home, "bin", "java"))
        if home and Path(home, "bin", "java").exists()
        else shutil.which("java")
    )
    if java is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must have Java 17 for the Spark cluster tests", pytrace=False)
        pytest.skip("no java on PATH / JAVA_HOME: the Spark cluster tests need Java 17")
    return java


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ClusterStartError(RuntimeError):
    """A part of the cluster did not start: names it, with the tail of its log."""


@dataclass
class Daemon:
    """One JVM of the cluster, the leader of its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def stop_groups(leaders: Sequence[int], grace: float = 10.0) -> None:
    """End the process groups of ``leaders`` and every descendant of theirs still alive: ``SIGTERM``
    to each group, ``SIGKILL`` to whatever remains after ``grace`` seconds (a process is known by its
    pid and start time, so a pid reused meanwhile is left alone)."""
    tree = {pid: _started(pid) for leader in leaders for pid in (leader, *descendant_pids(leader))}
    for leader in leaders:
        with suppress(OSError):
            os.killpg(leader, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_started(pid) == started for pid, started in tree.items()):
        time.sleep(0.2)
    for leader in leaders:
        with suppress(OSError):
            os.killpg(leader, signal.SIGKILL)
    for pid, started in tree.items():
        if started is not None and _started(pid) == started:
            with suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after ``pid (comm)``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def _started(pid: int) -> int | None:
    """When the live (not zombie) process ``pid`` started (clock ticks after boot), else None."""
    fields = _stat(pid)
    return int(fields[19]) if fields and fields[0] != b"Z" else None


def _alive(pid: int) -> bool:
    return _started(pid) is not None


def processes_under(directory: Path) -> list[str]:
    """``pid cmdline`` of every live process whose working directory or command line lies under
    ``directory`` (the cluster's daemons, executors and their Python workers all do)."""
    root = str(directory.resolve())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid() or not _alive(int(entry)):
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == root or cwd.startswith(root + os.sep) or root in cmdline:
            found.append(f"{entry} {cmdline[:200]}")
    return found


@dataclass
class StandaloneCluster:
    """A standalone master and ``workers`` workers of ``cores`` cores each, on loopback, rooted at
    ``workdir`` (logs, the workers' directories). :meth:`start` returns once every worker registered."""

    workdir: Path
    workers: int = 2
    cores: int = 1
    memory: str = "1g"
    port: int = field(default_factory=free_port)
    daemons: list[Daemon] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._finalizer = weakref.finalize(self, stop_groups, [])

    @property
    def master_url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _spawn(self, name: str, command: list[str], host: str) -> Daemon:
        log = self.workdir / f"{name}.log"
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": host,
            "SPARK_DAEMON_MEMORY": "256m",
            "SPARK_LOG_DIR": str(self.workdir),
            "PYSPARK_PYTHON": sys.executable,
        }
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                die_with_parent(command),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,  # its own process group: its executors join it
            )
        daemon = Daemon(name, proc, log)
        self.daemons.append(daemon)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, stop_groups, [d.proc.pid for d in self.daemons])
        return daemon

    def start(self, timeout: float) -> StandaloneCluster:
        """Master, then the workers; waits (at most ``timeout`` s) until every worker registered.
        Raises :class:`ClusterStartError` naming what did not start, with its log's tail."""
        java_or_skip()
        deadline = time.monotonic() + timeout
        spark_class = str(spark_home() / "bin" / "spark-class")
        master = self._spawn(
            "master",
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--webui-port",
                "0",
            ],
            "127.0.0.1",
        )
        self._wait(master, deadline, "listen", lambda: _listens("127.0.0.1", self.port))
        for i in range(self.workers):
            host = f"127.0.0.{i + 1}"
            work = self.workdir / f"worker-{i + 1}"
            work.mkdir(exist_ok=True)
            self._spawn(
                f"worker-{i + 1}",
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    host,
                    "--cores",
                    str(self.cores),
                    "--memory",
                    self.memory,
                    "--webui-port",
                    "0",
                    "--work-dir",
                    str(work),
                    self.master_url,
                ],
                host,
            )
        self._wait(
            master, deadline, f"register {self.workers} workers", lambda: self.registered() >= self.workers
        )
        return self

    def registered(self) -> int:
        """Workers the master registered so far (from its log)."""
        return self.master_log().count("Registering worker ")

    def master_log(self) -> str:
        return self.daemons[0].log.read_text(errors="replace") if self.daemons else ""

    def _wait(self, daemon: Daemon, deadline: float, what: str, done: Callable[[], bool]) -> None:
        while not done():
            for d in self.daemons:
                if d.proc.poll() is not None:
                    raise ClusterStartError(
                        f"the Spark {d.name} exited ({d.proc.returncode}) before the {daemon.name} could"
                        f" {what}; its log ({d.log}) ends:\n{d.tail()}"
                    )
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {d.name} ({d.log}):\n{d.tail(12)}" for d in self.daemons)
                raise ClusterStartError(
                    f"the Spark {daemon.name} did not {what} in time; the logs end:\n{logs}"
                )
            time.sleep(0.3)

    def stop(self) -> None:
        """Workers (and their executors) first, then the master; by their process groups."""
        stop_groups([d.proc.pid for d in reversed(self.daemons)])
        for d in self.daemons:
            with suppress(subprocess.TimeoutExpired):
                d.proc.wait(timeout=10)


def _listens(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


# --- Spark's event log: what the scheduler did ----------------------------------------------------


@dataclass
class SchedulerFacts:
    """What Spark's event log says about the jobs of one tag: stage attempts, task ends by reason,
    speculative attempts, the executors lost and the lost tasks' stages."""

    jobs: int = 0
    stage_attempts: dict[int, int] = field(default_factory=dict)  # stage id -> attempts submitted
    task_ends: dict[str, int] = field(default_factory=dict)  # end reason -> tasks
    speculative: dict[str, int] = field(default_factory=dict)  # end reason -> speculative attempts
    lost_task_types: list[str] = field(default_factory=list)  # ResultTask / ShuffleMapTask, per lost task

    @property
    def retried_stages(self) -> int:
        return sum(1 for attempts in self.stage_attempts.values() if attempts > 1)

    @property
    def failed_tasks(self) -> int:
        return sum(n for reason, n in self.task_ends.items() if reason != "Success")

    def summary(self) -> dict[str, Any]:
        return {
            "jobs": self.jobs,
            "stage_attempts": {k: v for k, v in self.stage_attempts.items() if v > 1},
            "task_ends": self.task_ends,
            "speculative": self.speculative,
            "lost_tasks": self.lost_task_types,
        }


def read_event_logs(paths: Iterable[Path], tag: str) -> SchedulerFacts:
    """The :class:`SchedulerFacts` of the jobs one of whose ``spark.job.tags`` ends with ``tag`` (a
    classic job tag is the user's; Spark Connect's operation tags end with it)."""
    facts = SchedulerFacts()
    stages: set[int] = set()
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # the last line of a log still being written
                kind = event.get("Event")
                if kind == "SparkListenerJobStart":
                    tags = (event.get("Properties") or {}).get("spark.job.tags", "")
                    if re.search(re.escape(tag) + r"(,|$)", tags):
                        facts.jobs += 1
                        stages.update(int(s) for s in event.get("Stage IDs", []))
                elif kind == "SparkListenerStageSubmitted":
                    stage = event["Stage Info"]["Stage ID"]
                    if stage in stages:
                        facts.stage_attempts[stage] = facts.stage_attempts.get(stage, 0) + 1
                elif kind == "SparkListenerTaskEnd" and event.get("Stage ID") in stages:
                    reason = event["Task End Reason"]["Reason"]
                    facts.task_ends[reason] = facts.task_ends.get(reason, 0) + 1
                    if event["Task Info"].get("Speculative"):
                        facts.speculative[reason] = facts.speculative.get(reason, 0) + 1
                    if reason == "ExecutorLostFailure":
                        facts.lost_task_types.append(event.get("Task Type", ""))
    return facts


def executor_hosts(paths: Iterable[Path]) -> set[str]:
    """The hosts of every executor the application had (Spark's event log)."""
    hosts = set()
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                if '"SparkListenerExecutorAdded"' in line:
                    hosts.add(json.loads(line)["Executor Info"]["Host"])
    return hosts


def event_logs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.exists() else []


# --- one error, reported once ---------------------------------------------------------------------


class SharedSetUp:
    """A module's shared set-up (a cluster, the runs on it): the first test that needs it and finds it
    failed reports the error (without a traceback: the message names what did not start); every
    other test skips, pointing at that one, instead of repeating it."""

    def __init__(self) -> None:
        self.error: str | None = None
        self._reported = False

    def fail(self, error: BaseException) -> None:
        self.error = f"{type(error).__name__}: {error}"

    def require(self) -> None:
        if self.error is None:
            return
        if not self._reported:
            self._reported = True
            pytest.fail(f"the cluster set-up failed: {self.error}", pytrace=False)
        pytest.skip("the cluster set-up failed (reported by the first test of this module)")


def cluster_confs(events: Path, *, executors: int = 2, speculation: bool = True) -> dict[str, str]:
    """The settings of an application on the test cluster (a classic driver, the Connect server):
    ``executors`` one-core executors of 512 MiB (the master spreads them over the workers), the first
    job only once they are all up, Spark's event log in ``events`` (plain JSON lines), and with
    ``speculation`` a task running over 10 s and 1.5 times as long as the median of half its stage's
    tasks speculated."""
    conf = {
        "spark.executor.cores": "1",
        "spark.executor.memory": "512m",
        "spark.executor.extraJavaOptions": QUICK_JVM,
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.databricks.delta.snapshotPartitions": "2",
        "spark.locality.wait": "0s",  # no task waits for its preferred executor: both get work at once
        "spark.cores.max": str(executors),  # with the ratio: the first job waits for every executor
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": str(events),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
        "spark.python.authenticate.socketTimeout": "120s",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.pyspark.python": sys.executable,
    }
    if speculation:
        conf.update(
            {
                "spark.speculation": "true",
                "spark.speculation.multiplier": "1.5",
                "spark.speculation.quantile": "0.5",
                "spark.speculation.efficiency.enabled": "false",
                # never a task of a few seconds (a cold executor's first): speculating one of the map
                # tasks could leave every shuffle output on one executor, and a killed executor with
                # none would lose nothing
                "spark.speculation.minTaskRuntime": "10s",
            }
        )
    events.mkdir(parents=True, exist_ok=True)
    return conf
