"""The write a command node performs: one handler per Spark write command of the registry
(``spark._commands``), and a table format's commands read through their accessor specs."""

from __future__ import annotations

from collections.abc import Callable

from dagster_pipes_spark.spark._classic._py4j import (
    JavaObject,
    call_chain,
    opt,
    plan_columns,
    simple_name,
    struct_columns,
)
from dagster_pipes_spark.spark._classic._relations import (
    catalog_table_parts,
    format_name,
    identifier_parts,
    relation_target,
)
from dagster_pipes_spark.spark._commands import write_command
from dagster_pipes_spark.spark._delta import DeltaCommandSpec, is_delta_class_name, is_delta_provider
from dagster_pipes_spark.spark._targets import normalize_path
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
    normalize_mode,
)


def _insert_op(mode: str | None) -> str:
    return OP_INSERT_OVERWRITE if mode == "overwrite" else OP_INSERT


def _h_insert_hadoop_fs(node: JavaObject) -> SparkWrite | None:
    # InsertIntoHadoopFsRelationCommand(outputPath, staticPartitions, ifPartitionNotExists,
    #   partitionColumns, bucketSpec, fileFormat, options, query, mode, catalogTable, fileIndex,
    #   outputColumnNames)
    mode = normalize_mode(node.mode().toString())
    fmt = format_name(node.fileFormat())
    catalog_table = opt(node.catalogTable())
    if catalog_table is not None:
        provider = opt(catalog_table.provider())
        return SparkWrite(
            _insert_op(mode),
            table=catalog_table_parts(catalog_table),
            mode=mode,
            format=str(provider).lower() if provider else fmt,
            columns=struct_columns(catalog_table.schema()),
            is_delta=False,
            inner=True,
        )
    return SparkWrite(
        OP_WRITE,
        path=normalize_path(str(node.outputPath().toString())),
        mode=mode,
        format=fmt,
        columns=plan_columns(node.query()),
        is_delta=False,
        inner=True,
    )


def _h_ctas_datasource(node: JavaObject) -> SparkWrite | None:
    # CreateDataSourceTableAsSelectCommand(table, mode, query, outputColumnNames)
    table = node.table()
    provider = opt(table.provider())
    return SparkWrite(
        OP_CTAS,
        table=catalog_table_parts(table),
        mode=normalize_mode(node.mode().toString()),
        format=str(provider).lower() if provider else None,
        columns=plan_columns(node.query()),
        is_delta=is_delta_provider(provider),
        outer=True,
    )


def _h_ctas_hive(node: JavaObject) -> SparkWrite | None:
    # CreateHiveTableAsSelectCommand(tableDesc, query, outputColumnNames, mode)
    table = node.tableDesc()
    return SparkWrite(
        OP_CTAS,
        table=catalog_table_parts(table),
        mode=normalize_mode(node.mode().toString()),
        format="hive",
        columns=plan_columns(node.query()),
        is_delta=False,
        outer=True,
    )


def _h_save_into_data_source(node: JavaObject) -> SparkWrite | None:
    # SaveIntoDataSourceCommand(query, dataSource, options, mode)
    data_source = node.dataSource()
    is_delta = is_delta_class_name(simple_name(data_source))
    path = opt(node.options().get("path"))
    if path is None:
        return None  # e.g. JDBC by dbtable: no table or path we can name
    return SparkWrite(
        OP_WRITE,
        path=normalize_path(str(path)),
        mode=normalize_mode(node.mode().toString()),
        format="delta" if is_delta else format_name(data_source),
        columns=plan_columns(node.query()),
        is_delta=is_delta,
    )


def _h_insert_data_source(node: JavaObject) -> SparkWrite | None:
    # InsertIntoDataSourceCommand(logicalRelation, query, overwrite)
    parts, path, fmt, is_delta, _ = relation_target(node.logicalRelation())
    if parts is None and path is None:
        return None
    mode = "overwrite" if node.overwrite() else "append"
    return SparkWrite(
        _insert_op(mode),
        table=parts,
        path=path,
        mode=mode,
        format=fmt,
        columns=plan_columns(node.query()),
        is_delta=is_delta,
    )


