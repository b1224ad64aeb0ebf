"""What the catalog says of the tables a block wrote (Spark Connect, on exit): qualified name,
columns, provider, partition columns, location -- for all tables in a fixed number of round trips.

``DESCRIBE TABLE EXTENDED`` answers one table per statement (two round trips each: the command and
its rows). Instead, on exit:

* ``SHOW TABLE EXTENDED IN <namespace> LIKE 'a|b|...'``: one statement per namespace written (run
  concurrently) names each table's catalog, database, provider, location and -- where the catalog
  keeps them (not Delta: its log is the source of truth) -- partition columns;
* the columns of every table from ONE schema request: the tables side by side (``struct(*)`` of
  each, cross-joined; analysed, never run).

A table that cannot be served so (a name the ``LIKE`` pattern cannot express, a catalog without
``SHOW TABLE EXTENDED``, a table missing from its answer, the schema request failing), and a table
whose partition columns a write needs but the catalog does not keep, is described alone with
``DESCRIBE TABLE EXTENDED``, as before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from dagster_pipes_spark.spark._connect._facts import PLAIN_NAME
from dagster_pipes_spark.spark._parallel import chunked, parallel_map
from dagster_pipes_spark.spark._targets import quote_identifier, split_identifier

#: table names the ``LIKE`` pattern of ``SHOW TABLE EXTENDED`` matches literally
_PATTERN_SAFE = re.compile(r"[A-Za-z0-9_]+")
#: ``Partition Columns: [`a`, `b`]`` of ``SHOW TABLE EXTENDED``
_QUOTED_NAME = re.compile(r"`((?:[^`]|``)*)`")

TableKey = tuple[str, ...]


class TableDescription(NamedTuple):
    """What ``DESCRIBE TABLE EXTENDED`` tells of a written table."""

    qualified: tuple[str, ...] | None
    columns: list[tuple[str, str]] | None
    provider: str | None
    partition_columns: tuple[str, ...]
    location: str | None = None


def describe_table(spark: Any, parts: tuple[str, ...]) -> TableDescription:
    """Qualified name, columns, provider, partition columns and location from ``DESCRIBE TABLE
    EXTENDED``."""
    rows = spark.sql("DESCRIBE TABLE EXTENDED " + ".".join(quote_identifier(p) for p in parts)).collect()
    columns: list[tuple[str, str]] = []
    info: dict[str, str] = {}
    partition_columns: list[str] = []
    in_columns = True
    in_partitions = False
    for row in rows:
        name = (row[0] or "").strip()
        value = (row[1] or "").strip() if len(row) > 1 and row[1] is not None else ""
        if in_columns:
            if not name or name.startswith("#"):
                in_columns = False
                in_partitions = name in ("# Partition Information", "# Partitioning")
            else:
                columns.append((name, value))
            continue
        if name in ("# Partition Information", "# Partitioning"):  # V1 / V2 (e.g. Delta) tables
            in_partitions = True
        elif in_partitions and name and not name.startswith("#"):
            if PLAIN_NAME.fullmatch(name):
                partition_columns.append(name.strip("`"))
            elif name.startswith("Part ") and PLAIN_NAME.fullmatch(
                value
            ):  # "Part 0 | ds"; a transform such as days(ts) is not a column
                partition_columns.append(value.strip("`"))
            continue
        elif not name or name.startswith("#"):
            in_partitions = in_partitions and name == "# col_name"
        if name and not name.startswith("#") and name not in info:
            info[name] = value
    qualified: tuple[str, ...] | None = None
    database = info.get("Database") or info.get("Schema") or info.get("Namespace")
    if info.get("Catalog") and database and info.get("Table"):
        qualified = (info["Catalog"], *split_identifier(database), info["Table"])
    elif info.get("Name") and len(split_identifier(info["Name"])) >= 3:
        # a V2 table (Delta's DeltaTableV2, Iceberg): one "Name" row, fully qualified
        qualified = tuple(split_identifier(info["Name"]))
    provider = info.get("Provider")
    return TableDescription(
        qualified,
        columns or None,
        provider.lower() if provider else None,
        tuple(partition_columns),
        info.get("Location") or None,
    )


def _parse_information(text: str) -> tuple[dict[str, str], tuple[str, ...] | None]:
    """The ``key: value`` lines of a ``SHOW TABLE EXTENDED`` row's ``information`` (the schema's tree
    left out), and its partition columns (``None``: the catalog does not list them)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith(" ") or ":" not in line:
            continue  # the schema's tree (" |-- a: long ...")
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    partitions = None  # a catalog that keeps the schema keeps the partitioning (Delta keeps neither)
    if "Partition Columns" in info or "Schema" in info:
        partitions = tuple(
            m.replace("``", "`") for m in _QUOTED_NAME.findall(info.get("Partition Columns", ""))
        )
    return info, partitions


def _show_tables(spark: Any, namespace: tuple[str, ...], names: Sequence[str]) -> dict[str, Any]:
    """Lower-cased table name -> its ``SHOW TABLE EXTENDED`` row, for ``names`` in ``namespace``
    (``()``: the current one)."""
    where = f" IN {'.'.join(quote_identifier(p) for p in namespace)}" if namespace else ""
    pattern = "|".join(sorted({n.lower() for n in names}))
    rows = spark.sql(f"SHOW TABLE EXTENDED{where} LIKE '{pattern}'").collect()
    return {str(row["tableName"]).lower(): row for row in rows if not row["isTemporary"]}


