"""The suite itself: a test that hangs, crashes its process, is sent SIGTERM, or whose failure is
reported while garbage is being finalized fails alone (the run goes on and ends with its summary), and
no server, JVM or job a test starts outlives the run, however it ends.

Issue 15, item 7: ``bash .ci/dev test`` ended with ``INTERNALERROR`` (exit 3, no summary) when the
xdist worker running the Spark partition tests ended its session mid-test. Dagster runs on a thread
pool left their in-memory SQLite connections to the garbage collector; finalized on the main thread,
SQLAlchemy logged a ``ProgrammingError`` traceback, and on CPython 3.11 the ``ast.parse`` of those
traceback carets, nested in the ``ast.parse`` pytest was running to report a failure (the runs
fixture's timeout), made pytest's raise ``SystemError: AST constructor recursion depth mismatch``
outside any test: the worker's session ended with an internal error.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _helpers import TESTS, die_with_parent, write_script

LINUX = sys.platform.startswith("linux")

INNER_TESTS = {
    "test_hang.py": """
        import time
        import pytest

        @pytest.mark.timeout(2)
        def test_hangs():
            time.sleep(60)

        def test_after_the_hang():
            pass
    """,
    "test_crash.py": """
        import os, signal

        def test_kills_its_process():
            os.kill(os.getpid(), signal.SIGKILL)

        def test_after_the_crash():
            pass
    """,
    "test_sigterm.py": """
        import os, signal, time

        def test_leaves_sigterm_raising():  # what Dagster's in-process executor leaves on the main thread
            signal.signal(signal.SIGTERM, signal.default_int_handler)

        def test_terminated():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
    """,
    "test_gc.py": """
        import ast, gc

        class Finalized:
            '''Cyclic garbage whose finalizer parses source (as formatting a traceback does on 3.11)
            and leaves the same garbage behind again.'''

            def __init__(self):
                self.me = self

            def __del__(self):
                ast.parse("x = (1 + 2) * 3")
                Finalized()

        def test_failure_reported_while_garbage_is_finalized():
            gc.set_threshold(1)
            Finalized()
            assert 1 + 1 == 3
    """,
    "test_leak.py": """
        import os, subprocess
        from pathlib import Path

        def test_leaves_a_process_running():
            proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
            Path(os.environ["LEAKED_PID_FILE"]).write_text(str(proc.pid))
    """,
    "test_ok.py": """
        import pytest

        @pytest.mark.parametrize("i", range(3))
        def test_ok(i):
            pass
    """,
}


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has ended: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not LINUX, reason="signals, /proc")
@pytest.mark.timeout(600)  # the inner run replaces crashed workers, slow on a busy machine
def test_a_hang_a_crash_a_sigterm_or_a_failure_report_fails_only_its_test(tmp_path: Path) -> None:
    """An inner xdist run (two workers, files in groups, as ``.ci/dev test``): every misbehaving
    test fails, the others pass, the run ends with its summary and exit status 1 (not 3, not 2, no
    hang), and the process a test left running is ended with the session."""
    for name, body in INNER_TESTS.items():
        (tmp_path / name).write_text(textwrap.dedent(body))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntimeout = 60\n")
    leaked = tmp_path / "leaked.pid"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}  # not this run's worker
    try:
        proc = subprocess.run(
            [
                *(
                    sys.executable,
                    "-m",
                    "pytest",
                    "-v",
                    "-n",
                    "2",
                    "--dist",
                    "loadfile",
                    "-p",
                    "no:cacheprovider",
                ),
                *("-o", "dagster_pipes_spark_reap_children=true", "-rf", "--max-worker-restart=6"),
            ],
            cwd=tmp_path,
            env={**env, "LEAKED_PID_FILE": str(leaked)},
            capture_output=True,
            text=True,
            timeout=480,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the inner run did not end:\n{exc.stdout!s}\n{exc.stderr!s}"[-6000:])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-6000:]
    assert "INTERNALERROR" not in out, out[-6000:]
    assert re.search(r"=+ 4 failed, 7 passed in [\d.]+s", out), out[-3000:]
    failed = set(re.findall(r"^FAILED (\S+)", out, re.MULTILINE))
    assert failed == {
        "test_hang.py::test_hangs",
        "test_crash.py::test_kills_its_process",
        "test_sigterm.py::test_terminated",
        "test_gc.py::test_failure_reported_while_garbage_is_finalized",
    }, out[-3000:]
    assert "Timeout (>2.0s)" in out and "crashed while running 'test_crash.py::test_kills_its_process'" in out
    assert "assert (1 + 1) == 3" in out  # the failure itself, reported normally
    pid = int(leaked.read_text())
    if not _gone_within(pid, 5):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the process a test left running outlived the session")


_THREADED_RUNS = """
import gc, logging, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
sys.path.insert(0, {tests!r})
from _helpers import run_pipes

