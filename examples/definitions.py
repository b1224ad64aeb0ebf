"""Dagster definitions launching the example jobs through the STOCK dagster-databricks Pipes clients.

    dagster dev -f examples/definitions.py

With ``DATABRICKS_HOST`` (and credentials) set, the assets run on that workspace: the example files
are uploaded first (DBFS for the script, the workspace for the notebook) and the tasks install
``dagster-pipes-spark`` from PyPI. Without it, a local workspace emulator is started in this process
and tasks run on this machine on local Spark — same clients, same code, no account needed. Local
Spark gets Delta Lake as on Databricks (Delta the default table format): the pinned Delta jars
(``.ci/jars/spark40.txt``) are fetched from Maven Central once and cached; without them (offline) the
tables are written as Parquet and a note says so.

* ``revenue``   -- ``PipesDatabricksClient``, new cluster, ``spark_python_task`` (env-var bootstrap, DBFS);
* ``customers`` -- ``PipesDatabricksServerlessClient``, ``notebook_task`` (widgets, UC Volumes, Spark Connect);
* ``inventory`` -- ``PipesDatabricksClient``, existing cluster, ``python_wheel_task`` (CLI bootstrap, DBFS).
"""

import io
import os
import shlex
import sys
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_databricks import PipesDatabricksClient, PipesDbfsMessageReader
from dagster_databricks.pipes import PipesDatabricksServerlessClient, PipesUnityCatalogVolumesMessageReader
from databricks.sdk.service import jobs

HERE = Path(__file__).parent
REPO = HERE.parent
VOLUME = os.environ.get("PIPES_EXAMPLE_VOLUME", "/Volumes/main/default/pipes")
SCRIPT_PATH = "dbfs:/dagster-pipes-spark/examples/spark_submit_job.py"
NOTEBOOK_PATH = "/Workspace/Shared/dagster-pipes-spark/customers_serverless"
CLUSTER_ID = os.environ.get("PIPES_EXAMPLE_CLUSTER_ID", "0101-000000-local")
LIBRARIES = [{"pypi": {"package": "dagster-pipes-spark"}}]
POLL = 1.0  # seconds between run-state polls and message-chunk reads (the stock defaults are 5 and 10)


@cache
def workspace() -> tuple[Any, Any]:
    """(WorkspaceClient, emulator or None): the configured workspace, else a local emulator."""
    if os.environ.get("DATABRICKS_HOST"):
        from databricks.sdk import WorkspaceClient

        client = WorkspaceClient()
        _upload(client)
        return client, None
    from dagster_pipes_spark.testing import Emulator

    emulator = Emulator(volumes=[VOLUME.removeprefix("/Volumes/")], require_auth=False).start()
    script = emulator.local_path(SCRIPT_PATH)
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text((HERE / "jobs" / "spark_submit_job.py").read_text())
    notebook = emulator.jobs.workspace_path(NOTEBOOK_PATH)
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text((REPO / "notebooks" / "customers_serverless.py").read_text())
    # Off Databricks: storage goes over REST, never through a /dbfs or /Volumes of this machine.
    emulator.jobs.extra_env.update({"PYTHONPATH": str(REPO), **_local_delta_env()})
    return emulator.workspace_client(), emulator


def _local_delta_env() -> dict[str, str]:
    """Delta Lake for every local Spark session a task starts (classic, or the host of a serverless
    task's Spark Connect server), with Delta the default format as on Databricks: the pinned jars and
    Delta's extension and catalog, as ``spark-submit`` options (``PYSPARK_SUBMIT_ARGS``)."""
    from dagster_pipes_spark.testing.table_formats import MissingJarsError, fetch_jars, spark_confs

    try:
        jars = [j for j in fetch_jars("spark40") if j.name.startswith("delta-")]
    except MissingJarsError as exc:
        print(f"[demo] {exc}; tables are written as Parquet", file=sys.stderr)
        return {}
    confs = {**spark_confs(jars), "spark.sql.sources.default": "delta"}
    args = " ".join(f"--conf {shlex.quote(f'{key}={value}')}" for key, value in confs.items())
    return {"PYSPARK_SUBMIT_ARGS": f"{args} pyspark-shell"}


