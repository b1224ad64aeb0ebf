"""The observer of one block: the queries it started, their progress (listener or polling), and
what each wrote, on exit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._delta import (
    DeltaCommit,
    history_sql,
    log_key,
    parse_history_row,
    read_commit_logs,
)
from dagster_pipes_spark.spark._lineage import lineage_from_tree
from dagster_pipes_spark.spark._streaming._capture import install, uninstall
from dagster_pipes_spark.spark._streaming._delta_sink import apply_stream_commits, stream_commits
from dagster_pipes_spark.spark._streaming._listener import make_listener
from dagster_pipes_spark.spark._streaming._runs import Batch, StreamRun, progress_batch, stream_write
from dagster_pipes_spark.spark._targets import normalize_path, split_identifier
from dagster_pipes_spark.spark._write_record import SparkWrite

#: Seconds between two reads of ``recentProgress`` on Spark Connect.
_POLL_SECONDS = 3.0


class StreamingObserver:
    """Observes the streaming queries one ``report_spark_writes`` block starts on ``spark``."""

    def __init__(
        self,
        spark: Any,
        *,
        connect: bool,
        warn: Callable[[str], None],
        debug: Callable[[str], None],
        lineage: bool = True,
    ) -> None:
        self.spark = spark
        self.connect = connect
        #: read each query's column lineage from the streamed DataFrame's plan
        self.lineage = lineage
        self._warn = warn
        self._debug = debug
        self._runs: dict[str, StreamRun] = {}
        self._lock = threading.Lock()
        self._listener: Any = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._started = time.time()

    def owns_dataframe(self, df: Any) -> bool:
        """Whether ``df`` belongs to this observer's session."""
        session = getattr(df, "sparkSession", None)
        return session is None or self._same_session(session)

    def _same_session(self, session: Any) -> bool:
        if session is self.spark:
            return True
        ours = getattr(self.spark, "_jsparkSession", None)
        return ours is not None and getattr(session, "_jsparkSession", None) == ours

    # which writers are ours: the writer's DataFrame belongs to our session
    def owns(self, writer: Any) -> bool:
        """Whether ``writer`` writes a DataFrame of this observer's session."""
        df = getattr(writer, "_df", None)
        session = getattr(df, "sparkSession", None) if df is not None else None
        if session is None:
            session = getattr(writer, "_spark", None) or getattr(writer, "_session", None)
        if session is None:
            return True  # cannot tell: one session per job is the rule
        return self._same_session(session)

    def start(self) -> None:
        """Wrap the writers; on classic, listen to progress; on Connect, poll it."""
        self._started = time.time()
        install(self)
        if self.connect:
            self._poller = threading.Thread(target=self._poll, name="dagster-pipes-stream-poll", daemon=True)
            self._poller.start()
        else:
            self._listener = make_listener(self.progress)
            if self._listener is not None:
                try:
                    self.spark.streams.addListener(self._listener)
                except Exception as exc:
                    self._listener = None
                    self._debug(f"[spark writes] no streaming listener ({type(exc).__name__}: {exc})")

    def started(
        self, writer: Any, query: Any, api: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """A query started through ``writer.start`` / ``toTable``: record its sink."""
        notes = dict(writer.__dict__.get("_dagster_pipes_stream") or {})
        options = dict(notes.get("options") or {})
        run = StreamRun(query=query, api=api)
        run.format = kwargs.get("format") or notes.get("format")
        if api == "toTable":
            table = args[0] if args else kwargs.get("tableName")
            run.table = tuple(split_identifier(str(table))) if table else None
        else:
            path = args[0] if args else kwargs.get("path", options.get("path"))
            run.path = normalize_path(str(path)) if path else None
            if args[1:2] and run.format is None:
                run.format = args[1]
        run.name = kwargs.get("queryName") or notes.get("name")
        run.foreach_batch = bool(notes.get("foreach_batch"))
        if run.format is None and not run.foreach_batch:
            run.format = _default_format(self.spark)
        try:
            run.query_id, run.run_id = str(query.id), str(query.runId)
        except Exception:
            pass
        run.columns = notes.get("columns")
        if self.lineage and not run.foreach_batch:  # a foreachBatch function's writes have their own
            self._capture_plan(run, notes.get("dataframe") or getattr(writer, "_df", None))
        with self._lock:
            key = run.run_id or str(id(query))
            early = self._runs.get(key)  # progress the listener delivered before `start` returned
            if early is not None:
                run.batches.merge(early.batches)
            self._runs[key] = run

    def _capture_plan(self, run: StreamRun, df: Any) -> None:
        """Keep what the query's column lineage is read from: classic, the streamed DataFrame's
        analysed plan printed (one py4j call, no job); Spark Connect, its client plan. Never raises;
        an error is kept for the exit's debug log."""
        if df is None:
            return
        try:
            if self.connect or getattr(df, "_jdf", None) is None:
                run.plan = getattr(df, "_plan", None)
                return
            from dagster_pipes_spark.spark._classic._lineage import ALL_FIELDS, PATH_RELATION, path_relations

            analyzed = df._jdf.queryExecution().analyzed()
            run.plan_text = str(analyzed.treeString(False, False, ALL_FIELDS, False))
            run.plan_paths = path_relations(analyzed) if PATH_RELATION.search(run.plan_text) else {}
        except Exception as exc:
            run.plan_text = run.plan = None
            run.plan_error = f"{type(exc).__name__}: {str(exc).strip()[:200]}"

    def _lineage(self, run: StreamRun, write: SparkWrite) -> None:
        """The query's column lineage, as for a batch write of its DataFrame: read from the printed
        plan (classic), or the plan handed to the Connect backend, which explains it on exit."""
        if run.plan is not None:
            write.lineage_input = run.plan
            return
        if run.plan_error is not None:
            self._debug(f"[spark writes] no column lineage for {write.target}: no plan ({run.plan_error})")
        if run.plan_text is None:
            return
        columns = [name for name, _ in run.columns] if run.columns else None
        try:
            write.column_lineage = lineage_from_tree(run.plan_text, columns, run.plan_paths)
        except Exception as exc:  # pragma: no cover - the reader raises nothing it does not catch
            self._debug(f"[spark writes] reading the plan of streaming query {run.query_id} failed: {exc}")
        if write.column_lineage is None:
            self._debug(f"[spark writes] no column lineage for {write.target}: plan not understood")

    def progress(self, run_id: str, batch: Batch | None) -> None:
        """A progress report of the query run ``run_id`` (from the listener or a poll)."""
        if batch is None:
            return
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:  # the listener can be faster than `start` returning: keep it for later
                run = self._runs.setdefault(run_id, StreamRun(query=None, api="?", run_id=run_id))
            run.add(batch)

    def _poll(self) -> None:
        while not self._stop.wait(_POLL_SECONDS):
            self._read_progress()

    def _read_progress(self) -> None:
        with self._lock:
            runs = [r for r in self._runs.values() if r.query is not None]
        for run in runs:
            try:
                for p in self._unseen_progress(run):
                    self.progress(run.run_id or "", progress_batch(p))
            except Exception as exc:
                self._debug(f"[spark writes] reading the progress of query {run.query_id} failed: {exc}")

    def _unseen_progress(self, run: StreamRun) -> list[Any]:
        """The query's recent progress reports the observer may not have seen. Classic: none when the
        listener already has the last batch; else each report as one JSON string (pyspark's own
        ``recentProgress`` converts a report with dozens of py4j calls: seconds for 50 batches)."""
        jsq = getattr(run.query, "_jsq", None)
        if self.connect or jsq is None:
            return list(run.query.recentProgress or [])
        last = jsq.lastProgress()
        if last is None or int(last.batchId()) in run.batches:
            return []
        return [str(report.json()) for report in jsq.recentProgress()]

    def _qualified(self, parts: tuple[str, ...]) -> tuple[str, ...]:
        """A ``toTable`` name qualified with the session's current catalog and database, as the
        classic listener names the tables of batch writes."""
        if len(parts) >= 3:
            return parts
        try:
            catalog = str(self.spark.catalog.currentCatalog())
            if len(parts) == 1:
                return (catalog, str(self.spark.catalog.currentDatabase()), *parts)
            return (catalog, *parts)
        except Exception:
            return parts

    def _delta_sinks(self, sinks: list[tuple[StreamRun, SparkWrite]]) -> None:
        """Version and counters of every Delta sink's batches: all sinks' commits read from their
        tables' logs in one Spark job (``_delta.read_commit_logs``; a table sink's location from the
        catalog, one statement per namespace); a sink the logs cannot serve (no location, fewer
        commits found than batches, the read failing) reads its ``DESCRIBE HISTORY``."""
        if not sinks:
            return
        from dagster_pipes_spark.spark._connect._catalog import table_locations

        tables = [run.table for run, _ in sinks if run.table and not run.path]
        try:
            located = dict(zip(tables, table_locations(self.spark, tables), strict=True)) if tables else {}
        except Exception:
            located = {}
        locations = {
            id(run): loc
            for run, _ in sinks
            if (loc := run.path or (located.get(run.table) if run.table else None))
        }
        found: dict[str, list[DeltaCommit]] = {}
        if locations:
            try:
                found = read_commit_logs(self.spark, list(set(locations.values())), self._started)
            except Exception as exc:
                self._debug(
                    f"[spark writes] Delta sinks' logs unreadable ({type(exc).__name__}); DESCRIBE HISTORY each"
                )
        for run, write in sinks:
            location = locations.get(id(run))
            if location is not None and run.query_id is not None and run.batches:
                commits = stream_commits(found.get(log_key(location), []), run.query_id, run.batches.ids)
                if len(commits) == len(run.batches):
                    apply_stream_commits(
                        write, commits, len(run.batches), run.batches.observed_rows is not None
                    )
                    continue
            self._delta_sink(run, write)

    def _delta_sink(self, run: StreamRun, write: SparkWrite) -> None:
        """Version and counters of a Delta sink's batches from one ``DESCRIBE HISTORY``."""
        if not run.batches or run.query_id is None or not (run.table or run.path):
            apply_stream_commits(write, [], 0)
            return
        limit = 2 * len(run.batches) + 20  # room for other writers' commits in between
        try:
            rows = self.spark.sql(history_sql(run.table, None if run.table else run.path, limit)).collect()
        except Exception as exc:
            apply_stream_commits(write, [], 0)
            text = str(exc).strip()
            self._debug(
                f"[spark writes] DESCRIBE HISTORY for the Delta sink {write.target} failed:"
                f" {type(exc).__name__}: {text.splitlines()[0] if text else ''}"
            )
            return
        commits = [c for c in (parse_history_row(r) for r in rows) if c is not None]
        found = stream_commits(commits, run.query_id, run.batches.ids)
        if len(found) < len(run.batches):
            self._debug(
                f"[spark writes] Delta sink {write.target}: {len(found)} of {len(run.batches)} batch"
                " commits found in its recent history"
            )
        observed = run.batches.observed_rows is not None
        apply_stream_commits(write, found, len(run.batches), observed)

    def stop(self, timeout: float) -> list[SparkWrite]:
        """Stop observing; one ``SparkWrite`` per query started in the block. Must not raise."""
        uninstall(self)
        self._stop.set()
        writes: list[SparkWrite] = []
        try:
            self._read_progress()  # what the listener or the poller may not have seen yet
            if self._listener is not None:
                try:
                    self.spark.streams.removeListener(self._listener)
                except Exception:
                    pass
            with self._lock:
                runs = [r for r in self._runs.values() if r.query is not None]
            sinks: list[tuple[StreamRun, SparkWrite]] = []
            for run in runs:
                active, error = _state(run.query)
                if error:
                    self._warn(
                        f"[spark writes] streaming query {run.name or run.query_id} failed: {error}; "
                        f"its {len(run.batches)} completed micro-batch(es) are reported, the failed one is not"
                    )
                if run.foreach_batch:
                    if not self.connect:
                        self._debug(
                            f"[spark writes] foreachBatch query {run.name or run.query_id}: the writes its "
                            "function makes are reported as batch writes of their targets"
                        )
                        continue
                    if not run.name:
                        self._warn(
                            f"[spark writes] foreachBatch query {run.query_id} not reported: on Spark Connect "
                            "its function runs on the server, out of sight; name the query "
                            "(.queryName('...')) and map that name to its asset in assets="
                        )
                        continue
                    run.table = (run.name,)  # resolved through assets= like a table name
                if run.table and not run.foreach_batch and not self.connect:
                    run.table = self._qualified(run.table)  # Connect qualifies in ``prepare``
                write = stream_write(run, active, error)
                if not run.foreach_batch:
                    self._lineage(run, write)
                if write.is_delta and not run.foreach_batch:
                    sinks.append((run, write))
                writes.append(write)
            self._delta_sinks(sinks)
        except Exception as exc:
            self._warn(f"[spark writes] reading streaming queries failed: {type(exc).__name__}: {exc}")
        return writes


def _state(query: Any) -> tuple[bool, str | None]:
    """Whether the query is still running, and its error if it failed."""
    try:
        active = bool(query.isActive)
    except Exception:
        active = False
    error = None
    if not active:
        try:
            exc = query.exception()
            if exc is not None:
                error = error_text(str(getattr(exc, "desc", None) or exc))
        except Exception:
            pass
    return active, error


def error_text(raw: str) -> str:
    """A query's error in one line: its first line, and the root cause when the error wraps one
    (Spark 3.5 wraps a failed batch's error in the job's: ``Caused by: ...`` further down)."""
    lines = [line.strip() for line in raw.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    head = " ".join(lines[0].split())
    causes = [line[len("Caused by:") :].strip() for line in lines[1:] if line.startswith("Caused by:")]
    if causes and causes[-1] not in head:
        return f"{head[:300]} (caused by: {' '.join(causes[-1].split())[:200]})"
    return " ".join(" ".join(lines).split())[:500]


def _default_format(spark: Any) -> str | None:
    try:
        return str(spark.conf.get("spark.sql.sources.default", "parquet"))
    except Exception:
        return None
