"""The plan-facts adapter over Catalyst plans and expressions (see ``spark._plan_facts``)."""

from __future__ import annotations

from collections.abc import Hashable

from dagster_pipes_spark.spark._classic._py4j import JavaObject, seq_items
from dagster_pipes_spark.spark._plan_facts import Column
from dagster_pipes_spark.spark._sql import literal_from_internal

#: Catalyst's comparison expressions, in SQL.
_COMPARISONS = {
    "EqualTo": "=",
    "EqualNullSafe": "=",
    "GreaterThanOrEqual": ">=",
    "GreaterThan": ">",
    "LessThanOrEqual": "<=",
    "LessThan": "<",
}


class CatalystFacts:
    """:class:`~dagster_pipes_spark.spark._plan_facts.PlanFacts` over Catalyst plans and expressions
    (py4j); columns are keyed by their attribute's expression id."""

    def node_kind(self, node: JavaObject) -> str:
        return str(node.nodeName())

    def only_child(self, node: JavaObject) -> JavaObject | None:
        children = node.children()
        return children.head() if children.size() == 1 else None

    def projection(self, node: JavaObject) -> list[tuple[Hashable | None, Hashable | None]]:
        items: list[tuple[Hashable | None, Hashable | None]] = []
        for item in seq_items(node.projectList()):
            source = item.child() if str(item.nodeName()) == "Alias" else item
            passed = int(source.exprId().id()) if str(source.nodeName()) == "AttributeReference" else None
            items.append((int(item.exprId().id()), passed))
        return items

    def filter_condition(self, node: JavaObject) -> JavaObject:
        return node.condition()

    def operator(self, expr: JavaObject) -> str | None:
        name = str(expr.nodeName())
        return "and" if name == "And" else _COMPARISONS.get(name)

    def operands(self, expr: JavaObject) -> tuple[JavaObject, JavaObject]:
        return expr.left(), expr.right()

    def column(self, expr: JavaObject) -> Column | None:
        if str(expr.nodeName()) != "AttributeReference":
            return None
        return int(expr.exprId().id()), str(expr.name())

    def literal(self, expr: JavaObject) -> str | None:
        """A foldable expression (a ``Literal``, ``CAST('2024-01-02' AS DATE)``) in Spark SQL."""
        if not expr.foldable():
            return None
        return literal_from_internal(str(expr.dataType().typeName()), expr.eval(None))

    def sql(self, expr: JavaObject) -> str | None:
        return None


FACTS = CatalystFacts()
