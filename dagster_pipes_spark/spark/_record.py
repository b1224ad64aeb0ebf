"""The write record: one batch write seen by the hooks, the column lineage it carries, the
thread-safe collector, and the report.

Nothing here imports pyspark.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# --- column lineage (computed by ``_lineage``) ------------------------------------------------


@dataclass(frozen=True, order=True)
class LineageSource:
    """A table (name parts, as qualified as Spark printed them) or a path that a write reads."""

    table: tuple[str, ...] | None = None
    path: str | None = None

    @property
    def target(self) -> str:
        """Dotted table name, or the path (what an ``assets=`` callable receives)."""
        return ".".join(self.table) if self.table else (self.path or "")


SourceColumn = tuple[LineageSource, str]
#: the source columns whose values flow into a column; ``None`` when that cannot be resolved
Deps = frozenset[SourceColumn] | None
#: written column -> its dependencies, in the order of the written columns
ColumnLineage = dict[str, Deps]

# --- operations and modes ---------------------------------------------------------------------

OP_WRITE = "WRITE"  #: a DataFrame written to a path (``save``/``parquet``/``json``/...)
OP_INSERT = "INSERT"
OP_INSERT_OVERWRITE = "INSERT OVERWRITE"
OP_CTAS = "CREATE TABLE AS SELECT"
OP_RTAS = "REPLACE TABLE AS SELECT"
OP_CREATE_OR_REPLACE = "CREATE OR REPLACE TABLE AS SELECT"
OP_MERGE = "MERGE"
OP_UPDATE = "UPDATE"
OP_DELETE = "DELETE"
OP_COPY_INTO = "COPY INTO"

_MODE_ALIASES = {
    "append": "append",
    "overwrite": "overwrite",
    "ignore": "ignore",
    "error": "errorifexists",
    "errorifexists": "errorifexists",
    "default": "errorifexists",
}


def normalize_mode(mode: Any) -> str | None:
    """``SaveMode`` names and DataFrameWriter mode strings to ``append|overwrite|ignore|errorifexists``."""
    if mode is None:
        return None
    text = str(mode).strip().lower().replace("_", "")
    return _MODE_ALIASES.get(text, text or None)


# --- the write record -------------------------------------------------------------------------


@dataclass
class SparkWrite:
    """One batch write seen while :func:`~dagster_pipes_spark.spark.report_spark_writes` was open.

    ``table`` holds the name parts of a table target (as qualified as Spark told us), ``path`` the
    normalized location of a path target. Counters are ``None`` when Spark did not say.
    """

    operation: str
    table: tuple[str, ...] | None = None
    path: str | None = None
    mode: str | None = None
    format: str | None = None
    rows: int | None = None
    files: int | None = None
    bytes: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None
    columns: list[tuple[str, str]] | None = None
    is_delta: bool | None = None
    delta_version: int | None = None
    #: the Iceberg snapshot the write committed (``_iceberg``)
    snapshot_id: int | None = None
    #: a streaming query's metadata (``spark/streaming_*``; ``_streaming``), None for batch writes
    streaming: dict[str, Any] | None = None
    error: str | None = None
    asset_key: str | None = None
    api: str | None = None
    # partitions (see ``_partitions``): what the write replaced, as conjuncts (column, operator,
    # literal SQL) -- an overwrite condition; for a dynamic partition overwrite, a condition every
    # written row satisfies -- the target's partition columns, the static partition spec, whether
    # it was a dynamic partition overwrite, and how many partitions it wrote (Spark's numParts)
    replaced: tuple[tuple[str, str, str], ...] | None = None
    partition_columns: tuple[str, ...] | None = None
    static_partitions: dict[str, str] | None = None
    dynamic_overwrite: bool = False
    num_partitions: int | None = None
    #: written column -> the source columns flowing into it (``_lineage``); None: not known
    column_lineage: ColumnLineage | None = None
    #: why lineage columns were left out, and whether a plan node was not understood (logged on exit)
    lineage_problem: tuple[str, bool] | None = None
    # bookkeeping for the backends
    inner: bool = field(default=False, repr=False)  # may be the nested half of a following CTAS
    outer: bool = field(default=False, repr=False)  # a CTAS/RTAS whose data went in a nested write
    locations: tuple[str, ...] | None = field(default=None, repr=False)  # where an outer's table lives
    storage: str | None = field(default=None, repr=False)  # where a table target keeps its files
    source: Any = field(default=None, repr=False, compare=False)
    lineage_input: Any = field(default=None, repr=False, compare=False)  # Connect: explained on exit

    @property
    def target(self) -> str:
        """Dotted table name, or the path."""
        if self.table:
            return ".".join(self.table)
        return self.path or "<unknown>"

    @property
    def succeeded(self) -> bool:
        """False for a write that raised."""
        return self.error is None

    @property
    def target_key(self) -> str:
        """Case-insensitive identity of the target, for grouping."""
        return ("t:" + ".".join(self.table).lower()) if self.table else ("p:" + (self.path or ""))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary of the write (used in ``spark/writes`` metadata)."""
        out: dict[str, Any] = {"target": self.target, "operation": self.operation}
        for key in (
            "mode",
            "format",
            "rows",
            "files",
            "bytes",
            "rows_inserted",
            "rows_updated",
            "rows_deleted",
            "delta_version",
            "snapshot_id",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class SparkWriteReport:
    """What :func:`~dagster_pipes_spark.spark.report_spark_writes` saw and reported.

    Filled when the context exits: ``writes`` (successful, in order), ``failed_writes``, and
    ``materializations`` (asset key -> the metadata sent to Dagster). ``hook_seconds`` is the time
    spent in the hooks themselves while the block ran (``hook_call_seconds``: each hook call's, in
    order); ``exit_seconds`` the time spent on exit
    (waiting for Spark's events, history look-ups, reporting). ``checks``: asset key -> check name
    -> ``SparkCheckResult`` of the ``checks=`` run on exit.
    """

    mechanism: str = "none"
    writes: list[SparkWrite] = field(default_factory=list)
    failed_writes: list[SparkWrite] = field(default_factory=list)
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)
    hook_seconds: float = 0.0
    hook_calls: int = 0
    hook_call_seconds: list[float] = field(default_factory=list)
    exit_seconds: float = 0.0
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


