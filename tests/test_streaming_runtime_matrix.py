"""Structured Streaming in the Spark 3.5 runtime: classic Spark 3.5.0 with the pinned Delta 3.2 jars
(``.ci/jars/spark35.txt``), and a Spark 3.5 Connect client (whose ``recentProgress`` returns JSON, not
progress objects) against the standalone Spark Connect server of the pinned stack (Delta 4.0 on the
server). Each is ONE job of ``spark_scripts/streaming_job.py`` launched by real Dagster in the runtime
environment (``.ci/runtimes/spark35.txt``; this library from its wheel), covering every scenario; the
checks are ``test_spark_streaming.py``'s.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

dg = pytest.importorskip("dagster")

from _helpers import RunResult, run_pipes  # noqa: E402
from _runtimes import RuntimeClient, SparkConnectServer, runtime_env, runtime_python  # noqa: E402
from test_delta_hooks import table_format_jars  # noqa: E402
from test_spark_streaming import (  # noqa: E402  (the same checks, on these runs)
    ASSETS,
    JOB,
    test_a_delta_source_shows_its_reservoir_version_and_a_delta_path_sink_its_version,
    test_a_delta_table_sink_reports_the_version_of_its_last_batch,
    test_a_delta_table_source_is_the_source_of_the_column_lineage,
    test_a_failing_query_reports_its_completed_batches_and_logs_the_error,
    test_a_filtered_query_reports_the_rows_written_not_read,
    test_a_foreach_batch_query_itself_has_no_column_lineage,
    test_a_query_still_running_reports_its_completed_batches,
    test_a_query_with_no_new_data_is_still_a_materialization_of_zero_rows,
    test_a_rate_source_gives_its_columns_no_source,
    test_available_now_over_files_reports_every_batch_and_row,
    test_column_lineage_of_a_query_over_files,
    test_foreach_batch_is_reported_against_the_named_asset,
    test_foreach_batch_merge_into_delta,
)

__all__ = [
    "test_a_delta_source_shows_its_reservoir_version_and_a_delta_path_sink_its_version",
    "test_a_delta_table_sink_reports_the_version_of_its_last_batch",
    "test_a_delta_table_source_is_the_source_of_the_column_lineage",
    "test_a_failing_query_reports_its_completed_batches_and_logs_the_error",
    "test_a_filtered_query_reports_the_rows_written_not_read",
    "test_a_foreach_batch_query_itself_has_no_column_lineage",
    "test_a_query_still_running_reports_its_completed_batches",
    "test_a_query_with_no_new_data_is_still_a_materialization_of_zero_rows",
    "test_a_rate_source_gives_its_columns_no_source",
    "test_available_now_over_files_reports_every_batch_and_row",
    "test_column_lineage_of_a_query_over_files",
    "test_foreach_batch_is_reported_against_the_named_asset",
    "test_foreach_batch_merge_into_delta",
]

pytestmark = pytest.mark.timeout(900)


def _run(mechanism: str, jars: list[str], remote: str | None) -> tuple[str, RunResult]:
    python = runtime_python("spark35")
    tmp = tempfile.mkdtemp(prefix=f"pipes-streaming35-{mechanism}-")
    extras = {"mechanism": mechanism, "tmp": tmp, "jars": ",".join(jars), "remote": remote, "watchdog": 500}
    result = run_pipes(
        [python, str(JOB)],
        assets=ASSETS,
        extras=extras,
        client_factory=lambda: RuntimeClient(env=runtime_env(python), timeout=600),
    )
    gc.collect()
    if not result.success:
        stacks = os.path.join(tmp, "stacks.txt")
        print(result.failure, "\n".join(m for _, m in result.logs[-40:]))
        if os.path.exists(stacks):
            print(open(stacks).read())
    assert result.success, result.failure
    return mechanism, result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkConnectServer]:
    table_format_jars("spark40")  # skip (or fail under CI) before starting anything
    server = SparkConnectServer(tmp_path_factory.mktemp("streaming35-connect-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def runs(server: SparkConnectServer) -> dict[str, tuple[str, RunResult]]:
    """One job per mechanism, started together (most of a job is Spark start-up)."""
    jars = [j for j in table_format_jars("spark35") if not os.path.basename(j).startswith("iceberg")]
    runtime_python("spark35")  # built (or found) once, before the two jobs need it
    with ThreadPoolExecutor(max_workers=2) as pool:
        classic = pool.submit(_run, "classic", jars, None)
        connect = pool.submit(_run, "connect", [], server.url())
        return {"classic": classic.result(), "connect": connect.result()}


@pytest.fixture(params=["classic", "connect"])
def run(request: pytest.FixtureRequest, runs: dict[str, tuple[str, RunResult]]) -> tuple[str, RunResult]:
    return runs[request.param]


def test_the_spark_35_runtime_ran_the_jobs(runs: dict[str, tuple[str, RunResult]]) -> None:
    """The external side ran pyspark 3.5.0 (the runtime's), not the dev venv's 4.0.1."""
    for _, result in runs.values():
        assert result.custom_messages[0]["pyspark"] == "3.5.0"
