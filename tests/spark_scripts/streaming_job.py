"""External side of the streaming tests: Structured Streaming queries inside ``report_spark_writes``.

Extras: ``mechanism`` (classic | connect), ``tmp``. One session runs every scenario in one block:

* ``stream_files``: ``availableNow`` over a directory of 4 JSON files (10 rows each) with
  ``maxFilesPerTrigger`` 1 into a Parquet path: 4 batches, 40 rows; the directory is the asset
  ``stream_src`` (``assets=``), the source of the column lineage of the queries reading it;
* ``stream_lineage``: ``availableNow`` over a directory of JSON files ``id, name, a, b`` (the asset
  ``stream_lineage_src``) with a projection, a rename and a computed column into a Parquet path;
* ``stream_filtered``: the same files through a filter no source can push down (``v % 2 = 0``) into a
  table: 20 rows written (40 read);
* ``stream_rate``: the ``rate`` source with a ``processingTime`` trigger, still running when the
  block exits (stopped afterwards): its columns come from no dataset;
* ``stream_nodata``: ``availableNow`` on a checkpoint that has consumed everything already;
* ``stream_fail``: a query whose second batch fails (``raise_error``): only the first is reported;
* ``stream_fb``: ``foreachBatch`` appending each batch to a Parquet path; the query is named
  ``fb_query`` and mapped to the asset through ``assets=``.

With Delta (extras ``jars`` non-empty, or ``remote``: the standalone server has Delta):

* ``stream_delta_sink``: the 4 files (``maxFilesPerTrigger`` 1) into a new Delta table
  (``format("delta").toTable``): 4 ``STREAMING UPDATE`` commits, 40 rows;
* ``stream_delta_path``: a Delta *source* table ``delta_src`` (3 commits of one file, 10 rows each;
  ``maxFilesPerTrigger`` 1, ``readStream.table``) into a Delta path (``format("delta").start(path)``):
  3 batches, 30 rows;
* ``stream_merge``: ``foreachBatch`` running SQL ``MERGE INTO`` a Delta table holding ids 0-9 with the
  4 files in 2 batches (ids 0-39): 10 rows updated, 30 inserted over 2 MERGE commits; the query is
  named ``merge_query`` (what Spark Connect reports, by ``assets=``).

Extras also: ``remote`` (``sc://`` of a standalone server), ``watchdog`` (seconds before a hang
dumps every thread's stack into ``stacks.txt`` and ends the job). The Delta tables' own ``DESCRIBE
HISTORY`` is sent back in the custom message (``histories``).
"""

from __future__ import annotations

import faulthandler
import json
import os
import time
import warnings
from typing import Any

from _job_exit import finish  # a sibling module (this directory is on sys.path)

import dagster_pipes_spark as pipes_lib
from dagster_pipes_spark.spark import report_spark_writes


def session(mechanism: str, tmp: str, jars: list[str], remote: str | None) -> Any:
    from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF, make_spark_session
    from dagster_pipes_spark.testing.table_formats import spark_confs

    warnings.filterwarnings("ignore")
    if remote:  # a client of a standalone server (which has Delta)
        from pyspark.sql import SparkSession

        return SparkSession.builder.remote(remote).getOrCreate()
    java = f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} -Dderby.system.home={tmp}"
    delta = [j for j in jars if not os.path.basename(j).startswith("iceberg")]
    confs = spark_confs(delta) if delta else {}
    spark = make_spark_session(
        mechanism,
        {
            **confs,
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": java,
            "spark.databricks.delta.snapshotPartitions": "2",
            # the Python workers of foreachBatch connect back slowly on an overloaded machine
            "spark.python.authenticate.socketTimeout": "120s",
        },
    )
    if mechanism == "classic":
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def history(spark: Any, table: str) -> list[dict[str, Any]]:
    """A Delta table's ``DESCRIBE HISTORY``, oldest first."""
    out = []
    for row in spark.sql(f"DESCRIBE HISTORY {table}").collect():
        out.append(
            {
                "version": int(row["version"]),
                "operation": row["operation"],
                "parameters": {k: str(v) for k, v in dict(row["operationParameters"] or {}).items()},
                "metrics": {k: int(v) for k, v in dict(row["operationMetrics"] or {}).items()},
            }
        )
    return sorted(out, key=lambda c: c["version"])


def write_files(directory: str, files: int, rows: int, start: int = 0) -> None:
    os.makedirs(directory, exist_ok=True)
    for i in range(files):
        with open(os.path.join(directory, f"part-{start + i:03d}.json"), "w") as f:
            for j in range(rows):
                f.write(json.dumps({"id": (start + i) * rows + j, "v": j}) + "\n")


