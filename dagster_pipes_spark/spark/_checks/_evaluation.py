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

import contextlib
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark._protocol import coerce_asset_key
from dagster_pipes_spark.spark._checks._analysis import METHOD, as_dataframe, error_message
from dagster_pipes_spark.spark._checks._model import Columns, SparkCheck
from dagster_pipes_spark.spark._checks._reporting import report_results, summary
from dagster_pipes_spark.spark._checks._result_columns import ERRORS, WARNINGS
from dagster_pipes_spark.spark._checks._results import (
    ChecksArg,
    SparkCheckResult,
    coerce_checks,
    make_result,
)
from dagster_pipes_spark.spark._checks._run import DEFAULT_SAMPLE_SIZE, MAX_SAMPLE_SIZE, CheckRun
from dagster_pipes_spark.spark._context_helpers import log, reports, resolve_asset_key
from dagster_pipes_spark.spark._targets import quote_identifier

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from dagster_pipes_spark.spark._write_record import SparkWrite

#: path formats whose written data can be read back without the writer's options
READABLE_PATH_FORMATS = frozenset({"parquet", "delta", "orc", "avro"})


def _sample_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SAMPLE_SIZE:
        raise DagsterPipesError(
            f"Invalid `sample_size` of `{METHOD}`: {value!r}; use an int from 0 (no failing rows fetched)"
            f" to {MAX_SAMPLE_SIZE}."
        )
    return value


def _check_run(
    pipes: Any,
    data: DataFrame | str,
    checks: ChecksArg,
    asset_key: Any,
    sample_size: int,
    spark: SparkSession | None,
    annotate: bool,
) -> CheckRun:
    """One evaluation of ``checks`` on ``data``, its arguments validated (the entry points' shared
    start; raises ``DagsterPipesError`` naming what is wrong)."""
    named = coerce_checks(checks, METHOD)
    size = _sample_size(sample_size)
    key = resolve_asset_key(pipes, asset_key, METHOD) if reports(pipes) else _plain_key(asset_key)
    df = as_dataframe(data, spark)
    what = f"table {data}" if isinstance(data, str) else "the DataFrame"
    return CheckRun(df, named, key, size, pipes, what, annotate=annotate)


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
    run = _check_run(pipes, data, checks, asset_key, sample_size, spark, annotate=False)
    run.validate(strict=True)
    run.evaluate(strict=True)
    run.report(strict=True)
    log(pipes, "info", run.summary(time.perf_counter() - started))
    return run.results


class CheckedSplit(tuple):
    """The rows of :func:`split_spark_checks`, unpacked as ``valid, invalid``: ``valid`` (no
    ``ERROR`` check flags them; the data's columns) and ``invalid`` (some check flags them; with
    ``_errors`` / ``_warnings``). A row only warned about is in both, as in DQX's
    ``apply_checks_and_split``."""

    def __new__(cls, valid: DataFrame, invalid: DataFrame, checked: DataFrame) -> CheckedSplit:
        """Both parts, and the persisted checked rows they are read from."""
        split = super().__new__(cls, (valid, invalid))
        split._checked = checked
        return split

    _checked: DataFrame

    @property
    def valid(self) -> DataFrame:
        """The rows no ``ERROR`` check flags."""
        return self[0]

    @property
    def invalid(self) -> DataFrame:
        """The rows some check flags, with ``_errors`` / ``_warnings``."""
        return self[1]

    @property
    def checked(self) -> DataFrame:
        """Every row with ``_errors`` / ``_warnings`` (what :func:`apply_spark_checks` returns),
        persisted: the rows both parts are read from."""
        return self._checked

    def unpersist(self) -> None:
        """Free the checked rows cached for the two reads."""
        with contextlib.suppress(Exception):
            self._checked.unpersist()


def _annotated(
    pipes: Any,
    data: DataFrame | str,
    checks: ChecksArg,
    asset_key: Any,
    sample_size: int,
    spark: SparkSession | None,
) -> tuple[DataFrame, dict[str, SparkCheckResult]]:
    started = time.perf_counter()
    run = _check_run(pipes, data, checks, asset_key, sample_size, spark, annotate=True)
    run.validate(strict=True)
    checked = run.annotated()
    run.evaluate(strict=True)
    run.report(strict=True)
    log(pipes, "info", run.summary(time.perf_counter() - started))
    return checked, run.results


def apply_spark_checks(
    pipes: Any,
    data: DataFrame | str,
    checks: ChecksArg,
    *,
    asset_key: Any = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    spark: SparkSession | None = None,
) -> DataFrame:
    """Like :func:`report_spark_checks`, and return the data with DQX's result columns.

    ``_errors`` / ``_warnings`` hold, per row, an item for each ``ERROR`` / ``WARN`` check flagging it
    (DQX 0.17's shape: ``name``, ``message``, ``columns``, ``filter``, ``function``, ``run_time``,
    ``run_id``, ``user_metadata``, ``rule_fingerprint``, ``rule_set_fingerprint``, ``skipped``;
    NULL when none does). Row-level checks and DQX rules flag rows; the project's ``unique``,
    ``expect_aggregate``, ``row_count``, ``fresh`` and ``has_columns`` are reported, not flagged on
    rows. The checks are evaluated once: the rows are persisted by the same action that computes
    the figures reported to Dagster, so writing them evaluates nothing again (``unpersist()`` the
    result when done).
    """
    checked, _ = _annotated(pipes, data, checks, asset_key, sample_size, spark)
    return checked


def split_spark_checks(
    pipes: Any,
    data: DataFrame | str,
    checks: ChecksArg,
    *,
    asset_key: Any = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    spark: SparkSession | None = None,
) -> CheckedSplit:
    """Quarantine, as DQX's ``apply_checks_and_split``: ``valid, invalid = split_spark_checks(...)``.

    ``valid`` holds the rows no ``ERROR`` check flags (the data's columns), ``invalid`` the rows any
    check flags, with ``_errors`` / ``_warnings`` (see :func:`apply_spark_checks`). The checks are
    evaluated once and reported to Dagster before this returns; write both inside
    :func:`~dagster_pipes_spark.spark.report_spark_writes` and each write is reported too.
    """
    checked, _ = _annotated(pipes, data, checks, asset_key, sample_size, spark)
    columns = [quote_identifier(name) for name in checked.columns if name not in (ERRORS, WARNINGS)]
    valid = checked.where(f"{ERRORS} IS NULL").selectExpr(*columns)
    invalid = checked.where(f"{ERRORS} IS NOT NULL OR {WARNINGS} IS NOT NULL")
    return CheckedSplit(valid, invalid, checked)


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
                problem = f"cannot read {what}: {error_message(exc)}"
        # the data cannot be read: every check is reported failed, with the reason
        results = {
            name: make_result(check.compile(name, i, Columns(())), None, problem or what, key)
            for i, (name, check) in enumerate(checks.items())
        }
        report_results(pipes, results, key, what, strict=False)
        return results, 0
