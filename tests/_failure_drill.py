"""Failure drills: one real Dagster run whose external process loses its storage after loading the context.

Shared by ``tests/test_failure_bounds.py`` and ``benchmarks/bench_failures.py``. A drill runs:

* a loopback workspace emulator (one per drill, so that concurrent drills do not share faults);
* the real orchestrator: ``dagster.materialize`` of an asset that opens ``open_pipes_session`` with the
  real ``dagster_databricks`` injector and reader (``PipesDbfs*`` or ``PipesUnityCatalogVolumes*``,
  ``interval=1``, stdio not forwarded so that message counts are exact);
* the external process ``tests/scripts/failure_ext.py``: a DEFAULT ``WorkspaceClient(host=, token=)``
  (the SDK's own retry policy, as on a cluster) with our DBFS or Volumes writer. It reports
  ``BEFORE`` custom messages, waits until they are delivered, then breaks storage (every write
  request from then on answers 503, never answers, or answers 403), reports ``AFTER`` more and one
  log, and ends its body; with ``ending="sigterm"`` it then sleeps and the drill sends SIGTERM.

The drill measures, on the wall clock, the time from the end of the body (or from SIGTERM) to the
moment the context had closed (``close_seconds``: the writer delivered everything or gave up) and to
the exit of the external process (``exit_seconds``: plus the interpreter's own shutdown, about 0.5 s
with databricks-sdk loaded), and records what reached Dagster and what the process said on stderr.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
SCRIPT = TESTS / "scripts" / "failure_ext.py"
VOLUME = "/Volumes/main/default/pipes"
FAULTS = ("503", "blackhole", "403")
KINDS = ("dbfs", "volumes")
ENDINGS = ("body", "sigterm")
BEFORE, AFTER = 20, 15
#: Messages written once storage broke: the AFTER custom messages, one log and `closed`.
LOST_AFTER_FAULT = AFTER + 2
#: The bounds under test (the writers' defaults).
FLUSH_TIMEOUT = 60.0
SIGTERM_BOUND = 30.0
#: A drill whose process outlives this is killed (and fails every bound).
HARD_LIMIT = 240.0
LOSS_LINE = re.compile(r"\[dagster-pipes\] (\d+) message\(s\) were not delivered to (.*?) \(every message .*")
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass(frozen=True)
class Drill:
    """One drill: which storage, which fault, how the job ends, whose library, which flush timeout."""

    kind: str  # dbfs | volumes
    fault: str  # 503 | blackhole | 403 | none
    ending: str  # body | sigterm
    impl: str = "ours"  # ours | stock (FUSE only: the caller maps /dbfs and /Volumes)
    flush_timeout: float | None = None  # None: the writer's default
    run: int = 0

    @property
    def name(self) -> str:
        """A unique, file-name-safe label."""
        ft = "" if self.flush_timeout is None else f"-ft{self.flush_timeout:g}"
        return f"{self.impl}-{self.kind}-{self.fault}-{self.ending}{ft}-{self.run}"


def external_env(impl: str) -> dict[str, str]:
    """The external process's environment (our library or the stock one, no FUSE unless mapped)."""
    from _helpers import external_env as helper_env

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_PIPES", "DATABRICKS_"))}
    env.update(helper_env(impl))
    if impl == "stock":  # the stock writers go through /dbfs and /Volumes themselves
        env.pop("DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT", None)
        env.pop("DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT", None)
    return env


def run_drill(drill: Drill, workdir: Path, ws: Any = None) -> dict[str, Any]:
    """Run one drill; ``ws`` is a shared emulator (only for drills that break nothing)."""
    from dagster_pipes_spark.testing import Emulator

    if ws is None:
        with Emulator(volumes=["main/default/pipes"]) as own:
            return _run(drill, workdir, own)
    return _run(drill, workdir, ws)


