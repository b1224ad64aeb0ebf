"""Side-by-side Databricks transport benchmark: ``dagster_pipes_spark`` (ours) vs the stock ``dagster_pipes``.

Run with the project venv, as root (it maps the ``/dbfs`` and ``/Volumes`` FUSE mounts, see below)::

    .venv/bin/python benchmarks/bench_databricks.py [--quick]

Methodology
-----------
* **Orchestrator side (real):** every run is a real ``dagster.materialize`` of one asset that opens
  ``dagster.open_pipes_session`` with the REAL ``dagster_databricks.pipes`` injector and reader
  (``PipesDbfsContextInjector`` + ``PipesDbfsMessageReader``, or ``PipesUnityCatalogVolumesContextInjector``
  + ``PipesUnityCatalogVolumesMessageReader`` with ``include_stdio_in_messages=False`` so that neither
  writer starts tee capture). The reader talks HTTP, through the real databricks-sdk, to the loopback
  workspace emulator (``dagster_pipes_spark.testing.Emulator``). The only change to the reader is a
  subclass whose ``download_messages_chunk`` calls the original and then timestamps
  (``time.time()``) every ``report_custom_message`` line of the downloaded chunk: the stock loop hands
  exactly those lines to the message handler right after the call returns, so this is the arrival time
  at the orchestrator. Received counts come from the real handler (``session.get_custom_messages()``,
  ``message_handler.received_closed_message``) and the run's event log ("did not receive closed message",
  framework exceptions).
* **External side:** a subprocess (``sys.executable <temp script>``, env =
  ``session.get_bootstrap_env_vars()`` + ``ws.env()``) that imports either ``dagster_pipes`` (stock:
  ``PipesDbfsContextLoader`` / ``PipesDbfsMessageWriter`` or the UC Volumes pair; the stock DBFS writer is
  subclassed only to return ``{}`` from ``get_opened_extras``, which otherwise demands an active Databricks
  SparkSession) or ``dagster_pipes_spark`` (ours, same class names) with an explicit ``FuseFileStore``
  ("fuse" rows) or ``SdkDbfsFileStore`` / ``SdkVolumesFileStore`` over ``WorkspaceClient()`` ("sdk" rows).
* **FUSE mapping:** the stock writers only write through FUSE (``/dbfs/<path>``, ``/Volumes/...``), so for
  the duration of the benchmark ``/dbfs`` and ``/Volumes`` are symlinks to the emulator's ``dbfs_root`` and
  ``volumes_root`` (refused if either path already exists; removed in a ``finally``). Both libraries'
  FUSE writers go through these same symlinks, so the comparison is like for like.
* **Counting storage calls (row 1):** a ``sitecustomize`` module injected through ``PYTHONPATH`` into the
  external process only (no library file is touched) wraps ``builtins.open``/``io.open``, ``os.replace``,
  ``os.rename``, ``os.mkdir`` and ``os.remove``/``os.unlink`` for paths under ``/dbfs/`` and ``/Volumes/``,
  and, for sdk rows, ``requests.adapters.HTTPAdapter.send`` (every HTTP request the writer process makes,
  retries included). "Chunk writes" = write-mode ``open`` calls (one per chunk file: the stock writer's
  ``open(...,"w")``, our temp file); "FUSE ops" adds renames, mkdirs and deletes (each is one more FUSE
  operation through the mount). For sdk rows "writes" = non-GET/HEAD requests. The writer-side HTTP counts
  are cross-checked against the emulator's own ``ws.stats`` (``POST /api/2.0/dbfs/put`` and
  ``PUT /api/2.0/fs/files`` minus the one context upload per session done by the orchestrator's injector).
  The chunk files left in the message directory are listed by the external process after its ``with``
  block (before the orchestrator deletes the directory).
* **Rows.** (1) 10,000 messages, ~150 B each on the wire (1 ``log.info`` per 10 messages, the rest
  ``report_custom_message``), **paced evenly over 30 s** (15 s with ``--quick``), writer ``interval`` = reader
  ``interval`` = 10 (the defaults) and = 1 (full run only); every message and ``closed`` must arrive. Only one
  ``log`` in 10: each becomes a Dagster event (~1 ms of orchestrator CPU), and the stock reader stops ~10 s after
  the session closes, so a CPU-starved orchestrator drops the tail whatever the writer; for the same reason at
  most three interval-10 runs share the machine.
  (2) Latency: the external process sends ``report_custom_message({"seq", "t": time.time()})`` every
  U(0.5, 1.0) s for 60 s (25 s with ``--quick``); latency = arrival - t; reader at its default ``interval=10``
  and at ``interval=1``, writer ``interval`` equal to the reader's. The stock writer uploads with the same period
  as the reader polls, so a run keeps the phase offset it starts with and its latency depends mostly on that
  offset: every configuration runs 3 times (2 with ``--quick``) with the external process started at offsets
  spread over one reader period, and the samples are pooled. Target: p99 within ``reader interval + 1 s``; the
  fraction of messages within that bound is reported too. Extra sub-row: "sparse" traffic (one message every
  U(3.5, 5) s, reader and writer ``interval=1``), where ours uploads each message as soon as it is sent. (3) Drain: both writers with ``interval=0.001`` (the
  stock one then uploads a chunk on every 1 s tick; ours keeps its floor of one chunk per ``interval + 2 s``),
  reader ``interval=1``, 10 custom messages/s, for runs of 10-80 s (10 and 30 s with ``--quick``); "drained" =
  ``closed`` received and every message received.
* Runs of a row execute **concurrently**, one thread (one ``materialize``) each, so stock and ours see the same
  machine load; rows run one after the other (rows 2 and 3 together with ``--quick``; row 1 in three batches).
  The script always exits 0: it is a report, not a test. Results (every run's raw data) go to
  ``benchmarks/results/databricks.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_PATH = HERE / "results" / "databricks.json"
VOLUME = "/Volumes/main/default/pipes"
MOUNTS = ("/dbfs", "/Volumes")
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
WATCHED_LOGS = (
    "did not receive closed message",
    "did not receive any messages",
    "framework exception",
    "unexpected message received after closed",
    "is not readable",
)

# ----------------------------------------------------------------------------------- external side

SITECUSTOMIZE = r'''
"""Benchmark storage-call counter (injected via PYTHONPATH into the external process only)."""
import atexit, builtins, io, json, os, threading

_ROOTS = ("/dbfs/", "/Volumes/")
_LOCK = threading.Lock()
_C = {"open_write": 0, "open_read": 0, "rename": 0, "mkdir": 0, "unlink": 0, "write_bytes": 0, "http": {}}


def _under(p):
    if isinstance(p, int):
        return False
    try:
        return os.fsdecode(p).startswith(_ROOTS)
    except TypeError:
        return False


def _bump(key, n=1):
    with _LOCK:
        _C[key] += n


_orig_open = builtins.open


class _CountingFile:
    def __init__(self, f):
        self._f = f

    def write(self, data):
        _bump("write_bytes", len(data))
        return self._f.write(data)

    def __enter__(self):
        self._f.__enter__()
        return self

    def __exit__(self, *a):
        return self._f.__exit__(*a)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)


def _open(file, mode="r", *args, **kwargs):
    f = _orig_open(file, mode, *args, **kwargs)
    if _under(file):
        if any(c in mode for c in "wax+"):
            _bump("open_write")
            return _CountingFile(f)
        _bump("open_read")
    return f


builtins.open = _open
io.open = _open


def _wrap(name, key):
    orig = getattr(os, name)

    def wrapper(src, *args, **kwargs):
        if _under(src):
            _bump(key)
        return orig(src, *args, **kwargs)

    setattr(os, name, wrapper)


_wrap("replace", "rename")
_wrap("rename", "rename")
_wrap("mkdir", "mkdir")
_wrap("remove", "unlink")
_wrap("unlink", "unlink")

if os.environ.get("BENCH_COUNT_HTTP"):
    from urllib.parse import urlsplit

    import requests.adapters

    _send = requests.adapters.HTTPAdapter.send

    def _counting_send(self, request, *args, **kwargs):
        path = urlsplit(request.url).path
        for prefix in ("/api/2.0/fs/files", "/api/2.0/fs/directories"):
            if path.startswith(prefix):
                path = prefix
        key = f"{request.method} {path}"
        with _LOCK:
            _C["http"][key] = _C["http"].get(key, 0) + 1
        return _send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = _counting_send


def _dump():
    target = os.environ.get("BENCH_COUNTS_FILE")
    if target:
        with _LOCK, _orig_open(target, "w") as f:
            json.dump(_C, f)


atexit.register(_dump)
'''

EXTERNAL = r"""
import json, os, random, re, sys, time

