"""Leaving ``report_spark_writes`` asks Spark a fixed number of things, however many tables the
block wrote: the count (not the time) of Spark Connect requests and of Spark jobs made on exit is
the same for 1 and for 50 table targets, classic and Connect, Parquet and Delta.

Real Dagster runs ``spark_scripts/exit_counts_job.py`` (one Spark session with the pinned Delta
jars per mechanism); Spark is the oracle of the counts: the Connect client's own request methods
are counted and jobs read from the driver's ``DAGScheduler`` (``testing.spark_calls``). Every
target must still be reported with its schema and its column lineage read from the source table,
so a batched look-up that silently dropped a table or a plan fails here too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

dg = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import RunResult, run_pipes  # noqa: E402
from test_delta_hooks import table_format_jars  # noqa: E402

SCRIPT = Path(__file__).parent / "spark_scripts" / "exit_counts_job.py"
SIZES = (1, 50)
FORMATS = ("parquet", "delta")
ASSETS = [f"{fmt}_{size}_{i}" for fmt in FORMATS for size in SIZES for i in range(size)]
pytestmark = pytest.mark.timeout(900)  # one Spark run per mechanism, 102 writes, on a loaded machine


@pytest.fixture(scope="module", params=["classic", "connect"])
def run(request: pytest.FixtureRequest) -> tuple[str, RunResult]:
    jars = [j for j in table_format_jars("spark40") if Path(j).name.startswith("delta")]
    tmp = tempfile.mkdtemp(prefix=f"pipes-exit-counts-{request.param}-")
    result = run_pipes(
        SCRIPT, assets=ASSETS, extras={"mechanism": request.param, "tmp": tmp, "jars": ",".join(jars)}
    )
    assert result.success, result.failure
    return request.param, result


def _counts(result: RunResult) -> dict[str, dict[str, Any]]:
    return result.custom_messages[-1]["counts"]


def test_every_target_reported_with_schema_and_lineage(run: tuple[str, RunResult]) -> None:
    _, result = run
    assert set(result.materializations) == set(ASSETS)
    for key, mat in result.materializations.items():
        schema = mat.metadata["dagster/column_schema"].schema
        assert [(c.name, c.type) for c in schema.columns] == [
            ("id", "bigint"),
            ("name", "string"),
            ("score", "double"),
        ], key
        lineage = mat.metadata["dagster/column_lineage"].lineage.deps_by_column
        assert {
            column: sorted((d.asset_key.to_user_string(), d.column_name) for d in deps)
            for column, deps in lineage.items()
        } == {"id": [("src", "id")], "name": [("src", "name")], "score": [("src", "score")]}, key


@pytest.mark.parametrize("fmt", FORMATS)
def test_exit_jobs_do_not_grow_with_targets(run: tuple[str, RunResult], fmt: str) -> None:
    _, result = run
    counts = _counts(result)
    one, fifty = counts[f"{fmt}/1"], counts[f"{fmt}/50"]
    assert (one["reported"], fifty["reported"]) == (1, 50)
    if fmt == "parquet":  # names, schemas and lineage need no job
        assert (one["jobs"], fifty["jobs"]) == (0, 0), counts
    else:  # the tables' Delta logs in one scan (with over 32 log directories Spark lists them in a job)
        assert one["jobs"] == 1, counts
        assert 1 <= fifty["jobs"] <= 2, counts


@pytest.mark.parametrize("fmt", FORMATS)
def test_connect_exit_requests_do_not_grow_with_targets(run: tuple[str, RunResult], fmt: str) -> None:
    mechanism, result = run
    if mechanism != "connect":
        pytest.skip("Spark Connect requests")
    counts = _counts(result)
    one, fifty = counts[f"{fmt}/1"]["requests"], counts[f"{fmt}/50"]["requests"]
    # SHOW TABLE EXTENDED (command + rows), one schema request, one explain of all plans, the
    # settings the explain needs and restores, the app id / default format, Delta: the log scan
    assert fifty == one, counts
    assert one["analyze"] == 2, counts
    assert one["execute"] == (2 if fmt == "parquet" else 3), counts
    assert one["total"] <= 15, counts
