"""The basic kinds (``expect``, ``not_null``, ``accepted_values``, ``unique``, ``row_count``,
``fresh``, ``has_columns``) and their constructors, the public names."""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._checks._model import (
    SCHEMA,
    TABLE,
    TIME_TYPES,
    TOTAL,
    UNIQUE,
    Columns,
    Compiled,
    RowCheck,
    RowLevel,
    SparkCheck,
    Verdict,
    as_int,
    column_names,
    format_args,
    normalize_type,
    scoped,
    sql_text,
)
from dagster_pipes_spark.spark._sql import date_literal, string_literal, timestamp_literal


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
        return [(columns.find(c) or (c, ""))[0] for c in self.columns]


_LITERAL_TYPES = (str, bool, int, float, Decimal, datetime.date)


def sql_literal(value: Any, as_string: bool = False) -> str:
    """A Spark SQL literal for a Python value (``as_string``: compare with a string column)."""
    if as_string or isinstance(value, str):
        text = value.isoformat() if isinstance(value, datetime.date) else str(value)
        return string_literal(text)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE)" if not math.isfinite(value) else repr(value)
    if isinstance(value, Decimal):
        return f"{value}BD"
    if isinstance(value, datetime.datetime):
        return timestamp_literal(value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc))
    if isinstance(value, datetime.date):
        return date_literal(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a SQL literal")


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
        return [(columns.find(self.column) or (self.column, ""))[0]]


@dataclass(frozen=True)
class Unique(RowLevel):
    """No two rows share a key; rows with a NULL key column are not counted."""

    columns: tuple[str, ...]
    kind: ClassVar[str] = UNIQUE

    @property
    def definition(self) -> str:
        return f"unique({format_args(self.columns)}{self._options()})"

    def _problems(self) -> list[str]:
        return column_names(self.columns, "unique")

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        keys = tuple(columns.ref(c) for c in self.columns)
        complete = scoped(self.where, " AND ".join(f"{k} IS NOT NULL" for k in keys))
        return Compiled(
            name,
            self,
            index,
            # the distinct keys are counted apart (``grouped``), in the same action: a
            # count(DISTINCT) here would make Spark group the whole aggregation by the key
            aggregates={self._alias(index, "keyed"): f"count_if({complete})", **self._scope(index)},
            keys=keys,
            grouped=(complete, self._alias(index, "distinct")),
            reads=tuple((columns.find(c) or (c, ""))[0] for c in self.columns),
            where=self.where,
        )

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        keyed = as_int(figures[self._alias(compiled.index, "keyed")])
        distinct = as_int(figures[self._alias(compiled.index, "distinct")])
        verdict = self.verdict(compiled, figures, keyed - distinct)
        verdict.metadata["distinct_keys"] = typed_value(distinct, "int")
        return verdict


@dataclass(frozen=True)
class RowCount(SparkCheck):
    """``min <= rows <= max`` (either bound may be omitted)."""

    min: int | None = None
    max: int | None = None
    kind: ClassVar[str] = TABLE

    @property
    def definition(self) -> str:
        bounds = [f"{k}={v}" for k, v in (("min", self.min), ("max", self.max)) if v is not None]
        return f"row_count({', '.join(bounds)})"

    def _problems(self) -> list[str]:
        out = []
        for key, value in (("min", self.min), ("max", self.max)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                out.append(f"row_count: `{key}` must be a non-negative int, got {value!r}")
        if self.min is None and self.max is None:
            out.append("row_count needs `min`, `max` or both")
        elif not out and self.min is not None and self.max is not None and self.min > self.max:
            out.append(f"row_count: min={self.min} is greater than max={self.max}")
        return out

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        return Compiled(name, self, index)

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        total = as_int(figures[TOTAL])
        low = self.min if self.min is not None else 0
        passed = low <= total and (self.max is None or total <= self.max)
        return Verdict(passed, total)


def _seconds(max_age: Any) -> float | None:
    if isinstance(max_age, datetime.timedelta):
        return max_age.total_seconds()
    if isinstance(max_age, (int, float)) and not isinstance(max_age, bool):
        return float(max_age)
    return None


def format_age(seconds: float) -> str:
    """``1d2h``, ``30m``, ``1.5s``: a duration for definitions and messages."""
    if seconds < 60:
        return f"{seconds:g}s"
    out, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


@dataclass(frozen=True)
class Fresh(SparkCheck):
    """The newest value of a timestamp/date column is at most ``max_age`` old; no rows fails."""

    column: str
    max_age: datetime.timedelta | float
    kind: ClassVar[str] = TABLE
    probe_types: ClassVar[tuple[str, ...]] = TIME_TYPES

    @property
    def definition(self) -> str:
        seconds = _seconds(self.max_age)
        age = format_age(seconds) if seconds is not None else repr(self.max_age)
        return f"fresh({self.column!r}, max_age={age})"

    def _problems(self) -> list[str]:
        out = column_names([self.column], "fresh")
        seconds = _seconds(self.max_age)
        if seconds is None or seconds <= 0:
            out.append(f"fresh: `max_age` must be a positive timedelta or seconds, got {self.max_age!r}")
        return out

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        ref = columns.ref(self.column)
        return Compiled(
            name,
            self,
            index,
            # an instant for timestamps; a TIMESTAMP_NTZ or DATE is read in the session time zone
            aggregates={self._alias(index, "newest"): f"unix_micros(CAST(max({ref}) AS TIMESTAMP))"},
            probe=ref,
            reads=((columns.find(self.column) or (self.column, ""))[0],),
        )

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        total = as_int(figures[TOTAL])
        micros = figures[self._alias(compiled.index, "newest")]
        max_age = _seconds(self.max_age) or 0.0
        md: dict[str, Any] = {"max_age_seconds": typed_value(max_age, "float")}
        if micros is None:
            md["newest"] = typed_value(
                "no rows" if total == 0 else f"{self.column} is NULL in every row", "text"
            )
            return Verdict(False, total, metadata=md)
        newest = datetime.datetime.fromtimestamp(micros / 1e6, tz=datetime.timezone.utc)
        age = now - micros / 1e6
        md["newest"] = typed_value(micros / 1e6, "timestamp")
        md["age_seconds"] = typed_value(float(age), "float")
        return Verdict(age <= max_age, total, newest=newest, metadata=md)


@dataclass(frozen=True)
class HasColumns(SparkCheck):
    """Every named column exists (with the Spark SQL type, when given). Needs no Spark job."""

    columns: tuple[tuple[str, str | None], ...]
    kind: ClassVar[str] = SCHEMA

    @property
    def definition(self) -> str:
        if all(kind is None for _, kind in self.columns):
            return f"has_columns({[name for name, _ in self.columns]!r})"
        return f"has_columns({dict(self.columns)!r})"

    def _problems(self) -> list[str]:
        out = column_names([name for name, _ in self.columns], "has_columns")
        out += [
            f"has_columns: the type of {name!r} must be a Spark SQL type name, got {kind!r}"
            for name, kind in self.columns
            if kind is not None and (not isinstance(kind, str) or not kind.strip())
        ]
        return out

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        return Compiled(name, self, index, reads=tuple(n for n, _ in self.columns))

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        missing: list[str] = []
        different: dict[str, dict[str, str]] = {}
        for name, kind in self.columns:
            column = columns.find(name)
            if column is None:
                missing.append(name)
            elif kind is not None and normalize_type(kind) != column[1]:
                different[name] = {"expected": normalize_type(kind), "actual": column[1]}
        md: dict[str, Any] = {}
        if missing:
            md["missing_columns"] = typed_value(missing, "json")
        if different:
            md["mismatched_types"] = typed_value(different, "json")
        total = figures.get(TOTAL)
        return Verdict(not missing and not different, None if total is None else int(total), metadata=md)


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


def unique(
    *columns: str,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """No two rows share the key ``columns``. ``failed_rows`` counts every row beyond the first of
    each key; rows with a NULL key column are not counted (that is ``not_null``'s job). ``where=``
    and thresholds: see :func:`expect`."""
    return Unique(
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


def row_count(
    min: int | None = None,
    max: int | None = None,
    *,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """Passes when ``min <= rows <= max`` (either bound may be omitted)."""
    return RowCount(min, max, severity=severity, description=description)


def fresh(
    column: str,
    max_age: datetime.timedelta | float,
    *,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """Passes when the newest value of the timestamp or date ``column`` is at most ``max_age`` (a
    ``timedelta`` or seconds) old; no rows fails. A ``TIMESTAMP_NTZ`` or ``DATE`` value is read in
    the session time zone (a date as its midnight)."""
    return Fresh(column, max_age, severity=severity, description=description)


def has_columns(
    columns: Mapping[str, str | None] | Sequence[str],
    *,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """Passes when every named column exists, with the Spark SQL type when one is given
    (``{"order_id": "bigint", "amount": "decimal(10,2)"}`` or ``["order_id", "amount"]``).
    Reads only the schema: no Spark job."""
    if isinstance(columns, Mapping):
        pairs = tuple((name, kind) for name, kind in columns.items())
    elif isinstance(columns, str):
        pairs = ((columns, None),)
    else:
        pairs = tuple((name, None) for name in columns)
    return HasColumns(pairs, severity=severity, description=description)
