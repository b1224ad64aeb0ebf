"""Evaluating checks on Spark data and reporting them: :func:`report_spark_checks`, and the checks
:func:`~dagster_pipes_spark.spark.report_spark_writes` runs on what a block wrote.

The Spark work of one call, classic or Connect alike (only ``DataFrame.selectExpr``, ``where``,
``groupBy``, ``join``, ``unionAll`` and ``collect``, no ``SparkContext``):

1. analysis only: the schema; per ``relationships`` check, the type of its column and the
   ``to`` table or DataFrame's field, whose distinct keys (cast to that type) are left-joined to the
   data with a marker (broadcast, unless the session disables broadcast joins; string keys are
   joined on their ``xxhash64``, the keys sharing a hash collected into a list the value is looked
   up in: a probe on one long key costs a fraction of one on a string); then the aggregation below
   plus a typed probe per expression and ``where=`` predicate (``first(<expression>)``, to check it
   is boolean / a time) -- ``df.selectExpr(...).schema``, parsed and analyzed, never executed; per
   check only when it fails, to name the culprit;
2. one action, one ``collect()`` of a ``unionByName`` of one-row parts: that aggregation without
   the probes (selected away, so Spark prunes them) -- a single global aggregation with ``count(1)``
   and every check's aggregates (``expect_aggregate``'s condition and the aggregates it reads among
   them) over the data with the keys joined -- and, per ``unique`` check, the number of its
   distinct keys: the rows first of their key (``row_number()`` over a window partitioned by the
   key: one shuffle and one sort of the key columns alone). A ``count(DISTINCT key)`` inside the
   aggregation would make Spark group every other aggregate by the key (several times slower);
   the price is that the data is read once more per ``unique`` check (its key columns only). Spark
   computes each row-level condition once per row (common subexpressions, a ``where=`` shared by
   several checks included, are evaluated in the projection feeding the aggregation), and the code
   it generates for dozens of checks stays far below the JIT's method size limit;
3. only when a row-level check failed and ``sample_size > 0``: one more action fetching up to
   ``sample_size`` failing rows per failed check -- a ``row_number() <= n`` per check over the rows
   failing any check (Spark applies it per partition before the shuffle), and for ``unique`` the
   rows of up to ``n`` duplicated keys -- all in one ``unionAll``.

Only if the aggregation fails at run time (an expression that analyzes but raises on some row, such
as a failing ANSI cast) is each check aggregated alone, to report the failing ones with their error
and the others with their figures. Nothing is cached.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import reduce
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark._protocol import coerce_asset_key
from dagster_pipes_spark.spark._checks._definitions import (
    PREFIX,
    TOTAL,
    ChecksArg,
    Columns,
    Compiled,
    SparkCheck,
    SparkCheckResult,
    Verdict,
    add_sample,
    coerce_checks,
    make_result,
)
from dagster_pipes_spark.spark._pipes import log, reports, resolve_asset_key
from dagster_pipes_spark.spark._targets import quote_identifier

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from dagster_pipes_spark.spark._record import SparkWrite

METHOD = "report_spark_checks"
DEFAULT_SAMPLE_SIZE = 5
MAX_SAMPLE_SIZE = 100
#: at most this many columns in a sample (the columns a check reads always come first)
MAX_SAMPLE_COLUMNS = 20
#: longer text cells in a sample are cut
MAX_CELL_CHARS = 200
#: path formats whose written data can be read back without the writer's options
READABLE_PATH_FORMATS = frozenset({"parquet", "delta", "orc", "avro"})

_CHECK = f"{PREFIX}check"
_ROW = f"{PREFIX}row"
_RANK = f"{PREFIX}rank"
_UNRESOLVED = ("UNRESOLVED_COLUMN", "UNRESOLVED_FIELD", "FIELD_NOT_FOUND", "UNRESOLVED_ATTRIBUTE")


# --- Spark errors -----------------------------------------------------------------------------


def _message(exc: BaseException) -> str:
    """The first line of a Spark error, without the SQLSTATE and plan that follow."""
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    for cut in (" SQLSTATE:", "; line "):
        if cut in line:
            line = line[: line.index(cut)]
    return line.strip().rstrip(" ;.")


def _condition(exc: BaseException) -> str:
    getter = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        return str(getter() or "") if getter else ""
    except Exception:
        return ""


def _explain(exc: BaseException, columns: Columns, aggregate: bool = False) -> str:
    """Why a check does not analyze, in words a user can act on."""
    condition = _condition(exc)
    message = _message(exc)
    if condition.startswith("PARSE") or any(c.__name__ == "ParseException" for c in type(exc).__mro__):
        return f"the expression does not parse: {message}"
    if aggregate and (condition.startswith("MISSING_GROUP_BY") or "group by" in message.lower()):
        return (
            f"expect_aggregate reads a column outside an aggregate function ({message}); write"
            f" conditions over aggregates such as sum(...), count(...), max(...)"
        )
    if condition.startswith(_UNRESOLVED):
        return (
            f"it reads a column the data does not have: {message}; available columns: {columns.described()}"
        )
    return f"it cannot be analyzed: {message}"


_quiet = threading.local()


class _InQuietBlock(logging.Filter):
    """Drops the records a thread logs inside :func:`_quiet_spark_errors`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "depth", 0)


