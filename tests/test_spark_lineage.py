"""``dagster/column_lineage`` of the Spark write hooks.

End to end: a Dagster ``multi_asset`` launches ``spark_scripts/spark_lineage_job.py`` through
``PipesSubprocessClient`` on classic Spark and on Spark Connect; the job joins two source tables
with aliases, aggregates in a CTE, ranks with a window function, adds a scalar subquery and a union,
and writes the result by SQL and through the DataFrame API (also reading and writing by path); we
assert the exact column lineage Dagster recorded, column by column, with the sources mapped by the
default rule / a dict and by a callable (multi-part asset keys).

Then the plan reader on printed plans, for what the job does not reach: constructs that must be
left out rather than guessed, ``Expand`` / ``Generate`` / lambdas / semi joins, and the wire shape
of multi-part asset keys as the orchestrator decodes it.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

dagster = pytest.importorskip("dagster")
pytest.importorskip("pyspark")

from _helpers import RunResult, run_pipes  # noqa: E402
from dagster import AssetKey  # noqa: E402

from dagster_pipes_spark.spark._lineage import (  # noqa: E402
    ColumnLineage,
    LineageSource,
    UnknownNodeError,
    UnreadableError,
    lineage_from_explain,
    lineage_from_tree,
    lineage_problem,
    merge_lineage,
)

SCRIPT = Path(__file__).resolve().parent / "spark_scripts" / "spark_lineage_job.py"
ASSETS = ["report", "report_df", "by_customer", "summary", "report_mapped", "by_customer_mapped"]

Lineage = dict[str, list[tuple[str, str]]]


def _report(orders: str, customers: str) -> Lineage:
    """What the CTE / window / subquery / union query's columns derive from. ``position``
    (``rank()`` unioned with ``count(*)``) derives from no column's values: it is left out."""
    return {
        "label": [(customers, "country"), (customers, "name")],
        "value": [(orders, "amount")],
        "region": [(customers, "country")],
        "top": [(orders, "amount")],
    }


def _by_customer(orders: str, files: str) -> Lineage:
    """The DataFrame API job: ``orders`` counts a column (an aggregation of it), ``tier`` returns
    ``name`` when ``spent`` passes a test (``spent`` is only tested), the join keys are not
    dependencies. The files are read from a path of over 200 characters (Connect's ``EXPLAIN``
    shortens file locations past ``spark.sql.maxMetadataStringLength`` unless told not to)."""
    return {
        "name": [(files, "name")],
        "spent": [(orders, "amount")],
        "orders": [(orders, "status")],
        "label": [(files, "name"), (orders, "amount")],
        "tier": [(files, "name")],
    }


EXPECTED: dict[str, Lineage] = {
    # default rule: sources by their bare table name (not in scope), paths by the dict
    "report": _report("src_orders", "src_customers"),
    "report_df": _report("src_orders", "src_customers"),
    "by_customer": _by_customer("src_orders", "customer_files"),
    "summary": {"who": [("customer_files", "name")], "total": [("src_orders", "amount")]},  # by position
    # the callable maps sources to multi-part keys
    "report_mapped": _report("warehouse/orders", "warehouse/customers"),
    "by_customer_mapped": _by_customer("warehouse/orders", "files/customers"),
}


def _run(mechanism: str) -> RunResult:
    tmp = tempfile.mkdtemp(prefix=f"pipes-spark-lineage-{mechanism}-")
    return run_pipes(SCRIPT, assets=ASSETS, extras={"mechanism": mechanism, "tmp": tmp})


@pytest.fixture(scope="module")
def runs() -> dict[str, RunResult]:
    """Both Dagster runs, started together: most of a run is Spark start-up and waiting."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {mechanism: pool.submit(_run, mechanism) for mechanism in ("classic", "connect")}
        return {mechanism: future.result() for mechanism, future in futures.items()}


@pytest.fixture(params=["classic", "connect"])
def run(request: pytest.FixtureRequest, runs: dict[str, RunResult]) -> RunResult:
    outcome = runs[request.param]
    assert outcome.success, (outcome.failure, outcome.logs[-40:])
    summary = next(text for _, text in outcome.logs if text.startswith("hooks: "))
    assert f"mechanism={request.param}/{request.param}" in summary
    return outcome


def _lineage(run: RunResult, asset: str) -> Lineage:
    """The ``dagster/column_lineage`` Dagster recorded, as ``{column: [(asset key, column)]}``."""
    value = run.materializations[asset].metadata["dagster/column_lineage"]
    deps_by_column = value.lineage.deps_by_column  # a TableColumnLineageMetadataValue
    return {
        column: sorted((dep.asset_key.to_user_string(), dep.column_name) for dep in deps)
        for column, deps in deps_by_column.items()
    }


@pytest.mark.parametrize("asset", ASSETS)
def test_column_lineage_received_by_dagster(run: RunResult, asset: str) -> None:
    assert _lineage(run, asset) == EXPECTED[asset]


def test_multi_part_source_keys_are_real_asset_keys(run: RunResult) -> None:
    deps = run.materializations["report_mapped"].metadata["dagster/column_lineage"].lineage.deps_by_column
    assert {dep.asset_key for dep in deps["value"]} == {AssetKey(["warehouse", "orders"])}


def test_lineage_sits_beside_the_rest_of_the_metadata(run: RunResult) -> None:
    md = run.materializations["report"].metadata
    assert md["dagster/table_name"].value.endswith("default.report")
    assert [c.name for c in md["dagster/column_schema"].schema.columns] == [
        "label",
        "value",
        "position",
        "region",
        "top",
    ]


# --- the plan reader on printed plans -----------------------------------------------------------

A = LineageSource(table=("spark_catalog", "default", "a"))


def _deps(lineage: Any) -> dict[str, Any]:
    return {
        column: None if deps is None else sorted((s.target, c) for s, c in deps)
        for column, deps in lineage.items()
    }


def test_unreadable_text_leaves_columns_out_not_guessed() -> None:
    # a literal with a bracket inside an auto-generated name: the branch cannot be split safely
    plan = """Union false, false
