"""Sending check results to Dagster, and the one log line of a call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._checks._results import SparkCheckResult
from dagster_pipes_spark.spark._context_helpers import log, reports


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
