"""Reading a SQL condition as conjuncts ``(column, operator, literal_sql)``: the form the write
hooks describe what an overwrite replaced in (``replaceWhere``, ``REPLACE WHERE``, static specs)."""

from __future__ import annotations

from typing import Any

from dagster_pipes_spark.spark._sql._literals import number_literal, string_literal
from dagster_pipes_spark.spark._sql._tokens import tokenize

#: A condition's conjunct: (column name as written, operator, literal in Spark SQL).
Conjunct = tuple[str, str, str]

# --- reading conditions -------------------------------------------------------------------------

_OPERATORS = {"=": "=", "==": "=", "<=>": "=", ">=": ">=", ">": ">", "<=": "<=", "<": "<"}
FLIPPED_OPERATORS = {"=": "=", ">=": "<=", ">": "<", "<=": ">=", "<": ">"}
_LITERAL_PREFIXES = ("DATE", "TIMESTAMP", "TIMESTAMP_LTZ", "TIMESTAMP_NTZ")


def _strip_parens(toks: list[Any]) -> list[Any]:
    while len(toks) >= 2 and toks[0].text == "(" and toks[-1].text == ")" and toks[0].kind == "punct":
        depth = 0
        for i, t in enumerate(toks):
            if t.kind == "punct" and t.text == "(":
                depth += 1
            elif t.kind == "punct" and t.text == ")":
                depth -= 1
                if depth == 0 and i < len(toks) - 1:
                    return toks
        toks = toks[1:-1]
    return toks


def _split_and(toks: list[Any]) -> list[list[Any]] | None:
    parts: list[list[Any]] = [[]]
    depth = 0
    for t in toks:
        if t.kind == "punct" and t.text == "(":
            depth += 1
        elif t.kind == "punct" and t.text == ")":
            depth -= 1
        if depth == 0 and t.upper == "AND":
            parts.append([])
            continue
        if depth == 0 and t.upper in ("OR", "NOT", "BETWEEN", "CASE", "XOR"):
            return None
        parts[-1].append(t)
    return [p for p in parts if p]


def _literal_sql(toks: list[Any]) -> str | None:
    toks = _strip_parens(toks)
    if len(toks) == 1 and toks[0].kind == "string":
        return string_literal(toks[0].text)
    if len(toks) == 1 and toks[0].kind == "number" and number_literal(toks[0].text) is not None:
        return toks[0].text
    if len(toks) == 2 and toks[0].kind == "punct" and toks[0].text == "-" and toks[1].kind == "number":
        return "-" + toks[1].text
    if len(toks) == 2 and toks[0].upper in _LITERAL_PREFIXES and toks[1].kind == "string":
        prefix = "TIMESTAMP" if toks[0].upper == "TIMESTAMP_LTZ" else toks[0].upper
        return f"{prefix} {string_literal(toks[1].text)}"
    return None


def _operand_column(toks: list[Any]) -> str | None:
    toks = _strip_parens(toks)
    if not toks or toks[0].kind not in ("word", "quoted"):
        return None
    names: list[str] = []
    expect_name = True
    for t in toks:
        if expect_name and t.kind in ("word", "quoted"):
            names.append(t.text)
            expect_name = False
        elif not expect_name and t.kind == "punct" and t.text == ".":
            expect_name = True
        else:
            return None
    if expect_name or (len(names) == 1 and toks[0].kind == "word" and names[0].upper() in _LITERAL_PREFIXES):
        return None
    return names[-1]


def _conjunct(toks: list[Any]) -> Conjunct | None:
    toks = _strip_parens(toks)
    if len(toks) >= 4 and toks[-1].text == ")" and any(t.upper == "IN" for t in toks):
        at = next(i for i, t in enumerate(toks) if t.upper == "IN")  # col IN (<one literal>)
        column, literal = _operand_column(toks[:at]), _literal_sql(toks[at + 1 :])
        return (column, "=", literal) if column and literal else None
    for i in range(1, len(toks)):
        op_text = ""
        j = i
        while j < len(toks) and toks[j].kind == "punct" and toks[j].text in "<=>!":
            op_text += toks[j].text
            j += 1
        if not op_text:
            continue
        op = _OPERATORS.get(op_text)
        if op is None:
            return None
        left, right = toks[:i], toks[j:]
        column, literal = _operand_column(left), _literal_sql(right)
        if column is not None and literal is not None:
            return column, op, literal
        column, literal = _operand_column(right), _literal_sql(left)
        if column is not None and literal is not None:
            return column, FLIPPED_OPERATORS[op], literal
        return None
    return None


def conjuncts_of_tokens(toks: list[Any], lenient: bool) -> tuple[Conjunct, ...] | None:
    """The conjuncts of a condition given as tokens (see :func:`conjuncts_from_sql`)."""
    toks = _strip_parens(toks)
    pieces = _split_and(toks) if toks else None
    if not pieces:
        return None
    out: list[Conjunct] = []
    for piece in pieces:
        conjunct = _conjunct(piece)
        if conjunct is not None:
            out.append(conjunct)
        elif not lenient:
            return None
    return tuple(out)


def conjuncts_from_sql(condition: str, *, lenient: bool = False) -> tuple[Conjunct, ...] | None:
    """The conjuncts of a boolean Spark SQL expression made only of ``column <op> literal`` terms
    joined with ``AND``; ``None`` when it has any other shape. ``lenient``: keep the terms of that
    shape and skip the other ``AND``-ed terms (for a filter: every row still satisfies the kept ones)."""
    try:
        return conjuncts_of_tokens(tokenize(condition), lenient)
    except Exception:
        return None
