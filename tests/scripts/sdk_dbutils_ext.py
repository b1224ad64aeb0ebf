"""databricks-sdk's own ``dbutils`` (``WorkspaceClient().dbutils``: ``RemoteDbUtils``, REST) as the
dbutils of the Databricks loaders and writers, in a runtime of the matrix.

argv: mode, kind (dbfs|volumes)
* ``handed``: ``dbutils=WorkspaceClient().dbutils`` given to the loader and the writer;
* ``found``: no backend given; ``dbutils = WorkspaceClient().dbutils`` is a global of ``__main__`` (as
  a notebook's is), ``DATABRICKS_RUNTIME_VERSION`` and an unreachable ``SPARK_REMOTE`` are set (the
  test's env): the SDK must not be asked for a Spark Connect session or its runtime module;
* ``outage`` (no orchestrator): the loader, handed ``w.dbutils``, reads a context while every request
  fails; prints how long it took and what it raised (one JSON line).
"""

import json
import sys
import time
from typing import Any

mode, kind = sys.argv[1], sys.argv[2]
started = time.monotonic()
from databricks.sdk import WorkspaceClient  # noqa: E402

w = WorkspaceClient()
dbutils = w.dbutils  # lazy since 0.117: built here
dbutils_seconds = time.monotonic() - started

if mode == "outage":
    from dagster_pipes_spark import PipesDbfsContextLoader, PipesUnityCatalogVolumesContextLoader, RetryPolicy

    loader_class = PipesDbfsContextLoader if kind == "dbfs" else PipesUnityCatalogVolumesContextLoader
    path = "/tmp/outage/context.json" if kind == "dbfs" else "/Volumes/main/default/pipes/outage/context.json"
    loader = loader_class(
        dbutils=dbutils, retry=RetryPolicy(timeout=4.0, request_timeout=2.0, backoff_max=1.0)
    )
    t0 = time.monotonic()
    try:
        with loader.load_context({"path": path}):
            outcome = "loaded"
    except Exception as e:  # noqa: BLE001 - reported to the test
        outcome = f"{type(e).__name__}: {e}"
    print(json.dumps({"seconds": time.monotonic() - t0, "outcome": outcome}))
    sys.exit(0)

from dagster_pipes import (  # type: ignore[attr-defined,no-redef]  # noqa: E402  # the shim: this package
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)

kw: dict[str, Any] = {"dbutils": dbutils} if mode == "handed" else {}
loader_class, writer_class = (
    (PipesDbfsContextLoader, PipesDbfsMessageWriter)
    if kind == "dbfs"
    else (PipesUnityCatalogVolumesContextLoader, PipesUnityCatalogVolumesMessageWriter)
)
with open_dagster_pipes(
    context_loader=loader_class(**kw), message_writer=writer_class(interval=1, **kw)
) as pipes:
    for i in range(100):
        pipes.log.info(f"line {i}")
    for i in range(2):
        pipes.report_custom_message({"i": i, "blob": str(i) * 100_000})
    pipes.report_asset_materialization(
        metadata={
            "extras_len": len(pipes.get_extra("big")),
            "dbutils_type": type(dbutils).__name__,
            "dbutils_seconds": dbutils_seconds,
            "store": type(pipes._message_channel.store).__name__,
            "sdk_runtime_imported": "databricks.sdk.runtime" in sys.modules,
            "spark_connect_imported": "pyspark.sql.connect.session" in sys.modules,
        }
    )
