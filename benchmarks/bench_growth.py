"""How the cost of ``report_spark_writes`` grows with the targets, the writes and the micro-batches
of one block, and the memory it keeps.

Modes (each mechanism x format in its own process, sizes ascending in one Spark session):

* ``targets``: one block writing once to each of 1, 10, 100, 500 tables (``insertInto``, each write
  a different query over a small source table, so each has its own lineage to read);
* ``writes``: one block making 10, 100, 1,000, 10,000 writes into 5 tables (``insertInto``
  appends; the 5 DataFrames are each written again and again, as a loop of appends does);
* ``stream``: one streaming query (rate source, processing-time trigger 0) into a table until it
  has completed 10, 100, 1,000, 10,000 micro-batches;
* ``log``: a real ``PipesContext`` with a file message writer sending 1,000,000 ``pipes.log``
  lines (no Spark), the process's peak RSS sampled at 10k, 100k, 1M lines.

Per size: the job without hooks (same writes, same session), the block with hooks, the time spent
leaving the block ("exit"), what the exit asked Spark (classic: jobs submitted to the driver's
``DAGScheduler``; Connect: the client's requests -- ``ExecutePlan``, ``AnalyzePlan``, ``Config`` --
and the jobs of the local server behind it), the hooks' time per write, and peak RSS during the
block (``VmHWM`` of the Python process and of the JVM, reset before each block through
``/proc/<pid>/clear_refs``; on Connect the JVM is the local server, the Python process the client),
with its growth over the RSS just before the block.

Sizes are capped with ``--max-targets``, ``--max-writes``, ``--max-batches``, ``--max-lines``
(``--quick``: 100 / 100 / 100 / 100,000). ``--baseline REF`` runs the package of a git ref in a
process of its own beside the working tree's (as ``bench_spark_hooks.py --baseline``) and prints
both side by side. Results: ``benchmarks/results/growth.{txt,json}`` (``--save``).

    .venv/bin/python benchmarks/bench_growth.py [--mode all] [--mechanism all] [--format all]
        [--quick] [--max-targets 500] [--baseline REF] [--save]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import StubPipes, environment, save_results

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "targets": (1, 10, 100, 500),
    "writes": (10, 100, 1_000, 10_000),
    "stream": (10, 100, 1_000, 10_000),
    "log": (10_000, 100_000, 1_000_000),
}
QUICK = {"targets": 100, "writes": 100, "stream": 100, "log": 100_000}
N_WRITE_TARGETS = 5


# --- memory -----------------------------------------------------------------------------------


def _status_kb(pid: int | str, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak(pid: int | str) -> bool:
    """Reset the peak RSS (``VmHWM``) of ``pid`` to its current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Memory:
    """Peak RSS of this process and of the JVM while a block runs (MB)."""

    def __init__(self, jvm_pid: int | None) -> None:
        self.pids: dict[str, int | str] = {"python": "self"}
        if jvm_pid is not None:
            self.pids["jvm"] = jvm_pid
        self.before: dict[str, float] = {}

    def start(self) -> None:
        import gc

        gc.collect()
        for name, pid in self.pids.items():
            _reset_peak(pid)
            self.before[name] = _status_kb(pid, "VmRSS") / 1024

    def stop(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            peak = _status_kb(pid, "VmHWM") / 1024
            out[f"{name}_peak_mb"] = round(peak, 1)
            out[f"{name}_growth_mb"] = round(peak - self.before[name], 1)
        return out


# --- Spark --------------------------------------------------------------------------------------


def _import_from(root: Path | None) -> None:
    """Import ``dagster_pipes_spark`` from ``root`` (checked), else this checkout."""
    root = (root or REPO).resolve()
    sys.path.insert(0, str(root))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    import dagster_pipes_spark

    where = Path(dagster_pipes_spark.__file__ or "").resolve()
    assert where.is_relative_to(root), f"dagster_pipes_spark imported from {where}, not under {root}"


def _session(mechanism: str, tmp: str, delta: bool) -> Any:
    """A local session (Connect: a server on a free port in this process's JVM, and its client)."""
    from dagster_pipes_spark.testing._notebook import make_spark_session

    conf = {
        "spark.sql.shuffle.partitions": "1",
        "spark.sql.warehouse.dir": os.path.join(tmp, "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={tmp}",
    }
    if delta:
        from dagster_pipes_spark.testing.table_formats import fetch_jars, spark_confs

        conf.update(spark_confs([j for j in fetch_jars("spark40") if j.name.startswith("delta")]))
    return make_spark_session(mechanism, conf)


class Exit:
    """What leaving a block asked Spark: Connect requests by kind, jobs of the local driver."""

    def __init__(self, spark: Any, connect: bool) -> None:
        from dagster_pipes_spark.testing.spark_calls import count_connect_requests, submitted_jobs

        self.spark = spark
        self.connect = connect
        self._count = count_connect_requests
        self._jobs = submitted_jobs

    def measure(self, leave: Callable[[], None]) -> dict[str, Any]:
        jobs = self._jobs()
        started = time.perf_counter()
        if self.connect:
            with self._count(self.spark) as requests:
                leave()
            out: dict[str, Any] = {"requests": requests.snapshot()}
        else:
            leave()
            out = {}
        out["exit_s"] = time.perf_counter() - started
        out["jobs"] = self._jobs() - jobs
        return out


def run_child(mode: str, mechanism: str, fmt: str, cap: int, package_root: Path | None) -> dict[str, Any]:
    """One mode, mechanism and format: every size up to ``cap``, ascending, in one session."""
    warnings.filterwarnings("ignore")
    _import_from(package_root)
    import dagster_pipes_spark

    sizes = [s for s in SIZES[mode] if s <= cap] or [cap]
    if mode == "log":
        rows = _log_mode(sizes)
    else:
        rows = _spark_mode(mode, mechanism, fmt, sizes)
    return {
        "mode": mode,
        "mechanism": mechanism,
        "format": fmt,
        "rows": rows,
        "package": str(Path(dagster_pipes_spark.__file__ or "").resolve().parent),
    }


def _spark_mode(mode: str, mechanism: str, fmt: str, sizes: list[int]) -> list[dict[str, Any]]:
    from pyspark import SparkContext

    from dagster_pipes_spark.spark import report_spark_writes

    tmp = tempfile.mkdtemp(prefix="bench-growth-")
    connect = mechanism == "connect"
    rows: list[dict[str, Any]] = []
    try:
        spark = _session(mechanism, tmp, fmt == "delta")
        sc = SparkContext._active_spark_context
        assert sc is not None
        sc.setLogLevel("ERROR")
        jvm_pid = getattr(getattr(sc._gateway, "proc", None), "pid", None)
        exit_meter = Exit(spark, connect)
        spark.range(50).selectExpr("id", "cast(id as string) as name", "id * 0.5 as score").write.saveAsTable(
            "src"
        )
        made: set[str] = set()

        def table(name: str) -> str:
            if name not in made:
                spark.sql(f"CREATE TABLE {name} (id BIGINT, name STRING, score DOUBLE) USING {fmt}")
                made.add(name)
            return name

        for size in sizes:
            if mode == "stream":
                rows.append(_stream_size(spark, report_spark_writes, exit_meter, jvm_pid, fmt, tmp, size))
                continue
            if mode == "targets":
                targets = [table(f"t{i}") for i in range(size)]
                frames = [
                    spark.table("src").selectExpr("id", "name", f"CAST(score * {i + 1} AS DOUBLE) AS score")
                    for i in range(size)
                ]
                plan = list(zip(targets, frames, strict=True))
            else:
                targets = [table(f"w{i}") for i in range(N_WRITE_TARGETS)]
                frames = [
                    spark.table("src").selectExpr("id", "name", f"CAST(score * {i + 1} AS DOUBLE) AS score")
                    for i in range(N_WRITE_TARGETS)
                ]
                plan = [(targets[i % N_WRITE_TARGETS], frames[i % N_WRITE_TARGETS]) for i in range(size)]

            def job(plan: list[tuple[str, Any]] = plan) -> None:
                for target, frame in plan:
                    frame.write.insertInto(target)

            started = time.perf_counter()
            job()
            without = time.perf_counter() - started
            keys = sorted(set(targets))
            pipes = StubPipes(keys)
            memory = Memory(jvm_pid)
            memory.start()
            started = time.perf_counter()
            block = report_spark_writes(spark, pipes, {t: t for t in keys})
            report = block.__enter__()
            job()
            inside = time.perf_counter() - started

            def leave(block: Any = block) -> None:
                block.__exit__(None, None, None)

            measured = exit_meter.measure(leave)
            total = time.perf_counter() - started
            mem = memory.stop()
            assert set(pipes.reports) == set(keys), (len(pipes.reports), len(keys))
            traced = sum(1 for md in pipes.reports.values() if "dagster/column_lineage" in md)
            rows.append(
                {
                    "size": size,
                    "without_s": without,
                    "with_s": total,
                    "inside_s": inside,
                    **measured,
                    "hook_ms_per_write": 1000 * report.hook_seconds / max(1, len(report.writes)),
                    "writes": len(report.writes),
                    "reports": len(pipes.reports),
                    "traced": traced,
                    **mem,
                    "load": os.getloadavg()[0],
                }
            )
            print(
                f"  {mode} {mechanism} {fmt} size {size}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True
            )
        spark.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _stream_size(
    spark: Any, report_spark_writes: Any, exit_meter: Exit, jvm_pid: int | None, fmt: str, tmp: str, size: int
) -> dict[str, Any]:
    """A rate-source query into a fresh table until ``size`` micro-batches completed, without hooks,
    then with them."""

    def run(name: str) -> tuple[float, float]:
        checkpoint = os.path.join(tmp, "ckpt", name)
        spark.sql(f"CREATE TABLE {name} (timestamp TIMESTAMP, value BIGINT) USING {fmt}")
        stream = spark.readStream.format("rate").option("rowsPerSecond", 1000).load()
        started = time.perf_counter()
        query = (
            stream.writeStream.format(fmt)
            .option("checkpointLocation", checkpoint)
            .trigger(processingTime="0 seconds")
            .toTable(name)
        )
        while True:
            last = query.lastProgress
            if (
                last is not None
                and int(last["batchId"] if isinstance(last, dict) else last.batchId) >= size - 1
            ):
                break
            time.sleep(0.05)
        query.stop()
        return time.perf_counter() - started, 0.0

    without, _ = run(f"s_off_{size}")
    name = f"s_on_{size}"
    pipes = StubPipes([name])
    memory = Memory(jvm_pid)
    memory.start()
    started = time.perf_counter()
    block = report_spark_writes(spark, pipes, {name: name})
    block.__enter__()
    inside, _ = run(name)
    measured = exit_meter.measure(lambda: block.__exit__(None, None, None))
    total = time.perf_counter() - started
    mem = memory.stop()
    md = pipes.reports.get(name) or {}
    batches = md.get("spark/streaming_batches")
    batches = batches.get("raw_value") if isinstance(batches, dict) else batches
    row = {
        "size": size,
        "without_s": without,
        "with_s": total,
        "inside_s": inside,
        **measured,
        "batches_reported": batches,
        "delta_version": (md.get("delta/version") or {}).get("raw_value"),
        "per_batch_ms_without": 1000 * without / size,
        "per_batch_ms_with": 1000 * inside / max(1, int(batches or size)),
        **mem,
        "load": os.getloadavg()[0],
    }
    print(f"  stream {fmt} size {size}: {json.dumps(row)}", file=sys.stderr, flush=True)
    return row


# --- logging ------------------------------------------------------------------------------------


def _log_mode(sizes: list[int]) -> list[dict[str, Any]]:
    """``pipes.log.info`` through a real context writing messages to a file; peak RSS per size."""
    import dagster_pipes_spark as lib

    tmp = Path(tempfile.mkdtemp(prefix="bench-growth-log-"))
    rows: list[dict[str, Any]] = []
    try:
        ctx = tmp / "context.json"
        ctx.write_text(json.dumps({"run_id": "r", "asset_keys": ["a"], "extras": {}, "retry_number": 0}))
        for size in sizes:
            out = tmp / f"messages-{size}.jsonl"
            loader = lib.PipesMappingParamsLoader(
                {
                    lib.DAGSTER_PIPES_CONTEXT_ENV_VAR: lib.encode_param({"path": str(ctx)}),
                    lib.DAGSTER_PIPES_MESSAGES_ENV_VAR: lib.encode_param({"path": str(out)}),
                }
            )
            memory = Memory(None)
            memory.start()
            started = time.perf_counter()
            with lib.open_dagster_pipes(params_loader=loader) as pipes:
                log = pipes.log
                for i in range(size):
                    log.info(f"line {i} " + "x" * 80)
            elapsed = time.perf_counter() - started
            mem = memory.stop()
            with out.open("rb") as f:
                lines = sum(1 for _ in f)
            assert lines >= size, (lines, size)
            out.unlink()
            rows.append({"size": size, "with_s": elapsed, "message_lines": lines, **mem})
            print(f"  log size {size}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


# --- driver ---------------------------------------------------------------------------------------


def _child(
    args: argparse.Namespace, mode: str, mechanism: str, fmt: str, root: Path | None
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        "--mode",
        mode,
        "--mechanism",
        mechanism,
        "--format",
        fmt,
        "--cap",
        str(_cap(args, mode)),
    ]
    if root is not None:
        command += ["--package-root", str(root)]
    # the child's per-size rows go to stderr as they are measured (kept if a long run is stopped)
    proc = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:])
        raise SystemExit(f"{mode} {mechanism} {fmt} failed")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return result


def _cap(args: argparse.Namespace, mode: str) -> int:
    explicit = getattr(
        args, f"max_{ {'targets': 'targets', 'writes': 'writes', 'stream': 'batches', 'log': 'lines'}[mode] }"
    )
    if explicit is not None:
        return int(explicit)
    return QUICK[mode] if args.quick else SIZES[mode][-1]


def _requests(row: dict[str, Any]) -> str:
    req = row.get("requests")
    if not req:
        return "-"
    return f"{req['total']} ({req.get('execute', 0)}e/{req.get('analyze', 0)}a/{req.get('config', 0)}c)"


def _table(results: list[dict[str, Any]]) -> str:
    header = (
        "side",
        "mode",
        "mech",
        "fmt",
        "size",
        "without (s)",
        "with (s)",
        "exit (ms)",
        "exit jobs",
        "exit requests",
        "hook/write (ms)",
        "py peak / growth (MB)",
        "jvm peak / growth (MB)",
        "load",
        "reported",
    )
    rows = []
    for result in results:
        for r in result["rows"]:
            rows.append(
                (
                    result.get("side", "current"),
                    result["mode"],
                    result["mechanism"],
                    result["format"],
                    f"{r['size']:,}",
                    f"{r['without_s']:.2f}" if "without_s" in r else "-",
                    f"{r['with_s']:.2f}",
                    f"{1000 * r['exit_s']:.0f}" if "exit_s" in r else "-",
                    str(r.get("jobs", "-")),
                    _requests(r),
                    f"{r['hook_ms_per_write']:.2f}"
                    if "hook_ms_per_write" in r
                    else (
                        f"{r['per_batch_ms_with']:.1f}/b (off {r['per_batch_ms_without']:.1f})"
                        if "per_batch_ms_with" in r
                        else "-"
                    ),
                    f"{r['python_peak_mb']:.0f} / {r['python_growth_mb']:+.0f}",
                    f"{r['jvm_peak_mb']:.0f} / {r['jvm_growth_mb']:+.0f}" if "jvm_peak_mb" in r else "-",
                    f"{r['load']:.1f}" if "load" in r else "-",
                    (
                        f"{r['batches_reported']} batches, delta v{r['delta_version']}"
                        if "batches_reported" in r
                        else f"{r['reports']} assets, {r['traced']} with lineage"
                        if "reports" in r
                        else f"{r.get('message_lines', '-')} lines"
                    ),
                )
            )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append(
        "\nwithout/with: wall time of the same writes without / with the block (with: entering, the writes,"
        " leaving);\nexit: leaving the block; exit jobs: Spark jobs submitted to the driver meanwhile (Connect:"
        " the local server's);\nexit requests: Spark Connect round trips the client made on exit (ExecutePlan"
        " e / AnalyzePlan a / Config c);\nhook/write: time inside the hooks per write (stream: wall ms per"
        " micro-batch with the block, and without);\npeak / growth: peak RSS during the block and its rise"
        " over the RSS before it (Python process; JVM: driver, or Connect server)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("targets", "writes", "stream", "log", "all"), default="all")
    parser.add_argument("--mechanism", choices=("classic", "connect", "all"), default="all")
    parser.add_argument("--format", choices=("parquet", "delta", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="cap every mode at its smaller sizes")
    parser.add_argument("--max-targets", type=int)
    parser.add_argument("--max-writes", type=int)
    parser.add_argument("--max-batches", type=int)
    parser.add_argument("--max-lines", type=int)
    parser.add_argument(
        "--baseline", metavar="REF", help="also run the package of this git ref, side by side"
    )
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/growth.{txt,json}")
    parser.add_argument("--save-as", default="growth", help="results name (with --save; default growth)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cap", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--package-root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_child(args.mode, args.mechanism, args.format, args.cap, args.package_root)
        print("RESULT " + json.dumps(result), flush=True)
        return
    modes = ("targets", "writes", "stream", "log") if args.mode == "all" else (args.mode,)
    mechanisms = ("classic", "connect") if args.mechanism == "all" else (args.mechanism,)
    formats = ("parquet", "delta") if args.format == "all" else (args.format,)
    sides: dict[str, Path | None] = {"current": None}
    tmp: Path | None = None
    head = environment()
    if args.baseline:
        tmp = Path(tempfile.mkdtemp(prefix="bench-growth-baseline-"))
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", f"{args.baseline}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        archive = subprocess.Popen(
            ["git", "-C", str(REPO), "archive", sha, "dagster_pipes_spark"], stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", str(tmp)], stdin=archive.stdout, check=True)
        archive.wait()
        # the counting helper is new with this benchmark: the baseline's hooks are measured with it
        shutil.copy(
            REPO / "dagster_pipes_spark" / "testing" / "spark_calls.py",
            tmp / "dagster_pipes_spark" / "testing",
        )
        sides = {"baseline": tmp, "current": REPO}
        head += f" | baseline {args.baseline} = {sha}"
    results: list[dict[str, Any]] = []
    try:
        for mode in modes:
            combos = (
                [("classic", "parquet")] if mode == "log" else [(m, f) for m in mechanisms for f in formats]
            )
            for mechanism, fmt in combos:
                for side, root in sides.items():
                    if mode == "log" and side == "baseline":
                        continue
                    print(f"running {mode} {mechanism} {fmt} ({side}) ...", file=sys.stderr, flush=True)
                    result = _child(args, mode, mechanism, fmt, root)
                    if mode == "log":
                        result["mechanism"] = result["format"] = "-"
                    result["side"] = side
                    results.append(result)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    text = _table(results)
    head += f" | load after {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    print(head)
    print(text)
    if args.save:
        save_results(args.save_as, head, results, text)


if __name__ == "__main__":
    main()
