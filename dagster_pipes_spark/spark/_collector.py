"""The thread-safe store the mechanisms add writes to while a block runs (``Collector``): writes and
failures in order (the nested half of a CTAS joined with the CTAS itself), hook errors, time spent
in hooks, debug notes for exit. Nothing here imports pyspark."""

from __future__ import annotations

import threading

from dagster_pipes_spark.spark._write_record import SparkWrite


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
