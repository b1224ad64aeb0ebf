"""The classic mechanism's backend: a py4j ``QueryExecutionListener`` recording each write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from dagster_pipes_spark.spark._classic._commands import maintenance_target, write_from_plan
from dagster_pipes_spark.spark._classic._lineage import column_lineage_of
from dagster_pipes_spark.spark._classic._merge_builder import (
    install_merge_hook,
    merge_target,
    uninstall_merge_hook,
)
from dagster_pipes_spark.spark._classic._metrics import apply_metrics, write_metrics
from dagster_pipes_spark.spark._classic._partitions import read_partitions
from dagster_pipes_spark.spark._classic._py4j import JavaObject, error_text, opt
from dagster_pipes_spark.spark._collector import Collector
from dagster_pipes_spark.spark._commands import maintenance_command
from dagster_pipes_spark.spark._delta import (
    COMMIT_TAG_CONF,
    CommitTagger,
    enrich_from_delta_history,
    maintenance_note,
    read_commit_logs,
)
from dagster_pipes_spark.spark._iceberg import enrich_from_iceberg_snapshots
from dagster_pipes_spark.spark._partitions import PARTITION_OVERWRITE_MODE_CONF
from dagster_pipes_spark.spark._targets import normalize_path, quote_identifier
from dagster_pipes_spark.spark._write_record import OP_MERGE, SparkWrite

#: Milliseconds to wait for queued listener events around a Python-API MERGE.
_DRAIN_MS = 10_000


#: The names Spark gives queries that write nothing the hooks report: Dataset actions, Delta's
#: snapshot-state caching and the file write inside a Delta command (the command itself is reported,
#: with the figures of its commit). Their events are dropped before any py4j call; a Delta write
#: runs several of them besides the write itself.
_READ_ACTIONS = frozenset(
    {
        "collect",
        "collectAsList",
        "collectToPython",
        "collectAsArrowToPython",
        "toPandas",
        "head",
        "take",
        "tail",
        "first",
        "count",
        "toLocalIterator",
        "show",
        "isEmpty",
        "foreach",
        "foreachPartition",
        "reduce",
        "deltaTransactionalWrite",
    }
)


def is_read_action(func_name: str) -> bool:
    """Whether a listener event's ``funcName`` names a query that writes nothing."""
    return func_name in _READ_ACTIONS or func_name.startswith("Cache Delta Table State")


class _QueryExecutionListener:
    """``org.apache.spark.sql.util.QueryExecutionListener`` implemented in Python via py4j."""

    def __init__(self, backend: ClassicBackend) -> None:
        self._backend = backend

    def onSuccess(self, funcName: str, qe: JavaObject, durationNs: int) -> None:  # noqa: N802,N803
        if not is_read_action(str(funcName)):
            self._backend.on_event(qe, None)

    def onFailure(self, funcName: str, qe: JavaObject, exception: JavaObject) -> None:  # noqa: N802,N803
        if not is_read_action(str(funcName)):
            self._backend.on_event(qe, exception)

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.sql.util.QueryExecutionListener"]


