"""Helpers that run external scripts through the real Dagster orchestrator and read back results."""

import json
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

TESTS = Path(__file__).parent
#: Hermetic tests: never pick up real /dbfs or /Volumes mounts of the machine running them.
NO_FUSE = {
    "DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT": "/nonexistent/dbfs-fuse",
    "DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT": "/nonexistent/volumes-fuse",
}
SHIM = TESTS / "shim"
REPO = TESTS.parent


#: Run by :func:`die_with_parent` before the command: the kernel sends it SIGKILL when the thread
#: that started it ends (Linux ``prctl(PR_SET_PDEATHSIG)``; kept across ``exec``, so the command
#: itself, e.g. a JVM exec'd by spark-submit, carries it), and it exits at once if that parent is
#: already gone.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n"
)


def die_with_parent(command: Sequence[str]) -> list[str]:
    """``command`` made to die (SIGKILL) with the process starting it, however that one ends: a test
    process that crashes or is killed leaves no server or JVM behind. Linux only (elsewhere unchanged).

    The parent is the *thread* that starts the process (the kernel's rule): start it from a thread that
    outlives it (the main thread; a thread that waits for it), never from a short-lived one.
    """
    if not sys.platform.startswith("linux"):
        return list(command)
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *command]


def external_env(
    impl: str = "ours", extra: Mapping[str, str] | None = None, first: str | None = None
) -> dict[str, str]:
    """Env for the external process: with impl='ours', `import dagster_pipes` is our library."""
    env = {**NO_FUSE, **(extra or {})}
    paths = [str(REPO)] if first is None else [first, str(REPO)]
    if impl == "ours":
        paths.insert(0, str(SHIM))
    env["PYTHONPATH"] = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def write_script(tmp: Path, body: str, name: str = "ext.py") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(body))
    return path


@dataclass
class RunResult:
    success: bool
    materializations: dict[str, Any] = field(default_factory=dict)  # asset key string -> AssetMaterialization
    checks: list[Any] = field(default_factory=list)  # AssetCheckEvaluation
    custom_messages: list[Any] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level name, message) user logs
    engine_events: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None
    messages_file: list[dict[str, Any]] | None = None
    stdout: str = ""


def run_pipes(
    script: Path | Sequence[str],
    *,
    assets: Sequence[str | Sequence[str]] = ("asset_a",),
    check_specs: Sequence[tuple[str, str]] = (),
    extras: Mapping[str, Any] | None = None,
    impl: str = "ours",
    env: Mapping[str, str] | None = None,
    context_injector: Any = None,
    message_reader: Any = None,
    client_factory: Callable[[], Any] | None = None,
    keep_messages: bool = False,
    partitions_def: Any = None,
    partition_key: str | None = None,
    cwd_pythonpath: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> RunResult:
    """Materialize ``assets`` with one PipesSubprocessClient run of ``script``; collect what Dagster recorded."""
    custom: list[Any] = []
    msgs_path: str | None = None
    reader = message_reader
    if keep_messages and reader is None:
        msgs_path = tempfile.mktemp(prefix="pipes-msgs-")
        reader = dg.PipesFileMessageReader(msgs_path, cleanup_file=False)
    # the external process (and the JVMs it starts, which end with it) never outlives this process
    command = die_with_parent([sys.executable, str(script)] if isinstance(script, Path) else script)
    specs = [dg.AssetSpec(a, partitions_def=partitions_def) for a in assets]
    checks = [dg.AssetCheckSpec(name, asset=asset) for asset, name in check_specs]

    @dg.multi_asset(specs=specs, check_specs=checks, name="pipes_step")
    def _step(context):
        client = (
            client_factory()
            if client_factory
            else dg.PipesSubprocessClient(context_injector=context_injector, message_reader=reader)
        )
        inv = client.run(
            command=command,
            context=context,
            extras=dict(extras or {}),
            env=external_env(impl, env, cwd_pythonpath),
        )
        custom.extend(inv.get_custom_messages())
        yield from inv.get_results()

    # Disposed here, in the thread that created it: its in-memory SQLite connections must not be left
    # to the garbage collector, which may finalize them on another thread (the tests run Dagster on
    # thread pools), where SQLAlchemy logs a ProgrammingError traceback from inside the collection;
    # on CPython 3.11 that nested ``ast.parse`` (traceback carets) can corrupt an ``ast.parse`` the
    # interrupted thread was running, e.g. pytest formatting a failure (``SystemError: AST
    # constructor recursion depth mismatch``), which ended an xdist worker's session mid-test.
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [_step], raise_on_error=False, partition_key=partition_key, instance=instance, tags=tags
        )
        out = RunResult(success=result.success, custom_messages=custom)
        for ev in result.all_events:
            if ev.event_type_value == "ASSET_MATERIALIZATION":
                mat = ev.event_specific_data.materialization  # type: ignore[union-attr]
                out.materializations[mat.asset_key.to_user_string()] = mat
            elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
                out.checks.append(ev.event_specific_data)
            elif ev.event_type_value == "STEP_FAILURE":
                out.failure = str(ev.event_specific_data.error)  # type: ignore[union-attr]
        out.logs, out.warnings, out.engine_events = _instance_logs(instance, result.run_id)
    if msgs_path:
        with open(msgs_path) as f:
            out.messages_file = [json.loads(line) for line in f if line.strip()]
        os.unlink(msgs_path)
    return out


def _instance_logs(instance: Any, run_id: str) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    import logging

    logs: list[tuple[str, str]] = []
    warns: list[str] = []
    engine: list[str] = []
    for rec in instance.all_logs(run_id):
        if rec.is_dagster_event:
            ev = rec.dagster_event
            if ev.event_type_value == "ENGINE_EVENT":
                err = getattr(ev.event_specific_data, "error", None)
                engine.append((ev.message or "") + (f"\n{err.to_string()}" if err is not None else ""))
            continue
        name = logging.getLevelName(rec.level)
        logs.append((name, rec.user_message))
        if rec.level >= logging.WARNING and "[pipes]" in rec.user_message:
            warns.append(rec.user_message)
    return logs, warns, engine