class Collector:
    """Thread-safe store of writes; joins the nested half of a CTAS with the CTAS itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: list[SparkWrite] = []
        self.failures: list[SparkWrite] = []
        self.hook_errors: dict[str, int] = {}
        self.hook_seconds = 0.0
        self.hook_calls = 0
        self.hook_call_seconds: list[float] = []
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        """Remember a debug line to log on exit (hooks never talk to Pipes themselves)."""
        with self._lock:
            self.notes.append(message)

    def add(self, write: SparkWrite) -> None:
        """Record a write (success or failure)."""
        with self._lock:
            bucket = self.writes if write.succeeded else self.failures
            if write.outer and bucket:
                last = bucket[-1]
                if last.inner and (
                    last.target_key == write.target_key
                    or (last.path is not None and last.path in (write.locations or ()))
                ):
                    _absorb(last, write)
                    return
            bucket.append(write)

    def hook_error(self, where: str, exc: BaseException) -> None:
        """Remember an exception raised inside a hook (reported once per kind on exit)."""
        key = f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        with self._lock:
            self.hook_errors[key] = self.hook_errors.get(key, 0) + 1

    def timed(self, seconds: float) -> None:
        """Account time spent inside a hook."""
        with self._lock:
            self.hook_seconds += seconds
            self.hook_calls += 1
            self.hook_call_seconds.append(seconds)

    def snapshot(self) -> tuple[list[SparkWrite], list[SparkWrite]]:
        """Copies of the successful and failed writes."""
        with self._lock:
            return list(self.writes), list(self.failures)


def _absorb(inner: SparkWrite, outer: SparkWrite) -> None:
    """Merge a CTAS/RTAS event into the nested write that carried its data."""
    inner.operation = outer.operation
    inner.mode = outer.mode or inner.mode
    inner.table = outer.table or inner.table
    inner.columns = outer.columns or inner.columns
    inner.format = outer.format or inner.format
    inner.is_delta = outer.is_delta if outer.is_delta is not None else inner.is_delta
    inner.error = outer.error or inner.error
    inner.api = outer.api or inner.api
    if outer.column_lineage is not None:
        inner.column_lineage = outer.column_lineage
        inner.lineage_problem = outer.lineage_problem
    elif inner.column_lineage is None and inner.lineage_problem is None:
        inner.lineage_problem = outer.lineage_problem
    # what the outer command says it replaced (Delta's replaceWhere arrives as a write option of
    # the CTAS/RTAS; the nested overwrite's own condition may be unreadable)
    for attr in ("replaced", "partition_columns", "static_partitions", "num_partitions"):
        if getattr(inner, attr) is None and getattr(outer, attr) is not None:
            setattr(inner, attr, getattr(outer, attr))
    inner.dynamic_overwrite = inner.dynamic_overwrite or outer.dynamic_overwrite
    for attr in ("rows", "files", "bytes"):
        if getattr(inner, attr) is None:
            setattr(inner, attr, getattr(outer, attr))
    inner.inner = False
