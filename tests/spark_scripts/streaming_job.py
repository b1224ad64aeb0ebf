"""External side of the streaming tests: Structured Streaming queries inside ``report_spark_writes``.

Extras: ``mechanism`` (classic | connect), ``tmp``. One session runs every scenario in one block:

* ``stream_files``: ``availableNow`` over a directory of 4 JSON files (10 rows each) with
  ``maxFilesPerTrigger`` 1 into a Parquet path: 4 batches, 40 rows;
* ``stream_filtered``: the same files through a filter no source can push down (``v % 2 = 0``) into a
  table: 20 rows written (40 read);
* ``stream_rate``: the ``rate`` source with a ``processingTime`` trigger, still running when the
  block exits (stopped afterwards);
* ``stream_nodata``: ``availableNow`` on a checkpoint that has consumed everything already;
* ``stream_fail``: a query whose second batch fails (``raise_error``): only the first is reported;
* ``stream_fb``: ``foreachBatch`` appending each batch to a Parquet path; the query is named
  ``fb_query`` and mapped to the asset through ``assets=``.
"""

from __future__ import annotations

import json
import os
import time
import warnings

import dagster_pipes_spark as pipes_lib
from dagster_pipes_spark.spark import report_spark_writes


def session(mechanism: str, tmp: str):
    from pyspark.sql import SparkSession

    warnings.filterwarnings("ignore")
    builder = (
        SparkSession.builder.remote("local[2]")
        if mechanism == "connect"
        else SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false")
    )
    spark = (
        builder.appName(f"pipes-streaming-{mechanism}")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", os.path.join(tmp, "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={tmp}")
        .getOrCreate()
    )
    if mechanism == "classic":
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def write_files(directory: str, files: int, rows: int, start: int = 0) -> None:
    os.makedirs(directory, exist_ok=True)
    for i in range(files):
        with open(os.path.join(directory, f"part-{start + i:03d}.json"), "w") as f:
            for j in range(rows):
                f.write(json.dumps({"id": (start + i) * rows + j, "v": j}) + "\n")


def main() -> None:
    with pipes_lib.open_dagster_pipes() as pipes:
        mechanism, tmp = pipes.extras["mechanism"], pipes.extras["tmp"]
        spark = session(mechanism, tmp)
        src, fail_src = os.path.join(tmp, "src"), os.path.join(tmp, "fail_src")
        write_files(src, 4, 10)
        os.makedirs(fail_src)
        with open(os.path.join(fail_src, "a.json"), "w") as f:
            f.write("\n".join(json.dumps({"id": i, "v": i}) for i in range(5)))  # v <= 4: fine
        with open(os.path.join(fail_src, "b.json"), "w") as f:
            f.write("\n".join(json.dumps({"id": i, "v": 10 + i}) for i in range(5)))  # v > 4: fails
        out = os.path.join(tmp, "out")

        def json_stream(directory: str, **options: object):
            reader = spark.readStream.schema("id BIGINT, v BIGINT")
            for k, val in options.items():
                reader = reader.option(k, val)
            return reader.json(directory)

        # set-up outside the hooks: a checkpoint that has consumed everything
        nodata_cp = os.path.join(tmp, "cp_nodata")
        first = json_stream(src).writeStream.format("parquet").option("checkpointLocation", nodata_cp)
        first.trigger(availableNow=True).start(os.path.join(out, "nodata")).awaitTermination()

        assets = {
            os.path.join(out, "files"): "stream_files",
            os.path.join(out, "rate"): "stream_rate",
            os.path.join(out, "nodata"): "stream_nodata",
            os.path.join(out, "fail"): "stream_fail",
            "fb_query": "stream_fb",
            os.path.join(out, "fb"): "stream_fb",
        }
        with report_spark_writes(spark, pipes, assets=assets) as report:
            files = json_stream(src, maxFilesPerTrigger=1).writeStream.format("parquet")
            q_files = (
                files.option("checkpointLocation", os.path.join(tmp, "cp_files"))
                .trigger(availableNow=True)
                .start(os.path.join(out, "files"))
            )
            filtered = json_stream(src).where("v % 2 = 0").writeStream.format("parquet")
            q_filtered = (
                filtered.option("checkpointLocation", os.path.join(tmp, "cp_filtered"))
                .trigger(availableNow=True)
                .toTable("stream_filtered")
            )
            q_nodata = (
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
                .option("checkpointLocation", os.path.join(tmp, "cp_fail"))
                .trigger(availableNow=True)
                .start(os.path.join(out, "fail"))
            )
            fb_path = os.path.join(out, "fb")

            def append_batch(batch_df, batch_id):  # runs on the server with Spark Connect
                batch_df.write.mode("append").parquet(fb_path)

            q_fb = (
                json_stream(src, maxFilesPerTrigger=2)
                .writeStream.foreachBatch(append_batch)
                .queryName("fb_query")
                .option("checkpointLocation", os.path.join(tmp, "cp_fb"))
                .trigger(availableNow=True)
                .start()
            )
            rate = spark.readStream.format("rate").option("rowsPerSecond", 10).load()
            q_rate = (
                rate.writeStream.format("parquet")
                .option("checkpointLocation", os.path.join(tmp, "cp_rate"))
                .trigger(processingTime="1 second")
                .start(os.path.join(out, "rate"))
            )
            for q in (q_files, q_filtered, q_nodata, q_fb):
                q.awaitTermination()
            try:
                q_fail.awaitTermination()
            except Exception as e:  # noqa: BLE001 - the failing query: its error is the hooks. to log
                pipes.log.info(f"failing query ended: {type(e).__name__}")
            deadline = time.time() + 120
            while len(q_rate.recentProgress) < 3 and time.time() < deadline:
                time.sleep(0.5)
        q_rate.stop()
        pipes.report_custom_message(
            {
                "writes": [[w.operation, w.path, w.table and list(w.table), w.rows] for w in report.writes],
                "files_rows": spark.read.parquet(os.path.join(out, "files")).count(),
                "filtered_rows": spark.table("stream_filtered").count(),
                "fail_rows": spark.read.parquet(os.path.join(out, "fail")).count(),
                "fb_rows": spark.read.parquet(fb_path).count(),
            }
        )


if __name__ == "__main__":
    main()
