"""Import path kept for code written against the former split (the first seven kinds): the names
now live with their concept -- ``_row_conditions``, ``_key_checks``, ``_table_checks`` -- and
``sql_literal`` in ``spark._sql``. New code imports from those."""

from __future__ import annotations

from dagster_pipes_spark.spark._checks._key_checks import Unique, unique
from dagster_pipes_spark.spark._checks._row_conditions import (
    AcceptedValues,
    Expect,
    NotNull,
    accepted_values,
    expect,
    not_null,
)
from dagster_pipes_spark.spark._checks._table_checks import (
    Fresh,
    HasColumns,
    RowCount,
    format_age,
    fresh,
    has_columns,
    row_count,
)
from dagster_pipes_spark.spark._sql import sql_literal

__all__ = [
    "AcceptedValues",
    "Expect",
    "Fresh",
    "HasColumns",
    "NotNull",
    "RowCount",
    "Unique",
    "accepted_values",
    "expect",
    "format_age",
    "fresh",
    "has_columns",
    "not_null",
    "row_count",
    "sql_literal",
    "unique",
]
