"""The rule of each batch plan node (projections, aggregations, joins, unions, CTEs, relations...)."""

from __future__ import annotations

import re
from collections.abc import Callable

from dagster_pipes_spark.spark._lineage._expressions import SUBQUERY, closing
from dagster_pipes_spark.spark._lineage._tree import (
    Node,
    UnreadableError,
    attributes,
    bracket_groups,
    group_spans,
    split_items,
)
from dagster_pipes_spark.spark._lineage._walker import NONE, NodeHandler, Output, Scope, Walker, union
from dagster_pipes_spark.spark._lineage_types import Deps, LineageSource
from dagster_pipes_spark.spark._targets import parse_target, split_identifier


def inner_resolver(walker: Walker, node: Node, scope: Scope, start: int = 0) -> Callable[[], Deps]:
    """Resolves the ``scalar-subquery#N`` of an expression list starting at ``start`` in the node's
    line, in order: the k-th subquery expression of the line is the k-th plan printed inside it."""
    found = list(SUBQUERY.finditer(node.content))
    if len(found) != len(node.inner):
        return _unresolvable_subquery
    kinds = [m.group(1) for m in found]
    state = {"next": sum(1 for m in found if m.start() < start)}

    def resolve() -> Deps:
        # skip exists/list subqueries met before this scalar one: they are cut without a lookup
        while state["next"] < len(kinds) and kinds[state["next"]] != "scalar-subquery":
            state["next"] += 1
        index = state["next"]
        state["next"] += 1
        if index >= len(node.inner):
            raise UnreadableError("subqueries do not match their plans")
        columns = walker.output(node.inner[index], scope)
        if len(columns) != 1:
            raise UnreadableError("a scalar subquery with several columns")
        return columns[0][2]

    return resolve


def _unresolvable_subquery() -> Deps:
    raise UnreadableError("subqueries do not match their plans")


def single_child(node: Node) -> Node:
    if len(node.children) != 1:
        raise UnreadableError(f"{node.name} with {len(node.children)} children")
    return node.children[0]


def pass_through(walker: Walker, node: Node, outer: Scope | None) -> Output:
    return walker.output(single_child(node), outer)


def _named_group(walker: Walker, node: Node, outer: Scope | None, last: bool) -> tuple[Output, Output]:
    """The child's output and the named expressions of the node's first (or last) ``[...]`` list."""
    single_child(node)
    scope, outputs = walker.scope_of(node, outer)
    spans = group_spans(node.content)
    if not spans:
        return outputs[0], []
    opened, closed = spans[-1] if last else spans[0]
    resolver = inner_resolver(walker, node, scope, opened)
    return outputs[0], walker.named_list(node.content[opened + 1 : closed], scope, resolver)


def _project(walker: Walker, node: Node, outer: Scope | None) -> Output:
    return _named_group(walker, node, outer, last=False)[1]


