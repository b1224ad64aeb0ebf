"""The emulator's Jobs API running tasks locally, driven by the STOCK dagster-databricks clients.

``PipesDatabricksClient`` / ``PipesDatabricksServerlessClient`` talk to the loopback workspace
through the real databricks-sdk; each task runs as a subprocess that uses our library's
stock-compatible API, so the whole Dagster ⇄ Databricks Pipes round trip is exercised offline:
env-var bootstrap on a new cluster, CLI bootstrap on an existing cluster, widgets bootstrap in a
serverless notebook, failures and cancellation. Only ``test_notebook_spark_namespace`` starts a JVM.
"""

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_databricks import PipesDatabricksClient
from dagster_databricks.pipes import PipesDatabricksServerlessClient
from databricks.sdk.service import compute, jobs

from dagster_pipes_spark.testing import Emulator
from dagster_pipes_spark.testing._notebook import parse_source

VOLUME = "/Volumes/main/default/pipes"
LOG_CONF = {"dbfs": {"destination": "dbfs:/cluster-logs"}}


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(root=tmp_path / "ws", volumes=["main/default/pipes"]) as emulator:
        yield emulator


def _put(ws: Emulator, path: str, body: str) -> str:
    """Write a file into the emulated DBFS / Volumes / workspace and return ``path``."""
    local = ws.local_path(path) if path.startswith(("dbfs:", "/Volumes/")) else ws.jobs.workspace_path(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(textwrap.dedent(body).lstrip())
    return path


def _materialize(asset_fn: dg.AssetsDefinition) -> tuple[dg.ExecuteInProcessResult, dict[str, list[str]]]:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([asset_fn], instance=instance, raise_on_error=False)
    seen: dict[str, list[str]] = {"logs": [], "engine": [], "failure": []}
    for rec in instance.all_logs(result.run_id):
        event = rec.dagster_event
        if event is None:
            seen["logs"].append(rec.user_message)
        elif event.event_type_value == "ENGINE_EVENT":
            err = getattr(event.event_specific_data, "error", None)
            seen["engine"].append((event.message or "") + (f"\n{err.to_string()}" if err is not None else ""))
        elif event.event_type_value == "STEP_FAILURE":
            seen["failure"].append(str(event.event_specific_data.error))  # type: ignore[union-attr]
    return result, seen


# -------------------------------------------------------------------------------- Dagster clients


def test_new_cluster_python_task_env_bootstrap(ws: Emulator) -> None:
    """PipesDatabricksClient + new_cluster: bootstrap via spark_env_vars, DBFS over the FUSE mapping."""
    script = _put(
        ws,
        "dbfs:/scripts/new_cluster.py",
        """
        import os, sys
        from dagster_pipes_spark import PipesDbfsContextLoader, PipesDbfsMessageWriter, open_dagster_pipes

        with open_dagster_pipes(context_loader=PipesDbfsContextLoader(), message_writer=PipesDbfsMessageWriter()) as pipes:
            pipes.log.info(f"hello from {os.environ['DATABRICKS_EMULATOR_COMPUTE']}")
            print("to the driver's stdout")
            pipes.report_asset_materialization(metadata={
                "store": type(pipes._message_channel.store).__name__,
                "custom_env": os.environ["MY_ENV"],
                "argv": sys.argv[1:],
            })
        """,
    )
    client = PipesDatabricksClient(client=ws.workspace_client(), poll_interval_seconds=0.5)

    @dg.asset
    def new_cluster_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        task = jobs.SubmitTask.from_dict(
            {
                "task_key": "main",
                "new_cluster": {
                    "spark_version": "15.4.x-scala2.12",
                    "num_workers": 0,
                    "spark_env_vars": {"MY_ENV": "from-spark-env"},
                },
                "spark_python_task": {"python_file": script, "parameters": ["--flag"]},
            }
        )
        return client.run(task=task, context=context).get_materialize_result()

    result, seen = _materialize(new_cluster_asset)
    assert result.success, seen["failure"]
    [mat] = result.get_asset_materialization_events()
    md = mat.materialization.metadata
    assert md["store"].value == "FuseFileStore"  # classic compute: /dbfs is mapped onto the emulator
    assert md["custom_env"].value == "from-spark-env"
    assert md["argv"].value == ["--flag"]
    assert md["Databricks Job Run URL"].value.startswith(ws.url)  # type: ignore[union-attr]
    assert "hello from classic" in seen["logs"]
    run_id = int(md["Databricks Job Run ID"].value)  # type: ignore[arg-type]
    assert ws.jobs.state_history(run_id) == ["PENDING", "RUNNING", "TERMINATING", "TERMINATED"]
    assert "to the driver's stdout" in ws.run_logs(run_id)["main"].stdout


def test_existing_cluster_python_task_cli_bootstrap(ws: Emulator) -> None:
    """PipesDatabricksClient + existing_cluster_id: bootstrap via CLI parameters (the client asks
    clusters/get for the cluster's log configuration first)."""
    script = _put(
        ws,
        "/Workspace/Users/me@example.com/existing.py",
        """
        import sys
        from dagster_pipes_spark import (
            PipesCliArgsParamsLoader, PipesDbfsContextLoader, PipesDbfsMessageWriter, open_dagster_pipes,
        )

        with open_dagster_pipes(
            params_loader=PipesCliArgsParamsLoader(),
            context_loader=PipesDbfsContextLoader(),
            message_writer=PipesDbfsMessageWriter(),
        ) as pipes:
            pipes.report_asset_materialization(metadata={"first_arg": sys.argv[1], "n_args": len(sys.argv) - 1})
        """,
    )
    w = ws.workspace_client()
    assert w.clusters.get("0123-456789-abcdefgh").state == compute.State.RUNNING
    client = PipesDatabricksClient(client=w, poll_interval_seconds=0.5)

    @dg.asset
    def existing_cluster_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        task = jobs.SubmitTask(
            task_key="main",
            existing_cluster_id="0123-456789-abcdefgh",
            spark_python_task=jobs.SparkPythonTask(python_file=script, parameters=["user-arg"]),
        )
        return client.run(task=task, context=context).get_materialize_result()

    result, seen = _materialize(existing_cluster_asset)
    assert result.success, seen["failure"]
    [mat] = result.get_asset_materialization_events()
    md = mat.materialization.metadata
    assert md["first_arg"].value == "user-arg"
    assert md["n_args"].value == 5  # user-arg + --dagster-pipes-context X + --dagster-pipes-messages Y
    run_id = int(md["Databricks Job Run ID"].value)  # type: ignore[arg-type]
    run = w.jobs.get_run(run_id)
    assert run.tasks and run.tasks[0].cluster_instance
    assert run.tasks[0].cluster_instance.cluster_id == "0123-456789-abcdefgh"


NOTEBOOK = """
# Databricks notebook source
# MAGIC %md
# MAGIC # A Pipes notebook
# MAGIC Runs serverless; the bootstrap params arrive as widgets.

# COMMAND ----------

# MAGIC %pip install dagster-pipes-spark

# COMMAND ----------

import os
from dagster_pipes_spark import (
    PipesUnityCatalogVolumesContextLoader,
    PipesUnityCatalogVolumesMessageWriter,
    open_dagster_pipes,
)

# COMMAND ----------

# DBTITLE 1,Report
with open_dagster_pipes(
    context_loader=PipesUnityCatalogVolumesContextLoader(),
    message_writer=PipesUnityCatalogVolumesMessageWriter(),
) as pipes:  # the default params loader finds `dbutils` (a global of __main__) and its widgets
    rows = int(dbutils.widgets.get("rows"))
    pipes.report_asset_check("rows_positive", passed=rows > 0, metadata={"rows": rows})
    pipes.report_asset_materialization(metadata={
        "rows": rows,
        "compute": os.environ["DATABRICKS_EMULATOR_COMPUTE"],
        "dbfs_fuse": os.path.isdir(os.environ["DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT"]),
        "store": type(pipes._message_channel.store).__name__,
    })

# COMMAND ----------

dbutils.notebook.exit("done")
"""


def test_serverless_notebook_widgets_bootstrap(ws: Emulator) -> None:
    """PipesDatabricksServerlessClient + notebook_task: widgets bootstrap, UC Volumes transport."""
    notebook = "/Workspace/Users/me@example.com/pipes_notebook"
    _put(ws, notebook + ".py", NOTEBOOK)
    assert [c.language for c in parse_source(textwrap.dedent(NOTEBOOK).lstrip())] == [
        "md",
        "pip",
        "python",
        "python",
        "python",
    ]
    client = PipesDatabricksServerlessClient(
        client=ws.workspace_client(), volume_path=VOLUME, poll_interval_seconds=0.5
    )

    @dg.asset(check_specs=[dg.AssetCheckSpec("rows_positive", asset="notebook_asset")])
    def notebook_asset(context: dg.AssetExecutionContext) -> Iterator[Any]:
        task = jobs.SubmitTask(
            task_key="nb",
            notebook_task=jobs.NotebookTask(notebook_path=notebook, base_parameters={"rows": "42"}),
        )
        yield from client.run(task=task, context=context).get_results()

    result, seen = _materialize(notebook_asset)
    assert result.success, seen["failure"]
    [mat] = result.get_asset_materialization_events()
    md = mat.materialization.metadata
    assert md["rows"].value == 42 and md["compute"].value == "serverless"
    assert md["dbfs_fuse"].value is False  # serverless: /Volumes FUSE only
    assert md["store"].value == "FuseFileStore"
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows"].value == 42
    run_id = int(md["Databricks Job Run ID"].value)  # type: ignore[arg-type]
    logs = ws.run_logs(run_id)["nb"]
    assert "%pip install dagster-pipes-spark" in logs.stdout and "SparkSession" not in logs.stderr
    output = ws.workspace_client().jobs.get_run_output(run_id)
    assert output.notebook_output and output.notebook_output.result == "done"


def test_failing_task_fails_the_dagster_run(ws: Emulator) -> None:
    script = _put(
        ws,
        "dbfs:/scripts/fail.py",
        """
        from dagster_pipes_spark import PipesDbfsContextLoader, PipesDbfsMessageWriter, open_dagster_pipes

        def transform(rows):
            raise ValueError(f"bad input: {rows} rows")

        with open_dagster_pipes(context_loader=PipesDbfsContextLoader(), message_writer=PipesDbfsMessageWriter()) as pipes:
            pipes.log.info("about to fail")
            transform(7)
        """,
    )
    client = PipesDatabricksClient(client=ws.workspace_client(), poll_interval_seconds=0.5)

    @dg.asset
    def failing_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        task = jobs.SubmitTask.from_dict(
            {
                "task_key": "main",
                "new_cluster": {"num_workers": 0},
                "spark_python_task": {"python_file": script},
            }
        )
        return client.run(task=task, context=context).get_materialize_result()

    result, seen = _materialize(failing_asset)
    assert not result.success
    [failure] = seen["failure"]
    assert (
        "Error running Databricks job: Task main failed with message: ValueError: bad input: 7 rows"
        in failure
    )
    assert "about to fail" in seen["logs"]
    assert any("closed with exception" in e and "bad input: 7 rows" in e for e in seen["engine"])


def test_cancel_run_terminates_the_task(ws: Emulator, tmp_path: Path) -> None:
    marker = tmp_path / "task_run_id"
    script = _put(
        ws,
        "dbfs:/scripts/sleepy.py",
        f"""
        import os, pathlib, time
        from dagster_pipes_spark import PipesDbfsContextLoader, PipesDbfsMessageWriter, open_dagster_pipes

        with open_dagster_pipes(context_loader=PipesDbfsContextLoader(), message_writer=PipesDbfsMessageWriter()) as pipes:
            for i in range(5):
                pipes.log.info(f"msg {{i}}")
            pipes.report_custom_message({{"progress": 5}})
            pathlib.Path({str(marker)!r}).write_text(os.environ["DATABRICKS_EMULATOR_RUN_ID"])
            time.sleep(120)
            pipes.log.info("never")
        """,
    )
    w = ws.workspace_client()
    client = PipesDatabricksClient(client=w, poll_interval_seconds=0.5)
    canceled: list[int] = []

    def cancel_when_ready() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if marker.exists() and marker.read_text():
                job_run_id = w.jobs.get_run(int(marker.read_text())).job_run_id  # task run -> its job run
                assert job_run_id is not None
                w.jobs.cancel_run(job_run_id)
                canceled.append(job_run_id)
                return
            time.sleep(0.05)

    @dg.asset
    def canceled_asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        task = jobs.SubmitTask.from_dict(
            {
                "task_key": "main",
                "new_cluster": {"num_workers": 0},
                "spark_python_task": {"python_file": script},
            }
        )
        return client.run(task=task, context=context).get_materialize_result()

    canceller = threading.Thread(target=cancel_when_ready, daemon=True)
    canceller.start()
    started = time.monotonic()
    result, seen = _materialize(canceled_asset)
    canceller.join(5)
    assert canceled and time.monotonic() - started < 60
    assert not result.success
    [failure] = seen["failure"]
    assert "Error running Databricks job: Run cancelled." in failure
    assert [m for m in seen["logs"] if m.startswith("msg ")] == [f"msg {i}" for i in range(5)]
    assert "never" not in seen["logs"]
    [closed] = [e for e in seen["engine"] if "closed with exception" in e]
    assert "DagsterPipesTerminated" in closed and "SIGTERM" in closed
    run = w.jobs.get_run(canceled[0])
    assert run.state and run.state.result_state == jobs.RunResultState.CANCELED
    assert run.state.user_cancelled_or_timedout
    assert ws.jobs.state_history(canceled[0])[-2:] == ["TERMINATING", "TERMINATED"]


# ------------------------------------------------------------------------ Jobs API, no Dagster


def _fake_install(site: Path) -> None:
    """'Install' a tiny distribution (what pip leaves behind for a wheel): a package + dist-info."""
    (site / "emu_pkg").mkdir(parents=True)
    (site / "emu_pkg" / "__init__.py").write_text(
        "import sys\n"
        "def main():\n    print('main', sys.prefix, sys.argv)\n"
        "def plain():\n    print('plain', sys.argv)\n"
    )
    info = site / "emu_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: emu-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[packages]\nrun = emu_pkg:main\n")


