"""Side-by-side core benchmark: ``dagster_pipes_spark`` (ours) vs the stock ``dagster_pipes``.

Run with the project venv::

    .venv/bin/python benchmarks/bench_core.py [--quick] [--n N] [--reps R] [--cold-reps R]

Methodology
-----------
* Every measurement runs in a **fresh Python subprocess** (``python -c <runner>``, cwd = a temp dir), so
  the two libraries never share module state, and each subprocess imports only the library it measures.
* Repetitions are **interleaved**: repetition ``r`` runs every variant of a row once, in an order rotated
  by ``r`` (stock, ours, raw, ...), so drifts in machine load hit all variants alike. One discarded warm-up
  run per variant comes first (bytecode caches, page cache). Reported numbers are **medians** over the
  repetitions. Because stock and ours of one repetition ran back to back, the table also shows the
  *paired* ratio (median over repetitions of ours/stock within the round) and "wins" (the number of
  repetitions in which ours beat stock in the same round). Throughput rows are reported twice: from
  wall-clock time, and from the process CPU time of the send loop (all threads; it does not count time
  spent waiting for a CPU, so it is less sensitive to other load on the machine).
* Rows:

  1. *Cold start*: wall time of a whole subprocess that imports the library, opens Pipes with
     ``open_dagster_pipes(params_loader=PipesMappingParamsLoader({...}))`` -- default context loader
     (``{"path": ctx.json}``) and default message writer (``{"path": messages}``), both encoded with the
     library's own ``encode_param`` -- and closes it (``with`` block with no body). ``python -c pass`` is
     the raw floor. Inside the same subprocess the import and the open+close are also timed with
     ``perf_counter`` (rows 1a, 1b).
  2. *File writer*: N messages through the default writer with ``{"path": ...}``; a realistic mix that
     alternates ``pipes.log.info(f"msg {i}")`` and ``pipes.report_custom_message({"i": i, "payload":
     "x" * 100})``. Only the send loop is timed (perf_counter inside the subprocess).
  3. *Stream writer*: the same mix with ``{"stdio": "stderr"}``; the subprocess's stderr is a real file.
  4. *Raw*: no library -- the same message dicts (``{"__dagster_pipes_version": "0.1", "method": ...,
     "params": ...}``) serialized with ``json.dumps`` + newline, written (a) to a file opened once
     (buffered ``write``), (b) with one ``os.write`` per line to an ``O_APPEND`` fd, (c) with
     ``sys.stderr.write`` while stderr is a real file (the stream writer's raw counterpart).
  5. *Metadata-heavy*: N ``report_asset_check(check_name=f"c{i}", passed=True, metadata={10 mixed
     values incl. typed dicts})`` (distinct names: ours rejects a repeated (asset_key, check_name)).
     Raw counterpart: the same messages with metadata wrapped as the stock library sends it, one
     ``os.write`` per line.

* After every run the output is verified: the expected number of lines (N messages, plus ``opened`` and
  ``closed`` for the libraries), every line valid JSON. Within a repetition the stock and ours message
  files are compared byte for byte (a mismatch is reported as a note), and the raw lines are compared to
  the libraries' message lines, so a broken or lazy writer cannot "win".
* Target (from the issue): ours at least as fast as stock on every row. A row PASSes when ours meets
  it on the wall-clock medians *and* on the paired ratio (so neither a lucky median nor one lucky round
  decides). The script prints PASS/FAIL per row and always exits 0: it is a report, not a test.
  Results (machine info, every sample, medians, verdicts, notes) go to ``benchmarks/results/core.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

STOCK = "dagster_pipes"
OURS = "dagster_pipes_spark"
LIBS: dict[str, str] = {"stock": STOCK, "ours": OURS}

HERE = Path(__file__).resolve().parent
RESULTS_PATH = HERE / "results" / "core.json"

CONTEXT_DATA: dict[str, Any] = {
    "run_id": "r",
    "asset_keys": ["a"],
    "extras": {},
    "job_name": None,
    "retry_number": 0,
    "partition_key": None,
    "partition_key_range": None,
    "partition_time_window": None,
    "code_version_by_asset_key": {"a": None},
    "provenance_by_asset_key": {"a": None},
}

# Runs in a fresh interpreter: `python -c COLD_START <lib> <ctx path> <messages path>`.
COLD_START = """\
import importlib, sys, time
_t0 = time.perf_counter()
lib = importlib.import_module(sys.argv[1])
_t1 = time.perf_counter()
_loader = lib.PipesMappingParamsLoader({
    lib.DAGSTER_PIPES_CONTEXT_ENV_VAR: lib.encode_param({"path": sys.argv[2]}),
    lib.DAGSTER_PIPES_MESSAGES_ENV_VAR: lib.encode_param({"path": sys.argv[3]}),
})
with lib.open_dagster_pipes(params_loader=_loader):
    pass
