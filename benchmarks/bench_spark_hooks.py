"""Overhead of ``report_spark_writes`` on a job of small Spark writes.

The same job (by default 50 small writes: parquet path overwrites and ``insertInto`` appends over 15
targets, all mapped to assets) runs without the hooks, with them, and with them but without column
lineage (``column_lineage=False``), rotating the order each round in one Spark session after a
warm-up, for classic Spark (py4j ``QueryExecutionListener``), Spark Connect (writer
instrumentation) and Spark Connect without the row-count observation (what Delta targets get: their
counts come from the table history), each in its own process. The "with hooks" time includes
entering and leaving the block (listener registration, waiting for the listener bus, DESCRIBE /
history look-ups, the ``explain`` of each written plan on Connect, and the 15 reports to a stub
Pipes context).

By default (``--source table``) each write is a different query over a small source table, so every
write has its own column lineage to read (classic: one ``treeString`` per write; Connect: one
``explain`` per written plan on exit). ``--source range`` writes one DataFrame built with
``spark.range`` 50 times (no source: nothing to trace; the job of earlier figures). ``--source
delta`` is the ``table`` job on real Delta Lake (the pinned jars of ``.ci/jars/spark40.txt``):
``format("delta")`` path overwrites and ``insertInto`` appends to Delta tables, so the hooks also
tag commits and read ``DESCRIBE HISTORY`` once per target on exit. Delta keeps every commit, so each
Delta job writes fresh targets (created before its clock starts): a later job must not pay for the
history the earlier ones left, or the order of the jobs would bias the comparison.

On Spark Connect with non-Delta writes a fourth job runs each round: the same writes with a
``count(1)`` observation put on each DataFrame by hand, without this library. Its ratio to the plain
job ("observe floor") is what the server's row count itself costs: the floor of the hooks' row count.

``--baseline REF`` compares this working tree's package with the one of a git ref in the same run:
the ref's ``dagster_pipes_spark`` is extracted (``git archive REF dagster_pipes_spark``) into a
temporary directory, and for each mechanism the job's process runs ``--repeats`` times (default 2)
for each side, alternating (baseline, current, baseline, current...). Each process is told its
package's directory (``--package-root``), puts it first on ``sys.path`` and in ``PYTHONPATH`` (for
the Python processes Spark starts) before importing the package, and checks that
``dagster_pipes_spark`` really comes from there. A table per mechanism gives, for each side, the
medians over all its processes' rounds, then the ratios current/baseline of the with-hooks medians
and of the overheads (the ratio of the without-hooks medians, the same Spark job on both sides,
shows the noise between processes).

    .venv/bin/python benchmarks/bench_spark_hooks.py [--writes 50] [--rounds 6] [--mechanism all]
        [--source table|range|delta] [--baseline REF [--repeats 2]]
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

from _common import StubPipes  # a sibling module (this directory is on sys.path)

REPO = Path(__file__).resolve().parents[1]
N_PATHS = 10
N_TABLES = 5


def _session(mechanism: str, tmp: str, delta: bool = False) -> Any:
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.remote("local[2]")
        if mechanism == "connect"
        else (SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false"))
    )
    if delta:
        from dagster_pipes_spark.testing.table_formats import fetch_jars, spark_confs

        jars = [j for j in fetch_jars("spark40") if j.name.startswith("delta")]
        for key, value in spark_confs(jars).items():
            builder = builder.config(key, value)
    return (
        builder.appName(f"bench-spark-hooks-{mechanism}")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.warehouse.dir", os.path.join(tmp, "warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={tmp}")
        .getOrCreate()
    )


def _import_from(root: Path) -> None:
    """Make ``dagster_pipes_spark`` come from ``root`` (this process and the Python processes Spark
    starts); fails if it was already imported from elsewhere or resolves elsewhere."""
    root = root.resolve()
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    import dagster_pipes_spark

    where = Path(dagster_pipes_spark.__file__ or "").resolve()
    assert where.is_relative_to(root), f"dagster_pipes_spark imported from {where}, not under {root}"


def run_mechanism(
    mechanism: str, writes: int, rounds: int, source: str = "table", package_root: Path | None = None
) -> dict[str, Any]:
    """Time the job without hooks, with them, and with them but without column lineage, in one
    session; returns the measurements. ``package_root``: the directory to import the package from
    (checked), else this checkout."""
    warnings.filterwarnings("ignore")
    if package_root is None:
        sys.path.insert(0, str(REPO))
    else:
        _import_from(package_root)
    import dagster_pipes_spark
    from dagster_pipes_spark.spark import report_spark_writes

    label = mechanism
    count_rows = mechanism != "connect-unobserved"  # the hooks without the row-count observation
    if not count_rows:
        mechanism = "connect"

    tmp = tempfile.mkdtemp(prefix="bench-spark-hooks-")
    try:
        delta = source == "delta"
        spark = _session(mechanism, tmp, delta)
        if mechanism == "classic":
            spark.sparkContext.setLogLevel("ERROR")
        df = spark.range(100).selectExpr("id", "cast(id as string) as name", "id * 0.5 as score")
        fmt = "delta" if delta else "parquet"
        if source in ("table", "delta"):  # a different query over a source table for every write
            df.write.saveAsTable("bench_src")
            frames = [
                spark.table("bench_src").selectExpr(
                    "id",
                    "name",
                    f"CAST(score * {i + 1} AS DOUBLE) AS score" if delta else f"score * {i + 1} AS score",
                )
                for i in range(writes)
            ]
        else:
            frames = [df] * writes
        # Delta targets keep every commit: each job writes fresh ones (made before its clock starts), so
        # a later job does not pay for the history of earlier ones and the order of the jobs cannot
        # bias the comparison. Other formats reuse one set of targets.
        jobs = iter(range(1_000_000))
        current = {"suffix": ""}
        made: set[str] = set()

        def fresh_targets() -> None:
            suffix = f"_j{next(jobs)}" if delta else ""
            if suffix not in made:
                for t in range(N_TABLES):
                    spark.sql(
                        f"CREATE TABLE bench_t{t}{suffix} (id BIGINT, name STRING, score DOUBLE) USING {fmt}"
                    )
                made.add(suffix)
            current["suffix"] = suffix

        def assets() -> dict[str, str]:
            suffix = current["suffix"]
            mapping = {os.path.join(tmp, "out" + suffix, f"p{p}"): f"path_{p}" for p in range(N_PATHS)}
            mapping.update({f"bench_t{t}{suffix}": f"table_{t}" for t in range(N_TABLES)})
            return mapping

        fresh_targets()
        keys = sorted(set(assets().values()))
        # the assets the job writes (all of them from 19 writes on)
        written_keys = {
            f"path_{(i // 2) % N_PATHS}" if i % 2 == 0 else f"table_{(i // 2) % N_TABLES}"
            for i in range(writes)
        }

        def job(written: list[Any] | None = None) -> None:
            suffix = current["suffix"]
            for i, frame in enumerate(written or frames):
                if i % 2 == 0:
                    path = os.path.join(tmp, "out" + suffix, f"p{(i // 2) % N_PATHS}")
                    frame.write.format(fmt).mode("overwrite").save(path)
                else:
                    frame.write.insertInto(f"bench_t{(i // 2) % N_TABLES}{suffix}")

        def with_hooks(lineage: bool = True) -> tuple[float, Any]:
            fresh_targets()
            pipes = StubPipes(keys)
            mapping = assets()
            started = time.perf_counter()
            with report_spark_writes(
                spark, pipes, mapping, count_rows=count_rows, column_lineage=lineage
            ) as report:
                job()
            elapsed = time.perf_counter() - started
            assert set(pipes.reports) == written_keys, sorted(pipes.reports)
            traced = [k for k, md in pipes.reports.items() if "dagster/column_lineage" in md]
            assert len(traced) == (len(written_keys) if lineage and source != "range" else 0), traced
            if delta:
                assert all("delta/version" in md for md in pipes.reports.values()), pipes.reports
            return elapsed, report

        def without_hooks() -> float:
            fresh_targets()
            started = time.perf_counter()
            job()
            return time.perf_counter() - started

        # The floor of the row count on Connect: the same job with a string-named count(1)
        # observation put on each written DataFrame by hand, without this library (what the hooks
        # add to a non-Delta write's plan; the server evaluates it as the rows are written).
        floor = label == "connect" and not delta
        runs = iter(range(1_000_000))

        def observed_by_hand() -> float:
            from pyspark.sql import functions as sf

            n = next(runs)
            fresh_targets()
            observed = [
                frame.observe(f"bench_rows_{n}_{i}", sf.count(sf.lit(1)).alias("rows"))
                for i, frame in enumerate(frames)
            ]
            started = time.perf_counter()
            job(observed)
            return time.perf_counter() - started

        without_hooks()  # warm-up: JIT, codegen caches, the py4j callback server
        with_hooks()
        with_hooks(lineage=False)
        if floor:
            observed_by_hand()
        on: list[float] = []
        off: list[float] = []
        plain: list[float] = []  # hooks without column lineage
        hook_per_write: list[float] = []
        plain_hook_per_write: list[float] = []
        exit_seconds: list[float] = []
        plain_exit_seconds: list[float] = []
        by_hand: list[float] = []  # the job with an observation per write, no hooks
        variants = ("on", "off", "plain", "by_hand") if floor else ("on", "off", "plain")
        for r in range(rounds):
            k = r % len(variants)
            for which in variants[k:] + variants[:k]:
                if which == "off":
                    off.append(without_hooks())
                    continue
                if which == "by_hand":
                    by_hand.append(observed_by_hand())
                    continue
                elapsed, report = with_hooks(lineage=which == "on")
                per_write = report.hook_seconds / max(1, len(report.writes))
                if which == "on":
                    on.append(elapsed)
                    hook_per_write.append(per_write)
                    exit_seconds.append(report.exit_seconds)
                else:
                    plain.append(elapsed)
                    plain_hook_per_write.append(per_write)
                    plain_exit_seconds.append(report.exit_seconds)
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    paired = [a / b - 1.0 for a, b in zip(on, off, strict=True)]
    lineage_paired = [(a - p) / b for a, p, b in zip(on, plain, off, strict=True)]
    return {
        "mechanism": label,
        "source": source,
        "writes": writes,
        "rounds": rounds,
        "off_median": statistics.median(off),
        "on_median": statistics.median(on),
        "overhead_median_ratio": statistics.median(on) / statistics.median(off) - 1.0,
        "overhead_paired_median": statistics.median(paired),
        "off_min": min(off),
        "on_min": min(on),
        "overhead_min_ratio": min(on) / min(off) - 1.0,
        "hook_ms_per_write": 1000 * statistics.median(hook_per_write),
        "exit_ms": 1000 * statistics.median(exit_seconds),
        # column lineage: with it vs without it, relative to the job without hooks
        "plain_median": statistics.median(plain),
        "lineage_median_ratio": (statistics.median(on) - statistics.median(plain)) / statistics.median(off),
        "lineage_paired_median": statistics.median(lineage_paired),
        "lineage_hook_ms_per_write": 1000
        * (statistics.median(hook_per_write) - statistics.median(plain_hook_per_write)),
        "lineage_exit_ms": 1000 * (statistics.median(exit_seconds) - statistics.median(plain_exit_seconds)),
        "off": off,
        "on": on,
        "plain": plain,
        "hook_per_write": hook_per_write,
        "exit_seconds": exit_seconds,
        "package": str(Path(dagster_pipes_spark.__file__ or "").resolve().parent),
        # Connect, non-Delta: the bare cost of one observation per write (no library), paired
        "observe_floor_paired_median": (
            statistics.median(h / b - 1.0 for h, b in zip(by_hand, off, strict=True)) if by_hand else None
        ),
        "by_hand": by_hand,
    }


def _print_table(results: list[dict[str, Any]]) -> None:
    header = (
        "mechanism",
        "writes",
        "rounds",
        "without (s)",
        "with (s)",
        "overhead",
        "paired",
        "min-based",
        "hook/write (ms)",
        "exit (ms)",
        "lineage",
        "lineage paired",
        "lineage hook/write (ms)",
        "lineage exit (ms)",
        "observe floor",
    )
    rows = [
        (
            r["mechanism"],
            str(r["writes"]),
            str(r["rounds"]),
            f"{r['off_median']:.2f}",
            f"{r['on_median']:.2f}",
            f"{100 * r['overhead_median_ratio']:+.1f}%",
            f"{100 * r['overhead_paired_median']:+.1f}%",
            f"{100 * r['overhead_min_ratio']:+.1f}%",
            f"{r['hook_ms_per_write']:.2f}",
            f"{r['exit_ms']:.0f}",
            f"{100 * r['lineage_median_ratio']:+.1f}%",
            f"{100 * r['lineage_paired_median']:+.1f}%",
            f"{r['lineage_hook_ms_per_write']:+.2f}",
            f"{r['lineage_exit_ms']:+.0f}",
            "-"
            if r.get("observe_floor_paired_median") is None
            else f"{100 * r['observe_floor_paired_median']:+.1f}%",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        "\nwithout/with: median wall time of the job; overhead: ratio of the medians; paired: median of"
        " the per-round ratios;\nmin-based: ratio of the fastest runs (the least disturbed by other load"
        " on the machine);\nhook/write: time spent inside the hooks per write (classic: in the"
        " listener callback, off the job's thread);\nexit: leaving the block (drain, DESCRIBE/history,"
        " explain, reports);\nlineage: the hooks with column lineage minus without it, relative to the"
        " job without hooks (paired: per round),\nand what it adds per write inside the hooks and on exit;"
        "\nobserve floor (Connect, non-Delta writes): the job with a count(1) observation put on each"
        " written DataFrame by hand,\nwithout this library, vs without (paired): what the server's"
        " row count itself costs, below which the hooks' row count cannot go.\n"
        "Run on a quiet machine: other load easily swamps a few percent."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--mechanism", choices=("classic", "connect", "connect-unobserved", "all"), default="all"
    )
    parser.add_argument(
        "--source",
        choices=("table", "range", "delta"),
        default="table",
        help="table: each write a different query over a source table; range: one DataFrame, no"
        " source; delta: the table job on Delta Lake",
    )
    parser.add_argument("--json", action="store_true", help="print raw measurements as JSON")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run the package of this git ref (extracted with git archive), alternating with"
        " the working tree's, and compare",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="with --baseline: processes per side and mechanism"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--package-root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_mechanism(args.mechanism, args.writes, args.rounds, args.source, args.package_root)
        print("RESULT " + json.dumps(result), flush=True)
        return
    mechanisms: tuple[str, ...] = (args.mechanism,)
    if args.mechanism == "all":  # Delta targets are never observed: connect-unobserved is connect
        mechanisms = (
            ("classic", "connect") if args.source == "delta" else ("classic", "connect", "connect-unobserved")
        )
    if args.baseline is not None:
        _compare(args, mechanisms)
        return
    results = []
    for mechanism in mechanisms:
        print(f"running {mechanism}: {args.rounds} rounds x 3 jobs of {args.writes} writes ...", flush=True)
        results.append(_run_child(args, mechanism))
    print()
    _print_table(results)
    if args.json:
        print(json.dumps(results, indent=2))


def _run_child(args: argparse.Namespace, mechanism: str, package_root: Path | None = None) -> dict[str, Any]:
    """Run one mechanism's job in its own process; returns its measurements."""
    command = [
        sys.executable,
        __file__,
        "--child",
        "--mechanism",
        mechanism,
        "--writes",
        str(args.writes),
        "--rounds",
        str(args.rounds),
        "--source",
        args.source,
    ]
    if package_root is not None:
        command += ["--package-root", str(package_root)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{mechanism} benchmark failed")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _git(*argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=True
    ).stdout.strip()


