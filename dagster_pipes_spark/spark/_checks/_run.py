"""One evaluation of a set of checks on one DataFrame: the one action, the verdicts, the sample of
failing rows."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from functools import reduce
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._checks._analysis import (
    METHOD,
    aggregate_exprs,
    columns_of,
    error_message,
    explain_error,
    quiet_spark_errors,
    validate,
)
from dagster_pipes_spark.spark._checks._dqx._logic import CompareLogic
from dagster_pipes_spark.spark._checks._groups import figure_parts, join_markers
from dagster_pipes_spark.spark._checks._joins import broadcasts, join_compare, join_lookup, join_query
from dagster_pipes_spark.spark._checks._model import PREFIX, TOTAL, Compiled, SparkCheck, Verdict, in_scope
from dagster_pipes_spark.spark._checks._reporting import report_results, summary
from dagster_pipes_spark.spark._checks._result_columns import ERRORS, WARNINGS, empty_as_null, result_columns
from dagster_pipes_spark.spark._checks._results import (
    SparkCheckResult,
    add_sample,
    make_result,
)
from dagster_pipes_spark.spark._context_helpers import log
from dagster_pipes_spark.spark._targets import quote_identifier

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


DEFAULT_SAMPLE_SIZE = 5
MAX_SAMPLE_SIZE = 100
#: at most this many columns in a sample (the columns a check reads always come first)
MAX_SAMPLE_COLUMNS = 20
#: longer text cells in a sample are cut
MAX_CELL_CHARS = 200

_CHECK = f"{PREFIX}check"
_ROW = f"{PREFIX}row"
_RANK = f"{PREFIX}rank"


def _collect_figures(plan: DataFrame) -> dict[str, Any]:
    """The figures of the plan :meth:`CheckRun._figures_plan` builds: one row per part, each part's
    figures non-NULL only in its own row (the other parts' columns are NULL there)."""
    figures: dict[str, Any] = {}
    with quiet_spark_errors():  # a failure is logged with its message, and the check reported
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


def _pointed_at(jobs: list[Compiled], exc: BaseException) -> list[Compiled]:
    """The checks whose SQL holds the fragment a run-time error's query context names."""
    getter = getattr(exc, "getQueryContext", None)
    try:
        contexts = getter() if getter else []
    except Exception:
        contexts = []
    fragments = []
    for context in contexts or []:
        try:
            fragment = context.fragment()
        except Exception:
            continue
        if fragment and fragment.strip():
            fragments.append(fragment.strip())
    out = []
    for c in jobs:
        texts = [*c.aggregates.values(), c.where or "", c.flag or ""]
        if any(f in text for f in fragments for text in texts):
            out.append(c)
    return out if len(out) < len(jobs) else []


def sample_cell(value: Any) -> Any:
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
        annotate: bool = False,
    ) -> None:
        self.df = df
        self.annotate = annotate  # the rows get DQX's result columns (see :meth:`annotated`)
        self.asset_key = asset_key
        self.sample_size = sample_size
        self.pipes = pipes
        self.what = what
        self.columns = columns_of(df, what)
        self.compiled = [
            check.compile(name, i, self.columns) for i, (name, check) in enumerate(checks.items())
        ]
        self._prepare()
        self.data = self._join_other_data()  # the data the aggregation reads
        if annotate:  # each group's verdict joined to its rows: a group rule counts its flags
            groups = [c for c in self.compiled if c.group and not c.error]
            self.data = join_markers(self.data, groups, self.df)
            for c in self.compiled:
                if c.group is not None:
                    c.aggregates[c.group.failed] = f"count_if({c.flag})"
        self.figures: dict[str, Any] = {}
        self.plan: DataFrame | None = None  # the analyzed aggregation, when every check analyzed
        self.actions = 0
        self.results: dict[str, SparkCheckResult] = {}

    def _prepare(self) -> None:
        """Before any analysis: the Python functions the checks' SQL calls registered on the
        session, and what each check finishes with the data at hand (:meth:`SparkCheck.prepare`)."""
        registered: set[str] = set()
        for c in self.compiled:
            for name, function in c.udfs.items():
                if name not in registered:
                    registered.add(name)
                    try:
                        self.df.sparkSession.udf.register(name, function, "boolean")
                    except Exception as exc:
                        c.error = f"cannot register the function {name}: {error_message(exc)}"
            if c.error is None:
                c.check.prepare(c, self.df)

    def _join_other_data(self) -> DataFrame:
        """The data with, per check that reads other data, what it reads joined in (analysis only):
        the distinct keys of a lookup, a query's rows; a check whose other data or columns cannot
        be resolved gets its error instead."""
        data = self.df
        refs = [c for c in self.compiled if c.ref is not None and not c.error]
        broadcast = bool(refs) and broadcasts(self.df)
        for c in self.compiled:
            if c.error or (c.ref is None and c.query is None):
                continue
            try:
                with quiet_spark_errors():
                    if c.ref is not None:
                        data = join_lookup(self.df, data, c, self.columns, broadcast)
                    elif isinstance(c.query, CompareLogic):
                        data = join_compare(self.df, data, c, c.check.to)  # type: ignore[attr-defined]
                        _ = data.schema
                    else:
                        data = join_query(self.df, data, c, getattr(c.check, "to", None) or {})
                        _ = data.schema  # the query analyzed now, so a bad one is this check's error
            except DagsterPipesError as exc:
                c.error = str(exc)
            except Exception as exc:
                what = (
                    "the keys of `to`"
                    if c.ref is not None
                    else "the reference data"
                    if isinstance(c.query, CompareLogic)
                    else "the rule's query"
                )
                c.error = f"cannot join {what}: {error_message(exc)}"
        return data

    def annotated(self) -> DataFrame:
        """The data with DQX's result columns, ``_errors`` and ``_warnings`` (see
        ``_result_columns``), persisted: the aggregation that follows evaluates the conditions once,
        for the figures (each row-level check then counts its flag column) and for every later read
        of the rows. Where the session cannot persist (serverless), later reads evaluate them again."""
        taken = [n for n in (ERRORS, WARNINGS) if self.columns.find(n)]
        if taken:
            raise DagsterPipesError(
                f"`{METHOD}` adds the columns {ERRORS} and {WARNINGS}; {self.what} already has"
                f" {', '.join(taken)}: rename them first."
            )
        flags: dict[int, str] = {}
        exprs = []
        for c in self.compiled:
            flag = c.flag or c.fail
            if flag is not None and c.error is None:
                flags[c.index] = f"{PREFIX}{c.index}_flag"
                exprs.append(f"coalesce(({flag}), false) AS {flags[c.index]}")
                failed = f"{PREFIX}{c.index}_failed"
                if failed in c.aggregates:
                    c.aggregates[failed] = f"count_if({flags[c.index]})"
        errors, warnings = result_columns(self.compiled, flags, str(uuid.uuid4()))
        # three projections, each column computed once: the flags, the items, the result columns
        arrays = (f"{PREFIX}errors", f"{PREFIX}warnings")
        full = (
            self.data.selectExpr("*", *exprs)
            .selectExpr("*", f"{errors} AS {arrays[0]}", f"{warnings} AS {arrays[1]}")
            .selectExpr(
                "*", f"{empty_as_null(arrays[0])} AS {ERRORS}", f"{empty_as_null(arrays[1])} AS {WARNINGS}"
            )
            .drop(*arrays)
        )
        try:
            full = full.persist()
        except Exception as exc:
            log(
                self.pipes,
                "warning",
                f"[spark checks] cannot persist the checked rows of {self.what} ({error_message(exc)}): each"
                " read of the rows evaluates the checks' conditions again",
            )
        self.data, self.plan = full, None
        for c in self.compiled:  # failing rows are sampled by their flags, not by evaluating again
            if c.fail is not None and c.index in flags:
                c.fail = flags[c.index]
        shown = [quote_identifier(n) for n in self.columns.names]
        return full.selectExpr(*shown, ERRORS, WARNINGS)

    def validate(self, strict: bool) -> None:
        """Analyze; ``strict``: raise naming every check that does not, before any Spark job."""
        self.plan = validate(self.data, self.compiled, self.columns)
        for c in self.compiled:  # the key of a ``unique`` check must be one Spark can group by
            if c.grouped is not None and c.error is None:
                try:
                    with quiet_spark_errors():
                        _ = _distinct_keys(self.df, c).schema
                except Exception as exc:
                    c.error = explain_error(exc, self.columns)
                    self.plan = None
        self._validate_groups()
        bad = [c for c in self.compiled if c.error]
        if strict and bad:
            lines = [f"check {c.name!r} ({c.check.definition}): {c.error}" for c in bad]
            raise DagsterPipesError(f"Invalid checks for {self.what}:\n  - " + "\n  - ".join(lines))

    def _validate_groups(self) -> None:
        """The groups of dataset-level rules analyzed together, one rule at a time on failure."""
        groups = [c for c in self.compiled if c.group is not None and c.error is None and not self.annotate]
        if not groups:
            return
        try:
            with quiet_spark_errors():
                for part in figure_parts(self.df, groups):
                    _ = part.schema
            return
        except Exception:
            pass
        for c in groups:
            try:
                with quiet_spark_errors():
                    _ = figure_parts(self.df, [c])[0].schema
            except Exception as exc:
                c.error = explain_error(exc, self.columns)

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
        """The one action. Should it fail at run time (an expression that analyzes but raises on
        some row, such as a failing ANSI cast), the checks the error's query context points at are
        reported failed with the error and the others evaluated again in one action; only when no
        check can be told apart are the checks halved until the failing ones are found."""
        pending, analyzed = list(jobs), self.plan
        first: Exception | None = None
        errors: dict[str, str] = {}
        while pending:
            self.actions += 1
            try:
                self.figures.update(_collect_figures(self._figures_plan(pending, analyzed)))
                break
            except Exception as exc:
                first = first or exc
                analyzed = None
                culprits = _pointed_at(pending, exc)
                bisected = not culprits
                if bisected:  # the passing halves' figures are kept: nothing is left to evaluate
                    culprits = self._bisect(pending)
                for c in culprits:
                    errors[c.name] = f"Spark failed evaluating the check: {error_message(exc)}"
                log(
                    self.pipes,
                    "warning",
                    f"[spark checks] the aggregation over {self.what} failed ({error_message(exc)}); reporting"
                    f" {', '.join(repr(c.name) for c in culprits)} failed with the error",
                )
                if bisected:
                    break
                pending = [c for c in pending if c not in culprits]
        if first is not None and len(errors) == len(jobs) and strict:
            schema_only = [c for c in self.compiled if not c.needs_job and c.error is None]
            self.results = {
                c.name: make_result(c, c.check.judge(c, {}, self.columns, 0.0), None, self.asset_key)
                for c in schema_only
            }
            self.report(strict=True)  # what could be evaluated is not lost
            raise DagsterPipesError(
                f"`{METHOD}` cannot evaluate any check on {self.what}: {error_message(first)}"
            ) from None
        for c in jobs:
            if c.name in errors:
                c.error = errors[c.name]

    def _bisect(self, jobs: list[Compiled]) -> list[Compiled]:
        """The checks that fail when aggregated alone, found by halving (one action per half)."""
        if len(jobs) == 1:
            return jobs
        failing: list[Compiled] = []
        middle = len(jobs) // 2
        for half in (jobs[:middle], jobs[middle:]):
            self.actions += 1
            try:
                self.figures.update(_collect_figures(self._figures_plan(half, None)))
            except Exception:
                failing += self._bisect(half)
        return failing

    def _figures_plan(self, jobs: list[Compiled], analyzed: DataFrame | None) -> DataFrame:
        """The plan of the one action: the shared aggregation (``analyzed`` already, without the
        probes, or built for ``jobs``) and, per ``unique`` check, its distinct-key count, in one
        ``unionByName`` (one row each; a column is NULL in the rows of the other parts)."""
        if analyzed is not None:  # without the probes (selected away, so Spark prunes them)
            plan = analyzed.select(TOTAL, *(alias for c in jobs for alias in c.aggregates))
        else:  # the checks that analyzed (the others are reported with their error)
            plan = self.data.selectExpr(*aggregate_exprs(jobs, probes=False))
        for c in jobs:
            if c.grouped is not None:
                plan = plan.unionByName(_distinct_keys(self.df, c), allowMissingColumns=True)
        if not self.annotate:  # the failed rows of dataset-level rules, counted per group (over the
            # data itself: their scopes and aggregates read its columns, not what other checks join in)
            for part in figure_parts(self.df, [c for c in jobs if c.group is not None]):
                plan = plan.unionByName(part, allowMissingColumns=True)
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
                keyed = keyed.where(in_scope(c.where))
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
            log(self.pipes, "warning", f"[spark checks] could not fetch failing rows: {error_message(exc)}")
            return
        by_check: dict[int, list[dict[str, Any]]] = {}
        for row in fetched:
            by_check.setdefault(int(row[0]), []).append(json.loads(row[1]))
        types = dict(self.columns.fields)
        for c in failed:
            order = [r for r in c.reads if r in shown] + [n for n in shown if n not in c.reads]
            records = [
                {name: sample_cell(raw.get(name)) for name in order} for raw in by_check.get(c.index, [])
            ]
            add_sample(self.results[c.name], records, [(name, types.get(name, "string")) for name in order])

    def report(self, strict: bool) -> None:
        """Send every result to Dagster (see :func:`report_results`)."""
        report_results(self.pipes, self.results, self.asset_key, self.what, strict)

    def summary(self, seconds: float) -> str:
        """One line for the log."""
        return summary(self.results, self.asset_key or self.what, self.actions, seconds)
