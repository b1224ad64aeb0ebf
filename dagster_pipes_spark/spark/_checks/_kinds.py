"""The checks beyond the first seven: ``in_range``, ``matches``, ``relationships`` (row-level, with
``where=`` and thresholds like every row-level check) and ``expect_aggregate`` (a condition over
aggregates of the whole data). All of them are aggregates of the one shared aggregation;
``relationships`` reads a column the evaluation joins in: the distinct keys of ``to`` with a marker,
so a row whose value has no match has a NULL marker. Nothing here imports pyspark.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._checks._basic import sql_literal
from dagster_pipes_spark.spark._checks._model import (
    TABLE,
    TOTAL,
    Columns,
    Compiled,
    Lookup,
    RowCheck,
    RowLevel,
    SparkCheck,
    Verdict,
    as_int,
    column_names,
    scoped,
    sql_text,
)
from dagster_pipes_spark.spark._sql import string_literal

_BOUND_TYPES = (int, float, Decimal, datetime.date, str)


def _column(columns: Columns, name: str) -> str:
    return (columns.find(name) or (name, ""))[0]


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
        return [_column(columns, self.column)]


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
        return [_column(columns, self.column)]


@dataclass(frozen=True)
class Relationships(RowLevel):
    """A row fails when its non-NULL value has no equal value in ``to``'s ``field``."""

    column: str
    to: Any
    field: str | None = None

    @property
    def definition(self) -> str:
        to = repr(self.to) if isinstance(self.to, str) else "<DataFrame>"
        field = f", field={self.field!r}" if self.field is not None else ""
        return f"relationships({self.column!r}, to={to}{field}{self._options()})"

    @property
    def target_field(self) -> str:
        """The column of ``to`` holding the keys."""
        return self.field if self.field is not None else self.column

    def _problems(self) -> list[str]:
        out = column_names([self.column], "relationships")
        if isinstance(self.to, str):
            if not self.to.strip():
                out.append("relationships: `to` must be a table name or a DataFrame, got ''")
        elif not (hasattr(self.to, "selectExpr") and hasattr(self.to, "schema")):
            out.append(
                f"relationships: `to` must be a table name or a DataFrame, got {type(self.to).__name__}"
            )
        if self.field is not None and (not isinstance(self.field, str) or not self.field.strip()):
            out.append(f"relationships: `field` must be a non-empty column name, got {self.field!r}")
        return out

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        fail = scoped(
            self.where, f"{columns.ref(self.column)} IS NOT NULL AND {self._alias(index, 'found')} IS NULL"
        )
        return Compiled(
            name,
            self,
            index,
            aggregates={self._alias(index, "failed"): f"count_if({fail})", **self._scope(index)},
            fail=fail,
            reads=(_column(columns, self.column),),
            where=self.where,
            ref=Lookup(
                self.to, ((columns.ref(self.column), self.target_field),), self._alias(index, "found")
            ),
        )

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        return self.verdict(compiled, figures, as_int(figures[self._alias(compiled.index, "failed")]))


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


# --- constructors (the public names) ----------------------------------------------------------


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


def relationships(
    column: str,
    to: Any,
    field: str | None = None,
    *,
    where: str | None = None,
    max_failed_rows: int | None = None,
    max_failed_fraction: float | None = None,
    severity: str = "ERROR",
    description: str | None = None,
) -> SparkCheck:
    """A row fails when its non-NULL ``column`` value has no equal value in ``to``'s ``field``
    (default: the same name); ``to`` is a table name or a DataFrame. Evaluated in the same
    aggregation: the distinct keys of ``to`` are joined to the data. ``where=`` and thresholds: see
    :func:`~dagster_pipes_spark.spark.expect`."""
    return Relationships(
        column,
        to,
        field,
        where=where,
        max_failed_rows=max_failed_rows,
        max_failed_fraction=max_failed_fraction,
        severity=severity,
        description=description,
    )


def expect_aggregate(sql: str, *, severity: str = "ERROR", description: str | None = None) -> SparkCheck:
    """Passes when ``sql``, a boolean Spark SQL expression over aggregates of the data
    (``"sum(amount) > 0"``, ``"count_if(status = 'lost') < 0.01 * count(*)"``), is TRUE; NULL fails.
    The value of each aggregate it reads is reported in the ``aggregates`` metadata."""
    return ExpectAggregate(sql, severity=severity, description=description)