def _compare(args: argparse.Namespace, mechanisms: tuple[str, ...]) -> None:
    """``--baseline``: each mechanism's job with the ref's package and with the working tree's,
    alternating, ``--repeats`` processes each; one comparison table per mechanism."""
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    baseline_sha = _git("rev-parse", "--short", f"{args.baseline}^{{commit}}")
    dirty = " + uncommitted changes" if _git("status", "--porcelain", "--", "dagster_pipes_spark") else ""
    current_label = f"working tree (HEAD {_git('rev-parse', '--short', 'HEAD')}{dirty})"
    tmp = Path(tempfile.mkdtemp(prefix="bench-spark-hooks-baseline-"))
    try:
        archive = subprocess.Popen(
            ["git", "-C", str(REPO), "archive", baseline_sha, "dagster_pipes_spark"], stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, check=True)
        assert archive.stdout is not None
        archive.stdout.close()
        if archive.wait() != 0 or not (tmp / "dagster_pipes_spark" / "__init__.py").is_file():
            raise SystemExit(f"could not extract dagster_pipes_spark at {args.baseline}")
        sides = {"baseline": tmp, "current": REPO}
        print(f"baseline: {args.baseline} = {baseline_sha}, extracted to {tmp}")
        print(f"current:  {current_label}")
        results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for mechanism in mechanisms:
            runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
            for repeat in range(args.repeats):
                for side, root in sides.items():
                    print(
                        f"running {mechanism} ({side}, {repeat + 1}/{args.repeats}): {args.rounds} rounds x 3"
                        f" jobs of {args.writes} writes ...",
                        flush=True,
                    )
                    result = _run_child(args, mechanism, root)
                    expected = (root / "dagster_pipes_spark").resolve()
                    if Path(result["package"]) != expected:  # the child asserts it too
                        raise SystemExit(f"{side} imported {result['package']}, not {expected}")
                    runs[side].append(result)
            results[mechanism] = runs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    for mechanism, runs in results.items():
        _print_comparison(
            mechanism, runs, {"baseline": f"{args.baseline} ({baseline_sha})", "current": current_label}
        )
        print()
    print(
        "runs: processes x rounds; without/with: median wall time of the job over all the side's rounds;"
        "\noverhead: ratio of those medians; paired: median of the per-round ratios with/without;"
        "\nhook/write: time inside the hooks per write; exit: leaving the block (medians over all rounds);"
        "\nper process: each process's median with hooks and paired overhead (the spread between processes);"
        "\ncurrent/baseline: ratio of the with-hooks medians, of the overheads (median-based and paired; n/a when"
        "\nthe baseline's is not above zero), with the difference in percentage points, and of the without-hooks"
        "\nmedians (the same Spark job on both sides: the noise between processes).\n"
        "Run on a quiet machine: other load easily swamps a few percent."
    )
    if args.json:
        print(json.dumps(results, indent=2))


