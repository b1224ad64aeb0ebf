"""The main demo: real Dagster materializes assets whose work runs through dagster-pipes-spark.

* `orders`   -- PipesSubprocessClient, file transport (the stock default pairing);
* `revenue`  -- DBFS: the real dagster-databricks PipesDbfsContextInjector/PipesDbfsMessageReader
                talk REST to a local workspace emulator; our side uses databricks-sdk (no FUSE);
* `customers`-- UC Volumes: the real Volumes injector/reader; our side uses a notebook-style dbutils.

Run: bash .ci/dev demo
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster_databricks.pipes import (
    PipesDbfsContextInjector,
    PipesDbfsMessageReader,
    PipesUnityCatalogVolumesContextInjector,
    PipesUnityCatalogVolumesMessageReader,
)

from dagster_pipes_spark.testing import Emulator

JOB = Path(__file__).parent / "jobs" / "pipes_job.py"
VOLUME = "/Volumes/main/default/pipes"
CHECK = "values_positive"


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build(ws: Emulator) -> list:
    client = ws.workspace_client()
    # Off Databricks: storage goes over REST to the emulator, never through a local /dbfs or /Volumes.
    env = {**os.environ, **ws.env(), "DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT": "/nonexistent/dbfs",
           "DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT": "/nonexistent/Volumes"}

    def launch(session: dg.PipesSession, transport: str) -> None:
        subprocess.run([sys.executable, str(JOB), transport], env={**env, **session.get_bootstrap_env_vars()}, check=True)

    @dg.asset(check_specs=[dg.AssetCheckSpec(CHECK, asset="orders")])
    def orders(context: dg.AssetExecutionContext):
        _say("orders: PipesSubprocessClient, file transport")
        return dg.PipesSubprocessClient(env=env).run(
            command=[sys.executable, str(JOB), "file"], context=context, extras={"rows": 1000}
        ).get_results()

    @dg.asset(deps=[orders], check_specs=[dg.AssetCheckSpec(CHECK, asset="revenue")])
    def revenue(context: dg.AssetExecutionContext):
        _say("revenue: DBFS over REST (dagster-databricks reader <-> emulator <-> databricks-sdk)")
        with dg.open_pipes_session(context=context, extras={"rows": 250},
                                   context_injector=PipesDbfsContextInjector(client=client),
                                   message_reader=PipesDbfsMessageReader(client=client, interval=1)) as session:
            launch(session, "dbfs")
        yield from session.get_results()

    @dg.asset(deps=[orders], check_specs=[dg.AssetCheckSpec(CHECK, asset="customers")])
    def customers(context: dg.AssetExecutionContext):
        _say("customers: UC Volumes (dagster-databricks Volumes reader <-> emulator <-> our writer, backend auto-picked)")
        reader = PipesUnityCatalogVolumesMessageReader(client=client, volume_path=VOLUME, interval=1)
        with dg.open_pipes_session(context=context, extras={"rows": 40},
                                   context_injector=PipesUnityCatalogVolumesContextInjector(client=client, volume_path=VOLUME),
                                   message_reader=reader) as session:
            launch(session, "volumes")
        yield from session.get_results()

    return [orders, revenue, customers]


def main() -> int:
    started = time.time()
    with Emulator(volumes=["main/default/pipes"]) as ws:
        _say(f"local Databricks workspace emulator at {ws.url}")
        instance = dg.DagsterInstance.ephemeral()
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        result = dg.materialize(build(ws), instance=instance, raise_on_error=False, run_config=quiet)
        logs = [r for r in instance.all_logs(result.run_id) if not r.is_dagster_event]
    print()
    header = f"{'asset':<10} {'transport':<9} {'backend':<12} {'rows':>6} {'data version':>13} {'check':<7} {'logs':>5}"
    print(header)
    print("-" * len(header))
    checks = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()}
    for ev in result.get_asset_materialization_events():
        key = ev.asset_key.to_user_string()
        mat = ev.materialization
        md = mat.metadata
        check = checks.get(key)
        n_logs = sum(1 for r in logs if r.step_key == key)
        print(f"{key:<10} {md['transport'].value:<9} {md['backend'].value:<12} {md['dagster/row_count'].value:>6} "
              f"{mat.tags.get('dagster/data_version', ''):>13} {('passed' if check and check.passed else 'FAILED'):<7} {n_logs:>5}")
    print(f"\nrun {'succeeded' if result.success else 'FAILED'} in {time.time() - started:.1f}s")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
