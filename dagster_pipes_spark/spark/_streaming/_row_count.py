"""Whether a streamed DataFrame writes exactly the rows it reads, decided from its plan without a job.

A query over one streaming source whose plan only projects, renames, casts or adds a watermark writes
every row it reads: its progress reports' ``numInputRows`` are the rows written, and the row-counting
observation (a per-batch aggregation) is not needed. Any other node -- a filter, an aggregation, a
join, a generator, a limit, a dedup, a union, a Python map... -- or anything the walk does not
recognise keeps the observation.

So does a repartition (or a sort), although it keeps every row: its shuffle puts the source's scan in
a map stage, and ``numInputRows`` is the scan's row metric, which every successful map task adds to,
the re-runs included. When an executor is lost with the shuffle output it held, its map tasks run
again and their rows are counted twice (150 for a batch of 100 rows on a real cluster,
``tests/test_cluster.py``). The observation sits on top of the plan, in the write stage, whose tasks
Spark counts once per partition.

The walk goes down the plan's spine with the plan-facts adapters (``spark._plan_facts``):

* classic: the analysed Catalyst plan, through py4j (analysis is eager: no job, no new analysis);
  generators, aggregates and windows are their own nodes there, so a ``Project`` keeps the row count;
* Spark Connect: the client's plan, no server round trip; the client plan is unresolved, so a
  projection's expressions must be columns, literals, casts, aliases, field extractions and a few
  scalar operators and functions (an ``explode`` or a ``count`` in a ``select`` changes the rows),
  and SQL text only a plain column name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._plan_facts import ROW_PRESERVING, PlanFacts

#: Nodes of :data:`ROW_PRESERVING` that drop rows (they keep the values, not the count).
_DROP_ROWS = frozenset({"Distinct", "Deduplicate", "GlobalLimit", "LocalLimit", "Limit", "Offset", "Sample"})
#: Nodes of :data:`ROW_PRESERVING` that shuffle: the source is read in a map stage, whose re-runs the
#: progress reports count again (see the module docstring).
_SHUFFLE = frozenset({"Repartition", "RepartitionByExpression", "RebalancePartitions", "Sort"})
#: Nodes (Catalyst's and the Connect client's) whose output has as many rows as their only child's,
#: read in the same stage as the source.
_KEEP_COUNT = (ROW_PRESERVING - _DROP_ROWS - _SHUFFLE) | {
    "Project",
    "WithColumns",
    "WithColumnsRenamed",
    "Drop",
    "ToDF",
    "WithWatermark",
    "EventTimeWatermark",
}
#: Streaming leaves: Catalyst's, and the Connect client's (``DataSource`` / ``Read`` marked streaming).
_CLASSIC_SOURCES = frozenset({"StreamingRelation", "StreamingRelationV2"})
_CONNECT_SOURCES = frozenset({"DataSource", "Read"})
#: Connect functions that map one row to one value (operators in their client names).
_SCALAR_FUNCTIONS = frozenset(
    {"+", "-", "*", "/", "%", "negative", "==", "!=", "<", "<=", ">", ">=", "<=>", "and", "or", "not"}
    | {"isnull", "isnotnull", "coalesce", "abs", "round", "upper", "lower", "trim", "length", "concat"}
)
_MAX_DEPTH = 64


def rows_preserved(df: Any) -> bool:
    """Whether every micro-batch of streaming ``df`` writes exactly the rows its one source read
    (then the progress reports count them). ``False`` when unsure; never raises, runs no job."""
    try:
        jdf = getattr(df, "_jdf", None)
        if jdf is not None:
            from dagster_pipes_spark.spark._classic._facts import FACTS as CLASSIC

            return _walk(CLASSIC, jdf.queryExecution().analyzed(), _classic_source, _any_items)
        plan = getattr(df, "_plan", None)
        if plan is None:
            return False
        from dagster_pipes_spark.spark._connect._facts import FACTS as CONNECT

        return _walk(CONNECT, plan, _client_source, _client_items_keep_rows)
    except Exception:
        return False


def _walk(
    facts: PlanFacts,
    node: Any,
    is_source: Callable[[str, Any], bool],
    items_ok: Callable[[Any], bool],
) -> bool:
    """Down the spine to the one streaming source, through nodes that keep the row count only."""
    for _ in range(_MAX_DEPTH):
        kind = facts.node_kind(node)
        if is_source(kind, node):
            return True
        if kind not in _KEEP_COUNT or not items_ok(node):
            return False
        child = facts.only_child(node)
        if child is None:
            return False
        node = child
    return False


def _classic_source(kind: str, node: Any) -> bool:
    return kind in _CLASSIC_SOURCES


def _any_items(node: Any) -> bool:
    """Catalyst puts generators, aggregates and windows in nodes of their own: the expressions of a
    node that keeps the row count never change it."""
    return True


def _client_source(kind: str, node: Any) -> bool:
    """A client read marked streaming (a batch read of the same kind is not one)."""
    return kind in _CONNECT_SOURCES and getattr(node, "_is_streaming", False) is True


def _client_items_keep_rows(node: Any) -> bool:
    """A Connect client node's expressions map one row to one row (only projections have any that
    matter)."""
    if type(node).__name__ not in ("Project", "WithColumns"):
        return True
    return all(_scalar(getattr(column, "_expr", column)) for column in node._columns)


def _scalar(expr: Any, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return False
    kind = type(expr).__name__
    if kind in ("ColumnReference", "UnresolvedStar", "LiteralExpression"):
        return True
    if kind == "ColumnAlias":
        return _scalar(expr._child, depth + 1)
    if kind == "CastExpression":
        return _scalar(expr._expr, depth + 1)
    if kind == "UnresolvedExtractValue":
        return _scalar(expr._child, depth + 1) and _scalar(expr._extraction, depth + 1)
    if kind == "UnresolvedFunction":
        return str(expr._name).lower() in _SCALAR_FUNCTIONS and all(
            _scalar(arg, depth + 1) for arg in expr._args
        )
    if kind == "SQLExpression":
        from dagster_pipes_spark.spark._connect._facts import reference_name

        return reference_name(expr) is not None
    return False
