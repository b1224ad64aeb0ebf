"""Unit tests of the Spark write hooks that need no Spark: the Delta module (plan node names and
``DESCRIBE HISTORY`` row shapes as Delta produces them), plan extraction against py4j-shaped
doubles, the SQL target parser, asset resolution, metadata and the reporting flow."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from dagster_pipes_spark.spark import _commands, _delta, report_spark_writes
from dagster_pipes_spark.spark._classic import _backend as _classic_backend
from dagster_pipes_spark.spark._classic import _commands as _classic_commands
from dagster_pipes_spark.spark._classic import _metrics as _classic_metrics
from dagster_pipes_spark.spark._collector import Collector
from dagster_pipes_spark.spark._delta import enrich_from_delta_history
from dagster_pipes_spark.spark._metadata import build_metadata, columns_from_schema_json, data_version_for
from dagster_pipes_spark.spark._session import HookSession
from dagster_pipes_spark.spark._sql import parse_sql_write
from dagster_pipes_spark.spark._targets import AssetResolver, normalize_path, parse_target, split_identifier
from dagster_pipes_spark.spark._write_record import (
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_DELETE,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_UPDATE,
    OP_WRITE,
    SparkWrite,
)
from dagster_pipes_spark.spark._write_report import SparkWriteReport

REPO = Path(__file__).resolve().parents[1]

# --- py4j-shaped doubles ----------------------------------------------------------------------


class Opt:
    """``scala.Option``."""

    def __init__(self, value: Any = None) -> None:
        self._value = value

    def isDefined(self) -> bool:  # noqa: N802
        return self._value is not None

    def isEmpty(self) -> bool:  # noqa: N802
        return self._value is None

    def get(self) -> Any:
        assert self._value is not None
        return self._value


class Str:
    """Anything answered through ``toString()`` (Hadoop ``Path``, ``SaveMode``, ``URI``...)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def toString(self) -> str:  # noqa: N802
        return self.text


class J:
    """A JavaObject: ``nodeName()``, ``getClass().getSimpleName()`` and the given no-arg methods."""

    def __init__(self, simple_name: str, **methods: Any) -> None:
        self._simple_name = simple_name
        self._methods = methods

    def nodeName(self) -> str:  # noqa: N802
        return self._simple_name

    def getClass(self) -> Any:  # noqa: N802
        return mock.Mock(getSimpleName=mock.Mock(return_value=self._simple_name))

    def __getattr__(self, name: str) -> Any:
        methods = self.__dict__.get("_methods", {})
        if name in methods:
            value = methods[name]
            return lambda *args: value
        raise AttributeError(name)


SCHEMA_JSON = (
    '{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},'
    '{"name":"name","type":"string","nullable":true,"metadata":{}}]}'
)


def schema_holder() -> J:
    return J("Schema", schema=J("StructType", json=SCHEMA_JSON))


def catalog_table(quoted: str, provider: str | None = "delta") -> J:
    return J(
        "CatalogTable",
        identifier=J("TableIdentifier", quotedString=quoted),
        provider=Opt(provider),
        schema=J("StructType", json=SCHEMA_JSON),
        storage=J("CatalogStorageFormat", locationUri=Opt(None)),
    )


def v2_relation(table_cls: str, catalog: str, ident: str, provider: str | None = None) -> J:
    return J(
        "DataSourceV2Relation",
        catalog=Opt(J("CatalogPlugin", name=catalog)),
        identifier=Opt(Str(ident)),
        table=J(table_cls, properties={"provider": provider} if provider else {}),
        schema=J("StructType", json=SCHEMA_JSON),
        name=ident,
    )


# --- Delta: plan nodes ------------------------------------------------------------------------
# Every open-source command below is also exercised for real (Delta 4.0.1 / 3.2.0 jars, classic and
# Connect) in test_delta_hooks.py and test_delta_runtime_matrix.py; these py4j-shaped doubles stay for
# the accessor chains (fast, no JVM) and for Databricks' variants (``...Edge`` suffixes, the
# ``com.databricks.sql.transaction.tahoe`` classes), whose field names were recorded from the case
# classes of delta-io/delta's ``spark/src/main/scala/org/apache/spark/sql/delta/commands/``.


@pytest.mark.parametrize(
    ("node", "operation"),
    [
        ("WriteIntoDelta", OP_WRITE),
        ("CreateDeltaTableCommand", OP_CTAS),
        ("MergeIntoCommand", OP_MERGE),
        ("MergeIntoCommandEdge", OP_MERGE),  # Databricks runtime
        ("UpdateCommand", OP_UPDATE),
        ("UpdateCommandEdge", OP_UPDATE),
        ("DeleteCommand", OP_DELETE),
        ("DeleteCommandEdge", OP_DELETE),
        ("DeltaDynamicPartitionOverwriteCommand", OP_INSERT_OVERWRITE),
    ],
)
def test_delta_command_names(node: str, operation: str) -> None:
    command = _commands.write_command(node)
    assert command is not None and command.delta is not None and command.operation == operation


@pytest.mark.parametrize(
    "node", ["InsertIntoHadoopFsRelationCommand", "AppendData", "Project", "DescribeDeltaHistoryCommand"]
)
def test_not_delta_commands(node: str) -> None:
    command = _commands.write_command(node)
    assert command is None or command.delta is None


def test_one_registry_of_write_commands() -> None:
    """The classic mechanism reads every command of the registry; lineage looks through each."""
    assert set(_classic_commands.HANDLERS) == set(_commands.SPARK_COMMANDS)
    assert all(_commands.write_command(name) is not None for name in _commands.COMMANDS)
    for name in (*_commands.COMMANDS, "MergeIntoCommandEdge", "CreateViewCommand"):
        assert _commands.carries_query(name), name
    for name in ("Project", "Filter", "DataSourceV2Relation", "OptimizeTableCommand"):
        assert _commands.write_command(name) is None, name
    assert _commands.maintenance_command("OptimizeTableCommandEdge") == "OPTIMIZE"


def test_delta_class_names() -> None:
    for name in (
        "DeltaTableV2",
        "StagedDeltaTableV2",
        "DeltaDataSource",
        "TahoeLogFileIndex",
        "TahoeBatchFileIndex",
        "PreparedDeltaFileIndex",
    ):
        assert _delta.is_delta_class_name(name), name
    for other in ("JDBCTable", "ParquetFileFormat", "InMemoryFileIndex", "V2SessionCatalog", None):
        assert not _delta.is_delta_class_name(other), other
    assert _delta.is_delta_provider("DELTA") and not _delta.is_delta_provider("parquet")


