"""What a check is: the data's columns, the base classes of the kinds, a check's compiled form (the
SQL it adds to the shared aggregation) and its verdict.

Every row-level check (the row conditions ``expect``, ``not_null``, ``accepted_values``, ``in_range``,
``matches``; ``relationships``) is one ``count_if`` over a condition that is TRUE for a failing row
in ``where=``'s scope (``in_scope``, plus a ``count_if`` of the scope itself); ``unique`` is
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

from dagster_pipes_spark._metadata import typed_value
from dagster_pipes_spark.spark._metadata import spark_json_type_to_sql
from dagster_pipes_spark.spark._sql import tokenize
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

    def name_of(self, name: str) -> str:
        """The column's name as the data spells it (``name`` itself when there is no such column)."""
        column = self.find(name)
        return column[0] if column is not None else name

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


@dataclass(frozen=True)
class Lookup:
    """Keys of other data a row's values must (or, ``negate``, must not) be found among: the
    evaluation joins the distinct keys of ``to`` to the data with a marker column."""

    to: Any  # a table name or a DataFrame
    pairs: tuple[tuple[str, str], ...]  # (SQL of the data's value, column of ``to``)
    marker: str  # alias of the column that is TRUE where the row's key was found, else NULL
    #: the key compared as one struct value (NULL parts equal, no casts), as DQX compares a
    #: composite or NULL-safe key
    whole: bool = False


@dataclass(frozen=True)
class Grouping:
    """A dataset-level rule: the rows in ``scope`` grouped by ``keys`` (none: one group), a group
    failing as a whole when ``fail`` (SQL over the group's ``aggregates``, written as ``{name}``
    placeholders) is TRUE; every row in scope of a failing group is flagged."""

    keys: tuple[str, ...]
    scope: str
    aggregates: tuple[tuple[str, str], ...]  # (placeholder, SQL aggregate over the rows in scope)
    fail: str
    failed: str  # alias of the figure: rows in scope of failing groups
    marker: str  # alias of the column, in annotated data, TRUE for a row of a failing group

    def condition(self, names: Mapping[str, str]) -> str:
        """``fail`` with each placeholder replaced by ``names[placeholder]``."""
        out = self.fail
        for placeholder, _ in self.aggregates:
            out = out.replace("{" + placeholder + "}", names[placeholder])
        return out


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
    ref: Lookup | None = None  # relationships / foreign keys: the keys of other data joined in
    group: Grouping | None = None  # dataset-level rules: their groups, counted apart
    flag: str | None = None  # annotated data: SQL TRUE for a row the check flags (default ``fail``)
    message: str | None = None  # annotated data: SQL of the message of a flagged row
    query: Any = None  # a query over the data joined to it (``QueryLogic`` of a DQX rule)
    schema: Any = None  # a schema comparison made before the job (``SchemaLogic`` of a DQX rule)
    udfs: Mapping[str, Any] = field(default_factory=dict)  # Python functions the SQL calls, by name

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


def as_int(value: Any) -> int:
    return int(value) if value is not None else 0


# --- scope (``where=``) -------------------------------------------------------------------------


def in_scope(where: str | None) -> str:
    """SQL TRUE exactly for the rows ``where`` selects (a NULL predicate leaves a row out); ``TRUE``
    without a predicate. The one place a check's (or a DQX rule's ``filter``) scope is written."""
    return f"coalesce(({where}), false)" if where else "TRUE"


def scoped(where: str | None, condition: str) -> str:
    """``condition`` for the rows in ``where``'s scope only (``condition`` itself without one)."""
    return f"{in_scope(where)} AND {condition}" if where else condition


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

    def prepare(self, compiled: Compiled, df: Any) -> None:
        """Before any analysis, with the data at hand: finish what compiling could not (a schema
        Spark must parse). Sets ``compiled.error`` when it cannot. Most kinds need nothing."""

    def _alias(self, index: int, what: str) -> str:
        return f"{PREFIX}{index}_{what}"


def column_names(columns: Sequence[Any], what: str) -> list[str]:
    if not columns:
        return [f"{what} needs at least one column"]
    return [
        f"{what}: column names must be non-empty strings, got {c!r}"
        for c in columns
        if not isinstance(c, str) or not c.strip()
    ]


def sql_text(sql: Any, what: str = "") -> list[str]:
    """The problem with a check's SQL expression, if it is not a non-empty string."""
    if isinstance(sql, str) and sql.strip():
        return []
    return [f"{what + ': ' if what else ''}the expression must be a non-empty SQL string, got {sql!r}"]


def format_args(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_fraction(value: Any) -> bool:
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
        if self.max_failed_rows is not None and not is_count(self.max_failed_rows):
            out.append(f"`max_failed_rows` must be a non-negative int, got {self.max_failed_rows!r}")
        if self.max_failed_fraction is not None and not is_fraction(self.max_failed_fraction):
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
        return {self._alias(index, "scope"): f"count_if({in_scope(self.where)})"} if self.where else {}

    def verdict(self, compiled: Compiled, figures: Mapping[str, Any], failed: int) -> Verdict:
        """Passed when ``failed`` is within every threshold given (none: zero failures)."""
        scope = self._alias(compiled.index, "scope")
        total = as_int(figures[scope] if self.where else figures[TOTAL])
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
class RowCheck(RowLevel):
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
        fail = scoped(self.where, self.failing(columns, index))
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
        return self.verdict(compiled, figures, as_int(figures[self._alias(compiled.index, "failed")]))
