"""Partitions: ``partition_predicate`` and the hooks' ``dagster/partition_row_count``,
``spark/partitions_written``, ``dagster/storage_kind`` and fully qualified ``dagster/table_name``.

End to end, real Dagster materializes partitioned assets (daily, static, multi; a key range) through
``PipesSubprocessClient``; the external job (``spark_scripts/spark_partitions_job.py``, classic and
Spark Connect) builds the predicate, overwrites exactly the partition of partitioned parquet tables
(a dynamic partition overwrite of the filtered rows, and ``INSERT OVERWRITE ... PARTITION``) and
sends back what the tables hold; it also evaluates the edge-case predicates built here (time zones,
DST, hourly windows, quotes) in Spark. Delta is not installed here: the ``replaceWhere`` / ``INSERT
INTO ... REPLACE WHERE`` paths are covered by the condition tests below.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

dg = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import TESTS, run_pipes  # noqa: E402

import dagster_pipes_spark as dps  # noqa: E402
from dagster_pipes_spark import DagsterPipesError  # noqa: E402
from dagster_pipes_spark.spark import partition_predicate  # noqa: E402
from dagster_pipes_spark.spark._connect import _catalog as _connect_catalog  # noqa: E402
from dagster_pipes_spark.spark._connect import _facts as _connect_facts  # noqa: E402
from dagster_pipes_spark.spark._metadata import build_metadata, dagster_table_name, storage_kind  # noqa: E402
from dagster_pipes_spark.spark._partitions import (  # noqa: E402
    PartitionScope,
    Window,
    build_predicate,
    replaces_scope,
    sql_insert_partitions,
)
from dagster_pipes_spark.spark._plan_facts import condition_conjuncts, spine_conjuncts  # noqa: E402
from dagster_pipes_spark.spark._sql import conjuncts_from_sql  # noqa: E402
from dagster_pipes_spark.spark._write_record import OP_INSERT, OP_INSERT_OVERWRITE, SparkWrite  # noqa: E402

sys.path.insert(0, str(TESTS / "spark_scripts"))
from spark_partitions_job import source_rows  # noqa: E402

JOB = TESTS / "spark_scripts" / "spark_partitions_job.py"
ASSETS = ["events_dpo", "events_sql", "events_append"]
NY = "America/New_York"
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
STATIC = dg.StaticPartitionsDefinition(["eu", "us", "o'x"])
MULTI = dg.MultiPartitionsDefinition({"region": STATIC, "date": DAILY})


# --- real Pipes contexts as Dagster fills them --------------------------------------------------


def context_data(partitions_def: Any, key: str | None) -> dict[str, Any]:
    """The partition fields of a Pipes context, built the way the orchestrator builds them
    (``dagster._core.pipes.context.build_external_execution_context_data``): the window is
    ``TimeWindow.start/end.isoformat()`` of the partitions definition."""
    window = None
    if key is not None and isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        tw = partitions_def.time_window_for_partition_key(key)
        window = {"start": tw.start.isoformat(), "end": tw.end.isoformat()}
    return {
        "asset_keys": ["a"],
        "code_version_by_asset_key": {"a": None},
        "provenance_by_asset_key": {"a": None},
        "partition_key": key,
        "partition_key_range": {"start": key, "end": key} if key is not None else None,
        "partition_time_window": window,
        "run_id": "r",
        "job_name": None,
        "retry_number": 0,
        "extras": {},
    }


@pytest.fixture
def pipes_context(tmp_path: Path) -> Iterator[Any]:
    """A factory of real ``PipesContext`` objects over given context data."""
    opened: list[Any] = []

    def make(data: dict[str, Any]) -> Any:
        loader = dps.PipesMappingParamsLoader(
            {
                "DAGSTER_PIPES_CONTEXT": dps.encode_param({"data": data}),
                "DAGSTER_PIPES_MESSAGES": dps.encode_param({"path": str(tmp_path / "messages")}),
            }
        )
        context = dps.PipesContext(loader, dps.PipesDefaultContextLoader(), dps.PipesDefaultMessageWriter())
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


def scope_of(partitions_def: Any, key: str) -> PartitionScope:
    data = context_data(partitions_def, key)
    tw = data["partition_time_window"]
    window = (
        Window(dt.datetime.fromisoformat(tw["start"]), dt.datetime.fromisoformat(tw["end"])) if tw else None
    )
    return PartitionScope((key, key), window)


# --- the predicate text -------------------------------------------------------------------------


def test_daily_window_on_a_date_column(pipes_context: Any) -> None:
    pipes = pipes_context(context_data(DAILY, "2024-01-02"))
    assert partition_predicate(pipes, "event_date") == (
        "event_date >= DATE '2024-01-02' AND event_date < DATE '2024-01-03'"
    )
    assert partition_predicate(pipes, "ts", column_type="timestamp") == (
        "ts >= TIMESTAMP '2024-01-02 00:00:00+00:00' AND ts < TIMESTAMP '2024-01-03 00:00:00+00:00'"
    )
    assert partition_predicate(pipes, "ds", column_type="string") == "ds = '2024-01-02'"


def test_daily_window_in_a_time_zone_keeps_each_ends_offset(pipes_context: Any) -> None:
    """The day DST starts in New York is 23 hours: -05:00 at its start, -04:00 at its end."""
    daily_ny = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone=NY)
    pipes = pipes_context(context_data(daily_ny, "2024-03-10"))
    assert partition_predicate(pipes, "d") == "d >= DATE '2024-03-10' AND d < DATE '2024-03-11'"
    assert partition_predicate(pipes, "ts", column_type="timestamp") == (
        "ts >= TIMESTAMP '2024-03-10 00:00:00-05:00' AND ts < TIMESTAMP '2024-03-11 00:00:00-04:00'"
    )
    assert partition_predicate(pipes, "ts", column_type="timestamp_ntz") == (
        "ts >= TIMESTAMP_NTZ '2024-03-10 00:00:00' AND ts < TIMESTAMP_NTZ '2024-03-11 00:00:00'"
    )


def test_hourly_windows_default_to_timestamps_and_refuse_dates(pipes_context: Any) -> None:
    hourly = dg.HourlyPartitionsDefinition(start_date="2024-01-01-00:00", timezone=NY)
    pipes = pipes_context(context_data(hourly, "2024-11-03-01:00"))  # the first of two 01:00 hours
    assert partition_predicate(pipes, "ts") == (
        "ts >= TIMESTAMP '2024-11-03 01:00:00-04:00' AND ts < TIMESTAMP '2024-11-03 01:00:00-05:00'"
    )
    with pytest.raises(DagsterPipesError, match="does not start and end at midnight"):
        partition_predicate(pipes, "d", column_type="date")
    with pytest.raises(DagsterPipesError, match="daylight-saving change"):
        partition_predicate(pipes, "ts", column_type="timestamp_ntz")


def test_keys_are_escaped_and_columns_quoted(pipes_context: Any) -> None:
    quoting = dg.StaticPartitionsDefinition(["o'x\\y", "a"])
    pipes = pipes_context(context_data(quoting, "o'x\\y"))
    assert partition_predicate(pipes, "region") == "region = 'o\\'x\\\\y'"
    assert partition_predicate(pipes, "my col") == "`my col` = 'o\\'x\\\\y'"
    assert partition_predicate(pipes, "s.date") == "s.`date` = 'o\\'x\\\\y'"
    assert partition_predicate(pipes, "`a.b`") == "`a.b` = 'o\\'x\\\\y'"
    numbers = pipes_context(context_data(dg.StaticPartitionsDefinition(["7", "x"]), "7"))
    assert partition_predicate(numbers, "n", column_type="number") == "n = 7"
    assert partition_predicate(numbers, "n") == "n = '7'"


def test_multi_partition_needs_every_dimension(pipes_context: Any) -> None:
    """Dagster joins the dimension keys in the order of the sorted dimension names."""
    data = context_data(MULTI, "2024-01-02|eu")
    data["partition_time_window"] = context_data(DAILY, "2024-01-02")["partition_time_window"]
    pipes = pipes_context(data)
    assert partition_predicate(pipes, {"region": "region", "date": "ds"}) == (
        "ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03' AND region = 'eu'"
    )
    assert partition_predicate(pipes, {"region": None, "date": "ds"}) == (
        "ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03'"
    )
    with pytest.raises(DagsterPipesError, match="multi-dimensional"):
        partition_predicate(pipes, "ds")
    with pytest.raises(DagsterPipesError, match="has 2 dimension"):
        partition_predicate(pipes, {"date": "ds"})


def test_column_types_come_from_the_data(pipes_context: Any) -> None:
    from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType

    schema = StructType(
        [StructField("Ds", DateType()), StructField("ts", TimestampType()), StructField("k", StringType())]
    )
    pipes = pipes_context(context_data(DAILY, "2024-01-02"))
    assert partition_predicate(pipes, "ds", data=schema).startswith("ds >= DATE '2024-01-02'")
    assert partition_predicate(pipes, "ts", data=schema).startswith(
        "ts >= TIMESTAMP '2024-01-02 00:00:00+00:00'"
    )
    assert partition_predicate(pipes, "t.k", data=schema) == "t.k = '2024-01-02'"
    with pytest.raises(DagsterPipesError, match="not in the data's schema"):
        partition_predicate(pipes, "missing", data=schema)
    with pytest.raises(DagsterPipesError, match="Invalid column_type"):
        partition_predicate(pipes, "ds", column_type="datetime")


def test_key_range_of_static_partitions_is_refused(pipes_context: Any) -> None:
    data = context_data(STATIC, "eu")
    data.update(partition_key=None, partition_key_range={"start": "eu", "end": "us"})
    with pytest.raises(DagsterPipesError, match=r"key range 'eu'\.\.\.'us'.*cannot compute a predicate"):
        partition_predicate(pipes_context(data), "region")


def test_time_window_range_has_a_predicate(pipes_context: Any) -> None:
    data = context_data(DAILY, "2024-01-02")
    data.update(
        partition_key=None,
        partition_key_range={"start": "2024-01-02", "end": "2024-01-04"},
        partition_time_window={"start": "2024-01-02T00:00:00+00:00", "end": "2024-01-05T00:00:00+00:00"},
    )
    assert (
        partition_predicate(pipes_context(data), "ds") == "ds >= DATE '2024-01-02' AND ds < DATE '2024-01-05'"
    )


def test_unpartitioned_step_and_no_op_context(pipes_context: Any) -> None:
    with pytest.raises(DagsterPipesError, match=r"targets no partition.*range of partitions"):
        partition_predicate(pipes_context(context_data(None, None)), "ds")
    from unittest.mock import MagicMock

    with pytest.raises(DagsterPipesError, match="not launched by Dagster"):
        partition_predicate(MagicMock(), "ds")
    assert (
        partition_predicate(MagicMock(), "ds", default="ds = DATE '2024-01-01'") == "ds = DATE '2024-01-01'"
    )


# --- conditions and exact replacement -----------------------------------------------------------


def test_conditions_equal_to_the_predicate_replace_the_scope() -> None:
    scope = scope_of(DAILY, "2024-01-02")
    for condition in (
        "ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03'",
        "((ds < DATE'2024-01-03') and (DATE '2024-01-02' <= t.ds))",  # reordered, flipped, qualified
        "ds >= DATE '2024-01-02' AND ds <= DATE '2024-01-02'",  # inclusive end day
        "ds = DATE '2024-01-02'",
        "ds = '2024-01-02'",  # a string column holding the key
        "ds IN ('2024-01-02')",
    ):
        assert replaces_scope(scope, conjuncts_from_sql(condition)), condition
    for condition in (
        "ds >= DATE '2024-01-01' AND ds < DATE '2024-01-03'",  # two days
        "ds >= DATE '2024-01-02'",  # open-ended
        "ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03' AND v > 0",  # a subset of the rows
        "ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03' OR ds IS NULL",
        "ds = '2024-01-03'",
        "TRUE",
    ):
        assert not replaces_scope(scope, conjuncts_from_sql(condition)), condition


def test_timestamp_conditions_compare_instants() -> None:
    hourly = dg.HourlyPartitionsDefinition(start_date="2024-01-01-00:00", timezone=NY)
    scope = scope_of(hourly, "2024-11-03-01:00")
    same_instants = "ts >= TIMESTAMP '2024-11-03 05:00:00Z' AND ts < TIMESTAMP '2024-11-03 06:00:00+00:00'"
    assert replaces_scope(scope, conjuncts_from_sql(same_instants))
    second_hour = "ts >= TIMESTAMP '2024-11-03 01:00:00-05:00' AND ts < TIMESTAMP '2024-11-03 02:00:00-05:00'"
    assert not replaces_scope(scope, conjuncts_from_sql(second_hour))
    no_offset = "ts >= TIMESTAMP '2024-11-03 05:00:00' AND ts < TIMESTAMP '2024-11-03 06:00:00'"
    assert not replaces_scope(scope, conjuncts_from_sql(no_offset))  # depends on the session time zone


def test_multi_partition_conditions() -> None:
    window = Window(
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc), dt.datetime(2024, 1, 3, tzinfo=dt.timezone.utc)
    )
    scope = PartitionScope(("2024-01-02|eu", "2024-01-02|eu"), window)
    assert replaces_scope(
        scope, conjuncts_from_sql("region = 'eu' AND ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03'")
    )
    assert replaces_scope(scope, (("region", "=", "'eu'"), ("ds", "=", "'2024-01-02'")))  # a static spec
    assert not replaces_scope(scope, conjuncts_from_sql("ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03'"))
    assert not replaces_scope(scope, conjuncts_from_sql("region = 'eu'"))


def test_dynamic_overwrite_needs_every_partition_column_and_partition() -> None:
    scope = scope_of(DAILY, "2024-01-02")
    rows_filter = conjuncts_from_sql(
        "ds >= DATE '2024-01-02' AND ds < DATE '2024-01-03' AND v > 3", lenient=True
    )
    assert replaces_scope(scope, rows_filter, partition_columns=["ds"], num_partitions=1)
    assert replaces_scope(scope, rows_filter, partition_columns=["ds"], rows=5)  # Connect: one partition
    assert not replaces_scope(scope, rows_filter, partition_columns=["ds"], num_partitions=0)  # wrote nothing
    assert not replaces_scope(scope, rows_filter, partition_columns=["ds"], rows=0)
    # a table also partitioned by region: regions missing from the data keep their old rows
    assert not replaces_scope(scope, rows_filter, partition_columns=["ds", "region"], num_partitions=2)
    week = PartitionScope(
        ("2024-01-01", "2024-01-01"),
        Window(
            dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 1, 8, tzinfo=dt.timezone.utc)
        ),
    )
    week_filter = conjuncts_from_sql("ds >= DATE '2024-01-01' AND ds < DATE '2024-01-08'")
    assert replaces_scope(week, week_filter, partition_columns=["ds"], num_partitions=7)
    assert not replaces_scope(week, week_filter, partition_columns=["ds"], num_partitions=6)  # a day missing
    assert not replaces_scope(week, week_filter, partition_columns=["ds"], rows=10)  # Connect cannot tell


def test_sql_insert_partitions() -> None:
    found = sql_insert_partitions("INSERT OVERWRITE TABLE t PARTITION (region = 'o\\'x', ds) SELECT 1")
    assert found is not None and found.static == {"region": "o'x"} and found.dynamic == ("ds",)
    found = sql_insert_partitions(
        "WITH s AS (SELECT 1) INSERT INTO main.x.t REPLACE WHERE ds >= DATE '2024-01-02' AND"
        " ds < DATE '2024-01-03' SELECT * FROM s"
    )
    assert found is not None and found.replace_where == (
        ("ds", ">=", "DATE '2024-01-02'"),
        ("ds", "<", "DATE '2024-01-03'"),
    )
    assert sql_insert_partitions("INSERT INTO t SELECT 1") == sql_insert_partitions("INSERT INTO t SELECT 1")
    assert sql_insert_partitions("UPDATE t SET a = 1") is None


def test_connect_conditions_from_columns() -> None:
    from pyspark.sql.connect import functions as sf

    condition = (sf.col("ds") >= sf.lit(dt.date(2024, 1, 2))) & (sf.lit(dt.date(2024, 1, 3)) > sf.col("ds"))
    assert _connect_facts.condition_conjuncts_of(condition) == (
        ("ds", ">=", "DATE '2024-01-02'"),
        ("ds", "<", "DATE '2024-01-03'"),
    )
    assert _connect_facts.condition_conjuncts_of(sf.expr("region = 'eu'")) == (("region", "=", "'eu'"),)
    assert _connect_facts.condition_conjuncts_of(sf.col("v") > sf.col("w")) is None
    mixed = (sf.col("v") > sf.col("w")) & (sf.col("Region") == sf.lit("eu"))
    assert condition_conjuncts(_connect_facts.ClientPlanFacts(), mixed) == ([("Region", "=", "'eu'")], False)


class _TinyFacts:
    """A plan representation of nested tuples, to pin the shared walkers' rules down:
    ``("Project", child, [(out, source)])``, ``("Filter", child, condition)``, ``(kind, child)``;
    conditions ``("and", l, r)``, ``(op, l, r)``, ``("col", key, name)``, ``("lit", sql)``."""

    def node_kind(self, node: Any) -> str:
        return node[0]

    def only_child(self, node: Any) -> Any:
        return node[1] if len(node) > 1 else None

    def projection(self, node: Any) -> Any:
        return node[2]

    def filter_condition(self, node: Any) -> Any:
        return node[2]

    def operator(self, expr: Any) -> str | None:
        return expr[0] if expr[0] in ("and", "=", ">=", ">", "<=", "<") else None

    def operands(self, expr: Any) -> Any:
        return expr[1], expr[2]

    def column(self, expr: Any) -> Any:
        return (expr[1], expr[2]) if expr[0] == "col" else None

    def literal(self, expr: Any) -> str | None:
        return expr[1] if expr[0] == "lit" else None

    def sql(self, expr: Any) -> str | None:
        return expr[1] if expr[0] == "sql" else None


def test_shared_walkers_follow_columns_through_projections_and_stop_where_rows_change() -> None:
    ds = ("col", 1, "ds")
    scan = ("Relation",)
    where = ("Filter", scan, ("and", (">=", ds, ("lit", "'a'")), ("<", ("lit", "'c'"), ("col", 2, "other"))))
    renamed = ("Project", ("Sort", where), [(7, 1), (8, None)])  # ds AS day, f(x) AS y
    facts = _TinyFacts()
    # the written column `day` is ds below the projection; the term on `other` is not a written one
    assert spine_conjuncts(facts, renamed, {7: "day"}) == [("day", ">=", "'a'")]
    assert spine_conjuncts(facts, renamed, {8: "y"}) == []  # a computed column is not followed
    assert spine_conjuncts(facts, ("Aggregate", where), {1: "ds"}) == []  # rows change: stop
    unknown = ("Project", where, [(None, None)])  # the representation cannot tell: stop
    assert spine_conjuncts(facts, unknown, None) == []
    texts = ("Filter", scan, ("sql", "Region = 'eu' AND v > w"))
    assert spine_conjuncts(facts, ("Project", texts, [("region", "region")]), None) == [
        ("Region", "=", "'eu'")
    ]
    assert condition_conjuncts(facts, ("sql", "Region = 'eu' AND v > w")) == (
        [("Region", "=", "'eu'")],
        False,
    )


def test_connect_reads_partition_columns_of_v1_and_v2_tables() -> None:
    class Session:
        def __init__(self, rows: list[tuple[str, str]]) -> None:
            self.rows = rows

        def sql(self, _query: str) -> Any:
            return self

        def collect(self) -> list[tuple[str, str]]:
            return self.rows

    v1 = [("v", "int"), ("ds", "date"), ("# Partition Information", ""), ("# col_name", "data_type")]
    v1 += [("ds", "date"), ("", ""), ("# Detailed Table Information", ""), ("Catalog", "spark_catalog")]
    v1 += [("Database", "default"), ("Table", "t"), ("Provider", "parquet"), ("Location", "file:/wh/t")]
    assert _connect_catalog.describe_table(Session(v1), ("t",)) == (
        ("spark_catalog", "default", "t"),
        [("v", "int"), ("ds", "date")],
        "parquet",
        ("ds",),
        "file:/wh/t",
    )
    v2 = [
        ("v", "int"),
        ("ds", "date"),
        ("", ""),
        ("# Partitioning", ""),
        ("Part 0", "ds"),
        ("Part 1", "days(ts)"),
    ]
    v2 += [("", ""), ("# Metadata Columns", ""), ("_metadata", "struct"), ("Provider", "delta")]
    assert _connect_catalog.describe_table(Session(v2), ("t",))[2:] == ("delta", ("ds",), None)
    unpartitioned = [("v", "int"), ("", ""), ("# Partitioning", ""), ("Not partitioned", "")]
    assert _connect_catalog.describe_table(Session(unpartitioned), ("t",))[3] == ()


# --- classic plans (py4j-shaped doubles of Catalyst nodes) -------------------------------------


class J:
    """A JavaObject: ``nodeName()`` and the given no-argument methods."""

    def __init__(self, node_name: str, **methods: Any) -> None:
        self._node_name = node_name
        self._methods = methods

    def nodeName(self) -> str:  # noqa: N802
        return self._node_name

    def __getattr__(self, name: str) -> Any:
        methods = self.__dict__.get("_methods", {})
        if name in methods:
            return lambda *args: methods[name]
        raise AttributeError(name)


class Seq(J):
    """``scala.collection.Seq``."""

    def __init__(self, *items: Any) -> None:
        super().__init__("Seq", size=len(items), head=items[0] if items else None)
        self.items = items

    def apply(self, i: int) -> Any:
        return self.items[i]


class ScalaMap(J):
    """``scala.collection.Map[String, String]``."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__("Map")
        self.values = values

    def iterator(self) -> Any:
        pairs = iter([J("Tuple2", _1=k, _2=v) for k, v in self.values.items()])
        pending = list(self.values)

        class It:
            def hasNext(self) -> bool:  # noqa: N802
                return bool(pending)

            def next(self) -> Any:
                pending.pop()
                return next(pairs)

        return It()


