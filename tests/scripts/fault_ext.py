"""External side of the fault-injection jobs (see ``run_fault_job`` in tests/_failure_drill.py).

argv[1]: a JSON object: ``kind`` (dbfs|volumes), ``out`` (a directory for markers), ``messages``
(custom messages ``{"i": 0..n-1}``), ``body_seconds`` (spread over that long), ``retry`` (RetryPolicy
options or null), ``flush_timeout`` (null: the writer's default), ``writer_options`` (more writer keyword arguments), ``print`` (lines printed on stdout
and stderr by the body), ``debug_logging`` (the package's logger at DEBUG on stderr), ``doctor``
(run ``dagster-pipes-spark doctor`` in the body and print its output).

The storage client is a DEFAULT ``WorkspaceClient(host=, token=)`` (the SDK's own retry policy), as on
a cluster. Markers: ``started`` (before the context read), ``loaded`` (context read), ``body_end``,
``closed_at`` (the context had closed: its writer delivered everything or gave up), as ``time.time()``;
``channel.json``: the channel's ``pending_stats`` once closed (peak memory, spilled bytes...).
"""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from databricks.sdk import WorkspaceClient

import dagster_pipes_spark as dp

spec: dict[str, Any] = json.loads(sys.argv[1])
out = Path(spec["out"])
if spec.get("debug_logging"):
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    package_logger = logging.getLogger("dagster_pipes_spark")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.DEBUG)

client = WorkspaceClient(host=os.environ["DATABRICKS_HOST"], token=os.environ["DATABRICKS_TOKEN"])
retry = dp.RetryPolicy(**spec["retry"]) if spec.get("retry") else None
common: dict[str, Any] = {"client": client, **({"retry": retry} if retry is not None else {})}
writer_kwargs: dict[str, Any] = {**common, "interval": spec.get("interval", 0)}
if spec.get("flush_timeout") is not None:
    writer_kwargs["flush_timeout"] = spec["flush_timeout"]
writer_kwargs.update(spec.get("writer_options") or {})
if spec["kind"] == "dbfs":
    loader: Any = dp.PipesDbfsContextLoader(**common)
    writer: Any = dp.PipesDbfsMessageWriter(**writer_kwargs)
else:
    loader = dp.PipesUnityCatalogVolumesContextLoader(**common)
    writer = dp.PipesUnityCatalogVolumesMessageWriter(**writer_kwargs)

(out / "started").write_text(repr(time.time()))
try:
    with dp.open_dagster_pipes(context_loader=loader, message_writer=writer) as pipes:
        (out / "loaded").write_text(repr(time.time()))
        n = int(spec["messages"])
        pause = float(spec["body_seconds"]) / max(n, 1)
        for i in range(n):
            pipes.report_custom_message({"i": i})
            if i % 20 == 0:
                pipes.log.info(f"progress {i}")
            time.sleep(pause)
        for line in spec.get("print", []):
            print(line, flush=True)
            print(line, file=sys.stderr, flush=True)
        if spec.get("doctor"):
            for args in (["doctor"], ["doctor", "--json"]):
                done = subprocess.run(
                    [sys.executable, "-m", "dagster_pipes_spark.cli", *args],
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                print(done.stdout + done.stderr, flush=True)
                pipes.log.info("doctor: " + done.stdout + done.stderr)
        pipes.report_asset_materialization(metadata={"messages": n})
        (out / "body_end").write_text(repr(time.time()))
        channel = pipes._message_channel
finally:
    (out / "closed_at").write_text(repr(time.time()))
stats = getattr(channel, "pending_stats", None) if "channel" in globals() else None
(out / "channel.json").write_text(json.dumps(stats if isinstance(stats, dict) else {}))
