"""Our DBFS / UC Volumes loaders and writers against the REAL dagster-databricks injectors and readers.

The orchestrator side talks HTTP to the loopback workspace emulator through the real databricks-sdk;
the external side runs in a subprocess on each storage backend (SDK, dbutils, FUSE mapped onto the
emulator's directory), with and without 15% injected 429/503 faults.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from _helpers import external_env
from dagster_databricks.pipes import (
    PipesDbfsContextInjector,
    PipesDbfsMessageReader,
    PipesUnityCatalogVolumesContextInjector,
    PipesUnityCatalogVolumesMessageReader,
)

from dagster_pipes_spark.testing import Emulator

SCRIPT = Path(__file__).parent / "scripts" / "databricks_ext.py"
VOLUME = "/Volumes/main/default/pipes"
STORE_CLASS = {
    "sdk": {"dbfs": "SdkDbfsFileStore", "volumes": "SdkVolumesFileStore"},
    "dbutils": "DbutilsFileStore",
    "auto-dbutils": "DbutilsFileStore",
    "fuse": "FuseFileStore",
}


@pytest.fixture(scope="module")
def workspace():
    with Emulator(volumes=["main/default/pipes"]) as ws:
        yield ws


def _run(ws: Emulator, kind: str, backend: str, faults: float = 0.0, *extra_args: str):
    client = ws.workspace_client()
    injector: dg.PipesContextInjector
    reader: dg.PipesMessageReader
    if kind == "dbfs":
        injector, reader = (
            PipesDbfsContextInjector(client=client),
            PipesDbfsMessageReader(client=client, interval=1),
        )
    else:
        injector = PipesUnityCatalogVolumesContextInjector(client=client, volume_path=VOLUME)
        reader = PipesUnityCatalogVolumesMessageReader(client=client, volume_path=VOLUME, interval=1)
    env = {**os.environ, **external_env(), **ws.env()}
    if backend == "fuse":
        env["DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT"] = str(ws.dbfs_root)
        env["DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT"] = str(ws.volumes_root)
    custom: list = []
    stdout: list[str] = []

    @dg.asset(check_specs=[dg.AssetCheckSpec("chk", asset="asset_a")])
    def asset_a(context: dg.AssetExecutionContext):
        with dg.open_pipes_session(
            context=context, extras={"big": "e" * 300_000}, context_injector=injector, message_reader=reader
        ) as session:
            proc = subprocess.run(
                [sys.executable, str(SCRIPT), kind, backend, *extra_args],
                env={**env, **session.get_bootstrap_env_vars()},
                capture_output=True,
                text=True,
            )
            stdout.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, proc.stderr
        custom.extend(session.get_custom_messages())
        yield from session.get_results()

    instance = dg.DagsterInstance.ephemeral()
    ws.reset_stats()
    if faults:
        with ws.faults(rate=faults, statuses=(429, 503), seed=7):
            result = dg.materialize([asset_a], instance=instance, raise_on_error=False)
        assert ws.stats["faults"] > 0
    else:
        result = dg.materialize([asset_a], instance=instance, raise_on_error=False)
    logs = [r.user_message for r in instance.all_logs(result.run_id) if not r.is_dagster_event]
    return result, custom, logs, stdout


def _check(result, custom, logs, kind: str, backend: str) -> None:
    assert result.success
    [mat] = result.get_asset_materialization_events()
    md = mat.materialization.metadata
    assert md["extras_len"].value == 300_000
    expected_store = STORE_CLASS[backend]
    expected_store = expected_store[kind] if isinstance(expected_store, dict) else expected_store
    assert md["store"].value == expected_store
    assert [m["i"] for m in custom] == [0, 1, 2] and all(m["blob"] == str(m["i"]) * 200_000 for m in custom)
    assert [m for m in logs if m.startswith("line ")] == [f"line {i}" for i in range(300)]  # in order, once
    assert not [m for m in logs if "did not receive" in m]
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["backend"].value == backend


@pytest.mark.parametrize("kind", ["dbfs", "volumes"])
@pytest.mark.parametrize("backend", ["sdk", "dbutils", "fuse", "auto-dbutils"])
def test_backend_roundtrip(workspace, kind, backend):
    result, custom, logs, _ = _run(workspace, kind, backend)
    _check(result, custom, logs, kind, backend)
    if kind == "dbfs":  # every chunk stays readable by the stock reader's 0.5 MB default read
        sizes = [p.stat().st_size for p in workspace.dbfs_root.rglob("*.json") if p.stem.isdigit()]
        assert all(s < 524_288 for s in sizes)


@pytest.mark.parametrize(
    "kind,backend", [("dbfs", "sdk"), ("volumes", "sdk"), ("dbfs", "dbutils"), ("volumes", "dbutils")]
)
def test_backend_roundtrip_with_faults(workspace, kind, backend):
    result, custom, logs, _ = _run(workspace, kind, backend, faults=0.15)
    _check(result, custom, logs, kind, backend)


@pytest.mark.parametrize("kind", ["dbfs", "volumes"])
def test_databricks_loader_and_writer_follow_the_orchestrator(workspace, kind):
    """PipesDatabricksContextLoader/MessageWriter pick DBFS or Volumes from the params' path."""
    result, custom, logs, _ = _run(workspace, kind, "sdk", 0.0, "auto-kind")
    _check(result, custom, logs, kind, "sdk")


def test_volumes_reader_forwards_stdout(workspace, capfd):
    """The Volumes reader defaults include_stdio_in_messages=True: print() reaches the orchestrator's stdout."""
    result, _, _, stdout = _run(workspace, "volumes", "sdk")
    assert result.success
    assert "stdout from sdk" in stdout[0]  # still written to the driver's own stdout (tee)
    assert "stdout from sdk" in capfd.readouterr().out  # and forwarded as log_external_stream
