"""Overhead of ``report_spark_writes`` on a public benchmark's workload: TPC-H.

The eight TPC-H tables are made once per process by the seeded generator of
``dagster_pipes_spark.testing.tpch`` (a few thousand rows), then the whole workload (the 22 queries
and the window / set-operation extras, 25 queries) is written as tables by CTAS (``CREATE TABLE ...
USING parquet AS <query>``), each query to a fresh table per job, without the hooks and with them
(every written table mapped to an asset, all in ONE block), alternating which goes first each round,
in one Spark session after a warm-up of each; classic Spark and Spark Connect each in its own
process.

Reported per mechanism: the median wall time of the job without and with the hooks, the overhead
(ratio of the medians, and the median of the per-round ratios), the time inside the hooks per write
(each hook call's time: median / p95 over all rounds; classic: the listener callback, off the job's
thread, reading the plan with ``treeString`` and its lineage; Connect: the wrapped writer on the
job's thread) and the exit time (classic: waiting for the listener bus, look-ups, reports; Connect:
also one ``EXPLAIN EXTENDED`` per written plan, for lineage).

``--profile`` also times the lineage reader alone on the workload's printed analysed plans (classic
``treeString``: what the listener reads) and prints where the time goes (cProfile, top functions);
``--profile-only`` does only that (minutes, where the whole benchmark takes long on a loaded
machine), saved as ``results/workload_profile.{txt,json}``.

    .venv/bin/python benchmarks/bench_workload.py [--rounds 6] [--mechanism all] [--profile | --profile-only]
        [--save]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from _common import StubPipes, environment, save_results  # a sibling module (this directory is on sys.path)

REPO = Path(__file__).resolve().parents[1]


def _session(mechanism: str, tmp: str) -> Any:
    # a local Connect server on a free port (``remote("local[2]")`` takes the fixed 15002, which
    # another Spark Connect process on a shared machine may hold)
    from dagster_pipes_spark.testing._notebook import make_spark_session

    return make_spark_session(
        mechanism,
        {
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp}",
        },
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def profile_lineage(spark: Any, queries: dict[str, str], repeats: int = 20) -> dict[str, Any]:
    """The lineage reader alone on each query's printed analysed plan (classic): its time per plan,
    the plan's size, and cProfile's top functions over all of them."""
    from dagster_pipes_spark.spark._classic._lineage import ALL_FIELDS
    from dagster_pipes_spark.spark._lineage import lineage_from_tree

    texts: dict[str, str] = {}
    tree_ms: dict[str, float] = {}
    for name, query in queries.items():
        analyzed = spark.sql(query)._jdf.queryExecution().analyzed()
        started = time.perf_counter()
        for _ in range(repeats):
            texts[name] = str(analyzed.treeString(False, False, ALL_FIELDS, False))
        tree_ms[name] = 1000 * (time.perf_counter() - started) / repeats
    parse_ms: dict[str, float] = {}
    for name, text in texts.items():
        started = time.perf_counter()
        for _ in range(repeats):
            lineage_from_tree(text)
        parse_ms[name] = 1000 * (time.perf_counter() - started) / repeats
    profiler = cProfile.Profile()
    profiler.enable()
    for text in texts.values():
        for _ in range(repeats):
            lineage_from_tree(text)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return {
        "plan_lines": {n: t.count("\n") + 1 for n, t in texts.items()},
        "plan_chars": {n: len(t) for n, t in texts.items()},
        "tree_string_ms": tree_ms,
        "parse_ms": parse_ms,
        "profile": out.getvalue(),
    }


def profile_only() -> dict[str, Any]:
    """The lineage reader alone on the workload's plans (classic), without the timed jobs."""
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(REPO))
    from dagster_pipes_spark.testing.tpch import WORKLOAD, create_tables

    tmp = tempfile.mkdtemp(prefix="bench-workload-")
    try:
        spark = _session("classic", tmp)
        spark.sparkContext.setLogLevel("ERROR")
        create_tables(spark)
        profiled = profile_lineage(spark, WORKLOAD)
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"mechanism": "classic", "profile": profiled}


