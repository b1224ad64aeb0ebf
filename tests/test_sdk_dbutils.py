"""databricks-sdk's own ``dbutils`` in the newest runtime of the matrix (``.ci/runtimes/newest.txt``).

Since databricks-sdk 0.117 ``WorkspaceClient.dbutils`` is built on first use; off a Databricks runtime
it is ``RemoteDbUtils``: ``fs`` over the DBFS / Files REST APIs, any other attribute a proxy that runs
commands on a cluster. On shared / serverless (Spark Connect) compute ``databricks.sdk.runtime`` falls
back to the same class (after trying to open a Spark Connect session through databricks-connect), and
since 0.16x building a ``Config`` probes ``/.well-known/databricks-config`` with the SDK's 300 s retry
window. The loaders and writers run here against the workspace emulator, launched by the real
orchestrator (stock dagster-databricks readers and injectors in the dev venv).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers import RunResult, run_pipes
from _runtimes import RuntimeClient, runtime_env, runtime_python
from dagster_databricks.pipes import (
    PipesDbfsContextInjector,
    PipesDbfsMessageReader,
    PipesUnityCatalogVolumesContextInjector,
    PipesUnityCatalogVolumesMessageReader,
)

from dagster_pipes_spark.testing import Emulator

SCRIPT = Path(__file__).parent / "scripts" / "sdk_dbutils_ext.py"
VOLUME = "/Volumes/main/default/pipes"
RUNTIME = "newest"


@pytest.fixture(scope="module")
def workspace() -> Iterator[Emulator]:
    with Emulator(volumes=["main/default/pipes"]) as ws:
        yield ws


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once closed


def _run(ws: Emulator, mode: str, kind: str, extra_env: dict[str, str] | None = None) -> RunResult:
    client = ws.workspace_client()
    if kind == "dbfs":
        injector: object = PipesDbfsContextInjector(client=client)
        reader: object = PipesDbfsMessageReader(client=client, interval=1)
    else:
        injector = PipesUnityCatalogVolumesContextInjector(client=client, volume_path=VOLUME)
        reader = PipesUnityCatalogVolumesMessageReader(client=client, volume_path=VOLUME, interval=1)
    python = runtime_python(RUNTIME)
    env = runtime_env(python, {**ws.env(), **(extra_env or {})})
    return run_pipes(
        [python, str(SCRIPT), mode, kind],
        extras={"big": "e" * 200_000},
        client_factory=lambda: RuntimeClient(
            env, context_injector=injector, message_reader=reader, params="env", timeout=180
        ),
    )


def _assert_arrived(result: RunResult, kind: str) -> dict[str, object]:
    assert result.success, result.failure
    md = {k: v.value for k, v in result.materializations["asset_a"].metadata.items()}
    assert md["extras_len"] == 200_000
    assert [m["i"] for m in result.custom_messages] == [0, 1]
    assert all(m["blob"] == str(m["i"]) * 100_000 for m in result.custom_messages)
    assert [m for _, m in result.logs if m.startswith("line ")] == [f"line {i}" for i in range(100)]
    assert md["dbutils_type"] == "RemoteDbUtils"
    # REST through our bounded SDK backend on the dbutils' own configuration
    assert md["store"] == {"dbfs": "SdkDbfsFileStore", "volumes": "SdkVolumesFileStore"}[kind]
    return md


@pytest.mark.parametrize("kind", ["dbfs", "volumes"])
def test_workspace_client_dbutils_handed_in(workspace: Emulator, kind: str) -> None:
    """``dbutils=WorkspaceClient().dbutils``: context and messages travel over REST to the emulator."""
    workspace.reset_stats()
    _assert_arrived(_run(workspace, "handed", kind), kind)
    assert workspace.unserved_requests == []
    api = "/api/2.0/dbfs/" if kind == "dbfs" else "/api/2.0/fs/"
    assert sum(n for k, n in workspace.stats.items() if api in k) > 0


def test_workspace_client_dbutils_found_without_spark_connect(workspace: Emulator) -> None:
    """A ``dbutils`` global that is the SDK's remote one, on a "Databricks runtime" whose Spark Connect
    endpoint does not answer: used over REST; neither a Spark Connect session nor the SDK's runtime
    module (which would try to open one) is touched, and building ``w.dbutils`` takes no time."""
    env = {"DATABRICKS_RUNTIME_VERSION": "15.4", "SPARK_REMOTE": f"sc://127.0.0.1:{_closed_port()}"}
    md = _assert_arrived(_run(workspace, "found", "volumes", env), "volumes")
    assert md["sdk_runtime_imported"] is False
    assert md["spark_connect_imported"] is False
    assert float(str(md["dbutils_seconds"])) < 30  # the import of the SDK included; no network, no session


@pytest.mark.parametrize("kind", ["dbfs", "volumes"])
def test_workspace_client_dbutils_outage_is_bounded(workspace: Emulator, kind: str) -> None:
    """Every request answered 503: the loader gives up within its retry policy (4 s per operation),
    not after the SDK's own 300 s retry window, and says which backend failed."""
    python = runtime_python(RUNTIME)
    env = runtime_env(python, workspace.env())
    with workspace.faults(rate=1.0, statuses=(503,), endpoints=["/api/2.0/dbfs/", "/api/2.0/fs/"]):
        started = time.monotonic()
        done = subprocess.run(
            [python, str(SCRIPT), "outage", kind], env=env, capture_output=True, text=True, timeout=120
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["seconds"] < 15, report
    assert "sdk" in report["outcome"] and "503" in report["outcome"], report
    assert elapsed < 90


def test_auto_client_construction_is_bounded_when_the_host_does_not_answer(tmp_path: Path) -> None:
    """No FUSE, no dbutils: the writer's own ``WorkspaceClient()`` must not sit in the SDK's 300 s host
    metadata probe when the workspace is unreachable (connection refused); the load fails in bounds."""
    python = runtime_python(RUNTIME)
    env = runtime_env(
        python,
        {
            "DATABRICKS_HOST": f"http://127.0.0.1:{_closed_port()}",
            "DATABRICKS_TOKEN": "dapi-unreachable-0000",
            "DATABRICKS_AUTH_TYPE": "pat",
        },
    )
    code = (
        "import json, time\n"
        "from dagster_pipes_spark import PipesDbfsContextLoader, RetryPolicy\n"
        "t0 = time.monotonic()\n"
        "loader = PipesDbfsContextLoader(retry=RetryPolicy(timeout=4.0, request_timeout=2.0, backoff_max=1.0))\n"
        "try:\n"
        "    with loader.load_context({'path': '/tmp/x/context.json'}):\n"
        "        outcome = 'loaded'\n"
        "except Exception as e:\n"
        "    outcome = f'{type(e).__name__}: {e}'\n"
        "print(json.dumps({'seconds': time.monotonic() - t0, 'outcome': outcome}))\n"
    )
    done = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["outcome"] != "loaded"
    assert report["seconds"] < 30, report
