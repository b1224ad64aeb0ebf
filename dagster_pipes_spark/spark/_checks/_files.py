"""Checks kept in files: :func:`load_checks` reads YAML or JSON in the project's own format (check
name -> kind and arguments) or in Databricks Labs DQX's (a list of rules with ``criticality``,
``check: {function, arguments}``, ``filter``), read by ``_dqx`` with DQX's meaning.
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
from dagster_pipes_spark.spark._checks._dqx import load_rules
from dagster_pipes_spark.spark._checks._key_checks import relationships, unique
from dagster_pipes_spark.spark._checks._model import SparkCheck
from dagster_pipes_spark.spark._checks._results import coerce_checks
from dagster_pipes_spark.spark._checks._row_conditions import (
    accepted_values,
    expect,
    in_range,
    matches,
    not_null,
)
from dagster_pipes_spark.spark._checks._table_checks import expect_aggregate, fresh, has_columns, row_count

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
    * Databricks Labs DQX 0.17's, a list of ``{criticality: error|warn, name, filter,
      check: {function, arguments, for_each_column}, user_metadata, message_expr}``, with DQX's
      meaning: every core check function but ``compare_datasets`` (refused, as is any argument
      that cannot be honoured), rules named as DQX names them; ``ref_df_name`` and the
      ``{{ name }}`` of a ``sql_query`` are looked up in ``dataframes``.

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
        checks, problems = load_rules(data, dataframes or {})
    else:
        problems.append(
            f"expected a mapping of check name -> check, or a list of DQX rules; got {type(data).__name__}"
        )
    if problems:
        raise DagsterPipesError(f"Invalid checks in {source}:\n  - " + "\n  - ".join(problems))
    return coerce_checks(checks, f"{METHOD}({source})")