:- Project [name#2, amount#3]
:  +- Relation spark_catalog.default.a[id#1L,name#2,amount#3] parquet
+- Project [CASE WHEN (x#4 > 1) THEN a, b( ELSE y END AS c#5, amount#6]
   +- Relation spark_catalog.default.a[x#4,amount#6] parquet"""
    assert _deps(lineage_from_tree(plan)) == {"name": None, "amount": None}
    # a column of rows whose origin is unknown (an RDD) is unresolved; the others are kept
    plan = """Project [id#1L, v#2, (v#2 + w#3) AS s#4]
+- Join Inner, (id#1L = k#5L)
   :- Relation spark_catalog.default.a[id#1L,v#2] parquet
   +- LogicalRDD [k#5L, w#3], false"""
    assert _deps(lineage_from_tree(plan)) == {
        "id": [("spark_catalog.default.a", "id")],
        "v": [("spark_catalog.default.a", "v")],
        "s": None,
    }
    # an unknown plan node, a second root (a literal with a newline), an unknown attribute
    assert lineage_from_tree("Project [a#1]\n+- MapInPandas f(a#0), [a#1]\n   +- Range (0, 2)") is None
    assert lineage_from_tree("Project [a#1]\nb#2\n+- Range (0, 2)") is None
    assert lineage_from_tree("Project [(a#9 + 1) AS b#2]\n+- LocalRelation [a#1]") is None


def test_why_columns_were_left_out_names_the_node() -> None:
    """The reader says why it left columns out: a node no rule reads is named (the hooks warn with
    it); rows of unknown origin are a known limit (logged at debug level)."""
    problems: list[UnreadableError] = []
    plan = "Project [a#1]\n+- MapInPandas f(a#0), [a#1]\n   +- Range (0, 2)"
    assert lineage_from_tree(plan, problems=problems) is None
    assert [p.node for p in problems if isinstance(p, UnknownNodeError)] == ["MapInPandas"]
    assert lineage_problem(problems) == ("plan node(s) not understood: MapInPandas", True)
    # in one branch of a union: the union's columns are unresolved, the node is still named
    problems = []
    plan = """Union false, false
:- Project [name#2]
:  +- Relation spark_catalog.default.a[id#1L,name#2] parquet
+- ScriptTransformation cat, [name#5], ScriptInputOutputSchema(List(),List(),None,None,List(),List(),None,None,false)
   +- Relation spark_catalog.default.a[name#4] parquet"""
    assert _deps(lineage_from_tree(plan, problems=problems)) == {"name": None}
    assert lineage_problem(problems) == ("plan node(s) not understood: ScriptTransformation", True)
    # an RDD: its columns are unresolved, not a gap of the registry
    problems = []
    plan = "Project [k#5L]\n+- LogicalRDD [k#5L, w#3], false"
    assert _deps(lineage_from_tree(plan, problems=problems)) == {"k": None}
    assert lineage_problem(problems) == ("rows of unknown origin (LogicalRDD)", False)
    # a plan read whole: no problem
    problems = []
    assert lineage_from_tree(
        "Project [a#1]\n+- Relation spark_catalog.default.a[a#1] parquet", problems=problems
    )
    assert problems == [] and lineage_problem(problems) is None


def test_direct_derivation_only() -> None:
    plan = """Project [k#1, c#10L, r#11, s#12, f#13, t#14]
+- Window [rank(v#2) windowspecdefinition(k#1, v#2 ASC NULLS FIRST, specifiedwindowframe(RowFrame, unboundedpreceding$(), currentrow$())) AS r#11, sum(v#2) windowspecdefinition(k#1, specifiedwindowframe(RowFrame, unboundedpreceding$(), unboundedfollowing$())) AS s#12], [k#1], [v#2 ASC NULLS FIRST]
   +- Aggregate [k#1], [k#1, count(v#2) AS c#10L, first(v#2, false) AS v#2, max(w#3) AS f#13, transform(arr#4, lambdafunction((lambda x#20 + w#3), lambda x#20, false)) AS t#14]
      +- Filter (w#3 > 0)
         +- Relation spark_catalog.default.a[k#1,v#2,w#3,arr#4] parquet"""
    assert _deps(lineage_from_tree(plan)) == {
        "k": [("spark_catalog.default.a", "k")],
        "c": [("spark_catalog.default.a", "v")],  # an aggregate's argument: direct (count included)
        "r": [],  # a rank: ordering only
        "s": [("spark_catalog.default.a", "v")],  # not k (PARTITION BY)
        "f": [("spark_catalog.default.a", "w")],
        "t": [("spark_catalog.default.a", "arr"), ("spark_catalog.default.a", "w")],
    }


#: As Spark 4.0 prints them in the analysed plan (``treeString``) of
#: ``SELECT CASE WHEN a > 0 THEN b WHEN c < 1 THEN c ELSE a END AS x, nullif(a, b) AS y,
#: nvl2(a, b, c) AS z, if(a > 1, b, c) AS w, count(a) AS n, coalesce(a, b) AS v FROM t GROUP BY a, b, c``.
CONDITIONALS = """Aggregate [a#1L, b#2L, c#3L], [CASE WHEN (a#1L > cast(0 as bigint)) THEN b#2L WHEN (c#3L < cast(1 as bigint)) THEN c#3L ELSE a#1L END AS x#4L, nullif(a#1L, b#2L) AS y#5L, nvl2(a#1L, b#2L, c#3L) AS z#6L, if ((a#1L > cast(1 as bigint))) b#2L else c#3L AS w#7L, count(a#1L) AS n#8L, coalesce(a#1L, b#2L) AS v#9L]
+- Relation spark_catalog.default.t[a#1L,b#2L,c#3L] parquet"""


def test_direct_dependencies_as_openlineage_defines_them() -> None:
    """Identity, transformation and aggregation are direct; what a conditional only tests is not."""
    t = "spark_catalog.default.t"
    assert _deps(lineage_from_tree(CONDITIONALS)) == {
        "x": [(t, "a"), (t, "b"), (t, "c")],  # the values THEN b, THEN c, ELSE a; not the conditions
        "y": [(t, "a")],  # nullif(a, b) returns a or NULL: b is only compared
        "z": [(t, "b"), (t, "c")],  # nvl2(a, b, c) returns b or c: a is only tested for NULL
        "w": [(t, "b"), (t, "c")],  # if(a > 1, b, c)
        "n": [(t, "a")],  # count(a): an aggregation of a
        "v": [(t, "a"), (t, "b")],  # coalesce returns either
    }


def test_conditions_nested_in_values_and_tests() -> None:
    """A CASE inside a condition is only tested; a CASE inside a value keeps its own values only."""
    plan = """Project [CASE WHEN (CASE WHEN (p#1 > 0) THEN q#2 END = 1) THEN CASE WHEN (r#3 > 0) THEN s#4 ELSE u#5 END END AS x#9, coalesce(nullif(a#6, if ((b#7 > 0)) c#8 else p#1), q#2) AS y#10]
+- Relation spark_catalog.default.t[p#1,q#2,r#3,s#4,u#5,a#6,b#7,c#8] parquet"""
    t = "spark_catalog.default.t"
    assert _deps(lineage_from_tree(plan)) == {"x": [(t, "s"), (t, "u")], "y": [(t, "a"), (t, "q")]}


def test_rollup_generate_semi_join_views_and_range() -> None:
    plan = """Aggregate [name#27, spark_grouping_id#26L], [name#27, sum(amount#19) AS s#23, e#20L, id#0L]
+- Expand [[amount#19, name#25, e#20L, id#0L, 0], [amount#19, null, e#20L, id#0L, 1]], [amount#19, name#27, e#20L, id#0L, spark_grouping_id#26L]
   +- Project [amount#19, name#17 AS name#25, e#20L, id#0L]
      +- Join LeftSemi, (id#16L = id#0L)
         :- Join Cross
         :  :- Generate explode(arr#18), false, [e#20L]
         :  :  +- SubqueryAlias x
         :  :     +- View (`v`, [id#16L, name#17, arr#18, amount#19])
         :  :        +- Relation spark_catalog.default.a[id#16L,name#17,arr#18,amount#19] parquet
         :  +- Range (0, 3, step=1, splits=Some(2))
         +- RelationV2[id#30L] jdbc.APP.T jdbc.APP.T"""
    source = "spark_catalog.default.a"
    assert _deps(lineage_from_tree(plan, ["n", "total", "element", "i"])) == {
        "n": [(source, "name")],
        "total": [(source, "amount")],
        "element": [(source, "arr")],
        "i": [],  # range(): no source
    }


def test_deep_plans_need_no_deep_recursion() -> None:
    depth = 1500  # hundreds of chained withColumn calls
    lines = [
        ("   " * (i - 1) + "+- " if i else "") + f"Project [(c#{i + 1} + 1) AS c#{i}]" for i in range(depth)
    ]
    lines.append("   " * (depth - 1) + f"+- Relation spark_catalog.default.a[c#{depth}] parquet")
    assert _deps(lineage_from_tree("\n".join(lines))) == {"c": [("spark_catalog.default.a", "c")]}


def test_paths_of_file_relations_come_from_the_physical_plan() -> None:
    explain = """== Parsed Logical Plan ==
'Project ['name]

== Analyzed Logical Plan ==
name: string, g: bigint
Project [name#10, grp#14L AS g#16L]
+- Join Inner, (id#9L = aid#13L)
   :- Relation spark_catalog.default.a[id#9L,name#10] parquet
   +- Relation [aid#13L,grp#14L] parquet

== Optimized Logical Plan ==
Project [name#10, grp#14L AS g#16L]

== Physical Plan ==
*(2) Project [name#10, grp#14L AS g#16L]
+- FileScan parquet [aid#13L,grp#14L] Batched: true, DataFilters: [], Format: Parquet, Location: InMemoryFileIndex(1 paths)[file:/data/b], PartitionFilters: [], ReadSchema: struct<aid:bigint,grp:bigint>
"""
    assert _deps(lineage_from_explain(explain)) == {
        "name": [("spark_catalog.default.a", "name")],
        "g": [("/data/b", "grp")],
    }
    # a truncated location is not a path
    cut = explain.replace("[file:/data/b]", "[file:/data/very/long/...]")
    assert _deps(lineage_from_explain(cut)) == {"name": [("spark_catalog.default.a", "name")], "g": None}


def test_writes_of_one_asset_are_merged() -> None:
    one: ColumnLineage = {"x": frozenset({(A, "x")}), "y": None}
    two: ColumnLineage = {"x": frozenset({(A, "z")}), "y": frozenset({(A, "y")})}
    assert merge_lineage([one, two]) == {"x": frozenset({(A, "x"), (A, "z")})}  # y unresolved once
    assert merge_lineage([one, None]) is None  # a write without lineage: unknown


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("up", AssetKey(["up"])),
        ("a/b", AssetKey(["a", "b"])),
        ("a\\/b", AssetKey(["a/b"])),
        (["a", "b"], AssetKey(["a", "b"])),
        (AssetKey(["x", "y"]), AssetKey(["x", "y"])),
    ],
)
def test_lineage_asset_keys_on_the_wire(key: Any, expected: AssetKey) -> None:
    """Dagster reads a dep's string key as one part: multi-part keys must travel as lists."""
    from dagster._core.definitions.metadata.external_metadata import metadata_map_from_external

    from dagster_pipes_spark._metadata import normalize_metadata

    raw = {"deps_by_column": {"c": [{"asset_key": key, "column_name": "col"}]}}
    wire: Any = normalize_metadata({"l": {"raw_value": raw, "type": "table_column_lineage"}})
    decoded: Any = metadata_map_from_external(wire)["l"]
    assert decoded.lineage.deps_by_column["c"][0].asset_key == expected


def test_sources_map_to_asset_keys_like_targets_but_need_not_be_in_scope() -> None:
    from dagster_pipes_spark.spark._targets import AssetResolver

    orders = ("main", "sales", "orders")
    by_default = AssetResolver(None, ["sales/orders", "report"])
    assert by_default.resolve_source(orders, None) == "sales/orders"  # the in-scope key it matches
    assert by_default.resolve_source(("main", "sales", "customers"), None) == "customers"  # bare name
    assert by_default.resolve_source(None, "/data/x") is None  # an unmapped path has no key
    mapped = AssetResolver({"sales.orders": ["raw", "orders"], "/data/x": "x", "customers": None}, [])
    assert mapped.resolve_source(orders, None) == "raw/orders"
    assert mapped.resolve_source(None, "file:/data/x/") is None  # paths are normalized by the reader
    assert mapped.resolve_source(None, "/data/x") == "x"
    assert mapped.resolve_source(("main", "sales", "customers"), None) is None  # excluded
    seen: list[str] = []

    def to_key(target: str) -> str | None:
        seen.append(target)
        if target.endswith("boom"):
            raise ValueError("boom")
        return None if target.startswith("/") else "raw/" + target.rsplit(".", 1)[-1]

    by_callable = AssetResolver(to_key, [])
    assert by_callable.resolve_source(orders, None) == "raw/orders"
    assert by_callable.resolve_source(None, "/data/x") is None
    assert by_callable.resolve_source(("t", "boom"), None) is None  # a raising callable: no key
    assert seen == ["main.sales.orders", "/data/x", "t.boom"]


def test_a_python_udf_result_id_is_not_a_reference() -> None:
    """A Python UDF's call prints its result id after it (``seen(a#1)#63``), as in a persisted
    DataFrame's analysed plan of DQX rules: the column still derives from ``a``."""
    text = (
        "Project [a#1, coalesce(NOT seen(a#1)#63, false) AS f#2]\n"
        "+- Relation spark_catalog.default.src[a#1] parquet"
    )
    source = LineageSource(table=("spark_catalog", "default", "src"))
    assert lineage_from_tree(text) == {"a": frozenset({(source, "a")}), "f": frozenset({(source, "a")})}
