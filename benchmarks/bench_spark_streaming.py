"""Overhead of ``report_spark_writes`` on a Structured Streaming query of many micro-batches.

The job: one ``availableNow`` query over a directory of small JSON files (by default 50 files of 20
rows) with ``maxFilesPerTrigger`` 1, so 50 micro-batches, into a Parquet path (``--sink delta``: a
Delta path, the pinned jars of ``.ci/jars/spark40.txt``), started and awaited; each run has its own
checkpoint and output. It runs without the hooks and with them (the stream observed from start to end:
the row-counting observation added to the streamed DataFrame, the progress listener on classic
sessions or the ``recentProgress`` poller on Spark Connect, and on exit one materialization to a
stub Pipes context), paired in each round with the order alternating, in one Spark session after a
warm-up of two runs of each, for classic Spark and Spark Connect, each in its own process.

Reported per mechanism: median wall times, the median of the per-round ratios (paired) and what
it is per micro-batch, the ratio of the fastest runs, and the time spent leaving the block. Every
"with hooks" run checks what it reported: all batches, all rows.

    .venv/bin/python benchmarks/bench_spark_streaming.py [--files 50] [--rows 20] [--rounds 6]
        [--mechanism classic|connect|all] [--sink parquet|delta]

Results go to ``benchmarks/results/spark_streaming.{json,txt}``.
"""

from __future__ import annotations

import argparse
import json
import os
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


def _session(mechanism: str, tmp: str, delta: bool) -> Any:
    """A local session: classic, or a Spark Connect client of a local server on a free port."""
    from dagster_pipes_spark.testing._notebook import make_spark_session

    conf = {
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp}",
    }
    if delta:
        from dagster_pipes_spark.testing.table_formats import fetch_jars, spark_confs

        conf.update(spark_confs([j for j in fetch_jars("spark40") if j.name.startswith("delta")]))
    return make_spark_session(mechanism, conf)


def _write_files(directory: str, files: int, rows: int) -> None:
    os.makedirs(directory)
    for i in range(files):
        with open(os.path.join(directory, f"part-{i:04d}.json"), "w") as f:
            f.write("\n".join(json.dumps({"id": i * rows + j, "v": j}) for j in range(rows)) + "\n")


def run_mechanism(mechanism: str, files: int, rows: int, rounds: int, sink: str) -> dict[str, Any]:
    """Time the streaming job without and with the hooks, paired per round, in one session."""
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(REPO))
    from dagster_pipes_spark.spark import report_spark_writes

    tmp = tempfile.mkdtemp(prefix="bench-spark-streaming-")
    try:
        spark = _session(mechanism, tmp, sink == "delta")
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        src = os.path.join(tmp, "src")
        _write_files(src, files, rows)
        runs = iter(range(1 << 30))

        def job() -> str:
            """One streaming query over all the files; returns its output path."""
            n = next(runs)
            out = os.path.join(tmp, "out", f"run{n}")
            query = (
                spark.readStream.schema("id BIGINT, v BIGINT")
                .option("maxFilesPerTrigger", 1)
                .json(src)
                .writeStream.format(sink)
                .option("checkpointLocation", os.path.join(tmp, "cp", f"run{n}"))
                .trigger(availableNow=True)
                .start(out)
            )
            query.awaitTermination()
            return out

        def without_hooks() -> float:
            started = time.perf_counter()
            job()
            return time.perf_counter() - started

        def with_hooks() -> tuple[float, float]:
            pipes = StubPipes(["stream"])
            started = time.perf_counter()
            with report_spark_writes(spark, pipes, lambda target: "stream") as report:
                job()
            elapsed = time.perf_counter() - started
            md = pipes.reports["stream"]
            assert md["spark/streaming_batches"]["raw_value"] == files, md
            assert md["dagster/row_count"]["raw_value"] == files * rows, md
            if sink == "delta":
                assert "delta/version" in md, md
            return elapsed, report.exit_seconds

        # warm-up: JIT, codegen, the py4j callback server, Connect's session; two pairs, as the first
        # paired round after a single pair still ran its first query ~5-10% slower (Connect)
        for _ in range(2):
            without_hooks()
            with_hooks()
        on: list[float] = []
        off: list[float] = []
        exit_seconds: list[float] = []
        for r in range(rounds):
            for which in ("on", "off") if r % 2 == 0 else ("off", "on"):
                if which == "off":
                    off.append(without_hooks())
                else:
                    elapsed, leaving = with_hooks()
                    on.append(elapsed)
                    exit_seconds.append(leaving)
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    paired = [a / b - 1.0 for a, b in zip(on, off, strict=True)]
    per_batch = [(a - b) / files for a, b in zip(on, off, strict=True)]
    return {
        "mechanism": mechanism,
        "sink": sink,
        "batches": files,
        "rows_per_batch": rows,
        "rounds": rounds,
        "off_median": statistics.median(off),
        "on_median": statistics.median(on),
        "overhead_median_ratio": statistics.median(on) / statistics.median(off) - 1.0,
        "overhead_paired_median": statistics.median(paired),
        "batch_ms_off": 1000 * statistics.median(off) / files,
        "overhead_ms_per_batch_paired": 1000 * statistics.median(per_batch),
        "off_min": min(off),
        "on_min": min(on),
        "overhead_min_ratio": min(on) / min(off) - 1.0,
        "exit_ms": 1000 * statistics.median(exit_seconds),
        "off": off,
        "on": on,
    }


