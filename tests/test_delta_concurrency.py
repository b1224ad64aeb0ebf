"""Concurrent writers to one Delta table: each materialization carries the versions and metrics of
its own commits, never of whatever commit is newest.

Two Dagster runs at once (two processes); in the first, a second writer on a thread with its own
``spark.newSession()``. The three writers commit appends of 3, 5 and 7 rows to one path-based Delta
table in strict turns (A, A-thread, B, A, ...), so every hook block ends with another writer's
commits newest in the table's history. The figures are checked against Delta's own history.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

dg = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import RunResult, run_pipes  # noqa: E402
from test_delta_hooks import table_format_jars  # noqa: E402

SCRIPT = Path(__file__).parent / "spark_scripts" / "delta_concurrent_job.py"
COMMITS = 3
#: asset -> rows per commit (each writer's commits are told apart by their row count)
ROWS = {"writer_a": 3, "writer_thread": 5, "writer_b": 7}
pytestmark = pytest.mark.timeout(900)  # one Spark run per mechanism, on a loaded machine


def _run(shared: str, jars: list[str], writers: list[list[Any]], report_history: bool) -> RunResult:
    extras = {
        "tmp": tempfile.mkdtemp(prefix="pipes-delta-concurrent-"),
        "shared": shared,
        "jars": ",".join(jars),
        "writers": writers,
        "turns": len(ROWS),
        "commits": COMMITS,
        "report_history": report_history,
    }
    return run_pipes(SCRIPT, assets=[w[0] for w in writers], extras=extras)


@pytest.fixture(scope="module")
def results() -> tuple[RunResult, RunResult]:
    jars = table_format_jars("spark40")
    shared = tempfile.mkdtemp(prefix="pipes-delta-shared-")
    first = [["writer_a", ROWS["writer_a"], 0], ["writer_thread", ROWS["writer_thread"], 1]]
    second = [["writer_b", ROWS["writer_b"], 2]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        a = pool.submit(_run, shared, jars, first, True)
        b = pool.submit(_run, shared, jars, second, False)
        return a.result(), b.result()


def test_each_writer_reports_its_own_commits(results: tuple[RunResult, RunResult]) -> None:
    first, second = results
    assert first.success, first.failure
    assert second.success, second.failure
    history = first.custom_messages[-1]["history"]
    assert len(history) == COMMITS * len(ROWS)
    # the commits really interleaved: writer by writer, in turns
    by_version = sorted(history, key=lambda c: c["version"])
    assert [c["rows"] for c in by_version] == [3, 5, 7] * COMMITS
    materializations = {**first.materializations, **second.materializations}
    for asset, rows in ROWS.items():
        md = materializations[asset].metadata
        own = [c for c in by_version if c["rows"] == rows]
        assert [w["delta_version"] for w in md["spark/writes"].value] == [c["version"] for c in own]
        assert [w["rows"] for w in md["spark/writes"].value] == [rows] * COMMITS
        assert md["dagster/row_count"].value == rows * COMMITS
        assert md["delta/version"].value == own[-1]["version"]
        assert materializations[asset].tags["dagster/data_version"] == str(own[-1]["version"])
        # one tag per hook block, and only that block's commits carry it
        assert len({c["tag"] for c in own}) == 1 and own[0]["tag"].startswith("dagster-pipes-spark:")