_t2 = time.perf_counter()
print(_t1 - _t0, _t2 - _t1)
"""

# Runs in a fresh interpreter: `python -c THROUGHPUT <json config>`; prints {"elapsed": wall seconds,
# "cpu": process CPU seconds (all threads)}. Only the send loop is timed. Both workloads send exactly `n` messages, in pairs for the mix.
THROUGHPUT = """\
import json, os, sys, time
cfg = json.loads(sys.argv[1])
n, writer, workload, out = cfg["n"], cfg["writer"], cfg["workload"], cfg["out"]
PAYLOAD = "x" * 100
V = "0.1"

def metadata(i):
    return {
        "rows": i,
        "ratio": 0.25,
        "ok": True,
        "table": "db.schema.table",
        "missing": None,
        "columns": ["id", "name", "value"],
        "docs": {"raw_value": "https://example.com/docs", "type": "url"},
        "count": {"raw_value": 1000 + i, "type": "int"},
        "score": {"raw_value": 0.5, "type": "float"},
        "stats": {"raw_value": {"min": 0, "max": i, "tags": ["a", "b"]}, "type": "json"},
    }

if writer.startswith("raw"):
    def wrap(md):  # the stock library's wrapping of plain values
        return {k: v if isinstance(v, dict) else {"raw_value": v, "type": "__infer__"} for k, v in md.items()}
    if writer == "raw_file":
        f = open(out, "a", encoding="utf-8")
        emit = f.write
    elif writer == "raw_stderr":
        emit = sys.stderr.write
    else:
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        emit = lambda s: os.write(fd, s.encode("utf-8"))
    dumps = json.dumps
    c0, t0 = time.process_time(), time.perf_counter()
    if workload == "mix":
        for i in range(0, n, 2):
            emit(dumps({"__dagster_pipes_version": V, "method": "log",
                        "params": {"message": f"msg {i}", "level": "INFO"}}) + "\\n")
            emit(dumps({"__dagster_pipes_version": V, "method": "report_custom_message",
                        "params": {"payload": {"i": i + 1, "payload": PAYLOAD}}}) + "\\n")
    else:
        for i in range(n):
            emit(dumps({"__dagster_pipes_version": V, "method": "report_asset_check",
                        "params": {"asset_key": "a", "check_name": f"c{i}", "passed": True,
                                   "metadata": wrap(metadata(i)), "severity": "ERROR"}}) + "\\n")
    t1, c1 = time.perf_counter(), time.process_time()
    if writer == "raw_file":
        f.close()
    elif writer == "raw_stderr":
        sys.stderr.flush()
else:
    import importlib
    lib = importlib.import_module(cfg["lib"])
    msg_params = {"stdio": "stderr"} if writer == "stream" else {"path": out}
    loader = lib.PipesMappingParamsLoader({
        lib.DAGSTER_PIPES_CONTEXT_ENV_VAR: lib.encode_param({"path": cfg["ctx"]}),
        lib.DAGSTER_PIPES_MESSAGES_ENV_VAR: lib.encode_param(msg_params),
    })
    with lib.open_dagster_pipes(params_loader=loader) as pipes:
        log = pipes.log
        custom = pipes.report_custom_message
        check = pipes.report_asset_check
        c0, t0 = time.process_time(), time.perf_counter()
        if workload == "mix":
            for i in range(0, n, 2):
                log.info(f"msg {i}")
                custom({"i": i + 1, "payload": PAYLOAD})
        else:
            for i in range(n):
                check(check_name=f"c{i}", passed=True, metadata=metadata(i))
        t1, c1 = time.perf_counter(), time.process_time()