def test_merge_into_command_with_catalog_table() -> None:
    node = J(
        "MergeIntoCommand",
        catalogTable=Opt(catalog_table("`spark_catalog`.`sales`.`customers`")),
        targetFileIndex=J("TahoeLogFileIndex", path=Str("s3://bucket/customers")),
        target=schema_holder(),
    )
    write = _classic_commands.write_from_plan(node)
    assert write is not None
    assert (write.operation, write.table, write.is_delta, write.format) == (
        OP_MERGE,
        ("spark_catalog", "sales", "customers"),
        True,
        "delta",
    )
    assert write.columns == [("id", "bigint"), ("name", "string")]
    assert write.api == "MergeIntoCommand"


def test_update_command_by_path_and_databricks_edge_name() -> None:
    node = J(
        "UpdateCommandEdge",
        catalogTable=Opt(None),
        tahoeFileIndex=J("TahoeLogFileIndex", path=Str("dbfs:/Volumes/main/raw/files/events")),
        target=schema_holder(),
    )
    write = _classic_commands.write_from_plan(node)
    assert write is not None
    assert (write.operation, write.table, write.path) == (OP_UPDATE, None, "/Volumes/main/raw/files/events")


def test_delete_command() -> None:
    node = J(
        "DeleteCommand",
        deltaLog=J("DeltaLog", dataPath=Str("file:/tmp/delta/t")),
        catalogTable=Opt(catalog_table("`main`.`default`.`t`")),
        target=schema_holder(),
    )
    write = _classic_commands.write_from_plan(node)
    assert write is not None and write.operation == OP_DELETE and write.target == "main.default.t"


def test_write_into_delta_path_and_table() -> None:
    by_path = J(
        "WriteIntoDelta",
        deltaLog=J("DeltaLog", dataPath=Str("file:/tmp/delta/events/")),
        mode=Str("Append"),
        catalogTableOpt=Opt(None),
        data=schema_holder(),
    )
    write = _classic_commands.write_from_plan(by_path)
    assert write is not None
    assert (write.operation, write.path, write.mode) == (OP_WRITE, "/tmp/delta/events", "append")
    by_table = J(
        "WriteIntoDelta",
        deltaLog=J("DeltaLog", dataPath=Str("file:/tmp/delta/events")),
        mode=Str("Overwrite"),
        catalogTableOpt=Opt(catalog_table("`spark_catalog`.`default`.`events`")),
        data=schema_holder(),
    )
    write = _classic_commands.write_from_plan(by_table)
    assert write is not None
    assert (write.operation, write.target, write.mode) == (
        OP_INSERT_OVERWRITE,
        "spark_catalog.default.events",
        "overwrite",
    )


def test_create_delta_table_command_needs_a_query() -> None:
    ddl = J(
        "CreateDeltaTableCommand",
        table=catalog_table("`spark_catalog`.`default`.`t`"),
        mode=Str("ErrorIfExists"),
        query=Opt(None),
    )
    assert _classic_commands.write_from_plan(ddl) is None
    ctas = J(
        "CreateDeltaTableCommand",
        table=catalog_table("`spark_catalog`.`default`.`t`"),
        mode=Str("ErrorIfExists"),
        query=Opt(schema_holder()),
    )
    write = _classic_commands.write_from_plan(ctas)
    assert (
        write is not None
        and write.operation == OP_CTAS
        and write.columns == [("id", "bigint"), ("name", "string")]
    )


def test_dynamic_partition_overwrite_and_v2_append_on_delta_table() -> None:
    relation = v2_relation("DeltaTableV2", "spark_catalog", "default.events")
    write = _classic_commands.write_from_plan(J("DeltaDynamicPartitionOverwriteCommand", table=relation))
    assert write is not None and write.target == "spark_catalog.default.events" and write.is_delta
    append = _classic_commands.write_from_plan(J("AppendData", table=relation))
    assert append is not None and append.operation == OP_INSERT and append.is_delta and append.inner


def test_save_into_data_source_delta_and_unknown_target() -> None:
    options = J("Map", get=Opt("s3://bucket/tables/events"))
    node = J(
        "SaveIntoDataSourceCommand",
        dataSource=J("DeltaDataSource", shortName="delta"),
        options=options,
        mode=Str("Overwrite"),
        query=schema_holder(),
    )
    write = _classic_commands.write_from_plan(node)
    assert write is not None and write.is_delta and write.path == "s3://bucket/tables/events"
    jdbc = J(
        "SaveIntoDataSourceCommand",
        dataSource=J("JdbcRelationProvider", shortName="jdbc"),
        options=J("Map", get=Opt(None)),
        mode=Str("Append"),
        query=schema_holder(),
    )
    assert _classic_commands.write_from_plan(jdbc) is None


def test_v2_ctas_rtas_names() -> None:
    name = J("ResolvedIdentifier", catalog=J("CatalogPlugin", name="main"), identifier=Str("sales.orders"))
    spec = J("TableSpec", provider=Opt("delta"))
    ctas = _classic_commands.write_from_plan(
        J("CreateTableAsSelect", name=name, tableSpec=spec, ignoreIfExists=False, query=schema_holder())
    )
    assert ctas is not None and (ctas.operation, ctas.target, ctas.is_delta, ctas.outer) == (
        OP_CTAS,
        "main.sales.orders",
        True,
        True,
    )
    rtas = _classic_commands.write_from_plan(
        J("ReplaceTableAsSelect", name=name, tableSpec=spec, orCreate=True, query=schema_holder())
    )
    assert rtas is not None and rtas.operation == OP_CREATE_OR_REPLACE
    rtas2 = _classic_commands.write_from_plan(
        J("ReplaceTableAsSelect", name=name, tableSpec=spec, orCreate=False, query=schema_holder())
    )
    assert rtas2 is not None and rtas2.operation == OP_RTAS


def test_non_write_plan_is_ignored() -> None:
    assert _classic_commands.write_from_plan(J("Project")) is None


