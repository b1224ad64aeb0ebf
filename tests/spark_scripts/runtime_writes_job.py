"""External side of the runtime-matrix Spark tests: runs in a runtime environment (pyspark 3.5 /
4.0 / newest, no dagster), opens Pipes, starts classic Spark (``local[2]``) or a Spark Connect client
of the server at the ``remote`` extra, writes inside ``report_spark_writes`` into its own database and
leaves the reporting to the hooks."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pyspark
from _job_exit import finish  # a sibling module (this directory is on sys.path)

import dagster_pipes_spark
from dagster_pipes_spark.spark import report_spark_writes


def spark_session(mechanism: str, remote: str | None, tmp: str):
    from pyspark.sql import SparkSession

    warnings.filterwarnings("ignore")  # Connect warns about static confs it cannot re-set
    if mechanism == "connect":
        assert remote, "a Connect run needs the server's sc:// URL in the 'remote' extra"
        return SparkSession.builder.remote(remote).getOrCreate()
    return (
        SparkSession.builder.master("local[2]")
        .appName("pipes-runtime-matrix")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", os.path.join(tmp, "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={tmp}")
        .getOrCreate()
    )


def main() -> Any:
    with dagster_pipes_spark.open_dagster_pipes() as pipes:
        mechanism, tmp, database = pipes.extras["mechanism"], pipes.extras["tmp"], pipes.extras["database"]
        spark = spark_session(mechanism, pipes.extras.get("remote"), tmp)
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        pipes.log.info(
            f"runtime: pyspark={pyspark.__version__} server={spark.version}"
            f" library={os.path.dirname(dagster_pipes_spark.__file__)}"
        )
        # set-up outside the hooks: nothing here may be reported
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
        spark.sql(f"USE {database}")
        spark.sql("CREATE TABLE appended (id BIGINT, name STRING, amount DOUBLE) USING parquet")
        rows = spark.range(10).selectExpr(
            "id", "concat('n', id) AS name", "CAST(id AS DOUBLE) * 1.5 AS amount"
        )
        out = os.path.join(tmp, "out")
        rows.limit(2).write.parquet(os.path.join(out, "already_there"))

        paths = {
            os.path.join(out, "events_parquet"): "events_parquet",
            os.path.join(out, "events_json"): "events_json",
            os.path.join(out, "already_there"): "failed_target",
        }
        with report_spark_writes(spark, pipes, paths) as report:
            rows.write.saveAsTable("orders")  # 10 rows; the default rule maps the table name
            rows.limit(5).write.mode("overwrite").parquet(os.path.join(out, "events_parquet"))
            rows.limit(4).write.json(os.path.join(out, "events_json"))
            rows.limit(3).write.insertInto("appended")
            rows.writeTo("v2_created").using("parquet").create()
            spark.sql("CREATE TABLE ctas_table USING parquet AS SELECT id, name FROM orders WHERE id < 4")
            try:
                rows.write.mode("error").parquet(os.path.join(out, "already_there"))
            except Exception:  # noqa: BLE001 - meant to fail; the hooks must report it as failed
                pipes.log.info("the failing write failed, as planned")
        pipes.log.info(
            f"hooks: mechanism={report.mechanism} writes={len(report.writes)}"
            f" failed={len(report.failed_writes)} reported={sorted(report.materializations)}"
        )
        if mechanism == "connect":
            unobserved = os.path.join(out, "unobserved")
            with (
                server_without_observed_metrics(),
                report_spark_writes(spark, pipes, {unobserved: "unobserved"}),
            ):
                rows.write.parquet(unobserved)
        spark.stop()
    return spark  # the Pipes context is closed: everything is reported


@contextlib.contextmanager
def server_without_observed_metrics() -> Iterator[None]:
    """Fault injection into pyspark (not into the library): the server's responses arrive without
    observed metrics, as from a Connect server before Spark 4, which sends none for commands."""
    from pyspark.sql.connect.client import core

    original = core.SparkConnectClient._execute_and_fetch_as_iterator

    def responses(self, *args, **kwargs):
        for response in original(self, *args, **kwargs):
            if not isinstance(response, core.PlanObservedMetrics):
                yield response

    core.SparkConnectClient._execute_and_fetch_as_iterator = responses  # type: ignore[method-assign]
    try:
        yield
    finally:
        core.SparkConnectClient._execute_and_fetch_as_iterator = original  # type: ignore[method-assign]


if __name__ == "__main__":
    finish(main())
