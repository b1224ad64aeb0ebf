"""One evaluation of a set of checks on one DataFrame: the one action, the verdicts, the sample of
failing rows."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import reduce
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._checks._analysis import (
    METHOD,
    UNRESOLVED,
    aggregate_exprs,
    columns_of,
    error_condition,
    error_message,
    explain_error,
    quiet_spark_errors,
    validate,
)
from dagster_pipes_spark.spark._checks._model import PREFIX, TOTAL, Columns, Compiled, SparkCheck, Verdict
from dagster_pipes_spark.spark._checks._reporting import report_results, summary
from dagster_pipes_spark.spark._checks._results import (
    SparkCheckResult,
    add_sample,
    make_result,
)
from dagster_pipes_spark.spark._pipes import log
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
                with quiet_spark_errors():
                    data = self._join_one(data, c, broadcast)
            except DagsterPipesError as exc:
                c.error = str(exc)
            except Exception as exc:
                c.error = f"cannot join the keys of `to`: {error_message(exc)}"
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
            raise DagsterPipesError(explain_error(exc, self.columns)) from None
        kind = typed.dataType.simpleString()
        if isinstance(to, str):
            what = f"`to` table {to}"
            try:
                target = self.df.sparkSession.table(to)
                target_columns = Columns(
                    tuple((f.name, f.dataType.simpleString()) for f in target.schema.fields)
                )
            except Exception as exc:
                raise DagsterPipesError(f"cannot read the {what}: {error_message(exc)}") from None
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
            if error_condition(exc).startswith(UNRESOLVED) or source is None:
                raise DagsterPipesError(
                    f"the {what} has no column {field!r}; its columns: {target_columns.described()}"
                ) from None
            raise DagsterPipesError(f"cannot read {field!r} of the {what}: {error_message(exc)}") from None
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
                    with quiet_spark_errors():
                        _ = _distinct_keys(self.df, c).schema
                except Exception as exc:
                    c.error = explain_error(exc, self.columns)
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
            f"[spark checks] the aggregation over {self.what} failed ({error_message(first)}); evaluating"
            f" its {len(jobs)} checks one by one to find the ones that cannot be evaluated",
        )
        errors: dict[str, str] = {}
        for c in jobs:
            self.actions += 1
            try:
                self.figures.update(_collect_figures(self._figures_plan([c], None)))
            except Exception as exc:
                errors[c.name] = f"Spark failed evaluating the check: {error_message(exc)}"
        if len(errors) == len(jobs) and strict:
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