_QUIET_FILTER = _InQuietBlock()


@contextmanager
def _quiet_spark_errors() -> Iterator[None]:
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
            with _quiet_spark_errors():
                return session.table(data)
        except Exception as exc:
            raise DagsterPipesError(f"`{METHOD}` cannot read the table {data!r}: {_message(exc)}") from None
    if hasattr(data, "selectExpr") and hasattr(data, "schema"):
        return data
    raise DagsterPipesError(
        f"Invalid `data` of `{METHOD}`: expected a DataFrame (classic or Spark Connect) or a table name,"
        f" got {type(data).__name__}."
    )


def columns_of(df: DataFrame, what: str) -> Columns:
    """The data's columns (analysis only)."""
    try:
        with _quiet_spark_errors():
            fields = df.schema.fields
    except Exception as exc:
        raise DagsterPipesError(f"`{METHOD}` cannot read {what}: {_message(exc)}") from None
    return Columns(tuple((f.name, f.dataType.simpleString()) for f in fields))


def _analyze(df: DataFrame, exprs: Sequence[str]) -> dict[str, str]:
    with _quiet_spark_errors():
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


def _aggregate_exprs(compiled: Sequence[Compiled], probes: bool) -> list[str]:
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
        with _quiet_spark_errors():
            analyzed = df.selectExpr(*_aggregate_exprs(pending, probes=True))
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
                    c.error = "`where`: " + _explain(exc, columns)
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
                c.error = _explain(exc, columns, aggregate=c.typed is not None)
                continue
        c.error = _type_problem(c, found)
    return plan if not any(c.error for c in pending) else None


# --- evaluation -------------------------------------------------------------------------------


def _broadcasts(df: DataFrame) -> bool:
    """Whether the session broadcasts small join sides (``spark.sql.autoBroadcastJoinThreshold``
    not negative): then the keys of a ``relationships`` check are broadcast whatever their estimate."""
    try:
        value = df.sparkSession.conf.get("spark.sql.autoBroadcastJoinThreshold")
    except Exception:
        return True
    return not str(value or "").strip().startswith("-")


def _collect_figures(plan: DataFrame) -> dict[str, Any]:
    """The figures of the plan :meth:`CheckRun._figures_plan` builds: one row per part, each part's
    figures non-NULL only in its own row (the other parts' columns are NULL there)."""
    figures: dict[str, Any] = {}
    with _quiet_spark_errors():  # a failure is logged with its message, and the check reported
        rows = plan.collect()
    for row in rows:
        for name, value in row.asDict().items():
            if value is not None or name not in figures:
                figures[name] = value
    return figures


