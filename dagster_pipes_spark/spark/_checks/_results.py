"""The checks mapping a call receives, and the result each check gives."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._checks._model import Compiled, SparkCheck, Verdict
from dagster_pipes_spark.spark._checks._row_conditions import Expect

ChecksArg = Mapping[str, "SparkCheck | str"]


def coerce_checks(checks: Any, method: str) -> dict[str, SparkCheck]:
    """The checks mapping as ``{name: SparkCheck}``; raises naming every invalid check."""
    if not isinstance(checks, Mapping):
        raise DagsterPipesError(
            f"Invalid `checks` of `{method}`: expected a dict of check name -> check (a SQL string or"
            f" expect(...), not_null(...), ...), got {type(checks).__name__}."
        )
    if not checks:
        raise DagsterPipesError(
            f"Invalid `checks` of `{method}`: the mapping is empty; give at least one check."
        )
    out: dict[str, SparkCheck] = {}
    problems: list[str] = []
    for name, check in checks.items():
        if not isinstance(name, str) or not name.strip():
            problems.append(f"check name {name!r}: names must be non-empty strings")
            continue
        if isinstance(check, str):
            check = Expect(check)
        if not isinstance(check, SparkCheck):
            problems.append(
                f"check {name!r}: expected a SQL string or expect(...), not_null(...), unique(...),"
                f" accepted_values(...), in_range(...), matches(...), relationships(...),"
                f" expect_aggregate(...), row_count(...), fresh(...) or has_columns(...), got"
                f" {type(check).__name__} {check!r}"
            )
            continue
        problems += [f"check {name!r} ({_safe_definition(check)}): {p}" for p in check.problems()]
        out[name] = check
    if problems:
        raise DagsterPipesError(f"Invalid checks for `{method}`:\n  - " + "\n  - ".join(problems))
    return out


def _safe_definition(check: SparkCheck) -> str:
    try:
        return check.definition
    except Exception:  # a definition built from invalid arguments
        return type(check).__name__


# --- results ----------------------------------------------------------------------------------


@dataclass
class SparkCheckResult:
    """The outcome of one check, as reported to Dagster.

    ``failed_rows`` / ``failed_fraction`` are set for row-level checks (``expect``, ``not_null``,
    ``unique``, ``accepted_values``, ``in_range``, ``matches``, ``relationships``; ``total_rows`` is
    then the rows in ``where=``'s scope), ``total_rows`` whenever the data was aggregated, ``newest`` for
    ``fresh``; ``error`` when the check could not be evaluated (then ``passed`` is False);
    ``sample`` holds the failing rows fetched; ``metadata`` is what was sent to Dagster.
    """

    name: str
    passed: bool
    severity: str
    definition: str
    asset_key: str | None = None
    total_rows: int | None = None
    failed_rows: int | None = None
    failed_fraction: float | None = None
    newest: datetime.datetime | None = None
    error: str | None = None
    sample: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    reported: bool = False


def make_result(
    compiled: Compiled, verdict: Verdict | None, error: str | None, asset_key: str | None
) -> SparkCheckResult:
    """A result with its metadata (without the sample, added by :func:`add_sample`)."""
    check = compiled.check
    result = SparkCheckResult(compiled.name, False, check.level, check.definition, asset_key, error=error)
    md: dict[str, Any] = {"definition": typed_value(check.definition, "text")}
    if verdict is not None and error is None:
        result.passed = verdict.passed
        result.total_rows = verdict.total_rows
        result.newest = verdict.newest
        if verdict.total_rows is not None:
            md["total_rows"] = typed_value(verdict.total_rows, "int")
        if verdict.failed_rows is not None:
            result.failed_rows = verdict.failed_rows
            total = verdict.total_rows or 0
            result.failed_fraction = verdict.failed_rows / total if total else 0.0
            md["failed_rows"] = typed_value(verdict.failed_rows, "int")
            md["failed_fraction"] = typed_value(result.failed_fraction, "float")
        md.update(verdict.metadata)
    if check.description:
        md["description"] = typed_value(check.description, "text")
    if error is not None:
        md["error"] = typed_value(error, "text")
    result.metadata = md
    return result


def add_sample(
    result: SparkCheckResult, records: list[dict[str, Any]], schema: list[tuple[str, str]]
) -> None:
    """Attach failing rows (``failed_rows_sample``, a table) to a failed row-level result."""
    result.sample = records
    result.metadata["failed_rows_sample"] = typed_value(
        {"records": records, "schema": [{"name": name, "type": kind} for name, kind in schema]}, "table"
    )
