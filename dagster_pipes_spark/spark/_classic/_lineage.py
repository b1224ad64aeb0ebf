"""Column lineage of the query a write command writes, from its printed analysed plan."""

from __future__ import annotations

import re
from typing import Any

from dagster_pipes_spark.spark._classic._py4j import JavaObject, opt, seq_items
from dagster_pipes_spark.spark._classic._relations import relation_target
from dagster_pipes_spark.spark._lineage import UnreadableError, attributes, lineage_from_tree, lineage_problem
from dagster_pipes_spark.spark._lineage_types import ColumnLineage
from dagster_pipes_spark.spark._write_record import OP_DELETE, OP_MERGE, OP_UPDATE, SparkWrite

ALL_FIELDS = 2147483647  # print every column: lists are cut at spark.sql.debug.maxToStringFields
PATH_RELATION = re.compile(r"(?:^|- )Relation \[", re.MULTILINE)
_NO_LINEAGE = frozenset({OP_MERGE, OP_UPDATE, OP_DELETE})


_CACHED = "InMemoryRelation ["


def _with_cached_plans(query: JavaObject, text: str) -> str:
    """``text`` with each cached relation (``InMemoryRelation``, whose printed children are the
    cached physical plan) replaced by the analysed plan that was cached: a persisted DataFrame's
    columns keep their sources. Its output attributes are that plan's, so the walk goes through."""
    cached: dict[str, str] = {}
    for leaf in seq_items(query.collectLeaves()):
        if str(leaf.nodeName()) == "InMemoryRelation":
            try:
                plan = leaf.cacheBuilder().logicalPlan()
                cached[str(leaf.output().mkString(", "))] = str(
                    plan.treeString(False, False, ALL_FIELDS, False)
                )
            except Exception:
                continue
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        at = line.find(_CACHED)
        plan = cached.get(line[at + len(_CACHED) : line.find("]", at)]) if at >= 0 else None
        if plan is None:
            out.append(line)
            i += 1
            continue
        prefix = line[:at]
        below = prefix[:-3] + ("   " if prefix.endswith("+- ") else ":  ") if prefix else ""
        plan_lines = plan.rstrip("\n").split("\n")
        out.append(prefix + plan_lines[0])
        out.extend(below + rest for rest in plan_lines[1:])
        i += 1
        while i < len(lines) and len(lines[i]) - len(lines[i].lstrip(" :")) > at:  # the physical plan
            i += 1
    return "\n".join(out)


def _written_query_text(node: JavaObject) -> tuple[JavaObject, str] | None:
    """The analysed query a write command writes (``query``, an ``Option`` of it for Delta's CTAS,
    or Delta's ``data`` DataFrame) and its ``treeString``."""
    for chain in (("query",), ("data", "queryExecution", "analyzed")):
        try:
            query = node
            for attr in chain:
                query = getattr(query, attr)()
        except Exception:
            continue
        try:
            text = str(query.treeString(False, False, ALL_FIELDS, False))
        except Exception:
            pass
        else:
            return query, _with_cached_plans(query, text) if _CACHED in text else text
        try:  # a scala.Option of the query
            inner = opt(query)
            if inner is not None:
                return inner, str(inner.treeString(False, False, ALL_FIELDS, False))
        except Exception:
            continue
    return None


def path_relations(query: JavaObject) -> dict[int, str]:
    """Attribute id -> path of the file relations without a table that the query reads (its
    subqueries included): the printed plan names tables, not paths."""
    paths: dict[int, str] = {}
    for plan in [query, *seq_items(query.subqueriesAll())]:
        for leaf in seq_items(plan.collectLeaves()):
            if str(leaf.nodeName()) != "LogicalRelation" or opt(leaf.catalogTable()) is not None:
                continue
            path = relation_target(leaf)[1]
            if path is not None:
                for _, expr_id in attributes(str(leaf.output().mkString(","))):
                    paths[expr_id] = path
    return paths


def merge_lineage_of(node: JavaObject) -> ColumnLineage | None:
    """Column lineage of a Delta ``MergeIntoCommand``: each target column an action assigns gets the
    source columns its expression reads (through the source query's own lineage)."""
    source = node.source()
    text = str(source.treeString(False, False, ALL_FIELDS, False))
    paths = path_relations(source) if PATH_RELATION.search(text) else {}
    source_lineage = lineage_from_tree(text, None, paths)
    if source_lineage is None:
        return None
    output = seq_items(source.output())
    if len(output) != len(source_lineage):
        return None
    by_id = {
        int(attr.exprId().id()): deps for attr, deps in zip(output, source_lineage.values(), strict=True)
    }
    lineage: dict[str, set[Any]] = {}
    unknown: set[str] = set()
    for accessor in ("matchedClauses", "notMatchedClauses", "notMatchedBySourceClauses"):
        try:
            clauses = seq_items(getattr(node, accessor)())
        except Exception:
            continue
        for clause in clauses:
            for action in seq_items(clause.actions()):
                try:
                    column = str(action.targetColNameParts().head())
                    references = seq_items(action.expr().references().toSeq())
                except Exception:
                    continue
                deps = lineage.setdefault(column, set())
                for attr in references:
                    found = by_id.get(int(attr.exprId().id()), frozenset())
                    if found is None:
                        unknown.add(column)
                    else:
                        deps |= found
    return {column: None if column in unknown else frozenset(deps) for column, deps in lineage.items()}


def column_lineage_of(node: JavaObject, write: SparkWrite) -> ColumnLineage | None:
    """Column lineage of the query a write command writes, from its printed analysed plan (one py4j
    call, plus a few per file relation read by path). None for MERGE / UPDATE / DELETE."""
    if write.operation == OP_MERGE and str(node.nodeName()).startswith("MergeIntoCommand"):
        return merge_lineage_of(node)
    if write.operation in _NO_LINEAGE:
        return None
    found = _written_query_text(node)
    if found is None:
        return None
    query, text = found
    paths = path_relations(query) if PATH_RELATION.search(text) else {}
    columns = [name for name, _ in write.columns] if write.columns else None
    problems: list[UnreadableError] = []
    lineage = lineage_from_tree(text, columns, paths, problems)
    write.lineage_problem = lineage_problem(problems)
    return lineage