def _distinct_keys(df: DataFrame, c: Compiled) -> DataFrame:
    """One row: the number of distinct complete keys of a ``unique`` check, counted apart from the
    shared aggregation (a ``count(DISTINCT key)`` in it would make Spark group every other check's
    aggregates by the key), as the rows that come first of their key: one shuffle by the key and a
    sort, whatever the keys -- grouping by them would build a hash map of every key twice (before
    and after the shuffle), which for the mostly unique keys of a ``unique`` check costs twice as
    much (and spills)."""
    assert c.grouped is not None
    complete, alias = c.grouped
    keys = [f"{PREFIX}key{j}" for j in range(len(c.keys))]
    first = f"row_number() OVER (PARTITION BY {', '.join(keys)} ORDER BY {', '.join(keys)}) = 1"
    return (
        df.where(complete)
        .selectExpr(*[f"{ref} AS {k}" for ref, k in zip(c.keys, keys, strict=True)])
        .selectExpr(f"{first} AS {PREFIX}first")
        .selectExpr(f"count_if({PREFIX}first) AS {alias}")
    )


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "\u2026"


class CheckRun:
    """One evaluation of a set of checks on one DataFrame."""

    def __init__(
        self,
        df: DataFrame,
        checks: Mapping[str, SparkCheck],
        asset_key: str | None,
        sample_size: int,
        pipes: Any,
        what: str,
    ) -> None:
        self.df = df
        self.asset_key = asset_key
        self.sample_size = sample_size
        self.pipes = pipes
        self.what = what
        self.columns = columns_of(df, what)
        self.compiled = [
            check.compile(name, i, self.columns) for i, (name, check) in enumerate(checks.items())
        ]
        self.data = self._join_references()  # the data the aggregation reads
        self.figures: dict[str, Any] = {}
        self.plan: DataFrame | None = None  # the analyzed aggregation, when every check analyzed
        self.actions = 0
        self.results: dict[str, SparkCheckResult] = {}

    def _join_references(self) -> DataFrame:
        """The data with, per ``relationships`` check, the distinct keys of its ``to`` left-joined
        on the checked column (analysis only); a check whose ``to`` or columns cannot be resolved
        gets its error instead."""
        data = self.df
        refs = [c for c in self.compiled if c.ref is not None and not c.error]
        broadcast = bool(refs) and _broadcasts(self.df)
        for c in refs:
            try:
                with _quiet_spark_errors():
                    data = self._join_one(data, c, broadcast)
            except DagsterPipesError as exc:
                c.error = str(exc)
            except Exception as exc:
                c.error = f"cannot join the keys of `to`: {_message(exc)}"
        return data

    def _join_one(self, data: DataFrame, c: Compiled, broadcast: bool) -> DataFrame:
        assert c.ref is not None
        to, field, key = c.ref
        found = key[: -len("key")] + "found"
        column = c.reads[0]
        ref = self.columns.ref(column)
        try:
            [typed] = self.df.selectExpr(f"{ref} AS {key}").schema.fields
        except Exception as exc:
            raise DagsterPipesError(_explain(exc, self.columns)) from None
        kind = typed.dataType.simpleString()
        if isinstance(to, str):
            what = f"`to` table {to}"
            try:
                target = self.df.sparkSession.table(to)
                target_columns = Columns(
                    tuple((f.name, f.dataType.simpleString()) for f in target.schema.fields)
                )
            except Exception as exc:
                raise DagsterPipesError(f"cannot read the {what}: {_message(exc)}") from None
        else:
            what, target = "`to` DataFrame", to
            target_columns = columns_of(target, what)
        target_ref = target_columns.ref(field)
        source = target_columns.find(field)
        same_type = source is not None and source[1] == kind
        cast = target_ref if same_type else f"try_cast({target_ref} AS {kind})"
        try:
            keys = target.selectExpr(f"{cast} AS {key}")
            _ = keys.schema  # analysis only (Connect analyzes lazily)
        except Exception as exc:
            if _condition(exc).startswith(_UNRESOLVED) or source is None:
                raise DagsterPipesError(
                    f"the {what} has no column {field!r}; its columns: {target_columns.described()}"
                ) from None
            raise DagsterPipesError(f"cannot read {field!r} of the {what}: {_message(exc)}") from None
        keys = keys.where(f"{key} IS NOT NULL").distinct()
        if kind != "string":
            keys = keys.selectExpr("*", f"TRUE AS {found}")
            if broadcast:  # the keys of a dimension are few: the data is never shuffled for the join
                keys = keys.hint("broadcast")
            return data.selectExpr("*", f"{ref} AS {key}").join(keys, on=key, how="left")
        # strings: joined on their 64-bit hash, a probe several times cheaper per row than one on
        # the string (Spark's join on a single long key); the keys sharing a hash are compared
        hashed, matched = f"{key}_hash", f"{key}_matched"
        keys = (
            keys.selectExpr(f"xxhash64({key}) AS {hashed}", key)
            .groupBy(hashed)
            .agg({key: "collect_list"})
            .toDF(hashed, matched)
        )
        if broadcast:
            keys = keys.hint("broadcast")
        return (
            data.selectExpr("*", f"{ref} AS {key}", f"xxhash64({ref}) AS {hashed}")
            .join(keys, on=hashed, how="left")
            .selectExpr("*", f"IF(array_contains({matched}, {key}), TRUE, NULL) AS {found}")
            .drop(hashed, matched)
        )

    def validate(self, strict: bool) -> None:
        """Analyze; ``strict``: raise naming every check that does not, before any Spark job."""
        self.plan = validate(self.data, self.compiled, self.columns)
        for c in self.compiled:  # the key of a ``unique`` check must be one Spark can group by
            if c.grouped is not None and c.error is None:
                try:
                    with _quiet_spark_errors():
                        _ = _distinct_keys(self.df, c).schema
                except Exception as exc:
                    c.error = _explain(exc, self.columns)
                    self.plan = None
        bad = [c for c in self.compiled if c.error]
        if strict and bad:
            lines = [f"check {c.name!r} ({c.check.definition}): {c.error}" for c in bad]
            raise DagsterPipesError(f"Invalid checks for {self.what}:\n  - " + "\n  - ".join(lines))

    def evaluate(self, strict: bool) -> None:
        """The aggregation (one action), the verdicts, and the sample of failing rows."""
        jobs = [c for c in self.compiled if c.needs_job and c.error is None]
        now = time.time()
        if jobs:
            self._aggregate(jobs, strict)
        for c in self.compiled:
            verdict: Verdict | None = None
            if c.error is None and (not c.needs_job or self.figures):
                verdict = c.check.judge(c, self.figures, self.columns, now)
            self.results[c.name] = make_result(c, verdict, c.error, self.asset_key)
        failed = [
            c
            for c in self.compiled
            if (c.fail or c.keys) and not self.results[c.name].passed and c.error is None
        ]
        if failed and self.sample_size > 0:
            self._sample(failed)

    def _aggregate(self, jobs: list[Compiled], strict: bool) -> None:
        self.actions += 1
        try:
            self.figures = _collect_figures(self._figures_plan(jobs, self.plan))
            return
        except Exception as exc:
            first = exc
        log(
            self.pipes,
            "warning",
            f"[spark checks] the aggregation over {self.what} failed ({_message(first)}); evaluating"
            f" its {len(jobs)} checks one by one to find the ones that cannot be evaluated",
        )
        errors: dict[str, str] = {}
        for c in jobs:
            self.actions += 1
            try:
                self.figures.update(_collect_figures(self._figures_plan([c], None)))
            except Exception as exc:
                errors[c.name] = f"Spark failed evaluating the check: {_message(exc)}"
        if len(errors) == len(jobs) and strict:
            schema_only = [c for c in self.compiled if not c.needs_job and c.error is None]
            self.results = {
                c.name: make_result(c, c.check.judge(c, {}, self.columns, 0.0), None, self.asset_key)
                for c in schema_only
            }
            self.report(strict=True)  # what could be evaluated is not lost
            raise DagsterPipesError(
                f"`{METHOD}` cannot evaluate any check on {self.what}: {_message(first)}"
            ) from None
        for c in jobs:
            if c.name in errors:
                c.error = errors[c.name]

    def _figures_plan(self, jobs: list[Compiled], analyzed: DataFrame | None) -> DataFrame:
        """The plan of the one action: the shared aggregation (``analyzed`` already, without the
        probes, or built for ``jobs``) and, per ``unique`` check, its distinct-key count, in one
        ``unionByName`` (one row each; a column is NULL in the rows of the other parts)."""
        if analyzed is not None:  # without the probes (selected away, so Spark prunes them)
            plan = analyzed.select(TOTAL, *(alias for c in jobs for alias in c.aggregates))
        else:  # the checks that analyzed (the others are reported with their error)
            plan = self.data.selectExpr(*_aggregate_exprs(jobs, probes=False))
        for c in jobs:
            if c.grouped is not None:
                plan = plan.unionByName(_distinct_keys(self.df, c), allowMissingColumns=True)
        return plan

    def _sample(self, failed: list[Compiled]) -> None:
        reads: list[str] = []
        for c in failed:
            reads += [r for r in c.reads if r not in reads and self.columns.find(r)]
        rest = [n for n in self.columns.names if n not in reads]
        shown = reads + rest[: max(0, MAX_SAMPLE_COLUMNS - len(reads))]
        row_json = f"to_json(struct({', '.join(quote_identifier(n) for n in shown)}))"
        branches = []
        rows = [c for c in failed if c.fail]
        n = self.sample_size
        if rows:
            ids = ", ".join(f"IF({c.fail}, {c.index}, NULL)" for c in rows)
            branches.append(
                self.data.where(" OR ".join(f"({c.fail})" for c in rows))
                .selectExpr(
                    f"explode(filter(array({ids}), x -> x IS NOT NULL)) AS {_CHECK}", f"{row_json} AS {_ROW}"
                )
                .selectExpr("*", f"row_number() OVER (PARTITION BY {_CHECK} ORDER BY {_CHECK}) AS {_RANK}")
                .where(f"{_RANK} <= {n}")
                .selectExpr(_CHECK, _ROW)
            )
        for c in failed:
            if not c.keys:
                continue
            keys = [f"{PREFIX}key{j}" for j in range(len(c.keys))]
            keyed = self.df.selectExpr("*", *[f"{ref} AS {k}" for ref, k in zip(c.keys, keys, strict=True)])
            if c.where:
                keyed = keyed.where(f"coalesce(({c.where}), false)")
            duplicated = (
                keyed.where(" AND ".join(f"{k} IS NOT NULL" for k in keys))
                .groupBy(*keys)
                .count()
                .where("`count` > 1")
                .select(*keys)
                .limit(n)
            )
            branches.append(
                keyed.join(duplicated.hint("broadcast"), on=keys, how="left_semi")
                .selectExpr(f"{c.index} AS {_CHECK}", f"{row_json} AS {_ROW}")
                .limit(n)
            )
        self.actions += 1
        try:
            fetched = reduce(lambda a, b: a.unionAll(b), branches).collect()
        except Exception as exc:
            log(self.pipes, "warning", f"[spark checks] could not fetch failing rows: {_message(exc)}")
            return
        by_check: dict[int, list[dict[str, Any]]] = {}
        for row in fetched:
            by_check.setdefault(int(row[0]), []).append(json.loads(row[1]))
        types = dict(self.columns.fields)
        for c in failed:
            order = [r for r in c.reads if r in shown] + [n for n in shown if n not in c.reads]
            records = [{name: _cell(raw.get(name)) for name in order} for raw in by_check.get(c.index, [])]
            add_sample(self.results[c.name], records, [(name, types.get(name, "string")) for name in order])

    def report(self, strict: bool) -> None:
        """Send every result to Dagster (see :func:`report_results`)."""
        report_results(self.pipes, self.results, self.asset_key, self.what, strict)

    def summary(self, seconds: float) -> str:
        """One line for the log."""
        return summary(self.results, self.asset_key or self.what, self.actions, seconds)