def test_parse_metrics_from_scala_map_string() -> None:
    text = (
        "Map(numFiles -> SQLMetric(id: 51, name: Some(number of written files), value: 2), "
        "numOutputRows -> SQLMetric(id: 53, name: Some(number of output rows), value: 10), "
        "numOutputBytes -> SQLMetric(id: 52, name: Some(written output), value: 1474), "
        "taskCommitTime -> SQLMetric(id: 55, name: Some(task commit time), value: 18))"
    )
    metrics = _classic_metrics.parse_metrics(text)
    assert metrics == {"numFiles": 2, "numOutputRows": 10, "numOutputBytes": 1474, "taskCommitTime": 18}
    write = SparkWrite(OP_WRITE, path="/x")
    _classic_metrics.apply_metrics(write, metrics)
    assert (write.rows, write.files, write.bytes) == (10, 2, 1474)
    merge = SparkWrite(OP_MERGE, table=("t",))
    _classic_metrics.apply_metrics(
        merge,
        {
            "numTargetRowsInserted": 3,
            "numTargetRowsUpdated": 2,
            "numTargetRowsDeleted": 1,
            "numTargetFilesAdded": 4,
        },
    )
    assert (merge.rows, merge.rows_inserted, merge.rows_updated, merge.rows_deleted, merge.files) == (
        6,
        3,
        2,
        1,
        4,
    )


def test_write_metrics_under_adaptive_execution() -> None:
    metrics = J(
        "Map", toString="Map(numOutputRows -> SQLMetric(id: 7, name: Some(number of output rows), value: 5))"
    )
    write_exec = J("Execute InsertIntoHadoopFsRelationCommand", metrics=metrics)
    stage = J("ResultQueryStage", plan=write_exec)
    aqe = J("AdaptiveSparkPlan", executedPlan=stage)
    assert _classic_metrics.write_metrics(aqe) == {"numOutputRows": 5}
    assert _classic_metrics.write_metrics(write_exec) == {"numOutputRows": 5}


class FakeBus:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.waited: list[int] = []

    def waitUntilEmpty(self, millis: int) -> None:  # noqa: N802
        self.waited.append(millis)
        if self.fail:
            raise TimeoutException("The event queue is not empty after 10 ms.")


class TimeoutException(Exception):  # noqa: N818 - the JVM class name the code sees
    pass


def test_classic_stop_waits_bounded_then_unregisters() -> None:
    invoked: list[tuple[str, Any]] = []

    class Method:
        def __init__(self, name: str) -> None:
            self.name = name

        def getName(self) -> str:  # noqa: N802
            return self.name

        def getParameterTypes(self) -> list[Any]:  # noqa: N802
            return [object]

        def invoke(self, target: Any, args: Any) -> None:
            invoked.append((self.name, args))

    manager = mock.Mock()
    manager.getClass.return_value.getMethods.return_value = [Method("register"), Method("unregister")]
    spark = mock.Mock()
    spark._jsparkSession.listenerManager.return_value = manager
    warnings: list[str] = []
    backend = _classic_backend.ClassicBackend(spark, Collector(), warnings.append, lambda m: None)
    listener = _classic_backend._QueryExecutionListener(backend)
    holder = mock.Mock()
    holder.toArray.return_value = ["the-one-java-proxy"]
    backend._listener, backend._bus, backend._proxy_holder = listener, FakeBus(fail=True), holder
    backend.stop(0.01)
    assert backend._bus.waited == [10]
    assert warnings and "did not drain within 0.01s" in warnings[0]
    # unregistered with the proxy made at registration, not a new one
    assert invoked == [("unregister", ["the-one-java-proxy"])]
    manager.unregister.assert_not_called()
    # callbacks never raise into the JVM, whatever they are handed
    listener.onSuccess("command", object(), 1)
    listener.onFailure("command", None, None)
    assert len(backend._collector.hook_errors) == 2


# --- Delta: DESCRIBE HISTORY ------------------------------------------------------------------
# Rows built from the columns of delta-io/delta's ``DeltaHistory`` case class, filled the way a
# Databricks job's commit fills them (``job``, ``clusterId``, a Databricks ``engineInfo``): what no
# local run produces. Open-source history rows are read for real in test_delta_hooks.py, whose figures
# are compared with the table's own history.


def history_row(
    version: int, operation: str, metrics: dict[str, str], parameters: dict[str, str] | None = None
) -> Any:
    """A row exactly as ``DESCRIBE HISTORY`` returns it (``DeltaHistory`` case class columns)."""
    from pyspark.sql import Row  # pure Python, no JVM

    return Row(
        version=version,
        timestamp=dt.datetime(2025, 1, 1, 12, 0, version),
        userId="4711",
        userName="someone@example.com",
        operation=operation,
        operationParameters=parameters or {"mode": "Append", "partitionBy": "[]"},
        job=Row(
            jobId="123", jobName="nightly", jobRunId="456", runId="789", jobOwnerId="1", triggerType="manual"
        ),
        notebook=None,
        clusterId="0101-000000-abcd",
        readVersion=version - 1 if version else None,
        isolationLevel="WriteSerializable",
        isBlindAppend=operation == "WRITE",
        operationMetrics=metrics,
        userMetadata=None,
        engineInfo="Databricks-Runtime/15.4.x-scala2.12",
    )


def test_parse_history_row_write() -> None:
    commit = _delta.parse_history_row(
        history_row(3, "WRITE", {"numFiles": "2", "numOutputRows": "10", "numOutputBytes": "1474"})
    )
    assert commit is not None
    assert (commit.version, commit.operation, commit.rows, commit.files, commit.bytes) == (
        3,
        "WRITE",
        10,
        2,
        1474,
    )
    assert commit.changes_data and commit.parameters["mode"] == "Append"


def test_parse_history_row_merge_update_delete() -> None:
    merge = _delta.parse_history_row(
        history_row(
            5,
            "MERGE",
            {
                "numSourceRows": "7",
                "numTargetRowsInserted": "3",
                "numTargetRowsUpdated": "2",
                "numTargetRowsDeleted": "1",
                "numTargetRowsCopied": "40",
                "numOutputRows": "45",
                "numTargetFilesAdded": "2",
                "numTargetFilesRemoved": "1",
                "numTargetBytesAdded": "2048",
                "executionTimeMs": "1200",
            },
        )
    )
    assert merge is not None
    assert (merge.rows, merge.rows_inserted, merge.rows_updated, merge.rows_deleted) == (6, 3, 2, 1)
    assert (merge.files, merge.bytes) == (2, 2048)
    update = _delta.parse_history_row(
        history_row(
            6,
            "UPDATE",
            {
                "numUpdatedRows": "4",
                "numCopiedRows": "10",
                "numAddedFiles": "1",
                "numRemovedFiles": "1",
                "numAddedBytes": "900",
            },
        )
    )
    assert update is not None and (update.rows, update.rows_updated, update.files, update.bytes) == (
        4,
        4,
        1,
        900,
    )
    delete = _delta.parse_history_row(
        history_row(
            7,
            "DELETE",
            {"numDeletedRows": "5", "numAddedFiles": "1", "numRemovedFiles": "1", "numCopiedRows": "3"},
        )
    )
    assert delete is not None and (delete.rows, delete.rows_deleted) == (5, 5)
    # whole-file delete without row stats: Delta drops numDeletedRows
    blind = _delta.parse_history_row(history_row(8, "DELETE", {"numRemovedFiles": "3"}))
    assert blind is not None and blind.rows is None


