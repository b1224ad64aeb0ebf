"""How Delta shows up in Spark plans: its write commands (with the accessor chains to their
target), its V2 table, data source and file indexes, the Python merge builder, and the maintenance
commands."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dagster_pipes_spark.spark._write_record import (
    OP_CTAS,
    OP_DELETE,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_UPDATE,
    OP_WRITE,
)

DELTA_PROVIDER = "delta"
#: The Delta write option that overwrites only the rows matching a predicate.
REPLACE_WHERE_OPTION = "replaceWhere"


@dataclass(frozen=True)
class DeltaCommandSpec:
    """How to read one Delta write command node (accessors are py4j method chains)."""

    operation: str
    #: chains returning ``Option[CatalogTable]`` (or a ``CatalogTable`` when ``catalog_table_direct``)
    catalog_table: tuple[str, ...] = ()
    catalog_table_direct: bool = False
    #: chains returning a Hadoop ``Path`` of the table root, tried in order
    paths: tuple[tuple[str, ...], ...] = ()
    #: chain returning a ``NamedRelation`` (``DataSourceV2Relation``) of the target
    relation: tuple[str, ...] = ()
    #: chain returning a ``SaveMode``
    mode: tuple[str, ...] = ()
    #: chain returning ``Option[LogicalPlan]``; an empty option means "no data written" (plain DDL)
    query_option: tuple[str, ...] = ()
    #: chain returning ``Option[String]``: the ``replaceWhere`` condition the write replaces
    replace_where: tuple[str, ...] = ()


#: Delta write commands by simple class name (prefix match, so Databricks' ``...Edge`` variants and
#: similar suffixed subclasses are covered). Field names follow the case classes in
#: ``spark/src/main/scala/org/apache/spark/sql/delta/commands/`` of delta-io/delta.
DELTA_COMMANDS: dict[str, DeltaCommandSpec] = {
    # WriteIntoDelta(deltaLog, mode, options, partitionColumns, configuration, data,
    #                catalogTableOpt, schemaInCatalog)
    "WriteIntoDelta": DeltaCommandSpec(
        OP_WRITE,
        catalog_table=("catalogTableOpt",),
        paths=(("deltaLog", "dataPath"),),
        mode=("mode",),
        replace_where=("options", "replaceWhere"),
    ),
    # CreateDeltaTableCommand(table: CatalogTable, existingTableOpt, mode, query: Option[LogicalPlan],
    #                         operation, tableByPath, output, protocol, createTableFunc)
    "CreateDeltaTableCommand": DeltaCommandSpec(
        OP_CTAS,
        catalog_table=("table",),
        catalog_table_direct=True,
        mode=("mode",),
        query_option=("query",),
    ),
    # MergeIntoCommand(source, target, catalogTable, targetFileIndex, condition, matchedClauses, ...)
    "MergeIntoCommand": DeltaCommandSpec(
        OP_MERGE,
        catalog_table=("catalogTable",),
        paths=(("targetFileIndex", "path"),),
    ),
    # UpdateCommand(tahoeFileIndex, catalogTable, target, updateExpressions, condition)
    "UpdateCommand": DeltaCommandSpec(
        OP_UPDATE,
        catalog_table=("catalogTable",),
        paths=(("tahoeFileIndex", "path"),),
    ),
    # DeleteCommand(deltaLog, catalogTable, target, condition)
    "DeleteCommand": DeltaCommandSpec(
        OP_DELETE,
        catalog_table=("catalogTable",),
        paths=(("deltaLog", "dataPath"),),
    ),
    # DeltaDynamicPartitionOverwriteCommand(table: NamedRelation, deltaTable: DeltaTableV2, query, ...)
    "DeltaDynamicPartitionOverwriteCommand": DeltaCommandSpec(
        OP_INSERT_OVERWRITE,
        relation=("table",),
        paths=(("deltaTable", "path"),),
    ),
}

#: ``DataSourceV2Relation.table`` class of Delta tables (``org.apache.spark.sql.delta.catalog``).
DELTA_TABLE_CLASSES = frozenset({"DeltaTableV2", "StagedDeltaTableV2"})
#: ``SaveIntoDataSourceCommand.dataSource`` class for ``format("delta").save(path)``.
DELTA_DATA_SOURCE_CLASSES = frozenset({"DeltaDataSource"})
#: ``HadoopFsRelation.location`` classes of Delta reads (``TahoeLogFileIndex``, ``TahoeBatchFileIndex``, ...).
DELTA_FILE_INDEX_PREFIXES = ("Tahoe", "PreparedDeltaFileIndex")


#: The Python API's merge builder (``delta.tables.DeltaMergeBuilder``, classic sessions): Delta 3.x runs
#: ``execute()`` outside Spark's query execution (no listener event), so the hooks wrap it. Its Java
#: builder keeps the target in a private field of this class.
MERGE_BUILDER_MODULE, MERGE_BUILDER_CLASS = "delta.tables", "DeltaMergeBuilder"
MERGE_BUILDER_TARGET_CLASS = "io.delta.tables.DeltaTable"


#: Delta maintenance commands (simple class-name prefixes): they rewrite files, not the table's rows.
MAINTENANCE_COMMANDS = {
    "OptimizeTableCommand": "OPTIMIZE",
    "VacuumTableCommand": "VACUUM",
    "DeltaReorgTableCommand": "REORG",
}
_MAINTENANCE_SQL = re.compile(r"^\s*(OPTIMIZE|VACUUM|REORG)\b", re.IGNORECASE)


def maintenance_statement(statement: str) -> str | None:
    """``OPTIMIZE`` / ``VACUUM`` / ``REORG`` when a SQL statement is a Delta maintenance command."""
    match = _MAINTENANCE_SQL.match(statement)
    return match.group(1).upper() if match else None


def maintenance_note(command: str, target: str) -> str:
    """The debug line logged for a maintenance command seen inside a hook block."""
    return f"[spark writes] {command} on {target}: Delta maintenance (rows unchanged), no materialization"


def is_delta_class_name(simple_class_name: str | None) -> bool:
    """True for a Delta table / data source / file index class (simple name)."""
    if not simple_class_name:
        return False
    return (
        simple_class_name in DELTA_TABLE_CLASSES
        or simple_class_name in DELTA_DATA_SOURCE_CLASSES
        or simple_class_name.startswith(DELTA_FILE_INDEX_PREFIXES)
    )


def is_delta_provider(provider: str | None) -> bool:
    """True for the provider / format string of a Delta table (``USING delta``)."""
    return bool(provider) and str(provider).strip().lower() == DELTA_PROVIDER