class Opt(J):
    def __init__(self, value: Any) -> None:
        super().__init__("Option", isDefined=value is not None, get=value)


def attr(name: str, expr_id: int) -> J:
    return J("AttributeReference", name=name, exprId=J("ExprId", id=expr_id), foldable=False)


def lit(type_name: str, value: Any) -> J:
    return J("Literal", foldable=True, dataType=J("DataType", typeName=type_name), eval=value)


def day_range(column: J, first: dt.date, end: dt.date) -> J:
    days = [(d - dt.date(1970, 1, 1)).days for d in (first, end)]
    return J(
        "And",
        left=J("GreaterThanOrEqual", left=column, right=lit("date", days[0])),
        right=J("GreaterThan", left=lit("date", days[1]), right=column),  # flipped: end > column
    )


def test_classic_dynamic_overwrite_follows_the_partition_column_through_projections() -> None:
    from dagster_pipes_spark.spark._classic._partitions import read_partitions
    from dagster_pipes_spark.spark._partitions import write_replaces_scope, written_partitions

    def plan(written: J) -> J:
        relation = J("LogicalRelation", children=Seq())
        rows = J(
            "Filter", condition=day_range(attr("event_date", 3), dt.date(2024, 1, 2), dt.date(2024, 1, 3))
        )
        rows._methods["children"] = Seq(J("SubqueryAlias", children=Seq(relation)))
        return J("Project", projectList=Seq(attr("v", 1), written), children=Seq(rows))

    def insert(query: J) -> J:
        return J(
            "InsertIntoHadoopFsRelationCommand",
            partitionColumns=Seq(attr("ds", 7)),
            staticPartitions=ScalaMap({}),
            options=ScalaMap({"partitionOverwriteMode": "DYNAMIC"}),
            query=query,
        )

    renamed = J("Alias", child=attr("event_date", 3), exprId=J("ExprId", id=7))  # event_date AS ds
    write = SparkWrite(OP_INSERT_OVERWRITE, table=("t",), mode="overwrite", rows=5)
    read_partitions(insert(plan(renamed)), write, {"numParts": 1}, lambda: "static")
    assert write.dynamic_overwrite and write.partition_columns == ("ds",)
    assert write.replaced == (("ds", ">=", "DATE '2024-01-02'"), ("ds", "<", "DATE '2024-01-03'"))
    assert write_replaces_scope(scope_of(DAILY, "2024-01-02"), write)
    assert written_partitions(write) == [{"ds": "2024-01-02"}]
    computed = J("Alias", child=J("DateAdd"), exprId=J("ExprId", id=7))  # ds computed, not filtered
    other = SparkWrite(OP_INSERT_OVERWRITE, table=("t",), mode="overwrite", rows=5)
    read_partitions(insert(plan(computed)), other, {"numParts": 1}, lambda: "static")
    assert other.replaced == () and not write_replaces_scope(scope_of(DAILY, "2024-01-02"), other)


