"""pytest plugin (registered as a ``pytest11`` entry point): Databricks emulator fixtures.

Fixtures:

* ``databricks_emulator`` — a running :class:`~dagster_pipes_spark.testing.Emulator` with fresh
  state per test, stored under the test's ``tmp_path``. Configure it with the marker
  ``@pytest.mark.databricks_emulator(volumes=["main/default/pipes"], ...)`` (keyword arguments
  of ``Emulator``). Runtime profiles for the whole suite go in the ini option
  ``databricks_emulator_runtimes``, one ``RUNTIME = PYTHON`` per line (``$VARS`` expanded, e.g.
  ``15.4 = ${DAGSTER_PIPES_SPARK_RUNTIME_SPARK35}``); a marker's ``runtimes=`` replaces them.
* ``databricks_workspace_client`` — a real ``databricks.sdk.WorkspaceClient`` bound to it.
* ``fake_dbutils`` — a :class:`~dagster_pipes_spark.testing.FakeDbutils` bound to it.

Unserved endpoints: every test, whatever created its emulators (this fixture or its own
``Emulator(...)``), fails at teardown when an emulator of this process was asked for an endpoint it
does not serve: the client under test took a path the emulator cannot vouch for. A test that does
so on purpose asserts on ``Emulator.unserved_requests`` and calls ``clear_unserved_requests()``;
the ini option ``databricks_emulator_fail_on_unserved = false`` turns the check off.

A test's failure never ends the session: the report of a test is built with the cyclic garbage
collector paused (on CPython 3.11 a finalizer that formats a traceback while pytest parses source for
a report corrupts that parse: ``SystemError: AST constructor recursion depth mismatch``), and if
building it still raises, the test is reported failed with that error instead of the session ending
with an internal error (under xdist: the worker's session ending mid-test, ``assert not crashitem``).
A ``SIGTERM`` handler a test leaves behind that turns the signal into an exception (Dagster's
in-process executor maps ``SIGTERM`` to ``KeyboardInterrupt`` on the main thread and leaves it so; a
Pipes guard of a context nobody closed) is reset after the test to the one the session started with,
so a ``SIGTERM`` later ends only the process it was meant for.

With the ini option ``dagster_pipes_spark_reap_children = true`` the session, when it finishes,
ends every process it started that is still running (``SIGTERM``, then ``SIGKILL``; Linux), in each
xdist worker and in a run without xdist.

This module imports nothing heavy (no ``databricks.sdk``, no ``pyspark``) at import time.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ._unserved import acknowledge_unserved, pending_unserved

if TYPE_CHECKING:
    from ._emulator import Emulator
    from .dbutils import FakeDbutils

_MARKER = "databricks_emulator"
_FAIL_ON_UNSERVED = "databricks_emulator_fail_on_unserved"
_RUNTIMES = "databricks_emulator_runtimes"
_REAP_CHILDREN = "dagster_pipes_spark_reap_children"
_RUNNING_DIR = "dagster_pipes_spark_running_dir"
_DURATIONS = "dagster_pipes_spark_durations"
_running_dir_key = pytest.StashKey[str]()
#: The SIGTERM handler when the session started (main thread), restored after a test that left an
#: exception-raising one behind.
_session_sigterm: Any = None


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the ``databricks_emulator_fail_on_unserved`` ini option."""
    parser.addini(
        _FAIL_ON_UNSERVED,
        "fail a test during which a Databricks emulator was asked for an endpoint it does not serve",
        type="bool",
        default=True,
    )
    parser.addini(
        _RUNTIMES,
        "runtime profiles of the databricks_emulator fixture: one 'RUNTIME = PYTHON' per line "
        "(RUNTIME: a spark_version prefix such as 15.4, serverless or serverless:N; $VARS expanded)",
        type="linelist",
        default=[],
    )
    parser.addini(
        _REAP_CHILDREN,
        "when the session finishes, end every process it started that still runs (Linux)",
        type="bool",
        default=False,
    )
    parser.addini(
        _DURATIONS,
        "JSON file of seconds per test file (relative to the rootdir): files run longest first, so "
        "with `--dist loadfile` the short ones fill the end of the run (files not listed go first)",
        default="",
    )
    parser.addoption(
        "--store-durations",
        action="store_true",
        default=False,
        help=f"write the seconds each test file took to the {_DURATIONS} file",
    )


