"""Row conditions: checks whose failing rows one SQL condition selects -- ``expect`` (any boolean
expression), ``not_null``, ``accepted_values`` (a set of values), ``in_range`` (bounds) and
``matches`` (a regular expression). Each is one ``count_if`` of the shared aggregation (``RowCheck``
in ``_model``), with ``where=`` and thresholds like every row-level check. Nothing here imports
pyspark."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from dagster_pipes_spark.spark._checks._model import (
    Columns,
    RowCheck,
    SparkCheck,
    column_names,
    format_args,
    sql_text,
)
from dagster_pipes_spark.spark._sql import sql_literal, string_literal

_LITERAL_TYPES = (str, bool, int, float, Decimal, datetime.date)
_BOUND_TYPES = (int, float, Decimal, datetime.date, str)


@dataclass(frozen=True)
class Expect(RowCheck):
    """A row passes when the SQL expression is TRUE; FALSE and NULL fail."""

    sql: str
    probe_types: ClassVar[tuple[str, ...]] = ("boolean",)

    @property
    def definition(self) -> str:
        return f"expect({self.sql!r}{self._options()})"

    def _problems(self) -> list[str]:
        return sql_text(self.sql)

    def condition(self, columns: Columns) -> str:
        return self.sql

    def reads(self, columns: Columns) -> list[str]:
        return columns.read_by(self.sql)

    def _probe(self, columns: Columns) -> str | None:
        return self.sql


@dataclass(frozen=True)
class NotNull(RowCheck):
    """A row fails when any of the columns is NULL."""

    columns: tuple[str, ...]

    @property
    def definition(self) -> str:
        return f"not_null({format_args(self.columns)}{self._options()})"

    def _problems(self) -> list[str]:
        return column_names(self.columns, "not_null")

    def condition(self, columns: Columns) -> str:
        return " AND ".join(f"{columns.ref(c)} IS NOT NULL" for c in self.columns)

    def reads(self, columns: Columns) -> list[str]:
        return [columns.name_of(c) for c in self.columns]


@dataclass(frozen=True)
class AcceptedValues(RowCheck):
    """A row fails when the column's value is not one of ``values``; NULL fails unless
    ``allow_null``."""

    column: str
    values: tuple[Any, ...]
    allow_null: bool = field(default=False, kw_only=True)

    @property
    def definition(self) -> str:
        nulls = ", allow_null=True" if self.allow_null else ""
        return f"accepted_values({self.column!r}, {list(self.values)!r}{nulls}{self._options()})"

    def _problems(self) -> list[str]:
        out = column_names([self.column], "accepted_values")
        if not self.values:
            out.append("accepted_values needs at least one value")
        for value in self.values:
            if value is None:
                out.append("accepted_values: None is never accepted (NULL fails); leave it out")
            elif not isinstance(value, _LITERAL_TYPES):
                out.append(
                    f"accepted_values: {type(value).__name__} {value!r} is not a str, number, bool, date"
                    " or datetime"
                )
        return out

    def condition(self, columns: Columns) -> str:
        column = columns.find(self.column)
        as_string = column is not None and column[1] == "string"
        literals = ", ".join(sql_literal(v, as_string) for v in self.values)
        ref = columns.ref(self.column)
        return f"{ref} IS NULL OR {ref} IN ({literals})" if self.allow_null else f"{ref} IN ({literals})"

    def reads(self, columns: Columns) -> list[str]:
        return [columns.name_of(self.column)]


@dataclass(frozen=True)
class InRange(RowCheck):
    """A row fails when the value is below ``min`` or above ``max`` (inclusive); NULL passes."""

    column: str
    min: Any = None
    max: Any = None

    @property
    def definition(self) -> str:
        bounds = "".join(f", {k}={v!r}" for k, v in (("min", self.min), ("max", self.max)) if v is not None)
        return f"in_range({self.column!r}{bounds}{self._options()})"

    def _problems(self) -> list[str]:
        out = column_names([self.column], "in_range")
        if self.min is None and self.max is None:
            out.append("in_range needs `min`, `max` or both")
        for key, value in (("min", self.min), ("max", self.max)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, _BOUND_TYPES)):
                out.append(f"in_range: `{key}` must be a number, date, datetime or string, got {value!r}")
        if not out and self.min is not None and self.max is not None:
            try:
                if self.min > self.max:
                    out.append(f"in_range: min={self.min!r} is greater than max={self.max!r}")
            except TypeError:
                out.append(f"in_range: min={self.min!r} and max={self.max!r} are not comparable")
        return out

    def condition(self, columns: Columns) -> str:
        ref = columns.ref(self.column)
        bounds = [f"{ref} >= {sql_literal(self.min)}"] if self.min is not None else []
        bounds += [f"{ref} <= {sql_literal(self.max)}"] if self.max is not None else []
        return f"{ref} IS NULL OR ({' AND '.join(bounds)})"

    def reads(self, columns: Columns) -> list[str]:
        return [columns.name_of(self.column)]


@dataclass(frozen=True)
class Matches(RowCheck):
    """A row fails when the value does not match the Java regular expression (Spark ``RLIKE``: a
    match anywhere in the value; anchor with ``^...$``); NULL passes."""

    column: str
    pattern: str

    @property
    def definition(self) -> str:
        return f"matches({self.column!r}, {self.pattern!r}{self._options()})"

    def _problems(self) -> list[str]:
        out = column_names([self.column], "matches")
        if not isinstance(self.pattern, str) or not self.pattern:
            out.append(f"matches: `pattern` must be a non-empty regular expression, got {self.pattern!r}")
        return out

    def condition(self, columns: Columns) -> str:
        ref = columns.ref(self.column)
        return f"{ref} IS NULL OR {ref} RLIKE {string_literal(self.pattern)}"

    def reads(self, columns: Columns) -> list[str]:
        return [columns.name_of(self.column)]


# --- constructors (the public names) ----------------------------------------------------------


def expect(
    sql: str,
    *,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """Rows pass when the Spark SQL boolean expression is TRUE; FALSE and NULL fail.

    A plain string in the checks mapping means the same: ``"amount >= 0"``. Like every row-level
    check: only rows where the SQL predicate ``where`` is TRUE are checked (and counted in
    ``total_rows``), and the check passes when ``failed_rows`` is within every threshold given --
    ``max_failed_rows`` (a count), ``max_failed_fraction`` (of ``total_rows``) -- or zero when none is.
    """
    return Expect(
        sql,
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )


def not_null(
    *columns: str,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """A row fails when any of ``columns`` is NULL (``where=`` and thresholds: see :func:`expect`)."""
    return NotNull(
        tuple(columns),
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )


def accepted_values(
    column: str,
    values: Sequence[Any],
    *,
    allow_null: bool = False,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """A row fails when ``column`` is not one of ``values`` (str, numbers, bools, dates); NULL fails
    unless ``allow_null``. Against a string column every value is compared as its string.
    ``where=`` and thresholds: see :func:`expect`."""
    items = (values,) if isinstance(values, (str, bytes)) else tuple(values)
    return AcceptedValues(
        column,
        items,
        allow_null=bool(allow_null),
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )


def in_range(
    column: str,
    min: Any = None,
    max: Any = None,
    *,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """A row fails when ``column`` is below ``min`` or above ``max`` (inclusive bounds; either may be
    omitted; numbers, dates, datetimes or strings); NULL does not fail. ``where=`` and thresholds:
    see :func:`~dagster_pipes_spark.spark.expect`."""
    return InRange(
        column,
        min,
        max,
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )


def matches(
    column: str,
    pattern: str,
    *,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """A row fails when ``column`` does not match the Java regular expression ``pattern`` (Spark
    ``RLIKE``, which finds a match anywhere: anchor with ``^...$``); NULL does not fail. ``where=``
    and thresholds: see :func:`~dagster_pipes_spark.spark.expect`."""
    return Matches(
        column,
        pattern,
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )
