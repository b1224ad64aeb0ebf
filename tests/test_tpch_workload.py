"""The Spark write hooks over a public benchmark's queries: TPC-H (issue #25).

Real Dagster materializes one asset per query; the external process
(``spark_scripts/tpch_workload_job.py``) creates the eight TPC-H tables with the seeded generator of
``dagster_pipes_spark.testing.tpch`` and writes the 22 queries' results, plus a window query and two
set-operation queries, as tables inside ONE ``report_spark_writes`` block. Four variants keep the
matrix affordable while covering each axis twice: classic + Parquet by CTAS, classic + Delta by
``saveAsTable``, Connect + Parquet by ``saveAsTable``, Connect + Delta by CTAS.

For every query: ``dagster/row_count`` equals the table read back (Spark's own count of the written
table, sent by the job), ``dagster/column_schema`` equals the table's schema, and
``dagster/column_lineage`` names every output column that derives from a table column; on
hand-checked queries (joins, aggregates, window functions, CASE, subqueries, EXISTS, UNION, INTERSECT
/ EXCEPT, LIMIT) the lineage is compared exactly. The hooks log no warning or error.
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

from dagster_pipes_spark.testing.table_formats import (  # noqa: E402
    MissingJarsError,
    fetch_jars,
    jars_env_var,
)
from dagster_pipes_spark.testing.tpch import WORKLOAD  # noqa: E402

SCRIPT = Path(__file__).parent / "spark_scripts" / "tpch_workload_job.py"
PREFIX = "tpch_"
#: the job's write of a plan with a node no lineage rule reads (a script transformation)
OPAQUE = "opaque"
#: (mechanism, format, how the tables are written)
VARIANTS = {
    "classic-parquet-ctas": ("classic", "parquet", "ctas"),
    "classic-delta-save": ("classic", "delta", "save"),
    "connect-parquet-save": ("connect", "parquet", "save"),
    "connect-delta-ctas": ("connect", "delta", "ctas"),
}
#: one Dagster run per variant, two at a time, each bounded (Spark start-up, 8 source tables, 25
#: writes and their read-back on a shared 2-core machine)
pytestmark = pytest.mark.timeout(900)

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


def table_format_jars(name: str) -> list[str]:
    """The pinned jars of list ``name`` (``.ci/dev`` exports them; else fetched here, cached)."""
    exported = os.environ.get(jars_env_var(name))
    if exported:
        return exported.split(",")
    try:
        return [str(p) for p in fetch_jars(name)]
    except MissingJarsError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must have the table-format jars: {exc}")
        pytest.skip(f"{exc} (the Delta variants need them)")


@dataclass
class Run:
    variant: str
    tmp: str
    result: RunResult

    def stacks(self) -> str:
        """Every thread's stack if the job's watchdog ended a hang (empty otherwise)."""
        path = os.path.join(self.tmp, "stacks.txt")
        return open(path).read() if os.path.exists(path) else ""

    @property
    def oracle(self) -> dict[str, Any]:
        """What the job read back: per query ``{"rows": n, "schema": [[name, type]]}``."""
        return self.result.custom_messages[-1]["tables"]

    def metadata(self, query: str) -> dict[str, Any]:
        return dict(self.result.materializations[PREFIX + query].metadata)


def _run(variant: str, jars: list[str]) -> Run:
    mechanism, fmt, style = VARIANTS[variant]
    tmp = tempfile.mkdtemp(prefix=f"pipes-tpch-{variant}-")
    extras = {"mechanism": mechanism, "fmt": fmt, "style": style, "tmp": tmp, "jars": ",".join(jars)}
    assets = [PREFIX + q for q in [*WORKLOAD, OPAQUE]]
    return Run(variant, tmp, run_pipes(SCRIPT, assets=assets, extras=extras))


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    """The four runs, two at a time (most of a run is Spark start-up and the source tables)."""
    jars = table_format_jars("spark40")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {v: pool.submit(_run, v, jars) for v in VARIANTS}
        done = {v: f.result() for v, f in futures.items()}
    for outcome in done.values():  # the stacks of a hang are read before: keep only a failed run's
        if outcome.result.success:
            shutil.rmtree(outcome.tmp, ignore_errors=True)
    return done


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
    assert run.result.custom_messages[-1]["writes"] == len(WORKLOAD) + 1
    assert set(run.result.materializations) == {PREFIX + q for q in [*WORKLOAD, OPAQUE]}
    counts, schemas = {}, {}
    for query in [*WORKLOAD, OPAQUE]:
        md = run.metadata(query)
        counts[query] = md["dagster/row_count"].value if "dagster/row_count" in md else None
        schema = md.get("dagster/column_schema")
        schemas[query] = [[c.name, c.type] for c in schema.schema.columns] if schema else None
    assert counts == {q: table["rows"] for q, table in run.oracle.items()}
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
    opaque = f"spark_catalog.default.{PREFIX}{OPAQUE}"
    assert [(lv, t) for lv, t in hook_lines if lv in ("WARNING", "ERROR", "CRITICAL")] == [
        (
            "WARNING",
            f"[spark writes] column lineage of {opaque}: columns left out, plan node(s) not understood:"
            " ScriptTransformation",
        )
    ]
    assert [t for _, t in hook_lines if "lineage" in t and opaque not in t] == []
    assert "dagster/column_lineage" not in run.metadata(OPAQUE)
