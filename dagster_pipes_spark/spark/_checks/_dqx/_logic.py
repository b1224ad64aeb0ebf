"""What a DQX check function means, as Spark SQL: the shapes a function builds (a condition on
each row; groups failing as a whole; keys looked up in other data; the schema) and the function
registry's entry. Nothing here imports pyspark."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: an argument with no default: the rule must give it
REQUIRED: Any = object()


@dataclass(frozen=True)
class RowLogic:
    """A row is flagged where ``fail`` is TRUE (NULL: not flagged)."""

    fail: str
    message: str


@dataclass(frozen=True)
class GroupLogic:
    """Rows grouped by ``keys`` (SQL; none: all rows one group); a group fails when ``fail`` (SQL over
    the ``{placeholder}`` of each aggregate, computed over the rows in scope) is TRUE, and then each
    of its rows in scope is flagged. ``scope`` narrows the rule's filter (e.g. keys not NULL).
    ``key_columns`` names columns whose string values are trimmed first (``trim_strings``)."""

    keys: tuple[str, ...]
    aggregates: tuple[tuple[str, str], ...]
    fail: str
    message: str  # may read the aggregates as ``{placeholder}``
    scope: str | None = None
    trim_keys: tuple[str, ...] = ()  # column names among the keys whose strings are trimmed


@dataclass(frozen=True)
class LookupLogic:
    """A row is flagged when its key (every part non-NULL, unless ``null_safe``) is not found
    (``negate``: is found) among the distinct keys of other data."""

    columns: tuple[str, ...]  # SQL of the data's key parts
    ref_columns: tuple[str, ...]  # column names of the other data
    to: Any  # a table name, or the name of a DataFrame of ``dataframes=`` (``ref_df_name``)
    by_name: bool  # whether ``to`` names a DataFrame of ``dataframes=``
    negate: bool
    null_safe: bool
    message: str


@dataclass(frozen=True)
class SchemaLogic:
    """Every row in scope is flagged when the data's schema does not match ``expected`` (DDL)."""

    expected: str | None
    ref: str | None  # a table (``ref_table``) or a DataFrame name (``ref_df_name``) to take it from
    by_name: bool
    columns: tuple[str, ...]
    strict: bool
    exclude: tuple[str, ...] = ()  # the data's columns left out of the comparison (even if in ``columns``)


@dataclass(frozen=True)
class QueryLogic:
    """Rows flagged by a query over the data: ``query`` is Spark SQL reading the data (rows where
    ``data_filter`` holds, when given) as the view ``{{ <placeholder> }}`` and DataFrames of
    ``dataframes=`` as ``{{ <name> }}``. Its rows are matched to the data's by ``keys`` =
    ``key_columns`` (compared NULL-safely) and their ``condition`` column (the ``max`` per key), TRUE, flags
    them; without keys the query has one row (none: nothing flagged) that applies to every row."""

    query: str
    placeholder: str
    data_filter: str | None
    keys: tuple[str, ...]  # SQL over the data
    key_columns: tuple[str, ...]  # the query's columns they are compared with
    condition: str
    negate: bool
    message: str
    #: flags by a condition on each row instead (SQL over the data and the query's ``{column}``)
    row_condition: str | None = None


@dataclass(frozen=True)
class CompareLogic:
    """Each row compared with its partner in other data (DQX's ``compare_datasets``): rows are
    paired on ``keys`` = ``ref_keys`` (NULL parts equal when ``null_safe_rows``), duplicate keys
    paired one to one (in-scope rows with the same compared values first, when ``data_filter`` is
    given, then by position in the order of the compared values); a row is flagged when it has no
    partner or a compared column (in both, not a key, not in ``exclude``, not a map) differs."""

    keys: tuple[str, ...]  # column names of the data (paths, as ``F.col`` reads them)
    ref_keys: tuple[str, ...]  # column names of the other data
    to: Any  # a table name, or the name of a DataFrame of ``dataframes=`` (``ref_df_name``)
    by_name: bool
    exclude: tuple[str, ...]
    null_safe_rows: bool
    null_safe_values: bool
    abs_tolerance: float | int
    rel_tolerance: float | int
    data_filter: str | None
    raise_on_duplicates: bool = False
    message: str = ""  # unused: the message is the comparison's JSON, made when joined


