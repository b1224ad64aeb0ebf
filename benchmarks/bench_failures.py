"""Failure benchmark: how long a job takes to end when its storage breaks, ours next to the stock ``dagster_pipes``.

Run with the project venv (as root for the stock rows, which map ``/dbfs`` and ``/Volumes``)::

    .venv/bin/python benchmarks/bench_failures.py [--runs 5] [--quick] [--parallel 12] [--no-stock]
    .venv/bin/python benchmarks/bench_failures.py --fault-kinds [--runs 3] [--parallel 10]

Methodology
-----------
* Every run is one failure drill (``tests/_failure_drill.py``, the same harness as
  ``tests/test_failure_bounds.py``): a real ``dagster.materialize`` with the REAL ``dagster_databricks``
  DBFS or UC Volumes injector and reader (``interval=1``) talking HTTP to its own loopback workspace
  emulator; the external process writes with a DEFAULT ``WorkspaceClient(host=..., token=...)`` (the
  SDK's own retry policy: ~300 s retry window and 60 s per request by default) and our writer with its
  defaults (``flush_timeout`` 60 s). After its first 20 messages are delivered, every write request
  answers **503**, never answers (**black hole**: the emulator holds it open), or answers **403**; then
  it reports 15 more messages and a log and ends its body (**end of body**), or sleeps and is sent
  **SIGTERM**.
* Measured on the wall clock: from the end of the body (``time.time()`` written by the external
  process) or from ``send_signal(SIGTERM)`` to the moment the drill sees the process exit. Bounds: the
  writer's ``flush_timeout`` (60 s) after the body, 30 s after SIGTERM. Also recorded: the messages
  Dagster received before/after the fault and the count on our stderr line ("N message(s) were not
  delivered to <path> ...").
* **Stock rows:** the stock writers only write through FUSE (``/dbfs``, ``/Volumes``), which this
  benchmark symlinks onto one shared emulator's storage (root only; skipped otherwise). They make no
  HTTP request once the context is loaded, so an HTTP fault cannot reach them: their rows run with
  storage healthy and show their time to exit. A real FUSE mount whose backend hangs can still hang
  them; the stock library also has no SIGTERM handling (the process dies at once and what it had
  buffered is lost).
* Runs execute ``--parallel`` at a time (one thread and one ``materialize`` each), so figures include
  some scheduling noise on a busy machine. The script always exits 0: it is a report, not a test.
  Results (every run) go to ``benchmarks/results/failures.json`` and the report to ``failures.txt``.
* ``--fault-kinds``: instead, the scenarios of ``tests/test_fault_injection.py`` (one fault kind each
  — a lost answer to an applied write, resets in the request and in the answer, slow answers, a stall
  past ``request_timeout``, 429 with ``Retry-After``, garbled 200 bodies, an outage that ends, a
  seeded mix — on the chunk uploads or on the context read), ours only: how long the close (or the
  context read) took under each, against the bound the test allows, and whether every message
  arrived once and in order. Results: ``failures_kinds.json`` / ``failures_kinds.txt``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO / "tests"), str(HERE)]

from _failure_drill import (  # noqa: E402 - after the path setup
    ENDINGS,
    FAULTS,
    FLUSH_TIMEOUT,
    KINDS,
    SIGTERM_BOUND,
    Drill,
    phases,
    run_drills,
)
from bench_databricks import MOUNTS, _table, fuse_mounts, machine_info  # noqa: E402

RESULTS = HERE / "results"
FAULT_NAMES = {"503": "503", "blackhole": "black hole", "403": "403", "none": "none (no HTTP)"}


def _bound(drill: Drill) -> float:
    if drill.ending == "sigterm":
        return SIGTERM_BOUND
    return drill.flush_timeout if drill.flush_timeout is not None else FLUSH_TIMEOUT


def _run_batches(
    drills: Sequence[Drill], parallel: int, workdir: Path, ws: Any = None
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for start in range(0, len(drills), parallel):
        batch = drills[start : start + parallel]
        began = time.monotonic()
        print(f"[{len(results) + len(batch)}/{len(drills)}] {len(batch)} concurrent drills ...", flush=True)
        results += run_drills(batch, workdir, ws)
        print(f"    done in {time.monotonic() - began:.0f} s", flush=True)
    return results


def _summary(drill: Drill, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    times = [r["exit_seconds"] for r in runs if r.get("exit_seconds") is not None]
    closes = [r["close_seconds"] for r in runs if r.get("close_seconds") is not None]
    bound = _bound(drill)
    # the promise: close() within flush_timeout of the body; the process gone within 30 s of SIGTERM
    judged = times if drill.ending == "sigterm" else closes
    got = [phases(r) for r in runs if "error" not in r]
    losses = sorted({n for r in runs for n, _ in r.get("loss", [])})
    return {
        "writer": drill.impl,
        "kind": drill.kind,
        "fault": drill.fault,
        "ending": drill.ending,
        "bound": bound,
        "runs": len(runs),
        "failed_runs": sum(1 for r in runs if "error" in r or r.get("killed")),
        "close_median": statistics.median(closes) if closes else None,
        "min": min(times) if times else None,
        "median": statistics.median(times) if times else None,
        "max": max(times) if times else None,
        "within_bound": sum(1 for t in judged if t <= bound),
        "before_received_min": min((len(g["before"]) for g in got), default=None),
        "after_received_max": max((len(g["after"]) for g in got), default=None),
        "reported_lost": losses,
        "returncodes": sorted({r.get("returncode") for r in runs if "error" not in r}, key=str),
    }


def _row(s: dict[str, Any]) -> list[Any]:
    def sec(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    return [
        "ours" if s["writer"] == "ours" else "stock (FUSE)",
        s["kind"],
        FAULT_NAMES[s["fault"]],
        "end of body" if s["ending"] == "body" else "SIGTERM",
        f"{s['bound']:g}",
        sec(s["close_median"]),
        sec(s["min"]),
        sec(s["median"]),
        sec(s["max"]),
        f"{s['within_bound']}/{s['runs']}",
        s["before_received_min"] if s["before_received_min"] is not None else "-",
        s["after_received_max"] if s["after_received_max"] is not None else "-",
        ",".join(map(str, s["reported_lost"])) or "-",
    ]


HEADERS = [
    "writer",
    "storage",
    "fault",
    "from",
    "bound s",
    "close med s",
    "exit min s",
    "exit med s",
    "exit max s",
    "in bound",
    "before rcvd",
    "after rcvd",
    "stderr: lost",
]


def fault_kinds(runs: int, parallel: int) -> int:
    """The fault-kind scenarios of tests/test_fault_injection.py, ``runs`` times each."""
    from _failure_drill import FaultJob, run_fault_jobs
    from test_fault_injection import CASES, SLACK, Scenario, _check_exactly_once, _job_name

    jobs: list[tuple[Scenario, str, FaultJob]] = [
        (
            s,
            k,
            FaultJob(
                f"{_job_name(s, k)}-{r}",
                k,
                s.faults,
                messages=s.messages,
                body_seconds=s.body_seconds,
                retry=s.retry,
            ),
        )
        for r in range(runs)
        for s, k in CASES
    ]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-fault-kinds-") as tmp:
        results = run_fault_jobs([j for _, _, j in jobs], Path(tmp), concurrency=parallel)
    rows: dict[str, dict[str, Any]] = {}
    for scenario, kind, job in jobs:
        result = results[job.name]
        row = rows.setdefault(
            _job_name(scenario, kind),
            {
                "target": scenario.target,
                "scenario": scenario.name,
                "kind": kind,
                "bound": scenario.bound,
                "times": [],
                "ok": 0,
                "faults": [],
            },
        )
        elapsed = result.get("close_seconds" if scenario.target == "messages" else "load_seconds")
        if elapsed is not None:
            row["times"].append(elapsed)
        row["faults"].append(sum(1 for r in result.get("requests", []) if r.faulted))
        try:
            _check_exactly_once(result, scenario.messages)
            row["ok"] += 1
        except AssertionError:
            pass
    table = [
        [
            r["target"],
            r["scenario"],
            r["kind"],
            f"{r['bound']:.1f}",
            f"{statistics.median(r['times']):.2f}" if r["times"] else "-",
            f"{max(r['times']):.2f}" if r["times"] else "-",
            f"{sum(1 for t in r['times'] if t <= r['bound'] + SLACK)}/{runs}",
            f"{r['ok']}/{runs}",
            f"{min(r['faults'])}-{max(r['faults'])}",
        ]
        for r in rows.values()
    ]
    headers = ["target", "fault", "storage", "bound s", "median s", "max s", "in bound", "all once", "faults"]
    report = (
        f"Fault kinds through the real readers, {runs} run(s) each, default WorkspaceClient. 'median/max': "
        "the close (messages) or the context read (context), in seconds; 'in bound': within the bound "
        f"the test allows (+{SLACK:g} s slack); 'all once': every message delivered once, in order, "
        f"`closed` received, exit 0.\n\n{_table(headers, table)}\n\nwall time: {time.monotonic() - started:.0f} s\n"
    )
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": "bench_failures --fault-kinds",
        "machine": machine_info(),
        "runs": runs,
        "rows": list(rows.values()),
    }
    (RESULTS / "failures_kinds.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / "failures_kinds.txt").write_text(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per configuration (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 runs per configuration")
    parser.add_argument("--parallel", type=int, default=12, help="drills running at once (default 12)")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock rows")
    parser.add_argument(
        "--fault-kinds", action="store_true", help="the fault-kind scenarios of tests/test_fault_injection.py"
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="memory during a 60 s outage at 10,000 messages/s: bounded queue vs all in memory (outage_memory.py)",
    )
    args = parser.parse_args(argv)
    runs = 2 if args.quick else max(1, args.runs)
    if args.memory:
        import outage_memory

        memory = outage_memory.run(seconds=20 if args.quick else 60, rate=10_000)
        text = outage_memory.report(memory)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "failures_memory.json").write_text(json.dumps(memory, indent=2, default=str) + "\n")
        (RESULTS / "failures_memory.txt").write_text(text + "\n")
        print(text)
        return 0
    if args.fault_kinds:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("dagster_pipes_spark").setLevel(logging.WARNING)
        return fault_kinds(runs, args.parallel)

    import logging
    import warnings

    logging.getLogger("dagster_pipes_spark").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    from dagster_pipes_spark.testing import Emulator

    ours = [Drill(k, f, e, run=r) for r in range(runs) for f in FAULTS for k in KINDS for e in ENDINGS]
    stock = [Drill(k, "none", e, impl="stock", run=r) for r in range(runs) for k in KINDS for e in ENDINGS]
    stock_note = ""
    if args.no_stock:
        stock, stock_note = [], "stock rows skipped (--no-stock)"
    elif os.geteuid() != 0 or any(os.path.lexists(m) for m in MOUNTS):
        stock, stock_note = (
            [],
            "stock rows skipped: they need root and free /dbfs, /Volumes paths to map FUSE",
        )

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-failures-") as tmp:
        workdir = Path(tmp)
        results = _run_batches(ours, args.parallel, workdir)
        if stock:
            with Emulator(volumes=["main/default/pipes"]) as ws, fuse_mounts(ws):
                results += _run_batches(stock, args.parallel, workdir, ws)
    configs: dict[Drill, list[dict[str, Any]]] = {}
    for drill, result in zip([*ours, *stock], results, strict=True):
        configs.setdefault(Drill(drill.kind, drill.fault, drill.ending, drill.impl), []).append(result)
    summaries = [_summary(d, rs) for d, rs in configs.items()]
    summaries.sort(key=lambda s: (s["writer"] != "ours", s["ending"], s["fault"], s["kind"]))

    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        print(
            f"Time from the end of the job body (or from SIGTERM) to process exit, {runs} runs per row, "
            "default WorkspaceClient and writer settings.\nEvery write request answers 503 / never "
            "answers (black hole) / answers 403 once the first 20 messages were delivered; 15 messages, "
            "a log and `closed` follow.\n'close': until the context had closed (writer done or given "
            "up); 'exit': until the process was gone (close + interpreter shutdown, ~0.5 s with "
            "databricks-sdk loaded).\n'in bound': runs whose close() returned within flush_timeout of the "
            "body's end, or whose process exited within 30 s of SIGTERM.\n'before rcvd': fewest of the 20 "
            "pre-fault messages Dagster received in a run; 'after rcvd': most post-fault ones; "
            "'stderr: lost': the count(s) our stderr line reported."
        )
        print()
        print(_table(HEADERS, [_row(s) for s in summaries]))
        if stock_note:
            print(f"\n{stock_note}")
        elif stock:
            print(
                "\nstock rows: FUSE only, no HTTP after the context is loaded, so the HTTP faults cannot "
                "reach them (storage healthy); a hanging FUSE backend would hang them, and SIGTERM kills "
                "them at once (no flush)."
            )
        failures = [r for r in results if "error" in r]
        for r in failures[:3]:
            print(f"\nrun {r['name']} failed:\n{r['error']}")
        print(f"\nwall time: {time.monotonic() - started:.0f} s")
    print(report.getvalue())

    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": "bench_failures",
        "machine": machine_info(),
        "config": {"runs": runs, "parallel": args.parallel, "stock": bool(stock)},
        "rows": summaries,
        "runs": [
            {k: v for k, v in r.items() if k not in ("logs", "received")}
            | {"stderr": r.get("stderr", "")[-2000:]}
            for r in results
        ],
    }
    (RESULTS / "failures.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / "failures.txt").write_text(report.getvalue())
    print(f"results: {RESULTS / 'failures.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
