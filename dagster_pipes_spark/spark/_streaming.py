"""Structured Streaming: what the streaming queries started inside ``report_spark_writes`` wrote.

Queries are captured where they start: ``DataStreamWriter.start`` and ``toTable`` are wrapped (classic
and Spark Connect writers alike) while a block is open, recording the sink (table or path), its format,
``foreachBatch``, the query name and the schema written. Their micro-batches come from the progress
reports Spark makes after each completed batch:

* classic: a ``StreamingQueryListener`` on the session receives every report, so nothing is missed
  however many batches run (``recentProgress`` keeps only the last 100);
* Spark Connect: listeners run on the server, so the client reads each query's ``recentProgress`` — in
  the background every few seconds while the block runs, and once more on exit.

While a block is open, ``DataFrame.writeStream`` also adds a named observation (``count(1)``) to the
streamed DataFrame, so each progress report carries the rows that reached the sink in that batch
(``observedMetrics``; no extra job, as with batch writes on Connect).

Both feed the same :class:`StreamRun` per query, which becomes one ``SparkWrite`` of its sink: rows
(the observed rows; failing that the sink's output rows when it counts them, else the batches' input
rows, as Spark reports them),
batches and batch ids, sources with their end offsets (a Delta source's ``reservoirVersion``),
durations, and whether the query was still running. A failed batch makes no progress report, so it is
never counted; the query's error is logged.

Delta sinks: each micro-batch is one ``STREAMING UPDATE`` commit whose ``operationParameters`` carry
the query id and the batch id (``epochId``). On exit one ``DESCRIBE HISTORY`` per Delta sink finds the
commits of the batches seen in the block (concurrent writers' commits never match): ``delta/version``
is the last one's version, files and bytes are summed over them. The generic Delta look-up of batch
writes (``_delta.enrich_from_delta_history``, one commit per write) is kept away from these writes.

``foreachBatch``: on classic sessions the batch function runs in this process, so what it writes
(``MERGE INTO``, ``DeltaTable.merge``, appends) is observed like any batch write of the block and
aggregated per asset (rows inserted / updated summed over the batches, the last commit's version); the
query itself is not reported. On Spark Connect the function runs on the server, out of sight: the
query's progress is reported against the asset its ``queryName`` maps to in ``assets=``.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dagster_pipes_spark.spark._delta import DeltaCommit, history_sql, parse_history_row
from dagster_pipes_spark.spark._record import SparkWrite
from dagster_pipes_spark.spark._targets import normalize_path, split_identifier

#: The operation name of a streaming query's writes.
OP_STREAM = "STREAMING WRITE"
#: Seconds between two reads of ``recentProgress`` on Spark Connect.
_POLL_SECONDS = 3.0
#: Prefix of the observation that counts the rows of each micro-batch.
ROWS_OBSERVATION = "__dagster_pipes_stream_rows"
_observation_ids = iter(range(1, 1 << 62))


@dataclass
class Batch:
    """One completed micro-batch, from its progress report."""

    batch_id: int
    input_rows: int
    output_rows: int | None
    observed_rows: int | None
    duration_ms: int | None
    timestamp: str | None
    sources: list[dict[str, Any]]
    sink: str | None


@dataclass
class StreamRun:
    """A streaming query started inside the block, and the batches it completed there."""

    query: Any
    api: str
    table: tuple[str, ...] | None = None
    path: str | None = None
    format: str | None = None
    foreach_batch: bool = False
    name: str | None = None
    query_id: str | None = None
    #: the run id: a restart on the same checkpoint keeps the query id, not the run id
    run_id: str | None = None
    columns: list[tuple[str, str]] | None = None
    batches: dict[int, Batch] = field(default_factory=dict)

    def add(self, batch: Batch) -> None:
        """Record a progress report (the latest report of a batch id wins)."""
        self.batches[batch.batch_id] = batch


def progress_batch(progress: Any) -> Batch | None:
    """A :class:`Batch` from a progress report: a ``StreamingQueryProgress`` (pyspark 4, classic and
    Connect) or its dict form (pyspark 3.5 ``recentProgress``, listener events' ``json``)."""
    if progress is None:
        return None
    if isinstance(progress, str):
        progress = json.loads(progress)

    def get(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    batch_id = get(progress, "batchId")
    if batch_id is None:
        return None
    sources = []
    for source in get(progress, "sources") or []:
        sources.append(
            {
                "description": get(source, "description"),
                "endOffset": _offset(get(source, "endOffset")),
                "numInputRows": get(source, "numInputRows"),
            }
        )
    input_rows = get(progress, "numInputRows")
    if input_rows is None:
        input_rows = sum(int(s["numInputRows"] or 0) for s in sources)
    sink = get(progress, "sink")
    output_rows = get(sink, "numOutputRows") if sink is not None else None
    observed_rows = None
    observed = get(progress, "observedMetrics") or {}
    for name, row in dict(observed).items():
        if str(name).startswith(ROWS_OBSERVATION):
            value = _metric(row, "rows")
            observed_rows = int(value) if value is not None else None
    duration = get(progress, "durationMs")
    total = get(duration, "triggerExecution") if duration is not None else None
    return Batch(
        batch_id=int(batch_id),
        input_rows=int(input_rows or 0),
        output_rows=int(output_rows) if output_rows is not None and int(output_rows) >= 0 else None,
        observed_rows=observed_rows,
        duration_ms=int(total) if total is not None else None,
        timestamp=get(progress, "timestamp"),
        sources=sources,
        sink=get(sink, "description") if sink is not None else None,
    )


def _metric(row: Any, name: str) -> Any:
    """A field of an observed-metrics row: a ``Row``, a dict, or the JSON form Spark Connect sends
    (``{"values": [...], "schema": {"fields": [{"name": ...}, ...]}}``, also as a ``Row`` of those two)."""
    if hasattr(row, "asDict"):
        row = row.asDict()
    if isinstance(row, dict):
        if "values" in row and isinstance(row.get("schema"), dict):
            names = [f.get("name") for f in row["schema"].get("fields", [])]
            return dict(zip(names, row["values"], strict=False)).get(name)
        return row.get(name)
    return getattr(row, name, None)


def _offset(value: Any) -> Any:
    """Offsets arrive as JSON text (Connect / listener objects) or as parsed JSON (dicts)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def stream_write(run: StreamRun, active: bool, error: str | None) -> SparkWrite:
    """The ``SparkWrite`` a query's batches amount to (``streaming`` holds the streaming metadata)."""
    batches = [run.batches[i] for i in sorted(run.batches)]
    rows = sum(b.input_rows for b in batches)
    for counted in ([b.observed_rows for b in batches], [b.output_rows for b in batches]):
        if all(r is not None for r in counted):
            rows = sum(int(r or 0) for r in counted)
            break
    last_sources: dict[str, Any] = {}
    for b in batches:
        for s in b.sources:
            last_sources[str(s["description"])] = s["endOffset"]
    write = SparkWrite(
        operation=OP_STREAM,
        table=run.table,
        path=run.path,
        format=run.format,
        rows=rows,
        columns=run.columns,
        is_delta=(run.format or "").lower() == "delta" or None,
        api=run.api,
    )
    write.streaming = {
        "spark/streaming_batches": len(batches),
        "spark/streaming_batch_ids": [batches[0].batch_id, batches[-1].batch_id] if batches else [],
        "spark/streaming_input_rows": sum(b.input_rows for b in batches),
        "spark/streaming_sources": [
            {"description": d, "end_offset": o} for d, o in sorted(last_sources.items())
        ],
        "spark/streaming_sink": next((b.sink for b in reversed(batches) if b.sink), None),
        "spark/streaming_duration_ms": sum(b.duration_ms or 0 for b in batches),
        "spark/streaming_active": active,
        "spark/streaming_query_id": run.query_id,
        "spark/streaming_query_name": run.name,
        "spark/streaming_foreach_batch": run.foreach_batch,
    }
    if error:
        write.streaming["spark/streaming_error"] = error
    return write


#: Delta's operation name of a streaming sink's commit (``DeltaOperations.StreamingUpdate``).
DELTA_STREAMING_UPDATE = "STREAMING UPDATE"


def stream_commits(commits: list[DeltaCommit], query_id: str, batch_ids: set[int]) -> list[DeltaCommit]:
    """The ``STREAMING UPDATE`` commits of query ``query_id``'s batches ``batch_ids``, oldest first
    (one per batch: a batch retried after a failure commits once, Delta skips a committed batch)."""
    found: dict[int, DeltaCommit] = {}
    for commit in commits:
        if commit.operation.upper() != DELTA_STREAMING_UPDATE:
            continue
        if commit.parameters.get("queryId") != query_id:
            continue
        try:
            epoch = int(commit.parameters.get("epochId", ""))
        except ValueError:
            continue
        if epoch in batch_ids and (epoch not in found or commit.version > found[epoch].version):
            found[epoch] = commit
    return sorted(found.values(), key=lambda c: c.version)


def apply_stream_commits(
    write: SparkWrite, commits: list[DeltaCommit], batches: int, rows_observed: bool = True
) -> None:
    """A Delta sink's write from its batches' commits: the last version, files and bytes summed, and
    the rows the commits counted when not every batch's rows were observed."""
    write.is_delta = False  # counters from here: not from the per-write history look-up
    write.format = "delta"
    if not commits:
        return
    last = commits[-1]
    write.delta_version = last.version
    for attr in ("files", "bytes"):
        values = [getattr(c, attr) for c in commits]
        if all(v is not None for v in values):
            setattr(write, attr, sum(v or 0 for v in values))
    if write.streaming is not None:
        write.streaming["spark/streaming_delta_commits"] = len(commits)
    if not rows_observed and len(commits) == batches:
        rows = [c.metrics.get("numOutputRows") for c in commits]
        if all(r is not None for r in rows):
            write.rows = sum(r or 0 for r in rows)


# --- capturing queries where they start ------------------------------------------------------------

_LOCK = threading.RLock()
_OBSERVERS: list[StreamingObserver] = []
_PATCHES: list[tuple[type, str, Any, Any]] = []


def _writer_classes() -> list[type]:
    classes: list[type] = []
    try:
        from pyspark.sql.streaming.readwriter import DataStreamWriter

        classes.append(DataStreamWriter)
    except ImportError:  # pragma: no cover - pyspark without streaming
        pass
    try:
        from pyspark.sql.connect.streaming.readwriter import DataStreamWriter as ConnectWriter

        classes.append(ConnectWriter)
    except ImportError:  # no Connect extras installed
        pass
    return classes


def _note(writer: Any, key: str, value: Any) -> None:
    notes = writer.__dict__.setdefault("_dagster_pipes_stream", {})
    notes[key] = value


def _wrap_setter(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        try:
            if name == "format" and args:
                _note(self, "format", str(args[0]))
            elif name == "option" and len(args) >= 2:
                self.__dict__.setdefault("_dagster_pipes_stream", {}).setdefault("options", {})[
                    str(args[0]).lower()
                ] = args[1]
            elif name == "options":
                opts = self.__dict__.setdefault("_dagster_pipes_stream", {}).setdefault("options", {})
                opts.update({str(k).lower(): v for k, v in kwargs.items()})
            elif name == "queryName" and args:
                _note(self, "name", str(args[0]))
            elif name in ("foreachBatch", "foreach"):
                _note(self, "foreach_batch", True)
        except Exception:
            pass
        return result

    return wrapper


def _wrap_start(original: Callable[..., Any], api: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        query = original(self, *args, **kwargs)
        try:
            with _LOCK:
                observers = [o for o in _OBSERVERS if o.owns(self)]
            for observer in observers:
                observer.started(self, query, api, args, kwargs)
        except Exception:
            pass
        return query

    return wrapper


def _dataframe_classes() -> list[type]:
    classes: list[type] = []
    for module in ("pyspark.sql.classic.dataframe", "pyspark.sql.dataframe", "pyspark.sql.connect.dataframe"):
        try:
            cls = __import__(module, fromlist=["DataFrame"]).DataFrame
        except ImportError:
            continue
        if isinstance(cls.__dict__.get("writeStream"), property) and cls not in classes:
            classes.append(cls)
    return classes


def _functions_for(df: Any) -> Any:
    """The functions module that builds columns for ``df``: Spark Connect's for a Connect DataFrame
    (``pyspark.sql.functions`` builds classic columns when the process also hosts a classic session,
    e.g. a local Connect server), else the classic one."""
    if type(df).__module__.startswith("pyspark.sql.connect"):
        try:
            from pyspark.sql.connect.functions import builtin
        except ImportError:  # Spark 3.5: a module, not a package
            from pyspark.sql.connect import functions as connect_functions

            return connect_functions
        return builtin
    from pyspark.sql import functions

    return functions


def _wrap_write_stream(original: property) -> property:
    getter = original.fget
    assert getter is not None

    def write_stream(df: Any) -> Any:
        with _LOCK:
            observers = [o for o in _OBSERVERS if o.owns_dataframe(df)]
        if not observers:
            return getter(df)
        target, name = df, None
        try:
            sf = _functions_for(df)
            name = f"{ROWS_OBSERVATION}_{next(_observation_ids)}"
            target = df.observe(name, sf.count(sf.lit(1)).alias("rows"))
        except Exception:
            target, name = df, None
        writer = getter(target)
        try:
            _note(writer, "observation", name)
            _note(writer, "columns", [(f.name, f.dataType.simpleString()) for f in df.schema.fields])
        except Exception:
            pass
        return writer

    return property(write_stream, doc=original.__doc__)


def _install(observer: StreamingObserver) -> None:
    with _LOCK:
        if not _PATCHES:
            patches: list[tuple[type, str, Any, Any]] = []
            for cls in _dataframe_classes():
                prop = cls.__dict__["writeStream"]
                patches.append((cls, "writeStream", prop, _wrap_write_stream(prop)))
            for cls in _writer_classes():
                for name in ("format", "option", "options", "queryName", "foreachBatch", "foreach"):
                    if (method := cls.__dict__.get(name)) is not None:
                        patches.append((cls, name, method, _wrap_setter(method, name)))
                for name in ("start", "toTable"):
                    if (method := cls.__dict__.get(name)) is not None:
                        patches.append((cls, name, method, _wrap_start(method, name)))
            for cls, name, original, wrapper in patches:
                setattr(cls, name, wrapper)
                _PATCHES.append((cls, name, original, wrapper))
        _OBSERVERS.append(observer)


def _uninstall(observer: StreamingObserver) -> None:
    with _LOCK:
        if observer in _OBSERVERS:
            _OBSERVERS.remove(observer)
        if _OBSERVERS:
            return
        for cls, name, original, wrapper in reversed(_PATCHES):
            if cls.__dict__.get(name) is wrapper:
                setattr(cls, name, original)
        _PATCHES.clear()


# --- the observer ---------------------------------------------------------------------------------


class StreamingObserver:
    """Observes the streaming queries one ``report_spark_writes`` block starts on ``spark``."""

    def __init__(
        self,
        spark: Any,
        *,
        connect: bool,
        warn: Callable[[str], None],
        debug: Callable[[str], None],
    ) -> None:
        self.spark = spark
        self.connect = connect
        self._warn = warn
        self._debug = debug
        self._runs: dict[str, StreamRun] = {}
        self._lock = threading.Lock()
        self._listener: Any = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

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
        _install(self)
        if self.connect:
            self._poller = threading.Thread(target=self._poll, name="dagster-pipes-stream-poll", daemon=True)
            self._poller.start()
        else:
            self._listener = _make_listener(self)
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
        with self._lock:
            key = run.run_id or str(id(query))
            early = self._runs.get(key)  # progress the listener delivered before `start` returned
            if early is not None:
                run.batches.update(early.batches)
            self._runs[key] = run

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
        found = stream_commits(commits, run.query_id, set(run.batches))
        if len(found) < len(run.batches):
            self._debug(
                f"[spark writes] Delta sink {write.target}: {len(found)} of {len(run.batches)} batch"
                " commits found in its recent history"
            )
        observed = all(b.observed_rows is not None for b in run.batches.values())
        apply_stream_commits(write, found, len(run.batches), observed)

    def stop(self, timeout: float) -> list[SparkWrite]:
        """Stop observing; one ``SparkWrite`` per query started in the block. Must not raise."""
        _uninstall(self)
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
                if write.is_delta and not run.foreach_batch:
                    self._delta_sink(run, write)
                writes.append(write)
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


class _JsonProgressListener:
    """The py4j side of the classic listener (``PythonStreamingQueryListener``): each progress report
    crosses over as ONE call (``progress().json()``), parsed here, instead of the dozens of py4j calls
    (and a cloudpickle per observed metric) pyspark's own event conversion makes, which on a busy
    driver lets the listener bus fall behind and the block's exit wait for it."""

    def __init__(self, observer: StreamingObserver) -> None:
        self._observer = observer

    def onQueryStarted(self, jevent: Any) -> None:  # noqa: N802 - Spark's callback names
        pass

    def onQueryProgress(self, jevent: Any) -> None:  # noqa: N802
        try:
            data = json.loads(str(jevent.progress().json()))
            self._observer.progress(str(data.get("runId")), progress_batch(data))
        except Exception:
            pass

    def onQueryIdle(self, jevent: Any) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, jevent: Any) -> None:  # noqa: N802
        pass

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]


def _make_listener(observer: StreamingObserver) -> Any:
    """A classic ``StreamingQueryListener`` that hands every progress report to ``observer`` (through
    :class:`_JsonProgressListener`, registered by ``spark.streams.addListener`` as pyspark's own)."""
    try:
        from pyspark.sql.streaming import StreamingQueryListener
    except ImportError:  # pragma: no cover
        return None

    class _Listener(StreamingQueryListener):
        def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's callback names
            pass

        def onQueryProgress(self, event: Any) -> None:  # noqa: N802
            pass  # the JVM calls _JsonProgressListener, never this

        def onQueryIdle(self, event: Any) -> None:  # noqa: N802
            pass

        def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
            pass

        @property
        def _jlistener(self) -> Any:  # what addListener / removeListener hand to the JVM
            wrapper = self.__dict__.get("_dagster_pipes_jlistener")
            if wrapper is None:
                from pyspark import SparkContext

                jvm: Any = SparkContext._jvm
                wrapper = jvm.PythonStreamingQueryListenerWrapper(_JsonProgressListener(observer))
                self.__dict__["_dagster_pipes_jlistener"] = wrapper
            return wrapper

    return _Listener()