def _upload(client: Any) -> None:
    from databricks.sdk.service.workspace import ImportFormat, Language

    client.dbfs.upload(
        SCRIPT_PATH, io.BytesIO((HERE / "jobs" / "spark_submit_job.py").read_bytes()), overwrite=True
    )
    client.workspace.mkdirs(str(Path(NOTEBOOK_PATH).parent))
    client.workspace.upload(
        NOTEBOOK_PATH,
        io.BytesIO((REPO / "notebooks" / "customers_serverless.py").read_bytes()),
        format=ImportFormat.SOURCE,
        language=Language.PYTHON,
        overwrite=True,
    )


def _classic_client() -> PipesDatabricksClient:
    client, _ = workspace()
    return PipesDatabricksClient(
        client=client,
        poll_interval_seconds=POLL,
        message_reader=PipesDbfsMessageReader(client=client, interval=POLL),
    )


@dg.asset(check_specs=[dg.AssetCheckSpec("has_rows", asset="revenue")], kinds={"databricks", "spark"})
def revenue(context: dg.AssetExecutionContext):
    """Daily revenue, computed by a spark_python_task on a new job cluster."""
    task = jobs.SubmitTask.from_dict(
        {
            "task_key": "revenue",
            "new_cluster": {
                "spark_version": "15.4.x-scala2.12",
                "node_type_id": "i3.xlarge",
                "num_workers": 0,
            },
            "libraries": LIBRARIES,
            "spark_python_task": {"python_file": SCRIPT_PATH, "parameters": ["revenue"]},
        }
    )
    return _classic_client().run(task=task, context=context, extras={"days": 10}).get_results()


#: the DQX rules the customers notebook runs (the README's checks file), one asset check each
CUSTOMER_CHECKS = (
    "customer_id_is_not_unique",
    "segment_is_not_in_the_list",
    "email_does_not_match_pattern_email_address",
    "online_customers_have_email",
    "customers_per_segment",
)


@dg.asset(
    check_specs=[dg.AssetCheckSpec(name, asset="customers") for name in CUSTOMER_CHECKS],
    kinds={"databricks", "spark"},
)
def customers(context: dg.AssetExecutionContext):
    """Customers, built by a notebook on serverless compute."""
    client, _ = workspace()
    pipes = PipesDatabricksServerlessClient(
        client=client,
        volume_path=VOLUME,
        poll_interval_seconds=POLL,
        message_reader=PipesUnityCatalogVolumesMessageReader(
            client=client, volume_path=VOLUME, interval=POLL
        ),
    )
    task = jobs.SubmitTask.from_dict(
        {"task_key": "customers", "notebook_task": {"notebook_path": NOTEBOOK_PATH}}
    )
    return pipes.run(
        task=task, context=context, extras={"segments": ["retail", "wholesale", "online"]}
    ).get_results()


@dg.asset(
    check_specs=[dg.AssetCheckSpec("stock_non_negative", asset="inventory")], kinds={"databricks", "python"}
)
def inventory(context: dg.AssetExecutionContext):
    """Inventory, produced by a python_wheel_task on an existing cluster."""
    task = jobs.SubmitTask.from_dict(
        {
            "task_key": "inventory",
            "existing_cluster_id": CLUSTER_ID,
            "libraries": LIBRARIES,
            "python_wheel_task": {
                "package_name": "pipes_wheel_job",
                "entry_point": "pipes-wheel-job",
                "parameters": ["--table", "inventory"],
            },
        }
    )
    return _classic_client().run(task=task, context=context, extras={"items": 25}).get_results()


defs = dg.Definitions(assets=[revenue, customers, inventory])
