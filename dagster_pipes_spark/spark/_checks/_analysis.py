"""Before any Spark job: the data as a DataFrame, its columns, every check analyzed (never executed)
so that bad input is rejected naming the check; and Spark errors told in one line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._checks._model import PREFIX, TOTAL, Columns, Compiled

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


#: The function these checks are evaluated by, named in its errors.
METHOD = "report_spark_checks"
UNRESOLVED = ("UNRESOLVED_COLUMN", "UNRESOLVED_FIELD", "FIELD_NOT_FOUND", "UNRESOLVED_ATTRIBUTE")


def error_message(exc: BaseException) -> str:
    """The first line of a Spark error, without the SQLSTATE and plan that follow."""
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    for cut in (" SQLSTATE:", "; line "):
        if cut in line:
            line = line[: line.index(cut)]
    return line.strip().rstrip(" ;.")


def error_condition(exc: BaseException) -> str:
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        return str(getter() or "") if getter else ""
    except Exception:
        return ""


def explain_error(exc: BaseException, columns: Columns, aggregate: bool = False) -> str:
    """Why a check does not analyze, in words a user can act on."""
    condition = error_condition(exc)
    message = error_message(exc)
    if condition.startswith("PARSE") or any(c.__name__ == "ParseException" for c in type(exc).__mro__):
        return f"the expression does not parse: {message}"
    if aggregate and (condition.startswith("MISSING_GROUP_BY") or "group by" in message.lower()):
        return (
            f"expect_aggregate reads a column outside an aggregate function ({message}); write"
            f" conditions over aggregates such as sum(...), count(...), max(...)"
        )
    if condition.startswith(UNRESOLVED):
        return (
            f"it reads a column the data does not have: {message}; available columns: {columns.described()}"
        )
    return f"it cannot be analyzed: {message}"


_quiet = threading.local()


class _InQuietBlock(logging.Filter):
    """Drops the records a thread logs inside :func:`quiet_spark_errors`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "depth", 0)


_QUIET_FILTER = _InQuietBlock()


@contextmanager
def quiet_spark_errors() -> Iterator[None]:
    """Silence pyspark 4's query-context error log in this thread while errors we expect, re-raise
    as ``DagsterPipesError`` or report, are raised (other threads keep logging)."""
    try:
        from pyspark.logger import PySparkLogger  # the logger class pyspark logs these errors with
    except ImportError:
        yield
        return
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logger = PySparkLogger.getLogger(name)
        if _QUIET_FILTER not in logger.filters:
            logger.addFilter(_QUIET_FILTER)
    _quiet.depth = getattr(_quiet, "depth", 0) + 1
    try:
        yield
    finally:
        _quiet.depth -= 1


# --- data -------------------------------------------------------------------------------------


def as_dataframe(data: Any, spark: SparkSession | None) -> DataFrame:
    """``data`` as a DataFrame: itself, or the table it names."""
    if isinstance(data, str):
        session = spark
        if session is None:
            from pyspark.sql import SparkSession

            session = SparkSession.getActiveSession()
        if session is None:
            raise DagsterPipesError(
                f"`{METHOD}` got the table name {data!r} but no SparkSession is active; pass `spark=`."
            )
        try:
            with quiet_spark_errors():
                return session.table(data)
        except Exception as exc:
            raise DagsterPipesError(
                f"`{METHOD}` cannot read the table {data!r}: {error_message(exc)}"
            ) from None
    if hasattr(data, "selectExpr") and hasattr(data, "schema"):
        return data
    raise DagsterPipesError(
        f"Invalid `data` of `{METHOD}`: expected a DataFrame (classic or Spark Connect) or a table name,"
        f" got {type(data).__name__}."
    )


def columns_of(df: DataFrame, what: str) -> Columns:
    """The data's columns (analysis only)."""
    try:
        with quiet_spark_errors():
            fields = df.schema.fields
    except Exception as exc:
        raise DagsterPipesError(f"`{METHOD}` cannot read {what}: {error_message(exc)}") from None
    return Columns(tuple((f.name, f.dataType.simpleString()) for f in fields))


