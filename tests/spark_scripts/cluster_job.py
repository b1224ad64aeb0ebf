"""External side of the real-cluster tests: one Spark application on a standalone cluster of two
one-core workers (classic: this process is the driver, ``master`` extra; Spark Connect: a client of a
Connect server running on the cluster, ``remote`` extra), writes made inside ``report_spark_writes``
while executors die and tasks are retried or speculated, then the tables read back.

Extras: ``tmp``, ``jars`` (Delta), ``master`` and ``conf`` (classic: the application's settings) or
``remote`` (Connect), ``watchdog``.

Scenarios (each a job tag ``cluster-scenario-<name>``, which the test finds in Spark's event log), all
over 1000 rows (``id`` 0-999, ``k = id % 700``, ``name`` NULL when ``id % 7 = 0``, ``v = id - 100``)
hashed from 8 partitions into 4 (a shuffle before the write):

* ``killed_parquet`` / ``killed_delta``: the rows through a Python UDF that SIGKILLs its own executor
  JVM in the first attempt of the task reading id 7 (a marker file: the retry lives), after the shuffle,
  so the write stage loses a task and the executor's shuffle output, into a Parquet / Delta table
  (``cl_killed_parquet``, ``cl_killed_delta``);
* ``straggler_parquet`` / ``straggler_delta``: the rows through a UDF that sleeps up to 60 s in the
  first attempt of partition 0 of the write stage, so that a speculative copy finishes it
  (``cl_spec_parquet``, ``cl_spec_delta``);
* ``stream``: an ``availableNow`` query over 4 JSON files of 25 rows (``maxFilesPerTrigger`` 1) into a
  Parquet path (``cl_stream``) and one of the same files filtered to even ``v`` (``cl_stream_filtered``,
  52 rows);
* ``stream_killed``: an ``availableNow`` query over the 4 files in one batch (4 map tasks) hashed into
  4 partitions and through the executor-killing UDF, into a Parquet path (``cl_stream_killed``): the
  batch's write stage loses an executor and its shuffle output;
* ``checks``: the checks of ``cl_killed_parquet`` over its rows read through a UDF that kills an
  executor again, in the scan.

The custom message holds each table's rows and distinct ids read back, the checks' failing rows
counted by plain filters, and the stream sinks' rows read back.
"""

from __future__ import annotations

import faulthandler
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from _job_exit import finish  # a sibling module (this directory is on sys.path)

import dagster_pipes_spark as pipes_lib
from dagster_pipes_spark.spark import (
    expect,
    in_range,
    not_null,
    report_spark_checks,
    report_spark_writes,
    unique,
)

ROWS = 1000
STREAM_FILES, STREAM_ROWS = 4, 25
TAG_PREFIX = "cluster-scenario-"
FORMATS = ("parquet", "delta")


def session(extras: dict[str, Any]) -> Any:
    from pyspark.sql import SparkSession

    from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF
    from dagster_pipes_spark.testing.table_formats import spark_confs

    warnings.filterwarnings("ignore")
    if extras.get("remote"):  # a client of the Connect server on the cluster (which has Delta)
        return SparkSession.builder.remote(extras["remote"]).getOrCreate()
    tmp = extras["tmp"]
    jars = [j for j in (extras.get("jars") or "").split(",") if j]
    conf = {
        **LOCAL_SPARK_CONF,
        **(spark_confs(jars) if jars else {}),
        **extras["conf"],  # the cluster's settings (event log, executors, speculation), from the test
        "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
        "spark.driver.extraJavaOptions": f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']}"
        f" -Dderby.system.home={tmp}",
    }
    builder = SparkSession.builder.master(extras["master"]).appName(f"cluster-{os.path.basename(tmp)}")
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def scenario(spark: Any, name: str) -> Iterator[None]:
    """Tags the Spark jobs started inside (``cluster-scenario-<name>``)."""
    tag = TAG_PREFIX + name
    connect = type(spark).__module__.startswith("pyspark.sql.connect")
    if connect:
        spark.addTag(tag)
    else:
        spark.sparkContext.addJobTag(tag)
    try:
        yield
    finally:
        if connect:
            spark.removeTag(tag)
        else:
            spark.sparkContext.removeJobTag(tag)