@dataclass(frozen=True)
class JsonSchemaLogic:
    """A row is flagged when its JSON text does not conform to ``schema`` (DDL): made SQL before the
    job, once Spark has parsed the schema (NOT NULL fields must be present)."""

    column: str  # SQL
    display: str
    schema: str


Logic = RowLogic | GroupLogic | LookupLogic | SchemaLogic | QueryLogic | JsonSchemaLogic | CompareLogic


@dataclass(frozen=True)
class Built:
    """A function applied to a rule's arguments: its logic, DQX's default name for the rule, the
    ``columns`` of its results, and the Python UDFs its SQL calls (name -> function)."""

    logic: Logic
    name: str
    columns: tuple[str, ...]
    udfs: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Function:
    """A DQX check function: its level, its parameters (name -> default, or ``REQUIRED``) and how it
    is built from a rule's arguments (with the rule's filter, which dataset functions read)."""

    name: str
    level: str  # "row" or "dataset"
    params: Mapping[str, Any]
    build: Callable[[Arguments], Built]


class RuleError(ValueError):
    """What is wrong with a rule, naming the argument."""


class Arguments:
    """A rule's arguments, read against its function's parameters."""

    def __init__(self, function: Function, given: Mapping[str, Any], row_filter: str | None) -> None:
        self.function = function
        self.given = dict(given)
        self.row_filter = row_filter
        unknown = [k for k in self.given if k not in function.params]
        if unknown:
            raise RuleError(
                f"unexpected argument {unknown[0]!r} for function {function.name!r}; its arguments:"
                f" {', '.join(function.params) or 'none'}"
            )
        missing = [k for k, v in function.params.items() if v is REQUIRED and self.given.get(k) is None]
        if missing:
            raise RuleError(f"missing required argument {missing[0]!r} for function {function.name!r}")

    def __getitem__(self, key: str) -> Any:
        value = self.given.get(key)
        return self.function.params[key] if value is None else value

    def given_value(self, key: str) -> Any:
        """The value the rule gives (None when it gives none)."""
        return self.given.get(key)

    def flag(self, key: str) -> bool:
        """A boolean argument."""
        value = self[key]
        if not isinstance(value, bool):
            raise RuleError(f"argument {key!r} must be true or false, got {value!r}")
        return value

    def text(self, key: str) -> str:
        """A non-empty string argument."""
        value = self[key]
        if not isinstance(value, str) or not value.strip():
            raise RuleError(f"argument {key!r} must be a non-empty string, got {value!r}")
        return value

    def number(self, key: str) -> float:
        """A number argument (int or float)."""
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RuleError(f"argument {key!r} must be a number, got {value!r}")
        return float(value)

    def integer(self, key: str) -> int:
        """An int argument."""
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise RuleError(f"argument {key!r} must be an int, got {value!r}")
        return value

    def names(self, key: str) -> list[str]:
        """A non-empty list of column strings."""
        value = self[key]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not value:
            raise RuleError(f"argument {key!r} must be a non-empty list of columns, got {value!r}")
        if any(not isinstance(v, str) or not v.strip() for v in value):
            raise RuleError(f"argument {key!r} must list column names (strings), got {value!r}")
        return list(value)

    def refuse(self, key: str, why: str) -> RuleError:
        """The error for an argument that cannot be honoured."""
        return RuleError(f"argument {key!r} of {self.function.name!r} is not supported: {why}")


Builder = Callable[[Arguments], Built]


def registrar(registry: dict[str, Function], level: str) -> Callable[..., Callable[[Builder], Builder]]:
    """A decorator factory adding check functions of ``level`` to ``registry``:
    ``@register("is_not_null", column=REQUIRED)`` over the function's builder."""

    def register(function: str, /, **params: Any) -> Callable[[Builder], Builder]:
        def add(build: Builder) -> Builder:
            registry[function] = Function(function, level, params, build)
            return build

        return add

    return register
