"""Partitions of a Pipes step: the Spark SQL predicate selecting them, and whether a write replaced
exactly them.

What the Pipes context carries (dagster 1.13, checked against the orchestrator):

* ``partition_key``: one key; a multi-partition key joins the dimension keys with ``|`` in the order
  of the *sorted* dimension names (``{"region", "date"}`` -> ``"2024-01-02|eu"``);
* ``partition_key_range``: ``{"start", "end"}`` keys (equal for one partition);
* ``partition_time_window``: for time-window partitions, and for a multi-partition with exactly one
  time dimension, ISO-8601 strings with the partitions definition's UTC offset of each end
  (``{"start": "2024-03-10T00:00:00-05:00", "end": "2024-03-11T00:00:00-04:00"}``);
* a run over a range of partitions (a single-run backfill) gets none of the three.

The write hooks describe what a write replaced as *conjuncts* ``(column, operator, literal_sql)``:
a static partition spec, an overwrite condition (Delta ``replaceWhere``, ``INSERT ... REPLACE
WHERE``, ``DataFrameWriterV2.overwrite``), or the filter above a dynamic partition overwrite;
:func:`replaces_scope` decides whether that is exactly the partition(s) in scope.

Nothing here imports pyspark (a DataFrame passed as ``data=`` is only asked for its ``schema``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._record import SparkWrite
from dagster_pipes_spark.spark._sql import _Parser, tokenize
from dagster_pipes_spark.spark._targets import quote_identifier, split_identifier

#: ``column_type`` values: how the partition column stores the partition.
COLUMN_TYPES = ("date", "timestamp", "timestamp_ntz", "string", "number")
MULTI_KEY_DELIMITER = "|"
#: Whether an overwrite of a partitioned target replaces the partitions its data has (``dynamic``)
#: or all partitions matching its static spec (``static``): the session conf and the write option.
PARTITION_OVERWRITE_MODE_CONF = "spark.sql.sources.partitionOverwriteMode"
PARTITION_OVERWRITE_MODE_OPTION = "partitionOverwriteMode"

#: A condition's conjunct: (column name as written, operator, literal in Spark SQL).
Conjunct = tuple[str, str, str]

# --- the partition(s) in scope ------------------------------------------------------------------


def _parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    """A partition time window; both ends carry the UTC offset the orchestrator sent."""

    start: datetime
    end: datetime

    @property
    def whole_days(self) -> bool:
        """Whether both ends are local midnights (a DATE column can select the window)."""
        return self.start.time() == time(0) and self.end.time() == time(0)

    @property
    def days(self) -> int:
        """Number of local days in a whole-day window."""
        return (self.end.date() - self.start.date()).days


@dataclass(frozen=True)
class PartitionScope:
    """The partition(s) a Pipes step targets, as the Pipes context describes them."""

    key_range: tuple[str, str]
    window: Window | None = None

    @property
    def key(self) -> str | None:
        """The partition key when exactly one partition is in scope."""
        start, end = self.key_range
        return start if start == end else None

    @classmethod
    def from_pipes(cls, pipes: Any) -> PartitionScope | None:
        """The scope of a Pipes context; ``None`` when it names no partition."""
        if not pipes.is_partition_step:
            return None
        rng = pipes.partition_key_range
        tw = pipes.partition_time_window
        window = Window(_parse_instant(tw["start"]), _parse_instant(tw["end"])) if tw else None
        return cls((str(rng["start"]), str(rng["end"])), window)

    def describe(self) -> str:
        """Human-readable scope, for messages."""
        start, end = self.key_range
        text = f"partition {start!r}" if start == end else f"partition key range {start!r}...{end!r}"
        if self.window is not None:
            text += f" (time window {self.window.start.isoformat()} to {self.window.end.isoformat()})"
        return text

    def dimension_keys(self, count: int) -> list[str | None] | None:
        """The key of each of ``count`` dimensions (``None`` where a range spans several keys), or
        ``None`` when the key does not have ``count`` dimensions."""
        start, end = self.key_range
        if count == 1 and self.window is not None and MULTI_KEY_DELIMITER in start:
            return None  # time keys have no delimiter: a multi-partition key with a time dimension
        starts = [start] if count == 1 else start.split(MULTI_KEY_DELIMITER)
        ends = [end] if count == 1 else end.split(MULTI_KEY_DELIMITER)
        if len(starts) != count or len(ends) != count:
            return None
        return [s if s == e else None for s, e in zip(starts, ends, strict=True)]

    def time_dimension(self, keys: Sequence[str | None]) -> int | None:
        """Index of the dimension the time window belongs to, when the keys tell (``None`` if not)."""
        if self.window is None:
            return None
        if len(keys) == 1:
            return 0
        wall = self.window.start.replace(tzinfo=None)
        candidates = [i for i, key in enumerate(keys) if key is None or _is_time_key(key, wall)]
        return candidates[0] if len(candidates) == 1 else None


#: Key formats of Dagster's time-window partitions (defaults, then common custom ones).
_TIME_KEY_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d-%H:%M",
    "%Y-%m-%d-%H",
    "%Y-%m",
    "%Y%m%d",
    "%Y%m%d%H",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d",
)


def _is_time_key(key: str, wall: datetime) -> bool:
    for fmt in _TIME_KEY_FORMATS:
        try:
            if datetime.strptime(key, fmt) == wall:
                return True
        except ValueError:
            continue
    return False


# --- Spark SQL literals and column references ---------------------------------------------------

_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Words Spark's ANSI mode reserves (SQL:2016), plus type keywords, which must be quoted as names.
_RESERVED = frozenset(
    """ALL AND ANY ARRAY AS AUTHORIZATION BOTH CASE CAST CHECK COLLATE COLUMN CONSTRAINT CREATE CROSS
    CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DATE DELETE DESCRIBE DISTINCT DROP ELSE END
    ESCAPE EXCEPT EXISTS FALSE FETCH FILTER FOR FOREIGN FROM FULL GRANT GROUP HAVING IN INNER INSERT
    INTERSECT INTERVAL INTO IS JOIN LEADING LEFT LIKE LIMIT NATURAL NOT NULL OF OFFSET ON ONLY OR ORDER
    OUTER OVERLAPS PARTITION PRIMARY REFERENCES RIGHT SELECT SESSION_USER SET SOME TABLE THEN TIME
    TIMESTAMP TIMESTAMP_NTZ TIMESTAMP_LTZ TO TRAILING TRUE UNION UNIQUE UNKNOWN UPDATE USER USING VALUES
    WHEN WHERE WINDOW WITH""".split()
)


def column_sql(column: str) -> str:
    """A column reference for Spark SQL: dotted parts (``alias.col``; backticks quote a part), each
    backtick-quoted when it is not a plain identifier or is a reserved word."""
    parts = split_identifier(column) if "`" in column else [p.strip() for p in column.split(".")]
    if not parts or any(not p for p in parts):
        raise DagsterPipesError(
            f"Invalid partition column {column!r}: pass a column name such as 'event_date', 'src.region'"
            " or '`my col`'."
        )
    return ".".join(
        p if _PLAIN_IDENTIFIER.fullmatch(p) and p.upper() not in _RESERVED else quote_identifier(p)
        for p in parts
    )


def string_literal(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, the default ``escapedStringLiterals=false``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def date_literal(value: date) -> str:
    """``DATE 'YYYY-MM-DD'``."""
    return f"DATE '{value.isoformat()}'"


def _wall(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "")


def timestamp_literal(value: datetime) -> str:
    """``TIMESTAMP 'YYYY-MM-DD HH:MM:SS+hh:mm'``: an instant, with the offset it was given in."""
    offset = value.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"TIMESTAMP '{_wall(value)}{sign}{minutes // 60:02d}:{minutes % 60:02d}'"


def timestamp_ntz_literal(value: datetime) -> str:
    """``TIMESTAMP_NTZ 'YYYY-MM-DD HH:MM:SS'``: a wall-clock time."""
    return f"TIMESTAMP_NTZ '{_wall(value.replace(tzinfo=None))}'"


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def number_literal(key: str) -> str | None:
    """The key as a numeric literal, or ``None`` when it is not a number."""
    return key.strip() if _NUMBER.fullmatch(key.strip()) else None


_EPOCH = datetime(1970, 1, 1)


def literal_from_internal(type_name: str, value: Any) -> str | None:
    """A Spark SQL literal from a value in Spark's internal form (what a Catalyst ``Literal`` and a
    Spark Connect ``LiteralExpression`` hold): days for ``date``, microseconds since the epoch (UTC)
    for ``timestamp``, wall-clock microseconds for ``timestamp_ntz``."""
    if value is None:
        return None
    name = type_name.lower()
    if name == "date":
        return date_literal((_EPOCH + timedelta(days=int(value))).date())
    if name == "timestamp":
        return timestamp_literal(_EPOCH.replace(tzinfo=timezone.utc) + timedelta(microseconds=int(value)))
    if name == "timestamp_ntz":
        return timestamp_ntz_literal(_EPOCH + timedelta(microseconds=int(value)))
    if spark_type_to_column_type(name) == "number":
        return number_literal(str(value))
    if name in ("string", "varchar", "char") or name.startswith(("varchar", "char")):
        return string_literal(str(value))
    return None


def _equal_literal(key: str, column_type: str) -> str:
    if column_type == "number":
        number = number_literal(key)
        if number is not None:
            return number
    if column_type == "date":
        try:
            return date_literal(date.fromisoformat(key))
        except ValueError:
            pass
    return string_literal(key)


# --- the predicate ------------------------------------------------------------------------------


@dataclass
class _Dimension:
    name: str | None
    column: str | None  # None: not filtered on
    key: str | None  # None: the range spans several keys of this dimension
    column_type: str | None = None
    is_time: bool = False


def _column_types_from_data(data: Any, columns: Sequence[str]) -> dict[str, str]:
    """``column -> column_type`` read from the schema of a DataFrame, a ``StructType`` or a table
    name (analysis only: no Spark job)."""
    schema = data
    if isinstance(data, str):
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise DagsterPipesError(
                f"partition_predicate(data={data!r}) needs an active SparkSession to read the table's"
                " schema; create the session first, or pass the DataFrame or column_type= instead."
            )
        schema = spark.table(data).schema
    elif hasattr(data, "schema") and not hasattr(data, "fields"):
        schema = data.schema
    fields = getattr(schema, "fields", None)
    if fields is None:
        raise DagsterPipesError(
            f"partition_predicate(data=...) takes a DataFrame, a StructType or a table name, not"
            f" {type(data).__name__}."
        )
    out: dict[str, str] = {}
    for column in columns:
        path = split_identifier(column) if "`" in column else column.split(".")
        found = _find_field(fields, path)
        if found is None:
            names = ", ".join(f.name for f in fields)
            raise DagsterPipesError(
                f"Partition column {column!r} is not in the data's schema (columns: {names}). Pass the"
                " column that holds the partition, or column_type= without data=."
            )
        out[column] = spark_type_to_column_type(found.dataType.typeName())
    return out


def _find_field(fields: Sequence[Any], path: Sequence[str]) -> Any:
    """The field at ``path`` (case-insensitive; a leading table alias is skipped)."""
    for start in range(len(path)):
        current: Sequence[Any] | None = fields
        found = None
        for part in path[start:]:
            found = next((f for f in current or () if f.name.lower() == part.lower()), None)
            if found is None:
                break
            current = getattr(found.dataType, "fields", None)
        if found is not None:
            return found
    return None


def spark_type_to_column_type(type_name: str) -> str:
    """A Spark ``DataType.typeName()`` as a ``column_type``."""
    name = type_name.lower()
    if name in ("date", "timestamp", "timestamp_ntz"):
        return name
    if name in ("byte", "short", "integer", "long", "float", "double") or name.startswith("decimal"):
        return "number"
    return "string"


def _check_column_type(value: Any, what: str) -> str:
    if value not in COLUMN_TYPES:
        raise DagsterPipesError(
            f"Invalid column_type {value!r} for {what}: expected one of {', '.join(COLUMN_TYPES)}."
        )
    return str(value)


def _dimensions(scope: PartitionScope, column: str | Mapping[str, str | None]) -> list[_Dimension]:
    if isinstance(column, str):
        if scope.window is not None and MULTI_KEY_DELIMITER in scope.key_range[0]:
            raise DagsterPipesError(
                f"The {scope.describe()} is multi-dimensional: pass column= as a mapping from each"
                " dimension name of the MultiPartitionsDefinition to its column (None for a dimension"
                " not to filter on), e.g. {'date': 'event_date', 'region': 'region'}."
            )
        return [_Dimension(None, column, scope.key)]
    if not isinstance(column, Mapping) or not column:
        raise DagsterPipesError(
            "partition_predicate(column=...) takes a column name, or for a multi-partition a mapping from"
            f" dimension name to column; got {column!r}."
        )
    names = sorted(column)  # Dagster orders the dimension keys by dimension name
    keys = scope.dimension_keys(len(names))
    if keys is None:
        count = scope.key_range[0].count(MULTI_KEY_DELIMITER) + 1
        raise DagsterPipesError(
            f"The {scope.describe()} has {count} dimension(s) but column= names {len(names)}"
            f" ({', '.join(names)}): name every dimension of the partitions definition (None for one"
            " not to filter on)."
        )
    dims = [_Dimension(name, column[name], key) for name, key in zip(names, keys, strict=True)]
    if all(d.column is None for d in dims):
        raise DagsterPipesError(
            "partition_predicate(column=...): every dimension maps to None; name a column."
        )
    return dims


def _assign_types(dims: list[_Dimension], column_type: str | Mapping[str, str] | None, data: Any) -> None:
    if column_type is not None:
        if isinstance(column_type, Mapping):
            unknown = set(column_type) - {d.name for d in dims}
            if unknown:
                raise DagsterPipesError(
                    f"column_type names dimensions {sorted(unknown)} that column= does not name."
                )
            for d in dims:
                if d.name is not None and d.name in column_type:
                    d.column_type = _check_column_type(column_type[d.name], f"dimension {d.name!r}")
        else:
            checked = _check_column_type(column_type, "the partition column")
            for d in dims:
                d.column_type = checked
    if data is not None:
        wanted = [d.column for d in dims if d.column is not None and d.column_type is None]
        if wanted:
            found = _column_types_from_data(data, wanted)
            for d in dims:
                if d.column is not None and d.column_type is None:
                    d.column_type = found[d.column]


def _mark_time_dimension(scope: PartitionScope, dims: list[_Dimension]) -> None:
    if scope.window is None:
        return
    index = scope.time_dimension([d.key for d in dims])
    if index is None:  # the keys do not tell: a dimension typed as a date/time column does
        timed = [i for i, d in enumerate(dims) if d.column_type in ("date", "timestamp", "timestamp_ntz")]
        index = timed[0] if len(timed) == 1 else None
    if index is None:
        raise DagsterPipesError(
            f"Cannot tell which dimension of the {scope.describe()} is the time window. Pass"
            " column_type={<time dimension>: 'date' or 'timestamp', ...}."
        )
    dims[index].is_time = True


def _time_predicate(
    col: str, window: Window, column_type: str, key: str | None, scope: PartitionScope
) -> str:
    if column_type == "date":
        if not window.whole_days:
            raise DagsterPipesError(
                f"The {scope.describe()} does not start and end at midnight, so a DATE column cannot"
                " select it: filter a TIMESTAMP column (column_type='timestamp')."
            )
        return f"{col} >= {date_literal(window.start.date())} AND {col} < {date_literal(window.end.date())}"
    if column_type == "timestamp":
        return f"{col} >= {timestamp_literal(window.start)} AND {col} < {timestamp_literal(window.end)}"
    if column_type == "timestamp_ntz":
        if window.start.replace(tzinfo=None) >= window.end.replace(tzinfo=None):
            raise DagsterPipesError(
                f"The {scope.describe()} covers a daylight-saving change: its wall-clock times do not"
                " increase, so a TIMESTAMP_NTZ column cannot select it. Store instants (TIMESTAMP) or"
                " use a partitions definition in UTC."
            )
        return (
            f"{col} >= {timestamp_ntz_literal(window.start)} AND {col} < {timestamp_ntz_literal(window.end)}"
        )
    if key is None:
        raise DagsterPipesError(
            f"The {scope.describe()} spans several time partitions; a {column_type} column holding the"
            " partition key cannot select the range. Filter a DATE or TIMESTAMP column instead."
        )
    return f"{col} = {_equal_literal(key, column_type)}"


def build_predicate(
    scope: PartitionScope,
    column: str | Mapping[str, str | None],
    column_type: str | Mapping[str, str] | None = None,
    data: Any = None,
) -> str:
    """The predicate for ``scope`` (see :func:`partition_predicate`)."""
    dims = _dimensions(scope, column)
    _assign_types(dims, column_type, data)
    _mark_time_dimension(scope, dims)
    parts: list[str] = []
    for d in dims:
        if d.column is None:
            continue
        col = column_sql(d.column)
        if d.is_time:
            assert scope.window is not None
            default = "date" if scope.window.whole_days else "timestamp"
            parts.append(_time_predicate(col, scope.window, d.column_type or default, d.key, scope))
            continue
        if d.key is None:
            start, end = scope.key_range
            what = f"dimension {d.name!r} of the " if d.name else ""
            raise DagsterPipesError(
                f"The step targets the partition key range {start!r}...{end!r} ({what}a partitions"
                " definition that is not time-based). The Pipes context carries only the two ends of the"
                " range, not the keys between them (they are in Dagster's partitions definition), so the"
                " external side cannot compute a predicate for it. Run one partition per run (e.g."
                " BackfillPolicy.multi_run(1)), or pass the keys in extras and filter with `col IN (...)`."
            )
        parts.append(f"{col} = {_equal_literal(d.key, d.column_type or 'string')}")
    return " AND ".join(parts)


def partition_predicate(
    pipes: Any,
    column: str | Mapping[str, str | None],
    *,
    column_type: str | Mapping[str, str] | None = None,
    data: Any = None,
    default: str | None = None,
) -> str:
    """The Spark SQL predicate selecting the partition(s) the Pipes step targets.

    Use it to read the partition, and to overwrite exactly it (Delta ``replaceWhere``, ``INSERT INTO
    ... REPLACE WHERE``, ``DataFrameWriterV2.overwrite(F.expr(...))``, or a dynamic partition
    overwrite of the filtered data): the write hooks then report ``dagster/partition_row_count``.

    .. code-block:: python

        where = partition_predicate(pipes, "event_date")  # event_date >= DATE '2024-01-02' AND ...
        spark.table("raw.events").where(where).write.format("delta").mode("overwrite") \\
            .option("replaceWhere", where).saveAsTable("main.sales.events")

    * one key: ``region = 'eu'`` (quotes and backslashes escaped; column names backtick-quoted
      when needed);
    * a time window: ``col >= DATE '2024-01-02' AND col < DATE '2024-01-03'`` for a DATE column,
      ``TIMESTAMP '2024-03-10 01:00:00-05:00'`` literals (the window's UTC offsets) for a TIMESTAMP
      column, wall-clock ``TIMESTAMP_NTZ`` literals for a TIMESTAMP_NTZ column, ``col = '<key>'`` for
      a string column holding the partition key;
    * a multi-partition: ``column`` maps *every* dimension name of the ``MultiPartitionsDefinition``
      to its column (``None``: do not filter on that dimension); the parts are joined with ``AND``.

    Args:
        pipes: the ``PipesContext``.
        column: the partition column, or for a multi-partition ``{dimension name: column | None}``.
        column_type: ``"date"``, ``"timestamp"``, ``"timestamp_ntz"``, ``"string"`` or ``"number"``
            (a mapping per dimension for a multi-partition). When not given it is read from ``data``;
            without either, a time window whose ends are midnights is a ``date``, another window a
            ``timestamp``, and a key a ``string``.
        data: a DataFrame, ``StructType`` or table name whose schema gives the column types (only the
            schema is read: no Spark job).
        default: what to return when ``pipes`` is the no-op context of a process not launched by
            Dagster (``open_dagster_pipes()`` outside Dagster). Without it that raises: a job that
            overwrites a partition must not guess which one.

    Raises:
        DagsterPipesError: the step targets no partition (also a run over a range of partitions, for
            which Dagster 1.13 sends no partition information), a key range of a partitions
            definition that is not time-based (the keys between the ends are unknown here), or a
            ``column`` / ``column_type`` / ``data`` that does not fit the partitions.
    """
    # a real context answers with a bool; the no-op one (a MagicMock outside Dagster) does not
    if pipes is None or not isinstance(getattr(pipes, "is_partition_step", None), bool):
        if default is not None:
            return default
        raise DagsterPipesError(
            "partition_predicate: this process was not launched by Dagster (the Pipes context is the"
            " no-op one), so no partition is in scope. Pass default='<predicate>' to choose what a run"
            " outside Dagster selects."
        )
    scope = PartitionScope.from_pipes(pipes)
    if scope is None:
        raise DagsterPipesError(
            "partition_predicate: the step targets no partition. Either its assets are not partitioned,"
            " or the run covers a range of partitions (a single-run backfill), for which Dagster 1.13"
            " sends the external process no partition information, so no predicate can be computed"
            " here. Run one partition per run (e.g. BackfillPolicy.multi_run(1)), or pass the bounds"
            " you need in extras."
        )
    return build_predicate(scope, column, column_type, data)


# --- reading conditions -------------------------------------------------------------------------

_OPERATORS = {"=": "=", "==": "=", "<=>": "=", ">=": ">=", ">": ">", "<=": "<=", "<": "<"}
FLIPPED_OPERATORS = {"=": "=", ">=": "<=", ">": "<", "<=": ">=", "<": ">"}
_LITERAL_PREFIXES = ("DATE", "TIMESTAMP", "TIMESTAMP_LTZ", "TIMESTAMP_NTZ")


def _strip_parens(toks: list[Any]) -> list[Any]:
    while len(toks) >= 2 and toks[0].text == "(" and toks[-1].text == ")" and toks[0].kind == "punct":
        depth = 0
        for i, t in enumerate(toks):
            if t.kind == "punct" and t.text == "(":
                depth += 1
            elif t.kind == "punct" and t.text == ")":
                depth -= 1
                if depth == 0 and i < len(toks) - 1:
                    return toks
        toks = toks[1:-1]
    return toks


def _split_and(toks: list[Any]) -> list[list[Any]] | None:
    parts: list[list[Any]] = [[]]
    depth = 0
    for t in toks:
        if t.kind == "punct" and t.text == "(":
            depth += 1
        elif t.kind == "punct" and t.text == ")":
            depth -= 1
        if depth == 0 and t.upper == "AND":
            parts.append([])
            continue
        if depth == 0 and t.upper in ("OR", "NOT", "BETWEEN", "CASE", "XOR"):
            return None
        parts[-1].append(t)
    return [p for p in parts if p]


def _literal_sql(toks: list[Any]) -> str | None:
    toks = _strip_parens(toks)
    if len(toks) == 1 and toks[0].kind == "string":
        return string_literal(toks[0].text)
    if len(toks) == 1 and toks[0].kind == "number" and number_literal(toks[0].text) is not None:
        return toks[0].text
    if len(toks) == 2 and toks[0].kind == "punct" and toks[0].text == "-" and toks[1].kind == "number":
        return "-" + toks[1].text
    if len(toks) == 2 and toks[0].upper in _LITERAL_PREFIXES and toks[1].kind == "string":
        prefix = "TIMESTAMP" if toks[0].upper == "TIMESTAMP_LTZ" else toks[0].upper
        return f"{prefix} {string_literal(toks[1].text)}"
    return None


def _operand_column(toks: list[Any]) -> str | None:
    toks = _strip_parens(toks)
    if not toks or toks[0].kind not in ("word", "quoted"):
        return None
    names: list[str] = []
    expect_name = True
    for t in toks:
        if expect_name and t.kind in ("word", "quoted"):
            names.append(t.text)
            expect_name = False
        elif not expect_name and t.kind == "punct" and t.text == ".":
            expect_name = True
        else:
            return None
    if expect_name or (len(names) == 1 and toks[0].kind == "word" and names[0].upper() in _LITERAL_PREFIXES):
        return None
    return names[-1]


def _conjunct(toks: list[Any]) -> Conjunct | None:
    toks = _strip_parens(toks)
    if len(toks) >= 4 and toks[-1].text == ")" and any(t.upper == "IN" for t in toks):
        at = next(i for i, t in enumerate(toks) if t.upper == "IN")  # col IN (<one literal>)
        column, literal = _operand_column(toks[:at]), _literal_sql(toks[at + 1 :])
        return (column, "=", literal) if column and literal else None
    for i in range(1, len(toks)):
        op_text = ""
        j = i
        while j < len(toks) and toks[j].kind == "punct" and toks[j].text in "<=>!":
            op_text += toks[j].text
            j += 1
        if not op_text:
            continue
        op = _OPERATORS.get(op_text)
        if op is None:
            return None
        left, right = toks[:i], toks[j:]
        column, literal = _operand_column(left), _literal_sql(right)
        if column is not None and literal is not None:
            return column, op, literal
        column, literal = _operand_column(right), _literal_sql(left)
        if column is not None and literal is not None:
            return column, FLIPPED_OPERATORS[op], literal
        return None
    return None


def _conjuncts_of_tokens(toks: list[Any], lenient: bool) -> tuple[Conjunct, ...] | None:
    toks = _strip_parens(toks)
    pieces = _split_and(toks) if toks else None
    if not pieces:
        return None
    out: list[Conjunct] = []
    for piece in pieces:
        conjunct = _conjunct(piece)
        if conjunct is not None:
            out.append(conjunct)
        elif not lenient:
            return None
    return tuple(out)


def conjuncts_from_sql(condition: str, *, lenient: bool = False) -> tuple[Conjunct, ...] | None:
    """The conjuncts of a boolean Spark SQL expression made only of ``column <op> literal`` terms
    joined with ``AND``; ``None`` when it has any other shape. ``lenient``: keep the terms of that
    shape and skip the other ``AND``-ed terms (for a filter: every row still satisfies the kept ones)."""
    try:
        return _conjuncts_of_tokens(tokenize(condition), lenient)
    except Exception:
        return None


@dataclass(frozen=True)
class SqlInsertPartitions:
    """What an ``INSERT`` statement says about partitions."""

    static: dict[str, str] | None  # the static part of ``PARTITION (...)``
    dynamic: tuple[str, ...]  # columns ``PARTITION (...)`` lists without a value
    replace_where: tuple[Conjunct, ...] | None  # ``INSERT INTO t REPLACE WHERE <condition>``


def sql_insert_partitions(sql: str) -> SqlInsertPartitions | None:
    """The ``PARTITION (...)`` spec and ``REPLACE WHERE`` condition of an ``INSERT`` statement."""
    p = _Parser(tokenize(sql))
    p.skip_ctes()
    if not p.accept("INSERT"):
        return None
    p.accept("OVERWRITE", "INTO")
    p.accept("TABLE")
    table, path, _ = p.name()
    if table is None and path is None:
        return None
    static: dict[str, str] | None = None
    dynamic: list[str] = []
    if p.kw() == "PARTITION" and p.peek(1) is not None and p.peek(1).text == "(":  # type: ignore[union-attr]
        p.i += 2
        static = {}
        while (tok := p.peek()) is not None and tok.text != ")":
            if tok.kind in ("word", "quoted"):
                value = p.peek(2)
                if p.peek(1) is not None and p.peek(1).text == "=" and value is not None:  # type: ignore[union-attr]
                    static[tok.text] = value.text
                    p.i += 3
                    continue
                dynamic.append(tok.text)
            p.i += 1
        p.i += 1
    replace_where = None
    if p.accept_seq("REPLACE", "WHERE"):
        start = p.i
        end = p.find_top_level("SELECT", "WITH", "FROM", "VALUES", "TABLE")
        replace_where = _conjuncts_of_tokens(p.toks[start:end], lenient=False)
    return SqlInsertPartitions(static or None, tuple(dynamic), replace_where)


# --- matching a replaced region with the scope ---------------------------------------------------


def literal_value(literal: str) -> tuple[str, Any] | None:
    """``(kind, value)`` of a literal in Spark SQL: ``string`` (str), ``number`` (Decimal), ``date``,
    ``timestamp`` (aware datetime; ``None`` without an offset, which depends on the session time
    zone), ``timestamp_ntz`` (naive datetime)."""
    try:
        toks = tokenize(literal)
    except Exception:
        return None
    if len(toks) == 1 and toks[0].kind == "string":
        return "string", toks[0].text
    text = "".join(t.text for t in toks)
    if _NUMBER.fullmatch(text):
        try:
            return "number", Decimal(text)
        except InvalidOperation:
            return None
    if len(toks) != 2 or toks[1].kind != "string":
        return None
    prefix, body = toks[0].upper, toks[1].text.strip()
    try:
        if prefix == "DATE":
            return "date", date.fromisoformat(body)
        if prefix == "TIMESTAMP_NTZ":
            return "timestamp_ntz", datetime.fromisoformat(body)
        if prefix in ("TIMESTAMP", "TIMESTAMP_LTZ"):
            value = datetime.fromisoformat(body.replace("Z", "+00:00").replace(" UTC", "+00:00"))
            return ("timestamp", value) if value.tzinfo is not None else None
    except ValueError:
        return None
    return None


@dataclass(frozen=True)
class _Group:
    """The conjuncts on one column: a point (``=``) or a half-open interval ``[low, high)``."""

    column: str
    point: tuple[str, Any] | None = None
    low: tuple[str, Any] | None = None  # inclusive
    high: tuple[str, Any] | None = None  # exclusive

    def key_text(self) -> str | None:
        """The point (or one-day date interval) as partition-value text."""
        if self.point is not None:
            kind, value = self.point
            return value.isoformat() if kind == "date" else str(value)
        if self.low and self.high and self.low[0] == self.high[0] == "date":
            if (self.high[1] - self.low[1]).days == 1:
                return str(self.low[1].isoformat())
        return None

    def partition_count(self) -> int | None:
        """How many partition values of the column the group admits, when countable."""
        if self.point is not None:
            return 1
        if self.low and self.high and self.low[0] == self.high[0] == "date":
            return max(int((self.high[1] - self.low[1]).days), 0)
        return None


def _groups(conjuncts: Sequence[Conjunct]) -> list[_Group] | None:
    by_column: dict[str, list[tuple[str, tuple[str, Any]]]] = {}
    for column, op, literal in conjuncts:
        value = literal_value(literal)
        if value is None:
            return None
        by_column.setdefault(column.lower(), []).append((op, value))
    groups: list[_Group] = []
    for column, terms in by_column.items():
        if len(terms) == 1 and terms[0][0] == "=":
            groups.append(_Group(column, point=terms[0][1]))
            continue
        bounds: dict[str, tuple[str, Any]] = {}
        for op, (kind, value) in terms:
            side = "low" if op in (">=", ">") else "high" if op in ("<", "<=") else None
            if side is None or side in bounds:
                return None
            if op in (">", "<="):  # an exclusive low / inclusive high day: the next day
                if kind != "date":
                    return None
                value = value + timedelta(days=1)
            bounds[side] = (kind, value)
        low, high = bounds.get("low"), bounds.get("high")
        if low is None or high is None or low[0] != high[0]:
            return None
        groups.append(_Group(column, low=low, high=high))
    return groups


def _group_matches(group: _Group, key: str | None, window: Window | None) -> bool:
    if group.point is not None:
        kind, value = group.point
        if key is not None:
            if kind == "string" and value == key:
                return True
            if kind == "number" and number_literal(key) is not None and Decimal(key) == value:
                return True
            if kind == "date" and value.isoformat() == key:
                return True
        return bool(
            kind == "date"
            and window
            and window.whole_days
            and window.days == 1
            and value == window.start.date()
        )
    if window is None or group.low is None or group.high is None:
        return False
    kind, low = group.low
    high = group.high[1]
    if kind == "date":
        return window.whole_days and low == window.start.date() and high == window.end.date()
    if kind == "timestamp":
        return bool(low == window.start and high == window.end)
    if kind == "timestamp_ntz":
        return low == window.start.replace(tzinfo=None) and high == window.end.replace(tzinfo=None)
    return False


def _covers(scope: PartitionScope, groups: Sequence[_Group]) -> bool:
    """Whether the groups select exactly the scope: each dimension matched by exactly one group."""
    dimensions = scope.key_range[0].count(MULTI_KEY_DELIMITER) + 1
    # time keys never contain the delimiter; a one-dimensional static key may
    for count in sorted({dimensions} if scope.window is not None else {1, dimensions}):
        keys = scope.dimension_keys(count)
        if keys is None or len(keys) != len(groups):
            continue
        time_index = scope.time_dimension(keys)
        for order in itertools.permutations(groups):
            if all(
                _group_matches(
                    group,
                    key,
                    scope.window if (time_index is None or time_index == i) else None,
                )
                for i, (group, key) in enumerate(zip(order, keys, strict=True))
            ):
                return True
    return False


def replaces_scope(
    scope: PartitionScope | None,
    replaced: Sequence[Conjunct] | None,
    *,
    partition_columns: Sequence[str] | None = None,
    num_partitions: int | None = None,
    rows: int | None = None,
) -> bool:
    """Whether a write replaced exactly the partition(s) in scope.

    ``replaced`` is the region the write replaced (a static partition spec or an overwrite
    condition); for a dynamic partition overwrite (``partition_columns`` given: the target's
    partition columns) it is instead a condition every written row satisfies, and the write
    replaced exactly the partitions it wrote: exact when the condition pins every partition column to
    the scope and the write wrote all of the scope's partitions (``num_partitions``, or for a scope
    of one partition, ``rows > 0``).
    """
    if scope is None or not replaced:
        return False
    conjuncts = list(replaced)
    if partition_columns is not None:
        wanted = {c.lower() for c in partition_columns}
        conjuncts = [c for c in conjuncts if c[0].lower() in wanted]
    groups = _groups(conjuncts)
    if not groups or not _covers(scope, groups):
        return False
    if partition_columns is None:
        return True
    if {g.column for g in groups} != {c.lower() for c in partition_columns}:
        return False
    expected = 1
    for group in groups:
        count = group.partition_count()
        if count is None:
            return False
        expected *= count
    if num_partitions is not None:
        return num_partitions == expected and expected > 0
    return expected == 1 and rows is not None and rows > 0


def written_partition(
    replaced: Sequence[Conjunct] | None,
    partition_columns: Sequence[str] | None,
    num_partitions: int | None = None,
    rows: int | None = None,
) -> dict[str, str] | None:
    """The one partition a dynamic partition overwrite wrote, when its filter pins every partition
    column to a single value and it wrote data."""
    if not replaced or not partition_columns:
        return None
    if num_partitions is not None and num_partitions != 1:
        return None
    if num_partitions is None and not (rows is not None and rows > 0):
        return None
    wanted = {c.lower(): c for c in partition_columns}
    groups = _groups([c for c in replaced if c[0].lower() in wanted])
    if not groups or {g.column for g in groups} != set(wanted):
        return None
    spec: dict[str, str] = {}
    for group in groups:
        text = group.key_text()
        if text is None:
            return None
        spec[wanted[group.column]] = text
    return spec


# --- what a write replaced ----------------------------------------------------------------------


def _full_static(write: SparkWrite) -> bool:
    """Whether the write's static partition spec names every partition column of its target."""
    spec, columns = write.static_partitions, write.partition_columns
    return bool(spec and columns and {c.lower() for c in columns} <= {k.lower() for k in spec})