def test_parse_history_row_ctas_and_maintenance() -> None:
    for op in ("CREATE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT", "REPLACE TABLE AS SELECT"):
        commit = _delta.parse_history_row(
            history_row(0, op, {"numFiles": "1", "numOutputRows": "4", "numOutputBytes": "800"})
        )
        assert commit is not None and commit.rows == 4 and commit.changes_data
    optimize = _delta.parse_history_row(
        history_row(9, "OPTIMIZE", {"numAddedFiles": "1", "numRemovedFiles": "4"})
    )
    assert optimize is not None and not optimize.changes_data
    assert _delta.parse_history_row({"version": None, "operation": "WRITE"}) is None
    # plain mappings (e.g. from JSON) and maps delivered as pairs work too
    commit = _delta.parse_history_row(
        {"version": "2", "operation": "WRITE", "operationMetrics": [("numOutputRows", "8")]}
    )
    assert commit is not None and commit.version == 2 and commit.rows == 8


def test_match_commits_skips_maintenance_and_pairs_newest() -> None:
    writes = [
        SparkWrite(OP_CTAS, table=("t",)),
        SparkWrite(OP_INSERT, table=("t",)),
        SparkWrite(OP_MERGE, table=("t",)),
    ]
    commits = [
        _delta.parse_history_row(history_row(v, op, m))
        for v, op, m in [
            (
                4,
                "MERGE",
                {"numTargetRowsInserted": "1", "numTargetRowsUpdated": "1", "numTargetRowsDeleted": "0"},
            ),
            (3, "OPTIMIZE", {"numAddedFiles": "1"}),
            (2, "WRITE", {"numOutputRows": "5"}),
            (1, "CREATE TABLE AS SELECT", {"numOutputRows": "10"}),
            (0, "CREATE TABLE", {}),
        ]
    ]
    pairs = _delta.match_commits(writes, [c for c in commits if c is not None])
    assert [(w.operation, c.version) for w, c in pairs] == [(OP_CTAS, 1), (OP_INSERT, 2), (OP_MERGE, 4)]
    for write, commit in pairs:
        _delta.apply_commit(write, commit)
    assert [w.rows for w in writes] == [10, 5, 2]
    assert data_version_for(writes) == "4"


def test_history_sql_quoting() -> None:
    assert (
        _delta.history_sql(("main", "sales", "or`ders"), None, 3)
        == "DESCRIBE HISTORY `main`.`sales`.`or``ders` LIMIT 3"
    )
    assert _delta.history_sql(None, "/Volumes/a/b/c", 1) == "DESCRIBE HISTORY delta.`/Volumes/a/b/c` LIMIT 1"


def test_enrich_from_history_with_fake_sql() -> None:
    queries: list[str] = []

    def run_sql(query: str) -> list[Any]:
        queries.append(query)
        if "`events`" in query:
            return [history_row(7, "WRITE", {"numOutputRows": "12", "numFiles": "3", "numOutputBytes": "99"})]
        raise RuntimeError("[DELTA_MISSING_DELTA_TABLE] not a Delta table")

    errors: list[str] = []
    delta_write = SparkWrite(OP_INSERT, table=("main", "default", "events"), is_delta=True)
    unknown = SparkWrite(OP_INSERT, table=("main", "default", "parquet_t"))
    known_parquet = SparkWrite(OP_WRITE, path="/p", is_delta=False)
    enrich_from_delta_history(
        [delta_write, unknown, known_parquet], run_sql, probe_unknown=True, debug=errors.append
    )
    assert (delta_write.rows, delta_write.delta_version, delta_write.files) == (12, 7, 3)
    assert unknown.is_delta is False and unknown.delta_version is None
    assert len(queries) == 2 and not errors  # the unknown probe failing is not an error


def test_enrich_stops_probing_without_delta_sql() -> None:
    calls: list[str] = []

    class ParseException(Exception):  # noqa: N818 - the JVM class name the code sees
        pass

    def run_sql(query: str) -> list[Any]:
        calls.append(query)
        raise ParseException("[PARSE_SYNTAX_ERROR] Syntax error at or near 'HISTORY'")

    writes = [SparkWrite(OP_INSERT, table=(f"t{i}",)) for i in range(3)]
    enrich_from_delta_history(writes, run_sql, probe_unknown=True, debug=lambda m: None)
    assert len(calls) == 1


