"""Row counts of DataFrame writes: a string-named observation (``count(1)``) on top of the written
plan, whose value the server returns with the write command's ExecutionInfo."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._connect._registry import PATCHES, STATE

ROWS_METRIC = "__dagster_pipes_rows"


class Observed:
    """A row-count ``CollectMetrics`` put on top of a writer's plan, and what came back.

    A string-named observation (not an ``Observation`` object, whose delivery waits on the
    server's listener bus): the server sends its value with the write command's response. Spark 4
    clients hand it to the writer's ``_callback`` (the command's ExecutionInfo); Spark 3.5 clients
    receive it and drop it, so :func:`wrap_fetch` keeps it for the observations open on this thread.
    Either way the number is the server's own count of the written rows, or none.
    """

    def __init__(self, writer: Any) -> None:
        from pyspark.sql.connect import plan

        try:
            from pyspark.sql.connect.functions import builtin as sf
        except ImportError:  # Spark 3.5: a module, not a package
            from pyspark.sql.connect import functions as sf  # type: ignore[no-redef]

        self.writer = writer
        self.name = f"{ROWS_METRIC}_{uuid.uuid4().hex}"
        self.child = writer._write._child
        self.execution_info: Any = None
        self.observed: Any = None  # a fetched PlanObservedMetrics (Spark 3.5 clients)
        writer._write._child = plan.CollectMetrics(self.child, self.name, [sf.count(sf.lit(1)).alias("rows")])
        self.callback = getattr(writer, "_callback", None)
        if self.callback is None:
            observing().append(self)
            return
        callback = self.callback

        def capture(execution_info: Any) -> None:
            self.execution_info = execution_info
            callback(execution_info)

        writer._callback = capture

    @staticmethod
    def supported(writer: Any) -> bool:
        """Whether the writer's plan can be observed and the value can come back: through the
        writer's ExecutionInfo callback (Spark 4), else through the instrumented fetch (3.5)."""
        if not hasattr(getattr(writer, "_write", None), "_child"):
            return False
        return getattr(writer, "_callback", None) is not None or fetch_instrumented()

    def restore(self) -> None:
        self.writer._write._child = self.child
        if self.callback is not None:
            self.writer._callback = self.callback
        else:
            with contextlib.suppress(ValueError):
                observing().remove(self)

    def rows(self) -> int | None:
        """The observed row count, or None when the server sent none."""
        value: Any = None
        try:
            if self.execution_info is not None:
                value = dict(self.execution_info.flows).get(self.name, {}).get("rows")
            elif self.observed is not None and len(self.observed.metrics) == 1:
                literal = self.observed.metrics[0]
                value = getattr(literal, literal.WhichOneof("literal_type") or "", None)
        except Exception:
            return None
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def plan_dataframe(plan: Any, spark: Any) -> Any:
    """A Connect DataFrame of a logical plan (``DataFrame(plan, session)`` from Spark 4;
    ``DataFrame.withPlan(plan, session)`` in Spark 3.5, whose constructor takes the session only)."""
    from pyspark.sql.connect.dataframe import DataFrame

    with_plan = getattr(DataFrame, "withPlan", None)
    return with_plan(plan, spark) if with_plan is not None else DataFrame(plan, spark)


def observing() -> list[Observed]:
    """The observations of writes in progress on this thread (Spark 3.5 clients)."""
    pending = getattr(STATE, "observing", None)
    if pending is None:
        pending = STATE.observing = []
    return pending


def fetch_instrumented() -> bool:
    return PATCHES.wrapped("_execute_and_fetch")


def wrap_fetch(original: Callable[..., Any]) -> Callable[..., Any]:
    """``SparkConnectClient._execute_and_fetch`` keeping the observed metrics (a list of objects
    with ``name`` and ``metrics``) that belong to observations open on this thread."""

    @functools.wraps(original)
    def _execute_and_fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        pending = getattr(STATE, "observing", None)
        if pending:
            try:
                by_name = {o.name: o for o in pending}
                for item in result if isinstance(result, tuple) else ():
                    for metric in item if isinstance(item, list) else ():
                        observed = by_name.get(getattr(metric, "name", None))
                        if observed is not None and hasattr(metric, "metrics"):
                            observed.observed = metric
            except Exception:
                pass  # no row count rather than a failed write
        return result

    return _execute_and_fetch