spec = json.loads(os.environ["BENCH_SPEC"])
kind, lib_name, backend = spec["kind"], spec["lib"], spec["backend"]

if lib_name == "stock":
    import dagster_pipes as lib

    if kind == "dbfs":
        class Writer(lib.PipesDbfsMessageWriter):
            def get_opened_extras(self):
                return {}  # the stock writer otherwise requires an active Databricks SparkSession

        loader = lib.PipesDbfsContextLoader()
    else:
        Writer = lib.PipesUnityCatalogVolumesMessageWriter
        loader = lib.PipesUnityCatalogVolumesContextLoader()
    writer = Writer(interval=spec["writer_interval"])
else:
    import dagster_pipes_spark as lib

    if backend == "fuse":
        store = lib.FuseFileStore(kind)
    else:
        from databricks.sdk import WorkspaceClient

        client = WorkspaceClient()
        store = lib.SdkDbfsFileStore(client) if kind == "dbfs" else lib.SdkVolumesFileStore(client)
    if kind == "dbfs":
        loader, writer = lib.PipesDbfsContextLoader(store=store), lib.PipesDbfsMessageWriter
    else:
        loader, writer = lib.PipesUnityCatalogVolumesContextLoader(store=store), lib.PipesUnityCatalogVolumesMessageWriter
    writer = writer(interval=spec["writer_interval"], store=store)

