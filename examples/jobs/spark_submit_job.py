"""A spark-submit / spark_python_task job: `spark-submit spark_submit_job.py [app args] [pipes args]`.

The default params loader finds the bootstrap wherever Dagster put it: env vars (new cluster),
`--dagster-pipes-*` CLI args (existing cluster, serverless; other args are ignored), or widgets.
The Databricks loader/writer follow the params: a `/Volumes/...` path means UC Volumes, otherwise DBFS.
"""

import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as sf

from dagster_pipes_spark import PipesDatabricksContextLoader, PipesDatabricksMessageWriter, open_dagster_pipes
from dagster_pipes_spark.spark import report_spark_writes


def main() -> None:
    spark = SparkSession.builder.appName("pipes-spark-submit").getOrCreate()
    with open_dagster_pipes(
        context_loader=PipesDatabricksContextLoader(), message_writer=PipesDatabricksMessageWriter()
    ) as pipes:
        table = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "revenue"
        pipes.log.info(f"spark-submit job writing {table} (app args: {sys.argv[1:2]})")
        df = (
            spark.range(200)
            .selectExpr("id % 10 AS day", "id * 1.5 AS revenue")
            .groupBy("day")
            .agg(sf.sum("revenue").alias("revenue"))  # Delta tables take no "sum(revenue)" column name
        )
        with report_spark_writes(spark, pipes):
            df.write.mode("overwrite").saveAsTable(table)
        pipes.report_asset_check("has_rows", passed=spark.table(table).count() > 0, asset_key=table)


if __name__ == "__main__":
    main()
