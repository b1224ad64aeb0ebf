"""External side of the partition tests: computes ``partition_predicate`` for the partition Dagster
asked for, overwrites exactly that partition of partitioned parquet tables in three ways inside
``report_spark_writes``, and reports back (as a custom message) what the tables hold afterwards.

Extras: ``mechanism`` (classic / connect), ``tmp``, ``scenario`` (daily / static / multi / range) and
``probes`` (predicates to evaluate against fixed rows, to check their semantics in Spark).
"""

from __future__ import annotations

import os
from typing import Any

from dagster_pipes_spark import DagsterPipesError, open_dagster_pipes
from dagster_pipes_spark.spark import partition_predicate, report_spark_writes
from dagster_pipes_spark.testing._notebook import LOCAL_SPARK_CONF, make_spark_session

#: The partition column(s) of each scenario's tables, and what partition_predicate gets as column=.
PARTITIONING: dict[str, tuple[list[str], Any]] = {
    "daily": (["ds"], "ds"),
    "static": (["region"], "region"),
    "multi": (["region", "ds"], {"date": "ds", "region": "region"}),
}
REGIONS = ["eu", "us", "o'x"]


def source_rows() -> list[tuple[int, str, str]]:
    """``(v, region, ds)``: 36 rows over three regions and four days."""
    return [(v, REGIONS[v % 3], f"2024-01-0{1 + v % 4}") for v in range(36)]


def main() -> None:
    with open_dagster_pipes() as pipes:
        scenario = pipes.extras["scenario"]
        if scenario == "range":  # no Spark needed: the predicate cannot be computed
            try:
                partition_predicate(pipes, "region")
            except DagsterPipesError as exc:
                pipes.report_custom_message({"error": str(exc)})
            return
        mechanism, tmp = pipes.extras["mechanism"], pipes.extras["tmp"]
        # a free port for a Connect server (concurrent runs); the warehouse and metastore in tmp
        java_options = f"{LOCAL_SPARK_CONF['spark.driver.extraJavaOptions']} -Dderby.system.home={tmp}"
        spark = make_spark_session(
            mechanism,
            {
                "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
                "spark.driver.extraJavaOptions": java_options,
            },
        )
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        partition_columns, column = PARTITIONING[scenario]
        spark.createDataFrame(source_rows(), "v BIGINT, region STRING, ds STRING").selectExpr(
            "v", "region", "CAST(ds AS DATE) AS ds"
        ).write.saveAsTable("src")
        for table in ("events_dpo", "events_sql", "events_append"):
            spark.sql(
                f"CREATE TABLE {table} (v BIGINT, region STRING, ds DATE) USING parquet"
                f" PARTITIONED BY ({', '.join(partition_columns)})"
            )
            # the old contents: one row (v = -1) in every partition
            old = spark.table("src").selectExpr("-1 AS v", "region", "ds").distinct()
            if partition_columns == ["ds"]:
                old = old.selectExpr("-1 AS v", "'old' AS region", "ds").distinct()
            elif partition_columns == ["region"]:
                old = old.selectExpr("-1 AS v", "region", "DATE '1999-01-01' AS ds").distinct()
            old.select(*spark.table(table).columns).write.insertInto(table)

        where = partition_predicate(pipes, column, data="src")  # types from the table's schema
        spec = partition_predicate(pipes, column, column_type="string").replace(" AND ", ", ")
        values = [c for c in spark.table("events_sql").columns if c not in partition_columns]
        spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
        with report_spark_writes(spark, pipes) as report:
            # dynamic partition overwrite of the filtered rows: replaces exactly the partition
            rows = spark.table("src").where(where)
            rows.select(*spark.table("events_dpo").columns).write.insertInto("events_dpo", overwrite=True)
            # INSERT OVERWRITE ... PARTITION (<static spec>) SELECT ... WHERE <predicate>
            spark.sql(
                f"INSERT OVERWRITE events_sql PARTITION ({spec}) SELECT {', '.join(values)} FROM src WHERE {where}"
            )
            # an append to the partition replaces nothing: no partition row count
            rows.select(*spark.table("events_append").columns).write.insertInto("events_append")
        tables = {
            table: sorted((int(r["v"]), str(r["region"]), str(r["ds"])) for r in spark.table(table).collect())
            for table in ("events_dpo", "events_sql", "events_append")
        }
        pipes.report_custom_message(
            {
                "where": where,
                "spec": spec,
                "selected": spark.table("src").where(where).count(),
                "tables": tables,
                "writes": len(report.writes),
                "probes": [run_probe(spark, probe) for probe in pipes.extras.get("probes", [])],
            }
        )
        spark.stop()


def run_probe(spark: Any, probe: dict[str, Any]) -> list[Any]:
    """The values of ``probe["column"]`` among ``probe["values"]`` (SQL literals) that
    ``probe["predicate"]`` selects; instants come back as epoch seconds, so the session time zone
    (set to Tokyo here, on purpose) does not matter."""
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")
    column, kind = probe["column"], probe["type"]
    rows = ", ".join(f"({value})" for value in probe["values"])
    selected = (
        f"CAST(unix_timestamp({column}) AS BIGINT)" if kind == "timestamp" else f"CAST({column} AS STRING)"
    )
    query = (
        f"SELECT {selected} AS out FROM VALUES {rows} AS t({column}) WHERE {probe['predicate']} ORDER BY 1"
    )
    return [row["out"] for row in spark.sql(query).collect()]


if __name__ == "__main__":
    main()
