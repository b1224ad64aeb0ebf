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
streamed DataFrame when its plan can change the number of rows (a filter, an aggregation, a join, a
generator, a limit, a dedup, ... or anything not recognised), so each progress report carries the rows
that reached the sink in that batch (``observedMetrics``; no extra job, as with batch writes on
Connect). A plan over one streaming source that only projects, renames, casts or repartitions writes
every row it reads: its reports' input rows are the rows written, and it is left unobserved (a
per-batch aggregation saved). ``_row_count`` decides from the plan, with no job: the analysed plan on
classic (py4j), the client plan on Spark Connect (no server round trip).

Both feed the same :class:`StreamRun` per query, which becomes one ``SparkWrite`` of its sink: rows
(the observed rows; failing that the sink's output rows when it counts them, else the batches' input
rows, as Spark reports them -- the rows written when the plan keeps the row count),
batches and batch ids, sources with their end offsets (a Delta source's ``reservoirVersion``),
durations, and whether the query was still running. A failed batch makes no progress report, so it is
never counted; the query's error is logged.

Delta sinks: each micro-batch is one ``STREAMING UPDATE`` commit whose ``operationParameters`` carry
the query id and the batch id (``epochId``). On exit one scan of the sinks' ``_delta_log`` commit files
(``_delta.read_commit_logs``: every Delta sink in one Spark job; a table sink located through the
catalog) finds the commits of the batches seen in the block (concurrent writers' commits never
match); ``DESCRIBE HISTORY`` per sink only where the logs cannot serve it: ``delta/version``
is the last one's version, files and bytes are summed over them. The generic Delta look-up of batch
writes (``_delta.enrich_from_delta_history``, one commit per write) is kept away from these writes.

``foreachBatch``: on classic sessions the batch function runs in this process, so what it writes
(``MERGE INTO``, ``DeltaTable.merge``, appends) is observed like any batch write of the block and
aggregated per asset (rows inserted / updated summed over the batches, the last commit's version); the
query itself is not reported. On Spark Connect the function runs on the server, out of sight: the
query's progress is reported against the asset its ``queryName`` maps to in ``assets=``.

Column lineage: when a query starts, the plan of the DataFrame ``writeStream`` was called on is kept
-- classic: its analysed plan printed (``treeString``, one py4j call, no job); Spark Connect: its client
plan, which the Connect backend explains on exit with the batch writes' plans (``EXPLAIN EXTENDED``,
no job) -- and read by ``_lineage`` like a batch write's: the streaming leaves (``StreamingRelation``
of a file source, a Delta path or table, ``StreamingRelationV2`` of ``rate`` / ``socket`` / Kafka...)
give each written column its source path or table columns, or none for sources that read no dataset.
A ``foreachBatch`` query has no lineage of its own. A plan that cannot be read gives no lineage and a
debug log, never an error.

One concept per module: ``_runs`` (a query's batches and its write), ``_delta_sink`` (a Delta sink's
commits), ``_capture`` (queries captured where they start), ``_row_count`` (whether a plan keeps the
row count), ``_listener`` (classic progress reports), ``_observer`` (one block's queries, on exit).
"""

from dagster_pipes_spark.spark._streaming._delta_sink import (
    DELTA_STREAMING_UPDATE,
    apply_stream_commits,
    stream_commits,
)
from dagster_pipes_spark.spark._streaming._observer import StreamingObserver, error_text
from dagster_pipes_spark.spark._streaming._runs import (
    OP_STREAM,
    ROWS_OBSERVATION,
    Batch,
    StreamRun,
    progress_batch,
    stream_write,
)

__all__ = [
    "DELTA_STREAMING_UPDATE",
    "OP_STREAM",
    "ROWS_OBSERVATION",
    "Batch",
    "StreamRun",
    "StreamingObserver",
    "apply_stream_commits",
    "error_text",
    "progress_batch",
    "stream_commits",
    "stream_write",
]