def _run(drill: Drill, workdir: Path, ws: Any) -> dict[str, Any]:
    import dagster as dg
    from dagster_databricks.pipes import (
        PipesDbfsContextInjector,
        PipesDbfsMessageReader,
        PipesUnityCatalogVolumesContextInjector,
        PipesUnityCatalogVolumesMessageReader,
    )

    out_dir = workdir / drill.name
    out_dir.mkdir(parents=True, exist_ok=True)
    client = ws.workspace_client()  # the orchestrator side: the suite's fast-retrying client
    if drill.kind == "dbfs":
        injector: Any = PipesDbfsContextInjector(client=client)
        reader: Any = PipesDbfsMessageReader(client=client, interval=1)
    else:
        injector = PipesUnityCatalogVolumesContextInjector(client=client, volume_path=VOLUME)
        reader = PipesUnityCatalogVolumesMessageReader(
            client=client, volume_path=VOLUME, interval=1, include_stdio_in_messages=False
        )
    result: dict[str, Any] = {"drill": asdict(drill), "name": drill.name}
    env = {**external_env(drill.impl), **ws.env()}
    args = [drill.kind, drill.impl, drill.fault, drill.ending, str(out_dir)]
    args.append("" if drill.flush_timeout is None else repr(drill.flush_timeout))

    @dg.asset(name="drill")
    def drill_asset(context):
        with dg.open_pipes_session(
            context=context, context_injector=injector, message_reader=reader
        ) as session:
            with open(out_dir / "stdout", "w") as so, open(out_dir / "stderr", "w") as se:
                proc = subprocess.Popen(
                    [sys.executable, str(SCRIPT), *args],
                    env={**env, **session.get_bootstrap_env_vars()},
                    stdout=so,
                    stderr=se,
                )
                try:
                    _drive(drill, proc, out_dir, result)
                finally:
                    ws.clear_faults()  # the orchestrator cleans up through the same workspace
        # read once the session has closed: its reader has then downloaded everything it will
        result["received"] = [m for m in session.get_custom_messages() if isinstance(m, dict)]
        result["received_closed"] = session.message_handler.received_closed_message
        results = list(session.get_results())
        yield from results or [dg.MaterializeResult()]

    with dg.DagsterInstance.ephemeral() as instance:
        run = dg.materialize([drill_asset], instance=instance, raise_on_error=False, run_config=QUIET)
        logs = [r.user_message for r in instance.all_logs(run.run_id) if not r.is_dagster_event]
    result["logs"] = logs
    result["success"] = run.success
    result["stderr"] = (out_dir / "stderr").read_text(errors="replace")
    result["loss"] = [(int(m.group(1)), m.group(2)) for m in LOSS_LINE.finditer(result["stderr"])]
    result["stats"] = ws.stats
    return result


def _drive(drill: Drill, proc: subprocess.Popen, out_dir: Path, result: dict[str, Any]) -> None:
    """Wait for the body to end (sending SIGTERM when asked to), then for the exit; record the times."""
    started = time.time()
    if drill.ending == "sigterm":
        while not (out_dir / "ready").exists() and proc.poll() is None and time.time() - started < HARD_LIMIT:
            time.sleep(0.02)
        result["signal_at"] = time.time()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=HARD_LIMIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        result["killed"] = True
    result["exit_at"] = time.time()
    result["returncode"] = proc.returncode
    for name in ("body_end", "closed_at"):  # written by the external process
        path = out_dir / name
        result[name] = float(path.read_text()) if path.exists() else None
    start = result.get("signal_at") if drill.ending == "sigterm" else result["body_end"]
    result["exit_seconds"] = None if start is None or result.get("killed") else result["exit_at"] - start
    closed = result["closed_at"]
    result["close_seconds"] = None if start is None or closed is None else closed - start