records = []
handler = logging.Handler(logging.ERROR)
handler.emit = records.append
logging.getLogger("sqlalchemy.pool").addHandler(handler)
gc.collect()
gc.disable()  # whatever the threads leave is collected below, on the main thread
with ThreadPoolExecutor(max_workers=2) as pool:  # as the Spark tests' fixtures: 3 runs, 2 threads
    results = [f.result(timeout=120) for f in [pool.submit(run_pipes, Path({script!r})) for _ in range(3)]]
assert all(r.success for r in results), [r.failure for r in results]
results.clear()
gc.enable()
gc.collect()
print("RECORDS", [r.getMessage() for r in records])
"""


def test_a_dagster_run_on_a_thread_leaves_nothing_to_finalize_elsewhere(tmp_path: Path) -> None:
    """The cause: run on a pool thread, ``run_pipes`` disposes its Dagster instance there, so collecting
    garbage on the main thread finalizes no SQLite connection of another thread (whose ProgrammingError
    SQLAlchemy logs, with a traceback, from inside the collection: four such records before the fix).
    In a fresh interpreter: what earlier tests of this process left is not this test's business."""
    script = write_script(
        tmp_path,
        """
        from dagster_pipes import open_dagster_pipes
        with open_dagster_pipes() as pipes:
            pipes.report_asset_materialization(metadata={"n": 1})
        """,
    )
    code = _THREADED_RUNS.format(tests=str(TESTS), script=str(script))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "RECORDS []" in proc.stdout, proc.stdout[-4000:]


_PARENT = """
import subprocess, sys, time
sys.path.insert(0, {tests!r})
from _helpers import die_with_parent
child = subprocess.Popen(die_with_parent(["sleep", "300"]), start_new_session=True)
print(child.pid, flush=True)
time.sleep(300)
"""

_SERVER_PARENT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from _runtimes import SparkConnectServer
server = SparkConnectServer(Path({workdir!r})).start()
print(server._proc.pid, flush=True)
time.sleep(300)
"""


def _child_of_killed_parent(code: str, ready: str | None = None, timeout: float = 60) -> int:
    """Start ``code`` (which prints the pid of a child it starts), wait until that child's executable
    path contains ``ready`` (if given), SIGKILL the parent; returns the child's pid."""
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        deadline = time.monotonic() + timeout
        while ready is not None and ready not in _exe(pid):
            assert _running(pid) and time.monotonic() < deadline, f"{pid} never ran {ready}"
            time.sleep(0.1)
    finally:
        parent.kill()
        parent.wait()
    return pid


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


@pytest.mark.skipif(not LINUX, reason="prctl(PR_SET_PDEATHSIG), /proc")
def test_a_process_started_to_die_with_its_parent_does(tmp_path: Path) -> None:
    pid = _child_of_killed_parent(_PARENT.format(tests=str(TESTS)), ready="sleep")
    if not _gone_within(pid, 5):
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the child outlived its killed parent")
    assert die_with_parent(["x"])[-1] == "x"


@pytest.mark.skipif(not LINUX, reason="prctl(PR_SET_PDEATHSIG), /proc")
def test_an_abandoned_spark_connect_server_jvm_dies_with_the_test_process(tmp_path: Path) -> None:
    """The server's JVM (spark-submit execs it: same pid) is killed when the process that started it
    dies, even by SIGKILL (no fixture teardown, no session finish)."""
    pytest.importorskip("pyspark")
    code = _SERVER_PARENT.format(tests=str(TESTS), workdir=str(tmp_path))
    pid = _child_of_killed_parent(code, ready="java", timeout=120)
    if not _gone_within(pid, 10):
        os.killpg(pid, signal.SIGKILL)
        pytest.fail("the Spark Connect server's JVM outlived the process that started it")
