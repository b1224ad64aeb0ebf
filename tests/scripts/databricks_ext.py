"""External side for the Databricks interop tests: argv = kind (dbfs|volumes), backend (sdk|dbutils|fuse|auto-dbutils)."""

import sys

from dagster_pipes import (  # type: ignore[attr-defined]  # the shim: dagster_pipes is this package
    PipesDatabricksContextLoader,
    PipesDatabricksMessageWriter,
    PipesDbfsContextLoader,
    PipesDbfsMessageWriter,
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)

kind, backend = sys.argv[1], sys.argv[2]
kw: dict[str, object] = {}
if backend == "sdk":
    from databricks.sdk import WorkspaceClient

    kw["client"] = WorkspaceClient()
elif backend == "dbutils":
    from dagster_pipes_spark.testing import FakeDbutils

    kw["dbutils"] = FakeDbutils(verbose=False)
elif backend == "auto-dbutils":  # a notebook: `dbutils` is a global of __main__
    from dagster_pipes_spark.testing import FakeDbutils

    dbutils = FakeDbutils(verbose=False)

loader, writer = (
    (PipesDatabricksContextLoader, PipesDatabricksMessageWriter)
    if len(sys.argv) > 3 and sys.argv[3] == "auto-kind"
    else (PipesDbfsContextLoader, PipesDbfsMessageWriter)
    if kind == "dbfs"
    else (PipesUnityCatalogVolumesContextLoader, PipesUnityCatalogVolumesMessageWriter)
)
with open_dagster_pipes(context_loader=loader(**kw), message_writer=writer(interval=1, **kw)) as pipes:
    big = pipes.get_extra("big")
    for i in range(300):
        pipes.log.info(f"line {i}")
    for i in range(3):
        pipes.report_custom_message({"i": i, "blob": str(i) * 200_000})
    pipes.report_asset_check("chk", passed=True, metadata={"backend": backend})
    print(f"stdout from {backend}")
    pipes.report_asset_materialization(
        metadata={"extras_len": len(big), "store": type(pipes._message_channel.store).__name__}
    )
