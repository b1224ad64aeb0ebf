"""External side of the Delta / Iceberg tests: one Spark session with the real Delta and Iceberg jars
(classic or Spark Connect), every kind of Delta write inside ONE ``report_spark_writes`` block, then
the tables' own history sent back as a custom message so the test can compare what the hooks reported
with what Delta committed.

Extras: ``mechanism`` (classic / connect), ``tmp``, ``jars`` (comma-separated paths), ``remote``
(``sc://...`` of a standalone Connect server, else a local one), ``iceberg`` (bool).
The Dagster run is partitioned (daily): ``partition_predicate`` gives the ``day`` predicate.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time
import warnings
from typing import Any

from _job_exit import finish  # a sibling module (this directory is on sys.path)

from dagster_pipes_spark import open_dagster_pipes
from dagster_pipes_spark.spark import not_null, partition_predicate, report_spark_writes

#: tables written inside the block, one asset each (the default rule: asset key == table name)
DELTA_TABLES = [
    "d_saved",
    "d_insert_into",
    "d_ctas",
    "d_rtas",
    "d_sql_insert",
    "d_sql_overwrite",
    "d_merge",
    "d_update",
    "d_delete",
    "d_replace_where",
    "d_replace_where_sql",
    "d_dynamic",
    "d_maint",
]
API_TABLES = ["d_api_merge", "d_api_update", "d_api_delete"]
ICEBERG_TABLES = ["ice_events"]
SCHEMA = "id BIGINT, name STRING, amount DOUBLE"
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]


def session(mechanism: str, tmp: str, jars: list[str], remote: str | None, iceberg: bool) -> Any:
    from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF, make_spark_session
    from dagster_pipes_spark.testing.table_formats import spark_confs

    warnings.filterwarnings("ignore")
    if remote:  # a client of a standalone server (which has the jars)
        from pyspark.sql import SparkSession

        return SparkSession.builder.remote(remote).getOrCreate()
    java = f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} -Dderby.system.home={tmp}"
    used = [j for j in jars if iceberg or not os.path.basename(j).startswith("iceberg")]
    confs = spark_confs(used, iceberg_warehouse=os.path.join(tmp, "iceberg"))
    return make_spark_session(
        mechanism,
        {
            **confs,
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": java,
            "spark.databricks.delta.snapshotPartitions": "2",
        },
    )


def delta_api(jars: list[str]) -> Any:
    """``delta.tables.DeltaTable``: the delta-spark package, else the same Python package bundled in
    the delta-spark jar (the Spark 3.5 runtime's pyspark 3.5.0 is older than delta-spark 3.3 allows)."""
    try:
        from delta.tables import DeltaTable
    except ImportError:
        sys.path.extend(j for j in jars if os.path.basename(j).startswith("delta-spark"))
        from delta.tables import DeltaTable
    return DeltaTable


def rows(spark: Any, ids: range, day: str | None = None) -> Any:
    data = spark.range(ids.start, ids.stop).selectExpr(
        "id", "concat('n', id) AS name", "CAST(id AS DOUBLE) * 1.5 AS amount"
    )
    return data.selectExpr("*", f"'{day}' AS day") if day else data


def setup(spark: Any, api: bool) -> None:
    """Tables the block writes into (outside the hooks: nothing here is reported)."""
    for table in ("d_insert_into", "d_rtas", "d_sql_insert", "d_sql_overwrite", "d_maint"):
        spark.sql(f"CREATE TABLE {table} ({SCHEMA}) USING delta")
    spark.sql(f"INSERT INTO d_sql_overwrite SELECT * FROM VALUES (99, 'x', 1.0) AS t({'id, name, amount'})")
    for table in ("d_merge", "d_update", "d_delete", *(API_TABLES if api else ())):
        rows(spark, range(10)).repartition(1).write.format("delta").saveAsTable(table)
    rows(spark, range(5, 15)).selectExpr("id", "upper(name) AS name", "amount * 10 AS amount").write.format(
        "delta"
    ).saveAsTable("d_merge_src")
    for table in ("d_replace_where", "d_replace_where_sql", "d_dynamic"):
        spark.sql(f"CREATE TABLE {table} ({SCHEMA}, day STRING) USING delta PARTITIONED BY (day)")
        for i, day in enumerate(DAYS):
            rows(spark, range(i * 10, i * 10 + 4), day).write.format("delta").mode("append").saveAsTable(
                table
            )
    for i in range(3):
        rows(spark, range(i, i + 1)).write.format("delta").mode("append").saveAsTable("d_maint")


def delta_writes(spark: Any, pipes: Any, tmp: str, api: bool) -> None:
    """Every kind of Delta write, each to its own table (expected figures in the test)."""
    where = partition_predicate(pipes, "day", column_type="string")  # day = '2024-01-02'
    rows(spark, range(10)).write.format("delta").mode("overwrite").saveAsTable("d_saved")
    rows(spark, range(10, 13)).write.format("delta").mode("append").saveAsTable("d_saved")
    rows(spark, range(4)).write.insertInto("d_insert_into")
    spark.sql("CREATE TABLE d_ctas USING delta AS SELECT id, name FROM d_merge WHERE id < 5")
    spark.sql("REPLACE TABLE d_rtas USING delta AS SELECT id, name, amount FROM d_merge WHERE id < 6")
    spark.sql("INSERT INTO d_sql_insert SELECT id, name, amount FROM d_merge WHERE id >= 7")
    spark.sql("INSERT OVERWRITE d_sql_overwrite SELECT id, name, amount FROM d_merge WHERE id < 2")
    spark.sql(
        "MERGE INTO d_merge t USING d_merge_src s ON t.id = s.id"
        " WHEN MATCHED AND t.id >= 8 THEN DELETE"
        " WHEN MATCHED THEN UPDATE SET t.name = s.name, t.amount = s.amount"
        " WHEN NOT MATCHED THEN INSERT (id, name, amount) VALUES (s.id, s.name, s.amount)"
    )
    spark.sql("UPDATE d_update SET amount = amount * 2 WHERE id < 3")
    spark.sql("DELETE FROM d_delete WHERE id >= 7")
    rows(spark, range(100, 106), "2024-01-02").write.format("delta").mode("overwrite").option(
        "replaceWhere", where
    ).saveAsTable("d_replace_where")
    spark.sql(
        f"INSERT INTO d_replace_where_sql REPLACE WHERE {where}"
        " SELECT id + 200 AS id, name, amount, day FROM d_replace_where WHERE day = '2024-01-02'"
    )
    rows(spark, range(300, 307), "2024-01-02").where(where).write.format("delta").mode("overwrite").option(
        "partitionOverwriteMode", "dynamic"
    ).saveAsTable("d_dynamic")
    path = os.path.join(tmp, "out", "d_path")
    rows(spark, range(8)).write.format("delta").save(path)
    rows(spark, range(8, 10)).write.format("delta").mode("append").save(path)
    spark.sql("OPTIMIZE d_maint")
    spark.sql("VACUUM d_maint RETAIN 168 HOURS")
    if api:
        delta_table = delta_api(pipes.extras["jars"].split(","))
        source = spark.table("d_merge_src")
        (
            delta_table.forName(spark, "d_api_merge")
            .alias("t")
            .merge(source.alias("s"), "t.id = s.id")
            .whenMatchedUpdate(set={"name": "s.name", "amount": "s.amount"})
            .whenNotMatchedInsertAll()
            .execute()
        )
        delta_table.forName(spark, "d_api_update").update("id < 4", {"amount": "amount + 1"})
        delta_table.forName(spark, "d_api_delete").delete("id % 2 = 0")


def checked_block(spark: Any, pipes: Any, tmp: str) -> None:
    """``checks=`` read the version the block wrote: a later commit to the same table by another
    writer (a path write to its location with its own ``userMetadata``, as another job's commit
    carries; it maps to no asset) adds rows that would fail them."""
    location = os.path.join(tmp, "out", "d_checked")
    spark.sql(f"CREATE TABLE d_checked ({SCHEMA}) USING delta LOCATION '{location}'")
    checks: dict[str, dict[str, Any]] = {
        "d_checked": {"ids_positive": "id >= 0", "name_not_null": not_null("name")}
    }
    with report_spark_writes(spark, pipes, checks=checks):
        rows(spark, range(5)).write.format("delta").mode("append").saveAsTable("d_checked")
        spark.range(2).selectExpr(
            "-1 - id AS id", "CAST(NULL AS STRING) AS name", "CAST(0 AS DOUBLE) AS amount"
        ).write.format("delta").mode("append").option("userMetadata", "another writer").save(location)


def skewed_block(spark: Any, pipes: Any, tmp: str) -> str:
    """A table whose commit files look older than the block (a storage clock behind the driver's,
    set with ``os.utime``): its commits are not among those read from the logs, so the hooks fall
    back to ``DESCRIBE HISTORY`` for it, with the same figures."""
    path = os.path.join(tmp, "out", "d_skewed")
    with report_spark_writes(spark, pipes, {path: "d_skewed"}):
        rows(spark, range(3)).write.format("delta").mode("overwrite").save(path)
        rows(spark, range(3, 7)).write.format("delta").mode("append").save(path)
        an_hour_ago = time.time() - 3600
        log = os.path.join(path, "_delta_log")
        for name in os.listdir(log):
            os.utime(os.path.join(log, name), (an_hour_ago, an_hour_ago))
    return path


def iceberg_writes(spark: Any) -> None:
    """Iceberg: create, append, overwrite by filter, delete (the hadoop catalog ``iceberg``)."""
    rows(spark, range(10)).writeTo("iceberg.db.ice_events").using("iceberg").create()
    rows(spark, range(10, 14)).writeTo("iceberg.db.ice_events").append()
    spark.sql("DELETE FROM iceberg.db.ice_events WHERE id < 3")


def history(spark: Any, table: str) -> list[dict[str, Any]]:
    out = []
    for row in spark.sql(f"DESCRIBE HISTORY {table}").collect():
        out.append(
            {
                "version": int(row["version"]),
                "operation": row["operation"],
                "metrics": dict(row["operationMetrics"] or {}),
            }
        )
    return sorted(out, key=lambda c: c["version"])


def main() -> Any:
    with open_dagster_pipes() as pipes:
        mechanism, tmp = pipes.extras["mechanism"], pipes.extras["tmp"]
        # A hang (e.g. a Spark Connect client deadlock) ends the job with every thread's stack in
        # stacks.txt, which the test prints, instead of a bare timeout.
        stacks = open(os.path.join(tmp, "stacks.txt"), "w")
        faulthandler.dump_traceback_later(int(pipes.extras.get("watchdog", 840)), exit=True, file=stacks)
        jars = [j for j in pipes.extras["jars"].split(",") if j]
        iceberg = bool(pipes.extras.get("iceberg"))
        spark = session(mechanism, tmp, jars, pipes.extras.get("remote"), iceberg)
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        # a session time zone behind UTC, as a US workspace sets it: the hooks' read of the commit
        # files since the block began must not take their UTC times for local ones (it would find none)
        spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
        database = pipes.extras.get("database")
        if database:  # a standalone server is shared: one database per run
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
            spark.sql(f"USE {database}")
        api = mechanism == "classic"  # DeltaTable on Connect needs Delta's Connect server plugin
        if api:  # importable before the block, as on Databricks (the hooks wrap its merge builder)
            delta_api(jars)
        setup(spark, api)
        path = os.path.join(tmp, "out", "d_path")
        with report_spark_writes(spark, pipes, {path: "d_path"}) as report:
            delta_writes(spark, pipes, tmp, api)
            if iceberg:
                iceberg_writes(spark)
        pipes.log.info(
            f"hooks: mechanism={report.mechanism} writes={len(report.writes)}"
            f" failed={len(report.failed_writes)} exit={report.exit_seconds:.2f}s"
        )
        checked_block(spark, pipes, tmp)
        skewed = skewed_block(spark, pipes, tmp)
        tables = DELTA_TABLES + (API_TABLES if api else []) + ["d_merge_src", "d_checked"]
        histories = {t: history(spark, t) for t in tables}
        histories["d_path"] = history(spark, f"delta.`{path}`")
        histories["d_skewed"] = history(spark, f"delta.`{skewed}`")
        snapshots: list[dict[str, Any]] = []
        if iceberg:
            for row in spark.sql(
                "SELECT snapshot_id, operation, summary FROM iceberg.db.ice_events.snapshots"
                " ORDER BY committed_at"
            ).collect():
                snapshots.append(
                    {
                        "id": int(row["snapshot_id"]),
                        "operation": row["operation"],
                        "summary": dict(row["summary"]),
                    }
                )
        pipes.report_custom_message({"histories": histories, "iceberg": snapshots})
        spark.stop()
    return spark  # the Pipes context is closed: everything is reported


if __name__ == "__main__":
    finish(main())
