"""The Spark write hooks on real Delta Lake (and Iceberg), end to end.

Real Dagster materializes a partitioned (daily) ``multi_asset`` whose external process
(``spark_scripts/delta_writes_job.py``) starts ONE Spark session with the pinned Delta and Iceberg jars
(``.ci/jars``, fetched and verified by ``dagster_pipes_spark.testing.table_formats``) and performs every
kind of Delta write inside one ``report_spark_writes`` block, then sends back each table's own
``DESCRIBE HISTORY``. Every figure the hooks reported is compared with the commit Delta recorded.

Runs: classic and Spark Connect (``remote``-style local server) of the dev venv's pyspark 4.0.1.
Without the jars (no network, nothing cached) the tests are skipped naming them; with ``CI=true`` a
missing jar fails the suite.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

dg = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import RunResult, run_pipes  # noqa: E402

from dagster_pipes_spark.testing.table_formats import (  # noqa: E402
    MissingJarsError,
    fetch_jars,
    jars_env_var,
)

TESTS = Path(__file__).parent
SCRIPT = TESTS / "spark_scripts" / "delta_writes_job.py"
DELTA_TABLES = [
    "d_saved",
    "d_insert_into",
    "d_ctas",
    "d_rtas",
    "d_sql_insert",
    "d_sql_overwrite",
    "d_merge",
    "d_update",
    "d_delete",
    "d_replace_where",
    "d_replace_where_sql",
    "d_dynamic",
    "d_path",
    "d_maint",
]
API_TABLES = ["d_api_merge", "d_api_update", "d_api_delete"]
ICEBERG_TABLES = ["ice_events"]
COLUMNS = [("id", "bigint"), ("name", "string"), ("amount", "double")]
PARTITION = "2024-01-02"
CHECKS = [("d_checked", "ids_positive"), ("d_checked", "name_not_null")]
pytestmark = pytest.mark.timeout(900)  # one Spark run per mechanism, on a loaded machine


def table_format_jars(name: str) -> list[str]:
    """The pinned jars of list ``name`` (``.ci/dev`` exports them; else fetched here, cached).
    Unavailable: a skip naming them, or under ``CI=true`` a failure."""
    exported = os.environ.get(jars_env_var(name))
    if exported:
        return exported.split(",")
    try:
        return [str(p) for p in fetch_jars(name)]
    except MissingJarsError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must have the table-format jars: {exc}")
        pytest.skip(f"{exc} (Delta / Iceberg tests need them: fetched once from Maven Central)")


@dataclass
class Run:
    mechanism: str
    tmp: str
    result: RunResult
    database: str = "default"

    @property
    def metadata(self) -> dict[str, dict[str, Any]]:
        return {
            key: {k: _value(v) for k, v in mat.metadata.items()}
            for key, mat in self.result.materializations.items()
        }

    def data_version(self, key: str) -> str | None:
        tags = self.result.materializations[key].tags or {}
        return tags.get("dagster/data_version")

    @property
    def histories(self) -> dict[str, list[dict[str, Any]]]:
        return self.result.custom_messages[-1]["histories"]

    @property
    def snapshots(self) -> list[dict[str, Any]]:
        return self.result.custom_messages[-1]["iceberg"]

    def commits(self, table: str, *operations: str) -> list[dict[str, Any]]:
        """The table's commits (oldest first) of the given Delta operations."""
        return [c for c in self.histories[table] if c["operation"] in operations]

    def logs(self, level: str | None = None) -> list[str]:
        return [text for lvl, text in self.result.logs if level is None or lvl == level]

    def stacks(self) -> str:
        """Every thread's stack if the job's watchdog ended a hang (empty otherwise)."""
        path = os.path.join(self.tmp, "stacks.txt")
        return open(path).read() if os.path.exists(path) else ""


def _value(entry: Any) -> Any:
    if hasattr(entry, "schema") and hasattr(entry.schema, "columns"):  # TableSchemaMetadataValue
        return [(c.name, c.type) for c in entry.schema.columns]
    if hasattr(entry, "lineage") and hasattr(entry.lineage, "deps_by_column"):  # column lineage
        return {
            column: sorted((dep.asset_key.to_user_string(), dep.column_name) for dep in deps)
            for column, deps in entry.lineage.deps_by_column.items()
        }
    return getattr(entry, "value", entry)


