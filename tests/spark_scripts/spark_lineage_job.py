"""External side of the column-lineage tests: opens Pipes, starts Spark (classic or Connect, from
the ``mechanism`` extra), builds two source tables and a source directory, and writes derived
tables inside ``report_spark_writes`` -- once with the default / dict mapping of assets, once with a
callable mapping -- leaving the reporting (and the lineage) to the hooks."""

from __future__ import annotations

import os

import dagster_pipes_spark as pipes_lib
from dagster_pipes_spark.spark import report_spark_writes
from dagster_pipes_spark.testing._notebook import make_spark_session

# Two sources joined with aliases, an aggregation in a CTE, a window function, a scalar subquery
# and a union.
REPORT_QUERY = """
WITH enriched AS (
    SELECT o.order_id, o.amount * 1.1 AS gross, c.name AS customer, c.country
    FROM src_orders o JOIN src_customers AS c ON o.customer_id = c.customer_id
    WHERE o.status = 'paid'
),
per_country AS (
    SELECT country, sum(gross) AS total, count(*) AS n FROM enriched GROUP BY country
)
SELECT customer AS label,
       CAST(gross AS DOUBLE) AS value,
       rank() OVER (PARTITION BY country ORDER BY gross DESC) AS position,
       upper(country) AS region,
       (SELECT max(amount) FROM src_orders) AS top
FROM enriched
UNION ALL
SELECT concat('total ', country), total, n, country, total / n FROM per_country
"""


def build_sources(spark, tmp: str) -> str:
    """The source tables and a directory of customer files (outside the hooks)."""
    spark.createDataFrame(
        [(1, 10, 5.0, "paid"), (2, 10, 7.5, "paid"), (3, 20, 1.0, "open"), (4, 30, 2.5, "paid")],
        "order_id INT, customer_id INT, amount DOUBLE, status STRING",
    ).write.saveAsTable("src_orders")
    customers = spark.createDataFrame(
        [(10, "ann", "fr", "smb"), (20, "bob", "de", "ent"), (30, "cid", "fr", "ent")],
        "customer_id INT, name STRING, country STRING, segment STRING",
    )
    customers.write.saveAsTable("src_customers")
    # a long path (over 200 characters), as a Volume or a date-partitioned landing zone gives
    deep = "landing-zone-" + "x" * max(0, 210 - len(tmp))
    customer_files = os.path.join(tmp, "files", deep, "customers")
    assert len(customer_files) > 200
    customers.write.parquet(customer_files)
    spark.sql("CREATE TABLE summary (who STRING, total DOUBLE) USING parquet")
    return customer_files


def by_customer(spark, customer_files: str):
    """The DataFrame API: a table joined with files read by path, aggregated, and an expression
    over both."""
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        # this process also hosts the local Connect server: pyspark.sql.functions would build
        # classic columns
        from pyspark.sql.connect import functions as sf
    else:
        from pyspark.sql import functions as sf  # type: ignore[no-redef]

    orders = spark.table("src_orders").alias("o")
    customers = spark.read.parquet(customer_files).alias("c")
    return (
        orders.join(customers, orders["customer_id"] == customers["customer_id"])
        .groupBy(sf.col("c.name").alias("name"))
        .agg(sf.sum("o.amount").alias("spent"), sf.count("o.status").alias("orders"))
        .withColumn("label", sf.concat(sf.col("name"), sf.lit(": "), sf.col("spent").cast("string")))
        .withColumn("tier", sf.when(sf.col("spent") > 5, sf.col("name")).otherwise(sf.lit("small")))
    )


def main() -> None:
    with pipes_lib.open_dagster_pipes() as pipes:
        mechanism = pipes.extras["mechanism"]
        tmp = pipes.extras["tmp"]
        spark = make_spark_session(mechanism, {"spark.sql.warehouse.dir": os.path.join(tmp, "warehouse")})
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        customer_files = build_sources(spark, tmp)
        out = os.path.join(tmp, "out", "by_customer")

        # default rule for tables (targets in scope by name; sources by their bare name), a dict
        # for paths
        assets = {customer_files: "customer_files", out: "by_customer"}
        with report_spark_writes(spark, pipes, assets) as report:
            spark.sql(f"CREATE TABLE report USING parquet AS {REPORT_QUERY}")  # SQL
            spark.sql(REPORT_QUERY).write.saveAsTable("report_df")  # a DataFrame of SQL
            frame = by_customer(spark, customer_files)
            frame.write.mode("overwrite").parquet(out)  # DataFrame API, read and written by path
            frame.select("name", "spent").write.insertInto("summary")  # by position: who, total

        def to_asset(target: str):
            name = target.rsplit(".", 1)[-1]
            if target == customer_files:
                return ["files", "customers"]
            if name.startswith("src_"):
                return ["warehouse", name[len("src_") :]]  # multi-part keys
            return name

        with report_spark_writes(spark, pipes, to_asset) as mapped:
            spark.sql(f"CREATE TABLE report_mapped USING parquet AS {REPORT_QUERY}")
            by_customer(spark, customer_files).write.saveAsTable("by_customer_mapped")
        pipes.log.info(
            f"hooks: mechanism={report.mechanism}/{mapped.mechanism}"
            f" writes={len(report.writes)}/{len(mapped.writes)}"
        )
        spark.stop()


if __name__ == "__main__":
    main()