def _print(results: list[dict[str, Any]]) -> str:
    header = (
        "mechanism",
        "sink",
        "batches",
        "rounds",
        "without (s)",
        "with (s)",
        "overhead",
        "paired",
        "ms/batch",
        "paired ms/batch",
        "min-based",
        "exit (ms)",
    )
    rows = [
        (
            r["mechanism"],
            r["sink"],
            str(r["batches"]),
            str(r["rounds"]),
            f"{r['off_median']:.2f}",
            f"{r['on_median']:.2f}",
            f"{100 * r['overhead_median_ratio']:+.1f}%",
            f"{100 * r['overhead_paired_median']:+.1f}%",
            f"{r['batch_ms_off']:.0f}",
            f"{r['overhead_ms_per_batch_paired']:+.1f}",
            f"{100 * r['overhead_min_ratio']:+.1f}%",
            f"{r['exit_ms']:.0f}",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = [
        " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
        *(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows),
        "",
        "without/with: median wall time of the streaming job (start to awaitTermination; with: entering"
        " and leaving the block too);\noverhead: ratio of the medians; paired: median of the per-round"
        " ratios (with and without run back to back, order alternating);\nms/batch: a micro-batch"
        " without the hooks; paired ms/batch: the paired median of the extra time per micro-batch;"
        "\nmin-based: ratio of the fastest runs (the least disturbed by other load); exit: leaving the"
        " block (final progress read, Delta history, the report).\nTarget: <= 3% per micro-batch and in"
        " total. Run on a quiet machine: other load easily swamps a few percent.",
    ]
    text = "\n".join(lines)
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=50, help="files = micro-batches")
    parser.add_argument("--rows", type=int, default=20, help="rows per file")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--mechanism", choices=("classic", "connect", "all"), default="all")
    parser.add_argument("--sink", choices=("parquet", "delta"), default="parquet")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_mechanism(args.mechanism, args.files, args.rows, args.rounds, args.sink)
        print("RESULT " + json.dumps(result), flush=True)
        return
    mechanisms = ("classic", "connect") if args.mechanism == "all" else (args.mechanism,)
    results = []
    for mechanism in mechanisms:  # one process each: a JVM per session kind
        print(f"running {mechanism}: {args.rounds} rounds x 2 queries of {args.files} micro-batches ...")
        child = ["--child", "--mechanism", mechanism, "--sink", args.sink]
        child += ["--files", str(args.files), "--rows", str(args.rows), "--rounds", str(args.rounds)]
        proc = subprocess.run([sys.executable, __file__, *child], capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"{mechanism} benchmark failed")
        results.append(json.loads(lines[-1][len("RESULT ") :]))
    head = environment()
    print(head)
    save_results("spark_streaming", head, results, _print(results))


if __name__ == "__main__":
    main()
