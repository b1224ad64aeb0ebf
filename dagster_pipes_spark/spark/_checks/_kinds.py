"""Import path kept for code written against the former split (the kinds beyond the first seven):
the names now live with their concept -- ``_row_conditions``, ``_key_checks``, ``_table_checks``.
New code imports from those."""

from __future__ import annotations

from dagster_pipes_spark.spark._checks._key_checks import Relationships, relationships
from dagster_pipes_spark.spark._checks._row_conditions import InRange, Matches, in_range, matches
from dagster_pipes_spark.spark._checks._table_checks import (
    AGGREGATES,
    ExpectAggregate,
    aggregate_calls,
    expect_aggregate,
)

__all__ = [
    "AGGREGATES",
    "ExpectAggregate",
    "InRange",
    "Matches",
    "Relationships",
    "aggregate_calls",
    "expect_aggregate",
    "in_range",
    "matches",
    "relationships",
]