mode, duration = spec["mode"], spec["duration"]
sent_custom = sent_log = 0
rng = random.Random(spec.get("seed", 0))
summary = {}
with lib.open_dagster_pipes(context_loader=loader, message_writer=writer) as pipes:
    t0 = summary["opened_at"] = time.time()
    if mode == "count":
        n = spec["n"]
        for i in range(n):
            delay = t0 + duration * i / n - time.time()
            if delay > 0:
                time.sleep(delay)
            if i % 10 == 0:
                pipes.log.info(f"log message {i:05d} " + "l" * 50)
                sent_log += 1
            else:
                pipes.report_custom_message({"i": i, "pad": "c" * 34})
                sent_custom += 1
    elif mode == "latency":
        while time.time() - t0 < duration:
            pipes.report_custom_message({"seq": sent_custom, "t": time.time()})
            sent_custom += 1
            time.sleep(rng.uniform(spec["gap_min"], spec["gap_max"]))
    elif mode == "drain":
        k = 0
        while True:
            target = t0 + k / spec["rate"]
            if target - t0 >= duration:
                break
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)
            pipes.report_custom_message({"seq": sent_custom, "t": time.time()})
            sent_custom += 1
            k += 1
    summary["send_seconds"] = time.time() - t0
    pipes.report_asset_materialization(metadata={"sent_custom": sent_custom})
    channel = getattr(pipes, "_message_channel", None)
summary["closed_at"] = time.time()
for attr in ("uploaded_chunks", "upload_calls"):
    summary["ours_" + attr] = getattr(channel, attr, None)

def _count_lines(path):  # os.open, not open(): the storage-call counter must not see the benchmark's own reads
    fd = os.open(path, os.O_RDONLY)
    try:
        data = b""
        while block := os.read(fd, 1 << 20):
            data += block
    finally:
        os.close(fd)
    return data.count(b"\n") + 1 if data else 0


msg_path = lib.decode_param(os.environ["DAGSTER_PIPES_MESSAGES"])["path"]
local = os.path.join("/dbfs", msg_path.lstrip("/")) if kind == "dbfs" else msg_path
names = os.listdir(local)
chunks = sorted(int(m.group(1)) for m in (re.fullmatch(r"(\d+)\.json", x) for x in names) if m)
summary.update(
    sent_custom=sent_custom,
    sent_log=sent_log,
    chunk_files=len(chunks),
    max_chunk_index=max(chunks, default=0),
    contiguous=chunks == list(range(1, len(chunks) + 1)),
    chunk_bytes=sum(os.path.getsize(os.path.join(local, f"{i}.json")) for i in chunks),
    messages_per_chunk=[_count_lines(os.path.join(local, f"{i}.json")) for i in chunks],
    other_files=sorted(x for x in names if not re.fullmatch(r"\d+\.json", x)),
)
print("BENCH_SUMMARY " + json.dumps(summary), flush=True)
"""


# ----------------------------------------------------------------------------------- orchestrator side


@dataclass(frozen=True)
class Spec:
    row: str
    lib: str  # stock | ours
    backend: str  # fuse | sdk
    kind: str  # dbfs | volumes
    mode: str  # count | latency | drain
    reader_interval: float
    writer_interval: float
    duration: float
    n: int = 0
    rate: float = 0.0
    seed: int = 0
    start_offset: float = 0.0  # seconds between session open and external process start (reader/writer phase)
    gap_min: float = 0.5  # latency mode: seconds between two messages, uniform in [gap_min, gap_max]
    gap_max: float = 1.0

    @property
    def traffic(self) -> str:
        return "steady" if self.gap_max <= 1.0 else f"sparse {self.gap_min:g}-{self.gap_max:g}s"

    @property
    def writer(self) -> str:
        return f"{self.lib}-{self.backend}"

    @property
    def name(self) -> str:
        ri = str(self.reader_interval).replace(".", "_")
        off = str(round(self.start_offset, 2)).replace(".", "_")
        gap = str(self.gap_max).replace(".", "_")
        return f"{self.row}_{self.lib}_{self.backend}_{self.kind}_r{ri}_d{int(self.duration)}_o{off}_g{gap}"


def _timed_reader(base: type) -> type:
    class TimedReader(base):
        """The real reader; ``download_messages_chunk`` additionally timestamps custom messages."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.arrivals: list[tuple[int, float, float]] = []  # (seq, sent, arrived)
            self.polls: list[tuple[float, int, bool]] = []  # (time, index, non-empty)

        def download_messages_chunk(self, index: int, params: Any) -> str | None:
            chunk = super().download_messages_chunk(index, params)
            now = time.time()
            self.polls.append((now, index, bool(chunk)))
            for line in (chunk or "").split("\n"):
                try:
                    msg = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(msg, dict) and msg.get("method") == "report_custom_message":
                    payload = (msg.get("params") or {}).get("payload")
                    if isinstance(payload, dict) and "t" in payload:
                        self.arrivals.append((int(payload["seq"]), float(payload["t"]), now))
            return chunk

    TimedReader.__name__ = base.__name__
    return TimedReader


