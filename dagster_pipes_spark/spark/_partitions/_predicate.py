"""``partition_predicate``: the Spark SQL predicate selecting the partition(s) in scope, with the
partition column's type taken from the data, the table or ``column_type=``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._partitions._scope import (
    COLUMN_TYPES,
    MULTI_KEY_DELIMITER,
    PartitionScope,
    Window,
)
from dagster_pipes_spark.spark._sql._literals import (
    column_sql,
    date_literal,
    equal_literal,
    spark_type_to_column_type,
    timestamp_literal,
    timestamp_ntz_literal,
)
from dagster_pipes_spark.spark._targets import (
    split_identifier,
)

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
    return f"{col} = {equal_literal(key, column_type)}"


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
        parts.append(f"{col} = {equal_literal(d.key, d.column_type or 'string')}")
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
