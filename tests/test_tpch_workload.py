"""The Spark write hooks over a public benchmark's queries: TPC-H (issue #25).

Real Dagster materializes one asset per query and variant; the external process
(``spark_scripts/tpch_workload_job.py``) creates the eight TPC-H tables (Parquet) with the seeded
generator of ``dagster_pipes_spark.testing.tpch`` and writes the 22 queries' results, plus a window
query and two set-operation queries, as tables inside ONE ``report_spark_writes`` block. Four
variants keep the matrix affordable while covering each axis twice, in one run per mechanism (both of
its variants in its one block): classic + Parquet by CTAS and classic + Delta by ``saveAsTable``;
Connect + Parquet by ``saveAsTable`` and Connect + Delta by CTAS.

For every query: ``dagster/row_count`` equals the table read back (Spark's own count of the written
table, sent by the job), ``dagster/column_schema`` equals the table's schema, and
``dagster/column_lineage`` names every output column that derives from a table column; on
hand-checked queries (joins, aggregates, window functions, CASE, subqueries, EXISTS, UNION, INTERSECT
/ EXCEPT, LIMIT) the lineage is compared exactly. The hooks log no warning or error, but for one
more write whose plan has a node no lineage rule reads: reported all the same, the node named.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

dg = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import RunResult, run_pipes  # noqa: E402
from test_delta_hooks import table_format_jars  # noqa: E402  (the same pinned jars, skip / CI rule)

from dagster_pipes_spark.testing.tpch import WORKLOAD, generate  # noqa: E402

SCRIPT = Path(__file__).parent / "spark_scripts" / "tpch_workload_job.py"
#: the job's write of a plan with a node no lineage rule reads (a script transformation)
OPAQUE = "tpch_opaque"
#: variant -> (mechanism, format, how the tables are written, the prefix of its tables)
VARIANTS = {
    "classic-parquet-ctas": ("classic", "parquet", "ctas", "pq_"),
    "classic-delta-save": ("classic", "delta", "save", "dl_"),
    "connect-parquet-save": ("connect", "parquet", "save", "pq_"),
    "connect-delta-ctas": ("connect", "delta", "ctas", "dl_"),
}
MECHANISMS = ("classic", "connect")
#: one Dagster run per mechanism (both of its variants in one block), the two together, each job
#: bounded by its watchdog (1500 s) below this: Spark start-up, 8 source tables, 51 writes and their
#: read-back take minutes on a quiet 2-core machine, but a loaded one (load average 50) made a
#: job's writes take 20 s each
pytestmark = pytest.mark.timeout(1700)

Lineage = dict[str, list[tuple[str, str]]]

#: Output columns that derive from no table column's values: counts of rows, ranks, literals and
#: CASEs that only test columns (OpenLineage's indirect dependencies). Every other column must have
#: lineage.
NO_SOURCE: dict[str, set[str]] = {
    "q01": {"count_order"},
    "q04": {"order_count"},
    "q12": {"high_line_count", "low_line_count"},
    "q13": {"custdist"},
    "q21": {"numwait"},
    "q22": {"numcust"},
    "x_window": {"balance_rank"},
    "x_union": {"kind"},
}


def _cols(table: str, *columns: str) -> list[tuple[str, str]]:
    return [(table, c) for c in columns]


#: Hand-checked lineage (source asset keys by the default rule: the bare table name).
EXACT: dict[str, Lineage] = {
    # aggregates over one table
    "q01": {
        "l_returnflag": _cols("lineitem", "l_returnflag"),
        "l_linestatus": _cols("lineitem", "l_linestatus"),
        "sum_qty": _cols("lineitem", "l_quantity"),
        "sum_base_price": _cols("lineitem", "l_extendedprice"),
        "sum_disc_price": _cols("lineitem", "l_discount", "l_extendedprice"),
        "sum_charge": _cols("lineitem", "l_discount", "l_extendedprice", "l_tax"),
        "avg_qty": _cols("lineitem", "l_quantity"),
        "avg_price": _cols("lineitem", "l_extendedprice"),
        "avg_disc": _cols("lineitem", "l_discount"),
    },
    # a correlated scalar subquery in a filter, five joined tables, ORDER BY + LIMIT
    "q02": {
        "s_acctbal": _cols("supplier", "s_acctbal"),
        "s_name": _cols("supplier", "s_name"),
        "n_name": _cols("nation", "n_name"),
        "p_partkey": _cols("part", "p_partkey"),
        "p_mfgr": _cols("part", "p_mfgr"),
        "s_address": _cols("supplier", "s_address"),
        "s_phone": _cols("supplier", "s_phone"),
        "s_comment": _cols("supplier", "s_comment"),
    },
    # an aggregate over a three-way join, LIMIT
    "q03": {
        "l_orderkey": _cols("lineitem", "l_orderkey"),
        "revenue": _cols("lineitem", "l_discount", "l_extendedprice"),
        "o_orderdate": _cols("orders", "o_orderdate"),
        "o_shippriority": _cols("orders", "o_shippriority"),
    },
    # EXISTS
    "q04": {"o_orderpriority": _cols("orders", "o_orderpriority")},
    # CASE over a derived table: the nation is only tested
    "q08": {
        "o_year": _cols("orders", "o_orderdate"),
        "mkt_share": _cols("lineitem", "l_discount", "l_extendedprice"),
    },
    # a CASE of literals only: no source
    "q12": {"l_shipmode": _cols("lineitem", "l_shipmode")},
    # an outer join, an aggregate of an aggregate
    "q13": {"c_count": _cols("orders", "o_orderkey")},
    # a CTE read twice, one of them in a scalar subquery
    "q15": {
        "s_suppkey": _cols("supplier", "s_suppkey"),
        "s_name": _cols("supplier", "s_name"),
        "s_address": _cols("supplier", "s_address"),
        "s_phone": _cols("supplier", "s_phone"),
        "total_revenue": _cols("lineitem", "l_discount", "l_extendedprice"),
    },
    # a correlated scalar subquery with an aggregate
    "q17": {"avg_yearly": _cols("lineitem", "l_extendedprice")},
    # IN (an aggregated subquery with HAVING)
    "q18": {
        "c_name": _cols("customer", "c_name"),
        "c_custkey": _cols("customer", "c_custkey"),
        "o_orderkey": _cols("orders", "o_orderkey"),
        "o_orderdate": _cols("orders", "o_orderdate"),
        "o_totalprice": _cols("orders", "o_totalprice"),
        "total_quantity": _cols("lineitem", "l_quantity"),
    },
    # nested IN subqueries, one with a correlated scalar subquery
    "q20": {"s_name": _cols("supplier", "s_name"), "s_address": _cols("supplier", "s_address")},
    # EXISTS and NOT EXISTS, a self join
    "q21": {"s_name": _cols("supplier", "s_name")},
    # NOT EXISTS, a scalar subquery, substring
    "q22": {"cntrycode": _cols("customer", "c_phone"), "totacctbal": _cols("customer", "c_acctbal")},
    # window functions: a rank (no source) and a running sum (not its PARTITION BY / ORDER BY)
    "x_window": {
        "n_name": _cols("nation", "n_name"),
        "c_name": _cols("customer", "c_name"),
        "c_acctbal": _cols("customer", "c_acctbal"),
        "running_balance": _cols("customer", "c_acctbal"),
    },
    # UNION (distinct) of two joins: by position
    "x_union": {
        "nation": _cols("nation", "n_name"),
        "party": sorted(_cols("customer", "c_name") + _cols("supplier", "s_name")),
    },
    # INTERSECT and EXCEPT: the left side's columns
    "x_set_ops": {"custkey": _cols("orders", "o_custkey")},
}


@dataclass
class Run:
    variant: str
    prefix: str
    tmp: str
    result: RunResult

    @property
    def oracle(self) -> dict[str, Any]:
        """What the job read back: per query ``{"rows": n, "schema": [[name, type]]}``."""
        tables = self.result.custom_messages[-1]["tables"]
        return {t[len(self.prefix) :]: v for t, v in tables.items() if t.startswith(self.prefix)}

    def metadata(self, query: str) -> dict[str, Any]:
        return dict(self.result.materializations[self.prefix + query].metadata)

    def stacks(self) -> str:
        """Every thread's stack if the job's watchdog ended a hang (empty otherwise)."""
        path = os.path.join(self.tmp, "stacks.txt")
        return open(path).read() if os.path.exists(path) else ""


def _run(mechanism: str, jars: list[str]) -> tuple[str, RunResult]:
    tmp = tempfile.mkdtemp(prefix=f"pipes-tpch-{mechanism}-")
    variants = [[prefix, fmt, style] for m, fmt, style, prefix in VARIANTS.values() if m == mechanism]
    extras = {"mechanism": mechanism, "variants": variants, "tmp": tmp, "jars": ",".join(jars)}
    assets = [prefix + q for prefix, _, _ in variants for q in WORKLOAD] + [OPAQUE]
    return tmp, run_pipes(SCRIPT, assets=assets, extras=extras)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """One run per mechanism, both at once (most of a run is Spark start-up and waiting)."""
    jars = table_format_jars("spark40")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {m: pool.submit(_run, m, jars) for m in MECHANISMS}
        done = {m: f.result() for m, f in futures.items()}
    for tmp, result in done.values():  # a failed run's directory keeps its stacks
        if result.success:
            shutil.rmtree(tmp, ignore_errors=True)
    return {
        variant: Run(variant, prefix, *done[mechanism])
        for variant, (mechanism, _, _, prefix) in VARIANTS.items()
    }


@pytest.fixture(params=list(VARIANTS))
def run(request: pytest.FixtureRequest, runs: dict[str, Run]) -> Run:
    outcome = runs[request.param]
    assert outcome.result.success, (outcome.result.failure, outcome.result.logs[-40:], outcome.stacks())
    return outcome


def _lineage(metadata: dict[str, Any]) -> Lineage | None:
    value = metadata.get("dagster/column_lineage")
    if value is None:
        return None
    return {
        column: sorted((dep.asset_key.to_user_string(), dep.column_name) for dep in deps)
        for column, deps in value.lineage.deps_by_column.items()
    }


def test_every_query_is_reported_once_with_spark_s_row_count_and_schema(run: Run) -> None:
    assert run.result.custom_messages[-1]["writes"] == 2 * len(WORKLOAD) + 1
    assert {k for k in run.result.materializations if k.startswith(run.prefix)} == {
        run.prefix + q for q in WORKLOAD
    }
    counts, schemas = {}, {}
    for query in WORKLOAD:
        md = run.metadata(query)
        counts[query] = md["dagster/row_count"].value if "dagster/row_count" in md else None
        schema = md.get("dagster/column_schema")
        schemas[query] = [[c.name, c.type] for c in schema.schema.columns] if schema else None
    why = [text for _, text in run.result.logs if "no row count" in text]
    assert counts == {q: table["rows"] for q, table in run.oracle.items()}, why
    assert schemas == {q: [list(c) for c in table["schema"]] for q, table in run.oracle.items()}
    assert all(n and n > 0 for n in counts.values()), counts  # the generator makes every query return rows


def test_every_column_deriving_from_a_table_column_has_lineage(run: Run) -> None:
    missing: dict[str, set[str]] = {}
    for query in WORKLOAD:
        lineage = _lineage(run.metadata(query)) or {}
        columns = {name for name, _ in run.oracle[query]["schema"]}
        expected = columns - NO_SOURCE.get(query, set())
        with_deps = {c for c, deps in lineage.items() if deps}
        if with_deps != expected:
            missing[query] = expected ^ with_deps
    assert missing == {}


@pytest.mark.parametrize("query", sorted(EXACT))
def test_hand_checked_lineage(run: Run, query: str) -> None:
    assert _lineage(run.metadata(query)) == EXACT[query]


def test_the_hooks_warn_only_of_the_plan_they_cannot_read(run: Run) -> None:
    """No warning or error for the workload; one for the script transformation, naming the node and
    the target. That write is reported all the same: rows and schema (checked above), no lineage."""
    hook_lines = [(level, text) for level, text in run.result.logs if text.startswith("[spark")]
    opaque = f"spark_catalog.default.{OPAQUE}"
    assert [(lv, t) for lv, t in hook_lines if lv in ("WARNING", "ERROR", "CRITICAL")] == [
        (
            "WARNING",
            f"[spark writes] column lineage of {opaque}: columns left out, plan node(s) not understood:"
            " ScriptTransformation",
        )
    ]
    assert [t for _, t in hook_lines if "lineage" in t and opaque not in t] == []
    md = run.result.materializations[OPAQUE].metadata
    assert "dagster/column_lineage" not in md
    assert md["dagster/row_count"].value == run.result.custom_messages[-1]["tables"][OPAQUE]["rows"] == 25
    assert [(c.name, c.type) for c in md["dagster/column_schema"].schema.columns] == [
        ("name", "string"),
        ("region", "string"),
    ]


def test_the_generator_is_seeded_and_small() -> None:
    """The same rows for the same seed, others for another; a few thousand rows in all."""
    data = generate()
    assert data.rows == generate().rows
    assert data.rows["lineitem"] != generate(seed=8).rows["lineitem"]
    assert sum(len(rows) for rows in data.rows.values()) < 10_000
    assert {name: data.count(name) for name in ("region", "nation")} == {"region": 5, "nation": 25}