def _pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's measurements over all its processes' rounds."""
    on = [x for r in runs for x in r["on"]]
    off = [x for r in runs for x in r["off"]]
    paired = [a / b - 1.0 for r in runs for a, b in zip(r["on"], r["off"], strict=True)]
    return {
        "runs": f"{len(runs)} x {runs[0]['rounds']}",
        "off": statistics.median(off),
        "on": statistics.median(on),
        "overhead": statistics.median(on) / statistics.median(off) - 1.0,
        "paired": statistics.median(paired),
        "hook_ms": 1000 * statistics.median(x for r in runs for x in r["hook_per_write"]),
        "exit_ms": 1000 * statistics.median(x for r in runs for x in r["exit_seconds"]),
        "per_process": ", ".join(
            f"{r['on_median']:.2f} s {100 * r['overhead_paired_median']:+.1f}%" for r in runs
        ),
    }


def _ratio(current: float, baseline: float) -> str:
    return f"{current / baseline:.3f}" if baseline > 0 else "n/a"


def _print_comparison(mechanism: str, runs: dict[str, list[dict[str, Any]]], labels: dict[str, str]) -> None:
    base, cur = _pooled(runs["baseline"]), _pooled(runs["current"])
    first = runs["baseline"][0]
    print(f"{mechanism} ({first['writes']} writes, source {first['source']})")
    header = (
        "side",
        "runs",
        "without (s)",
        "with (s)",
        "overhead",
        "paired",
        "hook/write (ms)",
        "exit (ms)",
        "per process (with, paired)",
    )
    rows = [
        (
            side,
            p["runs"],
            f"{p['off']:.3f}",
            f"{p['on']:.3f}",
            f"{100 * p['overhead']:+.1f}%",
            f"{100 * p['paired']:+.1f}%",
            f"{p['hook_ms']:.2f}",
            f"{p['exit_ms']:.0f}",
            p["per_process"],
        )
        for side, p in (("baseline", base), ("current", cur))
    ]
    rows.append(
        (
            "current/baseline",
            "",
            _ratio(cur["off"], base["off"]),
            _ratio(cur["on"], base["on"]),
            f"{_ratio(cur['overhead'], base['overhead'])} ({100 * (cur['overhead'] - base['overhead']):+.1f} pp)",
            f"{_ratio(cur['paired'], base['paired'])} ({100 * (cur['paired'] - base['paired']):+.1f} pp)",
            _ratio(cur["hook_ms"], base["hook_ms"]),
            _ratio(cur["exit_ms"], base["exit_ms"]),
            "",
        )
    )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for side in ("baseline", "current"):
        print(f"  {side}: {labels[side]}")


if __name__ == "__main__":
    main()