# --- SQL targets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("INSERT INTO t SELECT 1", (OP_INSERT, "append", ("t",), None, None)),
        ("insert into table db.t values (1)", (OP_INSERT, "append", ("db", "t"), None, None)),
        (
            "INSERT OVERWRITE TABLE `cat`.`my db`.`t` SELECT * FROM s",
            (OP_INSERT_OVERWRITE, "overwrite", ("cat", "my db", "t"), None, None),
        ),
        (
            "-- comment\n/* block */ WITH x AS (SELECT 1 AS a) INSERT INTO t SELECT a FROM x",
            (OP_INSERT, "append", ("t",), None, None),
        ),
        ("INSERT INTO delta.`/tmp/events` SELECT 1", (OP_INSERT, "append", None, "/tmp/events", "delta")),
        (
            "INSERT OVERWRITE DIRECTORY '/tmp/out' USING parquet SELECT 1",
            (OP_INSERT_OVERWRITE, "overwrite", None, "/tmp/out", "parquet"),
        ),
        (
            "INSERT INTO t REPLACE WHERE d = '2024-01-01' SELECT * FROM s",
            (OP_INSERT_OVERWRITE, "overwrite", ("t",), None, None),
        ),
        ("CREATE TABLE t USING delta AS SELECT 1 AS a", (OP_CTAS, "errorifexists", ("t",), None, "delta")),
        (
            "CREATE TABLE IF NOT EXISTS s.t (a INT GENERATED ALWAYS AS (1)) USING parquet AS SELECT 1 AS a",
            (OP_CTAS, "ignore", ("s", "t"), None, "parquet"),
        ),
        (
            "CREATE OR REPLACE TABLE main.s.t AS WITH q AS (SELECT 1) SELECT * FROM q",
            (OP_CREATE_OR_REPLACE, "overwrite", ("main", "s", "t"), None, None),
        ),
        ("REPLACE TABLE t USING delta AS SELECT 1", (OP_RTAS, "overwrite", ("t",), None, "delta")),
        (
            "MERGE INTO main.s.customers AS c USING updates u ON c.id = u.id WHEN MATCHED THEN UPDATE SET *",
            (OP_MERGE, None, ("main", "s", "customers"), None, None),
        ),
        (
            "MERGE WITH SCHEMA EVOLUTION INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT *",
            (OP_MERGE, None, ("t",), None, None),
        ),
        ("UPDATE t SET a = 1 WHERE b = 2", (OP_UPDATE, None, ("t",), None, None)),
        (
            "DELETE FROM IDENTIFIER('main.s.t') WHERE a = 1;",
            (OP_DELETE, None, ("main", "s", "t"), None, None),
        ),
        (
            "COPY INTO main.raw.events FROM '/Volumes/x' FILEFORMAT = JSON",
            ("COPY INTO", "append", ("main", "raw", "events"), None, None),
        ),
    ],
)
def test_parse_sql_write(sql: str, expected: tuple[Any, ...]) -> None:
    parsed = parse_sql_write(sql)
    assert parsed is not None
    assert (parsed.operation, parsed.mode, parsed.table, parsed.path, parsed.format) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM t",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "CREATE TABLE t (a INT) USING delta",
        "CREATE VIEW v AS SELECT 1",
        "CREATE TEMPORARY VIEW v AS SELECT 1",
        "DESCRIBE HISTORY t",
        "DELETE t",
        "INSERT t",
        "",
    ],
)
def test_parse_sql_non_writes(sql: str) -> None:
    assert parse_sql_write(sql) is None


def test_connect_sql_precheck_is_cheap_and_skips_queries() -> None:
    from dagster_pipes_spark.spark._connect._sql import may_write as _may_write

    assert _may_write("/* x */ -- y\n  insert into t select 1")
    assert _may_write("(WITH a AS (SELECT 1) SELECT * FROM a)")  # parsed later, found not to write
    assert not _may_write("SELECT * FROM t") and not _may_write("") and not _may_write("-- only a comment")
    assert not _may_write(" " * 100_000 + "SELECT 1")


# --- names, resolution, metadata --------------------------------------------------------------


def test_identifiers_and_paths() -> None:
    assert split_identifier("`a.b`.c.`d``e`") == ["a.b", "c", "d`e"]
    # without backticks (no character loop): the parts the quoted reading gives
    assert split_identifier("spark_catalog.default.t") == split_identifier("`spark_catalog`.default.t")
    assert split_identifier(" a . b ") == split_identifier(" `a` . b ") == ["a", "b"]
    assert split_identifier("a..b") == split_identifier("`a`..b") == ["a", "b"]
    assert split_identifier("") == [] and split_identifier(".") == []
    assert normalize_path("file:/tmp/x/") == "/tmp/x"
    assert normalize_path("file:///tmp//x") == "/tmp/x"
    assert normalize_path("dbfs:/Volumes/c/s/v/f") == "/Volumes/c/s/v/f"
    assert normalize_path("s3://bucket/a//b/") == "s3://bucket/a/b"
    assert normalize_path("dbfs:/mnt/x") == "dbfs:/mnt/x"
    assert parse_target("delta.`/tmp/t`") == ("path", "/tmp/t")
    assert parse_target("Main.Sales.Orders") == ("table", ("Main", "Sales", "Orders"))
    assert columns_from_schema_json(
        '{"type":"struct","fields":[{"name":"a","type":{"type":"array","elementType":"integer","containsNull":true}},'
        '{"name":"m","type":{"type":"map","keyType":"string","valueType":"long"}},'
        '{"name":"s","type":{"type":"struct","fields":[{"name":"x","type":"short"}]}},'
        '{"name":"d","type":"decimal(10,2)"}]}'
    ) == [
        ("a", "array<int>"),
        ("m", "map<string,bigint>"),
        ("s", "struct<x:smallint>"),
        ("d", "decimal(10,2)"),
    ]


def test_resolver_rules() -> None:
    scope = ["orders", "sales/customers", "raw_events", "other"]
    default = AssetResolver(None, scope)
    assert default.resolve(SparkWrite(OP_INSERT, table=("spark_catalog", "default", "ORDERS")))[0] == "orders"
    assert (
        default.resolve(SparkWrite(OP_INSERT, table=("main", "sales", "customers")))[0] == "sales/customers"
    )
    assert default.resolve(SparkWrite(OP_INSERT, table=("main", "crm", "customers")))[0] is None
    key, reason = default.resolve(SparkWrite(OP_WRITE, path="/tmp/orders"))
    assert key is None and "no asset key" in reason

    mapping = AssetResolver(
        {
            "main.sales.orders": "other",
            "orders": "orders",
            "file:/data/events/": ["raw_events"],
            "scratch": None,
            "unknown_t": "not_in_scope",
        },
        scope,
    )
    assert mapping.resolve(SparkWrite(OP_INSERT, table=("main", "sales", "orders")))[0] == "other"
    assert mapping.resolve(SparkWrite(OP_INSERT, table=("hive", "x", "orders")))[0] == "orders"
    assert mapping.resolve(SparkWrite(OP_WRITE, path="/data/events"))[0] == "raw_events"
    assert mapping.resolve(SparkWrite(OP_INSERT, table=("spark_catalog", "default", "scratch"))) == (
        None,
        "it is mapped to None",
    )
    key, reason = mapping.resolve(SparkWrite(OP_INSERT, table=("unknown_t",)))
    assert key is None and "not in scope" in reason
    # targets the dict does not name fall back to the default rule
    assert (
        mapping.resolve(SparkWrite(OP_INSERT, table=("main", "sales", "customers")))[0] == "sales/customers"
    )

    def fn(target: str) -> Any:
        if target.endswith("boom"):
            raise ValueError("boom")
        return ["raw_events"] if target.startswith("/") else None

    by_callable = AssetResolver(fn, scope)
    assert by_callable.resolve(SparkWrite(OP_WRITE, path="/x"))[0] == "raw_events"
    assert by_callable.resolve(SparkWrite(OP_INSERT, table=("orders",))) == (
        None,
        "the assets callable returned None",
    )
    assert "raised ValueError" in by_callable.resolve(SparkWrite(OP_INSERT, table=("boom",)))[1]
    with pytest.raises(TypeError):
        AssetResolver(42, scope)  # type: ignore[arg-type]