class Bench:
    def __init__(self, ws: Any, workdir: Path) -> None:
        from dagster_databricks.pipes import PipesDbfsMessageReader, PipesUnityCatalogVolumesMessageReader

        self.ws = ws
        self.workdir = workdir
        self.readers = {
            "dbfs": _timed_reader(PipesDbfsMessageReader),
            "volumes": _timed_reader(PipesUnityCatalogVolumesMessageReader),
        }
        self.script = workdir / "external.py"
        self.sitedir = workdir / "site"
        if not self.script.exists():
            self.script.write_text(EXTERNAL)
            self.sitedir.mkdir()
            (self.sitedir / "sitecustomize.py").write_text(SITECUSTOMIZE)

    def run_one(self, spec: Spec) -> dict[str, Any]:
        import dagster as dg
        from dagster_databricks.pipes import PipesDbfsContextInjector, PipesUnityCatalogVolumesContextInjector

        client = self.ws.workspace_client()
        if spec.kind == "dbfs":
            injector: Any = PipesDbfsContextInjector(client=client)
            reader = self.readers["dbfs"](client=client, interval=spec.reader_interval)
        else:
            injector = PipesUnityCatalogVolumesContextInjector(client=client, volume_path=VOLUME)
            reader = self.readers["volumes"](
                client=client,
                volume_path=VOLUME,
                interval=spec.reader_interval,
                include_stdio_in_messages=False,
            )
        counts_file = self.workdir / f"{spec.name}.counts.json"
        out: dict[str, Any] = {"spec": asdict(spec)}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PIPES", "DATABRICKS_"))}
        base_env.update(self.ws.env())
        base_env["PYTHONPATH"] = os.pathsep.join([str(self.sitedir), str(REPO)])
        base_env["BENCH_SPEC"] = json.dumps(asdict(spec))
        base_env["BENCH_COUNTS_FILE"] = str(counts_file)
        if spec.backend == "sdk":
            base_env["BENCH_COUNT_HTTP"] = "1"

        @dg.asset(name=spec.name)
        def bench_asset(context):
            with dg.open_pipes_session(
                context=context, context_injector=injector, message_reader=reader
            ) as session:
                out["session_opened_at"] = time.time()
                time.sleep(spec.start_offset)
                proc = subprocess.run(
                    [sys.executable, str(self.script)],
                    env={**base_env, **session.get_bootstrap_env_vars()},
                    capture_output=True,
                    text=True,
                    timeout=spec.duration + 180,
                    check=False,
                )
                out["external_exited_at"] = time.time()
            out["session_closed_at"] = time.time()
            out["returncode"] = proc.returncode
            out["stderr_tail"] = proc.stderr[-1500:]
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_SUMMARY ")]
            out["external"] = json.loads(lines[-1].split(" ", 1)[1]) if lines else {}
            out["received_custom"] = len(session.get_custom_messages())
            out["received_closed"] = session.message_handler.received_closed_message
            out["received_opened"] = session.message_handler.received_opened_message
            yield from session.get_results()

        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize([bench_asset], instance=instance, raise_on_error=False, run_config=QUIET)
            records = instance.all_logs(result.run_id)
        out["success"] = result.success
        out["received_log"] = sum(
            1 for r in records if not r.is_dagster_event and r.user_message.startswith("log message ")
        )
        out["warnings"] = sorted(
            {
                r.user_message.split("\n")[0][:200]
                for r in records
                if any(w in r.user_message for w in WATCHED_LOGS)
            }
        )
        mats = result.get_asset_materialization_events()
        out["materialization_reported"] = bool(mats) and "sent_custom" in mats[0].materialization.metadata
        out["counts"] = json.loads(counts_file.read_text()) if counts_file.exists() else {}
        out["arrivals"] = reader.arrivals
        polls = [p[0] for p in reader.polls]
        t_open = out.get("session_opened_at", 0.0)
        out["reader_poll_timeline"] = [(round(t - t_open, 2), i, ok) for t, i, ok in reader.polls]
        out["reader_polls"] = len(polls)
        out["reader_nonempty_polls"] = sum(1 for p in reader.polls if p[2])
        gaps = [
            b - a for a, b in itertools.pairwise(polls) if b <= out.get("external_exited_at", float("inf"))
        ]
        out["reader_median_poll_gap"] = statistics.median(gaps) if gaps else None
        return out

    def run_batch(self, specs: Sequence[Spec], label: str) -> list[dict[str, Any]]:
        """Run ``specs`` concurrently, one thread (one ``materialize``) each."""
        results: list[dict[str, Any] | None] = [None] * len(specs)

        def work(i: int, spec: Spec) -> None:
            try:
                results[i] = self.run_one(spec)
            except Exception:  # noqa: BLE001 - a failed run is reported, not fatal
                results[i] = {"spec": asdict(spec), "error": traceback.format_exc()}

        started = time.monotonic()
        print(
            f"[{label}] {len(specs)} concurrent runs (~{max(s.duration for s in specs):.0f} s of sending each) ...",
            flush=True,
        )
        threads = [threading.Thread(target=work, args=(i, s), daemon=True) for i, s in enumerate(specs)]
        for t in threads:
            t.start()
            time.sleep(0.2)  # stagger process starts a little
        for t in threads:
            t.join()
        print(f"[{label}] done in {time.monotonic() - started:.0f} s", flush=True)
        out = [r if r is not None else {"error": "no result"} for r in results]
        for r in out:
            if "error" in r:
                spec: Any = r.get("spec") or {}
                print(f"  run {spec.get('row')} failed:\n{r['error']}", flush=True)
        return out


# ----------------------------------------------------------------------------------- mounts