def run_mechanism(mechanism: str, rounds: int, profile: bool) -> dict[str, Any]:
    """Time the workload without and with the hooks in one session; returns the measurements."""
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(REPO))
    from dagster_pipes_spark.spark import report_spark_writes
    from dagster_pipes_spark.testing.tpch import WORKLOAD, create_tables

    tmp = tempfile.mkdtemp(prefix="bench-workload-")
    try:
        spark = _session(mechanism, tmp)
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        create_tables(spark)
        jobs = {"n": 0}

        def fresh_tables() -> dict[str, str]:
            """This job's table of each query: fresh names, so no job replaces another's tables."""
            jobs["n"] += 1
            return {name: f"w{jobs['n']}_{name}" for name in WORKLOAD}

        def job(tables: dict[str, str]) -> None:
            for name, query in WORKLOAD.items():
                spark.sql(f"CREATE TABLE {tables[name]} USING parquet AS {query}")

        def without_hooks() -> float:
            tables = fresh_tables()
            started = time.perf_counter()
            job(tables)
            return time.perf_counter() - started

        def with_hooks() -> tuple[float, Any]:
            tables = fresh_tables()
            mapping = {table: name for name, table in tables.items()}
            pipes = StubPipes(list(WORKLOAD))
            started = time.perf_counter()
            with report_spark_writes(spark, pipes, mapping) as report:
                job(tables)
            elapsed = time.perf_counter() - started
            assert set(pipes.reports) == set(WORKLOAD), sorted(pipes.reports)
            traced = [k for k, md in pipes.reports.items() if "dagster/column_lineage" in md]
            assert len(traced) == len(WORKLOAD), sorted(set(WORKLOAD) - set(traced))
            return elapsed, report

        without_hooks()  # warm-up: JIT, codegen caches, the py4j callback server
        with_hooks()
        on: list[float] = []
        off: list[float] = []
        calls: list[float] = []
        per_write: list[float] = []
        exits: list[float] = []
        writes = len(WORKLOAD)
        for r in range(rounds):
            for which in ("on", "off") if r % 2 == 0 else ("off", "on"):
                if which == "off":
                    off.append(without_hooks())
                    print(f"JOB {mechanism} round {r} without hooks: {off[-1]:.2f} s", flush=True)
                    continue
                elapsed, report = with_hooks()
                print(
                    f"JOB {mechanism} round {r} with hooks: {elapsed:.2f} s, {len(report.hook_call_seconds)}"
                    f" hook calls, median {1000 * statistics.median(report.hook_call_seconds or [0]):.2f} ms,"
                    f" p95 {1000 * _percentile(report.hook_call_seconds or [0], 0.95):.2f} ms,"
                    f" exit {1000 * report.exit_seconds:.0f} ms",
                    flush=True,
                )
                on.append(elapsed)
                calls.extend(report.hook_call_seconds)
                per_write.append(report.hook_seconds / max(1, len(report.writes)))
                exits.append(report.exit_seconds)
                writes = len(report.writes)
        profiled = profile_lineage(spark, WORKLOAD) if profile and mechanism == "classic" else None
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    paired = [a / b - 1.0 for a, b in zip(on, off, strict=True)]
    return {
        "mechanism": mechanism,
        "writes": writes,
        "rounds": rounds,
        "off_median": statistics.median(off),
        "on_median": statistics.median(on),
        "overhead_median_ratio": statistics.median(on) / statistics.median(off) - 1.0,
        "overhead_paired_median": statistics.median(paired),
        "hook_calls_per_job": len(calls) / max(1, len(on)),
        "hook_call_ms_median": 1000 * statistics.median(calls) if calls else 0.0,
        "hook_call_ms_p95": 1000 * _percentile(calls, 0.95) if calls else 0.0,
        "hook_ms_per_write": 1000 * statistics.median(per_write),
        "exit_ms": 1000 * statistics.median(exits),
        "exit_ms_per_write": 1000 * statistics.median(exits) / max(1, writes),
        "off": off,
        "on": on,
        "exit_seconds": exits,
        "profile": profiled,
    }


