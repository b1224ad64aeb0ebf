"""The Databricks transports and params in every runtime of the matrix, launched by the real orchestrator.

Each runtime (``.ci/runtimes``: Spark 3.5 with databricks-sdk 0.20, the pinned Spark 4.0 stack, the
newest pyspark and SDK) is a virtualenv without dagster holding this library's wheel. Dagster and
dagster-databricks stay in the dev venv: their DBFS / Volumes injectors and readers talk to the
workspace emulator, and the external process, in the runtime, talks to it through the runtime's own
databricks-sdk — with the params as env vars, as CLI arguments, or as notebook widgets (a notebook
task through the emulator's Jobs API), and with injected 429/503 faults.
"""

import json
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from _helpers import RunResult, run_pipes
from _runtimes import RUNTIMES, RuntimeClient, runtime_env, runtime_python
from dagster_databricks.pipes import (
    PipesDatabricksServerlessClient,
    PipesDbfsContextInjector,
    PipesDbfsMessageReader,
    PipesUnityCatalogVolumesContextInjector,
    PipesUnityCatalogVolumesMessageReader,
)
from databricks.sdk.service import jobs

from dagster_pipes_spark.testing import Emulator

SCRIPTS = Path(__file__).parent / "scripts"
VOLUME = "/Volumes/main/default/pipes"
NAMES = list(RUNTIMES)
#: the versions each runtime list pins besides pyspark and databricks-sdk (None: not checked)
STACK = {"spark35": {"pandas": "1.5.3", "pyarrow": "14.0.2", "numpy": "1.26.4"}}

PROBE = """
import importlib.util, json, os
import databricks.sdk.version, numpy, pandas, pyarrow, pyspark
import dagster_pipes_spark
print(json.dumps({
    "pyspark": pyspark.__version__, "databricks_sdk": databricks.sdk.version.__version__,
    "pandas": pandas.__version__, "pyarrow": pyarrow.__version__, "numpy": numpy.__version__,
    "library": os.path.dirname(dagster_pipes_spark.__file__),
    "dagster": importlib.util.find_spec("dagster") is not None,
    "dagster_pipes": importlib.util.find_spec("dagster_pipes") is not None,
}))
"""


@pytest.fixture(scope="module")
def workspace() -> Iterator[Emulator]:
    with Emulator(volumes=["main/default/pipes"]) as ws:
        yield ws


@pytest.mark.parametrize("name", NAMES)
def test_runtime_holds_its_pins_and_no_dagster(name: str) -> None:
    python = runtime_python(name)
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: its source would shadow the wheel
        out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, cwd=cwd, check=True)
    found = json.loads(out.stdout)
    assert found["pyspark"] == RUNTIMES[name].pyspark
    assert found["databricks_sdk"] == RUNTIMES[name].databricks_sdk
    assert {k: found[k] for k in STACK.get(name, {})} == STACK.get(name, {})
    assert found["library"].startswith(str(Path(python).parent.parent))  # the installed wheel
    assert not found["dagster"] and not found["dagster_pipes"]  # the orchestrator is elsewhere


def _roundtrip(ws: Emulator, name: str, kind: str, params: str) -> RunResult:
    client = ws.workspace_client()
    if kind == "dbfs":
        injector: object = PipesDbfsContextInjector(client=client)
        reader: object = PipesDbfsMessageReader(client=client, interval=1)
    else:
        injector = PipesUnityCatalogVolumesContextInjector(client=client, volume_path=VOLUME)
        reader = PipesUnityCatalogVolumesMessageReader(client=client, volume_path=VOLUME, interval=1)
    python = runtime_python(name)
    env = runtime_env(python, ws.env())
    return run_pipes(
        [python, str(SCRIPTS / "databricks_ext.py"), kind, "sdk"],
        check_specs=[("asset_a", "chk")],
        extras={"big": "e" * 300_000},
        client_factory=lambda: RuntimeClient(
            env, context_injector=injector, message_reader=reader, params=params
        ),
    )


