"""The Spark write hooks in every runtime of the matrix, launched by the real orchestrator.

Dagster (the dev venv) materializes a ``multi_asset`` whose external process runs
``spark_scripts/runtime_writes_job.py`` in a runtime environment (``.ci/runtimes``: pyspark 3.5.0,
4.0.1, the newest; no dagster; this library from its wheel): classic Spark ``local[2]`` in the runtime
(the py4j listener), or a Spark Connect client of the runtime's pyspark talking to ONE standalone
Spark Connect server of the pinned pyspark (the writer instrumentation). Row counts are asserted
exactly; where the server sends none, none is reported and a debug log says why.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _helpers import RunResult, run_pipes
from _runtimes import RUNTIMES, RuntimeClient, SparkConnectServer, runtime_env, runtime_python

SCRIPT = Path(__file__).parent / "spark_scripts" / "runtime_writes_job.py"
#: (runtime, mechanism) pairs; the pinned classic listener is covered by test_spark_hooks.py.
RUNS = [
    ("spark35", "classic"),
    ("spark35", "connect"),
    ("pinned", "connect"),
    ("newest", "classic"),
    ("newest", "connect"),
]
ASSETS = [
    "orders",
    "events_parquet",
    "events_json",
    "appended",
    "v2_created",
    "ctas_table",
    "failed_target",
    "unobserved",
]
COLUMNS = [("id", "bigint"), ("name", "string"), ("amount", "double")]
SERVER_PYSPARK = "4.0.1"
#: five Dagster runs, two JVMs and a Connect server share two cores with the rest of the suite
pytestmark = pytest.mark.timeout(900)


@dataclass
class Run:
    runtime: str
    mechanism: str
    tmp: str
    database: str
    result: RunResult

    @property
    def metadata(self) -> dict[str, dict[str, Any]]:
        return {
            key: {k: _value(v) for k, v in mat.metadata.items()}
            for key, mat in self.result.materializations.items()
        }

    def logs(self, level: int | None = None) -> list[str]:
        name = logging.getLevelName(level) if level is not None else None
        return [text for lvl, text in self.result.logs if name is None or lvl == name]


def _value(entry: Any) -> Any:
    if hasattr(entry, "schema") and hasattr(entry.schema, "columns"):  # TableSchemaMetadataValue
        return [(c.name, c.type) for c in entry.schema.columns]
    return getattr(entry, "value", entry)


def _run(runtime: str, mechanism: str, remote: str | None, workdir: Path) -> Run:
    python = runtime_python(runtime)
    tmp = str(workdir)
    database = f"rt_{runtime}_{mechanism}"
    extras = {"mechanism": mechanism, "tmp": tmp, "database": database, "remote": remote}
    result = run_pipes(
        [python, str(SCRIPT)],
        assets=ASSETS,
        extras=extras,
        client_factory=lambda: RuntimeClient(env=runtime_env(python)),
    )
    gc.collect()  # Dagster's ephemeral instance holds SQLite connections of this thread: close them here
    return Run(runtime, mechanism, tmp, database, result)


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkConnectServer]:
    """One standalone Spark Connect server (pinned pyspark) for every Connect client of the matrix."""
    server = SparkConnectServer(tmp_path_factory.mktemp("spark-connect-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def runs(connect_server: SparkConnectServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Every run of the matrix; the classic ones start while the Connect server is starting."""

    def submit(runtime: str, mechanism: str, url: str | None) -> Future[Run]:
        return pool.submit(_run, runtime, mechanism, url, tmp_path_factory.mktemp(f"{runtime}-{mechanism}"))

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {f"{r}-{m}": submit(r, m, None) for r, m in RUNS if m == "classic"}
        url = connect_server.url()
        futures |= {f"{r}-{m}": submit(r, m, url) for r, m in RUNS if m == "connect"}
        return {key: future.result() for key, future in futures.items()}


@pytest.fixture(params=[f"{r}-{m}" for r, m in RUNS])
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    outcome = runs[request.param]
    if not outcome.result.success:
        print(outcome.result.failure, "\n".join(outcome.logs()[-40:]))
    return outcome


def test_runs_in_its_runtime(run: Run) -> None:
    """The external side ran the runtime's pyspark (Connect: against the pinned server) and this
    library from the runtime's installed wheel, not from the source tree."""
    assert run.result.success
    [line] = [text for text in run.logs() if text.startswith("runtime: ")]
    fields = dict(item.split("=", 1) for item in line.split()[1:])
    assert fields["pyspark"] == RUNTIMES[run.runtime].pyspark
    expected_server = SERVER_PYSPARK if run.mechanism == "connect" else RUNTIMES[run.runtime].pyspark
    assert fields["server"] == expected_server
    assert fields["library"].startswith(os.path.dirname(os.path.dirname(runtime_python(run.runtime))))
    summary = next(text for text in run.logs() if text.startswith("hooks: "))
    assert f"mechanism={run.mechanism}" in summary and "failed=1" in summary


def test_table_writes(run: Run) -> None:
    orders, appended, v2 = run.metadata["orders"], run.metadata["appended"], run.metadata["v2_created"]
    assert orders["dagster/row_count"] == 10
    assert orders["dagster/table_name"] == f"spark_catalog.{run.database}.orders"
    assert orders["dagster/column_schema"] == COLUMNS
    assert orders["spark/operation"] == "CREATE TABLE AS SELECT"
    assert orders["spark/format"] == "parquet"
    assert appended["dagster/row_count"] == 3  # insertInto
    assert appended["dagster/table_name"] == f"spark_catalog.{run.database}.appended"
    assert appended["spark/operation"] == "INSERT"
    assert v2["dagster/row_count"] == 10  # DataFrameWriterV2.create
    assert v2["spark/operation"] == "CREATE TABLE AS SELECT"


@pytest.mark.parametrize(
    ("key", "fmt", "rows"), [("events_parquet", "parquet", 5), ("events_json", "json", 4)]
)
def test_path_writes(run: Run, key: str, fmt: str, rows: int) -> None:
    md = run.metadata[key]
    assert md["dagster/row_count"] == rows
    assert md["dagster/uri"] == os.path.join(run.tmp, "out", key)
    assert md["dagster/column_schema"] == COLUMNS
    assert md["spark/operation"] == "WRITE" and md["spark/format"] == fmt


def test_sql_write(run: Run) -> None:
    ctas = run.metadata["ctas_table"]
    assert ctas["dagster/table_name"] == f"spark_catalog.{run.database}.ctas_table"
    assert ctas["dagster/column_schema"] == COLUMNS[:2]
    if run.mechanism == "classic":
        assert ctas["dagster/row_count"] == 4
    else:  # Connect, not Delta: SQL row counts only come from Delta history
        assert "dagster/row_count" not in ctas


def test_failed_write_is_logged_not_reported(run: Run) -> None:
    assert "spark/num_writes" not in run.metadata["failed_target"]
    warnings = [text for text in run.logs(logging.WARNING) if "failed; not reported" in text]
    assert len(warnings) == 1 and "already_there" in warnings[0]


def test_no_observed_metrics_means_no_row_count(run: Run) -> None:
    """A server that sends no observed metrics (before Spark 4) gives no number, and says why at debug."""
    if run.mechanism == "classic":
        assert run.metadata["unobserved"] == {}  # not written: only Dagster's implicit materialization
        return
    md = run.metadata["unobserved"]
    assert md["spark/num_writes"] == 1 and "dagster/row_count" not in md
    why = [text for text in run.logs(logging.DEBUG) if "no row count for save to" in text]
    assert len(why) == 1 and "unobserved" in why[0] and "sent no value" in why[0]
