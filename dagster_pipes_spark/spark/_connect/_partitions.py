"""What a DataFrame or SQL write on Connect says about partitions."""

from __future__ import annotations

from typing import Any

from dagster_pipes_spark.spark._connect._facts import FACTS, condition_conjuncts_of
from dagster_pipes_spark.spark._connect._registry import Busy, Observer
from dagster_pipes_spark.spark._connect._targets import targets_delta
from dagster_pipes_spark.spark._delta import REPLACE_WHERE_OPTION
from dagster_pipes_spark.spark._partitions import (
    PARTITION_OVERWRITE_MODE_CONF,
    PARTITION_OVERWRITE_MODE_OPTION,
    sql_insert_partitions,
)
from dagster_pipes_spark.spark._plan_facts import spine_conjuncts
from dagster_pipes_spark.spark._sql import Conjunct, conjuncts_from_sql
from dagster_pipes_spark.spark._write_record import SparkWrite


def overwrite_mode(spark: Any) -> str:
    """The session's ``spark.sql.sources.partitionOverwriteMode`` (one round trip)."""
    with Busy():
        return str(spark.conf.get(PARTITION_OVERWRITE_MODE_CONF, "static") or "static").lower()


def read_partitions(writer: Any, api: str, write: SparkWrite, backend: Observer) -> None:
    """What a DataFrame write says about partitions: a Delta ``replaceWhere``, a V2 overwrite
    condition, or for a dynamic partition overwrite the filters its rows passed."""
    op = writer._write
    if api == "overwrite":
        write.replaced = condition_conjuncts_of(op.overwrite_condition)
        return
    if api == "overwritePartitions":
        write.dynamic_overwrite = True
        write.replaced = tuple(spine_conjuncts(FACTS, op._child, None))
        return
    if api not in ("save", "insertInto", "saveAsTable") or write.mode != "overwrite":
        return
    options = {str(k).lower(): str(v) for k, v in (op.options or {}).items() if v is not None}
    if op.partitioning_cols:
        write.partition_columns = tuple(str(c) for c in op.partitioning_cols)
    condition = options.get(REPLACE_WHERE_OPTION.lower())
    if condition and targets_delta(writer, backend):
        write.replaced = conjuncts_from_sql(condition)
        return
    if api == "saveAsTable" or (api == "save" and not op.partitioning_cols):  # replaces it all
        return
    mode = options.get(PARTITION_OVERWRITE_MODE_OPTION.lower()) or overwrite_mode(writer._spark)
    if mode.lower() == "dynamic":
        write.dynamic_overwrite = True
        write.replaced = tuple(spine_conjuncts(FACTS, op._child, None))


def sql_partitions(
    spark: Any, sql: str, mode: str | None
) -> tuple[dict[str, str] | None, tuple[Conjunct, ...] | None, bool] | None:
    """``(static partition spec, replaced condition, dynamic overwrite)`` of an ``INSERT``."""
    found = sql_insert_partitions(sql)
    if found is None or (found.static is None and found.replace_where is None):
        return None
    dynamic = bool(mode == "overwrite" and found.static is not None and overwrite_mode(spark) == "dynamic")
    return found.static, found.replace_where, dynamic
