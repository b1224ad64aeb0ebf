"""Check definitions for :func:`~dagster_pipes_spark.spark.report_spark_checks`: what each check
means, the Spark SQL that computes it in the shared aggregation, and how its figures become a result.

Every row-level check (``expect``, ``not_null``, ``accepted_values``; ``in_range``, ``matches`` and
``relationships`` in ``_kinds``) is one ``count_if`` over a condition that is TRUE for a
failing row in ``where=``'s scope (plus a ``count_if(where)`` for the scope); ``unique`` is
``count_if(key complete)`` minus the number of distinct complete keys, which the evaluation counts
apart from the aggregation, partitioning by the key (``Compiled.grouped``), in the same action;
``expect_aggregate`` is its own SQL over aggregates;
``row_count`` reads the total; ``fresh`` the newest value in microseconds since the epoch;
``has_columns`` only the schema. Nothing here imports pyspark.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._metadata import spark_json_type_to_sql
from dagster_pipes_spark.spark._sql import date_literal, string_literal, timestamp_literal, tokenize
from dagster_pipes_spark.spark._targets import quote_identifier, split_identifier

SEVERITIES = ("ERROR", "WARN")
#: Prefix of every alias this module puts into a query.
PREFIX = "__pipes_"
TOTAL = f"{PREFIX}total"
#: Types a ``fresh`` column may have.
TIME_TYPES = ("timestamp", "timestamp_ntz", "date")

# kinds of check: how it is evaluated
ROW = "row"  # counts rows matching a failing condition; failing rows can be sampled
UNIQUE = "unique"  # counts rows beyond the first of each key; duplicates can be sampled
TABLE = "table"  # a figure of the whole data (row count, newest value)
SCHEMA = "schema"  # the schema alone: no Spark job


# --- columns of the data ----------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """The data's top-level columns as ``(name, Spark SQL type)``, and how a check refers to one."""

    fields: tuple[tuple[str, str], ...]

    @property
    def names(self) -> list[str]:
        """Column names, in order."""
        return [name for name, _ in self.fields]

    def find(self, name: str) -> tuple[str, str] | None:
        """The column called ``name`` (exactly, else ignoring case, as Spark resolves by default)."""
        for column in self.fields:
            if column[0] == name:
                return column
        lowered = name.lower()
        return next((column for column in self.fields if column[0].lower() == lowered), None)

    def ref(self, name: str) -> str:
        """A SQL reference: a top-level column quoted whole, else a dotted path (``a.b``, with
        backticks quoting a part), which the analyzer resolves or rejects."""
        column = self.find(name)
        if column is not None:
            return quote_identifier(column[0])
        return ".".join(quote_identifier(part) for part in split_identifier(name)) or quote_identifier(name)

    def read_by(self, sql: str) -> list[str]:
        """The columns an expression names (identifier tokens that are column names), in order."""
        seen: list[str] = []
        for tok in tokenize(sql):
            if tok.kind in ("word", "quoted"):
                column = self.find(tok.text)
                if column is not None and column[0] not in seen:
                    seen.append(column[0])
        return seen

    def described(self) -> str:
        """``name type, ...`` for error messages."""
        return ", ".join(f"{name} {kind}" for name, kind in self.fields) or "(none)"


def normalize_type(type_name: str) -> str:
    """A Spark SQL type name as ``DataType.simpleString()`` spells it (``long`` -> ``bigint``,
    ``DECIMAL(10, 2)`` -> ``decimal(10,2)``, ``varchar(n)`` -> ``string``)."""
    text = "".join(str(type_name).split()).lower()
    if text.startswith(("varchar(", "char(")):
        return "string"
    aliases = {"timestamp_ltz": "timestamp", "decimal": "decimal(10,0)", "real": "float", "integer": "int"}
    if text.startswith(("dec(", "numeric(")):
        text = "decimal" + text[text.index("(") :]
    return aliases.get(text, spark_json_type_to_sql(text))


# --- compiled form ----------------------------------------------------------------------------


