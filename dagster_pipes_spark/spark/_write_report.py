"""What ``report_spark_writes`` returns: the writes it saw and what it reported. Nothing here imports
pyspark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster_pipes_spark.spark._write_record import SparkWrite


@dataclass
class SparkWriteReport:
    """What :func:`~dagster_pipes_spark.spark.report_spark_writes` saw and reported.

    Filled when the context exits: ``writes`` (successful, in order), ``failed_writes``, and
    ``materializations`` (asset key -> the metadata sent to Dagster). ``hook_seconds`` is the time
    spent in the hooks themselves while the block ran (``hook_call_seconds``: each hook call's, in
    order); ``exit_seconds`` the time spent on exit
    (waiting for Spark's events, history look-ups, reporting). ``checks``: asset key -> check name
    -> ``SparkCheckResult`` of the ``checks=`` run on exit.
    """

    mechanism: str = "none"
    writes: list[SparkWrite] = field(default_factory=list)
    failed_writes: list[SparkWrite] = field(default_factory=list)
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)
    hook_seconds: float = 0.0
    hook_calls: int = 0
    hook_call_seconds: list[float] = field(default_factory=list)
    exit_seconds: float = 0.0
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
