"""External side of the failure drills (see tests/_failure_drill.py).

argv: kind (dbfs|volumes), impl (ours|stock), fault (503|blackhole|403|none), ending (body|sigterm),
out_dir, flush_timeout ("" = the writer's default).

Reports BEFORE custom messages, waits until they were delivered, then breaks storage through the
emulator's control endpoint (every write request from then on answers 503, never answers, or answers
403), reports AFTER custom messages and one log, and ends its body (or waits for SIGTERM). The time
the body ended is written to ``out_dir/body_end``, the time the context had closed (its writer
flushed or gave up) to ``out_dir/closed_at``; ``out_dir/ready`` tells the drill to send SIGTERM.
"""

import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

BEFORE, AFTER = 20, 15
#: Every request that changes storage (all the external side makes once the context is loaded); the
#: orchestrator's reader only reads, so it still sees what was delivered.
WRITE_ENDPOINTS = ["POST /api/2.0/dbfs/", "PUT /api/2.0/fs/", "DELETE /api/2.0/fs/"]

kind, impl, fault, ending, out_dir = sys.argv[1:6]
flush_timeout = float(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6] else None
out = Path(out_dir)
host = os.environ["DATABRICKS_HOST"]


def break_storage() -> None:
    from dagster_pipes_spark.testing import EmulatorControl

    mode: dict[str, Any] = {"hold": True} if fault == "blackhole" else {"statuses": [int(fault)]}
    EmulatorControl(host).set_faults(rate=1.0, endpoints=WRITE_ENDPOINTS, **mode)


# our library, or the stock one (FUSE only: /dbfs and /Volumes are mapped onto the emulator by the caller)
dp: Any = importlib.import_module("dagster_pipes_spark" if impl == "ours" else "dagster_pipes")
loader: Any
writer: Any
if impl == "ours":
    from databricks.sdk import WorkspaceClient

    # What a user writes on a cluster: a default client, with the SDK's own (long) retry policy.
    client = WorkspaceClient(host=host, token=os.environ["DATABRICKS_TOKEN"])
    writer_kwargs: dict[str, Any] = {"client": client, "interval": 1}
    if flush_timeout is not None:
        writer_kwargs["flush_timeout"] = flush_timeout
    if kind == "dbfs":
        loader, writer = dp.PipesDbfsContextLoader(client=client), dp.PipesDbfsMessageWriter(**writer_kwargs)
    else:
        loader = dp.PipesUnityCatalogVolumesContextLoader(client=client)
        writer = dp.PipesUnityCatalogVolumesMessageWriter(**writer_kwargs)
elif kind == "dbfs":

    class _DbfsWriter(dp.PipesDbfsMessageWriter):
        def get_opened_extras(self) -> dict:  # the stock one demands a Databricks SparkSession
            return {}

    loader, writer = dp.PipesDbfsContextLoader(), _DbfsWriter(interval=1)
else:
    loader = dp.PipesUnityCatalogVolumesContextLoader()
    writer = dp.PipesUnityCatalogVolumesMessageWriter(interval=1)

try:
    with dp.open_dagster_pipes(context_loader=loader, message_writer=writer) as pipes:
        for i in range(BEFORE):
            pipes.report_custom_message({"phase": "before", "i": i})
        if impl == "ours":
            channel = pipes._message_channel
            deadline = time.time() + 60
            while channel.delivered_messages < BEFORE + 1 and time.time() < deadline:  # + `opened`
                time.sleep(0.05)
        else:
            time.sleep(2.5)  # the stock writer uploads every `interval` (1 s)
        if fault != "none":
            break_storage()
        for i in range(AFTER):
            pipes.report_custom_message({"phase": "after", "i": i})
        pipes.log.info("body done")
        (out / "body_end").write_text(repr(time.time()))
        if ending == "sigterm":
            (out / "ready").write_text("1")
            time.sleep(600)
finally:
    (out / "closed_at").write_text(repr(time.time()))  # the context closed (its writer flushed)