def _schemas(spark: Any, tables: Sequence[tuple[str, ...]]) -> list[list[tuple[str, str]]]:
    """The columns of each table from one schema request: each table's columns as one struct column,
    the tables cross-joined (analysed on the server, never run). Column order: the joins keep each
    side's columns in order, left before right."""
    from pyspark.sql.connect import functions as sf

    frames = [
        spark.table(".".join(quote_identifier(p) for p in parts)).select(
            sf.struct(sf.col("*")).alias(f"t{i}")
        )
        for i, parts in enumerate(tables)
    ]
    while len(frames) > 1:  # balanced: analysing a left-deep chain of n joins costs far more
        frames = [
            frames[i].crossJoin(frames[i + 1]) if i + 1 < len(frames) else frames[i]
            for i in range(0, len(frames), 2)
        ]
    combined = frames[0]
    return [
        [(f.name, f.dataType.simpleString()) for f in field.dataType.fields]
        for field in combined.schema.fields
    ]


def describe_tables(
    spark: Any,
    tables: Sequence[tuple[str, ...]],
    needs_partitions: Callable[[tuple[str, ...]], bool],
    run: Callable[[Callable[[], Any]], Any],
    debug: Callable[[str], None],
) -> list[TableDescription | BaseException]:
    """The description of each table (in order), from the catalog in a fixed number of round trips:
    one ``SHOW TABLE EXTENDED`` per namespace, one schema request; ``DESCRIBE TABLE EXTENDED`` per
    table only for those (see the module). ``needs_partitions(parts)``: whether a write to the table
    needs its partition columns; ``run``: wraps each request (the caller's busy flag)."""
    out: list[TableDescription | BaseException | None] = [None] * len(tables)
    by_namespace: dict[tuple[str, ...], list[int]] = {}
    alone: list[int] = []
    for i, parts in enumerate(tables):
        if _PATTERN_SAFE.fullmatch(parts[-1]):
            by_namespace.setdefault(tuple(parts[:-1]), []).append(i)
        else:
            alone.append(i)
    # one SHOW TABLE EXTENDED per namespace and chunk of names, run concurrently
    shows = [(namespace, group) for namespace, indices in by_namespace.items() for group in chunked(indices)]

    def show(item: tuple[tuple[str, ...], list[int]]) -> dict[str, Any]:
        namespace, group = item
        return run(lambda: _show_tables(spark, namespace, [tables[i][-1] for i in group]))

    shown: dict[int, tuple[dict[str, str], tuple[str, ...] | None]] = {}
    for (namespace, group), result in zip(shows, parallel_map(show, shows), strict=True):
        if isinstance(result, BaseException):
            debug(
                f"[spark writes] SHOW TABLE EXTENDED in {'.'.join(namespace) or 'the current namespace'}"
                f" failed ({type(result).__name__}); DESCRIBE per table"
            )
            alone += group
            continue
        for i in group:
            row = result.get(tables[i][-1].lower())
            if row is None:
                alone.append(i)
            else:
                shown[i] = _parse_information(str(row["information"] or ""))
    # one schema request per chunk of tables, run concurrently
    groups = chunked(sorted(shown))

    def schemas_of(group: list[int]) -> list[list[tuple[str, str]]]:
        return run(lambda: _schemas(spark, [tables[i] for i in group]))

    for group, schemas in zip(groups, parallel_map(schemas_of, groups), strict=True):
        if isinstance(schemas, BaseException):
            debug(
                f"[spark writes] schemas of {len(group)} table(s) in one request failed"
                f" ({type(schemas).__name__}); DESCRIBE per table"
            )
            alone += group
            continue
        for i, columns in zip(group, schemas, strict=True):
            info, partitions = shown[i]
            if partitions is None and needs_partitions(tables[i]):
                alone.append(i)
                continue
            database = info.get("Database") or info.get("Namespace")
            qualified = None
            if info.get("Catalog") and database and info.get("Table"):
                qualified = (info["Catalog"], *split_identifier(database), info["Table"])
            provider = info.get("Provider")
            out[i] = TableDescription(
                qualified,
                columns or None,
                provider.lower() if provider else None,
                partitions or (),
                info.get("Location") or None,
            )
    alone = sorted(set(alone))

    def describe(i: int) -> TableDescription:
        return run(lambda: describe_table(spark, tables[i]))

    for i, described in zip(alone, parallel_map(describe, alone), strict=True):
        out[i] = described
    return [r if r is not None else LookupError("not described") for r in out]


def table_locations(spark: Any, tables: Sequence[tuple[str, ...]]) -> list[str | None]:
    """Where each table keeps its files (``None``: not found), one ``SHOW TABLE EXTENDED`` per
    namespace and chunk of names (classic or Connect session; a failing namespace leaves its tables ``None``)."""
    out: list[str | None] = [None] * len(tables)
    by_namespace: dict[tuple[str, ...], list[int]] = {}
    for i, parts in enumerate(tables):
        if _PATTERN_SAFE.fullmatch(parts[-1]):
            by_namespace.setdefault(tuple(parts[:-1]), []).append(i)
    for namespace, indices in [(ns, group) for ns, found in by_namespace.items() for group in chunked(found)]:
        try:
            rows = _show_tables(spark, namespace, [tables[i][-1] for i in indices])
        except Exception:
            continue
        for i in indices:
            row = rows.get(tables[i][-1].lower())
            if row is not None:
                out[i] = _parse_information(str(row["information"] or ""))[0].get("Location") or None
    return out