@dataclass
class Compiled:
    """One check prepared for a given data: the aggregates it adds to the shared aggregation."""

    name: str
    check: SparkCheck
    index: int
    aggregates: dict[str, str] = field(default_factory=dict)  # alias -> SQL aggregate
    probe: str | None = None  # an expression whose type the check constrains (see ``probe_types``)
    fail: str | None = None  # ROW checks: SQL that is TRUE for a failing row
    keys: tuple[str, ...] = ()  # UNIQUE checks: SQL references of the key columns
    #: UNIQUE checks: (SQL TRUE for a row whose key is counted, the alias of the distinct-key count)
    grouped: tuple[str, str] | None = None
    reads: tuple[str, ...] = ()  # columns the check reads (first in samples)
    error: str | None = None  # why the check cannot be evaluated
    where: str | None = None  # row-level checks: the user's ``where=`` predicate
    typed: str | None = None  # an aggregate alias whose type must be one of ``probe_types``
    ref: tuple[Any, str, str] | None = None  # relationships: (``to``, its field, the key alias)

    @property
    def needs_job(self) -> bool:
        """Whether the check needs the aggregation (everything except ``has_columns``)."""
        return self.check.kind != SCHEMA


@dataclass
class Verdict:
    """What a check's figures mean: passed, the figures, and check-specific metadata."""

    passed: bool
    total_rows: int | None = None
    failed_rows: int | None = None
    newest: datetime.datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _as_int(value: Any) -> int:
    return int(value) if value is not None else 0


# --- definitions ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SparkCheck:
    """A check of :func:`~dagster_pipes_spark.spark.report_spark_checks` (build one with ``expect``,
    ``not_null``, ``unique``, ``accepted_values``, ``in_range``, ``matches``, ``relationships``,
    ``expect_aggregate``, ``row_count``, ``fresh`` or ``has_columns``, or :func:`load_checks`)."""

    severity: str = "ERROR"
    description: str | None = None

    kind: ClassVar[str] = ROW
    #: types ``Compiled.probe`` may have
    probe_types: ClassVar[tuple[str, ...]] = ()

    @property
    def definition(self) -> str:
        """The check as written (reported as ``definition``)."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        """What is wrong with the definition (empty when it is valid)."""
        out: list[str] = []
        if not isinstance(self.severity, str) or self.severity.upper() not in SEVERITIES:
            out.append(f'unknown severity {self.severity!r}; use "ERROR" or "WARN"')
        if self.description is not None and not isinstance(self.description, str):
            out.append(f"`description` must be a string, got {type(self.description).__name__}")
        return out + self._problems()

    def _problems(self) -> list[str]:
        return []

    @property
    def level(self) -> str:
        """The severity, upper-case."""
        return str(self.severity).upper()

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        """The aggregates and conditions of this check on data with ``columns``."""
        raise NotImplementedError

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        """Turn the aggregation's figures into a verdict."""
        raise NotImplementedError

    def _alias(self, index: int, what: str) -> str:
        return f"{PREFIX}{index}_{what}"


def _names(columns: Sequence[Any], what: str) -> list[str]:
    if not columns:
        return [f"{what} needs at least one column"]
    return [
        f"{what}: column names must be non-empty strings, got {c!r}"
        for c in columns
        if not isinstance(c, str) or not c.strip()
    ]