print(json.dumps({"elapsed": t1 - t0, "cpu": c1 - c0}))
"""

T = TypeVar("T")
MS = "ms"
RATE = "msg/s"


@dataclass
class Row:
    """One table row: samples per variant (seconds for ``ms`` rows, msgs/s for ``msg/s`` rows).

    Throughput rows also keep ``cpu`` samples: msgs/s computed from the process CPU time of the loop.
    """

    key: str
    label: str
    unit: str
    raw_label: str | None = None  # what the raw reference is, if any
    raw_ref: Row | None = None  # take the raw reference from this row's "raw" samples
    samples: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def add(self, variant: str, value: float, cpu: float | None = None) -> None:
        """Record one sample (NaN for a failed run)."""
        self.samples.setdefault(variant, []).append(value)
        if cpu is not None:
            self.cpu.setdefault(variant, []).append(cpu)

    def median(self, variant: str, cpu: bool = False) -> float | None:
        """Median of the successful samples of ``variant``."""
        if variant == "raw" and self.raw_ref is not None:
            return self.raw_ref.median("raw", cpu)
        vals = [v for v in (self.cpu if cpu else self.samples).get(variant, []) if v == v]
        return statistics.median(vals) if vals else None

    def pairs(self, cpu: bool = False) -> list[tuple[float, float]]:
        """(stock, ours) per repetition, both successful (they ran in the same interleaved round)."""
        data = self.cpu if cpu else self.samples
        both = zip(data.get("stock", []), data.get("ours", []), strict=False)
        return [(s, o) for s, o in both if s == s and o == o]

    def paired_ratio(self, cpu: bool = False) -> float | None:
        """Median over repetitions of ours/stock measured in the same round."""
        ratios = [o / s for s, o in self.pairs(cpu) if s]
        return statistics.median(ratios) if ratios else None

    def wins(self, cpu: bool = False) -> tuple[int, int]:
        """How many paired repetitions ours beat (or tied) stock in, out of how many."""
        pairs = self.pairs(cpu)
        return sum(1 for s, o in pairs if self.better(o, s)), len(pairs)

    def better(self, ours: float, stock: float) -> bool:
        """Whether ``ours`` meets the target against ``stock`` (as fast or faster)."""
        return ours <= stock if self.unit == MS else ours >= stock


@dataclass
class Bench:
    """Shared state of one benchmark run."""

    python: str
    workdir: Path
    ctx_path: Path
    env: dict[str, str]
    baseline_env: dict[str, str] | None = None  # the "before" variant: a copy of another checkout's package
    notes: list[str] = field(default_factory=list)
    _seq: int = 0

    def fresh_path(self, stem: str) -> Path:
        """A new, non-existent output file in the work dir."""
        self._seq += 1
        return self.workdir / f"{stem}-{self._seq}.jsonl"

    def note(self, text: str) -> None:
        """Record (and print once) a verification note."""
        if text not in self.notes:
            self.notes.append(text)
            print(f"  note: {text}", flush=True)

    def run(
        self, args: Sequence[str], stderr_path: Path | None = None, variant: str | None = None
    ) -> tuple[float, str]:
        """Run ``python *args`` in the work dir (the baseline's package first for ``before``)."""
        cmd = [self.python, *args]
        env = self.baseline_env if variant == "before" and self.baseline_env else self.env
        err = open(stderr_path, "w") if stderr_path else subprocess.PIPE
        try:
            t0 = time.perf_counter()
            proc = subprocess.run(
                cmd, cwd=self.workdir, env=env, stdout=subprocess.PIPE, stderr=err, text=True
            )
            wall = time.perf_counter() - t0
        finally:
            if stderr_path:
                err.close()  # type: ignore[union-attr]
        if proc.returncode != 0:
            detail = (proc.stderr or "")[-400:] if not stderr_path else stderr_path.read_text()[-400:]
            raise RuntimeError(f"subprocess failed ({proc.returncode}): {detail}")
        return wall, proc.stdout


def verify_lines(path: Path, expected: int, what: str, bench: Bench) -> list[str] | None:
    """Check that ``path`` holds ``expected`` lines of valid JSON; return the lines (None if not)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        bench.note(f"{what}: cannot read output ({e})")
        return None
    if len(lines) != expected:
        bench.note(f"{what}: expected {expected} lines, found {len(lines)}")
        return None
    for n, line in enumerate(lines):
        try:
            json.loads(line)
        except ValueError:
            bench.note(f"{what}: line {n + 1} is not valid JSON: {line[:120]!r}")
            return None
    return lines


def rotated(items: Sequence[T], r: int) -> list[T]:
    """``items`` rotated left by ``r`` (interleaving order for repetition ``r``)."""
    k = r % len(items)
    return [*items[k:], *items[:k]]


def bench_cold_start(bench: Bench, reps: int) -> list[Row]:
    """Row 1: whole-subprocess wall time, plus in-process import and open+close times (and their sum)."""
    wall = Row("cold_start_wall", "cold start: import+open+close, wall", MS, raw_label="python -c pass")
    imp = Row("cold_start_import", "  import only (in-process)", MS)
    opn = Row("cold_start_open_close", "  open+close (in-process)", MS)
    both = Row("cold_start_in_process", "  import+open+close (in-process)", MS)
    variants = ["stock", "ours", "raw", *(["before"] if bench.baseline_env else [])]
    for r in range(-1, reps):  # r == -1: warm-up, discarded
        for variant in rotated(variants, max(r, 0)):
            try:
                if variant == "raw":
                    seconds, _ = bench.run(["-c", "pass"])
                    if r >= 0:
                        wall.add("raw", seconds)
                    continue
                out = bench.fresh_path(f"cold-{variant}")
                lib = STOCK if variant == "stock" else OURS
                seconds, stdout = bench.run(
                    ["-c", COLD_START, lib, str(bench.ctx_path), str(out)], variant=variant
                )
                t_import, t_open = (float(x) for x in stdout.split())
                ok = verify_lines(out, 2, f"cold start ({variant})", bench) is not None
                out.unlink(missing_ok=True)
            except (RuntimeError, ValueError) as e:
                bench.note(f"cold start ({variant}) failed: {e}")
                seconds = t_import = t_open = float("nan")
                ok = False
            if r >= 0:
                nan = float("nan")
                wall.add(variant, seconds if ok else nan)
                imp.add(variant, t_import if ok else nan)
                opn.add(variant, t_open if ok else nan)
                both.add(variant, t_import + t_open if ok else nan)
    return [wall, imp, opn, both]


def run_throughput(
    bench: Bench, *, lib: str | None, writer: str, workload: str, n: int, variant: str | None = None
) -> tuple[float, float, list[str] | None]:
    """One throughput subprocess; returns (msgs/s wall, msgs/s CPU, verified message lines or None)."""
    stream = writer in ("stream", "raw_stderr")
    out = bench.fresh_path(f"{workload}-{writer}-{lib or 'raw'}")
    cfg = {
        "lib": lib,
        "writer": writer,
        "workload": workload,
        "n": n,
        "ctx": str(bench.ctx_path),
        "out": str(out),
    }
    what = f"{workload}/{writer}/{lib or 'raw'}"
    try:
        _, stdout = bench.run(
            ["-c", THROUGHPUT, json.dumps(cfg)], stderr_path=out if stream else None, variant=variant
        )
        timing = json.loads(stdout.strip().splitlines()[-1])
        elapsed, cpu = float(timing["elapsed"]), float(timing["cpu"])
    except (RuntimeError, ValueError, KeyError, IndexError) as e:
        bench.note(f"{what} failed: {e}")
        out.unlink(missing_ok=True)
        return float("nan"), float("nan"), None
    expected = n + (0 if lib is None else 2)  # libraries add `opened` and `closed`
    lines = verify_lines(out, expected, what, bench)
    out.unlink(missing_ok=True)
    if lines is None:
        return float("nan"), float("nan"), None
    return n / elapsed, (n / cpu if cpu > 0 else float("nan")), lines


def compare(bench: Bench, what: str, got: dict[str, list[str] | None], raw_keys: Sequence[str]) -> None:
    """Note any difference between stock's and ours' message lines, and between raw and the messages proper."""
    stock, ours = got.get("stock"), got.get("ours")
    if stock is not None and ours is not None and stock != ours:
        diff = (
            next(i for i, (a, b) in enumerate(zip(stock, ours, strict=True)) if a != b)
            if len(stock) == len(ours)
            else -1
        )
        sample = (
            f"line {diff + 1}: stock {stock[diff][:160]!r} vs ours {ours[diff][:160]!r}" if diff >= 0 else ""
        )
        bench.note(f"{what}: stock and ours message lines differ ({sample})")
    ref = stock or ours
    for key in raw_keys:
        raw = got.get(key)
        if raw is not None and ref is not None and raw != ref[1:-1]:  # libraries add `opened` and `closed`
            bench.note(f"{what}: raw lines ({key}) differ from the libraries' message lines")


def bench_throughput(bench: Bench, reps: int, n: int) -> list[Row]:
    """Rows 2-5: messages/s for the file and stream writers, raw writes and metadata-heavy checks."""
    raw_file = Row("raw_file", "raw: file opened once, f.write", RATE)
    raw_os = Row("raw_os", "raw: one os.write per line", RATE)
    raw_err = Row("raw_stderr", "raw: sys.stderr.write (-> file)", RATE)
    file_row = Row("file_writer", "file writer: log/custom mix", RATE, raw_label="4b", raw_ref=raw_os)
    stream_row = Row(
        "stream_writer", "stream writer (stderr -> file): mix", RATE, raw_label="4c", raw_ref=raw_err
    )
    check_row = Row(
        "asset_check_metadata",
        "report_asset_check, 10 metadata",
        RATE,
        raw_label="os.write, stock-shaped metadata",
    )
    # (row, variant, lib, writer, workload) per measurement; grouped so a group's variants are interleaved.
    Spec = tuple[Row, str, str | None, str, str]  # noqa: N806 - a local type alias
    mix_group: list[Spec] = [
        (file_row, "stock", STOCK, "file", "mix"),
        (file_row, "ours", OURS, "file", "mix"),
        (raw_file, "raw", None, "raw_file", "mix"),
        (raw_os, "raw", None, "raw_os", "mix"),
    ]
    stream_group: list[Spec] = [
        (stream_row, "stock", STOCK, "stream", "mix"),
        (stream_row, "ours", OURS, "stream", "mix"),
        (raw_err, "raw", None, "raw_stderr", "mix"),
    ]
    check_group: list[Spec] = [
        (check_row, "stock", STOCK, "file", "check"),
        (check_row, "ours", OURS, "file", "check"),
        (check_row, "raw", None, "raw_os", "check"),
    ]
    if bench.baseline_env:  # the baseline checkout's package, same workloads
        mix_group.append((file_row, "before", OURS, "file", "mix"))
        stream_group.append((stream_row, "before", OURS, "stream", "mix"))
        check_group.append((check_row, "before", OURS, "file", "check"))
    groups = [("mix/file", mix_group), ("mix/stream", stream_group), ("check/file", check_group)]
    for r in range(-1, reps):
        for name, group in groups:
            got: dict[str, list[str] | None] = {}
            for row, variant, lib, writer, workload in rotated(group, max(r, 0)):
                rate, cpu_rate, lines = run_throughput(
                    bench, lib=lib, writer=writer, workload=workload, n=n, variant=variant
                )
                got[writer if lib is None else variant] = lines
                if r >= 0:
                    row.add(variant, rate, cpu_rate)
            compare(bench, name, got, [spec[3] for spec in group if spec[2] is None])
        if r >= 0:
            print(f"  throughput repetition {r + 1}/{reps} done", flush=True)
    return [file_row, stream_row, raw_file, raw_os, raw_err, check_row]


def fmt(value: float | None, unit: str) -> str:
    """Format a median for the table."""
    if value is None:
        return "-"
    if unit == MS:
        return f"{value * 1000:.2f}"
    return f"{value:,.0f}"


def ratio(a: float | None, b: float | None) -> str:
    """``a / b`` formatted, or ``-``."""
    return f"{a / b:.3f}" if a is not None and b else "-"


def render(rows: list[tuple[str, Row]], cpu: bool = False) -> list[str]:
    """The table lines (wall-clock numbers, or CPU-time numbers with ``cpu``)."""
    head = (
        f"{'#':<3} {'row':<38} {'unit':<6} {'stock':>11} {'ours':>11} {'raw':>11} "
        f"{'ours/stock':>10} {'paired':>7} {'stock/raw':>9} {'ours/raw':>8} {'wins':>6}  raw reference"
    )
    lines = [head, "-" * len(head)]
    for num, row in rows:
        if cpu and not row.cpu:
            continue
        s, o, w = row.median("stock", cpu), row.median("ours", cpu), row.median("raw", cpu)
        paired = row.paired_ratio(cpu)
        won, total = row.wins(cpu)
        lines.append(
            f"{num:<3} {row.label:<38} {row.unit:<6} {fmt(s, row.unit):>11} {fmt(o, row.unit):>11} "
            f"{fmt(w, row.unit):>11} {ratio(o, s):>10} {(f'{paired:.3f}' if paired else '-'):>7} "
            f"{ratio(s, w):>9} {ratio(o, w):>8} {(f'{won}/{total}' if total else '-'):>6}  {row.raw_label or ''}"
        )
    return lines


def summarize(num: str, row: Row) -> dict[str, Any]:
    """One row of the JSON results."""
    out: dict[str, Any] = {
        "row": num,
        "key": row.key,
        "label": row.label.strip(),
        "unit": "seconds" if row.unit == MS else RATE,
        "median": {
            v: row.median(v) for v in ("stock", "ours", "raw", "before") if v != "before" or v in row.samples
        },
        "ours_over_stock": None,
        "paired_ours_over_stock": row.paired_ratio(),
        "ours_wins": list(row.wins()),
        "raw_reference": row.raw_label,
        "samples": row.samples,
    }
    s, o = out["median"]["stock"], out["median"]["ours"]
    if s and o is not None:
        out["ours_over_stock"] = o / s
    if row.cpu:
        out["cpu"] = {
            "median": {v: row.median(v, cpu=True) for v in ("stock", "ours", "raw")},
            "paired_ours_over_stock": row.paired_ratio(cpu=True),
            "ours_wins": list(row.wins(cpu=True)),
            "samples": row.cpu,
        }
    return out


def verdicts(rows: list[tuple[str, Row]]) -> list[tuple[str, str, str]]:
    """(PASS/FAIL, row number, explanation) for every row that has both stock and ours.

    PASS needs ours to meet the target both on the medians and on the median paired ratio (the
    paired ratio cancels drifts in machine load between repetitions; both must agree).
    """
    out: list[tuple[str, str, str]] = []
    for num, row in rows:
        s, o = row.median("stock"), row.median("ours")
        if s is None or o is None:
            if "stock" in row.samples or "ours" in row.samples:
                out.append(("FAIL", num, f"{row.label.strip()}: no valid samples"))
            continue
        paired = row.paired_ratio()
        ok_median = row.better(o, s)
        ok_paired = paired is not None and row.better(paired, 1.0)
        rel = ("<=" if ok_median else ">") if row.unit == MS else (">=" if ok_median else "<")
        won, total = row.wins()
        detail = (
            f"{row.label.strip()}: ours {fmt(o, row.unit)} {rel} stock {fmt(s, row.unit)} {row.unit} "
            f"(ours/stock {o / s:.3f}, paired {paired:.3f}, ours won {won}/{total} reps"
        )
        cpu_paired = row.paired_ratio(cpu=True)
        if cpu_paired is not None:
            cwon, ctotal = row.wins(cpu=True)
            detail += f"; CPU time: paired {cpu_paired:.3f}, won {cwon}/{ctotal}"
        out.append(("PASS" if ok_median and ok_paired else "FAIL", num, detail + ")"))
    return out


def paired(row: Row, a: str, b: str, cpu: bool = False) -> float | None:
    """Median over repetitions of ``a``/``b`` measured in the same round."""
    data = row.cpu if cpu else row.samples
    both = zip(data.get(a, []), data.get(b, []), strict=False)
    ratios = [x / y for x, y in both if x == x and y == y and y]
    return statistics.median(ratios) if ratios else None


def render_before(rows: list[tuple[str, Row]]) -> list[str]:
    """Before (the baseline checkout) and after (this checkout), each against stock in the same rounds."""
    head = (
        f"{'#':<3} {'row':<38} {'unit':<6} {'stock':>11} {'before':>11} {'ours':>11} "
        f"{'before/stock':>12} {'ours/stock':>10} {'ours/before':>11}  (paired medians)"
    )
    lines = [head, "-" * len(head)]
    for num, row in rows:
        if "before" not in row.samples:
            continue
        s, b, o = row.median("stock"), row.median("before"), row.median("ours")
        pb, po, pob = (
            paired(row, "before", "stock"),
            paired(row, "ours", "stock"),
            paired(row, "ours", "before"),
        )
        lines.append(
            f"{num:<3} {row.label:<38} {row.unit:<6} {fmt(s, row.unit):>11} {fmt(b, row.unit):>11} "
            f"{fmt(o, row.unit):>11} {(f'{pb:.3f}' if pb else '-'):>12} {(f'{po:.3f}' if po else '-'):>10} "
            f"{(f'{pob:.3f}' if pob else '-'):>11}"
        )
    return lines


def goals(cold_in_process: Row, file_row: Row, raw_os: Row) -> list[tuple[str, str]]:
    """The issue's goals: cold start (import + open + close, in-process) <= 0.7x stock; the file writer
    >= 0.5x the raw ``os.write`` rate (medians, wall clock; the paired / CPU figures are shown too)."""
    out: list[tuple[str, str]] = []
    s, o = cold_in_process.median("stock"), cold_in_process.median("ours")
    p = cold_in_process.paired_ratio()
    if s and o is not None and p is not None:
        ok = o / s <= 0.7 and p <= 0.7
        out.append(
            (
                "PASS" if ok else "FAIL",
                f"1c cold start in-process: ours/stock {o / s:.3f}, paired {p:.3f} (goal <= 0.7)",
            )
        )
    w, f = raw_os.median("raw"), file_row.median("ours")
    wc, fc = raw_os.median("raw", cpu=True), file_row.median("ours", cpu=True)
    if w and f is not None:
        cpu = f", CPU time {fc / wc:.3f}" if wc and fc is not None else ""
        out.append(
            (
                "PASS" if f / w >= 0.5 else "FAIL",
                f"2 file writer: ours/raw os.write {f / w:.3f}{cpu} (goal >= 0.5)",
            )
        )
    return out


def machine_info(python: str) -> dict[str, Any]:
    """Facts needed to cite the numbers."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {}
    for lib in (STOCK, OURS):
        try:
            from importlib.metadata import version

            versions[lib] = version(lib.replace("_", "-"))
        except Exception:  # noqa: BLE001 - informational only
            versions[lib] = "?"
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu,
        "python": sys.version.split()[0],
        "python_executable": python,
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "versions": versions,
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _load() -> str:
    """The 1/5/15-minute load averages, for judging how noisy the machine was."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def main(argv: Sequence[str] | None = None) -> int:
    """Run every row, print the table and verdicts, write the JSON results; always returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer messages and repetitions (smoke run)")
    parser.add_argument("--n", type=int, help="messages per throughput run (default 20000, quick 2000)")
    parser.add_argument("--reps", type=int, help="throughput repetitions (default 15, quick 3)")
    parser.add_argument("--cold-reps", type=int, help="cold-start repetitions (default 15, quick 5)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON results path")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. /work/main): its package runs as a 'before' variant in the same rounds",
    )
    args = parser.parse_args(argv)
    n = args.n or (2000 if args.quick else 20000)
    n += n % 2  # the mix sends messages in pairs
    reps = args.reps or (3 if args.quick else 15)
    cold_reps = args.cold_reps or (5 if args.quick else 15)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PIPES", "PYTHON"))}
    info = machine_info(sys.executable)
    print(
        f"{OURS} {info['versions'][OURS]} vs {STOCK} {info['versions'][STOCK]} | Python {info['python']} | "
        f"nproc {info['nproc']} | {info['cpu_model']} | load average {_load()}",
        flush=True,
    )
    print(
        f"N={n} messages per throughput run, {reps} reps; cold start {cold_reps} reps (+1 warm-up each)",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-core-") as tmp:
        workdir = Path(tmp)
        ctx_path = workdir / "context.json"
        ctx_path.write_text(json.dumps(CONTEXT_DATA), encoding="utf-8")
        bench = Bench(python=sys.executable, workdir=workdir, ctx_path=ctx_path, env=env)
        if args.baseline:  # a copy (the checkout is only read), first on sys.path for the `before` runs
            import shutil

            copy = workdir / "baseline"
            shutil.copytree(args.baseline / OURS, copy / OURS, ignore=shutil.ignore_patterns("__pycache__"))
            bench.baseline_env = {**env, "PYTHONPATH": str(copy)}
            print(f"before: {args.baseline / OURS} (copied), same rounds", flush=True)
        print("cold start...", flush=True)
        cold = bench_cold_start(bench, cold_reps)
        print("throughput...", flush=True)
        thr = bench_throughput(bench, reps, n)
    duration = time.perf_counter() - started

    file_row, stream_row, raw_file, raw_os, raw_err, check_row = thr
    numbered = [
        ("1", cold[0]),
        ("1a", cold[1]),
        ("1b", cold[2]),
        ("1c", cold[3]),
        ("2", file_row),
        ("3", stream_row),
        ("4a", raw_file),
        ("4b", raw_os),
        ("4c", raw_err),
        ("5", check_row),
    ]
    table = render(numbered)
    cpu_table = render(numbered, cpu=True)
    print("\nWall clock (medians over repetitions)")
    print("\n".join(table))
    print("\nCPU time of the send loop (process_time, all threads; insensitive to waiting for a busy CPU)")
    print("\n".join(cpu_table))
    legend = [
        "ms: median time, lower is better; msg/s: median messages per second, higher is better.",
        "ours/stock = ratio of medians; paired = median over reps of ours/stock within the same round;",
        "  < 1 is better for ms rows, > 1 for msg/s rows. wins = reps in which ours beat stock (paired).",
    ]
    extra: list[str] = []
    rf = raw_file.median("raw")
    if rf:
        for label, row in (("2 file writer", file_row), ("3 stream writer", stream_row)):
            s, o = row.median("stock"), row.median("ours")
            extra.append(
                f"{label} vs 4a (buffered f.write): stock/raw {ratio(s, rf)}, ours/raw {ratio(o, rf)}"
            )
    print("\n".join(legend + extra))
    if bench.notes:
        print("\nnotes:")
        print("\n".join(f"  - {t}" for t in bench.notes))
    else:
        print(
            "\nverification: every output had the expected line count and valid JSON; stock and ours wrote\n"
            "identical message lines in rows 2, 3 and 5; raw lines equal the libraries' message lines."
        )
    before_table = render_before(numbered)
    if len(before_table) > 2:
        print(f"\nBefore ({args.baseline}) and after (this checkout), same rounds")
        print("\n".join(before_table))
    print()
    results = verdicts(numbered)
    for status, num, text in results:
        print(f"{status}  {num:<3} {text}")
    goal_results = goals(cold[3], file_row, raw_os)
    print()
    for status, text in goal_results:
        print(f"GOAL {status}  {text}")

    payload: dict[str, Any] = {
        "benchmark": "bench_core",
        "machine": info,
        "config": {
            "n": n,
            "reps": reps,
            "cold_reps": cold_reps,
            "quick": args.quick,
            "context": CONTEXT_DATA,
        },
        "duration_seconds": round(duration, 1),
        "loadavg_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "rows": [summarize(num, row) for num, row in numbered],
        "extra": extra,
        "verdicts": [{"row": num, "status": status, "detail": text} for status, num, text in results],
        "goals": [{"status": status, "detail": text} for status, text in goal_results],
        "baseline": str(args.baseline) if args.baseline else None,
        "before_table": before_table if len(before_table) > 2 else None,
        "notes": bench.notes,
        "table": table,
        "cpu_table": cpu_table,
    }
    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults written to {args.output} ({duration:.0f} s; load average at end {_load()})")
    except OSError as e:
        print(f"\ncould not write {args.output}: {e}")
    return 0


def _safe_main(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # noqa: BLE001 - a report must not fail the caller
        print(f"benchmark aborted: {e!r}")
        return 0


if __name__ == "__main__":
    sys.exit(_safe_main(main))