def run_drills(drills: Sequence[Drill], workdir: Path, ws: Any = None) -> list[dict[str, Any]]:
    """Run drills concurrently (one thread, one ``materialize`` each); results in the same order."""
    results: list[dict[str, Any]] = [{} for _ in drills]

    def one(i: int, drill: Drill) -> None:
        try:
            results[i] = run_drill(drill, workdir, ws)
        except Exception:  # noqa: BLE001 - a failed drill is reported, the others go on
            results[i] = {"drill": asdict(drill), "name": drill.name, "error": traceback.format_exc()}

    threads = [threading.Thread(target=one, args=(i, d), daemon=True) for i, d in enumerate(drills)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def phases(result: dict[str, Any]) -> dict[str, list[int]]:
    """Indices of the custom messages Dagster received, by phase (``before`` / ``after``)."""
    got: dict[str, list[int]] = {"before": [], "after": []}
    for m in result.get("received", []):
        got.setdefault(m.get("phase", "?"), []).append(m.get("i"))
    return got


# ------------------------------------------------------------------------------ fault-injection jobs

FAULT_SCRIPT = TESTS / "scripts" / "fault_ext.py"
#: Requests the external side makes to publish message chunks (DBFS put / streaming; Files upload).
WRITE_ENDPOINTS = ("POST /api/2.0/dbfs/", "PUT /api/2.0/fs/files")
#: The external side's context read (and only it: the reader never reads `context.json`).
CONTEXT_READ = {"endpoints": ["GET /api/2.0/dbfs/read", "GET /api/2.0/fs/files"], "paths": ["context.json"]}


@dataclass(frozen=True)
class FaultJob:
    """One real Dagster run whose external process (``tests/scripts/fault_ext.py``) works through
    injected faults: ``faults`` (the options of ``FaultConfig``) are switched on once the orchestrator
    has written the context, before the process starts, and cleared when it has exited."""

    name: str
    kind: str  # dbfs | volumes
    faults: dict[str, Any]
    messages: int = 60
    body_seconds: float = 3.0
    retry: dict[str, Any] | None = None
    flush_timeout: float | None = None
    print_lines: tuple[str, ...] = ()
    env: dict[str, str] | None = None  # extra environment of the external process
    token: str | None = None  # the workspace token (default: the emulator's)
    stdio: bool = False  # the reader asks for stdout/stderr in messages
    debug_logging: bool = False
    doctor: bool = False
    writer_options: dict[str, Any] | None = None  # more keyword arguments of the writer


def run_fault_job(job: FaultJob, workdir: Path) -> dict[str, Any]:
    """Run ``job`` against its own emulator; what reached Dagster, what the process did, and when."""
    import dagster as dg
    from dagster_databricks.pipes import (
        PipesDbfsContextInjector,
        PipesDbfsMessageReader,
        PipesUnityCatalogVolumesContextInjector,
        PipesUnityCatalogVolumesMessageReader,
    )

    from dagster_pipes_spark.testing import Emulator, FaultConfig

    out_dir = workdir / job.name
    out_dir.mkdir(parents=True, exist_ok=True)
    chunks: list[str] = []  # every chunk the real reader downloaded, as it returned it
    result: dict[str, Any] = {"name": job.name, "chunks": chunks}
    config = FaultConfig.from_json(job.faults)

    class DbfsReader(PipesDbfsMessageReader):
        def download_messages_chunk(self, index: int, params: Any) -> str | None:
            chunk = super().download_messages_chunk(index, params)
            if chunk:
                chunks.append(chunk)
            return chunk

    class VolumesReader(PipesUnityCatalogVolumesMessageReader):
        def download_messages_chunk(self, index: int, params: Any) -> str | None:
            chunk = super().download_messages_chunk(index, params)
            if chunk:
                chunks.append(chunk)
            return chunk

    with Emulator(volumes=["main/default/pipes"], record_requests=True, token=job.token) as ws:
        client = ws.workspace_client()  # the orchestrator side: the suite's fast-retrying client
        if job.kind == "dbfs":
            injector: Any = PipesDbfsContextInjector(client=client)
            reader: Any = DbfsReader(client=client, interval=0, include_stdio_in_messages=job.stdio)
        else:
            injector = PipesUnityCatalogVolumesContextInjector(client=client, volume_path=VOLUME)
            reader = VolumesReader(
                client=client, volume_path=VOLUME, interval=0, include_stdio_in_messages=job.stdio
            )
        spec = {
            "kind": job.kind,
            "out": str(out_dir),
            "messages": job.messages,
            "body_seconds": job.body_seconds,
            "retry": job.retry,
            "flush_timeout": job.flush_timeout,
            "print": list(job.print_lines),
            "debug_logging": job.debug_logging,
            "doctor": job.doctor,
            "writer_options": job.writer_options or {},
        }
        tmpdir = out_dir / "tmp"  # the external process's TMPDIR: nothing may be left in it
        tmpdir.mkdir(exist_ok=True)
        env = {**external_env("ours"), **ws.env(), "TMPDIR": str(tmpdir), **(job.env or {})}

        @dg.asset(name="fault_job")
        def fault_asset(context):
            with dg.open_pipes_session(
                context=context, context_injector=injector, message_reader=reader
            ) as session:
                ws.configure_faults(config)
                try:
                    with open(out_dir / "stdout", "w") as so, open(out_dir / "stderr", "w") as se:
                        proc = subprocess.Popen(
                            [sys.executable, str(FAULT_SCRIPT), json.dumps(spec)],
                            env={**env, **session.get_bootstrap_env_vars()},
                            stdout=so,
                            stderr=se,
                        )
                        try:
                            proc.wait(timeout=HARD_LIMIT)
                        except subprocess.TimeoutExpired:
                            proc.kill()
                            proc.wait()
                            result["killed"] = True
                        result["exit_at"] = time.time()
                        result["returncode"] = proc.returncode
                finally:
                    ws.clear_faults()  # the orchestrator cleans up through the same workspace
                # everything the emulator stores, before the orchestrator deletes its temporary files
                result["stored"] = {
                    str(p.relative_to(ws.root)): p.read_bytes() for p in ws.root.rglob("*") if p.is_file()
                }
            result["received"] = [m for m in session.get_custom_messages() if isinstance(m, dict)]
            result["received_closed"] = session.message_handler.received_closed_message
            results = list(session.get_results())
            result["materializations"] = [r for r in results if isinstance(r, dg.MaterializeResult)]
            yield from results or [dg.MaterializeResult()]

        with dg.DagsterInstance.ephemeral() as instance:
            run = dg.materialize([fault_asset], instance=instance, raise_on_error=False, run_config=QUIET)
            entries = instance.all_logs(run.run_id)
            result["logs"] = [r.user_message for r in entries if not r.is_dagster_event]
            result["event_log"] = [dg.serialize_value(r) for r in entries]
        result["success"] = run.success
        result["requests"] = ws.requests
    for name in ("started", "loaded", "body_end", "closed_at"):  # written by the external process
        path = out_dir / name
        result[name] = float(path.read_text()) if path.exists() else None
    result["tmp_leftovers"] = sorted(str(p.relative_to(out_dir)) for p in (out_dir / "tmp").rglob("*"))
    channel = out_dir / "channel.json"
    result["channel"] = json.loads(channel.read_text()) if channel.exists() else None
    result["stdout"] = (out_dir / "stdout").read_text(errors="replace")
    result["stderr"] = (out_dir / "stderr").read_text(errors="replace")
    result["loss"] = [(int(m.group(1)), m.group(2)) for m in LOSS_LINE.finditer(result["stderr"])]
    body_end, closed = result["body_end"], result["closed_at"]
    result["close_seconds"] = None if body_end is None or closed is None else closed - body_end
    started, loaded = result["started"], result["loaded"]
    result["load_seconds"] = None if started is None or loaded is None else loaded - started
    return result


def run_fault_jobs(
    jobs: Sequence[FaultJob], workdir: Path, concurrency: int = 8
) -> dict[str, dict[str, Any]]:
    """Run jobs on threads, at most ``concurrency`` at once; results by job name."""
    results: dict[str, dict[str, Any]] = {}
    gate = threading.Semaphore(concurrency)

    def one(job: FaultJob) -> None:
        with gate:
            try:
                results[job.name] = run_fault_job(job, workdir)
            except Exception:  # noqa: BLE001 - a failed job is reported, the others go on
                results[job.name] = {"name": job.name, "error": traceback.format_exc()}

    threads = [threading.Thread(target=one, args=(job,), daemon=True) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
