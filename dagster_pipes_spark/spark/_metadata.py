"""The Pipes metadata of one asset's writes (aggregated), and Spark type names.

Nothing here imports pyspark.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark._protocol import to_asset_key_path
from dagster_pipes_spark.spark._lineage import merge_lineage
from dagster_pipes_spark.spark._lineage_types import LineageSource
from dagster_pipes_spark.spark._partitions import PartitionScope, partition_row_count, written_partitions
from dagster_pipes_spark.spark._targets import is_uri, quote_identifier
from dagster_pipes_spark.spark._write_record import OP_DELETE, OP_MERGE, OP_UPDATE, SparkWrite

# --- metadata ---------------------------------------------------------------------------------

MAX_WRITES_IN_METADATA = 50


def _sum_known(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def _distinct(values: Iterable[str | None]) -> list[str]:
    out: list[str] = []
    for value in values:
        if value and value not in out:
            out.append(value)
    return out


def build_metadata(
    writes: Sequence[SparkWrite],
    application_id: str | None,
    partition_scope: PartitionScope | None = None,
    *,
    source_key: Callable[[LineageSource], str | None] | None = None,
) -> dict[str, Any]:
    """Pipes metadata for one asset from the (successful) writes that map to it, oldest first.

    ``partition_scope``: the partition(s) the step targets, for ``dagster/partition_row_count``.
    ``source_key``: the asset key of a table or path the writes read, for ``dagster/column_lineage``.
    """
    md: dict[str, Any] = {}
    rows = _sum_known(w.rows for w in writes)
    if rows is not None:
        md["dagster/row_count"] = typed_value(rows, "int")
    partition_rows = partition_row_count(partition_scope, writes)
    if partition_rows is not None:
        md["dagster/partition_row_count"] = typed_value(partition_rows, "int")
    last = writes[-1]
    tables = _distinct(w.target for w in writes if w.table)
    paths = _distinct(w.path for w in writes if not w.table and w.path)
    named_query = bool(last.streaming and last.streaming.get("spark/streaming_foreach_batch"))
    if last.table and not named_query:  # a foreachBatch query is resolved by its name: no table
        md["dagster/table_name"] = typed_value(dagster_table_name(last.table), "text")
    elif last.path:
        md["dagster/uri"] = typed_value(last.path, "url" if is_uri(last.path) else "path")
    kind = storage_kind(next((w.format for w in reversed(writes) if w.format), None))
    if kind and (last.table or last.path) and not named_query:
        md["dagster/storage_kind"] = typed_value(kind, "text")
    if len(tables) + len(paths) > 1:
        md["spark/targets"] = typed_value(tables + paths, "json")
    columns = next((w.columns for w in reversed(writes) if w.columns), None)
    if columns:
        md["dagster/column_schema"] = typed_value(
            {"columns": [{"name": name, "type": kind} for name, kind in columns]}, "table_schema"
        )
    lineage = column_lineage(writes, source_key) if source_key is not None else None
    if lineage:
        md["dagster/column_lineage"] = typed_value(lineage, "table_column_lineage")
    md["spark/operation"] = typed_value(", ".join(_distinct(w.operation for w in writes)), "text")
    modes = _distinct(w.mode for w in writes)
    if modes:
        md["spark/write_mode"] = typed_value(", ".join(modes), "text")
    formats = _distinct(w.format for w in writes)
    if formats:
        md["spark/format"] = typed_value(", ".join(formats), "text")
    md["spark/num_writes"] = typed_value(len(writes), "int")
    written = [spec for w in writes for spec in written_partitions(w) or ()]
    if written:
        md["spark/partitions_written"] = typed_value(
            [dict(p) for p in dict.fromkeys(_frozen(written))], "json"
        )
    counts = [w.num_partitions for w in writes if w.partition_columns]
    if counts and all(c is not None for c in counts):
        md["spark/num_partitions_written"] = typed_value(sum(c or 0 for c in counts), "int")
    for key, attr in (("spark/files_written", "files"), ("spark/bytes_written", "bytes")):
        total = _sum_known(getattr(w, attr) for w in writes)
        if total is not None:
            md[key] = typed_value(total, "int")
    dml = [w for w in writes if w.operation in (OP_MERGE, OP_UPDATE, OP_DELETE)]
    for key, attr in (
        ("spark/rows_inserted", "rows_inserted"),
        ("spark/rows_updated", "rows_updated"),
        ("spark/rows_deleted", "rows_deleted"),
    ):
        values = [getattr(w, attr) for w in dml if getattr(w, attr) is not None]
        if values:
            md[key] = typed_value(sum(values), "int")
    versions = [w.delta_version for w in writes if w.delta_version is not None]
    if versions:
        md["delta/version"] = typed_value(versions[-1], "int")
    snapshots = [w.snapshot_id for w in writes if w.snapshot_id is not None]
    if snapshots:
        md["iceberg/snapshot_id"] = typed_value(snapshots[-1], "int")
    md.update(streaming_metadata(writes))
    if application_id:
        md["spark/application_id"] = typed_value(application_id, "text")
    summaries = [w.summary() for w in writes[-MAX_WRITES_IN_METADATA:]]
    md["spark/writes"] = typed_value(summaries, "json")
    return md


def streaming_metadata(writes: Sequence[SparkWrite]) -> dict[str, Any]:
    """The ``spark/streaming_*`` metadata of an asset's streaming writes (the last query's, with
    batches and input rows summed when several queries wrote the asset)."""
    streams = [w.streaming for w in writes if w.streaming]
    if not streams:
        return {}
    merged = dict(streams[-1])
    if len(streams) > 1:
        for key in ("spark/streaming_batches", "spark/streaming_input_rows", "spark/streaming_duration_ms"):
            merged[key] = sum(int(s.get(key) or 0) for s in streams)
        merged["spark/streaming_active"] = any(s.get("spark/streaming_active") for s in streams)
        merged["spark/streaming_queries"] = len(streams)
    out: dict[str, Any] = {}
    for key, value in merged.items():
        if value is None:
            continue
        kind = (
            "bool"
            if isinstance(value, bool)
            else "int"
            if isinstance(value, int)
            else "text"
            if isinstance(value, str)
            else "json"
        )
        out[key] = typed_value(value, kind)
    return out


def column_lineage(
    writes: Sequence[SparkWrite], source_key: Callable[[LineageSource], str | None]
) -> dict[str, Any] | None:
    """``dagster/column_lineage`` of one asset's writes: for each written column with known sources,
    ``{"asset_key": [parts], "column_name": ...}`` per source column, sorted. Asset keys travel as
    lists of parts: Dagster reads a string as ONE part (``"a/b"`` would be the key ``["a/b"]``).
    None when a write's lineage is unknown or no column has a source asset."""
    merged = merge_lineage([w.column_lineage for w in writes])
    if not merged:
        return None
    keys: dict[LineageSource, list[str] | None] = {}
    deps_by_column: dict[str, list[dict[str, Any]]] = {}
    for column, deps in merged.items():
        entries: set[tuple[tuple[str, ...], str]] = set()
        for source, source_column in deps:
            if source not in keys:
                key = source_key(source)
                keys[source] = to_asset_key_path(key) if key else None
            parts = keys[source]
            if parts:
                entries.add((tuple(parts), source_column))
        if entries:
            deps_by_column[column] = [
                {"asset_key": list(parts), "column_name": name} for parts, name in sorted(entries)
            ]
    return {"deps_by_column": deps_by_column} if deps_by_column else None


