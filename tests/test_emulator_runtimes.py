"""Runtime profiles: a task's ``spark_version`` (or serverless environment) selects the Python that
runs it, so that a job is tested offline against the runtime it deploys to.

Two real interpreters: this one, and a small virtualenv created here (``--system-site-packages``
of the base Python: it does not have this package, so the notebook runner and the fake ``dbutils``
must work from their files alone).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from databricks.sdk.errors import InvalidParameterValue
from databricks.sdk.service import compute, jobs

from dagster_pipes_spark.testing import Emulator
from dagster_pipes_spark.testing.jobs import CLUSTER_SPARK_VERSION, RuntimeProfiles

WHOAMI = "/Workspace/Shared/whoami.py"
NOTEBOOK = "/Workspace/Shared/whoami_nb"


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("runtime") / "venv-15.4"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True
    )
    return venv


def _put_programs(ws: Emulator) -> None:
    script = ws.jobs.workspace_path(WHOAMI)
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text("import sys\nprint(sys.executable)\n")
    ws.jobs.workspace_path(NOTEBOOK + ".py").write_text(
        textwrap.dedent(
            """
            # Databricks notebook source
            import sys
            print(sys.executable)

            # COMMAND ----------

            dbutils.notebook.exit(dbutils.widgets.get("greeting"))
            """
        ).lstrip()
    )


def _cluster(version: str, **env: str) -> compute.ClusterSpec:
    return compute.ClusterSpec(spark_version=version, num_workers=0, spark_env_vars=env or None)


def test_spark_version_and_serverless_environment_select_the_python(
    other_venv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = other_venv / "bin" / "python"
    runtimes = {"15.4": other_venv, "serverless:2": other}
    with Emulator(root=tmp_path / "ws", runtimes=runtimes) as ws:
        _put_programs(ws)
        w = ws.workspace_client()
        task = jobs.SparkPythonTask(python_file=WHOAMI)
        caplog.set_level(logging.WARNING, logger="dagster_pipes_spark.testing.emulator")
        run_id = w.jobs.submit(
            run_name="profiles",
            environments=[jobs.JobEnvironment("env2", spec=compute.Environment(client="2"))],
            tasks=[
                jobs.SubmitTask("lts", spark_python_task=task, new_cluster=_cluster("15.4.x-scala2.12")),
                jobs.SubmitTask("unknown", spark_python_task=task, new_cluster=_cluster("13.3.x-scala2.12")),
                jobs.SubmitTask("existing", spark_python_task=task, existing_cluster_id="any"),
                jobs.SubmitTask(
                    "pinned",
                    spark_python_task=task,
                    new_cluster=_cluster("15.4.x-scala2.12", PYSPARK_PYTHON=sys.executable),
                ),
                jobs.SubmitTask(
                    "serverless",
                    notebook_task=jobs.NotebookTask(
                        notebook_path=NOTEBOOK, base_parameters={"greeting": "hi"}
                    ),
                    environment_key="env2",
                ),
            ],
        ).bind()["run_id"]
        run = ws.jobs.wait(run_id, 120)
        logs = ws.run_logs(run_id)
        assert run["state"]["result_state"] == "SUCCESS", {k: v.stderr[-2000:] for k, v in logs.items()}
        ran_with = {key: log.stdout.strip().splitlines()[-1] for key, log in logs.items()}
        assert ran_with == {
            "lts": str(other),  # "15.4" matches 15.4.x-scala2.12
            "unknown": sys.executable,  # no profile: the default Python ...
            "existing": str(other),  # an existing cluster runs clusters/get's spark_version (15.4)
            "pinned": sys.executable,  # PYSPARK_PYTHON overrides the profile, as on a cluster
            "serverless": str(other),  # environment client "2"
        }
        # ... with a log line that says so
        assert any(
            "'13.3.x-scala2.12'" in r.getMessage() and "default Python" in r.getMessage()
            for r in caplog.records
        )
        output = w.jobs.get_run_output(
            next(t["run_id"] for t in run["tasks"] if t["task_key"] == "serverless")
        )
        assert output.notebook_output and output.notebook_output.result == "hi"  # dbutils without the package


def test_strict_runtimes_refuse_an_unknown_runtime_at_submit(other_venv: Path, tmp_path: Path) -> None:
    with Emulator(root=tmp_path / "ws", runtimes={"15.4": other_venv}, strict_runtimes=True) as ws:
        w = ws.workspace_client()
        task = jobs.SubmitTask(
            "old",
            spark_python_task=jobs.SparkPythonTask(python_file=WHOAMI),
            new_cluster=_cluster("14.3.x-scala2.12"),
        )
        with pytest.raises(InvalidParameterValue, match=r"'14\.3\.x-scala2\.12' \(registered: 15\.4\)"):
            w.jobs.submit(tasks=[task])
        serverless = jobs.SubmitTask("nb", notebook_task=jobs.NotebookTask(notebook_path=NOTEBOOK))
        with pytest.raises(InvalidParameterValue, match="'serverless'"):
            w.jobs.submit(tasks=[serverless])


def test_profile_keys() -> None:
    profiles = RuntimeProfiles({"15": "/py15", "15.4": "/py154", "serverless": "/pysl", "16.4.x-gpu": "/gpu"})
    assert profiles.select("15.4.x-scala2.12").profile == "15.4"  # the longest matching key wins
    assert profiles.select("15.3.x-scala2.12").profile == "15"
    assert profiles.select("15.40.x-scala2.12").profile == "15"  # components, not string prefixes
    assert profiles.select("16.4.x-gpu-ml-scala2.12").python == "/gpu"
    assert profiles.select("16.4.x-scala2.12").profile is None
    assert profiles.select("serverless:3").profile == "serverless"
    assert profiles.select(CLUSTER_SPARK_VERSION).profile == "15.4"
    with pytest.raises(ValueError, match="invalid runtime profile key"):
        RuntimeProfiles({"serverlessish": "/py"})
