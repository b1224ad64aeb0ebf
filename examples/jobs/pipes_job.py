"""An external job: the same file runs locally, as a spark_python_task, a wheel entry point or a notebook.

The transport comes from argv (`file`, `dbfs`, `volumes`); on Databricks you would simply pass the
DBFS/Volumes loader and writer. The params loader is the default one: env vars, CLI args or widgets.
"""

import random
import sys
import time
from typing import Any

from dagster_pipes_spark import (
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)

transport = sys.argv[1] if len(sys.argv) > 1 else "file"
kwargs: dict[str, Any] = {}
if transport == "dbfs":
    kwargs = {
        "context_loader": PipesDbfsContextLoader(),
        "message_writer": PipesDbfsMessageWriter(interval=1),
    }
elif transport == "volumes":
    kwargs = {
        "context_loader": PipesUnityCatalogVolumesContextLoader(),
        "message_writer": PipesUnityCatalogVolumesMessageWriter(interval=1),
    }

with open_dagster_pipes(**kwargs) as pipes:
    rows = int(pipes.get_extra("rows"))
    pipes.log.info(f"{pipes.asset_key}: generating {rows} rows over {transport}")
    rng = random.Random(rows)
    values = [rng.randint(1, 100) for _ in range(rows)]
    for step in range(5):
        pipes.log.info(f"step {step + 1}/5 done")
        time.sleep(0.05)
    pipes.report_asset_check(
        "values_positive", passed=all(v > 0 for v in values), metadata={"min": min(values)}
    )
    pipes.report_asset_materialization(
        metadata={
            "dagster/row_count": rows,
            "total": sum(values),
            "transport": transport,
            "backend": kwargs["message_writer"].store.describe() if kwargs else "local file",
            "schema": {"type": "table_schema", "raw_value": [{"name": "value", "type": "int"}]},
        },
        data_version=str(sum(values)),
    )