@contextlib.contextmanager
def fuse_mounts(ws: Any) -> Iterator[None]:
    """Map ``/dbfs`` and ``/Volumes`` onto the emulator's storage for the duration of the block."""
    targets = {"/dbfs": str(ws.dbfs_root), "/Volumes": str(ws.volumes_root)}
    for mount in MOUNTS:
        if os.path.lexists(mount):
            raise SystemExit(
                f"refusing to run: {mount} already exists ({os.path.realpath(mount)}); remove it first"
            )
    created: list[str] = []
    try:
        for mount, target in targets.items():
            Path(target).mkdir(parents=True, exist_ok=True)
            os.symlink(target, mount)
            created.append(mount)
        yield
    finally:
        for mount in created:
            if os.path.islink(mount) and os.readlink(mount) == targets[mount]:
                os.unlink(mount)


# ----------------------------------------------------------------------------------- rows


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _fmt(v: Any, spec: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    return format(v, spec)


def _ratio(ours: float | None, stock: float | None) -> str:
    if ours is None or stock is None:
        return "-"
    if stock == 0:
        return "-" if ours == 0 else "inf"
    return f"{ours / stock:.2f}x"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in cells
    ]
    return "\n".join(out)


def _delivered(r: dict[str, Any]) -> bool:
    ext = r.get("external", {})
    return bool(
        r.get("received_closed")
        and ext
        and r.get("received_custom") == ext.get("sent_custom")
        and r.get("received_log", 0) == ext.get("sent_log", 0)
        and r.get("materialization_reported")
    )


def row1_specs(quick: bool) -> list[Spec]:
    duration = 15.0 if quick else 30.0
    intervals = (10.0,) if quick else (10.0, 1.0)
    return [
        Spec("row1", lib, backend, kind, "count", iv, iv, duration, n=10_000)
        for iv in intervals
        for lib, backend in (("stock", "fuse"), ("ours", "fuse"), ("ours", "sdk"))
        for kind in ("dbfs", "volumes")
    ]


def row1(bench: Bench, quick: bool) -> dict[str, Any]:
    specs = row1_specs(quick)
    bench.ws.reset_stats()
    results = []
    # The real orchestrator needs ~0.15 ms of CPU per message (~1 ms per `log`, which becomes a Dagster event), and
    # the stock reader gives up ~10 s after the session closes: a CPU-starved orchestrator loses the tail whatever
    # the writer. So with interval=10 (chunks of thousands of messages) only the three writers of one kind run
    # side by side, and the mix is 1 `log` per 10 messages.
    for iv in sorted({s.writer_interval for s in specs}, reverse=True):
        kinds: Sequence[tuple[str, ...]] = (("dbfs",), ("volumes",)) if iv >= 5 else (("dbfs", "volumes"),)
        for group in kinds:
            batch = [s for s in specs if s.writer_interval == iv and s.kind in group]
            label = f"row 1: storage calls per 10,000 messages, interval={iv:g}, {'+'.join(group)}"
            results += bench.run_batch(batch, label)
    stats = bench.ws.stats
    rows = []
    table = []
    for r in results:
        if "error" in r:
            continue
        s = Spec(**r["spec"])
        c, ext = r["counts"], r["external"]
        http = c.get("http", {})
        http_writes = sum(v for k, v in http.items() if not k.startswith(("GET ", "HEAD ")))
        fuse_ops = c.get("open_write", 0) + c.get("rename", 0) + c.get("mkdir", 0) + c.get("unlink", 0)
        calls = c.get("open_write", 0) if s.backend == "fuse" else http_writes
        item = {
            "kind": s.kind,
            "interval": s.writer_interval,
            "writer": s.writer,
            "storage_calls": calls,
            "chunk_files": ext.get("chunk_files"),
            "fuse_write_opens": c.get("open_write", 0),
            "fuse_ops_total": fuse_ops,
            "fuse_renames": c.get("rename", 0),
            "fuse_mkdirs": c.get("mkdir", 0),
            "http_writes": http_writes,
            "http_total": sum(http.values()),
            "http": http,
            "bytes_written": ext.get("chunk_bytes"),
            "avg_message_bytes": round(ext["chunk_bytes"] / 10_000, 1) if ext.get("chunk_bytes") else None,
            "send_seconds": ext.get("send_seconds"),
            "messages_per_chunk": ext.get("messages_per_chunk"),
            "sent_messages": ext.get("sent_custom", 0) + ext.get("sent_log", 0),
            "received_messages": r.get("received_custom", 0) + r.get("received_log", 0),
            "closed_received": r.get("received_closed"),
            "all_delivered": _delivered(r),
            "warnings": r.get("warnings"),
        }
        rows.append(item)
    by = {(x["kind"], x["interval"], x["writer"]): x for x in rows}
    for kind in ("dbfs", "volumes"):
        for iv in sorted({s.writer_interval for s in specs}, reverse=True):
            stock = by.get((kind, iv, "stock-fuse"))
            for w in ("stock-fuse", "ours-fuse", "ours-sdk"):
                x = by.get((kind, iv, w))
                if not x:
                    continue
                is_stock = w == "stock-fuse"
                x["ratio_vs_stock"] = (
                    None
                    if is_stock or not stock
                    else (x["storage_calls"] / stock["storage_calls"] if stock["storage_calls"] else None)
                )
                x["meets_target"] = (
                    None if is_stock or not stock else x["storage_calls"] <= stock["storage_calls"]
                )
                table.append(
                    [
                        kind,
                        f"{iv:g}",
                        w,
                        x["storage_calls"],
                        x["fuse_ops_total"] if w.endswith("fuse") else f"{x['http_total']} http",
                        x["chunk_files"],
                        (x["messages_per_chunk"] or ["-"])[0],
                        "-" if is_stock or not stock else _ratio(x["storage_calls"], stock["storage_calls"]),
                        "-" if x["meets_target"] is None else ("PASS" if x["meets_target"] else "FAIL"),
                        f"{x['received_messages']}/{x['sent_messages']}",
                        _fmt(x["closed_received"]),
                    ]
                )
    # Cross-check the writer-side HTTP counter against the emulator's server-side counts.
    n_dbfs = sum(1 for s in specs if s.kind == "dbfs")
    n_vol = sum(1 for s in specs if s.kind == "volumes")
    ours_put = sum(
        x["http"].get("POST /api/2.0/dbfs/put", 0)
        for x in rows
        if x["writer"] == "ours-sdk" and x["kind"] == "dbfs"
    )
    ours_upl = sum(
        x["http"].get("PUT /api/2.0/fs/files", 0)
        for x in rows
        if x["writer"] == "ours-sdk" and x["kind"] == "volumes"
    )
    cross = {
        "emulator POST /api/2.0/dbfs/put": stats.get("POST /api/2.0/dbfs/put", 0),
        "expected (writer-side sdk puts + 1 context put per dbfs session)": ours_put + n_dbfs,
        "emulator PUT /api/2.0/fs/files": stats.get("PUT /api/2.0/fs/files", 0),
        "expected (writer-side sdk uploads + 1 context upload per volumes session)": ours_upl + n_vol,
    }
    cross["ok"] = (
        cross["emulator POST /api/2.0/dbfs/put"] == ours_put + n_dbfs
        and cross["emulator PUT /api/2.0/fs/files"] == ours_upl + n_vol
    )
    text = _table(
        [
            "kind",
            "interval",
            "writer",
            "storage calls",
            "all ops",
            "chunks",
            "msgs in chunk 1",
            "vs stock",
            "target",
            "received/sent",
            "closed",
        ],
        table,
    )
    return {
        "rows": rows,
        "table": text,
        "emulator_stats": stats,
        "cross_check": cross,
        "runs": _strip(results),
    }