def test_build_metadata_types_and_aggregation() -> None:
    writes = [
        SparkWrite(
            OP_CTAS,
            table=("spark_catalog", "default", "orders"),
            mode="errorifexists",
            format="parquet",
            rows=10,
            files=2,
            bytes=100,
            columns=[("id", "bigint")],
        ),
        SparkWrite(
            OP_INSERT,
            table=("spark_catalog", "default", "orders"),
            mode="append",
            format="parquet",
            rows=3,
            files=1,
            bytes=50,
            columns=[("id", "bigint"), ("name", "string")],
        ),
    ]
    md = build_metadata(writes, "app-1")
    assert md["dagster/row_count"] == {"raw_value": 13, "type": "int"}
    assert md["dagster/table_name"] == {"raw_value": "spark_catalog.default.orders", "type": "text"}
    assert md["dagster/column_schema"] == {
        "raw_value": {"columns": [{"name": "id", "type": "bigint"}, {"name": "name", "type": "string"}]},
        "type": "table_schema",
    }
    assert md["spark/num_writes"] == {"raw_value": 2, "type": "int"}
    assert md["spark/files_written"]["raw_value"] == 3 and md["spark/bytes_written"]["raw_value"] == 150
    assert md["spark/operation"]["raw_value"] == "CREATE TABLE AS SELECT, INSERT"
    assert md["spark/write_mode"]["raw_value"] == "errorifexists, append"
    assert md["spark/application_id"] == {"raw_value": "app-1", "type": "text"}
    assert md["spark/writes"]["type"] == "json" and len(md["spark/writes"]["raw_value"]) == 2
    assert all(set(v) == {"raw_value", "type"} for v in md.values())
    # an unknown count anywhere means no row count at all
    writes[1].rows = None
    assert "dagster/row_count" not in build_metadata(writes, None)
    uri = build_metadata([SparkWrite(OP_WRITE, path="s3://b/x", rows=1)], None)
    assert uri["dagster/uri"] == {"raw_value": "s3://b/x", "type": "url"}
    local = build_metadata([SparkWrite(OP_WRITE, path="/tmp/x", rows=1)], None)
    assert local["dagster/uri"] == {"raw_value": "/tmp/x", "type": "path"}
    dml = build_metadata(
        [
            SparkWrite(
                OP_MERGE,
                table=("t",),
                rows=6,
                rows_inserted=3,
                rows_updated=2,
                rows_deleted=1,
                delta_version=4,
                is_delta=True,
            )
        ],
        None,
    )
    assert dml["spark/rows_inserted"]["raw_value"] == 3 and dml["delta/version"] == {
        "raw_value": 4,
        "type": "int",
    }


def test_collector_joins_nested_ctas_write() -> None:
    collector = Collector()
    collector.add(SparkWrite(OP_INSERT, table=("t",), rows=1, inner=True))  # a user insert
    collector.add(
        SparkWrite(OP_WRITE, path="/wh/t", mode="overwrite", rows=10, files=2, inner=True)
    )  # nested
    collector.add(
        SparkWrite(
            OP_CTAS,
            table=("spark_catalog", "default", "t"),
            outer=True,
            locations=("/wh/t",),
            mode="errorifexists",
        )
    )
    writes, failures = collector.snapshot()
    assert [(w.operation, w.target, w.rows) for w in writes] == [
        (OP_INSERT, "t", 1),
        (OP_CTAS, "spark_catalog.default.t", 10),
    ]
    assert not failures


# --- the reporting flow -----------------------------------------------------------------------


class FakePipes:
    def __init__(self, asset_keys: list[str] | None) -> None:
        self._asset_keys = asset_keys
        self.reports: dict[str, tuple[Any, Any]] = {}
        self.messages: list[tuple[str, str]] = []
        self.log = logging.getLogger(f"fake-pipes-{id(self)}")
        self.log.setLevel(logging.DEBUG)
        self.log.propagate = False
        handler = logging.Handler()
        handler.emit = lambda record: self.messages.append((record.levelname, record.getMessage()))  # type: ignore[method-assign]
        self.log.addHandler(handler)

    @property
    def asset_keys(self) -> list[str]:
        if self._asset_keys is None:
            raise RuntimeError("DagsterPipesError: no assets in scope")
        return self._asset_keys

    @property
    def materialized_asset_keys(self) -> frozenset[str]:  # as PipesContext has it
        return frozenset(self.reports)

    def report_asset_materialization(
        self, metadata: Any = None, data_version: Any = None, asset_key: Any = None
    ) -> None:
        if asset_key in self.reports:
            raise RuntimeError(f"Asset `{asset_key}` has already been materialized, so no additional data")
        self.reports[asset_key] = (metadata, data_version)


class FakeBackend:
    mechanism = "fake"

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.stopped = False

    def start(self) -> None:
        pass

    def stop(self, timeout: float) -> None:
        self.stopped = True

    def prepare(self, writes: list[SparkWrite]) -> None:
        pass

    def enrich(self, writes: list[SparkWrite]) -> None:
        raise RuntimeError("enrichment exploded")

    def application_id(self) -> str | None:
        return "local-1"


def test_session_reports_skips_and_logs() -> None:
    pipes = FakePipes(["orders", "customers", "manual"])
    pipes.report_asset_materialization(asset_key="manual", metadata={"by": "user"})
    report = SparkWriteReport()
    session = HookSession(pipes, None, report)
    backend = FakeBackend(session.collector)
    for write in (
        SparkWrite(OP_CTAS, table=("spark_catalog", "default", "orders"), rows=10),
        SparkWrite(OP_INSERT, table=("spark_catalog", "default", "orders"), rows=5),
        SparkWrite(OP_INSERT, table=("spark_catalog", "default", "customers"), rows=1),
        SparkWrite(OP_INSERT, table=("spark_catalog", "default", "manual"), rows=1),
        SparkWrite(OP_INSERT, table=("spark_catalog", "default", "scratch"), rows=1),
        SparkWrite(OP_WRITE, path="/tmp/x", error="[PATH_ALREADY_EXISTS] boom"),
    ):
        session.collector.add(write)
    session.collector.hook_error("listener", ValueError("bad node"))
    session.finish(backend, 1.0)
    assert backend.stopped
    assert set(pipes.reports) == {"orders", "customers", "manual"}
    assert pipes.reports["orders"][0]["dagster/row_count"]["raw_value"] == 15
    assert pipes.reports["manual"][0] == {"by": "user"}
    assert set(report.materializations) == {"orders", "customers"}
    levels = {(level, text.split(":")[0]) for level, text in pipes.messages}
    assert any(level == "WARNING" and "failed; not reported" in text for level, text in pipes.messages)
    assert any(level == "WARNING" and "bad node" in text for level, text in pipes.messages)
    assert any(level == "WARNING" and "enrichment exploded" in text for level, text in pipes.messages)
    assert any(level == "INFO" and "already reported" in text for level, text in pipes.messages)
    assert any(level == "DEBUG" and "scratch" in text for level, text in pipes.messages), levels


