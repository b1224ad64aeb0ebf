"""Real Delta (and Iceberg) in the Spark 3.5 runtime: classic Spark 3.5.0 with the pinned Delta 3.3 /
Iceberg jars for Scala 2.12, and a Spark 3.5 Connect client against the standalone Spark Connect server
of the pinned stack (Delta 4.0 / Iceberg on the server), each launched by real Dagster in the runtime
environment (``.ci/runtimes/spark35.txt``; this library from its wheel), as
``test_runtime_matrix_spark.py`` runs the other writes. The same job script and checks as
``test_delta_hooks.py``.
"""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from _helpers import run_pipes
from _runtimes import RuntimeClient, SparkConnectServer, runtime_env, runtime_python
from test_delta_hooks import (  # the same checks, on these runs
    API_TABLES,
    CHECKS,
    DELTA_TABLES,
    ICEBERG_TABLES,
    PARTITION,
    SCRIPT,
    Run,
    check_api_merge,
    check_api_update_and_delete,
    table_format_jars,
    test_checks_read_the_version_the_block_wrote,
    test_commits_come_from_the_logs_in_one_read,
    test_commits_missing_from_the_logs_come_from_the_history,
    test_ctas_and_rtas,
    test_dynamic_partition_overwrite,
    test_iceberg,
    test_insert_into,
    test_maintenance_is_not_a_materialization,
    test_merge,
    test_path_writes,
    test_replace_where_replaces_only_the_partition,
    test_run_succeeds,
    test_save_as_table_overwrite_then_append,
    test_sql_insert_and_insert_overwrite,
    test_update_and_delete,
)

__all__ = [
    "test_checks_read_the_version_the_block_wrote",
    "test_commits_come_from_the_logs_in_one_read",
    "test_commits_missing_from_the_logs_come_from_the_history",
    "test_ctas_and_rtas",
    "test_dynamic_partition_overwrite",
    "test_iceberg",
    "test_insert_into",
    "test_maintenance_is_not_a_materialization",
    "test_merge",
    "test_path_writes",
    "test_replace_where_replaces_only_the_partition",
    "test_run_succeeds",
    "test_save_as_table_overwrite_then_append",
    "test_sql_insert_and_insert_overwrite",
    "test_update_and_delete",
]

dg = pytest.importorskip("dagster")
# one job per mechanism doing every write (~2 min each alone; several times that on a busy 2-core
# machine); the job's own watchdog ends a hang first, with every thread's stack (Run.stacks)
pytestmark = pytest.mark.timeout(1200)


def _run(mechanism: str, jars: list[str], remote: str | None) -> Run:
    python = runtime_python("spark35")
    tmp = tempfile.mkdtemp(prefix=f"pipes-delta35-{mechanism}-")
    extras = {
        "mechanism": mechanism,
        "tmp": tmp,
        "jars": ",".join(jars),
        "iceberg": True,
        "remote": remote,
        "database": f"delta35_{mechanism}",
        "watchdog": 840,
    }
    assets = [
        *DELTA_TABLES,
        *(API_TABLES if mechanism == "classic" else []),
        *ICEBERG_TABLES,
        "d_checked",
        "d_skewed",
    ]
    result = run_pipes(
        [python, str(SCRIPT)],
        assets=assets,
        check_specs=CHECKS,
        extras=extras,
        partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
        partition_key=PARTITION,
        client_factory=lambda: RuntimeClient(env=runtime_env(python), timeout=900),
    )
    gc.collect()
    return Run(mechanism, tmp, result, database=f"delta35_{mechanism}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkConnectServer]:
    table_format_jars("spark40")  # skip (or fail under CI) before starting anything
    server = SparkConnectServer(tmp_path_factory.mktemp("delta35-connect-server")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def runs(server: SparkConnectServer) -> dict[str, Run]:
    jars = table_format_jars("spark35")
    with ThreadPoolExecutor(max_workers=2) as pool:
        classic = pool.submit(_run, "classic", jars, None)
        connect = pool.submit(_run, "connect", [], server.url())
        return {"classic": classic.result(), "connect": connect.result()}


@pytest.fixture(params=["classic", "connect"])
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    outcome = runs[request.param]
    if not outcome.result.success:
        print(outcome.result.failure, "\n".join(outcome.logs()[-60:]), outcome.stacks())
    return outcome


def test_delta_table_python_api(runs: dict[str, Run]) -> None:
    """Delta 3.2's ``DeltaMergeBuilder.execute()`` runs the merge outside Spark's query execution (no
    listener event): the hooks wrap it and read the block's commit from the table's history, so a
    Python-API merge is reported on Spark 3.5 classic as on Delta 4. ``update`` / ``delete`` go
    through a Dataset and reach the listener."""
    run = runs["classic"]
    merge, update, delete = (run.metadata[k] for k in API_TABLES)
    check_api_merge(run, merge)
    check_api_update_and_delete(run, update, delete)