def _frozen(specs: Iterable[dict[str, str]]) -> list[tuple[tuple[str, str], ...]]:
    return [tuple(spec.items()) for spec in specs]


# --- table names and storage kinds --------------------------------------------------------------

SESSION_CATALOG = "spark_catalog"
#: What Unity Catalog, Databricks' catalog explorer and dbt-databricks call the session catalog.
DATABRICKS_SESSION_CATALOG = "hive_metastore"


def canonical_table(parts: Sequence[str]) -> tuple[str, ...]:
    """A table's name parts as Dagster should know them: as Spark qualified them, except that on
    Databricks (``DATABRICKS_RUNTIME_VERSION`` set) the session catalog ``spark_catalog`` is
    ``hive_metastore``, the name Unity Catalog and other Databricks integrations use."""
    out = tuple(parts)
    if out and out[0].lower() == SESSION_CATALOG and os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        out = (DATABRICKS_SESSION_CATALOG, *out[1:])
    return out


def dagster_table_name(parts: Sequence[str]) -> str:
    """``dagster/table_name``: the dotted, fully qualified name (``catalog.schema.table``, as
    dagster-dbt and other integrations write it; Dagster compares names case-insensitively). A part
    containing a dot is backtick-quoted."""
    return ".".join(quote_identifier(p) if "." in p or "`" in p else p for p in canonical_table(parts))