def _aggregate(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # [grouping], [aggregates]: the grouping list is not printed when it is empty
    return _named_group(walker, node, outer, last=True)[1]


def _window(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # [window expressions], [partition by], [order by]: the child's columns, then the new ones
    child, named = _named_group(walker, node, outer, last=False)
    return child + named


def _generate(walker: Walker, node: Node, outer: Scope | None) -> Output:
    single_child(node)
    scope, outputs = walker.scope_of(node, outer)
    groups = bracket_groups(node.content)
    items = split_items(node.content[len(node.name) + 1 :])
    if not groups or not items:
        raise UnreadableError("Generate without output")
    deps = walker.expression(items[0], scope, inner_resolver(walker, node, scope))
    return outputs[0] + [(expr_id, name, deps) for name, expr_id in attributes(groups[-1])]


def _expand(walker: Walker, node: Node, outer: Scope | None) -> Output:
    single_child(node)
    scope, _ = walker.scope_of(node, outer)
    groups = bracket_groups(node.content)
    if len(groups) < 2:
        raise UnreadableError("Expand without projections")
    columns = attributes(groups[-1])
    per_column: list[list[Deps]] = [[] for _ in columns]
    for projection in split_items(groups[0]):
        if not (projection.startswith("[") and projection.endswith("]")):
            raise UnreadableError("Expand projection")
        values = split_items(projection[1:-1])
        if len(values) != len(columns):
            raise UnreadableError("Expand projection width")
        for i, value in enumerate(values):
            per_column[i].append(walker.expression(value, scope, _unresolvable_subquery))
    return [(expr_id, name, union(per_column[i])) for i, (name, expr_id) in enumerate(columns)]


_JOIN_LEFT_ONLY = frozenset({"LeftSemi", "LeftAnti"})
_JOIN_BOTH = frozenset({"Inner", "Cross", "LeftOuter", "RightOuter", "FullOuter"})


def _join(walker: Walker, node: Node, outer: Scope | None) -> Output:
    if len(node.children) != 2:
        raise UnreadableError("Join without two sides")
    kind = re.match(r"Join (\w+)", node.content)
    join_type = kind.group(1) if kind else ""
    left, right = walker.child_outputs(node, outer)
    if join_type in _JOIN_LEFT_ONLY:
        return left
    if join_type in _JOIN_BOTH:
        return left + right
    raise UnreadableError(f"join type {join_type!r}")


def _union_node(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # columns by position; a branch that cannot be read leaves every column unresolved, but the
    # union's columns stay known to the nodes above (when its first branch was read)
    outputs: list[Output | None] = []
    for child in node.children:
        try:
            outputs.append(walker.output(child, outer))
        except UnreadableError:
            outputs.append(None)
    first = outputs[0] if outputs else None
    if first is None or any(o is not None and len(o) != len(first) for o in outputs):
        raise UnreadableError("Union of unreadable or different widths")
    return [
        (expr_id, name, union(o[i][2] if o is not None else None for o in outputs))
        for i, (expr_id, name, _) in enumerate(first)
    ]


def left_side(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # INTERSECT / EXCEPT: the right side only filters the left one's rows
    if len(node.children) != 2:
        raise UnreadableError(f"{node.name} without two sides")
    return walker.output(node.children[0], outer)


def _with_cte(walker: Walker, node: Node, outer: Scope | None) -> Output:
    if not node.children:
        raise UnreadableError("WithCTE without plan")
    for definition in node.children[:-1]:
        walker.output(definition, outer)
    return walker.output(node.children[-1], outer)


def _cte_def(walker: Walker, node: Node, outer: Scope | None) -> Output:
    match = re.match(r"CTERelationDef (\d+)", node.content)
    if match is None:
        raise UnreadableError("CTERelationDef without id")
    columns = walker.output(single_child(node), outer)
    walker.ctes[match.group(1)] = columns
    return columns


def _cte_ref(walker: Walker, node: Node, outer: Scope | None) -> Output:
    match = re.match(r"CTERelationRef (\d+)", node.content)
    groups = bracket_groups(node.content)
    if match is None or not groups or match.group(1) not in walker.ctes:
        raise UnreadableError("CTERelationRef to an unknown definition")
    definition = walker.ctes[match.group(1)]
    columns = attributes(groups[0])
    if len(columns) != len(definition):
        raise UnreadableError("CTERelationRef of a different width")
    return [(expr_id, name, definition[i][2]) for i, (name, expr_id) in enumerate(columns)]


def table_columns(source: LineageSource | None, columns: list[tuple[str, int]]) -> Output:
    return [
        (expr_id, name, frozenset({(source, name)}) if source is not None else None)
        for name, expr_id in columns
    ]


def _relation(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # Relation spark_catalog.default.t[a#1,b#2] parquet  /  Relation [a#1,b#2] parquet (a path)
    opened = node.content.find("[")
    closed = node.content.rfind("]")
    if opened < 0 or closed < opened:
        raise UnreadableError("Relation without columns")
    name = node.content[len("Relation ") : opened].strip()
    columns = attributes(node.content[opened + 1 : closed])
    if name:
        return table_columns(LineageSource(table=tuple(split_identifier(name))), columns)
    paths = {walker.paths.get(expr_id) for _, expr_id in columns} - {None}
    path = paths.pop() if len(paths) == 1 else None
    return table_columns(LineageSource(path=path) if path else None, columns)


def _relation_v2(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # RelationV2[a#1, b#2] catalog.db.t name
    closed = node.content.rfind("] ")
    if not node.content.startswith("RelationV2[") or closed < 0:
        raise UnreadableError("RelationV2 without columns")
    columns = attributes(node.content[len("RelationV2[") : closed])
    name = node.content[closed + 2 :].split(" ")[0]
    kind, parsed = parse_target(name)
    source = LineageSource(path=str(parsed)) if kind == "path" else LineageSource(table=tuple(parsed))
    return table_columns(source, columns)


def _hive_relation(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # HiveTableRelation [`db`.`t`, <serde>, Data Cols: [a#1, b#2], Partition Cols: [p#3]]
    groups = bracket_groups(node.content)
    if not groups:
        raise UnreadableError("HiveTableRelation without columns")
    body = groups[0]
    identifier = split_items(body)[0]
    columns: list[tuple[str, int]] = []
    for label in ("Data Cols: [", "Partition Cols: ["):
        start = body.find(label)
        if start >= 0:
            opened = start + len(label) - 1
            columns += attributes(body[opened + 1 : closing(body, opened)])
    return table_columns(LineageSource(table=tuple(split_identifier(identifier))), columns)


def _local_relation(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # data written in the plan itself: no source
    groups = bracket_groups(node.content)
    return [(expr_id, name, NONE) for name, expr_id in attributes(groups[0])] if groups else []


def _range(walker: Walker, node: Node, outer: Scope | None) -> Output:
    return [(None, "id", NONE)]  # Range prints no output; its one column is ``id``


def _one_row(walker: Walker, node: Node, outer: Scope | None) -> Output:
    return []


def opaque(walker: Walker, node: Node, outer: Scope | None) -> Output:
    # rows of unknown origin (an RDD, a checkpoint): the columns cannot be traced
    walker.notes.append(UnreadableError(f"rows of unknown origin ({node.name})"))
    groups = bracket_groups(node.content)
    return [(expr_id, name, None) for name, expr_id in attributes(groups[0])] if groups else []


#: The rule of each batch plan node, by node name.
BATCH_NODES: dict[str, NodeHandler] = {
    **dict.fromkeys(
        (
            "SubqueryAlias",
            "View",
            "Filter",
            "Sort",
            "GlobalLimit",
            "LocalLimit",
            "Limit",
            "Offset",
            "Tail",
            "Distinct",
            "Deduplicate",
            "DeduplicateWithinWatermark",
            "Repartition",
            "RepartitionByExpression",
            "RebalancePartitions",
            "Sample",
            "ResolvedHint",
            "CollectMetrics",
            "EventTimeWatermark",
            "Subquery",
            "TypedFilter",
        ),
        pass_through,
    ),
    "Project": _project,
    "Aggregate": _aggregate,
    "Window": _window,
    "Generate": _generate,
    "Expand": _expand,
    "Join": _join,
    "Union": _union_node,
    "Intersect": left_side,
    "Except": left_side,
    "WithCTE": _with_cte,
    "CTERelationDef": _cte_def,
    "CTERelationRef": _cte_ref,
    "Relation": _relation,
    "RelationV2": _relation_v2,
    "HiveTableRelation": _hive_relation,
    "LocalRelation": _local_relation,
    "Range": _range,
    "OneRowRelation": _one_row,
    "LogicalRDD": opaque,
    "ExternalRDD": opaque,
}
