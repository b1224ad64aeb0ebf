"""Shipped artifacts run as users run them: every notebook through the stock Databricks clients, and
the built wheel — installed in a fresh virtualenv without the source tree — as a python_wheel_task
and a spark_python_task, all against the local workspace emulator on real local Spark."""

import subprocess
import sys
import sysconfig
from pathlib import Path

import dagster as dg
import pytest
from dagster_databricks import PipesDatabricksClient, PipesDbfsMessageReader
from dagster_databricks.pipes import PipesDatabricksServerlessClient, PipesUnityCatalogVolumesMessageReader
from databricks.sdk.service import jobs

from dagster_pipes_spark.testing import Emulator

REPO = Path(__file__).parent.parent
VOLUME = "/Volumes/main/default/pipes"
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
#: the checks each shipped notebook reports, and whether each passes on the data it writes
NOTEBOOK_CHECKS = {
    "orders": {"no_negative_amounts": True},
    "customers": {  # the DQX rules of the README, verbatim in the notebook
        "customer_id_is_not_unique": True,
        "segment_is_not_in_the_list": True,
        "email_does_not_match_pattern_email_address": False,  # WARN: one row in ten is 'not-an-email'
        "online_customers_have_email": True,  # no 'online' segment here: no row in the rule's filter
        "customers_per_segment": True,
    },
    "payments": {
        "amount_non_negative": True,
        "payment_id_not_null": True,
        "payment_id_unique": True,
        "method_known": False,  # 'cash' is not an accepted value: a WARN check that fails
        "amount_in_range": True,
        "card_reference": True,
        "customer_exists": True,
        "cash_share": True,  # a third of the payments are cash
        "enough_rows": True,
        "fresh": True,
        "contract": True,
    },
}


