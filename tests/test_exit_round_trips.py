"""Leaving ``report_spark_writes`` asks Spark a bounded number of things, however many tables the
block wrote: the count (not the time) of Spark jobs made on exit is the same for 1 and for 10 table
targets (classic and Connect, Parquet and Delta), and the Spark Connect requests grow only with
ceil(targets / chunk): the same for 1 and 10 targets in one chunk (Delta, the default chunk of 25),
one ``SHOW TABLE EXTENDED`` (command + rows), one schema request and one explain more per extra chunk
(Parquet, chunks of 4: 3 chunks for 10 targets).

Real Dagster runs ``spark_scripts/exit_counts_job.py`` (one Spark session with the pinned Delta
jars per mechanism, Parquet and Delta in the same run); Spark is the oracle of the counts: the
Connect client's own request methods are counted and jobs read from the driver's ``DAGScheduler``
(``testing.spark_calls``). Every target must still be reported with its schema and its column
lineage read from the source table, so a batched look-up that silently dropped a table or a plan
fails here too. The chunking itself (which tables go in which request) is pinned without Spark.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

dg = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import RunResult, run_pipes  # noqa: E402
from test_delta_hooks import table_format_jars  # noqa: E402

from dagster_pipes_spark.spark import _parallel  # noqa: E402
from dagster_pipes_spark.spark._connect import _catalog  # noqa: E402

SCRIPT = Path(__file__).parent / "spark_scripts" / "exit_counts_job.py"
SIZES = (1, 10)
FORMATS = ("parquet", "delta")
ASSETS = [f"{fmt}_{size}_{i}" for fmt in FORMATS for size in SIZES for i in range(size)]
#: requests each chunk of tables / plans adds on Connect: SHOW TABLE EXTENDED (command + rows),
#: the schema request and the explain
PER_CHUNK = {"execute": 2, "analyze": 2}
pytestmark = pytest.mark.timeout(600)  # one Spark run per mechanism (22 writes), on a loaded machine


@pytest.fixture(scope="module", params=["classic", "connect"])
def run(request: pytest.FixtureRequest) -> tuple[str, RunResult]:
    jars = [j for j in table_format_jars("spark40") if Path(j).name.startswith("delta")]
    tmp = tempfile.mkdtemp(prefix=f"pipes-exit-counts-{request.param}-")
    result = run_pipes(
        SCRIPT, assets=ASSETS, extras={"mechanism": request.param, "tmp": tmp, "jars": ",".join(jars)}
    )
    assert result.success, result.failure
    return request.param, result


def _message(result: RunResult) -> dict[str, Any]:
    return result.custom_messages[-1]


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
    counts = _message(result)["counts"]
    one, many = counts[f"{fmt}/1"], counts[f"{fmt}/{SIZES[-1]}"]
    assert (one["reported"], many["reported"]) == SIZES
    if fmt == "parquet":  # names, schemas and lineage need no job
        assert (one["jobs"], many["jobs"]) == (0, 0), counts
    else:  # the tables' Delta logs in one scan
        assert one["jobs"] == many["jobs"] == 1, counts


@pytest.mark.parametrize("fmt", FORMATS)
def test_connect_exit_requests_grow_with_chunks_only(run: tuple[str, RunResult], fmt: str) -> None:
    mechanism, result = run
    if mechanism != "connect":
        pytest.skip("Spark Connect requests")
    message = _message(result)
    counts, chunk = message["counts"], message["chunk"][fmt]
    one, many = counts[f"{fmt}/1"]["requests"], counts[f"{fmt}/{SIZES[-1]}"]["requests"]
    # one chunk: SHOW TABLE EXTENDED, one schema request, one explain of the plans; the settings the
    # explain needs and restores, the app id / default format; Delta: the log scan (one ExecutePlan)
    assert one["analyze"] == PER_CHUNK["analyze"], counts
    assert one["execute"] == PER_CHUNK["execute"] + (fmt == "delta"), counts
    assert one["total"] <= 15, counts
    extra = math.ceil(SIZES[-1] / chunk) - 1
    assert fmt == "delta" or extra == 2  # the Parquet blocks are run in chunks of 4
    expected = {
        kind: one.get(kind, 0) + extra * PER_CHUNK.get(kind, 0) for kind in ("execute", "analyze", "config")
    }
    assert {kind: many.get(kind, 0) for kind in expected} == expected, counts


class _Frame:
    """A Spark Connect DataFrame as the catalog's schema request uses it: tables cross-joined."""

    def __init__(self, session: _Session, tables: list[str]) -> None:
        self.session, self.tables = session, tables

    def select(self, *_: Any) -> _Frame:
        return self

    def crossJoin(self, other: _Frame) -> _Frame:  # noqa: N802
        return _Frame(self.session, self.tables + other.tables)

    @property
    def schema(self) -> Any:
        self.session.requests.append(("schema", tuple(self.tables)))
        column = SimpleNamespace(name="id", dataType=SimpleNamespace(simpleString=lambda: "bigint"))
        return SimpleNamespace(
            fields=[SimpleNamespace(name=t, dataType=SimpleNamespace(fields=[column])) for t in self.tables]
        )


class _Session:
    """Answers ``SHOW TABLE EXTENDED ... LIKE 'a|b'`` and ``spark.table``; records each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, tuple[str, ...]]] = []

    def sql(self, statement: str) -> Any:
        names = statement.split("LIKE '")[1].rstrip("'").split("|")
        self.requests.append(("show", tuple(names)))
        info = "Catalog: spark_catalog\nDatabase: default\nTable: {}\nProvider: parquet\nSchema: root\n"
        rows = [{"tableName": n, "isTemporary": False, "information": info.format(n)} for n in names]
        return SimpleNamespace(collect=lambda: rows)

    def table(self, name: str) -> _Frame:
        return _Frame(self, [name.strip("`")])


@pytest.mark.parametrize("n", [1, 25, 26, 60])
def test_catalog_lookups_in_chunks(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_parallel, "CHUNK", 25)
    session = _Session()
    tables = [(f"t{i}",) for i in range(n)]
    described = _catalog.describe_tables(session, tables, lambda _: False, lambda call: call(), print)
    assert all(isinstance(d, _catalog.TableDescription) for d in described), described
    assert [d.qualified for d in described if isinstance(d, _catalog.TableDescription)] == [
        ("spark_catalog", "default", f"t{i}") for i in range(n)
    ]
    assert all(d.columns == [("id", "bigint")] for d in described if isinstance(d, _catalog.TableDescription))
    shows = [names for kind, names in session.requests if kind == "show"]
    schemas = [names for kind, names in session.requests if kind == "schema"]
    assert len(shows) == len(schemas) == math.ceil(n / 25)
    assert sorted(name for names in shows for name in names) == sorted(f"t{i}" for i in range(n))
    assert sorted(name for names in schemas for name in names) == sorted(f"t{i}" for i in range(n))
    assert max(len(names) for names in shows + schemas) <= 25
