"""How the real-cluster set-up of ``test_cluster.py`` fails: one error that names what did not start
with the tail of its log, within its timeout, nothing left running, reported by one test only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("pyspark")

from _cluster import ClusterStartError, StandaloneCluster, java_or_skip, load_scaled, processes_under
from _helpers import TESTS

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc, process groups")


def test_a_worker_that_exits_is_one_error_naming_it_with_its_log(tmp_path: Path) -> None:
    """A worker that cannot start (an invalid ``--memory``): the error names it and ends with its log
    (Spark's usage message), long before the timeout, and the master is stopped too."""
    java_or_skip()
    timeout = load_scaled(120)
    cluster = StandaloneCluster(tmp_path / "spark", memory="lots")
    started = time.monotonic()
    try:
        with pytest.raises(ClusterStartError) as info:
            cluster.start(timeout=timeout)
        elapsed = time.monotonic() - started
    finally:
        cluster.stop()
    text = str(info.value)
    assert re.search(r"the Spark worker-\d exited \(1\) before the master could register 2 workers", text), (
        text
    )
    assert "Usage: Worker" in text, text  # the tail of the worker's own log
    assert elapsed < timeout
    assert processes_under(tmp_path) == []


def test_a_cluster_slower_than_its_timeout_is_one_error_within_it(tmp_path: Path) -> None:
    """A master that does not listen within the timeout: the error says so, with every log so far,
    and comes within the timeout (plus one poll), and the master is stopped."""
    java_or_skip()
    cluster = StandaloneCluster(tmp_path / "spark")
    started = time.monotonic()
    try:
        with pytest.raises(ClusterStartError, match=r"the Spark master did not listen in time") as info:
            cluster.start(timeout=0.5)
        elapsed = time.monotonic() - started
    finally:
        cluster.stop()
    assert "--- master (" in str(info.value)
    assert elapsed < 0.5 + load_scaled(3)
    assert processes_under(tmp_path) == []


_INNER = """
import pytest
from _cluster import SharedSetUp

SETUP = SharedSetUp()


@pytest.fixture(scope="module")
def shared():
    try:
        raise RuntimeError("the Spark master did not listen in time")
    except RuntimeError as exc:
        SETUP.fail(exc)
    yield


@pytest.fixture
def ready(shared):
    SETUP.require()


def test_a(ready):
    pass


def test_b(ready):
    pass


def test_c(ready):
    pass
"""


def test_a_failed_shared_set_up_is_one_error_and_the_other_tests_skip(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(_INNER))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-rEs", "-p", "no:cacheprovider", "-p", "no:randomly", "-n", "0"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert re.search(r"2 skipped, 1 error in", out), out[-3000:]
    assert "ERROR at setup of test_a" in out and "ERROR at setup of test_b" not in out, out[-3000:]
    assert "the cluster set-up failed: RuntimeError: the Spark master did not listen in time" in out
    assert out.count("reported by the first test of this module") == 2, out[-3000:]