def _print_table(results: list[dict[str, Any]]) -> str:
    header = (
        "mechanism",
        "writes",
        "rounds",
        "without (s)",
        "with (s)",
        "overhead",
        "paired",
        "hook call median (ms)",
        "hook call p95 (ms)",
        "calls/job",
        "exit (ms)",
        "exit/write (ms)",
    )
    timed = [r for r in results if "on_median" in r]
    rows = [
        (
            r["mechanism"],
            str(r["writes"]),
            str(r["rounds"]),
            f"{r['off_median']:.2f}",
            f"{r['on_median']:.2f}",
            f"{100 * r['overhead_median_ratio']:+.1f}%",
            f"{100 * r['overhead_paired_median']:+.1f}%",
            f"{r['hook_call_ms_median']:.2f}",
            f"{r['hook_call_ms_p95']:.2f}",
            f"{r['hook_calls_per_job']:.0f}",
            f"{r['exit_ms']:.0f}",
            f"{r['exit_ms_per_write']:.1f}",
        )
        for r in timed
    ]
    lines: list[str] = []
    if rows:
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        lines.append(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        lines.append("-+-".join("-" * w for w in widths))
        lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(
        ""
        if not rows
        else "\nwithout/with: median wall time of writing the 25 queries as tables (one block with the hooks);"
        "\noverhead: ratio of the medians; paired: median of the per-round ratios (rounds alternate which"
        " goes first);\nhook call: time inside one hook call (classic: the listener callback, off the"
        " job's thread; Connect: the wrapped writer / spark.sql),\nmedian and p95 over all rounds' calls;"
        " exit: leaving the block (classic: listener bus drain, look-ups, reports; Connect: also one"
        "\nEXPLAIN EXTENDED per written plan for lineage), and that per write.\n"
        "Run on a quiet machine: other load easily swamps a few percent."
    )
    for r in results:
        if r.get("profile"):
            p = r["profile"]
            lines.append(
                f"\nlineage reader alone ({r['mechanism']}, printed analysed plans of the workload):"
            )
            lines.append("query | plan lines | plan chars | treeString (ms) | parse (ms)")
            for name in p["parse_ms"]:
                lines.append(
                    f"{name} | {p['plan_lines'][name]} | {p['plan_chars'][name]} |"
                    f" {p['tree_string_ms'][name]:.2f} | {p['parse_ms'][name]:.2f}"
                )
            lines.append("\ncProfile of the reader (top functions by own time):\n" + p["profile"])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--mechanism", choices=("classic", "connect", "all"), default="all")
    parser.add_argument("--profile", action="store_true", help="also profile the lineage reader (classic)")
    parser.add_argument("--profile-only", action="store_true", help="only profile the lineage reader")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/workload.{txt,json}")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.profile_only:
            result = profile_only()
        else:
            result = run_mechanism(args.mechanism, args.rounds, args.profile)
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.profile_only:
        args.mechanism = "classic"
    mechanisms = ("classic", "connect") if args.mechanism == "all" else (args.mechanism,)
    head_before = environment()
    results = []
    for mechanism in mechanisms:
        print(
            f"running {mechanism}: "
            + (
                "profile of the lineage reader"
                if args.profile_only
                else f"{args.rounds} rounds x (with, without)"
            )
            + " ...",
            flush=True,
        )
        command = [
            sys.executable,
            __file__,
            "--child",
            "--mechanism",
            mechanism,
            "--rounds",
            str(args.rounds),
        ]
        if args.profile or args.profile_only:
            command.append("--profile-only" if args.profile_only else "--profile")
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stderr is not None
        lines = []
        for line in proc.stdout:  # each job's figures as they come (a long run can be followed)
            if line.startswith("JOB "):
                print(line.rstrip(), flush=True)
            elif line.startswith("RESULT "):
                lines.append(line)
        errors = proc.stderr.read()
        if proc.wait() != 0 or not lines:
            sys.stderr.write(errors[-3000:])
            raise SystemExit(f"{mechanism} benchmark failed")
        results.append(json.loads(lines[-1][len("RESULT ") :]))
    text = _print_table(results)
    head = f"{head_before} (start) | {environment()} (end)"
    print(head)
    print(text)
    if args.save:
        save_results("workload_profile" if args.profile_only else "workload", head, results, text)


if __name__ == "__main__":
    main()
