"""Reading a plan's column lineage: the registry of node rules and the entry points (a printed
analysed plan, an ``EXPLAIN EXTENDED`` text), and one asset's lineage over several writes."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from dagster_pipes_spark.spark._commands import carries_query
from dagster_pipes_spark.spark._lineage._nodes import BATCH_NODES
from dagster_pipes_spark.spark._lineage._streams import STREAMING_NODES, streaming_text
from dagster_pipes_spark.spark._lineage._tree import (
    Node,
    UnknownNodeError,
    UnreadableError,
    attributes,
    parse_tree,
)
from dagster_pipes_spark.spark._lineage._walker import NONE, NodeHandler, Walker
from dagster_pipes_spark.spark._lineage_types import ColumnLineage, SourceColumn
from dagster_pipes_spark.spark._targets import normalize_path

#: Every node rule, by node name.
NODES: dict[str, NodeHandler] = {**BATCH_NODES, **STREAMING_NODES}


def lineage_from_tree(
    text: str,
    columns: Sequence[str] | None = None,
    paths: Mapping[int, str] | None = None,
    problems: list[UnreadableError] | None = None,
) -> ColumnLineage | None:
    """Column lineage of the query printed in ``text`` (an analysed plan's ``treeString``; when its
    root is a write command, of the query it writes).

    ``columns`` are the written column names (used when they match the query's width: a table's
    columns for an insert); ``paths`` maps attribute ids of path relations (printed without name)
    to their path. ``None`` when the plan cannot be read at all. ``problems``, when given, receives
    why columns were left out (an :class:`UnknownNodeError` names a node no rule reads).
    """
    try:
        root = parse_tree(streaming_text(text))
    except (UnreadableError, RecursionError) as exc:
        if problems is not None:
            problems.append(exc if isinstance(exc, UnreadableError) else UnreadableError("too deep"))
        return None
    return _lineage_of(root, columns, paths, problems)


def _lineage_of(
    root: Node,
    columns: Sequence[str] | None,
    paths: Mapping[int, str] | None,
    problems: list[UnreadableError] | None = None,
) -> ColumnLineage | None:
    """Column lineage of a parsed plan (:func:`lineage_from_tree`)."""
    walker = Walker(paths or {}, NODES)
    try:
        while carries_query(root.name) and (root.children or root.inner):
            root = (root.children or root.inner)[-1]
        output = walker.evaluate(root)
    except (UnreadableError, RecursionError) as exc:
        if problems is not None:
            found = walker.problems() or [
                exc if isinstance(exc, UnreadableError) else UnreadableError("too deep")
            ]
            problems.extend(found)
        return None
    if problems is not None and any(deps is None for _, _, deps in output):
        problems.extend(walker.problems())
    names = list(columns) if columns is not None and len(columns) == len(output) else None
    lineage: ColumnLineage = {}
    for i, (_, name, deps) in enumerate(output):
        lineage[names[i] if names else name] = deps
    return lineage


_SECTION = re.compile(r"^== (.+) ==$", re.MULTILINE)
_FILE_SCAN = re.compile(
    r"FileScan \S+ \[(?P<attrs>[^\]]*)\].*?Location: \w+\((?P<count>\d+) paths?\)\[(?P<paths>[^\]]*)\]"
)


def lineage_problem(problems: Sequence[UnreadableError]) -> tuple[str, bool] | None:
    """``(why columns were left out, whether a plan node is not understood)`` of a reading's
    problems, or None when there were none: the nodes no rule reads are named first."""
    if not problems:
        return None
    unknown = sorted({p.node for p in problems if isinstance(p, UnknownNodeError)})
    if unknown:
        return f"plan node(s) not understood: {', '.join(unknown)}", True
    return "; ".join(dict.fromkeys(str(p) for p in problems)), False


def explain_sections(text: str) -> dict[str, str]:
    """The sections of an ``EXPLAIN EXTENDED`` text by title (``Analyzed Logical Plan``...)."""
    sections: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections[match.group(1)] = text[match.end() : end].strip("\n")
    return sections


def scan_paths(physical_plan: str) -> dict[int, str]:
    """Attribute id -> path, from the ``FileScan`` nodes of a physical plan reading one path
    without a table name (a truncated location, ending in ``...``, is not used)."""
    paths: dict[int, str] = {}
    for match in _FILE_SCAN.finditer(physical_plan):
        location = match.group("paths")
        if match.group("count") != "1" or location.endswith("...") or ", " in location:
            continue
        try:
            ids = [expr_id for _, expr_id in attributes(match.group("attrs"))]
        except UnreadableError:
            continue
        for expr_id in ids:
            paths[expr_id] = normalize_path(location)
    return paths


def lineage_from_explain(
    text: str, columns: Sequence[str] | None = None, problems: list[UnreadableError] | None = None
) -> ColumnLineage | None:
    """Column lineage from an ``EXPLAIN EXTENDED`` text (Spark Connect): the analysed plan, with
    the paths of file relations taken from the physical plan's scans. ``problems`` as for
    :func:`lineage_from_tree`."""
    sections = explain_sections(text)
    analyzed = sections.get("Analyzed Logical Plan")
    if not analyzed:
        if problems is not None:
            problems.append(UnreadableError("no analysed plan in the explained text"))
        return None
    lines = analyzed.split("\n")
    # the output schema comes first, when there is one (a write command has none): then the next
    # line is the plan's root, not a child line
    if len(lines) > 1 and not lines[1].startswith((" ", ":", "+")):
        lines = lines[1:]
    paths = scan_paths(sections.get("Physical Plan", ""))
    return lineage_from_tree("\n".join(lines), columns, paths, problems)


#: The column that marks each plan of a combined explain (:func:`lineage_from_combined_explain`).
PLAN_MARKER = "__dagster_pipes_plan"
_MARKED = re.compile(r"Project \[(\d+) AS " + PLAN_MARKER + r"#\d+L?\]")


def lineage_from_combined_explain(
    text: str, columns: Sequence[Sequence[str] | None]
) -> list[ColumnLineage | None] | None:
    """Column lineage of several plans explained as one: the ``EXPLAIN EXTENDED`` of a union of
    ``plan_i.select(lit(i).alias(PLAN_MARKER))`` (Spark Connect: one request for every written plan
    instead of one each). Each plan is read from the analysed plan below its marked projection, as
    :func:`lineage_from_explain` reads it alone; ``columns[i]`` are plan ``i``'s written columns.
    ``None`` when the text cannot be split (every plan found once); a plan not understood gets
    ``None`` in its place. Plans reading a path need the physical plan's scans, which the marker's
    projection prunes: they are explained alone."""
    analyzed = explain_sections(text).get("Analyzed Logical Plan")
    if not analyzed:
        return None
    lines = analyzed.split("\n")
    if len(lines) > 1 and not lines[1].startswith((" ", ":", "+")):
        lines = lines[1:]
    try:
        root = parse_tree(streaming_text("\n".join(lines)))
    except UnreadableError:
        return None
    found: dict[int, Node] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        match = _MARKED.fullmatch(node.content.strip())
        if match is not None and len(node.children) == 1:
            index = int(match.group(1))
            if index in found:
                return None
            found[index] = node.children[0]
            continue
        stack.extend(node.children)
    if sorted(found) != list(range(len(columns))):
        return None
    return [_lineage_of(found[i], columns[i], None) for i in range(len(columns))]


def merge_lineage(lineages: Sequence[ColumnLineage | None]) -> dict[str, frozenset[SourceColumn]] | None:
    """One asset's lineage over its writes: per column, the union over the writes that wrote it.
    ``None`` when a write's lineage is unknown; a column unresolved in any write is left out."""
    merged: dict[str, frozenset[SourceColumn]] = {}
    unresolved: set[str] = set()
    for lineage in lineages:
        if lineage is None:
            return None
        for column, deps in lineage.items():
            if deps is None:
                unresolved.add(column)
            else:
                merged[column] = merged.get(column, NONE) | deps
    return {column: deps for column, deps in merged.items() if column not in unresolved}