def _assert_everything_arrived(result: RunResult, kind: str) -> None:
    assert result.success, result.failure
    md = result.materializations["asset_a"].metadata
    assert md["extras_len"].value == 300_000  # a context over DBFS's 1 MB-per-read limit... and back
    assert md["store"].value == {"dbfs": "SdkDbfsFileStore", "volumes": "SdkVolumesFileStore"}[kind]
    assert [m["i"] for m in result.custom_messages] == [0, 1, 2]
    assert all(m["blob"] == str(m["i"]) * 200_000 for m in result.custom_messages)
    assert [m for _, m in result.logs if m.startswith("line ")] == [f"line {i}" for i in range(300)]
    [check] = result.checks
    assert check.passed and check.metadata["backend"].value == "sdk"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("kind", "params"), [("dbfs", "env"), ("volumes", "cli")])
def test_storage_roundtrip(workspace: Emulator, name: str, kind: str, params: str) -> None:
    """Loader and writer over the runtime's SDK; params as env vars (DBFS) or CLI arguments (Volumes)."""
    workspace.reset_stats()
    result = _roundtrip(workspace, name, kind, params)
    _assert_everything_arrived(result, kind)
    assert workspace.unserved_requests == []
    if kind == "volumes":  # the newest SDK downloads through a presigned URL, older ones directly
        presigned = workspace.stats.get("POST /api/2.0/fs/create-download-url", 0)
        assert (presigned > 0) == (name == "newest")


@pytest.mark.parametrize("name", NAMES)
def test_storage_roundtrip_with_faults(workspace: Emulator, name: str) -> None:
    """15% of requests answered 429/503: the runtime SDK's errors are retried, nothing lost or doubled."""
    workspace.reset_stats()
    with workspace.faults(rate=0.15, statuses=(429, 503), seed=11):
        result = _roundtrip(workspace, name, "volumes", "env")
    assert workspace.stats["faults"] > 0
    _assert_everything_arrived(result, "volumes")
    assert workspace.unserved_requests == []


@pytest.mark.parametrize("name", NAMES)
def test_notebook_task_reads_widgets(tmp_path: Path, name: str) -> None:
    """A notebook task of PipesDatabricksServerlessClient (params as widgets only, UC Volumes), run by
    the emulator's Jobs API with the runtime as the task's Python."""
    with Emulator(
        root=tmp_path / "ws", volumes=["main/default/pipes"], task_python=runtime_python(name)
    ) as ws:
        path = "/Workspace/Shared/runtime_notebook"
        ws.jobs.workspace_path(path).parent.mkdir(parents=True, exist_ok=True)
        ws.jobs.workspace_path(path).write_text((SCRIPTS / "runtime_notebook.py").read_text())
        ws.jobs.extra_env.update(runtime_env(runtime_python(name)))
        client = ws.workspace_client()

        @dg.asset
        def nb_asset(context: dg.AssetExecutionContext):
            pipes = PipesDatabricksServerlessClient(
                client=client,
                volume_path=VOLUME,
                poll_interval_seconds=0.5,
                message_reader=PipesUnityCatalogVolumesMessageReader(
                    client=client, volume_path=VOLUME, interval=1
                ),
            )
            task = jobs.SubmitTask.from_dict({"task_key": "nb", "notebook_task": {"notebook_path": path}})
            return pipes.run(task=task, context=context, extras={"rows": 7}).get_results()

        instance = dg.DagsterInstance.ephemeral()
        result = dg.materialize([nb_asset], instance=instance, raise_on_error=False)
        assert result.success, [str(e.event_specific_data) for e in result.all_events if e.is_failure]
        assert ws.unserved_requests == []
    [mat] = result.get_asset_materialization_events()
    md = {k: v.value for k, v in mat.materialization.metadata.items() if not k.startswith("Databricks Job")}
    assert md == {
        "params_source": "widgets",
        "databricks_sdk": RUNTIMES[name].databricks_sdk,
        "store": "SdkVolumesFileStore",
        "rows": 7,
    }
    logs = [r.user_message for r in instance.all_logs(result.run_id) if not r.is_dagster_event]
    assert [m for m in logs if m.startswith("notebook line ")] == [f"notebook line {i}" for i in range(50)]
