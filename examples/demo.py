"""The main demo: real Dagster launches Spark work through the STOCK Databricks Pipes clients.

A local Databricks workspace emulator (DBFS, Files and Jobs REST APIs) stands in for a workspace,
and its tasks run on this machine on local Spark, so this needs no account:

* ``revenue``   -- PipesDatabricksClient -> spark_python_task on a new cluster (classic Spark, DBFS);
* ``customers`` -- PipesDatabricksServerlessClient -> notebook_task (Spark Connect, UC Volumes);
* ``inventory`` -- PipesDatabricksClient -> python_wheel_task on an existing cluster (DBFS).

Materializations come from dagster-pipes-spark's Spark write hooks (no hand-written reporting for
the tables): the tables are Delta tables, as on Databricks (the pinned Delta jars are fetched once and
cached), so each reports its ``delta/version``. Run: ``bash .ci/dev demo``.
"""

import os
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.pop("DATABRICKS_HOST", None)  # the demo always runs against the local emulator

import dagster as dg
import definitions

# The stock clients call Dagster APIs still marked preview/beta: true, but not this demo's story.
for _category in (dg.PreviewWarning, dg.BetaWarning):
    warnings.filterwarnings("ignore", category=_category)

PLAN = [
    ("revenue", "PipesDatabricksClient / spark_python_task", "DBFS"),
    ("customers", "PipesDatabricksServerlessClient / notebook_task", "UC Volumes"),
    ("inventory", "PipesDatabricksClient / python_wheel_task", "DBFS"),
]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> int:
    started = time.time()
    _, emulator = definitions.workspace()
    _say(f"local Databricks workspace emulator at {emulator.url} (tasks run on local Spark)")
    instance = dg.DagsterInstance.ephemeral()
    rows = []
    ok = True
    for name, mode, transport in PLAN:
        _say(f"materializing {name}: {mode} ...")
        t0 = time.time()
        result = dg.materialize(
            [getattr(definitions, name)], instance=instance, raise_on_error=False, run_config=QUIET
        )
        seconds = time.time() - t0
        logs = [r for r in instance.all_logs(result.run_id) if not r.is_dagster_event]
        checks = result.get_asset_check_evaluations()
        mats = result.get_asset_materialization_events()
        md = mats[0].materialization.metadata if mats else {}
        version = (mats[0].materialization.tags or {}).get("dagster/data_version", "-") if mats else "-"
        row_count = md["dagster/row_count"].value if "dagster/row_count" in md else "-"
        storage = md["dagster/storage_kind"].value if "dagster/storage_kind" in md else "-"
        delta_version = md["delta/version"].value if "delta/version" in md else "-"
        check_text = ", ".join(f"{c.check_name} {'ok' if c.passed else 'FAILED'}" for c in checks) or "-"
        _say(f"  {name}: {'succeeded' if result.success else 'FAILED'} in {seconds:.1f}s")
        ok = ok and result.success
        rows.append(
            (
                name,
                mode.split(" / ")[1],
                transport,
                str(row_count),
                str(storage),
                str(delta_version),
                str(version)[:12],
                check_text,
                str(len(logs)),
                f"{seconds:.1f}",
            )
        )
    emulator.stop()
    header = (
        "asset",
        "launch mode",
        "transport",
        "rows",
        "storage",
        "delta/version",
        "data version",
        "checks",
        "logs",
        "seconds",
    )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(
        f"\nall assets {'materialized' if ok else 'NOT materialized'} in {time.time() - started:.1f}s "
        "(rows and schema reported automatically from what Spark wrote)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