def row2_specs(quick: bool) -> list[Spec]:
    duration = 25.0 if quick else 60.0
    phases = 2 if quick else 3
    # The stock writer's period equals the reader's (interval + 1 s), so a run keeps the phase offset between the
    # two clocks that it starts with, and its latency depends mostly on that offset. Each configuration therefore
    # runs `phases` times, with the external process started at offsets spread over one reader period; the
    # latencies of its runs are pooled.
    steady = [
        Spec(
            "row2",
            lib,
            backend,
            kind,
            "latency",
            iv,
            iv,
            duration,
            seed=7 + k,
            start_offset=round(k * (iv + 1.0) / phases, 2),
        )
        for iv in (10.0, 1.0)
        for kind in ("dbfs", "volumes")
        for lib, backend in (("stock", "fuse"), ("ours", "fuse"), ("ours", "sdk"))
        for k in range(phases)
    ]
    # Extra: sparse traffic (a message every 3.5-5 s, longer than our writer's upload period at interval=1).
    sparse = [
        Spec(
            "row2",
            lib,
            "fuse",
            kind,
            "latency",
            1.0,
            1.0,
            duration,
            seed=17 + k,
            start_offset=round(k * 2.0 / phases, 2),
            gap_min=3.5,
            gap_max=5.0,
        )
        for kind in ("dbfs", "volumes")
        for lib in ("stock", "ours")
        for k in range(phases)
    ]
    return steady + sparse


