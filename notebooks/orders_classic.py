# Databricks notebook source
# MAGIC %md
# MAGIC # Orders — classic cluster
# MAGIC
# MAGIC Launched by Dagster's `PipesDatabricksClient` (`notebook_task`). Reads extras, writes a Delta/Parquet
# MAGIC table through Spark — the materialization (rows, schema, table name, Delta version) is reported
# MAGIC automatically — and runs an asset check. Outside Dagster the Pipes calls are no-ops.

# COMMAND ----------

# MAGIC %pip install dagster-pipes-spark

# COMMAND ----------

from dagster_pipes_spark import (
    PipesAutoParamsLoader,
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    open_dagster_pipes,
)
from dagster_pipes_spark.spark import report_spark_writes

# COMMAND ----------

with open_dagster_pipes(
    params_loader=PipesAutoParamsLoader(widgets=dbutils.widgets),
    context_loader=PipesDbfsContextLoader(),
    message_writer=PipesDbfsMessageWriter(),
) as pipes:
    rows = int(pipes.extras.get("rows", 100)) if pipes.is_asset_step else 100
    pipes.log.info(f"building orders with {rows} rows")
    orders = spark.range(rows).selectExpr(
        "id AS order_id", "id % 7 AS customer_id", "CAST(id * 3 % 101 AS DOUBLE) AS amount"
    )
    with report_spark_writes(spark, pipes):
        orders.write.mode("overwrite").saveAsTable("orders")
    negative = spark.table("orders").where("amount < 0").count()
    pipes.report_asset_check(
        "no_negative_amounts", passed=negative == 0, metadata={"negative_rows": negative}
    )
