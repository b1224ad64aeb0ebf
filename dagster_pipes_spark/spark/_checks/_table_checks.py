"""Checks of the data as a whole: ``row_count`` (the total), ``fresh`` (the newest value),
``expect_aggregate`` (a condition over aggregates, each aggregate it reads reported) -- figures of
the shared aggregation -- and ``has_columns`` (the schema alone, no Spark job). Nothing here imports
pyspark."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._checks._model import (
    SCHEMA,
    TABLE,
    TIME_TYPES,
    TOTAL,
    Columns,
    Compiled,
    SparkCheck,
    Verdict,
    as_int,
    column_names,
    normalize_type,
    sql_text,
)


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
            reads=(columns.name_of(self.column),),
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


#: Spark SQL aggregate functions, whose calls ``expect_aggregate`` reports the values of
AGGREGATES = frozenset(
    """any any_value approx_count_distinct approx_percentile array_agg avg bit_and bit_or bit_xor
    bool_and bool_or collect_list collect_set corr count count_if count_min_sketch covar_pop
    covar_samp every first first_value histogram_numeric kurtosis last last_value listagg max max_by
    mean median min min_by mode percentile percentile_approx regr_avgx regr_avgy regr_count
    regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy skewness some std stddev stddev_pop
    stddev_samp string_agg sum try_avg try_sum var_pop var_samp variance""".split()
)


def _skip_quoted(sql: str, i: int) -> int:
    quote, i = sql[i], i + 1
    while i < len(sql) and sql[i] != quote:
        i += 2 if sql[i] == "\\" and quote != "`" else 1
    return i + 1


def aggregate_calls(sql: str) -> list[str]:
    """The outermost calls of aggregate functions in ``sql`` as written (``sum(amount)``), in order,
    each once (with a ``FILTER (WHERE ...)`` clause that follows it)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i)
            continue
        if not (ch.isalpha() or ch == "_") or (i and (sql[i - 1].isalnum() or sql[i - 1] in "_.")):
            i += 1
            continue
        j = i
        while j < n and (sql[j].isalnum() or sql[j] == "_"):
            j += 1
        k = j
        while k < n and sql[k].isspace():
            k += 1
        if sql[i:j].lower() not in AGGREGATES or k >= n or sql[k] != "(":
            i = j
            continue
        end = _closing(sql, k)
        m = end
        while m < n and sql[m].isspace():
            m += 1
        if sql[m : m + 6].upper() == "FILTER":  # sum(x) FILTER (WHERE ...)
            f = m + 6
            while f < n and sql[f].isspace():
                f += 1
            if f < n and sql[f] == "(":
                end = _closing(sql, f)
        call = sql[i:end]
        if call not in out:
            out.append(call)
        i = end
    return out


def _closing(sql: str, open_at: int) -> int:
    """The index after the parenthesis closing the one at ``open_at``."""
    depth, i = 0, open_at
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i)
            continue
        depth += (ch == "(") - (ch == ")")
        i += 1
        if depth == 0:
            break
    return i


def _plain(value: Any) -> Any:
    """A figure as a JSON value."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


@dataclass(frozen=True)
class ExpectAggregate(SparkCheck):
    """Passes when a boolean SQL expression over aggregates of the data is TRUE."""

    sql: str
    kind: ClassVar[str] = TABLE
    probe_types: ClassVar[tuple[str, ...]] = ("boolean",)

    @property
    def definition(self) -> str:
        return f"expect_aggregate({self.sql!r})"

    def _problems(self) -> list[str]:
        return sql_text(self.sql, "expect_aggregate")

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        value = self._alias(index, "value")
        aggregates = {value: f"({self.sql})"}
        for j, call in enumerate(aggregate_calls(self.sql)):
            aggregates[self._alias(index, f"agg{j}")] = call
        return Compiled(
            name, self, index, aggregates=aggregates, typed=value, reads=tuple(columns.read_by(self.sql))
        )

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        value = figures[self._alias(compiled.index, "value")]
        calls = aggregate_calls(self.sql)
        values = {
            call: _plain(figures[self._alias(compiled.index, f"agg{j}")]) for j, call in enumerate(calls)
        }
        md: dict[str, Any] = {
            "value": typed_value("NULL" if value is None else str(bool(value)).upper(), "text")
        }
        if values:
            md["aggregates"] = typed_value(values, "json")
        return Verdict(value is True, as_int(figures[TOTAL]), metadata=md)


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


def expect_aggregate(sql: str, *, severity: str = "ERROR", description: str | None = None) -> SparkCheck:
    """Passes when ``sql``, a boolean Spark SQL expression over aggregates of the data
    (``"sum(amount) > 0"``, ``"count_if(status = 'lost') < 0.01 * count(*)"``), is TRUE; NULL fails.
    The value of each aggregate it reads is reported in the ``aggregates`` metadata."""
    return ExpectAggregate(sql, severity=severity, description=description)