def _materialize(asset_def):
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [asset_def],
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    failure = [
        str(getattr(e.event_specific_data, "error", None))
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    return result, failure


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_shipped_notebook_runs_through_the_stock_clients(tmp_path, notebook):
    serverless = "serverless" in notebook.stem
    asset_name = notebook.stem.split("_")[0]
    checks = NOTEBOOK_CHECKS[asset_name]
    with Emulator(root=tmp_path / "ws", volumes=["main/default/pipes"]) as ws:
        path = f"/Workspace/Shared/{notebook.stem}"
        ws.jobs.workspace_path(path).parent.mkdir(parents=True, exist_ok=True)
        ws.jobs.workspace_path(path).write_text(notebook.read_text())
        ws.jobs.extra_env["PYTHONPATH"] = str(REPO)
        client = ws.workspace_client()

        @dg.asset(name=asset_name, check_specs=[dg.AssetCheckSpec(c, asset=asset_name) for c in checks])
        def nb_asset(context: dg.AssetExecutionContext):
            task: dict = {"task_key": "nb", "notebook_task": {"notebook_path": path}}
            if serverless:
                pipes = PipesDatabricksServerlessClient(
                    client=client,
                    volume_path=VOLUME,
                    poll_interval_seconds=0.5,
                    message_reader=PipesUnityCatalogVolumesMessageReader(
                        client=client, volume_path=VOLUME, interval=1
                    ),
                )
            else:
                task["existing_cluster_id"] = "0101-000000-test"
                pipes = PipesDatabricksClient(  # type: ignore[assignment]  # both have run()
                    client=client,
                    poll_interval_seconds=0.5,
                    message_reader=PipesDbfsMessageReader(client=client, interval=1),
                )
            return pipes.run(
                task=jobs.SubmitTask.from_dict(task), context=context, extras={"rows": 30}
            ).get_results()

        result, failure = _materialize(nb_asset)
    assert result.success, failure
    [mat] = result.get_asset_materialization_events()
    md = mat.materialization.metadata
    assert md["dagster/row_count"].value == (50 if serverless else 30)
    assert md["dagster/table_name"].value.endswith(asset_name)
    assert [c.name for c in md["dagster/column_schema"].schema.columns]
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == checks


def test_the_readme_dqx_file_runs_verbatim_in_the_customers_notebook():
    readme = (REPO / "README.md").read_text()
    block = readme.split(
        "# DQX's (databricks-labs-dqx 0.17): the file runs unchanged, with DQX's meaning\n", 1
    )[1]
    block = block.split("```", 1)[0]
    notebook = (REPO / "notebooks" / "customers_serverless.py").read_text()
    assert f'RULES = """\n{block}"""' in notebook


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new virtualenv holding only the built wheels; third-party deps (pyspark, sdk) come after them."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    for project in (REPO, REPO / "examples" / "wheel_job"):
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(project)],
            check=True,
            capture_output=True,
            text=True,
            cwd=root,
        )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    wheels = sorted(str(w) for w in dist.glob("*.whl"))
    assert any("dagster_pipes_spark" in w for w in wheels) and any("pipes_wheel_job" in w for w in wheels)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", *wheels], check=True)
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # A plain path line: the dev venv's editable hook for this repo is NOT executed, so the source
    # tree stays unreachable; only third-party packages resolve there.
    Path(site, "zz_third_party.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [str(py), "-c", "import dagster_pipes_spark, pipes_wheel_job; print(dagster_pipes_spark.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    ).stdout.strip()
    assert where.startswith(site) and str(REPO) not in where
    # a typed package: type checkers of users' code read our annotations (PEP 561)
    assert Path(site, "dagster_pipes_spark", "py.typed").is_file()
    return venv


def test_wheel_task_and_spark_submit_job_from_the_built_wheel(tmp_path, fresh_venv):
    with Emulator(root=tmp_path / "ws", task_python=fresh_venv) as ws:
        script = ws.local_path("dbfs:/jobs/spark_submit_job.py")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text((REPO / "examples" / "jobs" / "spark_submit_job.py").read_text())
        client = ws.workspace_client()

        def pipes() -> PipesDatabricksClient:
            return PipesDatabricksClient(
                client=client,
                poll_interval_seconds=0.5,
                message_reader=PipesDbfsMessageReader(client=client, interval=1),
            )

        @dg.asset(check_specs=[dg.AssetCheckSpec("stock_non_negative", asset="inventory")])
        def inventory(context: dg.AssetExecutionContext):
            task = {
                "task_key": "w",
                "existing_cluster_id": "0101-000000-test",
                "python_wheel_task": {
                    "package_name": "pipes_wheel_job",
                    "entry_point": "pipes-wheel-job",
                    "parameters": ["--table", "inventory"],
                },
            }
            return (
                pipes()
                .run(task=jobs.SubmitTask.from_dict(task), context=context, extras={"items": 12})
                .get_results()
            )

        @dg.asset(check_specs=[dg.AssetCheckSpec("has_rows", asset="revenue")])
        def revenue(context: dg.AssetExecutionContext):
            task = {
                "task_key": "s",
                "new_cluster": {"spark_version": "15.4.x-scala2.12", "num_workers": 0},
                "spark_python_task": {
                    "python_file": "dbfs:/jobs/spark_submit_job.py",
                    "parameters": ["revenue"],
                },
            }
            return pipes().run(task=jobs.SubmitTask.from_dict(task), context=context).get_results()

        wheel_result, wheel_failure = _materialize(inventory)
        spark_result, spark_failure = _materialize(revenue)
    assert wheel_result.success, wheel_failure
    [mat] = wheel_result.get_asset_materialization_events()
    assert mat.materialization.metadata["dagster/row_count"].value == 12
    assert spark_result.success, spark_failure
    [mat] = spark_result.get_asset_materialization_events()
    assert mat.materialization.metadata["dagster/row_count"].value == 10
    assert [c.check_name for c in spark_result.get_asset_check_evaluations()] == ["has_rows"]