def test_classic_static_spec_overwrite_conditions_and_delta_replace_where() -> None:
    from dagster_pipes_spark.spark._classic._partitions import read_partitions
    from dagster_pipes_spark.spark._partitions import write_replaces_scope

    scope = scope_of(DAILY, "2024-01-02")
    static = SparkWrite(OP_INSERT_OVERWRITE, table=("t",), mode="overwrite", rows=3)
    node = J(
        "InsertIntoHadoopFsRelationCommand",
        partitionColumns=Seq(attr("ds", 7)),
        staticPartitions=ScalaMap({"ds": "2024-01-02"}),
        options=ScalaMap({}),
    )
    read_partitions(node, static, {}, lambda: "dynamic")
    assert static.static_partitions == {"ds": "2024-01-02"} and static.num_partitions == 1
    assert write_replaces_scope(scope, static)

    by_expression = SparkWrite(OP_INSERT_OVERWRITE, table=("t",), mode="overwrite", rows=3)
    condition = day_range(attr("ds", 7), dt.date(2024, 1, 2), dt.date(2024, 1, 3))
    read_partitions(J("OverwriteByExpression", deleteExpr=condition), by_expression, {}, lambda: "static")
    assert write_replaces_scope(scope, by_expression)
    partly = J("And", left=condition, right=J("GreaterThan", left=attr("v", 1), right=attr("w", 2)))
    read_partitions(J("OverwriteByExpression", deleteExpr=partly), by_expression, {}, lambda: "static")
    assert by_expression.replaced is None  # a term that is not column <op> literal: unknown region

    delta = SparkWrite(OP_INSERT_OVERWRITE, table=("t",), mode="overwrite", rows=3, is_delta=True)
    options = J("DeltaOptions", replaceWhere=Opt("ds >= '2024-01-02' AND ds < '2024-01-03'"))
    read_partitions(J("WriteIntoDelta", options=options), delta, {}, lambda: "static")
    assert not write_replaces_scope(scope, delta)  # string bounds: not comparable with the window
    options = J("DeltaOptions", replaceWhere=Opt("ds >= DATE'2024-01-02' AND ds < DATE'2024-01-03'"))
    read_partitions(J("WriteIntoDelta", options=options), delta, {}, lambda: "static")
    assert write_replaces_scope(scope, delta)
    path = SparkWrite(OP_INSERT_OVERWRITE, path="/p", mode="overwrite", rows=3, is_delta=True)
    saved = J("SaveIntoDataSourceCommand", options=ScalaMap({"replacewhere": "ds = DATE '2024-01-02'"}))
    read_partitions(saved, path, {}, lambda: "static")
    assert write_replaces_scope(scope, path)