def _run(mechanism: str, jars: list[str], assets: list[str]) -> Run:
    tmp = tempfile.mkdtemp(prefix=f"pipes-delta-{mechanism}-")
    extras = {"mechanism": mechanism, "tmp": tmp, "jars": ",".join(jars), "iceberg": True}
    result = run_pipes(
        SCRIPT,
        assets=[*assets, "d_checked", "d_skewed"],
        check_specs=CHECKS,
        extras=extras,
        partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
        partition_key=PARTITION,
    )
    return Run(mechanism, tmp, result)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """The classic and the Connect run, started together (most of a run is Spark start-up)."""
    jars = table_format_jars("spark40")
    assets = {
        "classic": DELTA_TABLES + API_TABLES + ICEBERG_TABLES,
        "connect": DELTA_TABLES + ICEBERG_TABLES,
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {m: pool.submit(_run, m, jars, assets[m]) for m in ("classic", "connect")}
        return {m: f.result() for m, f in futures.items()}


@pytest.fixture(params=["classic", "connect"])
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Iterator[Run]:
    outcome = runs[request.param]
    if not outcome.result.success:
        print(outcome.result.failure, "\n".join(outcome.logs()[-60:]), outcome.stacks())
    yield outcome


def test_run_succeeds(run: Run) -> None:
    assert run.result.success, run.result.failure
    summary = next(text for text in run.logs() if text.startswith("hooks: "))
    assert f"mechanism={run.mechanism}" in summary and "failed=0" in summary


def _last(run: Run, table: str, *operations: str) -> dict[str, Any]:
    return run.commits(table, *operations)[-1]


def _assert_commit(run: Run, key: str, commit: dict[str, Any]) -> None:
    md = run.metadata[key]
    assert md["delta/version"] == commit["version"], (key, md.get("spark/writes"))
    assert run.data_version(key) == str(commit["version"])
    assert md["dagster/storage_kind"] == "delta"


def test_save_as_table_overwrite_then_append(run: Run) -> None:
    md = run.metadata["d_saved"]
    first, second = run.commits("d_saved", "CREATE OR REPLACE TABLE AS SELECT", "WRITE")
    # Delta's own name for the first write (a new table), whatever the client called it
    assert md["spark/operation"] == "CREATE OR REPLACE TABLE AS SELECT, INSERT"
    assert (
        md["dagster/row_count"]
        == 13
        == int(first["metrics"]["numOutputRows"]) + int(second["metrics"]["numOutputRows"])
    )
    assert [w["rows"] for w in md["spark/writes"]] == [10, 3]
    _assert_commit(run, "d_saved", second)
    assert md["dagster/table_name"] == f"spark_catalog.{run.database}.d_saved"
    assert md["dagster/column_schema"] == COLUMNS


def test_insert_into(run: Run) -> None:
    md = run.metadata["d_insert_into"]
    commit = _last(run, "d_insert_into", "WRITE")
    assert md["dagster/row_count"] == 4 == int(commit["metrics"]["numOutputRows"])
    assert md["spark/operation"] == "INSERT"
    _assert_commit(run, "d_insert_into", commit)
    assert md["dagster/column_schema"] == COLUMNS


@pytest.mark.parametrize(
    ("key", "operation", "rows", "columns"),
    [
        ("d_ctas", "CREATE TABLE AS SELECT", 5, COLUMNS[:2]),
        ("d_rtas", "REPLACE TABLE AS SELECT", 6, COLUMNS),
    ],
)
def test_ctas_and_rtas(run: Run, key: str, operation: str, rows: int, columns: Any) -> None:
    md = run.metadata[key]
    commit = _last(run, key, operation)
    assert md["dagster/row_count"] == rows == int(commit["metrics"]["numOutputRows"])
    _assert_commit(run, key, commit)
    assert md["dagster/column_schema"] == columns
    assert md["dagster/column_lineage"] == {name: [("d_merge", name)] for name, _ in columns}


@pytest.mark.parametrize(
    ("key", "rows", "operation"), [("d_sql_insert", 3, "INSERT"), ("d_sql_overwrite", 2, "INSERT OVERWRITE")]
)
def test_sql_insert_and_insert_overwrite(run: Run, key: str, rows: int, operation: str) -> None:
    md = run.metadata[key]
    commit = _last(run, key, "WRITE")
    assert md["dagster/row_count"] == rows == int(commit["metrics"]["numOutputRows"])
    assert md["spark/operation"] == operation
    _assert_commit(run, key, commit)
    assert md["dagster/column_lineage"] == {name: [("d_merge", name)] for name, _ in COLUMNS}


def test_merge(run: Run) -> None:
    md = run.metadata["d_merge"]
    commit = _last(run, "d_merge", "MERGE")
    metrics = {k: int(v) for k, v in commit["metrics"].items()}
    assert (md["spark/rows_inserted"], md["spark/rows_updated"], md["spark/rows_deleted"]) == (5, 3, 2)
    assert (
        metrics["numTargetRowsInserted"],
        metrics["numTargetRowsUpdated"],
        metrics["numTargetRowsDeleted"],
    ) == (5, 3, 2)
    assert md["dagster/row_count"] == 10
    _assert_commit(run, "d_merge", commit)
    assert md["dagster/column_schema"] == COLUMNS
    # the source's columns flow into the target's (the target's own, kept by the UPDATE, add none):
    # classic reads Delta's MergeIntoCommand, Connect explains the statement and its source
    assert md["dagster/column_lineage"] == {name: [("d_merge_src", name)] for name, _ in COLUMNS}


def test_update_and_delete(run: Run) -> None:
    update, delete = run.metadata["d_update"], run.metadata["d_delete"]
    assert update["dagster/row_count"] == 3 == update["spark/rows_updated"]
    assert int(_last(run, "d_update", "UPDATE")["metrics"]["numUpdatedRows"]) == 3
    _assert_commit(run, "d_update", _last(run, "d_update", "UPDATE"))
    assert delete["dagster/row_count"] == 3 == delete["spark/rows_deleted"]
    assert int(_last(run, "d_delete", "DELETE")["metrics"]["numDeletedRows"]) == 3
    _assert_commit(run, "d_delete", _last(run, "d_delete", "DELETE"))


def test_replace_where_replaces_only_the_partition(run: Run) -> None:
    md = run.metadata["d_replace_where"]
    commit = _last(run, "d_replace_where", "WRITE")
    assert md["dagster/row_count"] == 6 == int(commit["metrics"]["numOutputRows"])
    assert int(commit["metrics"]["numDeletedRows"]) == 4  # only the 4 rows of 2024-01-02 went
    assert md["dagster/partition_row_count"] == 6
    assert md["spark/operation"] == "INSERT OVERWRITE"
    _assert_commit(run, "d_replace_where", commit)


def test_sql_replace_where(run: Run) -> None:
    md = run.metadata["d_replace_where_sql"]
    commit = _last(run, "d_replace_where_sql", "WRITE")
    assert md["dagster/row_count"] == 6 == int(commit["metrics"]["numOutputRows"])
    assert int(commit["metrics"]["numDeletedRows"]) == 4
    assert md["dagster/partition_row_count"] == 6
    assert md["spark/operation"] == "INSERT OVERWRITE"
    _assert_commit(run, "d_replace_where_sql", commit)
    assert md["dagster/column_lineage"]["amount"] == [("d_replace_where", "amount")]


def test_dynamic_partition_overwrite(run: Run) -> None:
    md = run.metadata["d_dynamic"]
    # saveAsTable(mode="overwrite") with partitionOverwriteMode=dynamic: Delta names the commit
    # CREATE OR REPLACE TABLE AS SELECT, yet removes only the written partition's files
    commit = _last(run, "d_dynamic", "CREATE OR REPLACE TABLE AS SELECT")
    assert md["dagster/row_count"] == 7 == int(commit["metrics"]["numOutputRows"])
    if "numRemovedFiles" in commit["metrics"]:  # Delta 4 records it; Delta 3.2 does not
        assert int(commit["metrics"]["numRemovedFiles"]) == 2
    _assert_commit(run, "d_dynamic", commit)


def test_path_writes(run: Run) -> None:
    md = run.metadata["d_path"]
    _, second = run.commits("d_path", "WRITE")
    assert md["dagster/row_count"] == 10
    assert md["dagster/uri"] == os.path.join(run.tmp, "out", "d_path")
    _assert_commit(run, "d_path", second)
    assert md["dagster/column_schema"] == COLUMNS


def test_maintenance_is_not_a_materialization(run: Run) -> None:
    md = run.metadata["d_maint"]
    assert "spark/num_writes" not in md and "delta/version" not in md  # the implicit one only
    assert {c["operation"] for c in run.histories["d_maint"]} >= {"OPTIMIZE", "VACUUM START", "VACUUM END"}
    debug = [t for t in run.logs("DEBUG") if "d_maint" in t]
    assert any("OPTIMIZE" in t and "no materialization" in t for t in debug), debug


def test_delta_table_python_api(runs: dict[str, Run]) -> None:
    run = runs["classic"]
    merge, update, delete = (run.metadata[k] for k in API_TABLES)
    check_api_merge(run, merge)
    check_api_update_and_delete(run, update, delete)


def check_api_merge(run: Run, merge: dict[str, Any]) -> None:
    assert [w["operation"] for w in merge["spark/writes"]] == ["MERGE"]  # once, whatever saw it
    assert (merge["spark/rows_inserted"], merge["spark/rows_updated"]) == (5, 5)
    assert merge["dagster/row_count"] == 10
    _assert_commit(run, "d_api_merge", _last(run, "d_api_merge", "MERGE"))


def check_api_update_and_delete(run: Run, update: dict[str, Any], delete: dict[str, Any]) -> None:
    assert update["dagster/row_count"] == 4 == update["spark/rows_updated"]
    _assert_commit(run, "d_api_update", _last(run, "d_api_update", "UPDATE"))
    assert delete["dagster/row_count"] == 5 == delete["spark/rows_deleted"]
    _assert_commit(run, "d_api_delete", _last(run, "d_api_delete", "DELETE"))


def test_iceberg(run: Run) -> None:
    md = run.metadata["ice_events"]
    snapshots = run.snapshots
    assert md["dagster/storage_kind"] == "iceberg"
    assert md["dagster/table_name"] == "iceberg.db.ice_events"
    assert md["spark/num_writes"] == 3
    assert md["dagster/row_count"] == 10 + 4 + 3
    assert [w["rows"] for w in md["spark/writes"]] == [10, 4, 3]
    assert md["spark/rows_deleted"] == 3
    assert [w["snapshot_id"] for w in md["spark/writes"]] == [s["id"] for s in snapshots]
    assert run.data_version("ice_events") == str(snapshots[-1]["id"])
    assert md["iceberg/snapshot_id"] == snapshots[-1]["id"]


def test_checks_read_the_version_the_block_wrote(run: Run) -> None:
    """The checks pass: they read the block's own commit, not the later one that added bad rows."""
    commits = run.commits("d_checked", "WRITE")
    assert [int(c["metrics"]["numOutputRows"]) for c in commits] == [5, 2]  # the bad rows committed
    md = run.metadata["d_checked"]
    assert md["delta/version"] == commits[0]["version"]
    results = {c.check_name: c for c in run.result.checks}
    assert sorted(results) == ["ids_positive", "name_not_null"]
    assert all(c.passed for c in results.values()), results


# --- MERGE lineage on Spark Connect, from the texts a Delta 4.0.1 server explains (no Spark) -------

_MERGE_HEADER = (
    "num_affected_rows: bigint, num_updated_rows: bigint, num_deleted_rows: bigint, num_inserted_rows: bigint"
)
_TARGET = "`spark_catalog`.`default`.`t`, Delta[version=0, file:/tmp/wh/t]"
_SCHEMA = "StructType(StructField(id,LongType,true),StructField(name,StringType,true),StructField(amount,DoubleType,true)), false"


def _merge_explain(source: str, condition: str, clauses: str) -> str:
    command = f"MergeIntoCommand SubqueryAlias {source}, SubqueryAlias spark_catalog.default.t, {_TARGET}"
    return f"== Analyzed Logical Plan ==\n{_MERGE_HEADER}\n{command}, {condition}, {clauses}, {_SCHEMA}\n"


def _source_explain(plan: str) -> str:
    return f"== Analyzed Logical Plan ==\nid: bigint, name: string, amount: double\n{plan}\n"


_SOURCE_TABLE = _source_explain(
    "Project [id#5L, name#6, amount#7]\n+- SubqueryAlias spark_catalog.default.s\n"
    "   +- Relation spark_catalog.default.s[id#5L,name#6,amount#7] parquet"
)


def _named(lineage: Any) -> dict[str, Any]:
    return {c: None if d is None else sorted((s.table[-1], n) for s, n in d) for c, d in lineage.items()}


def test_merge_source_query() -> None:
    from dagster_pipes_spark.spark._lineage import merge_source_query

    assert merge_source_query("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE") == (
        "SELECT * FROM s"
    )
    statement = (
        "merge into db.t AS x using (SELECT id, 'on' AS c FROM s WHERE id IN (1, 2)) src -- using\n"
        " ON x.id = src.id WHEN NOT MATCHED THEN INSERT *"
    )
    assert merge_source_query(statement) == (
        "SELECT * FROM (SELECT id, 'on' AS c FROM s WHERE id IN (1, 2)) src -- using\n"
    )
    assert merge_source_query("UPDATE t SET a = 1") is None
    assert merge_source_query("MERGE INTO t USING s") is None


def test_merge_lineage_from_explain() -> None:
    from dagster_pipes_spark.spark._lineage import merge_lineage_from_explain

    columns = ["id", "name", "amount"]
    # UPDATE SET name, amount from the source; id kept (the target's own); INSERT from the source
    merge = _merge_explain(
        "spark_catalog.default.s",
        "(id#1L = id#5L)",
        "[Delete [condition: (id#1L >= cast(8 as bigint))], Update [actions: [`id` = id#1L, `name` = name#6,"
        " `amount` = amount#7]]], [Insert [actions: [`id` = id#5L, `name` = name#6, `amount` = amount#7]]]",
    )
    expected = {c: [("s", c)] for c in columns}
    assert _named(merge_lineage_from_explain(merge, _SOURCE_TABLE, columns)) == expected
    # a source query: its own lineage (amount * 2 AS amount) is followed
    source = _source_explain(
        "Project [id#5L, name#6, amount#9]\n+- SubqueryAlias src\n"
        "   +- Project [id#5L, name#6, (amount#7 * cast(2 as double)) AS amount#9]\n"
        "      +- SubqueryAlias spark_catalog.default.s\n"
        "         +- Relation spark_catalog.default.s[id#5L,name#6,amount#7] parquet"
    )
    merge = _merge_explain(
        "src",
        "(id#1L = id#15L)",
        "[Update [actions: [`id` = id#15L, `name` = name#16, `amount` = amount#9]]],"
        " [Insert [actions: [`id` = id#15L, `name` = name#16, `amount` = amount#9]]]",
    )
    assert _named(merge_lineage_from_explain(merge, source, columns)) == expected
    # UPDATE only, names on both sides: which attribute is the source's cannot be told -> unresolved
    merge = _merge_explain(
        "spark_catalog.default.s",
        "(id#1L = id#5L)",
        "[Update [actions: [`id` = id#1L, `name` = name#2, `amount` = (amount#7 + cast(1 as double))]]]",
    )
    assert _named(merge_lineage_from_explain(merge, _SOURCE_TABLE, columns)) == dict.fromkeys(columns)
    # not a Delta MERGE (no MergeIntoCommand): no lineage
    assert merge_lineage_from_explain(_SOURCE_TABLE, _SOURCE_TABLE, columns) is None


def test_commits_come_from_the_logs_in_one_read(run: Run) -> None:
    """On exit the block's Delta commits are read from the tables' logs in one job: no target of the
    main block or the checked one needed its own ``DESCRIBE HISTORY`` (the figures above match
    Delta's history all the same)."""
    lines = [text for text in run.logs() if "read from their logs" in text]
    targets = len(DELTA_TABLES) - 1 + (len(API_TABLES) if run.mechanism == "classic" else 0)  # d_maint: none
    assert lines[:2] == [
        f"[spark writes] Delta commits of {targets} target(s) read from their logs in one job;"
        " DESCRIBE HISTORY for 0",
        "[spark writes] Delta commits of 1 target(s) read from their logs in one job; DESCRIBE HISTORY for 0",
    ], lines


def test_commits_missing_from_the_logs_come_from_the_history(run: Run) -> None:
    """Commit files older than the block (a storage clock behind the driver's) are not read from the
    logs: that table falls back to ``DESCRIBE HISTORY``, with its own commits' figures."""
    lines = [text for text in run.logs() if "read from their logs" in text]
    assert lines[2:] == [
        "[spark writes] Delta commits of 0 target(s) read from their logs in one job; DESCRIBE HISTORY for 1"
    ], lines
    commits = run.commits("d_skewed", "WRITE")
    md = run.metadata["d_skewed"]
    assert (
        [(w["delta_version"], w["rows"]) for w in md["spark/writes"]]
        == [(c["version"], int(c["metrics"]["numOutputRows"])) for c in commits]
        == [(0, 3), (1, 4)]
    )
    assert md["delta/version"] == 1 and md["dagster/row_count"] == 7