def start_foreach_batch(writer: Any) -> Any:
    """``writer.start()`` of a ``foreachBatch`` query, tried again when the Python worker Spark Connect
    starts for it on the server did not connect back in time (10 s, fixed; an overloaded machine can
    miss it): the query did not start, nothing was written."""
    for attempt in range(6):
        try:
            return writer.start()
        except Exception as exc:
            text = str(exc)
            if attempt == 5 or ("connect back" not in text and "CANNOT_OPEN_SOCKET" not in text):
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


def delta_setup(spark: Any) -> None:
    """Outside the hooks: the Delta source (3 commits of one file each) and the MERGE target."""
    for i in range(3):
        spark.range(100 + 10 * i, 110 + 10 * i).selectExpr("id", "id % 7 AS v").repartition(1).write.format(
            "delta"
        ).mode("append").saveAsTable("delta_src")
    spark.range(10).selectExpr("id", "-1 AS v").repartition(1).write.format("delta").saveAsTable(
        "stream_merge"
    )


def main() -> Any:
    with pipes_lib.open_dagster_pipes() as pipes:
        mechanism, tmp = pipes.extras["mechanism"], pipes.extras["tmp"]
        # a hang (e.g. SPARK-52076, pyspark 3.5.0's Connect client deadlocking in a reattachable
        # iterator's __del__) ends the job with every thread's stack in stacks.txt
        stacks = open(os.path.join(tmp, "stacks.txt"), "w")  # open until the process exits
        faulthandler.dump_traceback_later(int(pipes.extras.get("watchdog", 400)), exit=True, file=stacks)
        jars = [j for j in (pipes.extras.get("jars") or "").split(",") if j]
        remote = pipes.extras.get("remote")
        delta = bool(jars or remote)
        spark = session(mechanism, tmp, jars, remote)
        src, fail_src = os.path.join(tmp, "src"), os.path.join(tmp, "fail_src")
        write_files(src, 4, 10)
        os.makedirs(fail_src)
        with open(os.path.join(fail_src, "a.json"), "w") as f:
            f.write("\n".join(json.dumps({"id": i, "v": i}) for i in range(5)))  # v <= 4: fine
        with open(os.path.join(fail_src, "b.json"), "w") as f:
            f.write("\n".join(json.dumps({"id": i, "v": 10 + i}) for i in range(5)))  # v > 4: fails
        out = os.path.join(tmp, "out")
        lineage_src = os.path.join(tmp, "lineage_src")
        os.makedirs(lineage_src)
        with open(os.path.join(lineage_src, "a.json"), "w") as f:
            f.write("\n".join(json.dumps({"id": i, "name": f"n{i}", "a": i, "b": 2 * i}) for i in range(3)))

        def json_stream(directory: str, **options: object) -> Any:
            reader = spark.readStream.schema("id BIGINT, v BIGINT")
            for k, val in options.items():
                reader = reader.option(k, val)
            return reader.json(directory)

        def checkpoint(name: str) -> str:
            return os.path.join(tmp, f"cp_{name}")

        # set-up outside the hooks: a checkpoint that has consumed everything
        nodata_cp = checkpoint("nodata")
        first = json_stream(src).writeStream.format("parquet").option("checkpointLocation", nodata_cp)
        first.trigger(availableNow=True).start(os.path.join(out, "nodata")).awaitTermination()
        if delta:
            delta_setup(spark)
        delta_path = os.path.join(out, "delta_path")

        assets = {
            src: "stream_src",
            lineage_src: "stream_lineage_src",
            os.path.join(out, "files"): "stream_files",
            os.path.join(out, "lineage"): "stream_lineage",
            os.path.join(out, "rate"): "stream_rate",
            os.path.join(out, "nodata"): "stream_nodata",
            os.path.join(out, "fail"): "stream_fail",
            "fb_query": "stream_fb",
            os.path.join(out, "fb"): "stream_fb",
            delta_path: "stream_delta_path",
            "merge_query": "stream_merge",
        }
        fb_path = os.path.join(out, "fb")

        def append_batch(batch_df: Any, batch_id: int) -> None:  # on the server with Spark Connect
            batch_df.write.mode("append").parquet(fb_path)

        def merge_batch(batch_df: Any, batch_id: int) -> None:
            batch_df.createOrReplaceTempView("merge_batch")
            batch_df.sparkSession.sql(
                "MERGE INTO stream_merge t USING merge_batch s ON t.id = s.id"
                " WHEN MATCHED THEN UPDATE SET t.v = s.v"
                " WHEN NOT MATCHED THEN INSERT (id, v) VALUES (s.id, s.v)"
            )

        with report_spark_writes(spark, pipes, assets=assets) as report:
            # foreachBatch first: on Spark Connect each starts a Python worker on the server, which
            # must connect back within 10 s, easier before the other queries load the machine
            queries = [
                start_foreach_batch(
                    json_stream(src, maxFilesPerTrigger=2)
                    .writeStream.foreachBatch(append_batch)
                    .queryName("fb_query")
                    .option("checkpointLocation", checkpoint("fb"))
                    .trigger(availableNow=True)
                )
            ]
            if delta:
                queries.append(
                    start_foreach_batch(
                        json_stream(src, maxFilesPerTrigger=2)
                        .writeStream.foreachBatch(merge_batch)
                        .queryName("merge_query")
                        .option("checkpointLocation", checkpoint("merge"))
                        .trigger(availableNow=True)
                    )
                )
            files = json_stream(src, maxFilesPerTrigger=1).writeStream.format("parquet")
            queries.append(
                files.option("checkpointLocation", checkpoint("files"))
                .trigger(availableNow=True)
                .start(os.path.join(out, "files"))
            )
            queries.append(
                spark.readStream.schema("id BIGINT, name STRING, a BIGINT, b BIGINT")
                .json(lineage_src)
                .selectExpr("id", "upper(name) AS name_upper", "a + b AS total")
                .writeStream.format("parquet")
                .option("checkpointLocation", checkpoint("lineage"))
                .trigger(availableNow=True)
                .start(os.path.join(out, "lineage"))
            )
            filtered = json_stream(src).where("v % 2 = 0").writeStream.format("parquet")
            queries.append(
                filtered.option("checkpointLocation", checkpoint("filtered"))
                .trigger(availableNow=True)
                .toTable("stream_filtered")
            )
            queries.append(
                json_stream(src)
                .writeStream.format("parquet")
                .option("checkpointLocation", nodata_cp)
                .trigger(availableNow=True)
                .start(os.path.join(out, "nodata"))
            )
            failing = json_stream(fail_src, maxFilesPerTrigger=1).selectExpr(
                "id", "IF(v > 4, raise_error('v is too large'), v) AS v"
            )
            q_fail = (
                failing.writeStream.format("parquet")
                .option("checkpointLocation", checkpoint("fail"))
                .trigger(availableNow=True)
                .start(os.path.join(out, "fail"))
            )
            if delta:
                queries.append(
                    json_stream(src, maxFilesPerTrigger=1)
                    .writeStream.format("delta")
                    .option("checkpointLocation", checkpoint("delta_sink"))
                    .trigger(availableNow=True)
                    .toTable("stream_delta_sink")
                )
                queries.append(
                    spark.readStream.format("delta")
                    .option("maxFilesPerTrigger", 1)
                    .table("delta_src")
                    .selectExpr("id", "v * 2 AS doubled")
                    .writeStream.format("delta")
                    .option("checkpointLocation", checkpoint("delta_path"))
                    .trigger(availableNow=True)
                    .start(delta_path)
                )
            rate = spark.readStream.format("rate").option("rowsPerSecond", 10).load()
            q_rate = (
                rate.writeStream.format("parquet")
                .option("checkpointLocation", checkpoint("rate"))
                .trigger(processingTime="1 second")
                .start(os.path.join(out, "rate"))
            )
            for q in queries:
                q.awaitTermination()
            try:
                q_fail.awaitTermination()
            except Exception as e:  # noqa: BLE001 - the failing query: its error is the hooks' to log
                pipes.log.info(f"failing query ended: {type(e).__name__}")
            deadline = time.time() + 120
            while len(q_rate.recentProgress) < 3 and time.time() < deadline:
                time.sleep(0.5)
        q_rate.stop()
        import pyspark

        message: dict[str, Any] = {
            "pyspark": pyspark.__version__,
            "writes": [[w.operation, w.path, w.table and list(w.table), w.rows] for w in report.writes],
            "files_rows": spark.read.parquet(os.path.join(out, "files")).count(),
            "filtered_rows": spark.table("stream_filtered").count(),
            "fail_rows": spark.read.parquet(os.path.join(out, "fail")).count(),
            "fb_rows": spark.read.parquet(fb_path).count(),
        }
        if delta:
            message["histories"] = {
                name: history(spark, name) for name in ("stream_delta_sink", "delta_src", "stream_merge")
            }
            message["histories"]["stream_delta_path"] = history(spark, f"delta.`{delta_path}`")
            message["delta_rows"] = {
                "stream_delta_sink": spark.table("stream_delta_sink").count(),
                "stream_delta_path": spark.read.format("delta").load(delta_path).count(),
                "stream_merge": spark.table("stream_merge").count(),
            }
        pipes.report_custom_message(message)
        faulthandler.cancel_dump_traceback_later()
    return spark  # the Pipes context is closed: everything is reported


if __name__ == "__main__":
    finish(main())