# --- storage kind and table names ---------------------------------------------------------------


def test_storage_kind_and_table_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [
        storage_kind(f) for f in ("delta", "PARQUET", "org.apache.iceberg.spark.source.IcebergSource")
    ] == [
        "delta",
        "parquet",
        "iceberg",
    ]
    assert [storage_kind(f) for f in ("DeltaDataSource", "com.databricks.spark.csv", "hive", None)] == [
        "delta",
        "csv",
        "hive",
        None,
    ]
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert dagster_table_name(("spark_catalog", "default", "t")) == "spark_catalog.default.t"
    assert dagster_table_name(("main", "my.schema", "t")) == "main.`my.schema`.t"
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert dagster_table_name(("spark_catalog", "default", "t")) == "hive_metastore.default.t"
    assert dagster_table_name(("main", "sales", "orders")) == "main.sales.orders"


def test_partition_metadata_from_writes() -> None:
    scope = scope_of(STATIC, "eu")
    spec = SparkWrite(
        OP_INSERT_OVERWRITE,
        table=("spark_catalog", "default", "t"),
        mode="overwrite",
        format="parquet",
        rows=4,
        partition_columns=("region",),
        static_partitions={"region": "eu"},
        num_partitions=1,
    )
    md = build_metadata([spec], None, scope)
    assert md["dagster/partition_row_count"] == {"raw_value": 4, "type": "int"}
    assert md["spark/partitions_written"]["raw_value"] == [{"region": "eu"}]
    assert md["dagster/storage_kind"] == {"raw_value": "parquet", "type": "text"}
    later_append = SparkWrite(OP_INSERT, table=spec.table, mode="append", format="parquet", rows=2)
    assert "dagster/partition_row_count" not in build_metadata([spec, later_append], None, scope)
    assert "dagster/partition_row_count" not in build_metadata([spec], None, scope_of(STATIC, "us"))
    assert "dagster/partition_row_count" not in build_metadata([spec], None, None)


