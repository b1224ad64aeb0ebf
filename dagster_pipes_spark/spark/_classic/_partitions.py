"""What a successful write command says about partitions."""

from __future__ import annotations

from collections.abc import Callable

from dagster_pipes_spark.spark._classic._facts import FACTS
from dagster_pipes_spark.spark._classic._py4j import (
    JavaObject,
    call_chain,
    opt,
    option_of,
    scala_map,
    seq_items,
)
from dagster_pipes_spark.spark._commands import write_command
from dagster_pipes_spark.spark._delta import REPLACE_WHERE_OPTION
from dagster_pipes_spark.spark._partitions import PARTITION_OVERWRITE_MODE_OPTION
from dagster_pipes_spark.spark._plan_facts import condition_conjuncts, spine_conjuncts
from dagster_pipes_spark.spark._sql import conjuncts_from_sql
from dagster_pipes_spark.spark._write_record import SparkWrite


def read_partitions(
    node: JavaObject, write: SparkWrite, metrics: dict[str, int], overwrite_mode: Callable[[], str]
) -> None:
    """What a successful write says about partitions: the target's partition columns, the static
    spec, the partitions written (``numParts``), and what an overwrite replaced (its condition, or
    for a dynamic partition overwrite the filters its rows passed)."""
    name = str(node.nodeName())
    command = write_command(name)
    spec = command.delta if command is not None else None
    if name == "InsertIntoHadoopFsRelationCommand":
        attributes = seq_items(node.partitionColumns())
        if not attributes:
            return
        static = scala_map(node.staticPartitions())
        write.partition_columns = tuple(str(a.name()) for a in attributes)
        write.static_partitions = static or None
        given = {k.lower() for k in static}
        dynamic = {
            int(a.exprId().id()): str(a.name()) for a in attributes if str(a.name()).lower() not in given
        }
        if not dynamic:
            write.num_partitions = 1
            return
        write.num_partitions = metrics.get("numParts")
        mode = option_of(node.options(), PARTITION_OVERWRITE_MODE_OPTION) or overwrite_mode()
        if write.mode == "overwrite" and mode.lower() == "dynamic":
            write.dynamic_overwrite = True
            write.replaced = tuple(spine_conjuncts(FACTS, node.query(), dynamic))
    elif name == "OverwriteByExpression":
        found, complete = condition_conjuncts(FACTS, node.deleteExpr())
        write.replaced = tuple(found) if complete and found else None
    elif spec is not None and spec.replace_where:  # a table format's command with replaceWhere
        condition = opt(call_chain(node, spec.replace_where))
        write.replaced = conjuncts_from_sql(str(condition)) if condition is not None else None
    elif name in ("CreateTableAsSelect", "ReplaceTableAsSelect") and write.is_delta:
        # saveAsTable(mode="overwrite") of a Delta table: replaceWhere arrives as a write option
        condition = option_of(node.writeOptions(), REPLACE_WHERE_OPTION)
        write.replaced = conjuncts_from_sql(condition) if condition is not None else None
    elif name == "SaveIntoDataSourceCommand" and write.is_delta:
        condition = option_of(node.options(), REPLACE_WHERE_OPTION)
        write.replaced = conjuncts_from_sql(condition) if condition is not None else None
