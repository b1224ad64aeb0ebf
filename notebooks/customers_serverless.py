# Databricks notebook source
# MAGIC %md
# MAGIC # Customers — serverless
# MAGIC
# MAGIC Launched by Dagster's `PipesDatabricksServerlessClient` (`notebook_task`): the bootstrap arrives as
# MAGIC widgets, the transport is a Unity Catalog Volume, and Spark is Spark Connect — the writes are
# MAGIC still reported automatically. Outside Dagster the Pipes calls are no-ops.

# COMMAND ----------

# MAGIC %pip install dagster-pipes-spark

# COMMAND ----------

from dagster_pipes_spark import (
    PipesAutoParamsLoader,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)
from dagster_pipes_spark.spark import report_spark_writes

# COMMAND ----------

with open_dagster_pipes(
    params_loader=PipesAutoParamsLoader(widgets=dbutils.widgets),
    context_loader=PipesUnityCatalogVolumesContextLoader(),
    message_writer=PipesUnityCatalogVolumesMessageWriter(),
) as pipes:
    segments = (
        list(pipes.extras.get("segments", ["retail", "wholesale"])) if pipes.is_asset_step else ["retail"]
    )
    pipes.log.info(f"building customers for segments {segments}")
    customers = spark.range(50).selectExpr(
        "id AS customer_id",
        f"element_at(array({', '.join(repr(s) for s in segments)}), CAST(id % {len(segments)} + 1 AS INT)) AS segment",
    )
    with report_spark_writes(spark, pipes):
        customers.write.mode("overwrite").saveAsTable("customers")
    print(f"wrote {customers.count()} customers")
    dupes = customers.groupBy("customer_id").count().where("count > 1").count()
    pipes.report_asset_check("unique_customer_id", passed=dupes == 0, metadata={"duplicates": dupes})