def test_session_without_assets_in_scope() -> None:
    pipes = FakePipes(None)
    session = HookSession(pipes, None, SparkWriteReport())
    session.collector.add(SparkWrite(OP_INSERT, table=("orders",), rows=1))
    session.finish(FakeBackend(session.collector), 1.0)
    assert not pipes.reports
    assert any(level == "DEBUG" and "no asset keys in scope" in text for level, text in pipes.messages)


def test_mock_pipes_is_a_no_op() -> None:
    pipes = mock.MagicMock()
    with report_spark_writes(object(), pipes) as report:  # type: ignore[arg-type]
        pass
    assert report.mechanism == "none" and not report.writes
    pipes.report_asset_materialization.assert_not_called()


def test_unusable_session_is_logged_not_raised() -> None:
    pipes = FakePipes(["a"])
    with report_spark_writes(object(), pipes) as report:  # type: ignore[arg-type]
        pass
    assert report.mechanism == "none"
    assert any(level == "WARNING" and "cannot observe" in text for level, text in pipes.messages)


def test_body_exception_propagates_and_hooks_are_removed() -> None:
    pipes = FakePipes(["a"])
    with pytest.raises(KeyError), report_spark_writes(object(), pipes):  # type: ignore[arg-type]
        raise KeyError("user error")


def test_bad_assets_argument_fails_early() -> None:
    with pytest.raises(TypeError), report_spark_writes(object(), FakePipes(["a"]), assets=42):  # type: ignore[arg-type]
        pass


def test_importing_the_module_does_not_import_pyspark() -> None:
    code = "import sys, dagster_pipes_spark.spark; assert 'pyspark' not in sys.modules, 'pyspark imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- Spark Connect instrumentation, without a server ------------------------------------------


class FakeConnectClient:
    """Answers ``execute_command`` like a Connect server that ran the write."""

    def __init__(self) -> None:
        self.commands: list[Any] = []
        self.fail: Exception | None = None

    def execute_command(self, command: Any, observations: Any = None) -> tuple[Any, Any, Any]:
        self.commands.append(command)
        if self.fail is not None:
            raise self.fail
        relation = (
            command.write_operation.input
            if command.HasField("write_operation")
            else command.write_operation_v2.input
        )
        flows = []
        if relation.HasField("collect_metrics"):
            flows.append((relation.collect_metrics.name, {"rows": 7}))
        return None, {}, mock.Mock(flows=flows)


class FakeConnectSession:
    def __init__(self) -> None:
        self.client = FakeConnectClient()


def test_connect_writers_are_wrapped_observed_and_restored() -> None:
    pytest.importorskip("pyspark.sql.connect.readwriter")
    from pyspark.sql.connect import plan as connect_plan
    from pyspark.sql.connect.readwriter import DataFrameWriter, DataFrameWriterV2

    from dagster_pipes_spark.spark import _connect as _spark_connect

    original_save = DataFrameWriter.__dict__["save"]
    session = FakeConnectSession()
    other_session = FakeConnectSession()
    collector = Collector()
    backend = _spark_connect.ConnectBackend(session, collector, lambda m: None, lambda m: None)
    backend.start()
    try:
        assert _spark_connect.is_instrumented()
        writer = DataFrameWriter(connect_plan.Range(0, 10, 1), session)  # type: ignore[arg-type]
        source = writer._write._child
        writer.mode("overwrite").parquet("file:/tmp/out/")
        assert writer._write._child is source  # the observed plan was only lent to the command
        sent = session.client.commands[-1].write_operation
        assert sent.input.HasField("collect_metrics") and sent.path == "file:/tmp/out/"
        DataFrameWriterV2(connect_plan.Range(0, 3, 1), session, "main.s.t").using("delta").append()  # type: ignore[arg-type]
        # Delta: no observation, the row count will come from the table history
        assert not session.client.commands[-1].write_operation_v2.input.HasField("collect_metrics")
        session.client.fail = RuntimeError("[TABLE_OR_VIEW_ALREADY_EXISTS] t exists")
        with pytest.raises(RuntimeError):
            DataFrameWriter(connect_plan.Range(0, 1, 1), session).saveAsTable("t")  # type: ignore[arg-type]
        # another session's writes are not ours
        DataFrameWriter(connect_plan.Range(0, 1, 1), other_session).parquet("/elsewhere")  # type: ignore[arg-type]
        assert not other_session.client.commands[-1].write_operation.input.HasField("collect_metrics")
    finally:
        backend.stop(1.0)
    assert not _spark_connect.is_instrumented()
    assert DataFrameWriter.__dict__["save"] is original_save
    writes, failures = collector.snapshot()
    assert [(w.operation, w.target, w.mode, w.rows, w.format, w.is_delta) for w in writes] == [
        (OP_WRITE, "/tmp/out", "overwrite", 7, "parquet", False),
        (OP_INSERT, "main.s.t", "append", None, "delta", True),
    ]
    assert [(w.operation, w.target, w.error) for w in failures] == [
        (OP_CTAS, "t", "[TABLE_OR_VIEW_ALREADY_EXISTS] t exists")
    ]
    assert collector.hook_calls == 3 and not collector.hook_errors


# --- Delta: which commits are the block's own (commit tags) ------------------------------------


def tagged_row(version: int, rows: int, tag: str | None) -> Any:
    row = history_row(version, "WRITE", {"numOutputRows": str(rows), "numFiles": "1"})
    return row.asDict() | {"userMetadata": tag}


