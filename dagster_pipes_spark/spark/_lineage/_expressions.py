"""Printed expressions: what a call's value derives from, subqueries, lambdas and attribute
references, and the arguments a conditional only tests (left out: they are indirect)."""

from __future__ import annotations

import re

from dagster_pipes_spark.spark._lineage._tree import CLOSE, OPEN, UnreadableError

# Calls whose value is not derived from their arguments' values: ranks (a position in an order).
# A window's specification (PARTITION BY / ORDER BY / frame) only arranges rows. (An aggregate's
# argument, ``count``'s included, is a direct input: OpenLineage's AGGREGATION.)
NO_VALUE_CALL = re.compile(
    r"(?<![\w$.])(?:row_number|rank|dense_rank|percent_rank|cume_dist|ntile|windowspecdefinition)\("
)
# Conditionals: the part that is only tested decides which value is returned, it is not one
# (OpenLineage's CONDITIONAL, an indirect dependency). As the analysed plan prints them:
# ``CASE WHEN (c) THEN v ... ELSE v END``, ``if ((c)) v else v``, ``nullif(v, tested)``,
# ``nvl2(tested, v, v)``.
_CASE_WORD = re.compile(r"(?<![\w$.#`])(CASE|WHEN|THEN|ELSE|END)(?![\w$#])")
_TESTING_CALL = re.compile(r"(?<![\w$.])(if|nullif|nvl2) ?\(")
#: the argument of each conditional call that is only tested
_TESTED_ARGUMENT = {"nullif": 1, "nvl2": 0}
SUBQUERY = re.compile(r"(?<![\w-])(scalar-subquery|exists|list|lateral-subquery)#\d+ ")
LAMBDA_VAR = re.compile(r"lambda [\w$]*#(\d+)L?")
#: an attribute reference ``name#id``; a Python UDF's call prints its result id after the call
#: (``seen(order_id#7L)#63``), which is no reference
REF = re.compile(r"(?<!\))#(\d+)")


def closing(text: str, open_index: int) -> int:
    """Index of the bracket closing the one at ``open_index``."""
    depth = 0
    for i in range(open_index, len(text)):
        if text[i] in OPEN:
            depth += 1
        elif text[i] in CLOSE:
            depth -= 1
            if depth == 0:
                return i
    raise UnreadableError("unbalanced expression")


def arguments(text: str, open_index: int) -> list[tuple[int, int]]:
    """Spans of the top-level arguments of the call whose ``(`` is at ``open_index``."""
    close = closing(text, open_index)
    spans, start, depth = [], open_index + 1, 0
    for i in range(open_index + 1, close):
        if text[i] in OPEN:
            depth += 1
        elif text[i] in CLOSE:
            depth -= 1
        elif text[i] == "," and depth == 0:
            spans.append((start, i))
            start = i + 1
    spans.append((start, close))
    return spans


def _blank(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def without_tests(text: str) -> str:
    """``text`` with what conditionals only test blanked out (same length: positions hold)."""
    for match in reversed(list(_TESTING_CALL.finditer(text))):  # inner (later) calls first
        name, open_index = match.group(1), match.end() - 1
        if name == "if":  # ``if (predicate) value else value``
            text = _blank(text, open_index, closing(text, open_index) + 1)
            continue
        spans = arguments(text, open_index)
        index = _TESTED_ARGUMENT[name]
        if index < len(spans):
            text = _blank(text, *spans[index])
    cases: list[int | None] = []  # per open CASE: where its current WHEN condition starts
    for match in list(_CASE_WORD.finditer(text)):
        word = match.group(1)
        if word == "CASE":
            cases.append(None)
        elif not cases:
            raise UnreadableError(f"{word} outside CASE")
        elif word == "WHEN" and cases[-1] is None:
            cases[-1] = match.end()
        elif word == "THEN" and cases[-1] is not None:
            text = _blank(text, cases[-1], match.start())
            cases[-1] = None
        elif word == "END":
            cases.pop()
    if cases:
        raise UnreadableError("unterminated CASE")
    return text