def _args(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_fraction(value: Any) -> bool:
    return (
        isinstance(value, (int, float, Decimal))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and 0 <= float(value) <= 1
    )


@dataclass(frozen=True, kw_only=True)
class RowLevel(SparkCheck):
    """A check counting failing rows: ``where=`` picks the rows checked, and the thresholds say how
    many may fail (none given: zero)."""

    where: str | None = None
    max_failed_rows: int | None = None
    max_failed_fraction: float | None = None

    def problems(self) -> list[str]:
        out = super().problems()
        if self.where is not None and (not isinstance(self.where, str) or not self.where.strip()):
            out.append(f"`where` must be a non-empty SQL predicate, got {self.where!r}")
        if self.max_failed_rows is not None and not _is_count(self.max_failed_rows):
            out.append(f"`max_failed_rows` must be a non-negative int, got {self.max_failed_rows!r}")
        if self.max_failed_fraction is not None and not _is_fraction(self.max_failed_fraction):
            out.append(
                f"`max_failed_fraction` must be a number from 0 to 1, got {self.max_failed_fraction!r}"
            )
        return out

    def _options(self) -> str:
        """``, where=..., max_failed_rows=...`` for definitions."""
        out = ""
        for key in ("where", "max_failed_rows", "max_failed_fraction"):
            value = getattr(self, key)
            if value is not None:
                out += f", {key}={value!r}"
        return out

    def _scope(self, index: int) -> dict[str, str]:
        """The aggregate counting the rows in scope (none without ``where``: the total is used)."""
        return (
            {self._alias(index, "scope"): f"count_if(coalesce(({self.where}), false))"} if self.where else {}
        )

    def verdict(self, compiled: Compiled, figures: Mapping[str, Any], failed: int) -> Verdict:
        """Passed when ``failed`` is within every threshold given (none: zero failures)."""
        scope = self._alias(compiled.index, "scope")
        total = _as_int(figures[scope] if self.where else figures[TOTAL])
        fraction = failed / total if total else 0.0
        md: dict[str, Any] = {}
        passed = True
        if self.max_failed_rows is None and self.max_failed_fraction is None:
            passed = failed == 0
        if self.max_failed_rows is not None:
            passed = passed and failed <= self.max_failed_rows
            md["max_failed_rows"] = typed_value(int(self.max_failed_rows), "int")
        if self.max_failed_fraction is not None:
            passed = passed and fraction <= float(self.max_failed_fraction)
            md["max_failed_fraction"] = typed_value(float(self.max_failed_fraction), "float")
        if self.where:
            md["where"] = typed_value(self.where, "text")
        return Verdict(passed, total, failed, metadata=md)


@dataclass(frozen=True)
class _RowCheck(RowLevel):
    """A check whose failing rows a SQL condition selects."""

    def condition(self, columns: Columns) -> str:
        """SQL that is TRUE for a passing row (FALSE or NULL fails)."""
        raise NotImplementedError

    def reads(self, columns: Columns) -> list[str]:
        """Columns the condition reads."""
        raise NotImplementedError

    def failing(self, columns: Columns, index: int) -> str:
        """SQL that is TRUE for a failing row, ``where=`` not applied."""
        return f"NOT coalesce(({self.condition(columns)}), false)"

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        fail = self.failing(columns, index)
        if self.where:
            fail = f"coalesce(({self.where}), false) AND {fail}"
        return Compiled(
            name,
            self,
            index,
            aggregates={self._alias(index, "failed"): f"count_if({fail})", **self._scope(index)},
            probe=self._probe(columns),
            fail=fail,
            reads=tuple(self.reads(columns)),
            where=self.where,
        )

    def _probe(self, columns: Columns) -> str | None:
        return None

    def judge(self, compiled: Compiled, figures: Mapping[str, Any], columns: Columns, now: float) -> Verdict:
        return self.verdict(compiled, figures, _as_int(figures[self._alias(compiled.index, "failed")]))


@dataclass(frozen=True)
class Expect(_RowCheck):
    """A row passes when the SQL expression is TRUE; FALSE and NULL fail."""

    sql: str
    probe_types: ClassVar[tuple[str, ...]] = ("boolean",)

    @property
    def definition(self) -> str:
        return f"expect({self.sql!r}{self._options()})"

    def _problems(self) -> list[str]:
        if not isinstance(self.sql, str) or not self.sql.strip():
            return [f"the expression must be a non-empty SQL string, got {self.sql!r}"]
        return []

    def condition(self, columns: Columns) -> str:
        return self.sql

    def reads(self, columns: Columns) -> list[str]:
        return columns.read_by(self.sql)

    def _probe(self, columns: Columns) -> str | None:
        return self.sql


@dataclass(frozen=True)
class NotNull(_RowCheck):
    """A row fails when any of the columns is NULL."""

    columns: tuple[str, ...]

    @property
    def definition(self) -> str:
        return f"not_null({_args(self.columns)}{self._options()})"

    def _problems(self) -> list[str]:
        return _names(self.columns, "not_null")

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
class AcceptedValues(_RowCheck):
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
        out = _names([self.column], "accepted_values")
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
        return f"unique({_args(self.columns)}{self._options()})"

    def _problems(self) -> list[str]:
        return _names(self.columns, "unique")

    def compile(self, name: str, index: int, columns: Columns) -> Compiled:
        keys = tuple(columns.ref(c) for c in self.columns)
        complete = " AND ".join(f"{k} IS NOT NULL" for k in keys)
        if self.where:
            complete = f"coalesce(({self.where}), false) AND {complete}"
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
        keyed = _as_int(figures[self._alias(compiled.index, "keyed")])
        distinct = _as_int(figures[self._alias(compiled.index, "distinct")])
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
        total = _as_int(figures[TOTAL])
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
        out = _names([self.column], "fresh")
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
        total = _as_int(figures[TOTAL])
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
        out = _names([name for name, _ in self.columns], "has_columns")
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


# --- the checks mapping -----------------------------------------------------------------------

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