def test_tagged_commits_are_matched_past_concurrent_writers() -> None:
    """Other writers' commits (untagged, or another block's tag) are never taken for ours."""
    ours, theirs = "dagster-pipes-spark:aaa", "dagster-pipes-spark:bbb"
    rows = [tagged_row(1, 3, ours), tagged_row(2, 7, theirs), tagged_row(3, 3, ours), tagged_row(4, 5, None)]
    writes = [SparkWrite(OP_INSERT, table=("t",), is_delta=True) for _ in range(2)]
    seen: list[str] = []

    def run_sql(query: str) -> list[Any]:
        seen.append(query)
        return list(reversed(rows))

    enrich_from_delta_history(writes, run_sql, probe_unknown=False, debug=print, tag=ours)
    assert [(w.delta_version, w.rows) for w in writes] == [(1, 3), (3, 3)]
    assert len(seen) == 1  # all of ours came back in the first page
    untagged = [SparkWrite(OP_INSERT, table=("t",), is_delta=True)]
    enrich_from_delta_history(untagged, run_sql, probe_unknown=False, debug=print)
    assert untagged[0].delta_version == 4  # no tag: the newest matching commit, as before


def test_history_is_read_further_back_when_concurrent_commits_hide_ours() -> None:
    ours = "dagster-pipes-spark:aaa"
    rows = [tagged_row(1, 3, ours)] + [tagged_row(v, 7, None) for v in range(2, 40)]
    limits: list[int] = []

    def run_sql(query: str) -> list[Any]:
        limit = int(query.rsplit(" ", 1)[1])
        limits.append(limit)
        return list(reversed(rows))[:limit]

    write = SparkWrite(OP_INSERT, table=("t",), is_delta=True)
    enrich_from_delta_history([write], run_sql, probe_unknown=False, debug=print, tag=ours)
    assert write.delta_version == 1 and write.rows == 3
    assert limits[0] == 6 and limits[1] >= 40


def test_commit_tagger_sets_restores_and_respects_the_job() -> None:
    conf: dict[str, str] = {}

    def unset() -> None:
        conf.pop("k")

    tagger = _delta.CommitTagger(lambda: conf.get("k"), lambda v: conf.__setitem__("k", v), unset)
    tagger.start()
    assert tagger.tag and conf["k"] == tagger.tag and tagger.tag.startswith("dagster-pipes-spark:")
    inner = _delta.CommitTagger(lambda: conf.get("k"), lambda v: conf.__setitem__("k", v), unset)
    inner.start()  # a nested block on the same session shares the tag, and leaves it in place
    inner.stop()
    assert inner.tag == tagger.tag and conf["k"] == tagger.tag
    tagger.stop()
    assert "k" not in conf
    conf["k"] = "the job's own metadata"
    users = _delta.CommitTagger(lambda: conf.get("k"), lambda v: conf.__setitem__("k", v), unset)
    users.start()
    users.stop()
    assert users.tag is None and users.note and conf["k"] == "the job's own metadata"


def test_maintenance_commands() -> None:
    assert _commands.maintenance_command("OptimizeTableCommand") == "OPTIMIZE"
    assert _commands.maintenance_command("VacuumTableCommand") == "VACUUM"
    assert _commands.maintenance_command("DeltaReorgTableCommand") == "REORG"
    assert _commands.maintenance_command("MergeIntoCommand") is None
    assert _delta.maintenance_statement("  optimize t ZORDER BY (a)") == "OPTIMIZE"
    assert _delta.maintenance_statement("VACUUM t RETAIN 168 HOURS") == "VACUUM"
    assert _delta.maintenance_statement("SELECT 1") is None


def test_create_commits_name_the_operation() -> None:
    """Delta's commit names a saveAsTable overwrite: a new table, or a WRITE into an existing one."""
    created = SparkWrite(OP_CTAS, table=("t",), mode="overwrite")
    _delta.apply_commit(
        created, _delta.DeltaCommit(0, "CREATE OR REPLACE TABLE AS SELECT", {"numOutputRows": 4})
    )
    assert created.operation == OP_CREATE_OR_REPLACE and created.rows == 4
    replaced = SparkWrite(OP_CREATE_OR_REPLACE, table=("t",), mode="overwrite")
    _delta.apply_commit(replaced, _delta.DeltaCommit(5, "WRITE", {"numOutputRows": 6}))
    assert replaced.operation == OP_INSERT_OVERWRITE and replaced.delta_version == 5


# --- Iceberg: snapshots ---------------------------------------------------------------------------


def test_iceberg_snapshots_fill_rows_and_snapshot_ids() -> None:
    """Summaries as Iceberg 1.10 writes them (copy-on-write DELETE rewrites a file)."""
    from dagster_pipes_spark.spark._iceberg import enrich_from_iceberg_snapshots

    app = "local-1"
    snapshots = [  # newest first, as the query orders them
        {
            "snapshot_id": 3,
            "operation": "overwrite",
            "summary": {"added-records": "2", "deleted-records": "5", "spark.app.id": app},
        },
        {
            "snapshot_id": 9,
            "operation": "append",
            "summary": {"added-records": "8", "spark.app.id": "local-other"},
        },
        {
            "snapshot_id": 2,
            "operation": "append",
            "summary": {"added-records": "4", "added-data-files": "2", "spark.app.id": app},
        },
        {"snapshot_id": 1, "operation": "append", "summary": {"added-records": "10", "spark.app.id": app}},
    ]
    writes = [
        SparkWrite(OP_CTAS, table=("iceberg", "db", "t"), format="iceberg"),
        SparkWrite(OP_INSERT, table=("iceberg", "db", "t"), format="iceberg"),
        SparkWrite(OP_DELETE, table=("iceberg", "db", "t")),
    ]
    queries: list[str] = []

    def run_sql(query: str) -> list[Any]:
        queries.append(query)
        return snapshots

    enrich_from_iceberg_snapshots(writes, run_sql, app_id=app, on_error=print)
    assert queries == [
        "SELECT snapshot_id, operation, summary FROM `iceberg`.`db`.`t`.`snapshots` ORDER BY committed_at DESC LIMIT 23"
    ]
    assert [(w.snapshot_id, w.rows, w.rows_deleted) for w in writes] == [
        (1, 10, None),
        (2, 4, None),
        (3, 3, 3),
    ]
    assert writes[1].files == 2
    md = build_metadata(writes, app)
    assert (
        md["iceberg/snapshot_id"]["raw_value"] == 3 and md["dagster/storage_kind"]["raw_value"] == "iceberg"
    )
    assert data_version_for(writes) == "3"
