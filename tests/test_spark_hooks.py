"""``report_spark_writes`` end to end: a Dagster ``multi_asset`` launches an external PySpark job
through ``PipesSubprocessClient``; the job writes in many ways with the hooks open, and we assert what
Dagster recorded. One run per mechanism (classic listener / Spark Connect instrumentation)."""

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

dagster = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from dagster import (  # noqa: E402
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    DagsterInstance,
    PipesSubprocessClient,
    materialize,
    multi_asset,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "spark_scripts" / "spark_writes_job.py"
ASSETS = [
    "orders",
    "events_parquet",
    "events_json",
    "events_csv",
    "customers",
    "ctas_table",
    "sql_insert",
    "v2_created",
    "v2_jdbc",
    "failed_target",
    "manual",
]
ORDERS_COLUMNS = [
    {"name": "id", "type": "bigint"},
    {"name": "name", "type": "string"},
    {"name": "amount", "type": "double"},
]


@dataclass
class Run:
    mechanism: str
    tmp: str
    metadata: dict[str, dict[str, Any]]
    data_versions: dict[str, str | None]
    logs: list[tuple[str | int, str]]
    success: bool


def _value(entry: Any) -> Any:
    """The plain value of a recorded MetadataValue."""
    if hasattr(entry, "schema") and hasattr(entry.schema, "columns"):  # TableSchemaMetadataValue
        return [{"name": c.name, "type": c.type} for c in entry.schema.columns]
    return getattr(entry, "value", entry)


def _run(mechanism: str) -> Run:
    tmp = tempfile.mkdtemp(prefix=f"pipes-spark-hooks-{mechanism}-")

    @multi_asset(specs=[AssetSpec(key) for key in ASSETS], name=f"spark_job_{mechanism}")
    def spark_job(context: AssetExecutionContext):  # no return annotation: dagster reads it
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        return (
            PipesSubprocessClient(env=env, cwd=tmp)
            .run(
                command=[sys.executable, str(SCRIPT)],
                context=context,
                extras={"mechanism": mechanism, "tmp": tmp},
            )
            .get_results()
        )

    instance = DagsterInstance.ephemeral()
    result = materialize([spark_job], instance=instance, raise_on_error=False)
    metadata: dict[str, dict[str, Any]] = {}
    data_versions: dict[str, str | None] = {}
    for event in result.asset_materializations_for_node(f"spark_job_{mechanism}"):
        key = event.asset_key.to_user_string()
        metadata[key] = {k: _value(v) for k, v in event.metadata.items()}
        data_versions[key] = event.tags.get("dagster/data_version") if event.tags else None
    logs = [
        (entry.level, entry.user_message) for entry in instance.all_logs(result.run_id) if entry.user_message
    ]
    return Run(mechanism, tmp, metadata, data_versions, logs, result.success)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """Both Dagster runs, started together: most of a run is Spark start-up and waiting."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {mechanism: pool.submit(_run, mechanism) for mechanism in ("classic", "connect")}
        return {mechanism: future.result() for mechanism, future in futures.items()}


@pytest.fixture(params=["classic", "connect"])
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Iterator[Run]:
    outcome = runs[request.param]
    if not outcome.success:
        print("\n".join(text for _, text in outcome.logs[-60:]))
    yield outcome


def test_run_succeeds_and_every_asset_is_materialized_once(run: Run) -> None:
    assert run.success
    assert sorted(run.metadata) == sorted(ASSETS)
    assert any("pipes library:" in text for _, text in run.logs)


def test_save_as_table_default_mapping(run: Run) -> None:
    md = run.metadata["orders"]
    assert md["dagster/row_count"] == 10
    assert md["dagster/table_name"] == "spark_catalog.default.orders"
    assert md["dagster/column_schema"] == ORDERS_COLUMNS
    assert md["spark/num_writes"] == 1
    assert md["spark/operation"] == "CREATE TABLE AS SELECT"
    assert md["spark/format"] == "parquet"
    assert md["spark/application_id"].startswith("local-")


@pytest.mark.parametrize(
    ("key", "fmt"), [("events_parquet", "parquet"), ("events_json", "json"), ("events_csv", "csv")]
)
def test_path_writes(run: Run, key: str, fmt: str) -> None:
    md = run.metadata[key]
    assert md["dagster/row_count"] == 5
    assert md["dagster/uri"] == os.path.join(run.tmp, "out", key)
    assert md["dagster/column_schema"] == ORDERS_COLUMNS
    assert md["spark/operation"] == "WRITE"
    assert md["spark/format"] == fmt
    if run.mechanism == "classic":  # the listener sees the file-writer's statistics
        assert md["spark/files_written"] >= 1 and md["spark/bytes_written"] > 0


def test_two_writes_to_one_asset_are_aggregated(run: Run) -> None:
    md = run.metadata["customers"]
    assert md["dagster/row_count"] == 13
    assert md["spark/num_writes"] == 2
    assert md["spark/operation"] == "CREATE TABLE AS SELECT, INSERT"
    assert md["spark/write_mode"] == "errorifexists, append"
    assert [w["rows"] for w in md["spark/writes"]] == [10, 3]


def test_sql_ctas_and_insert(run: Run) -> None:
    ctas, insert = run.metadata["ctas_table"], run.metadata["sql_insert"]
    assert ctas["dagster/table_name"] == "spark_catalog.default.ctas_table"
    assert ctas["spark/operation"] == "CREATE TABLE AS SELECT"
    assert ctas["dagster/column_schema"] == ORDERS_COLUMNS[:2]
    assert insert["dagster/table_name"] == "spark_catalog.default.sql_insert_target"
    assert insert["spark/operation"] == "INSERT"
    if run.mechanism == "classic":
        assert ctas["dagster/row_count"] == 4 and insert["dagster/row_count"] == 3
    else:  # Connect, not Delta: SQL row counts only come from Delta history
        assert "dagster/row_count" not in ctas and "dagster/row_count" not in insert


def test_dataframe_writer_v2(run: Run) -> None:
    created = run.metadata["v2_created"]
    assert created["dagster/row_count"] == 10
    assert created["dagster/table_name"] == "spark_catalog.default.v2_created"
    assert created["spark/operation"] == "CREATE TABLE AS SELECT"
    jdbc = run.metadata["v2_jdbc"]
    assert jdbc["dagster/table_name"] == "jdbc.APP.V2_JDBC"
    assert jdbc["spark/num_writes"] == 2
    assert jdbc["spark/operation"] == "CREATE TABLE AS SELECT, INSERT"
    assert jdbc["dagster/column_schema"] == ORDERS_COLUMNS
    if run.mechanism == "connect":  # observed on the written plan
        assert jdbc["dagster/row_count"] == 20
    else:  # V1-fallback V2 writes publish no write metrics to the listener
        assert "dagster/row_count" not in jdbc


def test_failed_write_is_logged_not_reported(run: Run) -> None:
    assert "dagster/row_count" not in run.metadata["failed_target"]  # only the implicit materialization
    assert "spark/num_writes" not in run.metadata["failed_target"]
    warnings = [
        text for level, text in run.logs if level == logging.WARNING and "failed; not reported" in text
    ]
    assert len(warnings) == 1 and "already_there" in warnings[0] and "already exists" in warnings[0]
    assert run.metadata["events_parquet"]["spark/num_writes"] == 1


def test_unmapped_target_is_logged_at_debug(run: Run) -> None:
    debug = [text for level, text in run.logs if level == logging.DEBUG and "scratch_tmp" in text]
    assert debug and "not in scope" not in debug[0] and "no asset key maps to it" in debug[0]
    assert not any("scratch_tmp" in str(md.get("dagster/table_name")) for md in run.metadata.values())


def test_asset_reported_by_the_job_is_left_alone(run: Run) -> None:
    assert run.metadata["manual"] == {"by": "user"}
    assert any("asset manual was already reported" in text for _, text in run.logs)


def test_hooks_summary_and_pipes_library(run: Run) -> None:
    summary = next(text for _, text in run.logs if text.startswith("hooks: "))
    assert f"mechanism={run.mechanism}" in summary and "failed=1" in summary
    assert AssetKey("orders").to_user_string() in summary
    import dagster_pipes_spark

    expected = (
        "dagster_pipes_spark" if hasattr(dagster_pipes_spark, "open_dagster_pipes") else "dagster_pipes"
    )
    assert f"pipes library: {expected}" in [text for _, text in run.logs]


def test_hook_errors_are_logged_and_hooks_removed(run: Run) -> None:
    errors = [text for level, text in run.logs if "error inside a write hook" in text]
    assert len(errors) == 1 and "injected hook failure" in errors[0]  # only the injected one
    assert [level for level, text in run.logs if "error inside a write hook" in text] == [logging.WARNING]
    cleanup = next(text for _, text in run.logs if text.startswith("cleanup: "))
    fields = dict(item.split("=") for item in cleanup.split()[1:])
    assert fields["robust_rows"] == "5"  # the write went through despite the failing hook
    assert (fields["before"], fields["inside"], fields["after"]) == ("0", "1", "0")  # removed, also
    # after the block raised, and the main block's hooks were gone before