def report_results(
    pipes: Any, results: Mapping[str, SparkCheckResult], asset_key: str | None, what: str, strict: bool
) -> None:
    """Send every result to Dagster (when ``pipes`` reports); a failure to report one does not stop
    the others, and is raised (``strict``) or logged at the end."""
    if not reports(pipes):
        return
    problems: list[str] = []
    for result in results.values():
        try:
            pipes.report_asset_check(
                result.name,
                passed=result.passed,
                severity=result.severity,
                metadata=result.metadata,
                asset_key=asset_key,
            )
            result.reported = True
        except Exception as exc:
            problems.append(f"check {result.name!r}: {exc}")
    if problems:
        message = f"could not report {len(problems)} check(s) of {what}: " + "; ".join(problems)
        if strict:
            raise DagsterPipesError(message)
        log(pipes, "warning", f"[spark checks] {message}")


def summary(results: Mapping[str, SparkCheckResult], where: str, actions: int, seconds: float) -> str:
    """One log line: how many checks, which failed, how many Spark actions."""
    failed = [r.name for r in results.values() if not r.passed]
    outcome = f"{len(failed)} failed ({', '.join(failed)})" if failed else "all passed"
    return (
        f"[spark checks] {where}: {len(results)} checks, {outcome}; {actions} Spark action(s), {seconds:.2f}s"
    )