def ini_runtimes(config: pytest.Config) -> dict[str, str]:
    """The ``databricks_emulator_runtimes`` ini option as ``{runtime: python}``."""
    runtimes: dict[str, str] = {}
    for line in config.getini(_RUNTIMES):
        key, sep, python = (part.strip() for part in str(line).partition("="))
        if not sep or not key or not python:
            raise pytest.UsageError(f"{_RUNTIMES}: expected 'RUNTIME = PYTHON', got {line!r}")
        runtimes[key] = os.path.expandvars(python)
    return runtimes


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``databricks_emulator`` marker (and, in an xdist worker, the crashed-test guard)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(**kwargs): keyword arguments for the databricks_emulator fixture's Emulator "
        "(e.g. volumes=['main/default/pipes'], auto_create_volumes=True, record_requests=True).",
    )
    running = getattr(config, "workerinput", {}).get(_RUNNING_DIR)
    if running:
        config.pluginmanager.register(_CrashedTests(Path(running)), "dagster_pipes_spark_crashed_tests")
    durations = _durations_path(config)
    if durations is not None:
        if hasattr(config.option, "loadscopereorder"):
            config.option.loadscopereorder = False  # xdist keeps the (longest-first) collection order
        if config.getoption("store_durations") and not hasattr(config, "workerinput"):
            config.pluginmanager.register(_DurationRecorder(durations), "dagster_pipes_spark_durations")


# --- longest test files first ---------------------------------------------------------------------


def _durations_path(config: pytest.Config) -> Path | None:
    value = str(config.getini(_DURATIONS) or "")
    return Path(config.rootpath, value) if value else None


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """With ``dagster_pipes_spark_durations``: order the test files longest first (the tests of a file
    keep their order), so ``--dist loadfile`` hands the last workers short files, not a long one."""
    path = _durations_path(config)
    if path is None:
        return
    import json

    try:
        seconds: dict[str, float] = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    unknown = max(seconds.values(), default=0.0) + 1.0  # a new file may be long: early, not last
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-seconds.get(_file_of(item.nodeid), unknown), position[id(item)]))


class _DurationRecorder:
    """``--store-durations``: the seconds each test file took (setup, call, teardown), written at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        file = _file_of(report.nodeid)
        self.seconds[file] = self.seconds.get(file, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        import json

        ordered = dict(sorted(((k, round(v, 1)) for k, v in self.seconds.items()), key=lambda kv: -kv[1]))
        self.path.write_text(json.dumps(ordered, indent=1) + "\n")


@pytest.fixture(autouse=True)
def _databricks_emulator_serves_every_request(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test at teardown if an emulator was asked for an endpoint it does not serve."""
    yield
    unserved = pending_unserved()
    if unserved and request.config.getini(_FAIL_ON_UNSERVED):
        acknowledge_unserved()  # reported once, here: the next test starts clean
        listed = "\n  ".join(unserved)
        pytest.fail(
            f"the Databricks emulator was asked for {len(unserved)} request(s) to endpoints it does not "
            f"serve (404 ENDPOINT_NOT_FOUND):\n  {listed}\nServe them in dagster_pipes_spark.testing, or, "
            "for a test that sends them on purpose, assert on Emulator.unserved_requests and call "
            "clear_unserved_requests().",
            pytrace=False,
        )


@pytest.fixture
def databricks_emulator(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Emulator]:
    """A running workspace emulator with fresh state, rooted at ``tmp_path / "databricks"``."""
    from ._emulator import Emulator

    options: dict[str, Any] = {}
    runtimes = ini_runtimes(request.config)
    if runtimes:
        options["runtimes"] = runtimes
    for marker in reversed(list(request.node.iter_markers(_MARKER))):
        options.update(marker.kwargs)
    options.setdefault("root", tmp_path / "databricks")
    with Emulator(**options) as emulator:
        yield emulator


@pytest.fixture
def databricks_workspace_client(databricks_emulator: Emulator) -> Any:
    """A real ``databricks.sdk.WorkspaceClient`` talking to ``databricks_emulator``."""
    return databricks_emulator.workspace_client()


@pytest.fixture
def fake_dbutils(databricks_emulator: Emulator) -> FakeDbutils:
    """A :class:`FakeDbutils` talking to ``databricks_emulator`` (quiet: no ``Wrote N bytes.``)."""
    from .dbutils import FakeDbutils

    return FakeDbutils(host=databricks_emulator.url, token=databricks_emulator.token, verbose=False)


# --- a test's failure, or a signal it leaves behind, never ends the session ----------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Build the report with the garbage collector paused; if building it raises, report that."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return (yield)
    except Exception as exc:  # noqa: BLE001 - the session must go on: the test fails with the error
        return _fallback_report(item, call, exc)
    finally:
        if paused:
            gc.enable()


