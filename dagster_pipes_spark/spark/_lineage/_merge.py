"""A SQL ``MERGE`` on Spark Connect: the source query of the statement, and each assigned target
column's lineage through the source's."""

from __future__ import annotations

import re
from collections.abc import Sequence

from dagster_pipes_spark.spark._lineage._expressions import REF, closing
from dagster_pipes_spark.spark._lineage._plans import explain_sections, lineage_from_explain
from dagster_pipes_spark.spark._lineage._tree import UnreadableError, split_items
from dagster_pipes_spark.spark._lineage._walker import NONE, ref_name
from dagster_pipes_spark.spark._lineage_types import ColumnLineage, Deps, SourceColumn

_WORD = re.compile(r"[A-Za-z_]\w*")
_ACTIONS = re.compile(r"\bactions: \[")
_CLAUSE = re.compile(r"\b([A-Za-z]+) \[(?=condition: |actions: )")
_ASSIGNED = re.compile(r"^((?:`(?:[^`]|``)*`|[\w$]+))(?:\.\S+)? = (.*)$", re.DOTALL)


def _top_level_words(sql: str) -> list[tuple[str, int, int]]:
    """``(WORD, start, end)`` of the words outside brackets, strings, quoted names and comments."""
    words: list[tuple[str, int, int]] = []
    depth, i, n = 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" and ch != "`" else 1
            i += 1
        elif ch in "([{":
            depth, i = depth + 1, i + 1
        elif ch in ")]}":
            depth, i = depth - 1, i + 1
        elif ch.isalpha() or ch == "_":
            match = _WORD.match(sql, i)
            assert match is not None
            if depth == 0:
                words.append((match.group(0).upper(), i, match.end()))
            i = match.end()
        else:
            i += 1
    return words


def merge_source_query(statement: str) -> str | None:
    """``SELECT * FROM <source>`` for a ``MERGE INTO target USING <source> ON ...`` statement (a
    table or a subquery, with its alias): the query whose columns the MERGE's actions read."""
    words = _top_level_words(statement)
    if not words or words[0][0] != "MERGE":
        return None
    using = next((k for k, w in enumerate(words) if w[0] == "USING"), None)
    if using is None:
        return None
    on = next((w for w in words[using + 1 :] if w[0] == "ON"), None)
    if on is None:
        return None
    source = statement[words[using][2] : on[1]].lstrip().rstrip(" \t")  # a newline ends a -- comment
    return f"SELECT * FROM {source}" if source.strip() else None


def _merge_actions(command: str) -> list[tuple[str, str, bool]]:
    """``(target column, expression, in an INSERT clause)`` of every action Delta's analysed
    ``MergeIntoCommand`` line prints (``Update [actions: [`c` = expr, ...]]``, ``Insert [...]``)."""
    found: list[tuple[str, str, bool]] = []
    for match in _ACTIONS.finditer(command):
        opened = match.end() - 1
        clauses = [c.group(1) for c in _CLAUSE.finditer(command) if c.start() < match.start()]
        kind = clauses[-1] if clauses else ""
        body = command[opened + 1 : closing(command, opened)]
        for item in split_items(body):
            assigned = _ASSIGNED.match(item)
            if assigned is None:
                raise UnreadableError(f"not a MERGE action: {item[:80]!r}")
            column = assigned.group(1)
            if column.startswith("`"):
                column = column[1:-1].replace("``", "`")
            found.append((column, assigned.group(2), kind.startswith("Insert")))
    return found


def merge_lineage_from_explain(
    merge_text: str, source_text: str, target_columns: Sequence[str] | None
) -> ColumnLineage | None:
    """Column lineage of a Delta ``MERGE`` on Spark Connect, like the classic listener reads it from
    ``MergeIntoCommand``: each target column an action assigns gets the source columns its
    expression reads.

    ``merge_text`` is the ``EXPLAIN EXTENDED`` of the statement (Delta's analysed command prints its
    actions, not its source plan); ``source_text`` that of ``SELECT * FROM <source>``, whose lineage
    gives each source column's dependencies by name. The two analyses number attributes differently,
    so an attribute an action reads is the source's when an ``INSERT`` action reads it (inserts
    read nothing else), else by its name when only one side has a column of that name; a target
    column keeps the target's own (no dependency). Anything else leaves its column unresolved.
    """
    try:
        analyzed = explain_sections(merge_text).get("Analyzed Logical Plan") or ""
        command = next((ln for ln in analyzed.splitlines() if ln.startswith("MergeIntoCommand")), None)
        source = lineage_from_explain(source_text)
        if command is None or source is None:
            return None
        actions = _merge_actions(command)
    except UnreadableError:
        return None
    by_name: dict[str, Deps] = {}
    duplicated: set[str] = set()
    for name, deps in source.items():
        key = name.lower()
        if key in by_name:
            duplicated.add(key)
        by_name[key] = deps
    targets = {c.lower() for c in target_columns or ()}
    source_ids: dict[str, set[int]] = {}
    for _, expression, inserted in actions:
        if inserted:
            for match in REF.finditer(expression):
                referenced = ref_name(expression, match.start())
                if referenced is not None:
                    source_ids.setdefault(referenced.lower(), set()).add(int(match.group(1)))

    def deps_of(name: str | None, expr_id: int) -> Deps:
        if name is None:
            return None
        key = name.lower()
        in_source = key in by_name and key not in duplicated
        if expr_id in source_ids.get(key, ()) or (in_source and key not in targets):
            return by_name[key] if in_source else None
        if key in targets and (key not in by_name or source_ids.get(key)):
            return NONE  # the target's own column (the source's of that name is another id)
        return None

    lineage: dict[str, set[SourceColumn]] = {}
    unknown: set[str] = set()
    for column, expression, _ in actions:
        deps_so_far = lineage.setdefault(column, set())
        for match in REF.finditer(expression):
            found = deps_of(ref_name(expression, match.start()), int(match.group(1)))
            if found is None:
                unknown.add(column)
            else:
                deps_so_far |= found
    return {column: None if column in unknown else frozenset(deps) for column, deps in lineage.items()}