def _sample_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAMPLE_SIZE:
        raise DagsterPipesError(
            f"Invalid `sample_size` of `{METHOD}`: {value!r}; use an int from 0 (no failing rows fetched)"
            f" to {MAX_SAMPLE_SIZE}."
        )
    return value


def report_spark_checks(
    pipes: Any,
    data: DataFrame | str,
    checks: ChecksArg,
    *,
    asset_key: Any = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    spark: SparkSession | None = None,
) -> dict[str, SparkCheckResult]:
    """Evaluate every check on ``data`` in one Spark action and report each as an asset check.

    Args:
        pipes: the ``PipesContext`` (outside Dagster the no-op mock, or ``None``: the checks are
            evaluated and returned, nothing is reported).
        data: a DataFrame (classic or Spark Connect) or a table name.
        checks: check name -> a Spark SQL boolean expression (same as ``expect(sql)``) or
            ``expect``, ``not_null``, ``unique``, ``accepted_values``, ``row_count``, ``fresh``,
            ``has_columns``; the names are the Dagster check names.
        asset_key: the asset the checks belong to; may be omitted when one asset is in scope.
        sample_size: failing rows fetched per failed row-level check (one more Spark action, only
            when a check failed); 0 fetches none.
        spark: the session reading a table name (default: the active session).

    Returns:
        ``{check name: SparkCheckResult}`` in the order given.

    Raises:
        DagsterPipesError: before any Spark job, naming the check, for an invalid definition, an
            expression that does not parse, reads a missing column (the available columns are
            listed) or is not boolean, an unknown severity, an empty mapping; when no check can be
            evaluated at all (the checks that need no job are reported first); when reporting fails.
    """
    started = time.perf_counter()
    named = coerce_checks(checks, METHOD)
    size = _sample_size(sample_size)
    key = resolve_asset_key(pipes, asset_key, METHOD) if reports(pipes) else _plain_key(asset_key)
    df = as_dataframe(data, spark)
    what = f"table {data}" if isinstance(data, str) else "the DataFrame"
    run = CheckRun(df, named, key, size, pipes, what)
    run.validate(strict=True)
    run.evaluate(strict=True)
    run.report(strict=True)
    log(pipes, "info", run.summary(time.perf_counter() - started))
    return run.results


