"""Structured Streaming through real Dagster: what the queries started inside ``report_spark_writes``
wrote, on classic sessions (listener) and Spark Connect (progress read from the client), with real
Delta Lake sources and sinks (the pinned jars of ``.ci/jars/spark40.txt``), and the column lineage
read from the streamed DataFrames' plans.

One run per mechanism of ``spark_scripts/streaming_job.py`` (see its docstring for the scenarios),
both started together; the numbers asserted are the data's: 4 files x 10 rows, half of them with an
even ``v``, a failing second batch of 5 rows; Delta figures are compared with the tables' own
``DESCRIBE HISTORY``. ``test_streaming_runtime_matrix.py`` runs the same checks in the Spark 3.5
runtime."""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import TESTS, RunResult, run_pipes
from test_delta_hooks import table_format_jars

from dagster_pipes_spark.spark._delta import DeltaCommit
from dagster_pipes_spark.spark._lineage import lineage_from_explain, lineage_from_tree
from dagster_pipes_spark.spark._lineage_types import LineageSource
from dagster_pipes_spark.spark._streaming import (
    ROWS_OBSERVATION,
    Batch,
    StreamingObserver,
    StreamRun,
    apply_stream_commits,
    error_text,
    progress_batch,
    stream_commits,
    stream_write,
)
from dagster_pipes_spark.spark._write_record import SparkWrite

