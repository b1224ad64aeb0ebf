"""A Delta sink's own commits: one ``STREAMING UPDATE`` per micro-batch, found by query and batch id."""

from __future__ import annotations

from dagster_pipes_spark.spark._delta import DeltaCommit
from dagster_pipes_spark.spark._write_record import SparkWrite

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
