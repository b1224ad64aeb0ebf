"""DQX's result columns on the checked rows: ``_errors`` and ``_warnings``, each an array (NULL when
empty) with one item per rule flagging the row, in rule order, shaped as DQX 0.17 shapes them
(``name``, ``message``, ``columns``, ``filter``, ``function``, ``run_time``, ``run_id``,
``user_metadata``, ``rule_fingerprint``, ``rule_set_fingerprint``, ``skipped``). A rule that cannot
be evaluated gives every row an item with ``skipped`` TRUE, as DQX does. Nothing here imports
pyspark."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from dagster_pipes_spark.spark._checks._model import Compiled
from dagster_pipes_spark.spark._sql import string_literal

ERRORS = "_errors"
WARNINGS = "_warnings"
#: DQX's result item type
ITEM_TYPE = (
    "struct<name:string,message:string,columns:array<string>,filter:string,function:string,"
    "run_time:timestamp,run_id:string,user_metadata:map<string,string>,rule_fingerprint:string,"
    "rule_set_fingerprint:string,skipped:boolean>"
)


def _text(value: str | None) -> str:
    return "CAST(NULL AS STRING)" if value is None else string_literal(value)


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _describe(c: Compiled) -> dict[str, Any]:
    """What a check is, for its result items: function, columns, filter, user metadata."""
    check = c.check
    built = getattr(check, "built", None)
    if built is not None:  # a DQX rule
        return {
            "function": check.function,  # type: ignore[attr-defined]
            "columns": list(built.columns),
            "filter": check.filter,  # type: ignore[attr-defined]
            "user_metadata": dict(check.user_metadata),  # type: ignore[attr-defined]
            "definition": check.definition,
        }
    return {
        "function": type(check).__name__.lower(),
        "columns": list(c.reads),
        "filter": c.where,
        "user_metadata": {},
        "definition": check.definition,
    }


def _item(c: Compiled, message: str, skipped: bool, run_id: str, rule_set: str) -> str:
    described = _describe(c)
    columns = described["columns"]
    metadata = described["user_metadata"]
    pairs = ", ".join(f"{string_literal(str(k))}, {string_literal(str(v))}" for k, v in metadata.items())
    listed = ", ".join(string_literal(x) for x in columns)
    columns_sql = f"array({listed})" if columns else "CAST(NULL AS ARRAY<STRING>)"
    metadata_sql = f"map({pairs})" if pairs else "CAST(map() AS MAP<STRING, STRING>)"
    skipped_sql = "TRUE" if skipped else "CAST(NULL AS BOOLEAN)"
    return (
        f"CAST(named_struct('name', {string_literal(c.name)}, 'message', {message},"
        f" 'columns', {columns_sql}, 'filter', {_text(described['filter'])},"
        f" 'function', {string_literal(described['function'])},"
        f" 'run_time', current_timestamp(), 'run_id', {string_literal(run_id)},"
        f" 'user_metadata', {metadata_sql}, 'rule_fingerprint', {string_literal(_fingerprint(described))},"
        f" 'rule_set_fingerprint', {string_literal(rule_set)}, 'skipped', {skipped_sql}) AS {ITEM_TYPE})"
    )


def result_columns(compiled: Sequence[Compiled], flags: Mapping[int, str], run_id: str) -> tuple[str, str]:
    """SQL of the arrays of ``_errors`` and ``_warnings`` (empty when nothing flags the row: see
    :func:`empty_as_null`) over data with each check's flag (``flags``: check index -> SQL of a
    boolean column, TRUE where the check flags the row)."""
    rule_set = _fingerprint(sorted(_fingerprint(_describe(c)) for c in compiled))
    arrays: dict[str, list[str]] = {"ERROR": [], "WARN": []}
    for c in compiled:
        flag = flags.get(c.index)
        if c.error is not None:
            message = string_literal(f"Check evaluation skipped: {c.error}")
            arrays[c.check.level].append(_item(c, message, True, run_id, rule_set))
        elif flag is not None:
            message = c.message or string_literal(f"Check {c.name} failed: {c.check.definition}")
            item = _item(c, message, False, run_id, rule_set)
            arrays[c.check.level].append(f"IF({flag}, {item}, NULL)")
    out = []
    for level in ("ERROR", "WARN"):
        items = arrays[level]
        if not items:
            out.append(f"CAST(NULL AS ARRAY<{ITEM_TYPE}>)")
            continue
        out.append(f"array_compact(array({', '.join(items)}))")
    return out[0], out[1]


def empty_as_null(column: str) -> str:
    """SQL of a result column that is NULL when its array is empty (as DQX leaves it)."""
    return f"IF(size({column}) > 0, {column}, NULL)"