JOB = TESTS / "spark_scripts" / "streaming_job.py"
ASSETS = [
    "stream_files",
    "stream_lineage",
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


# --- column lineage --------------------------------------------------------------------------------


def _lineage(result: RunResult, key: str) -> dict[str, list[tuple[str, str]]] | None:
    """The ``dagster/column_lineage`` Dagster recorded, as ``{column: [(asset key, column)]}``."""
    value = result.materializations[key].metadata.get("dagster/column_lineage")
    if value is None:
        return None
    return {
        column: sorted((dep.asset_key.to_user_string(), dep.column_name) for dep in deps)
        for column, deps in value.lineage.deps_by_column.items()
    }


def test_column_lineage_of_a_query_over_files(run):
    _, result = run
    src = "stream_lineage_src"
    assert _lineage(result, "stream_lineage") == {
        "id": [(src, "id")],
        "name_upper": [(src, "name")],
        "total": [(src, "a"), (src, "b")],
    }
    same = {"id": [("stream_src", "id")], "v": [("stream_src", "v")]}
    assert _lineage(result, "stream_files") == same  # maxFilesPerTrigger, a path sink
    assert _lineage(result, "stream_filtered") == same  # a filter (not a dependency), a table sink
    assert _lineage(result, "stream_delta_sink") == same
    sinks = ("out/lineage", "out/files", "stream_filtered", "stream_delta_sink", "out/delta_path", "out/rate")
    unread = [m for _, m in result.logs if "no column lineage" in m and any(s in m for s in sinks)]
    assert not unread


def test_a_rate_source_gives_its_columns_no_source(run):
    _, result = run
    assert "dagster/column_lineage" not in result.materializations["stream_rate"].metadata
    assert "dagster/column_lineage" not in result.materializations["stream_fail"].metadata  # unmapped


def test_a_delta_table_source_is_the_source_of_the_column_lineage(run):
    _, result = run
    assert _lineage(result, "stream_delta_path") == {
        "id": [("delta_src", "id")],
        "doubled": [("delta_src", "v")],
    }


def test_a_foreach_batch_query_itself_has_no_column_lineage(run):
    mechanism, result = run
    if mechanism == "connect":  # the query is reported (by its name), without lineage
        for key in ("stream_fb", "stream_merge"):
            assert "spark/streaming_batches" in _meta(result, key)
            assert "dagster/column_lineage" not in result.materializations[key].metadata


# printed plans of streamed DataFrames (Spark 4.0.1; classic ``treeString`` / Connect ``EXPLAIN``)
_JSON_SOURCE = (
    "DataSource(org.apache.spark.sql.classic.SparkSession@582be0ac,json,List(),Some(StructType("
    "StructField(id,LongType,true),StructField(name,StringType,true),StructField(a,LongType,true),"
    "StructField(b,LongType,true))),List(),None,Map(maxFilesPerTrigger -> 1, path -> /data/src),None)"
)
_DELTA_TABLE_SOURCE = """~Project [id#184L, (v#185L * cast(2 as bigint)) AS doubled#186L]
+- ~SubqueryAlias spark_catalog.default.dsrc
   +- ~StreamingRelation DataSource(org.apache.spark.sql.classic.SparkSession@582be0ac,delta,List(),\
Some(StructType()),List(),None,Map(path -> file:/wh/dsrc),Some(CatalogTable(
Catalog: spark_catalog
Database: default
Table: dsrc
Created Time: Thu Dec 03 16:52:24 UTC 2026
Type: MANAGED
Provider: delta
Location: file:/wh/dsrc
Partition Provider: Catalog))), delta, [id#184L, v#185L]"""


def _sources(lineage: Any) -> dict[str, Any]:
    return {c: None if d is None else sorted((s.target, n) for s, n in d) for c, d in lineage.items()}


def test_streamed_plans_give_their_sources_columns():
    files = lineage_from_tree(
        "~Project [id#171L, upper(name#172) AS name_upper#175, (a#173L + b#174L) AS total#176L]\n"
        f"+- ~StreamingRelation {_JSON_SOURCE}, FileSource[/data/src], [id#171L, name#172, a#173L, b#174L]"
    )
    assert _sources(files) == {
        "id": [("/data/src", "id")],
        "name_upper": [("/data/src", "name")],
        "total": [("/data/src", "a"), ("/data/src", "b")],
    }
    # a Delta table read with readStream.table: the catalog table, printed over several lines
    table = lineage_from_tree(_DELTA_TABLE_SOURCE)
    assert table == {
        "id": frozenset({(LineageSource(table=("spark_catalog", "default", "dsrc")), "id")}),
        "doubled": frozenset({(LineageSource(table=("spark_catalog", "default", "dsrc")), "v")}),
    }
    # the same in EXPLAIN EXTENDED (Spark Connect), output schema first
    schema = "id: bigint, doubled: bigint"
    explained = f"== Analyzed Logical Plan ==\n{schema}\n{_DELTA_TABLE_SOURCE}\n\n== Physical Plan =="
    assert lineage_from_explain(explained) == table
    # a Delta path: the path option
    delta_path = _JSON_SOURCE.replace(",json,", ",delta,").replace("/data/src", "file:/data/d")
    assert _sources(lineage_from_tree(f"~StreamingRelation {delta_path}, delta, [id#1L, v#2L]")) == {
        "id": [("/data/d", "id")],
        "v": [("/data/d", "v")],
    }


def test_sources_that_are_no_dataset_give_no_source_and_unknown_ones_are_unresolved():
    rate = lineage_from_tree(
        "~Project [value#181L, timestamp#180]\n"
        "+- ~StreamingRelationV2 org.apache.spark.sql.execution.streaming.sources.RateStreamProvider@7f,"
        " rate, org.apache.spark.sql.execution.streaming.sources.RateStreamTable@76, [rowsPerSecond=5],"
        " [timestamp#180, value#181L]"
    )
    assert rate == {"value": frozenset(), "timestamp": frozenset()}
    socket = lineage_from_tree(
        "~StreamingRelationV2 org.apache.spark.sql.execution.streaming.sources.TextSocketSourceProvider@1,"
        " socket, org.apache.spark.sql.execution.streaming.sources.TextSocketTable@2, [host=localhost,"
        " port=9], [value#179]"
    )
    assert socket == {"value": frozenset()}
    kafka = lineage_from_tree(
        "~StreamingRelationV2 org.apache.spark.sql.kafka010.KafkaSourceProvider@1, kafka,"
        " org.apache.spark.sql.kafka010.KafkaSourceProvider$KafkaTable@2, [subscribe=t], [key#1, value#2]"
    )
    assert kafka == {"key": None, "value": None}  # a topic is not a table or a path: left out
    # an unknown V1 source without a path
    assert lineage_from_tree(
        "~StreamingRelation DataSource(org.apache.spark.sql.classic.SparkSession@1,com.x.Custom,List(),"
        "None,List(),None,Map(),None), custom, [a#1]"
    ) == {"a": None}


def test_the_sources_of_a_started_query_resolve_too():
    files = lineage_from_tree(
        "~Project [id#169L, upper(name#170) AS name_upper#173]\n"
        "+- ~StreamingExecutionRelation FileStreamSource[file:/data/src], [id#169L, name#170, a#171L]"
    )
    assert _sources(files) == {"id": [("/data/src", "id")], "name_upper": [("/data/src", "name")]}
    delta = lineage_from_tree(
        "~SubqueryAlias spark_catalog.default.dsrc\n"
        "+- ~StreamingExecutionRelation DeltaSource[file:/wh/dsrc], [id#182L],"
        " `spark_catalog`.`default`.`dsrc`"
    )
    assert _sources(delta) == {"id": [("spark_catalog.default.dsrc", "id")]}
    rate = lineage_from_tree(
        "~StreamingDataSourceV2ScanRelation[timestamp#175, value#176L] RateStream(rowsPerSecond=5,"
        " rampUpTimeSeconds=0, numPartitions=2)"
    )
    assert rate == {"timestamp": frozenset(), "value": frozenset()}
    kafka = lineage_from_tree("~StreamingDataSourceV2Relation[key#1, value#2] KafkaV2[Subscribe[t]]")
    assert kafka == {"key": None, "value": None}


def test_a_catalog_table_that_does_not_read_back_is_not_guessed():
    unterminated = _DELTA_TABLE_SOURCE.replace("Partition Provider: Catalog))), delta,", "Comment: (x")
    assert lineage_from_tree(unterminated) is None


def test_a_plan_that_cannot_be_read_gives_no_lineage_and_a_debug_log():
    class Unplannable:
        @property
        def _jdf(self) -> Any:
            raise RuntimeError("py4j is gone")

    logs: list[str] = []
    observer = StreamingObserver(None, connect=False, warn=logs.append, debug=logs.append)
    run = StreamRun(query=None, api="start", path="/x", format="parquet", query_id="q")
    observer._capture_plan(run, Unplannable())
    assert not logs  # the start hook does not log: on exit
    write = stream_write(run, False, None)
    observer._lineage(run, write)
    assert write.column_lineage is None and run.plan_text is None
    assert logs == ["[spark writes] no column lineage for /x: no plan (RuntimeError: py4j is gone)"]
    run.plan_text, run.plan_error = "~SomethingNew [a#1]", None  # a node the reader does not know
    observer._lineage(run, write)
    assert write.column_lineage is None and "plan not understood" in logs[-1]


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

    def rows(*batches: Batch) -> int | None:
        run = StreamRun(query=None, api="start", path="/x", format="parquet")
        for b in batches:
            run.add(b)
        run.add(batches[0])  # a batch reported twice (listener and poll) counts once
        return stream_write(run, False, None).rows

    assert rows(batch(0, 4, 6), batch(1, 3, 6)) == 7
    assert rows(batch(0, 4, 6), batch(1, None, 6)) == 12
    assert rows(batch(0, 4, 6), batch(1, None, None)) == 20
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


# --- the row-counting observation: only where the plan can change the number of rows --------------

ROWS_JOB = """
import json, os, sys, warnings
warnings.filterwarnings("ignore")
import dagster_pipes_spark as pipes_lib
from dagster_pipes_spark.spark import report_spark_writes
from dagster_pipes_spark.testing._notebook import make_spark_session

with pipes_lib.open_dagster_pipes() as pipes:
    mechanism, tmp = pipes.extras["mechanism"], pipes.extras["tmp"]
    spark = make_spark_session(
        mechanism,
        {
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp}",
        },
    )
    if mechanism == "connect":
        from pyspark.sql.connect.functions import builtin as F
    else:
        from pyspark.sql import functions as F
    src = os.path.join(tmp, "src")
    os.makedirs(src)
    for i in range(4):
        with open(os.path.join(src, f"part-{i}.json"), "w") as f:
            f.write("\\n".join(json.dumps({"id": i * 10 + j, "v": j}) for j in range(10)))
    paths = {name: os.path.join(tmp, "out", name) for name in ("projected", "kept")}

    def stream():
        return spark.readStream.schema("id BIGINT, v BIGINT").option("maxFilesPerTrigger", 2).json(src)

    def start(df, name):
        writer = df.writeStream.format("parquet").option("checkpointLocation", os.path.join(tmp, "cp_" + name))
        return writer.trigger(availableNow=True).start(paths[name])

    assets = {paths["projected"]: "stream_projected", paths["kept"]: "stream_kept"}
    with report_spark_writes(spark, pipes, assets=assets):
        projected = (
            stream()
            .withColumn("doubled", F.col("v") * 2)
            .withColumnRenamed("id", "key")
            .select(F.col("key"), F.col("doubled").cast("int").alias("d"), "v")
        )
        queries = {"projected": start(projected, "projected"), "kept": start(stream().where(F.col("v") % 2 == 0), "kept")}
        for q in queries.values():
            q.awaitTermination()

    def observed(progress):
        metrics = progress["observedMetrics"] if isinstance(progress, dict) else progress.observedMetrics
        return sorted(dict(metrics or {}))

    pipes.report_custom_message(
        {
            name: {
                "observed": [observed(p) for p in q.recentProgress],
                "rows": spark.read.parquet(paths[name]).count(),
            }
            for name, q in queries.items()
        }
    )
"""


@pytest.fixture(scope="module")
def rows_runs() -> dict[str, RunResult]:
    """A projection-only and a filtered query, in one block, classic and Connect runs together."""
    from _helpers import write_script

    def one(mechanism: str) -> RunResult:
        tmp = tempfile.mkdtemp(prefix=f"pipes-stream-rows-{mechanism}-")
        script = write_script(Path(tmp), ROWS_JOB)
        result = run_pipes(
            script, assets=["stream_projected", "stream_kept"], extras={"mechanism": mechanism, "tmp": tmp}
        )
        assert result.success, (result.failure, result.logs[-20:])
        return result

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {m: pool.submit(one, m) for m in ("classic", "connect")}
        return {m: f.result() for m, f in futures.items()}


@pytest.mark.parametrize("mechanism", ["classic", "connect"])
def test_a_projection_reports_its_input_rows_without_the_observation(rows_runs, mechanism):
    result = rows_runs[mechanism]
    seen = result.custom_messages[0]["projected"]
    meta = _meta(result, "stream_projected")
    assert meta["dagster/row_count"] == 40 == seen["rows"] == meta["spark/streaming_input_rows"]
    assert meta["spark/streaming_batches"] == 2
    assert seen["observed"] == [[], []]  # no row-counting observation on the query


@pytest.mark.parametrize("mechanism", ["classic", "connect"])
def test_a_filter_keeps_the_observation_and_reports_the_rows_written(rows_runs, mechanism):
    result = rows_runs[mechanism]
    seen = result.custom_messages[0]["kept"]
    meta = _meta(result, "stream_kept")
    assert meta["dagster/row_count"] == 20 == seen["rows"]
    assert meta["spark/streaming_input_rows"] == 40
    assert len(seen["observed"]) == 2
    assert all(len(names) == 1 and names[0].startswith(ROWS_OBSERVATION) for names in seen["observed"])


def test_which_client_plans_keep_the_row_count():
    """The Connect rule on client plans alone (no server): projections of columns, casts, aliases and
    scalar operators keep the count; generators, aggregates, computed SQL text, filters, limits and
    unions may not, and a shuffle's re-runs would count the rows it reads again."""
    pytest.importorskip("grpc")
    from types import SimpleNamespace

    from pyspark.sql.connect import plan as cp
    from pyspark.sql.connect.functions import builtin as sf

    from dagster_pipes_spark.spark._streaming._row_count import rows_preserved

    src = cp.DataSource(format="json", schema="id BIGINT, v BIGINT", paths=["/x"], is_streaming=True)
    keep = {
        "source": src,
        "select": cp.Project(
            src, [sf.col("id"), (sf.col("v") * 2).alias("d"), sf.col("v").cast("int"), sf.lit(1)]
        ),
        "withColumn, rename": cp.WithColumnsRenamed(
            cp.WithColumns(src, ["d"], [sf.upper(sf.col("v"))]), {"id": "k"}
        ),
        "selectExpr of a name": cp.Project(src, [sf.expr("id")]),
        "watermark": cp.WithWatermark(src, "ts", "1 minute"),
    }
    change = {
        "a batch source": cp.DataSource(format="json", paths=["/x"]),
        "explode": cp.Project(src, [sf.explode(sf.col("a"))]),
        "count": cp.Project(src, [sf.count(sf.lit(1))]),
        "computed selectExpr": cp.Project(src, [sf.expr("v * 2 AS d")]),
        "filter": cp.Filter(src, sf.col("v") > 1),
        "limit": cp.Limit(src, 3),
        "union": cp.SetOperation(src, src, "union"),
        # a shuffle: a map task re-run after a lost executor reads its rows again (test_cluster.py)
        "repartition": cp.Repartition(src, 2, True),
        "repartition by column": cp.RepartitionByExpression(src, 2, [sf.col("id")]),
        "sort": cp.Sort(src, [sf.col("id").asc()], True),
    }
    assert {k for k, p in keep.items() if not rows_preserved(SimpleNamespace(_plan=p))} == set()
    assert {k for k, p in change.items() if rows_preserved(SimpleNamespace(_plan=p))} == set()
