"""The Spark hooks on a real cluster: a standalone master and two workers (``_cluster.py``), where
executors are separate JVMs that can die, tasks are retried, stages re-run and tasks speculated.

Two Spark applications of ``spark_scripts/cluster_job.py`` (see its docstring for the scenarios) run
side by side through real Dagster, each with one one-core executor on each worker (the workers have two
cores: one per application) and ``spark.speculation=true``: ``classic`` (the job process is the
driver, ``master=spark://...``) and ``connect`` (a client of a Spark Connect server whose master is the
cluster). In each, an executor is SIGKILLed in the write stage (after a shuffle) of a Parquet write, a
Delta write and a streamed micro-batch, and in the scan of the checks; one write task straggles until
a speculative copy finishes it; two ``availableNow`` queries run.

Every figure the hooks report is compared with the data's own (1000 rows, known failing rows) and with
the tables read back; Spark's event log says what the scheduler did (executors lost, task ends, stage
attempts, speculative attempts), so a test also fails when the fault it is about never happened.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _cluster import (
    QUICK_JVM,
    SchedulerFacts,
    SharedSetUp,
    StandaloneCluster,
    cluster_confs,
    event_logs,
    executor_hosts,
    java_or_skip,
    load_scaled,
    processes_under,
    read_event_logs,
)
from _helpers import TESTS, RunResult, run_pipes
from _runtimes import SparkConnectServer
from test_delta_hooks import table_format_jars

from dagster_pipes_spark.testing.pytest_plugin import descendant_pids

JOB = TESTS / "spark_scripts" / "cluster_job.py"
ROWS = 1000
FORMATS = ["parquet", "delta"]
WRITES = [f"cl_{kind}_{fmt}" for kind in ("killed", "spec") for fmt in FORMATS]
STREAMS = {"cl_stream": 100, "cl_stream_filtered": 52}  # 4 files of v = 0-24: 13 even values each
STREAM_KILLED = "cl_stream_killed"
SCENARIOS = [
    *(f"{k}_{f}" for k in ("killed", "straggler") for f in FORMATS),
    "stream",
    "stream_killed",
    "checks",
]
MECHANISMS = ["classic", "connect"]
#: the checks of cl_killed_parquet and the rows each fails, from the data's definition (ids 0-999):
#: v = id - 100 < 0 for ids 0-99; name NULL for multiples of 7; k = id % 700 repeats for ids 700-999;
#: k > 599 for ids 600-699
CHECKS = {"v_non_negative": 100, "name_not_null": 143, "k_unique": 300, "k_in_range": 100}
#: the first test sets the cluster up and runs both jobs (each ended by its watchdog at 300 s times the
#: machine's overload, at most 900 s): 1200 s bounds it even then
pytestmark = pytest.mark.timeout(1200)

SETUP = SharedSetUp()


@dataclass
class Run:
    name: str
    tmp: Path
    events: Path
    result: RunResult
    seconds: float

    @property
    def message(self) -> dict[str, Any]:
        return self.result.custom_messages[-1]

    def meta(self, key: str) -> dict[str, Any]:
        assert key in self.result.materializations, sorted(self.result.materializations)
        return {k: getattr(v, "value", v) for k, v in self.result.materializations[key].metadata.items()}

    def facts(self, scenario: str) -> SchedulerFacts:
        return read_event_logs(event_logs(self.events), f"cluster-scenario-{scenario}")


@dataclass
class Runs:
    runs: dict[str, Run] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _run(name: str, root: Path, extras: dict[str, Any], events: Path) -> Run:
    tmp = root / name
    tmp.mkdir()
    started = time.monotonic()
    result = run_pipes(
        JOB,
        assets=[*WRITES, *STREAMS, STREAM_KILLED],
        check_specs=[("cl_killed_parquet", check) for check in CHECKS],
        extras={"tmp": str(tmp), "watchdog": int(load_scaled(300, cap=3)), **extras},
        env={"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"},
    )
    if not result.success:
        stacks = tmp / "stacks.txt"
        logs = "\n".join(m for _, m in result.logs[-20:])
        raise RuntimeError(
            f"the {name} run failed: {result.failure}\n{logs}\n{stacks.read_text() if stacks.exists() else ''}"
        )
    return Run(name, tmp, events, result, time.monotonic() - started)


@pytest.fixture(scope="module")
def cluster_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Both runs on one cluster, side by side; then everything is stopped, and what still runs kept,
    before any test looks at the figures. A failure is kept for :data:`SETUP` to report once."""
    java_or_skip()
    jars = [j for j in table_format_jars("spark40") if not os.path.basename(j).startswith("iceberg")]
    root = tmp_path_factory.mktemp("cluster")
    out = Runs()
    started = time.monotonic()
    # two applications of two one-core executors each, one executor per worker
    cluster = StandaloneCluster(root / "spark", workers=2, cores=2, memory="1g")
    server: SparkConnectServer | None = None
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        cluster.start(timeout=load_scaled(90))
        server = SparkConnectServer(
            root / "connect-server",
            timeout=load_scaled(240),
            master=cluster.master_url,
            conf=cluster_confs(root / "events-connect"),
            env={"PYSPARK_PYTHON": sys.executable},
            iceberg=False,
            java_options=QUICK_JVM,
        )
        (root / "connect-server").mkdir()
        server.start()
        conf = cluster_confs(root / "events-classic")
        classic = pool.submit(
            _run,
            "classic",
            root,
            {"master": cluster.master_url, "jars": ",".join(jars), "conf": conf},
            root / "events-classic",
        )
        connect = pool.submit(_run, "connect", root, {"remote": server.url()}, root / "events-connect")
        out.runs = {"classic": classic.result(), "connect": connect.result()}
    except Exception as exc:  # noqa: BLE001 - reported once, by the first test
        SETUP.fail(exc)
        end_jobs()  # a run still waiting on the cluster ends now, not at its watchdog
    finally:
        if server is not None:
            server.stop()
        cluster.stop()
        pool.shutdown(wait=True)
        out.seconds = time.monotonic() - started
        deadline = time.monotonic() + 10
        while True:
            out.leftovers = processes_under(root)
            if not out.leftovers or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    yield out


