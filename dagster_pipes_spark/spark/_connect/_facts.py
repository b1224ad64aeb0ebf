"""The plan-facts adapter over the Connect client's plans and ``Column`` expressions (see
``spark._plan_facts``)."""

from __future__ import annotations

import re
from collections.abc import Hashable
from typing import Any

from dagster_pipes_spark.spark._plan_facts import Column, condition_conjuncts
from dagster_pipes_spark.spark._sql import Conjunct, literal_from_internal

_COMPARISONS = {"==": "=", "<=>": "=", ">=": ">=", ">": ">", "<=": "<=", "<": "<"}
PLAIN_NAME = re.compile(r"`?([A-Za-z_][A-Za-z0-9_]*)`?")


class ClientPlanFacts:
    """:class:`~dagster_pipes_spark.spark._plan_facts.PlanFacts` over the Connect client's plans and
    ``Column`` expressions; columns are keyed by their lower-cased name (a projection passes a
    column on only under its own name: the client plan does not say which column a computed item
    makes)."""

    def node_kind(self, node: Any) -> str:
        return type(node).__name__

    def only_child(self, node: Any) -> Any | None:
        return getattr(node, "_child", None)

    def projection(self, node: Any) -> list[tuple[Hashable | None, Hashable | None]]:
        names = [reference_name(column) for column in node._columns]
        return [(name, name) for name in names]

    def filter_condition(self, node: Any) -> Any:
        return node.filter

    def operator(self, expr: Any) -> str | None:
        expr = getattr(expr, "_expr", expr)
        if type(expr).__name__ != "UnresolvedFunction" or len(expr._args) != 2:
            return None
        name = str(expr._name).lower()
        return "and" if name == "and" else _COMPARISONS.get(name)

    def operands(self, expr: Any) -> tuple[Any, Any]:
        left, right = getattr(expr, "_expr", expr)._args
        return left, right

    def column(self, expr: Any) -> Column | None:
        if type(expr).__name__ != "ColumnReference":
            return None
        name = str(expr.name()).split(".")[-1].strip("`")
        return name.lower(), name

    def literal(self, expr: Any) -> str | None:
        if type(expr).__name__ != "LiteralExpression":
            return None
        return literal_from_internal(expr._dataType.typeName(), expr._value)

    def sql(self, expr: Any) -> str | None:
        expr = getattr(expr, "_expr", expr)
        return str(expr._expr) if type(expr).__name__ == "SQLExpression" else None


FACTS = ClientPlanFacts()


def condition_conjuncts_of(column: Any) -> tuple[Conjunct, ...] | None:
    """Conjuncts of a client-side ``Column`` condition (SQL text or comparisons of a column with a
    literal joined with ``&``); ``None`` when it has any other term."""
    found, complete = condition_conjuncts(FACTS, column)
    return tuple(found) if complete else None


def reference_name(column: Any) -> str | None:
    """The column name a projection passes on unchanged, or ``None`` for anything else."""
    expr = getattr(column, "_expr", column)
    if isinstance(expr, str):
        text = expr
    elif type(expr).__name__ == "ColumnReference":
        text = str(expr.name())
    elif type(expr).__name__ == "SQLExpression":
        text = str(expr._expr)
    else:
        return None
    match = PLAIN_NAME.fullmatch(text.strip())
    return match.group(1).lower() if match else None
