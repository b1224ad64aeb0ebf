"""``DESCRIBE HISTORY`` rows, which commit belongs to which write, and the figures a commit gives
that write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster_pipes_spark.spark._delta._plans import DELTA_PROVIDER
from dagster_pipes_spark.spark._delta._tags import TAG_PREFIX
from dagster_pipes_spark.spark._targets import quote_identifier
from dagster_pipes_spark.spark._write_record import (
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_DELETE,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_UPDATE,
    SparkWrite,
)

#: Delta operation names (``DeltaOperations.*.name``) that write table data, by our operation.
_DELTA_OPS_BY_KIND: dict[str, frozenset[str]] = {
    "write": frozenset(
        {
            "WRITE",
            "CREATE TABLE AS SELECT",
            "REPLACE TABLE AS SELECT",
            "CREATE OR REPLACE TABLE AS SELECT",
            "COPY INTO",
            "STREAMING UPDATE",
        }
    ),
    OP_MERGE: frozenset({"MERGE"}),
    OP_UPDATE: frozenset({"UPDATE"}),
    OP_DELETE: frozenset({"DELETE", "TRUNCATE"}),
}
_DATA_CHANGING_OPS = frozenset().union(*_DELTA_OPS_BY_KIND.values())


@dataclass
class DeltaCommit:
    """One ``DESCRIBE HISTORY`` row, reduced to what the hooks report."""

    version: int
    operation: str
    metrics: dict[str, int] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    user_metadata: str | None = None

    @property
    def changes_data(self) -> bool:
        """Whether the commit wrote, merged, updated or deleted rows (not OPTIMIZE, VACUUM, DDL...)."""
        return self.operation.upper() in _DATA_CHANGING_OPS

    @property
    def rows_inserted(self) -> int | None:
        """Rows inserted by a MERGE."""
        return self.metrics.get("numTargetRowsInserted") if self._is(OP_MERGE) else None

    @property
    def rows_updated(self) -> int | None:
        """Rows updated by a MERGE or UPDATE."""
        if self._is(OP_MERGE):
            return self.metrics.get("numTargetRowsUpdated")
        if self._is(OP_UPDATE):
            return self.metrics.get("numUpdatedRows")
        return None

    @property
    def rows_deleted(self) -> int | None:
        """Rows deleted by a MERGE or DELETE (absent for whole-file deletes without row stats)."""
        if self._is(OP_MERGE):
            return self.metrics.get("numTargetRowsDeleted")
        if self._is(OP_DELETE):
            return self.metrics.get("numDeletedRows")
        return None

    @property
    def rows(self) -> int | None:
        """Rows written (WRITE/CTAS/...) or affected (MERGE/UPDATE/DELETE) by the commit."""
        if self._is(OP_MERGE):
            parts = (self.rows_inserted, self.rows_updated, self.rows_deleted)
            return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
        if self._is(OP_UPDATE):
            return self.rows_updated
        if self._is(OP_DELETE):
            return self.rows_deleted
        return self.metrics.get("numOutputRows")

    @property
    def files(self) -> int | None:
        """Data files added by the commit."""
        for key in ("numFiles", "numTargetFilesAdded", "numAddedFiles"):
            if key in self.metrics:
                return self.metrics[key]
        return None

    @property
    def bytes(self) -> int | None:
        """Bytes of data files added by the commit."""
        for key in ("numOutputBytes", "numTargetBytesAdded", "numAddedBytes"):
            if key in self.metrics:
                return self.metrics[key]
        return None

    def _is(self, kind: str) -> bool:
        return self.operation.upper() in _DELTA_OPS_BY_KIND.get(kind, frozenset())


def as_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    as_dict = getattr(value, "asDict", None)  # a pyspark Row
    if callable(as_dict):
        return dict(as_dict())
    try:  # a list of (key, value) pairs, as some map encodings arrive
        return dict(value)
    except (TypeError, ValueError):
        return {}


def _to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            as_float = float(str(value).strip())
        except ValueError:
            return None
        return int(as_float) if as_float.is_integer() else None


def parse_history_row(row: Any) -> DeltaCommit | None:
    """Parse one ``DESCRIBE HISTORY`` row (a pyspark ``Row`` or a mapping); ``None`` if unusable."""
    data = as_mapping(row)
    version = _to_int(data.get("version"))
    operation = data.get("operation")
    if version is None or not isinstance(operation, str):
        return None
    metrics: dict[str, int] = {}
    for key, value in as_mapping(data.get("operationMetrics")).items():
        parsed = _to_int(value)
        if parsed is not None:
            metrics[str(key)] = parsed
    parameters = {
        str(k): "" if v is None else str(v) for k, v in as_mapping(data.get("operationParameters")).items()
    }
    user_metadata = data.get("userMetadata")
    return DeltaCommit(
        version=version,
        operation=operation,
        metrics=metrics,
        parameters=parameters,
        user_metadata=str(user_metadata) if user_metadata is not None else None,
    )


def _write_kind(operation: str) -> str:
    if operation in (OP_MERGE, OP_UPDATE, OP_DELETE):
        return operation
    return "write"


def commit_matches(write_operation: str, commit: DeltaCommit) -> bool:
    """Whether a history commit can be the one a write with our ``operation`` produced."""
    return commit.operation.upper() in _DELTA_OPS_BY_KIND[_write_kind(write_operation)]


def history_sql(table: Sequence[str] | None = None, path: str | None = None, limit: int = 1) -> str:
    """``DESCRIBE HISTORY`` for a table (name parts) or a path-based Delta table."""
    if table:
        target = ".".join(quote_identifier(part) for part in table)
    elif path:
        target = "delta." + quote_identifier(path)
    else:
        raise ValueError("history_sql needs a table or a path")
    return f"DESCRIBE HISTORY {target} LIMIT {max(1, int(limit))}"


def match_commits(
    writes: Sequence[SparkWrite], commits: Iterable[DeltaCommit], tag: str | None = None
) -> list[tuple[SparkWrite, DeltaCommit]]:
    """Pair writes (oldest first) with history commits (any order), newest with newest.

    With a ``tag`` and commits carrying it, only those are candidates: they are this block's own
    commits, whatever other writers committed in between. Commits that change no data (OPTIMIZE,
    VACUUM, SET TBLPROPERTIES...) and commits whose operation cannot come from the write are skipped,
    so maintenance done in between does not shift the pairs.
    """
    candidates = list(commits)
    if tag is not None:
        ours = [c for c in candidates if c.user_metadata == tag]
        candidates = ours or [c for c in candidates if not (c.user_metadata or "").startswith(TAG_PREFIX)]
    pending = sorted((c for c in candidates if c.changes_data), key=lambda c: c.version, reverse=True)
    pairs: list[tuple[SparkWrite, DeltaCommit]] = []
    for write in reversed(list(writes)):
        while pending and not commit_matches(write.operation, pending[0]):
            pending.pop(0)
        if not pending:
            break
        pairs.append((write, pending.pop(0)))
    pairs.reverse()
    return pairs


def _copy_counters(commit: DeltaCommit, write: SparkWrite) -> None:
    for attr in ("rows", "files", "bytes", "rows_inserted", "rows_updated", "rows_deleted"):
        value = getattr(commit, attr)
        if value is not None:
            setattr(write, attr, value)


#: Delta's name of a table-creating commit -> our operation
_CREATE_OPERATIONS = {
    "CREATE TABLE AS SELECT": OP_CTAS,
    "REPLACE TABLE AS SELECT": OP_RTAS,
    "CREATE OR REPLACE TABLE AS SELECT": OP_CREATE_OR_REPLACE,
}


def apply_commit(write: SparkWrite, commit: DeltaCommit) -> None:
    """Fill a write's counters from its Delta commit (the history is authoritative for Delta).

    ``saveAsTable`` / ``writeTo(...).create*`` of a Delta table take the operation Delta committed:
    ``CREATE OR REPLACE TABLE AS SELECT`` for a new table, a ``WRITE`` (reported as ``INSERT`` /
    ``INSERT OVERWRITE``) when it went into an existing one (``replaceWhere``, dynamic partition
    overwrite, append), whichever plan or client call carried it.
    """
    write.delta_version = commit.version
    write.format = DELTA_PROVIDER
    if write.operation in _CREATE_OPERATIONS.values():
        created = _CREATE_OPERATIONS.get(commit.operation.upper())
        if created is not None:
            write.operation = created
        elif commit.operation.upper() == "WRITE":
            write.operation = OP_INSERT_OVERWRITE if write.mode == "overwrite" else OP_INSERT
    _copy_counters(commit, write)


def apply_operation_metrics(write: SparkWrite, operation: str, metrics: Mapping[str, int]) -> None:
    """Fill a write's counters from metrics named as in ``DeltaOperationMetrics`` (Spark's own write
    statistics ``numOutputRows`` / ``numFiles`` / ``numOutputBytes`` use the same names)."""
    _copy_counters(DeltaCommit(version=-1, operation=operation, metrics=dict(metrics)), write)
