"""Whether a write replaced exactly the partition(s) in scope, which partitions it wrote, and the rows
of the scope it wrote (``dagster/partition_row_count``)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from dagster_pipes_spark.spark._partitions._scope import MULTI_KEY_DELIMITER, PartitionScope, Window
from dagster_pipes_spark.spark._sql._conditions import Conjunct, conjuncts_of_tokens
from dagster_pipes_spark.spark._sql._literals import literal_value, number_literal, string_literal
from dagster_pipes_spark.spark._sql._statements import parse_insert_clauses
from dagster_pipes_spark.spark._write_record import SparkWrite


@dataclass(frozen=True)
class SqlInsertPartitions:
    """What an ``INSERT`` statement says about partitions."""

    static: dict[str, str] | None  # the static part of ``PARTITION (...)``
    dynamic: tuple[str, ...]  # columns ``PARTITION (...)`` lists without a value
    replace_where: tuple[Conjunct, ...] | None  # ``INSERT INTO t REPLACE WHERE <condition>``


def sql_insert_partitions(sql: str) -> SqlInsertPartitions | None:
    """The ``PARTITION (...)`` spec and ``REPLACE WHERE`` condition of an ``INSERT`` statement."""
    clauses = parse_insert_clauses(sql)
    if clauses is None:
        return None
    replace_where = None
    if clauses.replace_where is not None:
        replace_where = conjuncts_of_tokens(clauses.replace_where, lenient=False)
    return SqlInsertPartitions(clauses.static, clauses.dynamic, replace_where)


# --- matching a replaced region with the scope ---------------------------------------------------


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