def _static_conjuncts(write: SparkWrite) -> tuple[Conjunct, ...]:
    return tuple(
        (column, "=", string_literal(value)) for column, value in (write.static_partitions or {}).items()
    )


def write_replaces_scope(scope: PartitionScope | None, write: SparkWrite) -> bool:
    """Whether ``write`` replaced exactly the partition(s) in scope."""
    static = _static_conjuncts(write)
    if write.dynamic_overwrite and not _full_static(write):
        return write.partition_columns is not None and replaces_scope(
            scope,
            static + (write.replaced or ()),
            partition_columns=write.partition_columns,
            num_partitions=write.num_partitions,
            rows=write.rows,
        )
    if write.mode != "overwrite":
        return False
    return replaces_scope(scope, write.replaced or static)


def written_partitions(write: SparkWrite) -> list[dict[str, str]] | None:
    """The partitions ``write`` wrote, when Spark says: a full static partition spec, or the one
    partition a dynamic partition overwrite's filter pins."""
    if _full_static(write):
        return [dict(write.static_partitions or {})]
    if write.dynamic_overwrite:
        spec = written_partition(
            _static_conjuncts(write) + (write.replaced or ()),
            write.partition_columns,
            write.num_partitions,
            write.rows,
        )
        return [spec] if spec else None
    return None


def partition_row_count(scope: PartitionScope | None, writes: Sequence[SparkWrite]) -> int | None:
    """Rows in the partition(s) in scope after the writes: the row count of the last write, when it
    replaced exactly them and every write of the asset went to its target (an earlier write to the
    same partitions was replaced; a write to another target would make the count ambiguous)."""
    if scope is None or not writes:
        return None
    last = writes[-1]
    if last.rows is None or any(w.target_key != last.target_key for w in writes):
        return None
    return last.rows if write_replaces_scope(scope, last) else None