def _fallback_report(item: pytest.Item, call: pytest.CallInfo[None], error: Exception) -> pytest.TestReport:
    """A failed report whose text needs no source parsing (what pytest's own formatting could not do)."""
    import traceback

    lines = [f"pytest could not build the report of this {call.when} phase: {error!r}"]
    if call.excinfo is not None:
        lines.append("The phase raised:")
        lines += traceback.format_exception_only(call.excinfo.type, call.excinfo.value)
        lines += [f"  at {entry.path}:{entry.lineno + 1}" for entry in call.excinfo.traceback[-8:]]
    return pytest.TestReport(
        nodeid=item.nodeid,
        location=item.location,
        keywords=dict.fromkeys(item.keywords, 1),
        outcome="failed",
        longrepr="\n".join(line.rstrip("\n") for line in lines),
        when="setup" if call.when == "collect" else call.when,  # never "collect" here: a test phase
        sections=[],
        duration=call.duration,
        start=call.start,
        stop=call.stop,
        user_properties=list(item.user_properties),
    )


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember the session's SIGTERM handler (main thread only: handlers live there)."""
    global _session_sigterm
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        _session_sigterm = signal.getsignal(signal.SIGTERM)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    """After each test, reset a SIGTERM handler it left behind that raises instead of ending."""
    try:
        return (yield)
    finally:
        reset_leftover_sigterm_handler()


def reset_leftover_sigterm_handler() -> bool:
    """Restore the session's SIGTERM handler if the current one raises an exception in the main thread
    (``signal.default_int_handler``, as Dagster's in-process executor leaves it; a Pipes guard whose
    context was never closed). Returns whether it did."""
    if _session_sigterm is None or threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _session_sigterm:
        return False
    leftover = current is signal.default_int_handler
    if not leftover and getattr(current, "__module__", None) == "dagster_pipes_spark._lifecycle":
        from .. import _lifecycle

        leftover = _lifecycle._active is None or _lifecycle._active.is_closed
    if leftover:
        signal.signal(signal.SIGTERM, _session_sigterm)
    return leftover


# --- a test that crashes its xdist worker is reported once, never run again ----------------------
#
# xdist reports the test a worker died in as failed ("worker crashed while running") and puts the rest
# of its work back in the queue; with --dist loadfile / loadscope that includes the crashed test itself,
# which then crashes the next worker, and the next, until xdist runs out of restarts and the run hangs.
# Each worker marks the test it runs in a directory of the run; a marked test whose marker outlived
# its process is not run again.


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: one directory per run for the workers' running-test markers."""
    config: pytest.Config = node.config
    if _running_dir_key not in config.stash:
        import tempfile

        config.stash[_running_dir_key] = tempfile.mkdtemp(prefix="pytest-running-tests-")
    node.workerinput[_RUNNING_DIR] = config.stash[_running_dir_key]


def pytest_unconfigure(config: pytest.Config) -> None:
    """xdist controller: remove the markers' directory."""
    path = config.stash.get(_running_dir_key, None)
    if path:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist controller, ``--dist loadfile`` / ``loadscope``: the scheduler, minus a race of xdist's in
    it: when a node finishes collecting, work is offered to every node, including a replacement of a
    crashed worker still collecting (``KeyError: <WorkerController gwN>``, an internal error ending the
    run). A node is offered work once it has collected. Other modes: xdist's own scheduler."""
    dist = config.getvalue("dist")
    if dist not in ("loadfile", "loadscope"):
        return None
    from xdist.scheduler import LoadFileScheduling, LoadScopeScheduling

    base = LoadFileScheduling if dist == "loadfile" else LoadScopeScheduling

    class Scheduling(base):  # type: ignore[valid-type,misc]
        def _reschedule(self, node: Any) -> None:
            if node in self.registered_collections:
                super()._reschedule(node)

    return Scheduling(config, log)


class _CrashedTests:
    """xdist worker: skips (no report: xdist reported the crash) a test whose process crashed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _marker(self, item: pytest.Item) -> Path:
        import hashlib

        return self.directory / hashlib.sha1(item.nodeid.encode()).hexdigest()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        marker = self._marker(item)
        try:
            crashed_in = int(marker.read_text() or 0)
        except (OSError, ValueError):
            crashed_in = 0
        if crashed_in and crashed_in != os.getpid():
            return True  # it ended the process that ran it: not again
        marker.write_text(str(os.getpid()))
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        import hashlib

        (self.directory / hashlib.sha1(nodeid.encode()).hexdigest()).unlink(missing_ok=True)


# --- processes a session leaves running -----------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """With ``dagster_pipes_spark_reap_children``: end the processes this session left running (after
    every fixture was torn down). The xdist controller leaves it to its workers."""
    config = session.config
    if not config.getini(_REAP_CHILDREN) or config.pluginmanager.has_plugin("dsession"):
        return
    left = reap_children()
    if left:
        sys.stderr.write(f"\n[dagster-pipes-spark] ended {len(left)} process(es) the session left running\n")


def descendant_pids(root: int | None = None) -> list[int]:
    """The live descendants of ``root`` (this process by default), from ``/proc``; [] elsewhere."""
    root = os.getpid() if root is None else root
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        if len(fields) > 1 and fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reap_children(grace: float = 5.0) -> list[int]:
    """``SIGTERM`` every live descendant of this process, ``SIGKILL`` those still there after
    ``grace`` seconds; returns the pids found (zombies, already ended, are not counted)."""
    pids = descendant_pids()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while set(pids) & set(descendant_pids()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        else:
            break
    return pids