# --- end to end through real Dagster -----------------------------------------------------------

SCENARIOS: dict[str, tuple[Any, Any]] = {
    "daily": (DAILY, "2024-01-02"),
    "static": (STATIC, "us"),
    "multi": (MULTI, dg.MultiPartitionKey({"region": "o'x", "date": "2024-01-03"})),
}
#: Which runs to make: every scenario on classic; Connect's partition reading is exercised by the
#: daily and multi runs (the multi one also covers quoted keys and a two-column partitioning).
RUNS = [
    ("classic", "daily"),
    ("classic", "static"),
    ("classic", "multi"),
    ("connect", "daily"),
    ("connect", "multi"),
]


def _utc(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())


def probes() -> list[dict[str, Any]]:
    """Edge-case predicates built here, evaluated by Spark in the job against fixed rows."""
    hourly = dg.HourlyPartitionsDefinition(start_date="2024-01-01-00:00", timezone=NY)
    daily_ny = dg.DailyPartitionsDefinition(start_date="2024-01-01", timezone=NY)
    hourly_kolkata = dg.HourlyPartitionsDefinition(start_date="2024-01-01-00:00", timezone="Asia/Kolkata")
    quoting = dg.StaticPartitionsDefinition(["o'x\\y", "o'x"])

    def instants(
        scope: PartitionScope, column_type: str | None, utc: list[str], selected: list[str]
    ) -> dict[str, Any]:
        return {
            "type": "timestamp",
            "column": "ts",
            "predicate": build_predicate(scope, "ts", column_type),
            "values": [f"TIMESTAMP '{u}+00:00'" for u in utc],
            "expected": [_utc(u) for u in selected],
        }

    return [
        # the first of New York's two 01:00 hours (EDT, -04:00): 05:00 to 06:00 UTC
        instants(
            scope_of(hourly, "2024-11-03-01:00"),
            None,
            ["2024-11-03 04:59:59", "2024-11-03 05:00:00", "2024-11-03 05:59:59", "2024-11-03 06:00:00"],
            ["2024-11-03 05:00:00", "2024-11-03 05:59:59"],
        ),
        # spring forward: 01:00-05:00 to 03:00-04:00 is one hour
        instants(
            scope_of(hourly, "2024-03-10-01:00"),
            None,
            ["2024-03-10 05:59:59", "2024-03-10 06:00:00", "2024-03-10 06:59:59", "2024-03-10 07:00:00"],
            ["2024-03-10 06:00:00", "2024-03-10 06:59:59"],
        ),
        # a 23-hour day on a TIMESTAMP column
        instants(
            scope_of(daily_ny, "2024-03-10"),
            "timestamp",
            ["2024-03-10 04:59:59", "2024-03-10 05:00:00", "2024-03-11 03:59:59", "2024-03-11 04:00:00"],
            ["2024-03-10 05:00:00", "2024-03-11 03:59:59"],
        ),
        {  # the same day on a DATE column named with a reserved word
            "type": "string",
            "column": "`date`",
            "predicate": build_predicate(scope_of(daily_ny, "2024-03-10"), "date"),
            "values": ["DATE '2024-03-09'", "DATE '2024-03-10'", "DATE '2024-03-11'"],
            "expected": ["2024-03-10"],
        },
        {  # wall-clock hours of a +05:30 zone on a TIMESTAMP_NTZ column
            "type": "string",
            "column": "ts",
            "predicate": build_predicate(scope_of(hourly_kolkata, "2024-01-01-10:00"), "ts", "timestamp_ntz"),
            "values": [
                f"TIMESTAMP_NTZ '2024-01-01 {t}'" for t in ("09:59:59", "10:00:00", "10:59:59", "11:00:00")
            ],
            "expected": ["2024-01-01 10:00:00", "2024-01-01 10:59:59"],
        },
        {  # quotes and backslashes in the key
            "type": "string",
            "column": "k",
            "predicate": build_predicate(scope_of(quoting, "o'x\\y"), "k"),
            "values": ["'o\\'x\\\\y'", "'o\\'x'", "'o\\'x\\\\\\\\y'", "'o''x\\\\y'"],
            "expected": ["o'x\\y"],
        },
    ]


