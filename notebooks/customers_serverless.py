# Databricks notebook source
# MAGIC %md
# MAGIC # Customers — serverless
# MAGIC
# MAGIC Launched by Dagster's `PipesDatabricksServerlessClient` (`notebook_task`): the bootstrap arrives as
# MAGIC widgets, the transport is a Unity Catalog Volume, and Spark is Spark Connect — the writes are
# MAGIC still reported automatically. The rows are checked with the team's DQX rules (the file runs
# MAGIC unchanged, with DQX's meaning): rows no `error` rule flags go to `customers`, flagged rows to
# MAGIC `customers_quarantine` with DQX's `_errors` / `_warnings`; each rule is a Dagster asset check.
# MAGIC Outside Dagster the Pipes calls are no-ops.

# COMMAND ----------

# MAGIC %pip install dagster-pipes-spark

# COMMAND ----------

import yaml

from dagster_pipes_spark import (
    PipesAutoParamsLoader,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)
from dagster_pipes_spark.spark import load_checks, report_spark_writes, split_spark_checks

# COMMAND ----------

# The team's DQX checks file (databricks-labs-dqx 0.17 format), as kept in the repository
RULES = """
- criticality: error
  check: {function: is_unique, arguments: {columns: [customer_id]}}
- criticality: error
  check: {function: is_in_list, arguments: {column: segment, allowed: ["'retail'", "'wholesale'", "'online'"]}}
- criticality: warn
  check: {function: is_valid_email, arguments: {column: email}}
- name: online_customers_have_email
  criticality: warn
  filter: segment = 'online'
  check: {function: is_not_null_and_not_empty, arguments: {column: email, trim_strings: true}}
- name: customers_per_segment
  criticality: error
  check:
    function: is_aggr_not_less_than
    arguments: {column: customer_id, aggr_type: count, group_by: [segment], limit: 5}
"""

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
        "CASE id % 10 WHEN 7 THEN 'not-an-email' WHEN 3 THEN NULL ELSE concat('c', id, '@example.com') END AS email",
    )
    rules = load_checks(yaml.safe_load(RULES))
    with report_spark_writes(spark, pipes):
        valid, quarantined = checked = split_spark_checks(pipes, customers, rules, asset_key="customers")
        valid.write.mode("overwrite").saveAsTable("customers")
        quarantined.write.mode("overwrite").saveAsTable("customers_quarantine")
    checked.unpersist()
    print(f"wrote {valid.count()} customers, {quarantined.count()} to quarantine")