def _plain_key(asset_key: Any) -> str | None:
    try:
        return coerce_asset_key(asset_key)
    except TypeError:
        return None


# --- checks on what report_spark_writes saw -----------------------------------------------------


def _read_written(spark: Any, write: SparkWrite) -> tuple[DataFrame | None, str, str | None]:
    """``(DataFrame, description, problem)`` for the target of a write: for Delta / Iceberg, the
    version the write committed (time travel), not whatever another writer made newest since."""
    committed = write.delta_version if write.delta_version is not None else write.snapshot_id
    if committed is not None and write.table:
        name = ".".join(quote_identifier(p) for p in write.table)
        query = f"SELECT * FROM {name} VERSION AS OF {int(committed)}"
        return spark.sql(query), f"table {write.target} at version {committed}", None
    if write.delta_version is not None and write.path:
        df = spark.read.format("delta").option("versionAsOf", write.delta_version).load(write.path)
        return df, f"delta path {write.path} at version {write.delta_version}", None
    if write.table:
        name = ".".join(quote_identifier(p) for p in write.table)
        return spark.table(name), f"table {write.target}", None
    fmt = (write.format or "").lower()
    if write.path and fmt in READABLE_PATH_FORMATS:
        return spark.read.format(fmt).load(write.path), f"{fmt} path {write.path}", None
    return (
        None,
        f"path {write.target}",
        f"the {fmt or 'unknown'} data written to {write.target} cannot be read back without the writer's"
        f" options (readable: {', '.join(sorted(READABLE_PATH_FORMATS))}); check a DataFrame with"
        f" report_spark_checks instead",
    )


