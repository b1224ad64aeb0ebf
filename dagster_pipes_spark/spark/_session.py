"""The hook session: collects writes while the block runs, then resolves, aggregates and reports.

Importing this module does not import pyspark (only to tell a Connect session whether it runs
remotely); the mechanism (classic listener or Connect instrumentation) is picked from the session and
imported on first use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from dagster_pipes_spark.spark._collector import Collector
from dagster_pipes_spark.spark._context_helpers import already_materialized, is_mock, log
from dagster_pipes_spark.spark._lineage_types import LineageSource
from dagster_pipes_spark.spark._metadata import build_metadata, canonical_table, data_version_for
from dagster_pipes_spark.spark._partitions import PartitionScope
from dagster_pipes_spark.spark._streaming import StreamingObserver
from dagster_pipes_spark.spark._targets import AssetResolver, AssetsArg
from dagster_pipes_spark.spark._write_record import SparkWrite
from dagster_pipes_spark.spark._write_report import SparkWriteReport

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.session import SparkSession as ConnectSparkSession

    from dagster_pipes_spark.spark._checks._results import ChecksArg

# --- the hook session -------------------------------------------------------------------------


class Backend(Protocol):
    """What a mechanism (classic listener / Connect instrumentation) provides."""

    mechanism: str

    def start(self) -> None:
        """Begin observing writes."""

    def stop(self, timeout: float) -> None:
        """Wait (bounded) for pending write events, then stop observing. Must not raise."""

    def prepare(self, writes: list[SparkWrite]) -> None:
        """Complete writes before asset resolution (e.g. qualify table names)."""

    def enrich(self, writes: list[SparkWrite]) -> None:
        """Complete mapped writes (schemas, Delta history)."""

    def application_id(self) -> str | None:
        """The Spark application id, if known."""


class HookSession:
    """Collects writes and turns them into materializations when the block ends."""

    def __init__(self, pipes: Any, assets: AssetsArg, report: SparkWriteReport) -> None:
        # validate the mapping up front so a bad ``assets`` fails where it was written
        AssetResolver(assets, [])
        self.pipes = pipes
        self.assets = assets
        self.report = report
        self.collector = Collector()
        self.streams: StreamingObserver | None = None

    def log(self, level: str, message: str) -> None:
        """Log through the Pipes context; never raises."""
        log(self.pipes, level, message)

    def _scope(self) -> list[str]:
        try:
            keys = self.pipes.asset_keys
        except Exception as exc:  # DagsterPipesError: the step targets no asset
            self.log("debug", f"[spark writes] no asset keys in scope ({exc}); nothing will be reported")
            return []
        try:
            return [str(k) for k in keys]
        except TypeError:
            return []

    def finish(self, backend: Backend | None, timeout: float) -> None:
        """Stop observing, resolve, aggregate and report. Never raises."""
        started = time.perf_counter()
        try:
            self._finish(backend, timeout)
        except Exception as exc:  # pragma: no cover - defensive: reporting must not fail the job
            self.log("warning", f"[spark writes] automatic reporting failed: {type(exc).__name__}: {exc}")
        finally:
            self.report.exit_seconds = time.perf_counter() - started

    def _finish(self, backend: Backend | None, timeout: float) -> None:
        if backend is not None:
            backend.stop(timeout)
        if self.streams is not None:
            for write in self.streams.stop(timeout):
                self.collector.add(write)
        writes, failures = self.collector.snapshot()
        self.report.writes = writes
        self.report.failed_writes = failures
        self.report.hook_seconds = self.collector.hook_seconds
        self.report.hook_calls = self.collector.hook_calls
        self.report.hook_call_seconds = list(self.collector.hook_call_seconds)
        for note in list(self.collector.notes):
            self.log("debug", note)
        for problem, count in self.collector.hook_errors.items():
            times = f" ({count} times)" if count > 1 else ""
            self.log("warning", f"[spark writes] error inside a write hook, ignored{times}: {problem}")
        for failed in failures:
            self.log(
                "warning",
                f"[spark writes] {failed.operation} to {failed.target} failed; not reported as a"
                f" materialization: {failed.error}",
            )
        if not writes or backend is None:
            return
        scope = self._scope()
        self._guard(backend.prepare, writes)
        for write in writes:
            if write.table:
                write.table = canonical_table(write.table)
        resolver = AssetResolver(self.assets, scope)
        by_key: dict[str, list[SparkWrite]] = {}
        for write in writes:
            key, reason = resolver.resolve(write)
            write.asset_key = key
            if key is None:
                self.log(
                    "debug", f"[spark writes] {write.operation} to {write.target} not reported: {reason}"
                )
                continue
            by_key.setdefault(key, []).append(write)
        if not by_key:
            return
        mapped = [w for ws in by_key.values() for w in ws]
        self._guard(backend.enrich, mapped)
        for write in mapped:
            if write.lineage_problem is not None:
                reason, unknown_node = write.lineage_problem
                self.log(
                    "warning" if unknown_node else "debug",
                    f"[spark writes] column lineage of {write.target}: columns left out, {reason}",
                )
        app_id = None
        try:
            app_id = backend.application_id()
        except Exception:
            pass
        partition_scope = self._partition_scope()

        def source_key(source: LineageSource) -> str | None:
            table = canonical_table(source.table) if source.table else None
            return resolver.resolve_source(table, source.path)

        for key, key_writes in by_key.items():
            metadata = build_metadata(key_writes, app_id, partition_scope, source_key=source_key)
            if already_materialized(self.pipes, key):
                self.log(
                    "info",
                    f"[spark writes] asset {key} was already reported by the job; skipping the"
                    f" automatic report of its {len(key_writes)} Spark write(s)",
                )
                continue
            try:
                self.pipes.report_asset_materialization(
                    metadata=metadata, data_version=data_version_for(key_writes), asset_key=key
                )
            except Exception as exc:
                self.log("warning", f"[spark writes] could not report asset {key}: {exc}")
                continue
            self.report.materializations[key] = metadata

    def _partition_scope(self) -> PartitionScope | None:
        """The partition(s) the step targets, for ``dagster/partition_row_count``."""
        try:
            return PartitionScope.from_pipes(self.pipes)
        except Exception as exc:
            self.log("debug", f"[spark writes] partition scope unavailable: {type(exc).__name__}: {exc}")
            return None

    def _guard(self, fn: Callable[[list[SparkWrite]], None], writes: list[SparkWrite]) -> None:
        try:
            fn(writes)
        except Exception as exc:
            self.log(
                "warning",
                f"[spark writes] {getattr(fn, '__name__', 'step')} failed: {type(exc).__name__}: {exc}",
            )


def _is_connect_session(spark: Any) -> bool:
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        return True
    if hasattr(spark, "_jsparkSession"):
        return False
    try:
        from pyspark.sql.utils import is_remote

        return bool(is_remote())
    except Exception:
        return False


def _make_backend(spark: Any, session: HookSession, count_rows: bool, lineage: bool = True) -> Backend:
    def warn(message: str) -> None:
        session.log("warning", message)

    def debug(message: str) -> None:
        session.log("debug", message)

    if _is_connect_session(spark):
        from dagster_pipes_spark.spark._connect import ConnectBackend

        return ConnectBackend(spark, session.collector, warn, debug, count_rows=count_rows, lineage=lineage)
    from dagster_pipes_spark.spark._classic import ClassicBackend

    return ClassicBackend(spark, session.collector, warn, debug, lineage=lineage)


@contextmanager
def report_spark_writes(
    spark: SparkSession | ConnectSparkSession,
    pipes: Any,
    assets: AssetsArg = None,
    *,
    timeout: float = 30.0,
    count_rows: bool = True,
    column_lineage: bool = True,
    checks: Mapping[Any, ChecksArg] | None = None,
) -> Iterator[SparkWriteReport]:
    """Report every successful batch write ``spark`` makes inside the block as a materialization.

    Args:
        spark: a classic or Spark Connect ``SparkSession``.
        pipes: the ``PipesContext`` from ``open_dagster_pipes()`` (a no-op mock outside Dagster is
            accepted and ignored).
        assets: how a write target maps to an asset key. A dict from table name (any qualification,
            case-insensitive; the most qualified match wins) or path to asset key (a string like
            ``"a/b"``, a list of parts, or a ``dagster.AssetKey``; ``None`` to ignore the target),
            or a callable ``target -> asset key | None`` receiving the fully qualified table name or
            the path. Tables a dict does not name, and all tables when ``assets`` is ``None``, map to
            the in-scope asset key equal to their trailing name parts (``orders`` or
            ``sales/orders`` for ``main.sales.orders``). Writes that map to nothing, or to a key not
            in scope, are logged at debug level.
        timeout: seconds to wait on exit for Spark to deliver pending write events (classic).
        count_rows: on Spark Connect, count the rows of non-Delta DataFrame writes with a named
            observation returned with the write (no second job; a few ms of server time per write).
            ``False`` reports those writes without ``dagster/row_count``.
        column_lineage: report ``dagster/column_lineage``: which columns of which source tables and
            paths flow into each written column (read from the analysed plan: classic, one py4j call
            per write; Spark Connect, one ``explain`` per distinct written plan on exit, no job).
            Sources map to asset keys like targets (``assets``), without needing to be in scope; a
            table ``assets`` does not name maps to the in-scope key equal to its trailing name
            parts, else to its bare name.
        checks: asset key -> checks (as for :func:`~dagster_pipes_spark.spark.report_spark_checks`),
            run on exit, after the materializations, on the table (or Parquet/Delta/ORC/Avro path)
            last written for each asset, in one Spark action per asset (plus one for failing rows).
            Invalid definitions raise before the block runs; a check that cannot be evaluated on
            the written data (e.g. a missing column), or an asset the block did not write, is
            reported failed with the reason as ``error``. Not run when the block raises.

    Yields:
        A :class:`SparkWriteReport`, filled on exit with the writes seen and what was reported.

    Several writes to one asset become one materialization (Pipes allows one per key); assets the
    job already reported itself are skipped with an info log. Failed writes are logged as warnings.
    Errors inside the hooks are logged, never raised into Spark or the job; the hooks are removed
    on exit, also when the block raises.
    """
    write_checks = None
    if checks is not None:
        from dagster_pipes_spark.spark._checks._evaluation import WriteChecks

        write_checks = WriteChecks(checks, pipes)  # invalid checks raise before the block runs
    report = SparkWriteReport()
    if pipes is None or is_mock(pipes):
        yield report
        return
    session = HookSession(pipes, assets, report)
    backend: Backend | None = None
    if spark is None:
        session.log("warning", "[spark writes] no SparkSession given; writes will not be reported")
    else:
        try:
            candidate = _make_backend(spark, session, count_rows, column_lineage)
            candidate.start()
            backend = candidate
            report.mechanism = candidate.mechanism
            session.streams = StreamingObserver(
                spark,
                connect=_is_connect_session(spark),
                warn=lambda m: session.log("warning", m),
                debug=lambda m: session.log("debug", m),
                lineage=column_lineage,
            )
            session.streams.start()
        except Exception as exc:
            session.log(
                "warning",
                f"[spark writes] cannot observe this session's writes ({type(exc).__name__}: {exc});"
                " report materializations explicitly",
            )
    completed = False
    try:
        yield report
        completed = True
    finally:
        session.finish(backend, timeout)
        if write_checks is not None:
            report.checks = write_checks.run(spark, pipes, report.writes, completed)