class ClassicBackend:
    """Observes writes of one classic ``SparkSession`` through a py4j ``QueryExecutionListener``."""

    mechanism = "classic"

    def __init__(
        self,
        spark: Any,
        collector: Collector,
        warn: Callable[[str], None],
        debug: Callable[[str], None],
        *,
        lineage: bool = True,
    ) -> None:
        self._spark = spark
        self._lineage = lineage  # read column lineage from each write's plan
        self._collector = collector
        self._warn = warn
        self._debug = debug
        self._listener: _QueryExecutionListener | None = None
        self._proxy_holder: JavaObject | None = None
        self._bus: JavaObject | None = None
        self._app_id: str | None = None
        # A nested write (the insert a CTAS runs, or a plain INSERT) whose lineage is read only once
        # the next write shows whether a CTAS carries it: the CTAS's own plan gives that lineage,
        # so a CTAS is read once, not twice. At most one plan is held.
        self._deferred: tuple[JavaObject, SparkWrite] | None = None
        self._deferred_lock = threading.Lock()
        self._tagger = CommitTagger(
            lambda: self._spark.conf.get(COMMIT_TAG_CONF, None),
            lambda tag: self._spark.conf.set(COMMIT_TAG_CONF, tag),
            lambda: self._spark.conf.unset(COMMIT_TAG_CONF),
        )

    def start(self) -> None:
        self._tagger.start()
        if self._tagger.note:
            self._debug(f"[spark writes] {self._tagger.note}")
        from pyspark.java_gateway import ensure_callback_server_started

        sc = self._spark.sparkContext
        ensure_callback_server_started(sc._gateway)
        self._bus = sc._jsc.sc().listenerBus()
        try:  # let events of writes made before the block reach their listeners first
            self._bus.waitUntilEmpty(2000)
        except Exception:
            pass
        listener = _QueryExecutionListener(self)
        # py4j makes a new Java proxy each time a Python object crosses over, and Spark unregisters
        # by reference (``eq``): ``unregister(listener)`` would silently remove nothing. So the proxy
        # is made once, kept in a Java list, and handed to register/unregister through reflection
        # without ever coming back to Python.
        self._proxy_holder = sc._jvm.java.util.ArrayList()
        self._proxy_holder.add(listener)
        self._call_listener_manager("register")
        self._listener = listener
        try:
            self._app_id = str(sc.applicationId)
        except Exception:
            self._app_id = None
        try:
            install_merge_hook(self)
        except Exception as exc:
            self._collector.hook_error("wrapping DeltaMergeBuilder.execute", exc)

    def observes(self, spark: Any) -> bool:
        """Whether this backend observes the session ``spark``."""
        return spark is self._spark

    def before_api_merge(self) -> tuple[int, int]:
        """Before a Python-API ``DeltaMergeBuilder.execute()``: let queued events in, then mark."""
        started = time.perf_counter()
        try:
            self._drain()
        except Exception as exc:
            self._collector.hook_error("DeltaMergeBuilder.execute", exc)
        writes, failures = self._collector.snapshot()
        self._collector.timed(time.perf_counter() - started)
        return len(writes), len(failures)

    def after_api_merge(
        self, jbuilder: JavaObject, mark: tuple[int, int], error: BaseException | None
    ) -> None:
        """After it: when no listener event reported a MERGE to its target (Delta 3.x runs it outside
        Spark's query execution), record it; its figures come from the table's history on exit."""
        started = time.perf_counter()
        try:
            self._drain()
            write = merge_target(jbuilder)
            if write is None:
                return
            write.api = "DeltaTable.merge"
            writes, failures = self._collector.snapshot()
            seen = writes[mark[0] :] + failures[mark[1] :]
            if any(w.operation == OP_MERGE and w.target_key == write.target_key for w in seen):
                return
            if error is not None:
                text = str(error).strip()
                write.error = text.splitlines()[0][:500] if text else type(error).__name__
            self._collector.add(write)
        except Exception as exc:
            self._collector.hook_error("DeltaMergeBuilder.execute", exc)
        finally:
            self._collector.timed(time.perf_counter() - started)

    def _drain(self) -> None:
        if self._bus is not None:
            self._bus.waitUntilEmpty(_DRAIN_MS)

    def on_event(self, qe: JavaObject, exception: JavaObject | None) -> None:
        """Listener callback body: record a write, never raise."""
        started = time.perf_counter()
        try:
            node = qe.analyzed()
            write = write_from_plan(node)
            if write is None:
                command = maintenance_command(str(node.nodeName()))
                if command is not None and exception is None:
                    self._collector.note(maintenance_note(command, maintenance_target(node)))
                return
            if write.outer and write.table and write.locations is None:
                write.locations = self._table_locations(node)
            if exception is None:
                metrics: dict[str, int] = {}
                try:
                    metrics = write_metrics(qe.executedPlan())
                    apply_metrics(write, metrics)
                except Exception as exc:
                    self._collector.hook_error("reading write metrics", exc)
                try:
                    read_partitions(node, write, metrics, self._overwrite_mode)
                except Exception as exc:
                    self._collector.hook_error("reading partitions", exc)
            else:
                write.error = error_text(exception)
            if self._lineage and exception is None and write.inner:
                self._settle_deferred()
                self._collector.add(write)
                with self._deferred_lock:
                    self._deferred = (node, write)
                return
            if self._lineage and exception is None:
                self._read_lineage(node, write)
            self._collector.add(write)  # a CTAS joins the nested write it carried, lineage included
            self._settle_deferred()
        except Exception as exc:
            self._collector.hook_error("QueryExecutionListener", exc)
        finally:
            self._collector.timed(time.perf_counter() - started)

    def _read_lineage(self, node: JavaObject, write: SparkWrite) -> None:
        try:
            write.column_lineage = column_lineage_of(node, write)
        except Exception as exc:
            self._collector.hook_error("reading column lineage", exc)

    def _settle_deferred(self) -> None:
        """Read the lineage of the deferred nested write, unless a CTAS joined it with its own."""
        with self._deferred_lock:
            deferred, self._deferred = self._deferred, None
        if deferred is not None and deferred[1].column_lineage is None:
            self._read_lineage(*deferred)

    def _overwrite_mode(self) -> str:
        """The session's ``spark.sql.sources.partitionOverwriteMode`` (``static`` / ``dynamic``)."""
        conf = self._spark._jsparkSession.sessionState().conf()
        return str(conf.getConfString(PARTITION_OVERWRITE_MODE_CONF, "static")).lower()

    def _call_listener_manager(self, method_name: str) -> None:
        """``listenerManager().<method_name>(proxy)`` with the one Java proxy of our listener."""
        holder = self._proxy_holder
        if holder is None:
            raise RuntimeError("no listener proxy")
        manager = self._spark._jsparkSession.listenerManager()
        for method in manager.getClass().getMethods():
            if method.getName() == method_name and len(method.getParameterTypes()) == 1:
                method.invoke(manager, holder.toArray())
                return
        raise RuntimeError(f"ExecutionListenerManager.{method_name} not found")

    def _table_locations(self, node: JavaObject) -> tuple[str, ...]:
        """Where a CTAS's table keeps its files (explicit LOCATION, else the managed default path),
        so the nested file write that carried its data can be joined with it."""
        locations: list[str] = []
        for accessor in ("table", "tableDesc"):
            try:
                table = getattr(node, accessor)()
                location = opt(table.storage().locationUri())
                if location is not None:
                    locations.append(normalize_path(str(location.toString())))
                catalog = self._spark._jsparkSession.sessionState().catalog()
                locations.append(normalize_path(str(catalog.defaultTablePath(table.identifier()).toString())))
                break
            except Exception:
                continue
        return tuple(locations)

    def stop(self, timeout: float) -> None:
        try:
            if self._bus is not None:
                self._bus.waitUntilEmpty(int(max(timeout, 0.0) * 1000))
        except Exception as exc:
            self._warn(
                f"[spark writes] Spark's listener bus did not drain within {timeout:g}s; writes whose"
                f" events were still queued are not reported ({type(exc).__name__})"
            )
        finally:
            self._settle_deferred()
            try:
                uninstall_merge_hook(self)
            except Exception as exc:
                self._warn(f"[spark writes] could not restore DeltaMergeBuilder.execute: {exc}")
            self._tagger.stop()
            listener, self._listener = self._listener, None
            if listener is not None:
                try:
                    self._call_listener_manager("unregister")
                except Exception as exc:
                    self._warn(f"[spark writes] could not unregister the query listener: {exc}")
                self._proxy_holder = None

    def prepare(self, writes: list[SparkWrite]) -> None:
        """Nothing to do: the plans name tables fully qualified."""

    def enrich(self, writes: list[SparkWrite]) -> None:
        """Delta version and commit metrics from each Delta write's own commit (the tables' logs,
        else ``DESCRIBE HISTORY``); snapshot ids and counters from the ``snapshots`` table for
        Iceberg targets."""
        for write in writes:
            if write.is_delta and write.table and write.storage is None:
                write.storage = self._catalog_location(write.table)
        enrich_from_delta_history(
            writes,
            lambda query: list(self._spark.sql(query).collect()),
            probe_unknown=False,
            debug=self._debug,
            tag=self._tagger.tag,
            read_logs=lambda locations: read_commit_logs(self._spark, locations, self._tagger.started),
        )
        enrich_from_iceberg_snapshots(
            writes,
            lambda query: list(self._spark.sql(query).collect()),
            app_id=self._app_id,
            on_error=self._debug,
        )

    def _catalog_location(self, table: tuple[str, ...]) -> str | None:
        """Where a session-catalog table keeps its files (a catalog call, no query); ``None`` for
        tables of other catalogs (Unity Catalog reads go through ``DESCRIBE HISTORY``)."""
        parts = table[1:] if len(table) == 3 and table[0].lower() == "spark_catalog" else table
        if not 1 <= len(parts) <= 2:
            return None
        try:
            session_state = self._spark._jsparkSession.sessionState()
            ident = session_state.sqlParser().parseTableIdentifier(
                ".".join(quote_identifier(p) for p in parts)
            )
            location = opt(session_state.catalog().getTableMetadata(ident).storage().locationUri())
            return str(location.toString()) if location is not None else None
        except Exception:
            return None

    def application_id(self) -> str | None:
        return self._app_id
