"""Metadata normalisation: turn what users pass into exactly what the orchestrator decodes.

The orchestrator (``metadata_map_from_external``) indexes ``raw_value`` and ``type`` on every value
and builds a ``MetadataValue`` per type; anything it cannot decode kills its reader thread silently.
So every value is validated here, at the call site, and converted where the documented shape differs
from the accepted one (``table_schema`` as a list, ``table_column_lineage`` as documented, integer
``float`` values, column constraints beyond ``nullable``/``unique``/``other``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from ._errors import DagsterPipesError
from ._json import dumps
from ._protocol import PIPES_METADATA_TYPE_INFER, PipesMetadataType, PipesMetadataValue, to_asset_key_path

METADATA_TYPES: frozenset[str] = frozenset(get_args(PipesMetadataType))
_VALUE_KEYS = frozenset({"raw_value", "type"})
_TEXT_TYPES = frozenset({"text", "url", "path", "notebook", "md", "dagster_run", "asset"})
_COLUMN_KEYS = frozenset({"name", "type", "description", "tags", "constraints"})
_CONSTRAINT_KEYS = frozenset({"nullable", "unique", "other"})


def _is_decimal(value: Any) -> bool:
    mod = sys.modules.get("decimal")  # never imported: the value cannot be a Decimal
    return mod is not None and isinstance(value, mod.Decimal)


def _is_datetime(value: Any) -> bool:
    mod = sys.modules.get("datetime")  # never imported: the value cannot be a datetime
    return mod is not None and isinstance(value, mod.datetime)


def _is_date(value: Any) -> bool:
    """A ``datetime.date`` (a ``datetime.datetime`` included)."""
    mod = sys.modules.get("datetime")
    return mod is not None and isinstance(value, mod.date)


def _is_path(value: Any) -> bool:
    mod = sys.modules.get("pathlib")
    return mod is not None and isinstance(value, mod.PurePath)


def _err(where: str, problem: str, fix: str) -> DagsterPipesError:
    return DagsterPipesError(f"Invalid metadata {where}: {problem}. {fix}")


def _scalar(value: Any) -> Any:
    """Unbox numpy/pandas scalars to plain Python values; leave everything else alone."""
    mod = type(value).__module__
    if mod.startswith(("numpy", "pandas")) and hasattr(value, "item") and not hasattr(value, "__len__"):
        try:
            return value.item()
        except (ValueError, TypeError):  # pragma: no cover - exotic dtypes
            return value
    return value


def _to_timestamp(value: Any, where: str) -> float | int:
    import datetime

    value = _scalar(value)
    if isinstance(value, bool):
        raise _err(where, "type `timestamp` got a bool", "Pass seconds since the epoch (int or float).")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.timezone.utc).timestamp()
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return _to_timestamp(parsed, where)
    if hasattr(value, "timestamp") and callable(value.timestamp):  # pandas.Timestamp and friends
        return float(value.timestamp())
    raise _err(
        where,
        f"type `timestamp` needs seconds since the epoch, got {type(value).__name__} {value!r}",
        "Pass an int/float epoch, a datetime, or an ISO-8601 string.",
    )


def _check_json(value: Any, where: str) -> Any:
    """Reject a top-level value that can never be JSON; nested values are checked on serialization."""
    if isinstance(value, (dict, list, str, int, float, bool)) or value is None:
        return value
    try:
        dumps(value)
    except (TypeError, ValueError) as e:
        raise _err(
            where,
            f"value of type {type(value).__name__} is not JSON-serializable ({e})",
            "Convert it to dicts, lists, strings, numbers, bools or None.",
        ) from e
    return value


def _column(col: Any, where: str) -> dict[str, Any]:
    if isinstance(col, str):
        return {"name": col, "type": "string"}
    if not isinstance(col, Mapping):
        raise _err(where, f"a column must be a dict with `name` and `type`, got {col!r}", "")
    if "name" not in col or not isinstance(col["name"], str):
        raise _err(
            where, f"column {dict(col)!r} has no string `name`", "Every column needs `name` and `type`."
        )
    name = col["name"]
    unknown = set(col) - _COLUMN_KEYS
    if unknown:
        raise _err(
            where,
            f"column `{name}` has unknown keys {sorted(unknown)}",
            f"Allowed keys are {sorted(_COLUMN_KEYS)}.",
        )
    out: dict[str, Any] = {"name": name, "type": str(col.get("type", "string"))}
    if col.get("description") is not None:
        out["description"] = str(col["description"])
    tags = col.get("tags")
    if tags:
        if not isinstance(tags, Mapping):
            raise _err(where, f"`tags` of column `{name}` must be a dict of strings", "")
        out["tags"] = {str(k): str(v) for k, v in tags.items()}
    cons = col.get("constraints")
    if cons:
        if not isinstance(cons, Mapping):
            raise _err(where, f"`constraints` of column `{name}` must be a dict", "")
        fixed: dict[str, Any] = {}
        other = [str(o) for o in (cons.get("other") or [])]
        for key, val in cons.items():
            if key in ("nullable", "unique"):
                fixed[key] = bool(_scalar(val))
            elif key != "other":
                # Dagster only models nullable/unique/other; keep the rest as readable `other` entries.
                other.append(f"{key}: {val}")
        if other:
            fixed["other"] = other
        out["constraints"] = fixed
    return out


def _columns(schema: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(schema, Mapping):
        if "columns" not in schema:
            raise _err(
                where, "a schema dict needs a `columns` list", 'Use {"columns": [{"name", "type"}, ...]}.'
            )
        schema = schema["columns"]
    if isinstance(schema, (str, bytes)) or not isinstance(schema, Sequence):
        raise _err(where, f"schema must be a list of columns, got {type(schema).__name__}", "")
    return [_column(c, where) for c in schema]


def _cell(value: Any, where: str, column: str) -> Any:
    value = _scalar(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if _is_date(value):
        return value.isoformat()
    if _is_decimal(value):
        return float(value)
    raise _err(
        where,
        f"table cell in column `{column}` has type {type(value).__name__}",
        "Table cells must be strings, numbers, bools or None.",
    )


def _table(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping) or "records" not in raw:
        raise _err(
            where,
            "type `table` needs a dict with `records` (and `schema`)",
            'Use {"records": [...], "schema": [...]}.',
        )
    records = raw["records"]
    if isinstance(records, Mapping) or not isinstance(records, Sequence):
        raise _err(where, "`records` must be a list of dicts", "")
    out_records = []
    for rec in records:
        if not isinstance(rec, Mapping):
            raise _err(where, f"each record must be a dict, got {type(rec).__name__}", "")
        out_records.append({str(k): _cell(v, where, str(k)) for k, v in rec.items()})
    if raw.get("schema") is not None:
        schema = _columns(raw["schema"], where)
    else:  # infer a schema from the first record, as a convenience
        first = out_records[0] if out_records else {}
        schema = [
            {"name": k, "type": type(v).__name__ if v is not None else "string"} for k, v in first.items()
        ]
    return {"records": out_records, "schema": schema}


def _lineage(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise _err(where, "type `table_column_lineage` needs a dict", 'Use {"deps_by_column": {col: [...]}}.')
    if "deps_by_column" in raw:
        deps_by_column = raw["deps_by_column"]
    elif "table_column_lineage" in raw:  # the shape the Pipes docs show
        deps_by_column = raw["table_column_lineage"]
    else:
        deps_by_column = raw
    if not isinstance(deps_by_column, Mapping):
        raise _err(where, "`deps_by_column` must map column names to lists of deps", "")
    out: dict[str, list[dict[str, Any]]] = {}
    for column, deps in deps_by_column.items():
        if isinstance(deps, Mapping) or not isinstance(deps, Sequence):
            raise _err(where, f"deps of column `{column}` must be a list", "")
        fixed = []
        for dep in deps:
            if not isinstance(dep, Mapping) or "asset_key" not in dep:
                raise _err(where, f"each dep of column `{column}` needs `asset_key`", "")
            col_name = dep.get("column_name", dep.get("column"))
            if not isinstance(col_name, str):
                raise _err(where, f"each dep of column `{column}` needs a string `column_name`", "")
            fixed.append(
                {"asset_key": _dep_key(dep["asset_key"], where, str(column)), "column_name": col_name}
            )
        out[str(column)] = fixed
    return {"deps_by_column": out}


def _dep_key(key: Any, where: str, column: str) -> str | list[str]:
    """A lineage dep's asset key as the orchestrator reads it: ``TableColumnDep`` takes a string
    as ONE part (``"a/b"`` would be the key ``["a/b"]``) and a list as the parts. So an escaped key
    string (``"a/b"``, ``"a\\/b"``) travels as its parts, a one-part key as a plain string."""
    path = getattr(key, "path", None)  # dagster.AssetKey
    if isinstance(path, (list, tuple)):
        key = path
    if isinstance(key, str):
        parts = to_asset_key_path(key)
    elif isinstance(key, Sequence) and key and all(isinstance(p, str) for p in key):
        parts = list(key)
    else:
        raise _err(
            where,
            f"`asset_key` of a dep of `{column}` must be a string or a list of strings, got {key!r}",
            'Use "a/b" (escaped like other Pipes asset keys) or ["a", "b"].',
        )
    if not parts:
        raise _err(where, f"`asset_key` of a dep of `{column}` is empty", "")
    return parts[0] if len(parts) == 1 else parts


def _typed(raw: Any, mtype: str, where: str) -> Any:
    """Validate/convert ``raw`` for the declared ``mtype`` and return the wire raw value."""
    raw = _scalar(raw)
    if mtype in _TEXT_TYPES:
        if mtype == "text" and raw is None:
            return ""
        if _is_path(raw) and mtype in ("path", "notebook"):
            return str(raw)
        if not isinstance(raw, str):
            raise _err(
                where, f"type `{mtype}` needs a string, got {type(raw).__name__} {raw!r}", "Pass a str."
            )
        return raw
    if mtype == "float":
        if isinstance(raw, bool) or not (isinstance(raw, (int, float)) or _is_decimal(raw)):
            raise _err(
                where,
                f"type `float` needs a number, got {type(raw).__name__} {raw!r}",
                "Pass an int or float.",
            )
        return float(raw)  # an integer must travel as 1.0, or the orchestrator rejects it
    if mtype == "int":
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if not isinstance(raw, int):
            raise _err(
                where, f"type `int` needs an integer, got {type(raw).__name__} {raw!r}", "Pass an int."
            )
        return int(raw)
    if mtype == "bool":
        if not isinstance(raw, bool):
            raise _err(
                where, f"type `bool` needs True or False, got {type(raw).__name__} {raw!r}", "Pass a bool."
            )
        return raw
    if mtype == "json":
        if isinstance(raw, tuple):
            raw = list(raw)
        return _check_json(raw, where)
    if mtype == "null":
        return None
    if mtype == "timestamp":
        return _to_timestamp(raw, where)
    if mtype == "table":
        return _table(raw, where)
    if mtype == "table_schema":
        return {"columns": _columns(raw, where)}
    if mtype == "table_column_lineage":
        return _lineage(raw, where)
    raise AssertionError(mtype)  # pragma: no cover - guarded by the caller


def _infer(value: Any, where: str, explicit: bool = False) -> PipesMetadataValue:
    value = _scalar(value)
    if value is None or isinstance(value, (str, bool, int)):
        return {"raw_value": value, "type": "__infer__"}
    if isinstance(value, float):
        return {"raw_value": value, "type": "__infer__"}
    if isinstance(value, (list, tuple)):
        return {"raw_value": _check_json(list(value), where), "type": "__infer__"}
    if isinstance(value, Mapping):
        # An explicit `__infer__` dict is decoded as JSON by Dagster; a bare dict is sent as `json`.
        return {"raw_value": _check_json(dict(value), where), "type": "__infer__" if explicit else "json"}
    if _is_datetime(value):
        return {"raw_value": _to_timestamp(value, where), "type": "timestamp"}
    if _is_decimal(value):
        f = float(value)
        return {"raw_value": f, "type": "__infer__"}
    if _is_path(value):
        return {"raw_value": str(value), "type": "path"}
    raise _err(
        where,
        f"value of type {type(value).__name__} cannot be sent",
        'Pass a str, number, bool, None, list or dict, or wrap it as {"raw_value": ..., "type": ...}.',
    )


_PLAIN = (str, int, float, bool, type(None))
# Typed values whose raw value can pass through untouched when it has exactly this Python type.
_PASS_THROUGH: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "url": (str,),
    "path": (str,),
    "notebook": (str,),
    "md": (str,),
    "dagster_run": (str,),
    "asset": (str,),
    "float": (float,),
    "int": (int,),
    "bool": (bool,),
    "timestamp": (int, float),
    "json": (dict, list, str, int, float, bool),
    "__infer__": (*_PLAIN, list),
}


def typed_value(raw: Any, kind: str) -> dict[str, Any]:
    """A metadata value of an explicit wire type, as sent (``{"raw_value": raw, "type": kind}``)."""
    return {"raw_value": raw, "type": kind}


def normalize_metadata_value(key: str, value: Any) -> PipesMetadataValue:
    """Normalise one metadata value into ``{"raw_value": ..., "type": ...}`` accepted by Dagster.

    JSON-serializability of nested values is checked when the message is serialized (once), and a
    failure there is reported with the offending key by :func:`find_unserializable_key`.
    """
    vtype = type(value)
    if vtype in _PLAIN:
        return {"raw_value": value, "type": "__infer__"}
    if vtype is dict and len(value) == 2 and "raw_value" in value and "type" in value:
        mtype = value["type"]
        allowed = _PASS_THROUGH.get(mtype) if type(mtype) is str else None
        if allowed is not None and type(value["raw_value"]) in allowed:
            return value
    where = f"value for key `{key}`"
    if isinstance(value, Mapping) and ("type" in value or "raw_value" in value):
        keys = set(value)
        if keys != _VALUE_KEYS:
            missing = sorted(_VALUE_KEYS - keys)
            extra = sorted(keys - _VALUE_KEYS)
            detail = []
            if missing:
                detail.append(f"missing {missing}")
            if extra:
                detail.append(f"unexpected {extra}")
            raise _err(
                where,
                f"a typed metadata value must have exactly the keys `raw_value` and `type` ({', '.join(detail)})",
                'Use {"raw_value": <value>, "type": <type>}, or pass a plain value to have its type inferred.',
            )
        mtype = value["type"]
        if mtype not in METADATA_TYPES:
            raise _err(
                where,
                f"unknown metadata type {mtype!r}",
                f"Use one of: {', '.join(sorted(METADATA_TYPES))}.",
            )
        if mtype == PIPES_METADATA_TYPE_INFER:
            return _infer(value["raw_value"], where, explicit=True)
        return {"raw_value": _typed(value["raw_value"], mtype, where), "type": mtype}
    return _infer(value, where)


def normalize_metadata(
    metadata: Any, method: str = "report_asset_materialization"
) -> dict[str, PipesMetadataValue] | None:
    """Normalise a metadata mapping; ``None`` and ``{}`` become ``None`` (as the stock library sends)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise DagsterPipesError(
            f"Invalid type for parameter `metadata` of `{method}`: expected a dict, got {type(metadata).__name__}."
        )
    if not metadata:
        return None
    out: dict[str, PipesMetadataValue] = {}
    for key, value in metadata.items():
        if type(key) is not str:
            raise DagsterPipesError(
                f"Invalid metadata key {key!r} in `{method}`: keys must be strings (got {type(key).__name__})."
            )
        out[key] = normalize_metadata_value(key, value)
    return out


def find_unserializable_key(metadata: Mapping[str, Any] | None) -> str | None:
    """The first metadata key whose value cannot be serialized (used to word error messages)."""
    for key, value in (metadata or {}).items():
        try:
            dumps(value)
        except (TypeError, ValueError):
            return key
    return None
