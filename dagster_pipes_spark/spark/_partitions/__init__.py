"""Partitions of a Pipes step: the Spark SQL predicate selecting them, and whether a write replaced
exactly them.

What the Pipes context carries (dagster 1.13, checked against the orchestrator):

* ``partition_key``: one key; a multi-partition key joins the dimension keys with ``|`` in the order
  of the *sorted* dimension names (``{"region", "date"}`` -> ``"2024-01-02|eu"``);
* ``partition_key_range``: ``{"start", "end"}`` keys (equal for one partition);
* ``partition_time_window``: for time-window partitions, and for a multi-partition with exactly one
  time dimension, ISO-8601 strings with the partitions definition's UTC offset of each end
  (``{"start": "2024-03-10T00:00:00-05:00", "end": "2024-03-11T00:00:00-04:00"}``);
* a run over a range of partitions (a single-run backfill) gets none of the three.

The write hooks describe what a write replaced as *conjuncts* ``(column, operator, literal_sql)``:
a static partition spec, an overwrite condition (Delta ``replaceWhere``, ``INSERT ... REPLACE
WHERE``, ``DataFrameWriterV2.overwrite``), or the filter above a dynamic partition overwrite;
:func:`replaces_scope` decides whether that is exactly the partition(s) in scope.

Modules: ``_scope`` (what the context carries), ``_predicate`` (``partition_predicate``),
``_replaced`` (what a write replaced and the rows it wrote there); the SQL they read and write is
``spark._sql``'s.

Importing this package does not import pyspark: a DataFrame passed as ``data=`` is only asked for its
``schema``, and a table name is looked up through the active session (the one import, on that call).
"""

from dagster_pipes_spark.spark._partitions._predicate import build_predicate, partition_predicate
from dagster_pipes_spark.spark._partitions._replaced import (
    SqlInsertPartitions,
    partition_row_count,
    replaces_scope,
    sql_insert_partitions,
    write_replaces_scope,
    written_partition,
    written_partitions,
)
from dagster_pipes_spark.spark._partitions._scope import (
    COLUMN_TYPES,
    MULTI_KEY_DELIMITER,
    PARTITION_OVERWRITE_MODE_CONF,
    PARTITION_OVERWRITE_MODE_OPTION,
    PartitionScope,
    Window,
)

__all__ = [
    "COLUMN_TYPES",
    "MULTI_KEY_DELIMITER",
    "PARTITION_OVERWRITE_MODE_CONF",
    "PARTITION_OVERWRITE_MODE_OPTION",
    "PartitionScope",
    "SqlInsertPartitions",
    "Window",
    "build_predicate",
    "partition_predicate",
    "partition_row_count",
    "replaces_scope",
    "sql_insert_partitions",
    "write_replaces_scope",
    "written_partition",
    "written_partitions",
]
