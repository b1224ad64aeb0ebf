"""Structured Streaming through real Dagster: what the queries started inside ``report_spark_writes``
wrote, on classic sessions (listener) and Spark Connect (progress read from the client).

One run per mechanism of ``spark_scripts/streaming_job.py`` (see its docstring for the scenarios);
the numbers asserted are the data's: 4 files x 10 rows, half of them with an even ``v``, a failing
second batch of 5 rows."""

from __future__ import annotations

import tempfile
from typing import Any

import pytest

pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import TESTS, RunResult, run_pipes

from dagster_pipes_spark.spark._streaming import Batch, StreamRun, progress_batch, stream_write

JOB = TESTS / "spark_scripts" / "streaming_job.py"
ASSETS = ["stream_files", "stream_filtered", "stream_rate", "stream_nodata", "stream_fail", "stream_fb"]


@pytest.fixture(scope="module", params=["classic", "connect"])
def run(request: pytest.FixtureRequest) -> tuple[str, RunResult]:
    mechanism = request.param
    tmp = tempfile.mkdtemp(prefix=f"pipes-streaming-{mechanism}-")
    result = run_pipes(JOB, assets=ASSETS, extras={"mechanism": mechanism, "tmp": tmp})
    assert result.success, result.failure
    return mechanism, result


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
