"""The table or path a write command's target relation names, read from the analysed plan."""

from __future__ import annotations

from dagster_pipes_spark.spark._classic._py4j import JavaObject, opt, simple_name
from dagster_pipes_spark.spark._delta import is_delta_class_name, is_delta_provider
from dagster_pipes_spark.spark._targets import normalize_path, split_identifier


def catalog_table_parts(catalog_table: JavaObject) -> tuple[str, ...]:
    return tuple(split_identifier(str(catalog_table.identifier().quotedString())))


def identifier_parts(catalog: JavaObject | None, identifier: JavaObject) -> tuple[str, ...]:
    """``catalog.namespace.name`` of a V2 ``Identifier`` (``toString`` quotes parts if needed)."""
    parts = split_identifier(str(identifier.toString()))
    if catalog is not None:
        parts = [str(catalog.name()), *parts]
    return tuple(parts)


def format_name(data_source_or_format: JavaObject) -> str:
    """``shortName()`` of a ``DataSourceRegister`` (``parquet``, ``delta``...), else the class name."""
    try:
        return str(data_source_or_format.shortName()).lower()
    except Exception:
        return simple_name(data_source_or_format)


def relation_target(
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
            catalog = opt(node.catalog())
            ident = opt(node.identifier())
            table = node.table()
            table_cls = simple_name(table)
            provider = None
            try:
                provider = table.properties().get("provider")
            except Exception:
                pass
            parts = (
                identifier_parts(catalog, ident)
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
            catalog_table = opt(node.catalogTable())
            location_cls = None
            path = None
            try:
                location = node.relation().location()
                location_cls = simple_name(location)
                roots = location.rootPaths()
                if roots.size() == 1:
                    path = normalize_path(str(roots.head().toString()))
            except Exception:
                pass
            is_delta = is_delta_class_name(location_cls)
            fmt = "delta" if is_delta else None
            if catalog_table is not None:
                provider = opt(catalog_table.provider())
                fmt = fmt or (str(provider).lower() if provider else None)
                return (
                    catalog_table_parts(catalog_table),
                    None,
                    fmt,
                    is_delta or is_delta_provider(provider),
                    node,
                )
            return None, path, fmt, is_delta, node
        if name == "HiveTableRelation":
            return catalog_table_parts(node.tableMeta()), None, "hive", False, node
        children = node.children()
        if children.size() != 1:
            break
        node = children.head()
    return None, None, None, None, relation
