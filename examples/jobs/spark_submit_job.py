"""A spark-submit / spark_python_task job: `spark-submit spark_submit_job.py [app args] [pipes args]`.

The default params loader finds the bootstrap wherever Dagster put it: env vars (new cluster),
`--dagster-pipes-*` CLI args (existing cluster, serverless; other args are ignored), or widgets.
The transport follows the params: a `/Volumes/...` path means UC Volumes, otherwise DBFS.
"""

import sys

from pyspark.sql import SparkSession

from dagster_pipes_spark import (
    PipesAutoParamsLoader,
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)
from dagster_pipes_spark.spark import report_spark_writes


def main() -> None:
    params = PipesAutoParamsLoader()
    on_volumes = params.is_dagster_pipes_process() and str(params.load_messages_params().get("path", "")).startswith("/Volumes/")
    loader, writer = (
        (PipesUnityCatalogVolumesContextLoader(), PipesUnityCatalogVolumesMessageWriter())
        if on_volumes
        else (PipesDbfsContextLoader(), PipesDbfsMessageWriter())
    )
    spark = SparkSession.builder.appName("pipes-spark-submit").getOrCreate()
    with open_dagster_pipes(params_loader=params, context_loader=loader, message_writer=writer) as pipes:
        table = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "revenue"
        pipes.log.info(f"spark-submit job writing {table} (app args: {sys.argv[1:2]})")
        df = spark.range(200).selectExpr("id % 10 AS day", "id * 1.5 AS revenue").groupBy("day").sum("revenue")
        with report_spark_writes(spark, pipes):
            df.write.mode("overwrite").saveAsTable(table)
        pipes.report_asset_check("has_rows", passed=spark.table(table).count() > 0, asset_key=table)


if __name__ == "__main__":
    main()