def row2(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[tuple[str, str, float, str], list[dict[str, Any]]] = {}
    for r in results:
        if "error" in r:
            continue
        s = Spec(**r["spec"])
        groups.setdefault((s.traffic, s.kind, s.reader_interval, s.writer), []).append(r)
    rows, table = [], []
    for (traffic, kind, iv, writer), runs in groups.items():
        lat = [arr - sent for r in runs for _, sent, arr in r["arrivals"]]
        bound = iv + 1.0
        gaps = [r["reader_median_poll_gap"] for r in runs if r.get("reader_median_poll_gap")]
        rows.append(
            {
                "traffic": traffic,
                "kind": kind,
                "reader_interval": iv,
                "writer": writer,
                "runs": len(runs),
                "start_offsets": [r["spec"]["start_offset"] for r in runs],
                "samples": len(lat),
                "sent": sum(r["external"].get("sent_custom", 0) for r in runs),
                "received": sum(r.get("received_custom", 0) for r in runs),
                "p50": _pct(lat, 0.5),
                "p99": _pct(lat, 0.99),
                "max": max(lat) if lat else None,
                "mean": statistics.fmean(lat) if lat else None,
                "bound": bound,
                "within_bound": sum(1 for x in lat if x <= bound) / len(lat) if lat else None,
                "p50_per_run": [_pct([a - t for _, t, a in r["arrivals"]], 0.5) for r in runs],
                "chunks_per_run": [r["external"].get("chunk_files") for r in runs],
                "reader_median_poll_gap": statistics.median(gaps) if gaps else None,
                "closed": all(r.get("received_closed") for r in runs),
                "warnings": sorted({w for r in runs for w in r.get("warnings", [])}),
                "latencies": [round(x, 3) for x in lat],
            }
        )
    by = {(x["traffic"], x["kind"], x["reader_interval"], x["writer"]): x for x in rows}
    for traffic, iv in sorted(
        {(x["traffic"], x["reader_interval"]) for x in rows}, key=lambda t: (t[0] != "steady", -t[1])
    ):
        for kind in ("dbfs", "volumes"):
            stock = by.get((traffic, kind, iv, "stock-fuse"))
            for w in ("stock-fuse", "ours-fuse", "ours-sdk"):
                x = by.get((traffic, kind, iv, w))
                if not x:
                    continue
                is_stock = w == "stock-fuse"
                x["meets_target"] = x["p99"] is not None and x["p99"] <= x["bound"]
                chunks = [c for c in x["chunks_per_run"] if c is not None]
                table.append(
                    [
                        traffic,
                        f"{iv:g}",
                        kind,
                        w,
                        f"{x['received']}/{x['sent']}",
                        _fmt(x["p50"], ".2f"),
                        _fmt(x["p99"], ".2f"),
                        _fmt(x["max"], ".2f"),
                        "-" if is_stock or not stock else _ratio(x["p50"], stock["p50"]),
                        "-" if is_stock or not stock else _ratio(x["p99"], stock["p99"]),
                        f"{x['within_bound'] * 100:.0f}% (<={x['bound']:g}s)"
                        if x["within_bound"] is not None
                        else "-",
                        "PASS" if x["meets_target"] else "FAIL",
                        f"{statistics.fmean(chunks):.1f}" if chunks else "-",
                        _fmt(x["reader_median_poll_gap"], ".2f"),
                        _fmt(x["closed"]),
                    ]
                )
    text = _table(
        [
            "traffic",
            "reader iv",
            "kind",
            "writer",
            "recv/sent",
            "p50 s",
            "p99 s",
            "max s",
            "p50 vs stock",
            "p99 vs stock",
            "within iv+1s",
            "p99 target",
            "chunks/run",
            "poll gap s",
            "closed",
        ],
        table,
    )
    return {"rows": rows, "table": text, "runs": _strip(results)}


def row3_specs(quick: bool) -> list[Spec]:
    lengths = (10.0, 30.0) if quick else (10.0, 20.0, 30.0, 40.0, 80.0)
    return [
        Spec("row3", lib, "fuse", kind, "drain", 1.0, 0.001, d, rate=10.0)
        for d in lengths
        for kind in ("dbfs", "volumes")
        for lib in ("stock", "ours")
    ]


def row3(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    rows, table = [], []
    for r in results:
        if "error" in r:
            continue
        s = Spec(**r["spec"])
        ext = r["external"]
        rows.append(
            {
                "kind": s.kind,
                "length_s": s.duration,
                "writer": s.writer,
                "chunks_written": ext.get("chunk_files"),
                "chunks_read": r.get("reader_nonempty_polls"),
                "sent": ext.get("sent_custom"),
                "received": r.get("received_custom"),
                "closed": r.get("received_closed"),
                "materialization_reported": r.get("materialization_reported"),
                "drained": _delivered(r),
                "warnings": r.get("warnings"),
                "drain_seconds_after_exit": None,
            }
        )
    rows.sort(key=lambda x: (x["kind"], x["length_s"], x["writer"] != "stock-fuse"))
    for x in rows:
        table.append(
            [
                x["kind"],
                f"{x['length_s']:g}",
                x["writer"],
                x["chunks_written"],
                x["chunks_read"],
                f"{x['received']}/{x['sent']}",
                _fmt(x["closed"]),
                "yes" if x["drained"] else "NO (lost)",
            ]
        )
    summary = {}
    for kind in ("dbfs", "volumes"):
        for w in ("stock-fuse", "ours-fuse"):
            ok = [x for x in rows if x["kind"] == kind and x["writer"] == w and x["drained"]]
            bad = [x for x in rows if x["kind"] == kind and x["writer"] == w and not x["drained"]]
            summary[f"{kind}/{w}"] = {
                "longest_drained_chunks": max((x["chunks_written"] or 0 for x in ok), default=0),
                "longest_drained_length_s": max((x["length_s"] for x in ok), default=0),
                "first_loss_chunks": min((x["chunks_written"] or 0 for x in bad), default=None),
                "loss_at_any_length": bool(bad),
            }
    text = _table(
        ["kind", "run s", "writer", "chunks written", "chunks read", "recv/sent", "closed", "drained"], table
    )
    lines = [text, ""]
    for key, v in summary.items():
        lines.append(
            f"  {key:<20} longest drained run: {v['longest_drained_chunks']} chunks ({v['longest_drained_length_s']:g} s); "
            + (
                f"first loss at {v['first_loss_chunks']} chunks"
                if v["loss_at_any_length"]
                else "no loss at any length"
            )
        )
    return {"rows": rows, "summary": summary, "table": "\n".join(lines), "runs": _strip(results)}


def _strip(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Raw per-run data for the JSON file, without the bulky per-message arrays."""
    out = []
    for r in results:
        r = dict(r)
        r.pop("arrivals", None)
        out.append(r)
    return out


# ----------------------------------------------------------------------------------- main

NOTE = """\
Methodology: real dagster.materialize + open_pipes_session with the real dagster-databricks DBFS / UC Volumes
injector and reader (HTTP via databricks-sdk to the loopback workspace emulator, which applies the DBFS read default
of 0.5 MB); the external side is a subprocess importing stock dagster_pipes or dagster_pipes_spark. /dbfs and
/Volumes are symlinked onto the emulator's storage so the stock FUSE-only writers and our FuseFileStore write through
the same paths; "sdk" rows are ours over the REST APIs. Storage calls are counted inside the external process by an
injected sitecustomize: "storage calls" = write-mode opens (one per chunk file) for FUSE rows, non-GET/HEAD HTTP
requests for sdk rows (cross-checked against the emulator's own counters); "all ops" adds FUSE renames/mkdirs/deletes
(or all HTTP requests). Row 1 paces 10,000 messages (1 log : 9 custom, ~150 B) evenly over {row1_s:g} s. Row 2 sends
one message every U(0.5,1.0) s for {row2_s:g} s; latency = arrival (timestamped by a subclass of the real reader right
after download_messages_chunk returns) - send time (time.time() in the payload), pooled over {phases} runs per
configuration started at different phase offsets to the reader's poll clock ("sparse": one message every
U(3.5,5) s instead). Row 3 sends 10 msg/s with writer
interval 0.001 and reader interval 1. Runs of a row execute concurrently (stock and ours under the same load); the
UC reader uses include_stdio_in_messages=False so neither writer starts stdout/stderr capture."""


def machine_info() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            name: version(name)
            for name in (
                "dagster",
                "dagster-databricks",
                "dagster-pipes",
                "databricks-sdk",
                "dagster-pipes-spark",
            )
        },
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (~2 min instead of ~6)")
    parser.add_argument(
        "--rows", default="1,2,3", help="comma-separated subset of rows to run (default: 1,2,3)"
    )
    args = parser.parse_args(argv)
    wanted = {int(x) for x in args.rows.split(",") if x.strip()}
    if os.geteuid() != 0:
        print(
            "this benchmark must run as root: it symlinks /dbfs and /Volumes onto the emulator",
            file=sys.stderr,
        )
        return 2

    import logging
    import warnings

    logging.getLogger("dagster_pipes_spark").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    from dagster_pipes_spark.testing import Emulator

    started = time.monotonic()
    results: dict[str, Any] = {
        "benchmark": "bench_databricks",
        "machine": machine_info(),
        "config": {"quick": args.quick, "rows": sorted(wanted), "volume": VOLUME},
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-databricks-") as tmp,
        Emulator(volumes=["main/default/pipes"]) as ws,
    ):
        with fuse_mounts(ws):
            bench = Bench(ws, Path(tmp))
            # Rows 2 and 3 are light (a few messages per second per run): their runs are threads of this process;
            # with --quick they share one batch, otherwise each row is its own batch.
            light = [
                (n, specs)
                for n, specs in ((2, row2_specs(args.quick)), (3, row3_specs(args.quick)))
                if n in wanted
            ]
            batches = ([light] if args.quick else [[x] for x in light]) if light else []
            done: list[dict[str, Any]] = []
            for batch in batches:
                label = (
                    " + ".join(f"row {n}" for n, _ in batch)
                    + ": "
                    + ", ".join("latency" if n == 2 else "drain" for n, _ in batch)
                )
                done += bench.run_batch([s for _, specs in batch for s in specs], label)
            if 2 in wanted:
                results["row2_latency"] = row2([r for r in done if r.get("spec", {}).get("row") == "row2"])
            if 3 in wanted:
                results["row3_drain"] = row3([r for r in done if r.get("spec", {}).get("row") == "row3"])
            if 1 in wanted:
                results["row1_storage_calls"] = row1(bench, args.quick)
    results["wall_seconds"] = round(time.monotonic() - started, 1)

    print()
    print(
        NOTE.format(
            row1_s=15 if args.quick else 30, row2_s=25 if args.quick else 60, phases=2 if args.quick else 3
        )
    )
    titles = {
        "row1_storage_calls": "1. Storage calls per 10,000 messages (writer side; lower is better; target: ours <= stock)",
        "row2_latency": "2. Report-to-orchestrator latency, stock reader (target: p99 <= reader interval + 1 s)",
        "row3_drain": "3. Longest run (in chunks) the stock reader drains (reader interval=1, writer interval=0.001)",
    }
    for key, title in titles.items():
        if key in results:
            print()
            print(title)
            print(results[key]["table"])
            if key == "row1_storage_calls":
                cc = results[key]["cross_check"]
                print(
                    f"  sdk cross-check against the emulator's request counters: {'OK' if cc['ok'] else 'MISMATCH'} {cc}"
                )
    print(f"\nwall time: {results['wall_seconds']:.0f} s")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"results: {RESULTS_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
