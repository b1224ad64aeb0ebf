"""Memory of a job during a storage outage: our bounded queue next to keeping every message in memory.

Used by ``bench_failures.py --memory`` (and runnable alone)::

    .venv/bin/python benchmarks/outage_memory.py [--seconds 60] [--rate 10000]

Each variant is a real external process writing through ``PipesUnityCatalogVolumesMessageWriter`` with a
default ``WorkspaceClient`` to a loopback workspace emulator. At start it breaks storage (every Files API
write answers 503), then sends ``--rate`` messages per second for ``--seconds`` seconds (log lines of
~150 bytes, one custom message per 1,000), then storage comes back and the context closes. A thread in
the process samples its resident memory (``VmRSS``) every second. Afterwards the driver reads back every
chunk from the emulator's storage and checks that every message arrived once, in order.

Variants: ``bounded`` (the default, ``max_pending_bytes`` 32 MiB: older messages spill to a temporary
file) and ``in-memory`` (``max_pending_bytes=None``: what a writer that keeps its buffer in memory does,
as the stock writers and the naive loop do). The stock ``dagster_pipes`` writers write through FUSE only
and keep their buffer in a Python list, so their memory grows like the ``in-memory`` row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VOLUME = "/Volumes/main/default/pipes"
VARIANTS = {"bounded": "default", "in-memory": "none"}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def external(seconds: float, rate: int, cap: str, out: str) -> None:
    """The job: break storage, send messages at ``rate`` for ``seconds``, restore storage, close."""
    from databricks.sdk import WorkspaceClient

    import dagster_pipes_spark as dp
    from dagster_pipes_spark._encoding import encode_param
    from dagster_pipes_spark.testing import EmulatorControl

    if os.environ.get("OUTAGE_MEMORY_DEBUG"):
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(relativeCreated)d %(name)s %(message)s")
        for noisy in ("urllib3", "databricks"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    host = os.environ["DATABRICKS_HOST"]
    control = EmulatorControl(host)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    start = time.monotonic()

    def sample() -> None:
        while not stop.is_set():
            samples.append((round(time.monotonic() - start, 1), round(_rss_mb(), 1)))
            stop.wait(1.0)

    threading.Thread(target=sample, daemon=True).start()
    client = WorkspaceClient(host=host, token=os.environ["DATABRICKS_TOKEN"])
    kwargs: dict[str, Any] = {"client": client, "interval": 1, "flush_timeout": 240}
    if cap == "none":
        kwargs["max_pending_bytes"] = None
    params = {
        "DAGSTER_PIPES_CONTEXT": encode_param({"data": {"asset_keys": ["a"], "run_id": "r", "extras": {}}}),
        "DAGSTER_PIPES_MESSAGES": encode_param({"path": f"{VOLUME}/outage-{cap}"}),
    }
    sent = 0
    with dp.open_dagster_pipes(
        params_loader=dp.PipesMappingParamsLoader(params),
        context_loader=dp.PipesDefaultContextLoader(),
        message_writer=dp.PipesUnityCatalogVolumesMessageWriter(**kwargs),
    ) as pipes:
        control.set_faults(rate=1.0, statuses=[503], endpoints=["PUT /api/2.0/fs/"])
        body_start = time.monotonic()
        padding = "x" * 100
        while (elapsed := time.monotonic() - body_start) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                if sent % 1000 == 999:
                    pipes.report_custom_message({"n": sent})
                else:
                    pipes.log.info(f"{sent} {padding}")
                sent += 1
            time.sleep(0.005)
        outage_end = time.monotonic()
        stats = pipes._message_channel.pending_stats  # type: ignore[attr-defined]
        control.clear_faults()
    closed = time.monotonic()
    stop.set()
    Path(out).write_text(
        json.dumps(
            {
                "sent": sent,
                "rate": sent / (outage_end - body_start),
                "samples": samples,
                "pending_at_outage_end": stats,
                "close_seconds": closed - outage_end,
            }
        )
    )


def run(seconds: float, rate: int) -> dict[str, Any]:
    """Run both variants one after the other; returns their results."""
    sys.path.insert(0, str(HERE.parent))
    from dagster_pipes_spark.testing import Emulator

    results: dict[str, Any] = {}
    for name, cap in VARIANTS.items():
        with Emulator(volumes=["main/default/pipes"]) as ws, tempfile.TemporaryDirectory() as tmp:
            out_path = Path(tmp) / "result.json"
            env = {**os.environ, "DATABRICKS_HOST": ws.url, "DATABRICKS_TOKEN": ws.token}
            proc = subprocess.run(
                [sys.executable, __file__, "--external", str(seconds), str(rate), cap, str(out_path)],
                env=env,
                capture_output=True,
                text=True,
                timeout=seconds + 600,
            )
            if os.environ.get("OUTAGE_MEMORY_DEBUG"):
                print(proc.stderr[-20000:], file=sys.stderr)
            if proc.returncode != 0:
                results[name] = {"error": proc.stderr[-2000:]}
                continue
            result = json.loads(out_path.read_text())
            chunks = sorted(ws.local_path(f"{VOLUME}/outage-{cap}").glob("*.json"), key=lambda p: int(p.stem))
            lines = [json.loads(line) for p in chunks for line in p.read_text().splitlines()]
            logs = [m["params"]["message"].split()[0] for m in lines if m["method"] == "log"]
            result["delivered"] = len(lines)
            result["chunks"] = len(chunks)
            result["in_order_once"] = logs == [str(i) for i in range(result["sent"]) if i % 1000 != 999]
            result["closed_received"] = bool(lines) and lines[-1]["method"] == "closed"
            rss = [mb for _, mb in result["samples"]]
            result["rss_start_mb"], result["rss_peak_mb"] = rss[1] if len(rss) > 1 else rss[0], max(rss)
            results[name] = result
    return results


def report(results: dict[str, Any]) -> str:
    """A small table, one row per variant, and the ratio of memory growth."""
    rows = [
        "variant    | sent/s | RSS at 1 s | RSS peak | growth | spilled at outage end | delivered, in order, closed"
    ]
    growth: dict[str, float] = {}
    for name, r in results.items():
        if "error" in r:
            rows.append(f"{name:10} | error: {r['error'][-300:]}")
            continue
        growth[name] = r["rss_peak_mb"] - r["rss_start_mb"]
        spill = r["pending_at_outage_end"]["spill_bytes"] / 2**20
        rows.append(
            f"{name:10} | {r['rate']:6.0f} | {r['rss_start_mb']:7.1f} MB | {r['rss_peak_mb']:6.1f} MB | "
            f"{growth[name]:+6.1f} MB | {spill:8.1f} MB | {r['delivered']:,} of {r['sent'] + 2:,}, "
            f"{r['in_order_once']}, {r['closed_received']} (close {r['close_seconds']:.1f} s)"
        )
    if growth.get("bounded") and "in-memory" in growth:
        rows.append(f"memory growth in-memory / bounded: {growth['in-memory'] / growth['bounded']:.1f}x")
    for name, r in results.items():
        if "samples" in r:
            trace = " ".join(f"{mb:.0f}" for _, mb in r["samples"][:: max(1, len(r["samples"]) // 12)])
            rows.append(f"{name} RSS (MB) over time: {trace}")
    return "\n".join(rows)


def main() -> None:
    """Command line: see the module docstring."""
    if len(sys.argv) > 1 and sys.argv[1] == "--external":
        seconds, rate, cap, out = sys.argv[2:6]
        external(float(seconds), int(rate), cap, out)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=int, default=10_000)
    args = parser.parse_args()
    print(report(run(args.seconds, args.rate)))


if __name__ == "__main__":
    main()