def _h_insert_hive(node: JavaObject) -> SparkWrite | None:
    # InsertIntoHiveTable(table, partition, query, overwrite, ifPartitionNotExists, outputColumnNames)
    table = node.table()
    mode = "overwrite" if node.overwrite() else "append"
    return SparkWrite(
        _insert_op(mode),
        table=catalog_table_parts(table),
        mode=mode,
        format="hive",
        columns=struct_columns(table.schema()),
        is_delta=False,
        inner=True,
    )


def _directory_write(node: JavaObject, fmt: str, outer: bool) -> SparkWrite | None:
    location = opt(node.storage().locationUri())
    if location is None:
        return None
    return SparkWrite(
        OP_INSERT_OVERWRITE,
        path=normalize_path(str(location.toString())),
        mode="overwrite",
        format=fmt,
        columns=plan_columns(node.query()),
        is_delta=False,
        outer=outer,
    )


def _h_insert_dir(node: JavaObject) -> SparkWrite | None:
    # InsertIntoDataSourceDirCommand(storage, provider, query, overwrite): its data goes through a
    # nested write, which this event completes
    return _directory_write(node, str(node.provider()).lower(), outer=True)


def _h_insert_hive_dir(node: JavaObject) -> SparkWrite | None:
    # InsertIntoHiveDirCommand(isLocal, storage, query, overwrite, outputColumnNames)
    return _directory_write(node, "hive", outer=False)


def _v2_write(operation: str, mode: str) -> Callable[[JavaObject], SparkWrite | None]:
    def handler(node: JavaObject) -> SparkWrite | None:
        # AppendData / OverwriteByExpression / OverwritePartitionsDynamic(table, query, ...)
        parts, path, fmt, is_delta, holder = relation_target(node.table())
        if parts is None and path is None:
            return None
        return SparkWrite(
            operation,
            table=parts,
            path=path,
            mode=mode,
            format=fmt,
            columns=plan_columns(holder),
            is_delta=is_delta,
            inner=True,
        )

    return handler


def _resolved_identifier_parts(name_plan: JavaObject) -> tuple[str, ...] | None:
    # ResolvedIdentifier(catalog, identifier)
    try:
        return identifier_parts(name_plan.catalog(), name_plan.identifier())
    except Exception:
        return None


def _v2_create(node: JavaObject, operation: str, mode: str) -> SparkWrite | None:
    parts = _resolved_identifier_parts(node.name())
    if parts is None:
        return None
    provider = None
    try:
        provider = opt(node.tableSpec().provider())
    except Exception:
        pass
    is_delta = is_delta_provider(provider)
    return SparkWrite(
        operation,
        table=parts,
        mode=mode,
        format=str(provider).lower() if provider else None,
        columns=plan_columns(node.query()),
        is_delta=is_delta or None,
        outer=True,
    )


def _h_create_table_as_select(node: JavaObject) -> SparkWrite | None:
    # CreateTableAsSelect(name, partitioning, query, tableSpec, writeOptions, ignoreIfExists, isAnalyzed)
    return _v2_create(node, OP_CTAS, "ignore" if node.ignoreIfExists() else "errorifexists")


def _h_replace_table_as_select(node: JavaObject) -> SparkWrite | None:
    # ReplaceTableAsSelect(name, partitioning, query, tableSpec, writeOptions, orCreate, isAnalyzed)
    return _v2_create(node, OP_CREATE_OR_REPLACE if node.orCreate() else OP_RTAS, "overwrite")


def _row_level(operation: str | None, table_accessor: str) -> Callable[[JavaObject], SparkWrite | None]:
    def handler(node: JavaObject) -> SparkWrite | None:
        op = operation
        if op is None:  # ReplaceData / WriteDelta carry a RowLevelOperation
            try:
                op = str(node.operation().command().toString()).upper()
            except Exception:
                op = OP_MERGE
            op = {"DELETE": OP_DELETE, "UPDATE": OP_UPDATE, "MERGE": OP_MERGE}.get(op, op)
        parts, path, fmt, is_delta, holder = relation_target(getattr(node, table_accessor)())
        if parts is None and path is None:
            return None
        return SparkWrite(
            op, table=parts, path=path, format=fmt, columns=plan_columns(holder), is_delta=is_delta
        )

    return handler