def _run(mechanism: str, scenario: str) -> Any:
    partitions_def, key = SCENARIOS[scenario]
    extras: dict[str, Any] = {
        "mechanism": mechanism,
        "tmp": tempfile.mkdtemp(prefix=f"pipes-partitions-{mechanism}-"),
        "scenario": scenario,
    }
    if scenario == "daily":
        extras["probes"] = [{k: v for k, v in p.items() if k != "expected"} for p in probes()]
    return run_pipes(JOB, assets=ASSETS, partitions_def=partitions_def, partition_key=key, extras=extras)


#: The runs take minutes on a busy 2-core machine and the first test using them pays for them all.
E2E_TIMEOUT = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, str], Any]:
    """Every run, two at a time: most of a run is Spark starting and small jobs waiting. If the wait
    is interrupted (a timeout), runs not started yet are dropped and the two under way finish."""
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        futures = {run: pool.submit(_run, *run) for run in RUNS}
        return {run: future.result() for run, future in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _metadata(result: Any, asset: str) -> dict[str, Any]:
    return {k: getattr(v, "value", v) for k, v in result.materializations[asset].metadata.items()}


def _expected_tables(scenario: str) -> dict[str, list[tuple[int, str, str]]]:
    """What each table holds after the job: the old row of every other partition, and the source
    rows of the partition in scope (the append table keeps its old row there too)."""
    src = source_rows()
    if scenario == "daily":

        def in_scope(r: tuple[int, str, str]) -> bool:
            return r[2] == "2024-01-02"

        old = [(-1, "old", d) for d in sorted({r[2] for r in src})]
    elif scenario == "static":

        def in_scope(r: tuple[int, str, str]) -> bool:
            return r[1] == "us"

        old = [(-1, g, "1999-01-01") for g in sorted({r[1] for r in src})]
    else:

        def in_scope(r: tuple[int, str, str]) -> bool:
            return (r[1], r[2]) == ("o'x", "2024-01-03")

        old = [(-1, g, d) for g, d in sorted({(r[1], r[2]) for r in src})]
    new = [r for r in src if in_scope(r)]
    replaced = sorted([o for o in old if not in_scope(o)] + new)
    return {"events_dpo": replaced, "events_sql": replaced, "events_append": sorted(old + new)}


@pytest.fixture(params=RUNS, ids=[f"{m}-{s}" for m, s in RUNS])
def run(request: pytest.FixtureRequest, runs: dict[tuple[str, str], Any]) -> Any:
    result = runs[request.param]
    assert result.success, "\n".join(result.engine_events[-5:]) or result.failure
    return request.param, result


@E2E_TIMEOUT
def test_predicate_selects_exactly_the_partition_and_the_overwrites_replace_only_it(run: Any) -> None:
    (_, scenario), result = run
    [report] = result.custom_messages
    expected = _expected_tables(scenario)
    assert {name: [tuple(r) for r in rows] for name, rows in report["tables"].items()} == expected
    assert report["selected"] == len([r for r in expected["events_dpo"] if r[0] >= 0]) > 0
    assert report["writes"] == 3


@E2E_TIMEOUT
def test_partition_row_count_for_exact_replacements_only(run: Any) -> None:
    (mechanism, scenario), result = run
    rows = len([r for r in _expected_tables(scenario)["events_dpo"] if r[0] >= 0])
    dpo, sql, append = (_metadata(result, a) for a in ASSETS)
    assert dpo["dagster/partition_row_count"] == dpo["dagster/row_count"] == rows
    if mechanism == "classic":
        assert sql["dagster/partition_row_count"] == rows
    else:  # Connect: a SQL write to a non-Delta table has no row count at all
        assert "dagster/row_count" not in sql and "dagster/partition_row_count" not in sql
    assert append["dagster/row_count"] == rows and "dagster/partition_row_count" not in append


@E2E_TIMEOUT
def test_partitions_written_storage_kind_and_table_name(run: Any) -> None:
    (mechanism, scenario), result = run
    partition = {
        "daily": {"ds": "2024-01-02"},
        "static": {"region": "us"},
        "multi": {"region": "o'x", "ds": "2024-01-03"},
    }[scenario]
    for asset in ASSETS:
        md = _metadata(result, asset)
        assert md["dagster/table_name"] == f"spark_catalog.default.{asset}"
        assert md["dagster/storage_kind"] == "parquet"
        if asset != "events_append":
            assert md["spark/partitions_written"] == [partition], asset
    if mechanism == "classic":  # Spark's numParts of the dynamic writes
        assert _metadata(result, "events_dpo")["spark/num_partitions_written"] == 1


@E2E_TIMEOUT
def test_timezone_dst_and_quoting_predicates_in_spark(runs: dict[tuple[str, str], Any]) -> None:
    expected = [p["expected"] for p in probes()]
    for mechanism in ("classic", "connect"):
        [report] = runs[(mechanism, "daily")].custom_messages
        assert report["probes"] == expected, mechanism


def test_key_range_run_of_static_partitions_gets_the_clear_error() -> None:
    """Dagster 1.13 sends no partition fields for a run over a key range: the job is told why."""
    result = run_pipes(
        JOB,
        assets=ASSETS,
        partitions_def=STATIC,
        extras={"scenario": "range"},
        tags={"dagster/asset_partition_range_start": "eu", "dagster/asset_partition_range_end": "us"},
    )
    assert result.success
    [report] = result.custom_messages
    assert "range of partitions" in report["error"] and "BackfillPolicy.multi_run(1)" in report["error"]
