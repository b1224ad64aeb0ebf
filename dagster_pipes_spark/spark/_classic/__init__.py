"""Classic Spark (local, dedicated clusters): a ``QueryExecutionListener`` implemented in Python
through py4j (no JVM jar), reading the analysed plan's write command and the executed plan's
metrics, and the column lineage of the written query from its printed plan (``_lineage``).

One concept per module: ``_py4j`` (Scala values through py4j), ``_facts`` (the plan-facts adapter over
Catalyst), ``_relations`` (a target relation's table or path), ``_commands`` (the write a command
performs, one handler per command of the registry), ``_metrics``, ``_partitions``, ``_lineage`` (what
a write's plan says), ``_merge_builder`` (Delta's Python merge builder) and ``_backend`` (the listener
and the backend).

Callbacks arrive asynchronously on the listener bus (SPARK-25680), on a py4j callback thread: they
only record, never talk to Pipes, and swallow their own errors. On exit the bus is drained with
``LiveListenerBus.waitUntilEmpty(timeout)`` and the listener is unregistered.
"""

from dagster_pipes_spark.spark._classic._backend import ClassicBackend

__all__ = ["ClassicBackend"]
