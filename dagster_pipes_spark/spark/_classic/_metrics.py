"""The figures of a write from its executed plan's SQL metrics."""

from __future__ import annotations

import re

from dagster_pipes_spark.spark._classic._py4j import JavaObject
from dagster_pipes_spark.spark._delta import apply_operation_metrics
from dagster_pipes_spark.spark._write_record import OP_DELETE, OP_MERGE, OP_UPDATE, SparkWrite

# Scala's Map.toString of SQLMetrics: "Map(numFiles -> SQLMetric(id: 1, name: Some(...), value: 2), ...)"
_METRIC = re.compile(r"(\w+) -> \w*\(id: -?\d+, name: .*?, value: (-?\d+)\)")


def parse_metrics(text: str) -> dict[str, int]:
    """SQL metric values from the ``toString`` of an executed plan's ``metrics()`` map."""
    return {name: int(value) for name, value in _METRIC.findall(text)}


def write_metrics(executed_plan: JavaObject) -> dict[str, int]:
    """Metrics of the write node of an executed plan.

    The write node is the root, unless the query needed a shuffle: then (Spark 3.4+) the whole write
    runs under adaptive execution, ``AdaptiveSparkPlan -> ResultQueryStage -> Execute <command>``.
    """
    node = executed_plan
    for _ in range(8):
        name = str(node.nodeName())
        if name.startswith("AdaptiveSparkPlan"):
            node = node.executedPlan()
        elif "QueryStage" in name:
            node = node.plan()
        else:
            return parse_metrics(str(node.metrics().toString()))
    return {}


def apply_metrics(write: SparkWrite, metrics: dict[str, int]) -> None:
    """Counters from the executed plan's metrics (write stats, or Delta command metrics)."""
    if not metrics:
        return
    delta_op = {OP_MERGE: "MERGE", OP_UPDATE: "UPDATE", OP_DELETE: "DELETE"}.get(write.operation, "WRITE")
    apply_operation_metrics(write, delta_op, metrics)