def _analyze(df: DataFrame, exprs: Sequence[str]) -> dict[str, str]:
    with quiet_spark_errors():
        return {f.name: f.dataType.simpleString() for f in df.selectExpr(*exprs).schema.fields}


def _validation_exprs(c: Compiled) -> list[str]:
    probe = [f"first(({c.probe})) AS {PREFIX}{c.index}_probe"] if c.probe else []
    if c.where:
        probe.append(f"first(({c.where})) AS {PREFIX}{c.index}_wprobe")
    return probe + [f"{sql} AS {alias}" for alias, sql in c.aggregates.items()]


def _type_problem(c: Compiled, types: Mapping[str, str]) -> str | None:
    where = types.get(f"{PREFIX}{c.index}_wprobe")
    if c.where and where is not None and where != "boolean":
        return f"the `where` predicate is {where}, not boolean"
    if c.typed is not None:  # an aggregate whose own type is constrained (expect_aggregate)
        kind = types.get(c.typed)
        if kind is None or kind in c.check.probe_types:
            return None
        return (
            f"the expression is {kind}, not boolean; write a condition over aggregates that is TRUE when good"
        )
    kind = types.get(f"{PREFIX}{c.index}_probe")
    allowed = c.check.probe_types
    if c.probe is None or kind is None or kind in allowed:
        return None
    if allowed == ("boolean",):
        return f"the expression is {kind}, not boolean; write a condition that is TRUE for a good row"
    return f"the column is {kind}; it must be one of {', '.join(allowed)}"


def aggregate_exprs(compiled: Sequence[Compiled], probes: bool) -> list[str]:
    """The shared aggregation: ``count(1)`` and every check's aggregates, with the typed probes when
    analyzing (executed, they would cost a quarter more: the plan run selects the aggregates only,
    and Spark prunes the probes)."""
    exprs = [f"count(1) AS {TOTAL}"]
    for c in compiled:
        exprs += _validation_exprs(c) if probes else [f"{sql} AS {a}" for a, sql in c.aggregates.items()]
    return exprs


def validate(df: DataFrame, compiled: Sequence[Compiled], columns: Columns) -> DataFrame | None:
    """Analyze every check (no Spark job); sets ``error`` on the checks that do not analyze.

    Returns the analyzed aggregation (with probes) when every check analyzed in one go."""
    pending = [c for c in compiled if c.needs_job and c.error is None]
    if not pending:
        return None
    plan: DataFrame | None = None
    types: dict[str, str] | None = None
    try:
        with quiet_spark_errors():
            analyzed = df.selectExpr(*aggregate_exprs(pending, probes=True))
            types = {f.name: f.dataType.simpleString() for f in analyzed.schema.fields}
            plan = analyzed
    except Exception:
        pass  # some check does not analyze: found below, one check at a time
    for c in pending:
        found = types
        if found is None:  # find the culprits, one check at a time
            if c.where:  # the predicate alone: its own parse errors, its type
                try:
                    _analyze(df, [c.where])
                    c.error = _type_problem(
                        c, _analyze(df, [f"first(({c.where})) AS {PREFIX}{c.index}_wprobe"])
                    )
                except Exception as exc:
                    c.error = "`where`: " + explain_error(exc, columns)
                if c.error:
                    continue
            try:
                if c.probe:  # the user's expression alone first: its own parse errors, its type
                    _analyze(df, [c.probe])
                    found = _analyze(df, _validation_exprs(c)[:1])
                    c.error = _type_problem(c, found)
                    if c.error:
                        continue
                found = _analyze(df, [f"count(1) AS {TOTAL}", *_validation_exprs(c)])
            except Exception as exc:
                c.error = explain_error(exc, columns, aggregate=c.typed is not None)
                continue
        c.error = _type_problem(c, found)
    return plan if not any(c.error for c in pending) else None
