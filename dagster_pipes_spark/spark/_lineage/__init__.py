"""Column lineage of a write, read from the text of Spark's analysed plan.

Both mechanisms hand this module the same text: classic Spark prints the written query with
``treeString`` (one py4j call, ~20 us per tree node), Spark Connect asks the server to ``explain``
the written DataFrame or SQL statement (one AnalyzePlan RPC, no job). ``toJSON`` would give the
same tree as JSON but costs ~0.5 ms per tree node (Scala reflection) on the JVM: 25x more.

The walk follows attribute ids (``name#12``) from the written columns down to the relations the
query reads (``Relation``, ``HiveTableRelation``, ``RelationV2``), through projections, aliases,
casts and any expression, joins, aggregations, unions, window functions, generators, ``Expand``
(rollup, cube, unpivot), views, CTEs and scalar subqueries. Only *direct* dependencies count, as
OpenLineage defines them: identity, transformation and aggregation (an aggregate's argument,
``count``'s included). Indirect ones are left out: the columns a node merely filters, joins, groups
or sorts on, a window's ``PARTITION BY`` / ``ORDER BY`` (and so ranking functions), and what a
conditional only tests (a ``CASE WHEN`` / ``if`` condition, ``nullif``'s second argument, ``nvl2``'s
first). Whatever cannot be read with certainty (an unknown plan node, a
relation whose origin is unknown such as an RDD, text that does not parse unambiguously, a file
relation whose path is unknown) makes the columns that depend on it unresolved: they are left out
rather than guessed.

Streamed plans (Structured Streaming) read the same way once their text is normalised: their source
nodes (``StreamingRelation``, ``StreamingRelationV2``, ``StreamingExecutionRelation``...) name a
file directory, a table or a source with no dataset (``rate``, ``socket``, memory).

One concept per module: ``_tree`` (the printed tree), ``_expressions`` (printed expressions),
``_walker`` (the walk and its result types), ``_nodes`` / ``_streams`` (the rule of each node),
``_plans`` (the registry and the entry points), ``_merge`` (a SQL ``MERGE`` on Connect).
Nothing here imports pyspark.
"""

from dagster_pipes_spark.spark._lineage._merge import merge_lineage_from_explain, merge_source_query
from dagster_pipes_spark.spark._lineage._plans import (
    PLAN_MARKER,
    explain_sections,
    lineage_from_combined_explain,
    lineage_from_explain,
    lineage_from_tree,
    lineage_problem,
    merge_lineage,
    scan_paths,
)
from dagster_pipes_spark.spark._lineage._tree import UnknownNodeError, UnreadableError, attributes, parse_tree
from dagster_pipes_spark.spark._lineage_types import ColumnLineage, Deps, LineageSource, SourceColumn

__all__ = [
    "PLAN_MARKER",
    "ColumnLineage",
    "Deps",
    "LineageSource",
    "SourceColumn",
    "UnknownNodeError",
    "UnreadableError",
    "attributes",
    "explain_sections",
    "lineage_from_combined_explain",
    "lineage_from_explain",
    "lineage_from_tree",
    "lineage_problem",
    "merge_lineage",
    "merge_lineage_from_explain",
    "merge_source_query",
    "parse_tree",
    "scan_paths",
]