class WriteChecks:
    """Checks :func:`~dagster_pipes_spark.spark.report_spark_writes` runs, per asset key, on the
    table or path last written for the asset, after the block's materializations."""

    def __init__(self, checks: Mapping[Any, ChecksArg], pipes: Any) -> None:
        method = "report_spark_writes"
        if not isinstance(checks, Mapping) or not checks:
            raise DagsterPipesError(
                f"Invalid `checks` of `{method}`: expected a non-empty dict of asset key -> checks, got"
                f" {checks!r}."
            )
        self.by_key: dict[str, dict[str, SparkCheck]] = {}
        for raw_key, asset_checks in checks.items():
            try:
                key = coerce_asset_key(raw_key)
            except TypeError:
                key = None
            if key is None:
                raise DagsterPipesError(f"Invalid asset key {raw_key!r} in `checks` of `{method}`.")
            if reports(pipes):
                key = resolve_asset_key(pipes, key, method)
            self.by_key[key] = coerce_checks(asset_checks, f"{method}(checks={{{key!r}: ...}})")

    def run(
        self, spark: Any, pipes: Any, writes: Sequence[SparkWrite], completed: bool
    ) -> dict[str, dict[str, SparkCheckResult]]:
        """Evaluate and report every asset's checks; never raises."""
        out: dict[str, dict[str, SparkCheckResult]] = {}
        if not completed:
            log(pipes, "warning", f"[spark checks] the block raised; checks of {sorted(self.by_key)} not run")
            return out
        for key, checks in self.by_key.items():
            started = time.perf_counter()
            try:
                out[key], actions = self._run_one(spark, pipes, key, checks, writes)
            except Exception as exc:  # reporting must not fail the job
                log(
                    pipes,
                    "warning",
                    f"[spark checks] checks of asset {key} failed: {type(exc).__name__}: {exc}",
                )
                continue
            log(pipes, "info", summary(out[key], key, actions, time.perf_counter() - started))
        return out

    def _run_one(
        self, spark: Any, pipes: Any, key: str, checks: Mapping[str, SparkCheck], writes: Sequence[SparkWrite]
    ) -> tuple[dict[str, SparkCheckResult], int]:
        mine = [w for w in writes if w.asset_key == key]
        what = f"asset {key}"
        problem: str | None
        if not mine:
            problem = f"no write to asset {key} was seen inside report_spark_writes"
        else:
            try:
                df, what, problem = _read_written(spark, mine[-1])
                if df is not None:
                    run = CheckRun(df, checks, key, DEFAULT_SAMPLE_SIZE, pipes, what)
                    run.validate(strict=False)
                    run.evaluate(strict=False)
                    run.report(strict=False)
                    return run.results, run.actions
            except DagsterPipesError as exc:
                problem = str(exc)
            except Exception as exc:
                problem = f"cannot read {what}: {_message(exc)}"
        # the data cannot be read: every check is reported failed, with the reason
        results = {
            name: make_result(check.compile(name, i, Columns(())), None, problem or what, key)
            for i, (name, check) in enumerate(checks.items())
        }
        report_results(pipes, results, key, what, strict=False)
        return results, 0
