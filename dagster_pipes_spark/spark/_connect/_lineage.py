"""What of a write is kept to be explained on exit for column lineage, and how plans are explained
whole."""

from __future__ import annotations

from typing import Any

from dagster_pipes_spark.spark._write_record import (
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_RTAS,
)

#: Session settings that let an explained plan print whole (set while explaining, then restored).
WHOLE_PLAN_CONFS = {
    "spark.sql.debug.maxToStringFields": str(2**31 - 1),
    "spark.sql.maxMetadataStringLength": str(2**31 - 1),
}
#: SQL writes whose statement has a query to explain (not MERGE / UPDATE / DELETE / COPY INTO)
SQL_WITH_LINEAGE = frozenset({OP_INSERT, OP_INSERT_OVERWRITE, OP_CTAS, OP_RTAS, OP_CREATE_OR_REPLACE})
#: client plan leaves whose rows are in the plan itself
_SOURCELESS_LEAVES = frozenset({"LocalRelation", "CachedLocalRelation", "Range"})


def reads_sources(plan: Any) -> bool:
    """Whether a client plan may read a table, a file or SQL (worth explaining on exit): a DataFrame
    built from local data or ``range`` has no source, and its plan (which may hold the data) is
    not kept."""
    from pyspark.sql.connect.plan import LogicalPlan

    stack = [plan]
    while stack:
        node = stack.pop()
        children = [
            child
            for value in vars(node).values()
            for child in (value if isinstance(value, (list, tuple)) else (value,))
            if isinstance(child, LogicalPlan)
        ]
        if not children and type(node).__name__ not in _SOURCELESS_LEAVES:
            return True
        stack.extend(children)
    return False


#: client plan leaves a combined explain reads whole from its analysed plan (no file scan needed)
_COMBINABLE_LEAVES = frozenset({"Read", *_SOURCELESS_LEAVES})


def combinable(plan: Any) -> bool:
    """Whether a client plan can be explained together with others (one union, one request): a
    batch plan whose leaves are tables read by name or local data. A path read (``DataSource``),
    SQL text or a streamed source is explained alone (its file scans are in the physical plan)."""
    from pyspark.sql.connect.plan import LogicalPlan

    stack = [plan]
    while stack:
        node = stack.pop()
        if getattr(node, "_is_streaming", None):
            return False
        children = [
            child
            for value in vars(node).values()
            for child in (value if isinstance(value, (list, tuple)) else (value,))
            if isinstance(child, LogicalPlan)
        ]
        if not children and type(node).__name__ not in _COMBINABLE_LEAVES:
            return False
        stack.extend(children)
    return True