#: ``dagster/storage_kind`` values, most specific first (table formats before file formats).
_STORAGE_KINDS = (
    "delta",
    "iceberg",
    "hudi",
    "parquet",
    "orc",
    "avro",
    "csv",
    "json",
    "xml",
    "text",
    "jdbc",
    "hive",
)
_KIND_WORD = re.compile(r"[a-z][a-z0-9_]*")


def storage_kind(fmt: str | None) -> str | None:
    """The storage kind of a provider / format name (``delta``, ``parquet``, ``iceberg``...);
    class names such as ``DeltaDataSource`` or ``org.apache.iceberg.spark.source.IcebergSource``
    are reduced to their kind."""
    if not fmt:
        return None
    text = fmt.strip().lower()
    if text in _STORAGE_KINDS:
        return text
    for kind in _STORAGE_KINDS:
        if kind in text:
            return kind
    return text if _KIND_WORD.fullmatch(text) else None


def data_version_for(writes: Sequence[SparkWrite]) -> str | None:
    """The Delta version (else the Iceberg snapshot id) after the last write, when all such writes
    of the asset hit one table."""
    delta = [w for w in writes if w.delta_version is not None]
    if delta and len({w.target_key for w in delta}) == 1:
        return str(delta[-1].delta_version)
    iceberg = [w for w in writes if w.snapshot_id is not None]
    if iceberg and not delta and len({w.target_key for w in iceberg}) == 1:
        return str(iceberg[-1].snapshot_id)
    return None


# --- type names -------------------------------------------------------------------------------

_JSON_SIMPLE_TYPES = {
    "long": "bigint",
    "integer": "int",
    "short": "smallint",
    "byte": "tinyint",
    "null": "void",
}


def spark_json_type_to_sql(t: Any) -> str:
    """A Spark ``DataType`` in its JSON form (``StructType.json()``) as its ``simpleString``."""
    if isinstance(t, str):
        return _JSON_SIMPLE_TYPES.get(t, t)
    if not isinstance(t, Mapping):
        return str(t)
    kind = t.get("type")
    if kind == "array":
        return f"array<{spark_json_type_to_sql(t.get('elementType'))}>"
    if kind == "map":
        return f"map<{spark_json_type_to_sql(t.get('keyType'))},{spark_json_type_to_sql(t.get('valueType'))}>"
    if kind == "struct":
        fields = ",".join(
            f"{f.get('name')}:{spark_json_type_to_sql(f.get('type'))}" for f in t.get("fields", [])
        )
        return f"struct<{fields}>"
    if kind == "udt":
        return spark_json_type_to_sql(t.get("sqlType"))
    return str(kind)


def columns_from_schema_json(schema_json: str) -> list[tuple[str, str]] | None:
    """``[(name, type)]`` from ``StructType.json()``."""

    try:
        data = json.loads(schema_json)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, Mapping) or data.get("type") != "struct":
        return None
    return [(str(f.get("name")), spark_json_type_to_sql(f.get("type"))) for f in data.get("fields", [])]
