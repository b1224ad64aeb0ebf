"""The Pipes metadata of one asset's writes (aggregated), and Spark type names.

Nothing here imports pyspark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dagster_pipes_spark.spark._record import OP_DELETE, OP_MERGE, OP_UPDATE, SparkWrite
from dagster_pipes_spark.spark._targets import is_uri

# --- metadata ---------------------------------------------------------------------------------

MAX_WRITES_IN_METADATA = 50


def _mv(raw: Any, kind: str) -> dict[str, Any]:
    return {"raw_value": raw, "type": kind}


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


def build_metadata(writes: Sequence[SparkWrite], application_id: str | None) -> dict[str, Any]:
    """Pipes metadata for one asset from the (successful) writes that map to it, oldest first."""
    md: dict[str, Any] = {}
    rows = _sum_known(w.rows for w in writes)
    if rows is not None:
        md["dagster/row_count"] = _mv(rows, "int")
    last = writes[-1]
    tables = _distinct(w.target for w in writes if w.table)
    paths = _distinct(w.path for w in writes if not w.table and w.path)
    if last.table:
        md["dagster/table_name"] = _mv(last.target, "text")
    elif last.path:
        md["dagster/uri"] = _mv(last.path, "url" if is_uri(last.path) else "path")
    if len(tables) + len(paths) > 1:
        md["spark/targets"] = _mv(tables + paths, "json")
    columns = next((w.columns for w in reversed(writes) if w.columns), None)
    if columns:
        md["dagster/column_schema"] = _mv(
            {"columns": [{"name": name, "type": kind} for name, kind in columns]}, "table_schema"
        )
    md["spark/operation"] = _mv(", ".join(_distinct(w.operation for w in writes)), "text")
    modes = _distinct(w.mode for w in writes)
    if modes:
        md["spark/write_mode"] = _mv(", ".join(modes), "text")
    formats = _distinct(w.format for w in writes)
    if formats:
        md["spark/format"] = _mv(", ".join(formats), "text")
    md["spark/num_writes"] = _mv(len(writes), "int")
    for key, attr in (("spark/files_written", "files"), ("spark/bytes_written", "bytes")):
        total = _sum_known(getattr(w, attr) for w in writes)
        if total is not None:
            md[key] = _mv(total, "int")
    dml = [w for w in writes if w.operation in (OP_MERGE, OP_UPDATE, OP_DELETE)]
    for key, attr in (
        ("spark/rows_inserted", "rows_inserted"),
        ("spark/rows_updated", "rows_updated"),
        ("spark/rows_deleted", "rows_deleted"),
    ):
        values = [getattr(w, attr) for w in dml if getattr(w, attr) is not None]
        if values:
            md[key] = _mv(sum(values), "int")
    versions = [w.delta_version for w in writes if w.delta_version is not None]
    if versions:
        md["delta/version"] = _mv(versions[-1], "int")
    if application_id:
        md["spark/application_id"] = _mv(application_id, "text")
    summaries = [w.summary() for w in writes[-MAX_WRITES_IN_METADATA:]]
    md["spark/writes"] = _mv(summaries, "json")
    return md


def data_version_for(writes: Sequence[SparkWrite]) -> str | None:
    """The Delta version after the last write, when all Delta writes of the asset hit one table."""
    delta = [w for w in writes if w.delta_version is not None]
    if not delta or len({w.target_key for w in delta}) != 1:
        return None
    return str(delta[-1].delta_version)


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
