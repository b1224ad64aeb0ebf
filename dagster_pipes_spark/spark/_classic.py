"""Classic Spark (local, dedicated clusters): a ``QueryExecutionListener`` implemented in Python
through py4j (no JVM jar), reading the analysed plan's write command and the executed plan's
metrics, and the column lineage of the written query from its printed plan (``_lineage``).

Callbacks arrive asynchronously on the listener bus (SPARK-25680), on a py4j callback thread: they
only record, never talk to Pipes, and swallow their own errors. On exit the bus is drained with
``LiveListenerBus.waitUntilEmpty(timeout)`` and the listener is unregistered.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from dagster_pipes_spark.spark._delta import (
    COMMIT_TAG_CONF,
    MERGE_BUILDER_CLASS,
    MERGE_BUILDER_MODULE,
    MERGE_BUILDER_TARGET_CLASS,
    REPLACE_WHERE_OPTION,
    CommitTagger,
    DeltaCommandSpec,
    apply_operation_metrics,
    delta_command_spec,
    enrich_from_delta_history,
    is_delta_class_name,
    is_delta_provider,
    maintenance_command,
    maintenance_note,
)
from dagster_pipes_spark.spark._iceberg import enrich_from_iceberg_snapshots
from dagster_pipes_spark.spark._lineage import ColumnLineage, attributes, lineage_from_tree
from dagster_pipes_spark.spark._metadata import columns_from_schema_json
from dagster_pipes_spark.spark._partitions import (
    PARTITION_OVERWRITE_MODE_CONF,
    PARTITION_OVERWRITE_MODE_OPTION,
)
from dagster_pipes_spark.spark._record import (
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_DELETE,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_UPDATE,
    OP_WRITE,
    Collector,
    SparkWrite,
    normalize_mode,
)
from dagster_pipes_spark.spark._sql import (
    FLIPPED_OPERATORS,
    Conjunct,
    conjuncts_from_sql,
    literal_from_internal,
)
from dagster_pipes_spark.spark._targets import normalize_path, split_identifier

JavaObject = Any  # a py4j JavaObject (or a test double answering the same method names)

# --- py4j helpers -----------------------------------------------------------------------------


def _opt(option: JavaObject) -> JavaObject | None:
    """The value of a ``scala.Option``, or ``None``."""
    if option is None:
        return None
    return option.get() if option.isDefined() else None


def _simple_name(obj: JavaObject) -> str:
    return str(obj.getClass().getSimpleName())


def _columns(plan: JavaObject) -> list[tuple[str, str]] | None:
    """Columns of a ``LogicalPlan`` or ``Dataset`` (anything with ``.schema()``)."""
    try:
        return columns_from_schema_json(str(plan.schema().json()))
    except Exception:
        return None


def _struct_columns(struct: JavaObject) -> list[tuple[str, str]] | None:
    """Columns of a ``StructType``."""
    try:
        return columns_from_schema_json(str(struct.json()))
    except Exception:
        return None


def _catalog_table_parts(catalog_table: JavaObject) -> tuple[str, ...]:
    return tuple(split_identifier(str(catalog_table.identifier().quotedString())))


def _identifier_parts(catalog: JavaObject | None, identifier: JavaObject) -> tuple[str, ...]:
    """``catalog.namespace.name`` of a V2 ``Identifier`` (``toString`` quotes parts if needed)."""
    parts = split_identifier(str(identifier.toString()))
    if catalog is not None:
        parts = [str(catalog.name()), *parts]
    return tuple(parts)


def _format_name(data_source_or_format: JavaObject) -> str:
    """``shortName()`` of a ``DataSourceRegister`` (``parquet``, ``delta``...), else the class name."""
    try:
        return str(data_source_or_format.shortName()).lower()
    except Exception:
        return _simple_name(data_source_or_format)


def _relation_target(
    relation: JavaObject,
) -> tuple[tuple[str, ...] | None, str | None, str | None, bool | None, JavaObject]:
    """``(table_parts, path, format, is_delta, schema_holder)`` of a write target relation.

    Handles ``DataSourceV2Relation`` (V2 catalogs, Delta's ``DeltaTableV2``), ``LogicalRelation``
    (V1 tables, Delta's ``TahoeLogFileIndex`` paths) and ``HiveTableRelation``; ``SubqueryAlias``
    and similar wrappers are looked through.
    """
    node = relation
    for _ in range(8):
        name = str(node.nodeName())
        if name == "DataSourceV2Relation":
            catalog = _opt(node.catalog())
            ident = _opt(node.identifier())
            table = node.table()
            table_cls = _simple_name(table)
            provider = None
            try:
                provider = table.properties().get("provider")
            except Exception:
                pass
            parts = (
                _identifier_parts(catalog, ident)
                if ident is not None
                else tuple(split_identifier(str(node.name())))
            )
            is_delta = is_delta_class_name(table_cls) or is_delta_provider(provider)
            return (
                parts,
                None,
                "delta" if is_delta else (str(provider).lower() if provider else None),
                is_delta,
                node,
            )
        if name == "LogicalRelation":
            catalog_table = _opt(node.catalogTable())
            location_cls = None
            path = None
            try:
                location = node.relation().location()
                location_cls = _simple_name(location)
                roots = location.rootPaths()
                if roots.size() == 1:
                    path = normalize_path(str(roots.head().toString()))
            except Exception:
                pass
            is_delta = is_delta_class_name(location_cls)
            fmt = "delta" if is_delta else None
            if catalog_table is not None:
                provider = _opt(catalog_table.provider())
                fmt = fmt or (str(provider).lower() if provider else None)
                return (
                    _catalog_table_parts(catalog_table),
                    None,
                    fmt,
                    is_delta or is_delta_provider(provider),
                    node,
                )
            return None, path, fmt, is_delta, node
        if name == "HiveTableRelation":
            return _catalog_table_parts(node.tableMeta()), None, "hive", False, node
        children = node.children()
        if children.size() != 1:
            break
        node = children.head()
    return None, None, None, None, relation


# --- write command handlers (analysed plan root -> SparkWrite) ----------------------------------


def _insert_op(mode: str | None) -> str:
    return OP_INSERT_OVERWRITE if mode == "overwrite" else OP_INSERT


def _h_insert_hadoop_fs(node: JavaObject) -> SparkWrite | None:
    # InsertIntoHadoopFsRelationCommand(outputPath, staticPartitions, ifPartitionNotExists,
    #   partitionColumns, bucketSpec, fileFormat, options, query, mode, catalogTable, fileIndex,
    #   outputColumnNames)
    mode = normalize_mode(node.mode().toString())
    fmt = _format_name(node.fileFormat())
    catalog_table = _opt(node.catalogTable())
    if catalog_table is not None:
        provider = _opt(catalog_table.provider())
        return SparkWrite(
            _insert_op(mode),
            table=_catalog_table_parts(catalog_table),
            mode=mode,
            format=str(provider).lower() if provider else fmt,
            columns=_struct_columns(catalog_table.schema()),
            is_delta=False,
            inner=True,
        )
    return SparkWrite(
        OP_WRITE,
        path=normalize_path(str(node.outputPath().toString())),
        mode=mode,
        format=fmt,
        columns=_columns(node.query()),
        is_delta=False,
        inner=True,
    )


def _h_ctas_datasource(node: JavaObject) -> SparkWrite | None:
    # CreateDataSourceTableAsSelectCommand(table, mode, query, outputColumnNames)
    table = node.table()
    provider = _opt(table.provider())
    return SparkWrite(
        OP_CTAS,
        table=_catalog_table_parts(table),
        mode=normalize_mode(node.mode().toString()),
        format=str(provider).lower() if provider else None,
        columns=_columns(node.query()),
        is_delta=is_delta_provider(provider),
        outer=True,
    )


def _h_ctas_hive(node: JavaObject) -> SparkWrite | None:
    # CreateHiveTableAsSelectCommand(tableDesc, query, outputColumnNames, mode)
    table = node.tableDesc()
    return SparkWrite(
        OP_CTAS,
        table=_catalog_table_parts(table),
        mode=normalize_mode(node.mode().toString()),
        format="hive",
        columns=_columns(node.query()),
        is_delta=False,
        outer=True,
    )


def _h_save_into_data_source(node: JavaObject) -> SparkWrite | None:
    # SaveIntoDataSourceCommand(query, dataSource, options, mode)
    data_source = node.dataSource()
    is_delta = is_delta_class_name(_simple_name(data_source))
    path = _opt(node.options().get("path"))
    if path is None:
        return None  # e.g. JDBC by dbtable: no table or path we can name
    return SparkWrite(
        OP_WRITE,
        path=normalize_path(str(path)),
        mode=normalize_mode(node.mode().toString()),
        format="delta" if is_delta else _format_name(data_source),
        columns=_columns(node.query()),
        is_delta=is_delta,
    )


def _h_insert_data_source(node: JavaObject) -> SparkWrite | None:
    # InsertIntoDataSourceCommand(logicalRelation, query, overwrite)
    parts, path, fmt, is_delta, _ = _relation_target(node.logicalRelation())
    if parts is None and path is None:
        return None
    mode = "overwrite" if node.overwrite() else "append"
    return SparkWrite(
        _insert_op(mode),
        table=parts,
        path=path,
        mode=mode,
        format=fmt,
        columns=_columns(node.query()),
        is_delta=is_delta,
    )


def _h_insert_hive(node: JavaObject) -> SparkWrite | None:
    # InsertIntoHiveTable(table, partition, query, overwrite, ifPartitionNotExists, outputColumnNames)
    table = node.table()
    mode = "overwrite" if node.overwrite() else "append"
    return SparkWrite(
        _insert_op(mode),
        table=_catalog_table_parts(table),
        mode=mode,
        format="hive",
        columns=_struct_columns(table.schema()),
        is_delta=False,
        inner=True,
    )


def _directory_write(node: JavaObject, fmt: str, outer: bool) -> SparkWrite | None:
    location = _opt(node.storage().locationUri())
    if location is None:
        return None
    return SparkWrite(
        OP_INSERT_OVERWRITE,
        path=normalize_path(str(location.toString())),
        mode="overwrite",
        format=fmt,
        columns=_columns(node.query()),
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
        parts, path, fmt, is_delta, holder = _relation_target(node.table())
        if parts is None and path is None:
            return None
        return SparkWrite(
            operation,
            table=parts,
            path=path,
            mode=mode,
            format=fmt,
            columns=_columns(holder),
            is_delta=is_delta,
            inner=True,
        )

    return handler


def _resolved_identifier_parts(name_plan: JavaObject) -> tuple[str, ...] | None:
    # ResolvedIdentifier(catalog, identifier)
    try:
        return _identifier_parts(name_plan.catalog(), name_plan.identifier())
    except Exception:
        return None


def _v2_create(node: JavaObject, operation: str, mode: str) -> SparkWrite | None:
    parts = _resolved_identifier_parts(node.name())
    if parts is None:
        return None
    provider = None
    try:
        provider = _opt(node.tableSpec().provider())
    except Exception:
        pass
    is_delta = is_delta_provider(provider)
    return SparkWrite(
        operation,
        table=parts,
        mode=mode,
        format=str(provider).lower() if provider else None,
        columns=_columns(node.query()),
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
        parts, path, fmt, is_delta, holder = _relation_target(getattr(node, table_accessor)())
        if parts is None and path is None:
            return None
        return SparkWrite(op, table=parts, path=path, format=fmt, columns=_columns(holder), is_delta=is_delta)

    return handler


def _delta_command(node: JavaObject, spec: DeltaCommandSpec) -> SparkWrite | None:
    """A Delta write command, read through its :class:`~.DeltaCommandSpec`."""

    def chain(obj: JavaObject, names: tuple[str, ...]) -> JavaObject:
        for attr in names:
            obj = getattr(obj, attr)()
        return obj

    if spec.query_option and chain(node, spec.query_option).isEmpty():
        return None  # CREATE TABLE without AS SELECT: no data written
    parts: tuple[str, ...] | None = None
    path: str | None = None
    columns = None
    if spec.catalog_table:
        try:
            value = chain(node, spec.catalog_table)
            catalog_table = value if spec.catalog_table_direct else _opt(value)
            if catalog_table is not None:
                parts = _catalog_table_parts(catalog_table)
        except Exception:
            parts = None
    if parts is None and spec.relation:
        try:
            parts, path, _, _, holder = _relation_target(chain(node, spec.relation))
            columns = _columns(holder)
        except Exception:
            parts = None
    if parts is None and path is None:
        for accessor in spec.paths:
            try:
                path = normalize_path(str(chain(node, accessor).toString()))
                break
            except Exception:
                continue
    if parts is None and path is None:
        return None
    mode = None
    if spec.mode:
        try:
            mode = normalize_mode(chain(node, spec.mode).toString())
        except Exception:
            mode = None
    if columns is None:
        for field_name in ("data", "target", "query"):
            try:
                holder = getattr(node, field_name)()
                holder = _opt(holder) if field_name == "query" else holder
                columns = _columns(holder) if holder is not None else None
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


def _maintenance_target(node: JavaObject) -> str:
    """The table (or path) a Delta maintenance command acts on, for the log line."""
    for chain in (("child", "identifier"), ("child", "name"), ("path",)):
        try:
            value = node
            for attr in chain:
                value = getattr(value, attr)()
            text = str(_opt(value) if chain == ("path",) else value)
            if text and text != "None":
                return text
        except Exception:
            continue
    return "a Delta table"


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
    handler = HANDLERS.get(name)
    if handler is not None:
        write = handler(node)
    else:
        spec = delta_command_spec(name)
        if spec is None:
            return None
        write = _delta_command(node, spec)
    if write is not None:
        write.api = name
    return write


# --- metrics ----------------------------------------------------------------------------------

# Scala's Map.toString of SQLMetrics: "Map(numFiles -> SQLMetric(id: 1, name: Some(...), value: 2), ...)"
_METRIC = re.compile(r"(\w+) -> \w*\(id: -?\d+, name: .*?, value: (-?\d+)\)")


def parse_metrics(text: str) -> dict[str, int]:
    """SQL metric values from the ``toString`` of an executed plan's ``metrics()`` map."""
    return {name: int(value) for name, value in _METRIC.findall(text)}


def write_metrics(executed_plan: JavaObject) -> dict[str, int]:
    """Metrics of the write node of an executed plan.

    The write node is the root, unless the query needed a shuffle: then (Spark 3.4+) the whole write
    runs under adaptive execution, ``AdaptiveSparkPlan -> ResultQueryStage -> Execute <command>``.
    """
    node = executed_plan
    for _ in range(8):
        name = str(node.nodeName())
        if name.startswith("AdaptiveSparkPlan"):
            node = node.executedPlan()
        elif "QueryStage" in name:
            node = node.plan()
        else:
            return parse_metrics(str(node.metrics().toString()))
    return {}


def apply_metrics(write: SparkWrite, metrics: dict[str, int]) -> None:
    """Counters from the executed plan's metrics (write stats, or Delta command metrics)."""
    if not metrics:
        return
    delta_op = {OP_MERGE: "MERGE", OP_UPDATE: "UPDATE", OP_DELETE: "DELETE"}.get(write.operation, "WRITE")
    apply_operation_metrics(write, delta_op, metrics)


def _error_text(exception: JavaObject) -> str:
    try:
        text = str(exception.getMessage() or exception.toString())
    except Exception:
        text = str(exception)
    first = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return first[:500]


# --- partitions -------------------------------------------------------------------------------

_COMPARISONS = {
    "EqualTo": "=",
    "EqualNullSafe": "=",
    "GreaterThanOrEqual": ">=",
    "GreaterThan": ">",
    "LessThanOrEqual": "<=",
    "LessThan": "<",
}
#: Plan nodes between a write and a filter below it that keep every row's column values.
_ROW_PRESERVING = frozenset(
    {
        "SubqueryAlias",
        "View",
        "Repartition",
        "RepartitionByExpression",
        "RebalancePartitions",
        "Sort",
        "Distinct",
        "Deduplicate",
        "GlobalLimit",
        "LocalLimit",
        "Offset",
        "Sample",
        "ResolvedHint",
        "CollectMetrics",
        "WriteFiles",
    }
)


def _items(seq: JavaObject) -> list[JavaObject]:
    """The elements of a Scala ``Seq``."""
    return [seq.apply(i) for i in range(seq.size())]


def _scala_map(mapping: JavaObject) -> dict[str, str]:
    out: dict[str, str] = {}
    iterator = mapping.iterator()
    while iterator.hasNext():
        pair = iterator.next()
        out[str(pair._1())] = str(pair._2())
    return out


def _literal(expr: JavaObject) -> str | None:
    """A foldable Catalyst expression (a ``Literal``, ``CAST('2024-01-02' AS DATE)``) in Spark SQL."""
    if not expr.foldable():
        return None
    return literal_from_internal(str(expr.dataType().typeName()), expr.eval(None))


def _conjuncts(condition: JavaObject, columns: dict[int, str] | None) -> tuple[list[Conjunct], bool]:
    """``(conjuncts, complete)``: the ``column <op> literal`` terms of an ``AND`` of a Catalyst
    condition, on the attributes ``columns`` maps (expression id -> column name; ``None``: any
    attribute, by its name), and whether every term was one."""
    found: list[Conjunct] = []
    complete = True
    stack = [condition]
    while stack:
        expr = stack.pop()
        name = str(expr.nodeName())
        if name == "And":
            stack += [expr.right(), expr.left()]
            continue
        op = _COMPARISONS.get(name)
        term = None
        if op is not None:
            for column_side, literal_side, flipped in (
                (expr.left(), expr.right(), False),
                (expr.right(), expr.left(), True),
            ):
                column = _attribute_column(column_side, columns)
                literal = _literal(literal_side) if column is not None else None
                if column is not None and literal is not None:
                    term = (column, FLIPPED_OPERATORS[op] if flipped else op, literal)
                    break
        if term is None:
            complete = False
        else:
            found.append(term)
    return found, complete


def _attribute_column(expr: JavaObject, columns: dict[int, str] | None) -> str | None:
    if str(expr.nodeName()) != "AttributeReference":
        return None
    if columns is None:
        return str(expr.name())
    return columns.get(int(expr.exprId().id()))


def _filter_conjuncts(query: JavaObject, columns: dict[int, str]) -> list[Conjunct]:
    """Conjuncts every row of a write's query satisfies: the terms on the written ``columns`` of the
    filters on the query's spine (followed through projections that pass the columns on)."""
    found: list[Conjunct] = []
    node = query
    for _ in range(64):
        name = str(node.nodeName())
        if name == "Project":
            passed: dict[int, str] = {}
            for item in _items(node.projectList()):
                target = columns.get(int(item.exprId().id()))
                if target is None:
                    continue
                source = item.child() if str(item.nodeName()) == "Alias" else item
                if str(source.nodeName()) == "AttributeReference":
                    passed[int(source.exprId().id())] = target
            columns = passed
        elif name == "Filter":
            found.extend(_conjuncts(node.condition(), columns)[0])
        elif name not in _ROW_PRESERVING:
            break
        children = node.children()
        if not columns or children.size() != 1:
            break
        node = children.head()
    return found


def _option(options: JavaObject, key: str) -> str | None:
    """A write option by case-insensitive name from a Scala ``Map[String, String]``."""
    for name, value in _scala_map(options).items():
        if name.lower() == key.lower():
            return value
    return None


def read_partitions(
    node: JavaObject, write: SparkWrite, metrics: dict[str, int], overwrite_mode: Callable[[], str]
) -> None:
    """What a successful write says about partitions: the target's partition columns, the static
    spec, the partitions written (``numParts``), and what an overwrite replaced (its condition, or
    for a dynamic partition overwrite the filters its rows passed)."""
    name = str(node.nodeName())
    if name == "InsertIntoHadoopFsRelationCommand":
        attributes = _items(node.partitionColumns())
        if not attributes:
            return
        static = _scala_map(node.staticPartitions())
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
        mode = _option(node.options(), PARTITION_OVERWRITE_MODE_OPTION) or overwrite_mode()
        if write.mode == "overwrite" and mode.lower() == "dynamic":
            write.dynamic_overwrite = True
            write.replaced = tuple(_filter_conjuncts(node.query(), dynamic))
    elif name == "OverwriteByExpression":
        found, complete = _conjuncts(node.deleteExpr(), None)
        write.replaced = tuple(found) if complete and found else None
    elif name.startswith("WriteIntoDelta"):  # Delta's replaceWhere
        condition = _opt(node.options().replaceWhere())
        write.replaced = conjuncts_from_sql(str(condition)) if condition is not None else None
    elif name in ("CreateTableAsSelect", "ReplaceTableAsSelect") and write.is_delta:
        # saveAsTable(mode="overwrite") of a Delta table: replaceWhere arrives as a write option
        condition = _option(node.writeOptions(), REPLACE_WHERE_OPTION)
        write.replaced = conjuncts_from_sql(condition) if condition is not None else None
    elif name == "SaveIntoDataSourceCommand" and write.is_delta:
        condition = _option(node.options(), REPLACE_WHERE_OPTION)
        write.replaced = conjuncts_from_sql(condition) if condition is not None else None


# --- column lineage ---------------------------------------------------------------------------

_ALL_FIELDS = 2147483647  # print every column: lists are cut at spark.sql.debug.maxToStringFields
_PATH_RELATION = re.compile(r"(?:^|- )Relation \[", re.MULTILINE)
_NO_LINEAGE = frozenset({OP_MERGE, OP_UPDATE, OP_DELETE})


def _written_query_text(node: JavaObject) -> tuple[JavaObject, str] | None:
    """The analysed query a write command writes (``query``, an ``Option`` of it for Delta's CTAS,
    or Delta's ``data`` DataFrame) and its ``treeString``."""
    for chain in (("query",), ("data", "queryExecution", "analyzed")):
        try:
            query = node
            for attr in chain:
                query = getattr(query, attr)()
        except Exception:
            continue
        try:
            return query, str(query.treeString(False, False, _ALL_FIELDS, False))
        except Exception:
            pass
        try:  # a scala.Option of the query
            inner = _opt(query)
            if inner is not None:
                return inner, str(inner.treeString(False, False, _ALL_FIELDS, False))
        except Exception:
            continue
    return None


def _path_relations(query: JavaObject) -> dict[int, str]:
    """Attribute id -> path of the file relations without a table that the query reads (its
    subqueries included): the printed plan names tables, not paths."""
    paths: dict[int, str] = {}
    for plan in [query, *_items(query.subqueriesAll())]:
        for leaf in _items(plan.collectLeaves()):
            if str(leaf.nodeName()) != "LogicalRelation" or _opt(leaf.catalogTable()) is not None:
                continue
            path = _relation_target(leaf)[1]
            if path is not None:
                for _, expr_id in attributes(str(leaf.output().mkString(","))):
                    paths[expr_id] = path
    return paths


def merge_lineage_of(node: JavaObject) -> ColumnLineage | None:
    """Column lineage of a Delta ``MergeIntoCommand``: each target column an action assigns gets the
    source columns its expression reads (through the source query's own lineage)."""
    source = node.source()
    text = str(source.treeString(False, False, _ALL_FIELDS, False))
    paths = _path_relations(source) if _PATH_RELATION.search(text) else {}
    source_lineage = lineage_from_tree(text, None, paths)
    if source_lineage is None:
        return None
    output = _items(source.output())
    if len(output) != len(source_lineage):
        return None
    by_id = {
        int(attr.exprId().id()): deps for attr, deps in zip(output, source_lineage.values(), strict=True)
    }
    lineage: dict[str, set[Any]] = {}
    unknown: set[str] = set()
    for accessor in ("matchedClauses", "notMatchedClauses", "notMatchedBySourceClauses"):
        try:
            clauses = _items(getattr(node, accessor)())
        except Exception:
            continue
        for clause in clauses:
            for action in _items(clause.actions()):
                try:
                    column = str(action.targetColNameParts().head())
                    references = _items(action.expr().references().toSeq())
                except Exception:
                    continue
                deps = lineage.setdefault(column, set())
                for attr in references:
                    found = by_id.get(int(attr.exprId().id()), frozenset())
                    if found is None:
                        unknown.add(column)
                    else:
                        deps |= found
    return {column: None if column in unknown else frozenset(deps) for column, deps in lineage.items()}


def column_lineage_of(node: JavaObject, write: SparkWrite) -> ColumnLineage | None:
    """Column lineage of the query a write command writes, from its printed analysed plan (one py4j
    call, plus a few per file relation read by path). None for MERGE / UPDATE / DELETE."""
    if write.operation == OP_MERGE and str(node.nodeName()).startswith("MergeIntoCommand"):
        return merge_lineage_of(node)
    if write.operation in _NO_LINEAGE:
        return None
    found = _written_query_text(node)
    if found is None:
        return None
    query, text = found
    paths = _path_relations(query) if _PATH_RELATION.search(text) else {}
    columns = [name for name, _ in write.columns] if write.columns else None
    return lineage_from_tree(text, columns, paths)


# --- Delta's Python merge builder ---------------------------------------------------------------

_MERGE_LOCK = threading.Lock()
_MERGE_ACTIVE: list[ClassicBackend] = []
_MERGE_PATCH: list[tuple[type, Any, Any]] = []  # (class, original, wrapper) of ``execute``
_DRAIN_MS = 10_000


def _merge_builder_class() -> type | None:
    """``delta.tables.DeltaMergeBuilder`` when the delta-spark Python package is importable."""
    if MERGE_BUILDER_MODULE not in sys.modules:
        try:
            if importlib.util.find_spec(MERGE_BUILDER_MODULE.split(".")[0]) is None:
                return None
        except (ImportError, ValueError):
            return None
    try:
        cls = getattr(importlib.import_module(MERGE_BUILDER_MODULE), MERGE_BUILDER_CLASS)
    except Exception:
        return None
    return cls if isinstance(cls, type) else None


def _merge_target(jbuilder: JavaObject) -> SparkWrite | None:
    """The MERGE a Java ``DeltaMergeBuilder`` performs: its target ``DeltaTable`` (a private field,
    read by reflection) resolved through the table's analysed plan."""
    for java_field in jbuilder.getClass().getDeclaredFields():
        if str(java_field.getType().getName()) == MERGE_BUILDER_TARGET_CLASS:
            java_field.setAccessible(True)
            plan = java_field.get(jbuilder).toDF().queryExecution().analyzed()
            parts, path, _, _, holder = _relation_target(plan)
            if parts is None and path is None:
                return None
            return SparkWrite(
                OP_MERGE, table=parts, path=path, format="delta", columns=_columns(holder), is_delta=True
            )
    return None


def _wrap_merge_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _MERGE_LOCK:
            backends = [b for b in _MERGE_ACTIVE if b._spark is getattr(self, "_spark", None)]
        if not backends:
            return original(self, *args, **kwargs)
        marks = [b.before_api_merge() for b in backends]
        error: BaseException | None = None
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            for backend, mark in zip(backends, marks, strict=True):
                backend.after_api_merge(getattr(self, "_jbuilder", None), mark, error)

    return execute


def _install_merge_hook(backend: ClassicBackend) -> None:
    with _MERGE_LOCK:
        if not _MERGE_PATCH:
            cls = _merge_builder_class()
            original = cls.__dict__.get("execute") if cls is not None else None
            if cls is None or original is None:
                return
            wrapper = _wrap_merge_execute(original)
            cls.execute = wrapper  # type: ignore[attr-defined]
            _MERGE_PATCH.append((cls, original, wrapper))
        _MERGE_ACTIVE.append(backend)


def _uninstall_merge_hook(backend: ClassicBackend) -> None:
    with _MERGE_LOCK:
        if backend in _MERGE_ACTIVE:
            _MERGE_ACTIVE.remove(backend)
        if _MERGE_ACTIVE:
            return
        for cls, original, wrapper in _MERGE_PATCH:
            if cls.__dict__.get("execute") is wrapper:
                cls.execute = original  # type: ignore[attr-defined]
        _MERGE_PATCH.clear()


# --- the backend ------------------------------------------------------------------------------


class _QueryExecutionListener:
    """``org.apache.spark.sql.util.QueryExecutionListener`` implemented in Python via py4j."""

    def __init__(self, backend: ClassicBackend) -> None:
        self._backend = backend

    def onSuccess(self, funcName: str, qe: JavaObject, durationNs: int) -> None:  # noqa: N802,N803
        self._backend.on_event(qe, None)

    def onFailure(self, funcName: str, qe: JavaObject, exception: JavaObject) -> None:  # noqa: N802,N803
        self._backend.on_event(qe, exception)

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.sql.util.QueryExecutionListener"]


class ClassicBackend:
    """Observes writes of one classic ``SparkSession`` through a py4j ``QueryExecutionListener``."""

    mechanism = "classic"

    def __init__(
        self,
        spark: Any,
        collector: Collector,
        warn: Callable[[str], None],
        debug: Callable[[str], None],
        *,
        lineage: bool = True,
    ) -> None:
        self._spark = spark
        self._lineage = lineage  # read column lineage from each write's plan
        self._collector = collector
        self._warn = warn
        self._debug = debug
        self._listener: _QueryExecutionListener | None = None
        self._proxy_holder: JavaObject | None = None
        self._bus: JavaObject | None = None
        self._app_id: str | None = None
        self._tagger = CommitTagger(
            lambda: self._spark.conf.get(COMMIT_TAG_CONF, None),
            lambda tag: self._spark.conf.set(COMMIT_TAG_CONF, tag),
            lambda: self._spark.conf.unset(COMMIT_TAG_CONF),
        )

    def start(self) -> None:
        self._tagger.start()
        if self._tagger.note:
            self._debug(f"[spark writes] {self._tagger.note}")
        from pyspark.java_gateway import ensure_callback_server_started

        sc = self._spark.sparkContext
        ensure_callback_server_started(sc._gateway)
        self._bus = sc._jsc.sc().listenerBus()
        try:  # let events of writes made before the block reach their listeners first
            self._bus.waitUntilEmpty(2000)
        except Exception:
            pass
        listener = _QueryExecutionListener(self)
        # py4j makes a new Java proxy each time a Python object crosses over, and Spark unregisters
        # by reference (``eq``): ``unregister(listener)`` would silently remove nothing. So the proxy
        # is made once, kept in a Java list, and handed to register/unregister through reflection
        # without ever coming back to Python.
        self._proxy_holder = sc._jvm.java.util.ArrayList()
        self._proxy_holder.add(listener)
        self._call_listener_manager("register")
        self._listener = listener
        try:
            self._app_id = str(sc.applicationId)
        except Exception:
            self._app_id = None
        try:
            _install_merge_hook(self)
        except Exception as exc:
            self._collector.hook_error("wrapping DeltaMergeBuilder.execute", exc)

    def before_api_merge(self) -> tuple[int, int]:
        """Before a Python-API ``DeltaMergeBuilder.execute()``: let queued events in, then mark."""
        started = time.perf_counter()
        try:
            self._drain()
        except Exception as exc:
            self._collector.hook_error("DeltaMergeBuilder.execute", exc)
        writes, failures = self._collector.snapshot()
        self._collector.timed(time.perf_counter() - started)
        return len(writes), len(failures)

    def after_api_merge(
        self, jbuilder: JavaObject, mark: tuple[int, int], error: BaseException | None
    ) -> None:
        """After it: when no listener event reported a MERGE to its target (Delta 3.x runs it outside
        Spark's query execution), record it; its figures come from the table's history on exit."""
        started = time.perf_counter()
        try:
            self._drain()
            write = _merge_target(jbuilder)
            if write is None:
                return
            write.api = "DeltaTable.merge"
            writes, failures = self._collector.snapshot()
            seen = writes[mark[0] :] + failures[mark[1] :]
            if any(w.operation == OP_MERGE and w.target_key == write.target_key for w in seen):
                return
            if error is not None:
                text = str(error).strip()
                write.error = text.splitlines()[0][:500] if text else type(error).__name__
            self._collector.add(write)
        except Exception as exc:
            self._collector.hook_error("DeltaMergeBuilder.execute", exc)
        finally:
            self._collector.timed(time.perf_counter() - started)

    def _drain(self) -> None:
        if self._bus is not None:
            self._bus.waitUntilEmpty(_DRAIN_MS)

    def on_event(self, qe: JavaObject, exception: JavaObject | None) -> None:
        """Listener callback body: record a write, never raise."""
        started = time.perf_counter()
        try:
            node = qe.analyzed()
            write = write_from_plan(node)
            if write is None:
                command = maintenance_command(str(node.nodeName()))
                if command is not None and exception is None:
                    self._collector.note(maintenance_note(command, _maintenance_target(node)))
                return
            if write.outer and write.table and write.locations is None:
                write.locations = self._table_locations(node)
            if exception is None:
                metrics: dict[str, int] = {}
                try:
                    metrics = write_metrics(qe.executedPlan())
                    apply_metrics(write, metrics)
                except Exception as exc:
                    self._collector.hook_error("reading write metrics", exc)
                try:
                    read_partitions(node, write, metrics, self._overwrite_mode)
                except Exception as exc:
                    self._collector.hook_error("reading partitions", exc)
                if self._lineage:
                    try:
                        write.column_lineage = column_lineage_of(node, write)
                    except Exception as exc:
                        self._collector.hook_error("reading column lineage", exc)
            else:
                write.error = _error_text(exception)
            self._collector.add(write)
        except Exception as exc:
            self._collector.hook_error("QueryExecutionListener", exc)
        finally:
            self._collector.timed(time.perf_counter() - started)

    def _overwrite_mode(self) -> str:
        """The session's ``spark.sql.sources.partitionOverwriteMode`` (``static`` / ``dynamic``)."""
        conf = self._spark._jsparkSession.sessionState().conf()
        return str(conf.getConfString(PARTITION_OVERWRITE_MODE_CONF, "static")).lower()

    def _call_listener_manager(self, method_name: str) -> None:
        """``listenerManager().<method_name>(proxy)`` with the one Java proxy of our listener."""
        holder = self._proxy_holder
        if holder is None:
            raise RuntimeError("no listener proxy")
        manager = self._spark._jsparkSession.listenerManager()
        for method in manager.getClass().getMethods():
            if method.getName() == method_name and len(method.getParameterTypes()) == 1:
                method.invoke(manager, holder.toArray())
                return
        raise RuntimeError(f"ExecutionListenerManager.{method_name} not found")

    def _table_locations(self, node: JavaObject) -> tuple[str, ...]:
        """Where a CTAS's table keeps its files (explicit LOCATION, else the managed default path),
        so the nested file write that carried its data can be joined with it."""
        locations: list[str] = []
        for accessor in ("table", "tableDesc"):
            try:
                table = getattr(node, accessor)()
                location = _opt(table.storage().locationUri())
                if location is not None:
                    locations.append(normalize_path(str(location.toString())))
                catalog = self._spark._jsparkSession.sessionState().catalog()
                locations.append(normalize_path(str(catalog.defaultTablePath(table.identifier()).toString())))
                break
            except Exception:
                continue
        return tuple(locations)

    def stop(self, timeout: float) -> None:
        try:
            if self._bus is not None:
                self._bus.waitUntilEmpty(int(max(timeout, 0.0) * 1000))
        except Exception as exc:
            self._warn(
                f"[spark writes] Spark's listener bus did not drain within {timeout:g}s; writes whose"
                f" events were still queued are not reported ({type(exc).__name__})"
            )
        finally:
            try:
                _uninstall_merge_hook(self)
            except Exception as exc:
                self._warn(f"[spark writes] could not restore DeltaMergeBuilder.execute: {exc}")
            self._tagger.stop()
            listener, self._listener = self._listener, None
            if listener is not None:
                try:
                    self._call_listener_manager("unregister")
                except Exception as exc:
                    self._warn(f"[spark writes] could not unregister the query listener: {exc}")
                self._proxy_holder = None

    def prepare(self, writes: list[SparkWrite]) -> None:
        """Nothing to do: the plans name tables fully qualified."""

    def enrich(self, writes: list[SparkWrite]) -> None:
        """Delta version and commit metrics from ``DESCRIBE HISTORY`` for Delta targets; snapshot
        ids and counters from the ``snapshots`` table for Iceberg targets."""
        enrich_from_delta_history(
            writes,
            lambda query: list(self._spark.sql(query).collect()),
            probe_unknown=False,
            on_error=self._debug,
            tag=self._tagger.tag,
        )
        enrich_from_iceberg_snapshots(
            writes,
            lambda query: list(self._spark.sql(query).collect()),
            app_id=self._app_id,
            on_error=self._debug,
        )

    def application_id(self) -> str | None:
        return self._app_id
