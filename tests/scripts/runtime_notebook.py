# Databricks notebook source
# MAGIC %md
# MAGIC Runtime-matrix notebook: launched by a stock dagster-databricks client through the emulator's Jobs
# MAGIC API; the bootstrap params arrive as widgets only, storage goes through the runtime's databricks-sdk.

# COMMAND ----------

import databricks.sdk.version
from databricks.sdk import WorkspaceClient

from dagster_pipes_spark import (
    PipesAutoParamsLoader,
    PipesDatabricksContextLoader,
    PipesDatabricksMessageWriter,
    open_dagster_pipes,
)

# COMMAND ----------

client = WorkspaceClient()
source = PipesAutoParamsLoader().source
with open_dagster_pipes(
    context_loader=PipesDatabricksContextLoader(client=client),
    message_writer=PipesDatabricksMessageWriter(client=client, interval=1),
) as pipes:
    for i in range(50):
        pipes.log.info(f"notebook line {i}")
    pipes.report_asset_materialization(
        metadata={
            "params_source": source,
            "databricks_sdk": databricks.sdk.version.__version__,
            "store": type(getattr(pipes._message_channel, "store", None)).__name__,
            "rows": pipes.get_extra("rows"),
        }
    )
