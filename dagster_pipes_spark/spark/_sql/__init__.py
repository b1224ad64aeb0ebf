"""Spark SQL text, read and written without Spark (used where the analysed plan is not reachable,
and to build the SQL the hooks and checks run): tokens (``_tokens``), the write a statement performs
and an ``INSERT``'s partition clauses (``_statements``), literals (from Python values too) and
column references (``_literals``), conditions as conjuncts (``_conditions``).
"""

from dagster_pipes_spark.spark._sql._conditions import FLIPPED_OPERATORS, Conjunct, conjuncts_from_sql
from dagster_pipes_spark.spark._sql._literals import (
    column_sql,
    date_literal,
    equal_literal,
    literal_from_internal,
    literal_value,
    number_literal,
    spark_type_to_column_type,
    sql_literal,
    string_literal,
    timestamp_literal,
    timestamp_ntz_literal,
)
from dagster_pipes_spark.spark._sql._statements import (
    InsertClauses,
    SqlWrite,
    parse_insert_clauses,
    parse_sql_write,
)
from dagster_pipes_spark.spark._sql._tokens import tokenize

__all__ = [
    "FLIPPED_OPERATORS",
    "Conjunct",
    "InsertClauses",
    "SqlWrite",
    "column_sql",
    "conjuncts_from_sql",
    "date_literal",
    "equal_literal",
    "literal_from_internal",
    "literal_value",
    "number_literal",
    "parse_insert_clauses",
    "parse_sql_write",
    "spark_type_to_column_type",
    "sql_literal",
    "string_literal",
    "timestamp_literal",
    "timestamp_ntz_literal",
    "tokenize",
]