def delta_command(node: JavaObject, spec: DeltaCommandSpec) -> SparkWrite | None:
    """A Delta write command, read through its :class:`~.DeltaCommandSpec`."""

    if spec.query_option and call_chain(node, spec.query_option).isEmpty():
        return None  # CREATE TABLE without AS SELECT: no data written
    parts: tuple[str, ...] | None = None
    path: str | None = None
    columns = None
    if spec.catalog_table:
        try:
            value = call_chain(node, spec.catalog_table)
            catalog_table = value if spec.catalog_table_direct else opt(value)
            if catalog_table is not None:
                parts = catalog_table_parts(catalog_table)
        except Exception:
            parts = None
    if parts is None and spec.relation:
        try:
            parts, path, _, _, holder = relation_target(call_chain(node, spec.relation))
            columns = plan_columns(holder)
        except Exception:
            parts = None
    if parts is None and path is None:
        for accessor in spec.paths:
            try:
                path = normalize_path(str(call_chain(node, accessor).toString()))
                break
            except Exception:
                continue
    if parts is None and path is None:
        return None
    mode = None
    if spec.mode:
        try:
            mode = normalize_mode(call_chain(node, spec.mode).toString())
        except Exception:
            mode = None
    if columns is None:
        for field_name in ("data", "target", "query"):
            try:
                holder = getattr(node, field_name)()
                holder = opt(holder) if field_name == "query" else holder
                columns = plan_columns(holder) if holder is not None else None
            except Exception:
                columns = None
            if columns:
                break
    operation = spec.operation
    if operation == OP_WRITE and parts is not None:
        operation = _insert_op(mode)
    return SparkWrite(
        operation, table=parts, path=path, mode=mode, format="delta", columns=columns, is_delta=True
    )


def maintenance_target(node: JavaObject) -> str:
    """The table (or path) a Delta maintenance command acts on, for the log line."""
    for chain in (("child", "identifier"), ("child", "name"), ("path",)):
        try:
            value = node
            for attr in chain:
                value = getattr(value, attr)()
            text = str(opt(value) if chain == ("path",) else value)
            if text and text != "None":
                return text
        except Exception:
            continue
    return "a Delta table"


#: How the classic mechanism reads the target of each of Spark's own write commands (the registry's
#: ``SPARK_COMMANDS``, one handler each; a table format's commands are read through their specs).
HANDLERS: dict[str, Callable[[JavaObject], SparkWrite | None]] = {
    "InsertIntoHadoopFsRelationCommand": _h_insert_hadoop_fs,
    "CreateDataSourceTableAsSelectCommand": _h_ctas_datasource,
    "CreateHiveTableAsSelectCommand": _h_ctas_hive,
    "OptimizedCreateHiveTableAsSelectCommand": _h_ctas_hive,
    "SaveIntoDataSourceCommand": _h_save_into_data_source,
    "InsertIntoDataSourceCommand": _h_insert_data_source,
    "InsertIntoHiveTable": _h_insert_hive,
    "InsertIntoDataSourceDirCommand": _h_insert_dir,
    "InsertIntoHiveDirCommand": _h_insert_hive_dir,
    "AppendData": _v2_write(OP_INSERT, "append"),
    "OverwriteByExpression": _v2_write(OP_INSERT_OVERWRITE, "overwrite"),
    "OverwritePartitionsDynamic": _v2_write(OP_INSERT_OVERWRITE, "overwrite"),
    "CreateTableAsSelect": _h_create_table_as_select,
    "ReplaceTableAsSelect": _h_replace_table_as_select,
    "ReplaceData": _row_level(None, "table"),
    "WriteDelta": _row_level(None, "table"),
    "DeleteFromTable": _row_level(OP_DELETE, "table"),
    "UpdateTable": _row_level(OP_UPDATE, "table"),
    "MergeIntoTable": _row_level(OP_MERGE, "targetTable"),
}


def write_from_plan(node: JavaObject) -> SparkWrite | None:
    """The write an analysed plan root performs, or ``None`` for anything that is not a write."""
    name = str(node.nodeName())
    command = write_command(name)
    if command is None:
        return None
    write = delta_command(node, command.delta) if command.delta is not None else HANDLERS[command.name](node)
    if write is not None:
        write.api = name
    return write
