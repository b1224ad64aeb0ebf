"""How a DQX rule's strings become Spark SQL: a column string (a name, a dotted path or an
expression), its display text and the normalized form DQX names rules with; limits (numbers, ISO
dates and timestamps, SQL expressions); messages. Nothing here imports pyspark."""

from __future__ import annotations

import datetime
import math
import re
from decimal import Decimal
from typing import Any

from dagster_pipes_spark.spark._sql import string_literal

#: a column string with one of these is an expression, passed to Spark as written
_EXPRESSION_CHARS = re.compile(r"""[()\[\]{},;'"`*]""")
_EXPRESSION_OPERATOR = re.compile(r"[-+/%<>=!&|~^]\s|\s[-+/%<>=!&|~^]")
_BARE_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NOT_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
_STAR = frozenset({"*", "unresolvedstar()"})


def unquote(column: str) -> str:
    """The display text of a column string: one pair of surrounding backticks removed."""
    if len(column) >= 2 and column.startswith("`") and column.endswith("`"):
        inner = column[1:-1]
        if "`" not in inner.replace("``", ""):
            return inner.replace("``", "`")
    return column


def column_sql(column: str) -> str:
    """Spark SQL for a column string: an expression as written, else a dotted path whose parts
    that are not bare identifiers are back-quoted."""
    if _EXPRESSION_CHARS.search(column) or _EXPRESSION_OPERATOR.search(column):
        return f"({column})"
    return ".".join(
        part if _BARE_IDENTIFIER.match(part) else "`" + part.replace("`", "``") + "`"
        for part in column.split(".")
    )


def normalize(text: str) -> str:
    """A name part as DQX writes it: lower case, each run of other characters one ``_``, trailing
    ``_`` removed (at most 255 characters read)."""
    return _NOT_ALNUM.sub("_", text[:255].lower()).rstrip("_")


def column_name(column: str) -> str:
    """The normalized name of a column string (its display text normalized)."""
    return normalize(unquote(column))


def is_star(column: str) -> bool:
    """Whether the column string is DQX's ``*`` (every row)."""
    return unquote(column).strip().lower() in _STAR


def text(value: str) -> str:
    """A SQL string literal."""
    return string_literal(value)


def message(*parts: str) -> str:
    """SQL concatenating message parts (SQL expressions; NULL parts skipped, as DQX's
    ``concat_ws('')``)."""
    return f"concat_ws('', {', '.join(parts)})"


def as_string(sql: str) -> str:
    """SQL of a value as text."""
    return f"CAST({sql} AS STRING)"


def null_text(sql: str) -> str:
    """SQL of a value as text, ``null`` for NULL."""
    return f"coalesce(CAST({sql} AS STRING), 'null')"


def literal(value: Any) -> str:
    """A Spark SQL literal for a plain Python value of a rule file."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"CAST('{value!r}' AS DOUBLE)"
        return f"CAST({value!r} AS DOUBLE)"
    if isinstance(value, Decimal):
        return f"{value}BD"
    if isinstance(value, datetime.datetime):
        return f"TIMESTAMP {text(value.isoformat(sep=' '))}"
    if isinstance(value, datetime.date):
        return f"DATE {text(value.isoformat())}"
    if isinstance(value, str):
        return text(value)
    raise ValueError(f"cannot write {type(value).__name__} {value!r} as a SQL value")


def limit_sql(value: Any) -> str:
    """A limit as DQX reads one: a string of digits or anything that is not an ISO date /
    timestamp is a SQL expression (``"val_a + 1"``, ``"'new'"``); an ISO date (timestamp, when it
    has a time) is that date; other values are literals."""
    if isinstance(value, str):
        if value.isdigit():
            return value
        try:
            parsed = datetime.datetime.fromisoformat(value)
        except ValueError:
            return f"({value})"
        if ":" in value:
            return f"to_timestamp({literal(parsed.replace(tzinfo=None))})"
        return f"DATE {text(parsed.date().isoformat())}"
    if value is None:
        raise ValueError("the limit is not given")
    return literal(value)
