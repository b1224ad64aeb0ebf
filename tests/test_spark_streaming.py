"""Structured Streaming through real Dagster: what the queries started inside ``report_spark_writes``
wrote, on classic sessions (listener) and Spark Connect (progress read from the client), with real
Delta Lake sources and sinks (the pinned jars of ``.ci/jars/spark40.txt``).

One run per mechanism of ``spark_scripts/streaming_job.py`` (see its docstring for the scenarios),
both started together; the numbers asserted are the data's: 4 files x 10 rows, half of them with an
even ``v``, a failing second batch of 5 rows; Delta figures are compared with the tables' own
``DESCRIBE HISTORY``. ``test_streaming_runtime_matrix.py`` runs the same checks in the Spark 3.5
runtime."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import TESTS, RunResult, run_pipes
from test_delta_hooks import table_format_jars

from dagster_pipes_spark.spark._delta import DeltaCommit
from dagster_pipes_spark.spark._record import SparkWrite
from dagster_pipes_spark.spark._streaming import (
    Batch,
    StreamRun,
    apply_stream_commits,
    error_text,
    progress_batch,
    stream_commits,
    stream_write,
)

JOB = TESTS / "spark_scripts" / "streaming_job.py"
ASSETS = [
    "stream_files",
    "stream_filtered",
    "stream_rate",
    "stream_nodata",
    "stream_fail",
    "stream_fb",
    "stream_delta_sink",
    "stream_delta_path",
    "stream_merge",
]
pytestmark = pytest.mark.timeout(900)  # one Spark run per mechanism, on a loaded machine


def _run(mechanism: str, jars: list[str]) -> tuple[str, RunResult]:
    tmp = tempfile.mkdtemp(prefix=f"pipes-streaming-{mechanism}-")
    result = run_pipes(
        JOB, assets=ASSETS, extras={"mechanism": mechanism, "tmp": tmp, "jars": ",".join(jars)}
    )
    if not result.success:
        stacks = os.path.join(tmp, "stacks.txt")
        print(result.failure, "\n".join(m for _, m in result.logs[-40:]), open(stacks).read())
    assert result.success, result.failure
    return mechanism, result


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[str, RunResult]]:
    """The classic and the Connect run, started together (most of a run is Spark start-up)."""
    jars = [j for j in table_format_jars("spark40") if not os.path.basename(j).startswith("iceberg")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {m: pool.submit(_run, m, jars) for m in ("classic", "connect")}
        return {m: f.result() for m, f in futures.items()}


@pytest.fixture(params=["classic", "connect"])
def run(request: pytest.FixtureRequest, runs: dict[str, tuple[str, RunResult]]) -> tuple[str, RunResult]:
    return runs[request.param]


def _meta(result: RunResult, key: str) -> dict[str, Any]:
    assert key in result.materializations, sorted(result.materializations)
    return {k: getattr(v, "value", v) for k, v in result.materializations[key].metadata.items()}


def test_available_now_over_files_reports_every_batch_and_row(run):
    _, result = run
    meta = _meta(result, "stream_files")
    assert meta["dagster/row_count"] == 40
    assert meta["spark/streaming_batches"] == 4
    assert meta["spark/streaming_batch_ids"] == [0, 3]
    assert meta["spark/streaming_active"] is False
    [source] = meta["spark/streaming_sources"]
    assert source["description"].startswith("FileStreamSource[") and source["end_offset"] == {"logOffset": 3}
    assert meta["spark/streaming_sink"].startswith("FileSink[")
    assert meta["dagster/storage_kind"] == "parquet"
    assert [
        c.name
        for c in result.materializations["stream_files"].metadata["dagster/column_schema"].schema.columns
    ] == [
        "id",
        "v",
    ]
    [custom] = result.custom_messages
    assert custom["files_rows"] == 40


def test_a_filtered_query_reports_the_rows_written_not_read(run):
    _, result = run
    meta = _meta(result, "stream_filtered")
    assert meta["dagster/row_count"] == 20 == result.custom_messages[0]["filtered_rows"]
    assert meta["spark/streaming_input_rows"] == 40
    assert meta["dagster/table_name"].endswith("stream_filtered")


def test_a_query_still_running_reports_its_completed_batches(run):
    _, result = run
    meta = _meta(result, "stream_rate")
    assert meta["spark/streaming_active"] is True
    assert meta["spark/streaming_batches"] >= 3
    first, last = meta["spark/streaming_batch_ids"]
    assert last - first + 1 == meta["spark/streaming_batches"]
    assert meta["dagster/row_count"] >= 0
    assert meta["spark/streaming_sources"][0]["description"].startswith("RateStream")


def test_a_query_with_no_new_data_is_still_a_materialization_of_zero_rows(run):
    _, result = run
    meta = _meta(result, "stream_nodata")
    assert meta["dagster/row_count"] == 0


def test_a_failing_query_reports_its_completed_batches_and_logs_the_error(run):
    _, result = run
    meta = _meta(result, "stream_fail")
    assert meta["dagster/row_count"] == 5 == result.custom_messages[0]["fail_rows"]
    assert meta["spark/streaming_batches"] == 1
    assert "v is too large" in meta["spark/streaming_error"]
    assert any("streaming query" in m and "failed" in m for _, m in result.logs), result.logs


def test_foreach_batch_is_reported_against_the_named_asset(run):
    mechanism, result = run
    meta = _meta(result, "stream_fb")
    assert meta["dagster/row_count"] == 40 == result.custom_messages[0]["fb_rows"]
    if mechanism == "connect":  # the function runs on the server: the query's progress, by its name
        assert meta["spark/streaming_batches"] == 2
        assert meta["spark/streaming_foreach_batch"] is True
    else:  # classic sees the function's own writes: two batch appends to the path
        assert meta["spark/num_writes"] == 2 and "spark/streaming_batches" not in meta


# --- Delta sources and sinks -----------------------------------------------------------------------


def _history(result: RunResult, table: str) -> list[dict[str, Any]]:
    return result.custom_messages[0]["histories"][table]


def _streaming_commits(result: RunResult, table: str) -> list[dict[str, Any]]:
    return [c for c in _history(result, table) if c["operation"] == "STREAMING UPDATE"]


def _data_version(result: RunResult, key: str) -> str | None:
    return (result.materializations[key].tags or {}).get("dagster/data_version")


def test_a_delta_table_sink_reports_the_version_of_its_last_batch(run):
    _, result = run
    meta = _meta(result, "stream_delta_sink")
    commits = _streaming_commits(result, "stream_delta_sink")
    assert [int(c["parameters"]["epochId"]) for c in commits] == [0, 1, 2, 3]
    assert {c["parameters"]["queryId"] for c in commits} == {meta["spark/streaming_query_id"]}
    assert meta["spark/streaming_batches"] == 4 == meta["spark/streaming_delta_commits"]
    assert meta["delta/version"] == commits[-1]["version"]
    assert _data_version(result, "stream_delta_sink") == str(commits[-1]["version"])
    assert meta["dagster/storage_kind"] == "delta"
    assert meta["dagster/table_name"] == "spark_catalog.default.stream_delta_sink"
    rows = sum(c["metrics"]["numOutputRows"] for c in commits)
    assert (
        meta["dagster/row_count"]
        == 40
        == rows
        == result.custom_messages[0]["delta_rows"]["stream_delta_sink"]
    )
    assert meta["spark/files_written"] == sum(c["metrics"]["numAddedFiles"] for c in commits)
    assert meta["spark/bytes_written"] == sum(c["metrics"]["numOutputBytes"] for c in commits)


def test_a_delta_source_shows_its_reservoir_version_and_a_delta_path_sink_its_version(run):
    _, result = run
    meta = _meta(result, "stream_delta_path")
    source_versions = [c["version"] for c in _history(result, "delta_src")]
    assert source_versions == [0, 1, 2]
    [source] = meta["spark/streaming_sources"]
    assert source["description"].startswith("DeltaSource[")
    # read up to the end of version 2: the offset points at the start of the next version
    assert source["end_offset"]["reservoirVersion"] == source_versions[-1] + 1
    commits = _streaming_commits(result, "stream_delta_path")
    assert meta["spark/streaming_batches"] == 3 == len(commits)
    assert meta["delta/version"] == commits[-1]["version"]
    assert meta["dagster/row_count"] == 30 == result.custom_messages[0]["delta_rows"]["stream_delta_path"]
    assert meta["dagster/uri"].endswith(os.path.join("out", "delta_path"))
    assert meta["dagster/storage_kind"] == "delta"


def test_foreach_batch_merge_into_delta(run):
    mechanism, result = run
    merges = [c for c in _history(result, "stream_merge") if c["operation"] == "MERGE"]
    assert len(merges) == 2
    inserted = sum(c["metrics"]["numTargetRowsInserted"] for c in merges)
    updated = sum(c["metrics"]["numTargetRowsUpdated"] for c in merges)
    assert (inserted, updated) == (30, 10)
    assert result.custom_messages[0]["delta_rows"]["stream_merge"] == 40
    meta = _meta(result, "stream_merge")
    if mechanism == "classic":  # the function's MERGEs: one materialization, counts summed
        assert (meta["spark/rows_inserted"], meta["spark/rows_updated"]) == (30, 10)
        assert meta["dagster/row_count"] == 40
        assert meta["spark/num_writes"] == 2 and meta["spark/operation"] == "MERGE"
        assert meta["delta/version"] == merges[-1]["version"]
        assert _data_version(result, "stream_merge") == str(merges[-1]["version"])
        assert "spark/streaming_batches" not in meta
    else:  # on the server: the named query's progress
        assert meta["spark/streaming_batches"] == 2 and meta["spark/streaming_foreach_batch"] is True
        assert meta["dagster/row_count"] == 40
        assert "delta/version" not in meta


# --- progress reports of every shape ---------------------------------------------------------------


def test_progress_reports_of_every_shape_give_the_same_batch():
    as_dict = {  # pyspark 3.5 recentProgress / listener json
        "id": "q",
        "runId": "r",
        "batchId": 7,
        "numInputRows": 12,
        "durationMs": {"triggerExecution": 30},
        "timestamp": "2026-01-01T00:00:00.000Z",
        "sources": [
            {"description": "KafkaV2[Subscribe[t]]", "endOffset": '{"t":{"0":42}}', "numInputRows": 12}
        ],
        "sink": {"description": "DeltaSink[/x]", "numOutputRows": -1},
        "observedMetrics": {"__dagster_pipes_stream_rows_3": {"rows": 9}},
    }
    connect_json = dict(as_dict)
    connect_json.pop("numInputRows")  # Spark Connect's json has none: the sources' sum stands
    connect_json["observedMetrics"] = {
        "__dagster_pipes_stream_rows_3": {"values": [9], "schema": {"fields": [{"name": "rows"}]}}
    }
    for shape in (as_dict, connect_json):
        batch = progress_batch(shape)
        assert batch is not None
        assert batch == Batch(7, 12, None, 9, 30, "2026-01-01T00:00:00.000Z", batch.sources, "DeltaSink[/x]")
        assert batch.sources == [
            {"description": "KafkaV2[Subscribe[t]]", "endOffset": {"t": {"0": 42}}, "numInputRows": 12}
        ]


def test_rows_prefer_the_observation_then_the_sink_then_the_input():
    def batch(i: int, observed: int | None, output: int | None) -> Batch:
        return Batch(i, 10, output, observed, 5, None, [], "FileSink[x]")

    run = StreamRun(query=None, api="start", path="/x", format="parquet")
    for b in (batch(0, 4, 6), batch(1, 3, 6)):
        run.add(b)
    assert stream_write(run, False, None).rows == 7
    run.batches[1] = batch(1, None, 6)
    assert stream_write(run, False, None).rows == 12
    run.batches[1] = batch(1, None, None)
    assert stream_write(run, False, None).rows == 20
    empty = stream_write(StreamRun(query=None, api="start", path="/x"), False, None)
    assert empty.rows == 0 and (empty.streaming or {})["spark/streaming_batch_ids"] == []


def test_a_wrapped_error_names_its_root_cause():
    raw = (
        "Job aborted due to stage failure: Task 0 failed: org.apache.spark.SparkException:"
        " [TASK_WRITE_FAILED] Task failed while writing rows to /x.\n\tat org.apache.spark.X(X.scala:1)\n"
        "Caused by: org.apache.spark.SparkRuntimeException: [USER_RAISED_EXCEPTION] v is too large\n"
        "\tat org.apache.spark.Y(Y.scala:2)"
    )
    text = error_text(raw)
    assert text.startswith("Job aborted due to stage failure") and "\n" not in text
    assert text.endswith(
        "(caused by: org.apache.spark.SparkRuntimeException: [USER_RAISED_EXCEPTION] v is too large)"
    )
    assert error_text("[USER_RAISED_EXCEPTION] v is too large\n=== Streaming Query ===") == (
        "[USER_RAISED_EXCEPTION] v is too large === Streaming Query ==="
    )


def test_delta_sink_commits_are_the_query_s_batches_only():
    def commit(version: int, query: str, epoch: int, rows: int = 5) -> DeltaCommit:
        params = {"queryId": query, "epochId": str(epoch), "outputMode": "Append"}
        metrics = {"numOutputRows": rows, "numAddedFiles": 1, "numOutputBytes": 100}
        return DeltaCommit(version, "STREAMING UPDATE", metrics, params)

    history = [
        commit(1, "q", 0),
        commit(2, "other", 0),  # a concurrent query's batch
        DeltaCommit(3, "OPTIMIZE"),
        commit(4, "q", 1),
        commit(5, "q", 2),  # not a batch seen in the block
    ]
    found = stream_commits(history, "q", {0, 1})
    assert [c.version for c in found] == [1, 4]
    write = SparkWrite("STREAMING WRITE", path="/x", format="delta", rows=None, is_delta=True, streaming={})
    apply_stream_commits(write, found, 2, rows_observed=False)
    assert (write.delta_version, write.files, write.bytes, write.rows) == (4, 2, 200, 10)
    assert write.is_delta is False and (write.streaming or {})["spark/streaming_delta_commits"] == 2
