"""What a written plan says about its rows, read once for every plan representation.

A mechanism sees the plans it observes in its own representation: Catalyst nodes and expressions
through py4j on classic sessions, the client's plan and ``Column`` objects on Spark Connect. Each
gives a small adapter, :class:`PlanFacts`, answering a few questions about one node or expression
(its kind, its only child, what a projection passes on, a column's identity and name, a literal's
SQL); the walkers here are written once over it:

* :func:`condition_conjuncts`: the ``column <op> literal`` terms of a condition joined with ``AND``;
* :func:`spine_conjuncts`: the terms every row of a written query satisfies, from the filters on
  its spine, followed through projections that pass the written columns on.

Columns are followed by a *key* the representation gives them (an attribute's expression id on
classic, a lower-cased name on Connect) and reported under the written column's name.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any, Protocol

from dagster_pipes_spark.spark._sql import FLIPPED_OPERATORS, Conjunct, conjuncts_from_sql

#: Plan nodes between a write and a filter below it that keep every row's column values (Catalyst's
#: names and the Connect client's).
ROW_PRESERVING = frozenset(
    {"SubqueryAlias", "View", "Repartition", "RepartitionByExpression", "RebalancePartitions", "Sort"}
    | {"Distinct", "Deduplicate", "GlobalLimit", "LocalLimit", "Limit", "Offset", "Sample"}
    | {"ResolvedHint", "Hint", "CollectMetrics", "WriteFiles"}
)
#: The comparison operators of a condition term, in SQL.
COMPARISONS = frozenset(FLIPPED_OPERATORS)

#: A column's identity in one representation and its name.
Column = tuple[Hashable, str]


class PlanFacts(Protocol):
    """One plan representation, as the walkers need to see it."""

    def node_kind(self, node: Any) -> str:
        """``Project``, ``Filter`` or any other node's class name."""
        ...

    def only_child(self, node: Any) -> Any | None:
        """The node's child when it has exactly one, else ``None``."""
        ...

    def projection(self, node: Any) -> list[tuple[Hashable | None, Hashable | None]]:
        """Per item of a ``Project``: ``(output key, input key)``, the input key when the item passes a
        column on unchanged (renamed or not), else ``None``; an output key is ``None`` when the
        representation cannot tell which column an item makes (then nothing is followed further)."""
        ...

    def filter_condition(self, node: Any) -> Any:
        """The condition of a ``Filter``."""
        ...

    def operator(self, expr: Any) -> str | None:
        """``and``, a comparison in SQL (``=``, ``>=``, ``>``, ``<=``, ``<``) or ``None``."""
        ...

    def operands(self, expr: Any) -> tuple[Any, Any]:
        """The two sides of an ``and`` or a comparison."""
        ...

    def column(self, expr: Any) -> Column | None:
        """The column an expression is, or ``None``."""
        ...

    def literal(self, expr: Any) -> str | None:
        """The SQL of a constant expression, or ``None``."""
        ...

    def sql(self, expr: Any) -> str | None:
        """The text of a condition given as SQL (``where("...")``, ``F.expr``), or ``None``."""
        ...


#: The value of a followed column that keeps its own name (the walk started from "every column").
OWN_NAME = ""


def _written_name(column: Column, columns: Mapping[Any, str] | None) -> str | None:
    if columns is None:
        return column[1]
    target = columns.get(column[0])
    return None if target is None else target or column[1]


def _term(facts: PlanFacts, expr: Any, op: str, columns: Mapping[Any, str] | None) -> Conjunct | None:
    left, right = facts.operands(expr)
    for column_side, literal_side, flipped in ((left, right, False), (right, left, True)):
        column = facts.column(column_side)
        name = _written_name(column, columns) if column is not None else None
        literal = facts.literal(literal_side) if name is not None else None
        if name is not None and literal is not None:
            return (name, FLIPPED_OPERATORS[op] if flipped else op, literal)
    return None


def condition_conjuncts(
    facts: PlanFacts, condition: Any, columns: Mapping[Any, str] | None = None
) -> tuple[list[Conjunct], bool]:
    """``(terms, complete)``: the ``column <op> literal`` terms of an ``AND`` of ``condition`` on the
    columns ``columns`` maps (key -> written name, :data:`OWN_NAME` to keep the column's; ``None``:
    any column, by its name), and whether every term was one. A condition given as SQL text names its
    columns: they are looked up by lower-cased name (the only representation with such text keys its
    columns so)."""
    found: list[Conjunct] = []
    complete = True
    stack = [condition]
    while stack:
        expr = stack.pop()
        text = facts.sql(expr)
        if text is not None:
            strict = conjuncts_from_sql(text)
            terms = strict if strict is not None else conjuncts_from_sql(text, lenient=True) or ()
            complete = complete and strict is not None
            for name, op, literal in terms:
                target = _written_name((name.lower(), name), columns)
                if target is None:
                    complete = False
                else:
                    found.append((target, op, literal))
            continue
        operator = facts.operator(expr)
        if operator == "and":
            left, right = facts.operands(expr)
            stack += [right, left]
            continue
        term = _term(facts, expr, operator, columns) if operator in COMPARISONS else None
        if term is None:
            complete = False
        else:
            found.append(term)
    return found, complete


def spine_conjuncts(facts: PlanFacts, query: Any, columns: Mapping[Any, str] | None) -> list[Conjunct]:
    """The terms every row of a written ``query`` satisfies on the written ``columns`` (key -> written
    name; ``None``: every column under its own name): those of the filters on the query's spine,
    followed through projections that pass the columns on."""
    found: list[Conjunct] = []
    node = query
    for _ in range(64):
        kind = facts.node_kind(node)
        if kind == "Project":
            items = facts.projection(node)
            if any(out is None for out, _ in items):
                break
            passed: dict[Hashable, str] = {}
            for out, source in items:
                if source is None:
                    continue
                if columns is None:
                    passed[source] = OWN_NAME
                elif out in columns:
                    passed[source] = columns[out]
            columns = passed
        elif kind == "Filter":
            found.extend(condition_conjuncts(facts, facts.filter_condition(node), columns)[0])
        elif kind not in ROW_PRESERVING:
            break
        if columns is not None and not columns:
            break
        child = facts.only_child(node)
        if child is None:
            break
        node = child
    return found


__all__ = [
    "COMPARISONS",
    "OWN_NAME",
    "ROW_PRESERVING",
    "Column",
    "PlanFacts",
    "condition_conjuncts",
    "spine_conjuncts",
]
