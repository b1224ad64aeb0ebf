"""One streaming query's micro-batches, read from its progress reports, and the write they make."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dagster_pipes_spark.spark._write_record import SparkWrite

#: The operation name of a streaming query's writes.
OP_STREAM = "STREAMING WRITE"
#: Prefix of the observation that counts the rows of each micro-batch.
ROWS_OBSERVATION = "__dagster_pipes_stream_rows"


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
class Batches:
    """A query's completed micro-batches folded as their reports arrive (what the report needs, not
    every report: memory stays flat over thousands of batches). A batch id seen again (the
    listener and a poll both deliver it) counts once."""

    ids: set[int] = field(default_factory=set)
    input_rows: int = 0
    #: rows counted by the observation / by the sink, summed; None once a batch did not say
    observed_rows: int | None = 0
    output_rows: int | None = 0
    duration_ms: int = 0
    #: each source's end offset as of the latest batch that named it: (batch id, offset)
    sources: dict[str, tuple[int, Any]] = field(default_factory=dict)
    sink: tuple[int, str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self.ids

    def add(self, batch: Batch) -> None:
        """Fold one completed batch in (once per batch id)."""
        if batch.batch_id in self.ids:
            return
        self.ids.add(batch.batch_id)
        self.input_rows += batch.input_rows
        self.observed_rows = (
            None
            if self.observed_rows is None or batch.observed_rows is None
            else self.observed_rows + batch.observed_rows
        )
        self.output_rows = (
            None
            if self.output_rows is None or batch.output_rows is None
            else self.output_rows + batch.output_rows
        )
        self.duration_ms += batch.duration_ms or 0
        for source in batch.sources:
            key = str(source["description"])
            if key not in self.sources or self.sources[key][0] < batch.batch_id:
                self.sources[key] = (batch.batch_id, source["endOffset"])
        if batch.sink and (self.sink is None or self.sink[0] < batch.batch_id):
            self.sink = (batch.batch_id, batch.sink)

    def merge(self, other: Batches) -> None:
        """Fold in batches recorded apart (progress delivered before the query's start returned)."""
        if not other.ids:
            return
        if not self.ids:
            self.__dict__.update(
                {
                    k: (set(v) if isinstance(v, set) else dict(v) if isinstance(v, dict) else v)
                    for k, v in other.__dict__.items()
                }
            )
            return
        new = other.ids - self.ids
        if new != other.ids:  # overlapping: totals cannot be split per batch; keep ours, add the ids
            self.ids |= other.ids
            return
        self.ids |= other.ids
        self.input_rows += other.input_rows
        for attr in ("observed_rows", "output_rows"):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, None if mine is None or theirs is None else mine + theirs)
        self.duration_ms += other.duration_ms
        for key, value in other.sources.items():
            if key not in self.sources or self.sources[key][0] < value[0]:
                self.sources[key] = value
        if other.sink and (self.sink is None or self.sink[0] < other.sink[0]):
            self.sink = other.sink


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
    batches: Batches = field(default_factory=Batches)
    #: classic: the streamed DataFrame's analysed plan, printed when the query started, and the paths
    #: of the batch file relations it joins (attribute id -> path)
    plan_text: str | None = None
    plan_paths: dict[int, str] | None = None
    #: Spark Connect: the streamed DataFrame's client plan (explained on exit with the batch writes')
    plan: Any = None
    #: why the plan could not be kept (logged on exit: the start hook does not talk to Pipes)
    plan_error: str | None = None

    def add(self, batch: Batch) -> None:
        """Record a progress report (folded into the query's totals)."""
        self.batches.add(batch)


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
    batches = run.batches
    rows = batches.input_rows
    for counted in (batches.observed_rows, batches.output_rows):
        if counted is not None and len(batches):
            rows = counted
            break
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
    ids = sorted(batches.ids)
    write.streaming = {
        "spark/streaming_batches": len(batches),
        "spark/streaming_batch_ids": [ids[0], ids[-1]] if ids else [],
        "spark/streaming_input_rows": batches.input_rows,
        "spark/streaming_sources": [
            {"description": d, "end_offset": o} for d, (_, o) in sorted(batches.sources.items())
        ],
        "spark/streaming_sink": batches.sink[1] if batches.sink else None,
        "spark/streaming_duration_ms": batches.duration_ms,
        "spark/streaming_active": active,
        "spark/streaming_query_id": run.query_id,
        "spark/streaming_query_name": run.name,
        "spark/streaming_foreach_batch": run.foreach_batch,
    }
    if error:
        write.streaming["spark/streaming_error"] = error
    return write