def end_jobs() -> None:
    """SIGKILL this process's job processes of :data:`JOB` (their driver JVMs end with them)."""
    for pid in descendant_pids():
        with suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as f:
            if str(JOB).encode() in f.read():
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runs(cluster_runs: Runs) -> dict[str, Run]:
    SETUP.require()
    return cluster_runs.runs


WRITE_CASES = [(mechanism, table) for mechanism in MECHANISMS for table in WRITES]


@pytest.mark.parametrize(("run_name", "table"), WRITE_CASES)
def test_the_row_count_of_a_write_is_the_table_read_back(
    runs: dict[str, Run], run_name: str, table: str
) -> None:
    run = runs[run_name]
    meta = run.meta(table)
    rows, ids = run.message["tables"][table]
    assert meta["dagster/row_count"] == ROWS == rows == ids, meta
    assert meta["dagster/storage_kind"] == table.rsplit("_", 1)[1]


@pytest.mark.parametrize("run_name", MECHANISMS)
def test_every_application_ran_executors_on_both_workers(runs: dict[str, Run], run_name: str) -> None:
    assert executor_hosts(event_logs(runs[run_name].events)) == {"127.0.0.1", "127.0.0.2"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("run_name", MECHANISMS)
def test_an_executor_killed_in_the_write_stage_counts_no_row_twice(
    runs: dict[str, Run], run_name: str, fmt: str
) -> None:
    """The write stage loses a task with its executor, and the executor's shuffle output with it:
    the task is retried and the lost map outputs recomputed (a fetch failure, a stage attempt more),
    and every row is still counted once."""
    run = runs[run_name]
    facts = run.facts(f"killed_{fmt}")
    assert facts.lost_task_types[:1] == ["ResultTask"], facts.summary()  # killed while writing
    assert facts.retried_stages >= 1, facts.summary()  # lost shuffle output recomputed
    meta = run.meta(f"cl_killed_{fmt}")
    assert meta["dagster/row_count"] == ROWS == run.message["tables"][f"cl_killed_{fmt}"][0], facts.summary()


@pytest.mark.parametrize("run_name", MECHANISMS)
def test_checks_count_failing_rows_exactly_while_an_executor_dies(
    runs: dict[str, Run], run_name: str
) -> None:
    run = runs[run_name]
    facts = run.facts("checks")
    assert facts.task_ends.get("ExecutorLostFailure", 0) >= 1, facts.summary()
    counted = run.message["check_counts"]
    assert counted["total"] == ROWS
    results = {evaluation.check_name: evaluation for evaluation in run.result.checks}
    assert sorted(results) == sorted(CHECKS)
    for name, failing in CHECKS.items():
        meta = {k: getattr(v, "value", v) for k, v in results[name].metadata.items()}
        assert (meta["failed_rows"], meta["total_rows"]) == (failing, ROWS) == (counted[name], ROWS), name
        assert results[name].passed is False


@pytest.mark.parametrize("run_name", MECHANISMS)
def test_available_now_queries_report_every_row_and_batch(runs: dict[str, Run], run_name: str) -> None:
    run = runs[run_name]
    for asset, rows in STREAMS.items():
        meta = run.meta(asset)
        assert (
            meta["dagster/row_count"]
            == rows
            == run.message["tables"][asset][0]
            == run.message["tables"][asset][1]
        )
        assert meta["spark/streaming_batches"] == 4, asset


@pytest.mark.parametrize("run_name", MECHANISMS)
def test_a_streamed_batch_that_loses_an_executor_after_a_shuffle_counts_no_row_twice(
    runs: dict[str, Run], run_name: str
) -> None:
    """One micro-batch (4 files: 4 map tasks) hashed into 4 partitions, whose write stage loses an
    executor and the shuffle output it held: the map tasks re-run read their rows again, and the rows
    written are still counted once."""
    run = runs[run_name]
    facts = run.facts("stream_killed")
    assert facts.lost_task_types[:1] == ["ResultTask"], facts.summary()
    assert facts.retried_stages >= 1, facts.summary()
    meta = run.meta("cl_stream_killed")
    assert meta["spark/streaming_batches"] == 1
    assert meta["dagster/row_count"] == 100 == run.message["tables"]["cl_stream_killed"][0], facts.summary()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("run_name", MECHANISMS)
def test_a_speculated_write_counts_no_row_twice(runs: dict[str, Run], run_name: str, fmt: str) -> None:
    """The first attempt of one write task straggles: a speculative copy runs on the other worker,
    one of the two attempts is killed, and every row is counted once."""
    run = runs[run_name]
    facts = run.facts(f"straggler_{fmt}")
    assert sum(facts.speculative.values()) >= 1, facts.summary()
    assert facts.task_ends.get("TaskKilled", 0) >= 1, facts.summary()
    meta = run.meta(f"cl_spec_{fmt}")
    assert meta["dagster/row_count"] == ROWS == run.message["tables"][f"cl_spec_{fmt}"][0], facts.summary()


def test_figures(runs: dict[str, Run], cluster_runs: Runs) -> None:
    """Not an assertion: what the scheduler did in each scenario, printed for the record (``-s``)."""
    for name, run in runs.items():
        print(f"{name}: {run.seconds:.0f} s")
        for scenario in SCENARIOS:
            facts = run.facts(scenario)
            if facts.jobs:
                print(f"  {scenario}: {facts.summary()}")
        for asset in (*STREAMS, STREAM_KILLED):
            meta = run.meta(asset)
            print(
                f"  {asset}: rows {meta['dagster/row_count']}, read {meta.get('spark/streaming_input_rows')}"
            )
    print(f"all: {cluster_runs.seconds:.0f} s; load {open('/proc/loadavg').read().strip()}")


def test_nothing_is_left_running(cluster_runs: Runs) -> None:
    """After the runs every master, worker, executor, Python worker and the Connect server has ended
    (whatever ran with its working directory or command line under the cluster's directory)."""
    assert cluster_runs.leftovers == []