def test_wheel_task_in_a_fresh_venv_and_multi_task_dependencies(tmp_path: Path) -> None:
    """python_wheel_task in another interpreter (a fresh venv holding the 'installed wheel'),
    depends_on ordering, run_if skipping and runs/get-output."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    [site] = list(venv.glob("lib/python*/site-packages"))
    _fake_install(site)
    with Emulator(root=tmp_path / "ws", task_python=venv, cluster_log_conf=LOG_CONF) as ws:
        _put(ws, "/Shared/fail.py", "import sys\nsys.exit('no good')\n")
        w = ws.workspace_client()
        waiter = w.jobs.submit(
            run_name="multi",
            tasks=[
                jobs.SubmitTask(
                    task_key="wheel",
                    python_wheel_task=jobs.PythonWheelTask(
                        package_name="emu-pkg", entry_point="run", named_parameters={"date": "2024-01-01"}
                    ),
                    existing_cluster_id="any",
                ),
                jobs.SubmitTask(
                    task_key="plain",
                    depends_on=[jobs.TaskDependency("wheel")],
                    python_wheel_task=jobs.PythonWheelTask(
                        package_name="emu_pkg", entry_point="plain", parameters=["x"]
                    ),
                    existing_cluster_id="any",
                ),
                jobs.SubmitTask(
                    task_key="fail",
                    depends_on=[jobs.TaskDependency("wheel")],
                    spark_python_task=jobs.SparkPythonTask(python_file="/Shared/fail.py"),
                    existing_cluster_id="any",
                ),
                jobs.SubmitTask(
                    task_key="after_fail",
                    depends_on=[jobs.TaskDependency("fail")],
                    spark_python_task=jobs.SparkPythonTask(python_file="/Shared/fail.py"),
                    existing_cluster_id="any",
                ),
            ],
        )
        run_id = waiter.bind()["run_id"]
        run = ws.jobs.wait(run_id, 60)
        tasks = {t["task_key"]: t for t in run["tasks"]}
        assert run["state"]["result_state"] == "FAILED"
        assert run["state"]["state_message"].startswith("Task fail failed with message: no good")
        assert tasks["wheel"]["state"]["result_state"] == "SUCCESS"
        assert tasks["plain"]["state"]["result_state"] == "SUCCESS"
        assert tasks["after_fail"]["state"] == {
            "life_cycle_state": "SKIPPED",
            "result_state": "UPSTREAM_FAILED",
            "state_message": "Upstream task(s) failed.",
            "user_cancelled_or_timedout": False,
        }
        assert tasks["plain"]["start_time"] >= tasks["wheel"]["end_time"]
        logs = ws.run_logs(run_id)
        assert logs["wheel"].stdout.strip() == f"main {venv} ['emu-pkg', '--date=2024-01-01']"
        assert logs["plain"].stdout.strip() == "plain ['emu_pkg', 'x']"
        out = w.jobs.get_run_output(tasks["plain"]["run_id"])
        assert (
            out.logs == logs["plain"].stdout
            and out.metadata
            and out.metadata.run_id == tasks["plain"]["run_id"]
        )
        assert w.jobs.get_run_output(tasks["fail"]["run_id"]).error == "no good"
        with pytest.raises(Exception, match="multiple tasks"):
            w.jobs.get_run_output(run_id)
        # the existing cluster's driver logs were delivered to its cluster_log_conf destination
        delivered = ws.local_path("dbfs:/cluster-logs/any/driver/stdout").read_text()
        assert "main " in delivered and "plain " in delivered


def test_notebook_spark_namespace(ws: Emulator) -> None:
    """The only JVM in this module: a notebook using `spark` gets a local session (classic cluster)."""
    _put(
        ws,
        "/Workspace/Shared/spark_nb.py",
        """
        # Databricks notebook source
        n = spark.range(3).count()
        assert spark.conf.get("spark.databricks.clusterUsageTags.clusterLogDestination") == "dbfs:/cluster-logs"

        # COMMAND ----------

        dbutils.notebook.exit(str(n))
        """,
    )
    w = ws.workspace_client()
    waiter = w.jobs.submit(
        tasks=[
            jobs.SubmitTask(
                task_key="nb",
                notebook_task=jobs.NotebookTask(notebook_path="/Workspace/Shared/spark_nb"),
                new_cluster=compute.ClusterSpec(
                    spark_version="15.4.x-scala2.12",
                    num_workers=0,
                    cluster_log_conf=compute.ClusterLogConf.from_dict(LOG_CONF),
                ),
            )
        ]
    )
    run_id = waiter.bind()["run_id"]
    run = ws.jobs.wait(run_id, 240)
    assert run["state"]["result_state"] == "SUCCESS", ws.run_logs(run_id)["nb"].stderr[-3000:]
    output = w.jobs.get_run_output(run_id)
    assert output.notebook_output and output.notebook_output.result == "3"