def kill_executor_once(marker: str) -> Any:
    """A UDF (``id`` -> ``id``) that SIGKILLs the executor JVM running it when it reads id 7, once:
    the first task to create ``marker`` does it; every later attempt passes the rows through."""

    def kill(value: int) -> int:
        import os
        import signal
        import time

        if value != 7:
            return value
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return value
        pid = os.getppid()  # the Python worker's ancestors: pyspark's daemon, then the executor JVM
        while pid > 1:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"CoarseGrainedExecutorBackend" in f.read():
                    os.kill(pid, signal.SIGKILL)
                    time.sleep(60)  # the JVM is gone: this worker is ended with it
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
            pid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        raise RuntimeError("no executor JVM among the Python worker's ancestors")

    return kill


def straggle_first_attempt(value: int) -> int:
    """A UDF that sleeps (up to 60 s) in the first attempt of partition 0, until Spark kills it."""
    import time

    from pyspark import TaskContext

    context = TaskContext.get()
    if context is not None and context.partitionId() == 0 and context.attemptNumber() == 0:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
    return value


def rows(spark: Any) -> Any:
    """The 1000 rows, from 8 partitions (map tasks on both executors) hashed into 4 (a shuffle before
    whatever comes next)."""
    return (
        spark.range(0, ROWS, 1, 8)
        .selectExpr(
            "id",
            "id % 700 AS k",
            "CASE WHEN id % 7 = 0 THEN NULL ELSE concat('n', id) END AS name",
            "id - 100 AS v",
        )
        .repartition(4, "id")
    )


def udf_of(function: Any, *, deterministic: bool = True) -> Any:
    """``function`` as a Python UDF returning ``bigint``."""
    from pyspark.sql import functions as sf

    udf = sf.udf(function, "bigint")
    return udf if deterministic else udf.asNondeterministic()


def through(data: Any, function: Any) -> Any:
    """``data`` with ``function`` (a Python UDF ``id`` -> ``id``) evaluated on every row where the
    columns are next computed (after ``data``'s shuffle), columns unchanged."""
    return data.withColumn("id", udf_of(function)("id"))


