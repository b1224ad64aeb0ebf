# Databricks notebook source
# MAGIC %md
# MAGIC # Payments — data-quality checks
# MAGIC
# MAGIC Launched by Dagster's `PipesDatabricksClient` (`notebook_task`). Writes the `payments` table (its
# MAGIC materialization is reported automatically), then checks it with `report_spark_checks`: every
# MAGIC check in one pass over the data (the customer look-up and the aggregate condition included),
# MAGIC each reported as a Dagster asset check with the failing-row counts and a few failing rows.
# MAGIC Outside Dagster the checks still run and print; nothing is reported.

# COMMAND ----------

# MAGIC %pip install dagster-pipes-spark

# COMMAND ----------

from datetime import timedelta

from dagster_pipes_spark import (
    PipesAutoParamsLoader,
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    open_dagster_pipes,
)
from dagster_pipes_spark.spark import (
    accepted_values,
    expect_aggregate,
    fresh,
    has_columns,
    in_range,
    matches,
    not_null,
    relationships,
    report_spark_checks,
    report_spark_writes,
    row_count,
    unique,
)

# COMMAND ----------

with open_dagster_pipes(
    params_loader=PipesAutoParamsLoader(widgets=dbutils.widgets),
    context_loader=PipesDbfsContextLoader(),
    message_writer=PipesDbfsMessageWriter(),
) as pipes:
    rows = int(pipes.extras.get("rows", 100)) if pipes.is_asset_step else 100
    payments = spark.range(rows).selectExpr(
        "id AS payment_id",
        "id % 7 AS customer_id",
        "CAST(id * 3 % 101 AS DECIMAL(10,2)) AS amount",
        "element_at(array('card', 'transfer', 'cash'), CAST(id % 3 + 1 AS INT)) AS method",
        "format_string('PAY-%06d', id) AS reference",
        "current_timestamp() AS paid_at",
    )
    customers = spark.range(7).selectExpr("id AS customer_id", "concat('customer ', id) AS name")
    with report_spark_writes(spark, pipes):
        payments.write.mode("overwrite").saveAsTable("payments")

    results = report_spark_checks(
        pipes,
        spark.table("payments"),
        {
            "amount_non_negative": "amount >= 0",
            "payment_id_not_null": not_null("payment_id"),
            "payment_id_unique": unique("payment_id"),
            "method_known": accepted_values("method", ["card", "transfer"], severity="WARN"),
            "amount_in_range": in_range("amount", min=0, max=100),
            "card_reference": matches("reference", r"^PAY-[0-9]{6}$", where="method = 'card'"),
            "customer_exists": relationships("customer_id", to=customers),
            "cash_share": expect_aggregate("count_if(method = 'cash') <= 0.5 * count(*)"),
            "enough_rows": row_count(min=1),
            "fresh": fresh("paid_at", max_age=timedelta(hours=1)),
            "contract": has_columns({"payment_id": "bigint", "amount": "decimal(10,2)"}),
        },
    )
    for name, result in results.items():
        outcome = "passed" if result.passed else f"FAILED ({result.severity})"
        print(f"{name}: {outcome}, {result.failed_rows or 0} of {result.total_rows} rows failing")
