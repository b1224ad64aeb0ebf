"""Checks kept in files: :func:`load_checks` reads YAML or JSON in the project's own format (check
name -> kind and arguments) or in Databricks Labs DQX's (a list of rules with ``criticality``,
``check: {function, arguments}``, ``filter``), for the DQX functions that map onto our kinds.
Nothing here imports pyspark; PyYAML is imported only for a YAML file.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._checks._basic import (
    accepted_values,
    expect,
    fresh,
    has_columns,
    not_null,
    row_count,
    unique,
)
from dagster_pipes_spark.spark._checks._kinds import expect_aggregate, in_range, matches, relationships
from dagster_pipes_spark.spark._checks._model import SparkCheck
from dagster_pipes_spark.spark._checks._results import coerce_checks
from dagster_pipes_spark.spark._sql import string_literal
from dagster_pipes_spark.spark._targets import quote_identifier, split_identifier

METHOD = "load_checks"

# --- the project's own format -------------------------------------------------------------------

_ROW_OPTIONS = ("where", "max_failed_rows", "max_failed_fraction")
_COMMON = ("severity", "description")
#: kind -> (constructor, arguments it takes besides the common ones)
_KINDS: dict[str, tuple[Callable[..., SparkCheck], tuple[str, ...]]] = {
    "expect": (expect, ("sql", *_ROW_OPTIONS)),
    "not_null": (not_null, ("columns", *_ROW_OPTIONS)),
    "unique": (unique, ("columns", *_ROW_OPTIONS)),
    "accepted_values": (accepted_values, ("column", "values", "allow_null", *_ROW_OPTIONS)),
    "in_range": (in_range, ("column", "min", "max", *_ROW_OPTIONS)),
    "matches": (matches, ("column", "pattern", *_ROW_OPTIONS)),
    "relationships": (relationships, ("column", "to", "field", *_ROW_OPTIONS)),
    "expect_aggregate": (expect_aggregate, ("sql",)),
    "row_count": (row_count, ("min", "max")),
    "fresh": (fresh, ("column", "max_age")),
    "has_columns": (has_columns, ("columns",)),
}
_AGE = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def _age(value: Any) -> Any:
    """``max_age`` from a file: seconds, or ``1d``, ``2h30m``, ``90s``."""
    if isinstance(value, str):
        m = _AGE.match(value)
        if m and any(m.groups()):
            d, h, mins, secs = (float(g) if g else 0.0 for g in m.groups())
            return timedelta(days=d, hours=h, minutes=mins, seconds=secs)
    return value


def _own(spec: Any) -> SparkCheck:
    if isinstance(spec, str):
        return expect(spec)
    if not isinstance(spec, Mapping):
        raise ValueError(f"expected a SQL string or a mapping with `kind`, got {type(spec).__name__}")
    args = dict(spec)
    kind = args.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(_KINDS)}")
    constructor, accepted = _KINDS[kind]
    if "column" in args and "columns" in accepted and "column" not in accepted:
        args["columns"] = args.pop("column")
    unknown = sorted(k for k in args if k not in accepted and k not in _COMMON)
    if unknown:
        raise ValueError(f"{kind} takes {', '.join((*accepted, *_COMMON))}; not {', '.join(unknown)}")
    if kind == "fresh" and "max_age" in args:
        args["max_age"] = _age(args["max_age"])
    if kind in ("not_null", "unique"):
        columns = args.pop("columns", [])
        columns = [columns] if isinstance(columns, str) else list(columns or [])
        return constructor(*columns, **args)
    return constructor(**args)


# --- DQX's format -------------------------------------------------------------------------------


def _col(args: Mapping[str, Any]) -> str:
    value = args.get("column", args.get("col_name"))
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"needs `column` (a column name), got {value!r}")
    return value


def _one(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    raise ValueError(f"`{key}` must name one column (several are not supported), got {value!r}")


def _ref(column: str) -> str:
    return ".".join(quote_identifier(p) for p in split_identifier(column)) or quote_identifier(column)


def _empty(column: str, trim: bool) -> str:
    text = f"CAST({_ref(column)} AS STRING)"
    return f"trim({text}) = ''" if trim else f"{text} = ''"


def _aggregate(op: str) -> Callable[[Mapping[str, Any], dict[str, Any], str | None], SparkCheck]:
    def build(args: Mapping[str, Any], common: dict[str, Any], where: str | None) -> SparkCheck:
        if args.get("group_by"):
            raise ValueError("`group_by` is not supported (checks aggregate the whole data)")
        column = args.get("column")
        if not isinstance(column, str) or not column.strip():
            raise ValueError(f"needs `column`, got {column!r}")
        aggr = str(args.get("aggr_type", "count")).strip().lower()
        if not re.fullmatch(r"[a-z_]+", aggr):
            raise ValueError(f"unknown `aggr_type` {aggr!r}")
        limit = args.get("limit")
        if isinstance(limit, bool) or not isinstance(limit, (int, float, str)):
            raise ValueError(f"`limit` must be a number or a SQL expression, got {limit!r}")
        call = f"{aggr}({'*' if column == '*' else _ref(column)})"
        if where:
            call += f" FILTER (WHERE {where})"
        return expect_aggregate(f"{call} {op} {limit}", **common)

    return build


def _sql_expression(args: Mapping[str, Any], common: dict[str, Any], where: str | None) -> SparkCheck:
    sql = args.get("expression")
    if not isinstance(sql, str) or not sql.strip():
        raise ValueError(f"needs `expression` (a SQL string), got {sql!r}")
    # DQX flags a row when the expression is FALSE (TRUE with negate); NULL is not flagged
    condition = f"NOT coalesce(({sql}), false)" if args.get("negate") else f"coalesce(({sql}), true)"
    return expect(condition, where=where, **common)


def _regex(args: Mapping[str, Any], common: dict[str, Any], where: str | None) -> SparkCheck:
    column, pattern = _col(args), args.get("regex")
    if not isinstance(pattern, str):
        raise ValueError(f"needs `regex`, got {pattern!r}")
    if args.get("negate"):
        ref = _ref(column)
        return expect(f"{ref} IS NULL OR NOT ({ref} RLIKE {string_literal(pattern)})", where=where, **common)
    return matches(column, pattern, where=where, **common)


def _unique(args: Mapping[str, Any], common: dict[str, Any], where: str | None) -> SparkCheck:
    if args.get("nulls_distinct", True) is not True:
        raise ValueError("`nulls_distinct: false` is not supported (rows with a NULL key are not counted)")
    columns = args.get("columns")
    columns = [columns] if isinstance(columns, str) else columns
    if not isinstance(columns, Sequence) or not columns:
        raise ValueError(f"needs `columns` (a list of column names), got {columns!r}")
    return unique(*columns, where=where, **common)


def _foreign_key(
    dataframes: Mapping[str, Any],
) -> Callable[[Mapping[str, Any], dict[str, Any], str | None], SparkCheck]:
    def build(args: Mapping[str, Any], common: dict[str, Any], where: str | None) -> SparkCheck:
        if args.get("negate"):
            raise ValueError("`negate: true` is not supported")
        column, field = _one(args, "columns"), _one(args, "ref_columns")
        to: Any = args.get("ref_table")
        name = args.get("ref_df_name")
        if to is None and name is not None:
            if name not in dataframes:
                raise ValueError(
                    f"`ref_df_name: {name}` is not in `dataframes=` ({', '.join(dataframes) or 'none'})"
                )
            to = dataframes[name]
        if to is None:
            raise ValueError("needs `ref_table` (or `ref_df_name` with `dataframes=`)")
        return relationships(column, to, field, where=where, **common)

    return build


Builder = Callable[[Mapping[str, Any], dict[str, Any], str | None], SparkCheck]


def _dqx_functions(dataframes: Mapping[str, Any]) -> dict[str, Builder]:
    """DQX function -> builder of our check (arguments, severity and description, the filter)."""

    def values(args: Mapping[str, Any]) -> list[Any]:
        allowed = args.get("allowed")
        if not isinstance(allowed, list) or not allowed:
            raise ValueError(f"needs `allowed` (a non-empty list), got {allowed!r}")
        if args.get("case_sensitive", True) is not True:
            raise ValueError("`case_sensitive: false` is not supported")
        return allowed

    def limit(args: Mapping[str, Any], key: str) -> Any:
        if key not in args:
            raise ValueError(f"needs `{key}`")
        return args[key]

    return {
        "is_not_null": lambda a, c, w: not_null(_col(a), where=w, **c),
        "is_not_empty": lambda a, c, w: expect(
            f"NOT coalesce({_empty(_col(a), False)}, false)", where=w, **c
        ),
        "is_not_null_and_not_empty": lambda a, c, w: expect(
            f"{_ref(_col(a))} IS NOT NULL AND NOT {_empty(_col(a), bool(a.get('trim_strings')))}",
            where=w,
            **c,
        ),
        "is_in_list": lambda a, c, w: accepted_values(_col(a), values(a), allow_null=True, where=w, **c),
        "is_not_null_and_is_in_list": lambda a, c, w: accepted_values(_col(a), values(a), where=w, **c),
        "is_in_range": lambda a, c, w: in_range(
            _col(a), limit(a, "min_limit"), limit(a, "max_limit"), where=w, **c
        ),
        "is_not_less_than": lambda a, c, w: in_range(_col(a), min=limit(a, "limit"), where=w, **c),
        "is_not_greater_than": lambda a, c, w: in_range(_col(a), max=limit(a, "limit"), where=w, **c),
        "regex_match": _regex,
        "sql_expression": _sql_expression,
        "is_unique": _unique,
        "foreign_key": _foreign_key(dataframes),
        "is_aggr_not_greater_than": _aggregate("<="),
        "is_aggr_not_less_than": _aggregate(">="),
        "is_aggr_equal": _aggregate("="),
        "is_aggr_not_equal": _aggregate("<>"),
    }


_CRITICALITY = {"error": "ERROR", "warn": "WARN"}


def _dqx_name(function: str, args: Mapping[str, Any]) -> str:
    column = args.get("column", args.get("col_name", args.get("columns")))
    if isinstance(column, list):
        column = "_".join(str(c) for c in column)
    text = f"{column}_{function}" if isinstance(column, str) and column != "*" else function
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or function


def _dqx(rules: Sequence[Any], dataframes: Mapping[str, Any]) -> tuple[dict[str, SparkCheck], list[str]]:
    functions = _dqx_functions(dataframes)
    out: dict[str, SparkCheck] = {}
    problems: list[str] = []
    for i, rule in enumerate(rules):
        label = f"rule {i + 1}"
        try:
            if not isinstance(rule, Mapping) or not isinstance(rule.get("check"), Mapping):
                raise ValueError("expected a mapping with `check: {function: ..., arguments: ...}`")
            label = f"rule {i + 1} ({rule.get('name') or rule['check'].get('function')})"
            check = rule["check"]
            function = check.get("function")
            if function not in functions:
                raise ValueError(f"function {function!r} is not supported; supported: {', '.join(functions)}")
            criticality = str(rule.get("criticality", "error")).lower()
            if criticality not in _CRITICALITY:
                raise ValueError(f"unknown criticality {rule.get('criticality')!r}; use error or warn")
            common: dict[str, Any] = {"severity": _CRITICALITY[criticality]}
            if rule.get("user_metadata"):
                common["description"] = json.dumps(rule["user_metadata"], sort_keys=True, default=str)
            where = rule.get("filter")
            arguments = dict(check.get("arguments") or {})
            expansions = check.get("for_each_column")
            targets = [None] if not expansions else list(expansions)
            for target in targets:
                args = dict(arguments)
                if target is not None:
                    args["columns" if isinstance(target, list) else "column"] = target
                built = functions[function](args, common, where)
                name = rule.get("name") if target is None and rule.get("name") else _dqx_name(function, args)
                base, n = str(name), 2
                while name in out:
                    name, n = f"{base}_{n}", n + 1
                out[str(name)] = built
        except (ValueError, TypeError) as exc:
            problems.append(f"{label}: {exc}")
    return out, problems


# --- reading ------------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return json.loads(text)
    try:
        import yaml
    except ImportError:
        if path.suffix.lower() in (".yaml", ".yml"):
            raise DagsterPipesError(
                f"`{METHOD}` needs PyYAML to read {path} (pip install PyYAML), or write the checks as JSON."
            ) from None
        return json.loads(text)
    return yaml.safe_load(text)


def load_checks(
    path_or_mapping: str | os.PathLike[str] | Mapping[str, Any] | Sequence[Any],
    *,
    dataframes: Mapping[str, Any] | None = None,
) -> dict[str, SparkCheck]:
    """Checks from a YAML or JSON file (or the parsed content), for :func:`report_spark_checks`.

    Two formats:

    * ours, a mapping of check name -> a SQL string (``expect``) or ``{kind: <constructor name>,
      <its arguments>}``, e.g. ``amount_ok: {kind: in_range, column: amount, min: 0,
      max_failed_fraction: 0.001, severity: WARN}`` (``fresh``'s ``max_age``: seconds or ``1d2h``);
    * DQX's, a list of ``{criticality: error|warn, check: {function, arguments, for_each_column},
      filter, name}`` for the functions ``is_not_null``, ``is_not_empty``,
      ``is_not_null_and_not_empty``, ``is_in_list``, ``is_not_null_and_is_in_list``,
      ``is_in_range``, ``is_not_less_than``, ``is_not_greater_than``, ``regex_match``,
      ``sql_expression``, ``is_unique``, ``foreign_key`` (``ref_df_name`` looked up in
      ``dataframes``) and ``is_aggr_*`` without ``group_by``; a rule without ``name`` is named
      ``<column>_<function>``; ``filter`` becomes ``where=``.

    YAML needs PyYAML (imported only then); JSON needs nothing.

    Raises:
        DagsterPipesError: naming every rule or check that cannot be read or is invalid.
    """
    source = "the checks given"
    data: Any = path_or_mapping
    if isinstance(path_or_mapping, (str, os.PathLike)):
        path = Path(path_or_mapping)
        source = str(path)
        try:
            data = _read(path)
        except DagsterPipesError:
            raise
        except Exception as exc:
            raise DagsterPipesError(f"`{METHOD}` cannot read {source}: {type(exc).__name__}: {exc}") from None
    problems: list[str] = []
    checks: dict[str, SparkCheck] = {}
    if isinstance(data, Mapping):
        for name, spec in data.items():
            try:
                checks[str(name)] = _own(spec)
            except (ValueError, TypeError) as exc:
                problems.append(f"check {name!r}: {exc}")
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        checks, problems = _dqx(data, dataframes or {})
    else:
        problems.append(
            f"expected a mapping of check name -> check, or a list of DQX rules; got {type(data).__name__}"
        )
    if problems:
        raise DagsterPipesError(f"Invalid checks in {source}:\n  - " + "\n  - ".join(problems))
    return coerce_checks(checks, f"{METHOD}({source})")