def write_stream_files(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for i in range(STREAM_FILES):
        with open(os.path.join(directory, f"part-{i:03d}.json"), "w") as f:
            for j in range(STREAM_ROWS):
                f.write(json.dumps({"id": i * STREAM_ROWS + j, "v": j}) + "\n")


def scenarios(spark: Any, pipes: Any, tmp: str, out: dict[str, Any]) -> None:
    markers = os.path.join(tmp, "markers")
    os.makedirs(markers, exist_ok=True)
    src, sinks = os.path.join(tmp, "stream_src"), os.path.join(tmp, "sinks")
    write_stream_files(src)
    sink, filtered = os.path.join(sinks, "all"), os.path.join(sinks, "filtered")
    shuffled = os.path.join(sinks, "shuffled")
    assets = {sink: "cl_stream", filtered: "cl_stream_filtered", shuffled: "cl_stream_killed"}
    # warm both executors (their JVMs, a Python worker each) outside the block: a cold executor's first
    # task can run long enough to be speculated, and a speculated map task moves its shuffle output to
    # the other executor, which the kill scenarios need on both
    spark.range(0, 8, 1, 8).select(udf_of(lambda value: value)("id")).collect()
    with report_spark_writes(spark, pipes, assets=assets):
        for fmt in FORMATS:
            with scenario(spark, f"killed_{fmt}"):
                killer = kill_executor_once(os.path.join(markers, f"killed_{fmt}"))
                through(rows(spark), killer).write.format(fmt).mode("overwrite").saveAsTable(
                    f"cl_killed_{fmt}"
                )
        for fmt in FORMATS:
            with scenario(spark, f"straggler_{fmt}"):
                through(rows(spark), straggle_first_attempt).write.format(fmt).mode("overwrite").saveAsTable(
                    f"cl_spec_{fmt}"
                )
        with scenario(spark, "stream"):
            for path, keep in ((sink, "true"), (filtered, "v % 2 = 0")):
                query = (
                    spark.readStream.schema("id BIGINT, v BIGINT")
                    .option("maxFilesPerTrigger", 1)
                    .json(src)
                    .where(keep)
                    .writeStream.format("parquet")
                    .option("checkpointLocation", path + "_checkpoint")
                    .trigger(availableNow=True)
                    .start(path)
                )
                query.awaitTermination()
        with scenario(spark, "stream_killed"):
            killer = kill_executor_once(os.path.join(markers, "stream_killed"))
            query = through(
                spark.readStream.schema("id BIGINT, v BIGINT").json(src).repartition(4, "id"), killer
            ).writeStream.format("parquet")
            query = query.option("checkpointLocation", shuffled + "_checkpoint").trigger(availableNow=True)
            query.start(shuffled).awaitTermination()
    table = spark.table("cl_killed_parquet")
    with scenario(spark, "checks"):
        killer = kill_executor_once(os.path.join(markers, "checks"))
        report_spark_checks(
            pipes,
            table.where(udf_of(killer, deterministic=False)("id") >= 0),  # every row kept, none pushed
            {
                "v_non_negative": expect("v >= 0"),
                "name_not_null": not_null("name"),
                "k_unique": unique("k"),
                "k_in_range": in_range("k", min=0, max=599),
            },
            asset_key="cl_killed_parquet",
        )
    counts = spark.sql(
        "SELECT count(*) AS total, count_if(NOT (v >= 0) OR v IS NULL) AS v_non_negative,"
        " count_if(name IS NULL) AS name_not_null, count(*) - count(DISTINCT k) AS k_unique,"
        " count_if(k < 0 OR k > 599) AS k_in_range FROM cl_killed_parquet"
    ).collect()[0]
    out["check_counts"] = {name: int(value) for name, value in counts.asDict().items()}
    targets = [
        (f"cl_{kind}_{fmt}", f"SELECT id FROM cl_{kind}_{fmt}")
        for kind in ("killed", "spec")
        for fmt in FORMATS
    ]
    for name, path in (("cl_stream", sink), ("cl_stream_filtered", filtered), ("cl_stream_killed", shuffled)):
        targets.append((name, f"SELECT id FROM parquet.`{path}`"))
    read_back = " UNION ALL ".join(
        f"SELECT '{name}' AS target, count(*) AS n, count(DISTINCT id) AS ids FROM ({query})"
        for name, query in targets
    )
    out["tables"] = {
        row["target"]: [int(row["n"]), int(row["ids"])] for row in spark.sql(read_back).collect()
    }


def main() -> Any:
    with pipes_lib.open_dagster_pipes() as pipes:
        extras = dict(pipes.extras)
        tmp = extras["tmp"]
        stacks = open(os.path.join(tmp, "stacks.txt"), "w")  # open until the process exits
        faulthandler.dump_traceback_later(int(extras.get("watchdog", 400)), exit=True, file=stacks)
        spark = session(extras)
        out: dict[str, Any] = {"tables": {}}
        scenarios(spark, pipes, tmp, out)
        if type(spark).__module__.startswith("pyspark.sql.connect"):
            out["application_id"] = spark.conf.get("spark.app.id")
        else:
            out["application_id"] = spark.sparkContext.applicationId
        pipes.report_custom_message(out)
        if not extras.get("remote"):
            spark.stop()
    return spark


if __name__ == "__main__":
    finish(main())
