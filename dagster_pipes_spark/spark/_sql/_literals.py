"""Spark SQL literals and column references: writing them (quoted names, string / date / timestamp /
number literals) and reading one back as a typed value."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from dagster_pipes_spark._errors import DagsterPipesError
from dagster_pipes_spark.spark._sql._tokens import tokenize
from dagster_pipes_spark.spark._targets import (
    quote_identifier,
    split_identifier,
)

# --- Spark SQL literals and column references ---------------------------------------------------

_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Words Spark's ANSI mode reserves (SQL:2016), plus type keywords, which must be quoted as names.
_RESERVED = frozenset(
    """ALL AND ANY ARRAY AS AUTHORIZATION BOTH CASE CAST CHECK COLLATE COLUMN CONSTRAINT CREATE CROSS
    CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DATE DELETE DESCRIBE DISTINCT DROP ELSE END
    ESCAPE EXCEPT EXISTS FALSE FETCH FILTER FOR FOREIGN FROM FULL GRANT GROUP HAVING IN INNER INSERT
    INTERSECT INTERVAL INTO IS JOIN LEADING LEFT LIKE LIMIT NATURAL NOT NULL OF OFFSET ON ONLY OR ORDER
    OUTER OVERLAPS PARTITION PRIMARY REFERENCES RIGHT SELECT SESSION_USER SET SOME TABLE THEN TIME
    TIMESTAMP TIMESTAMP_NTZ TIMESTAMP_LTZ TO TRAILING TRUE UNION UNIQUE UNKNOWN UPDATE USER USING VALUES
    WHEN WHERE WINDOW WITH""".split()
)


def column_sql(column: str) -> str:
    """A column reference for Spark SQL: dotted parts (``alias.col``; backticks quote a part), each
    backtick-quoted when it is not a plain identifier or is a reserved word."""
    parts = split_identifier(column) if "`" in column else [p.strip() for p in column.split(".")]
    if not parts or any(not p for p in parts):
        raise DagsterPipesError(
            f"Invalid partition column {column!r}: pass a column name such as 'event_date', 'src.region'"
            " or '`my col`'."
        )
    return ".".join(
        p if _PLAIN_IDENTIFIER.fullmatch(p) and p.upper() not in _RESERVED else quote_identifier(p)
        for p in parts
    )


def string_literal(value: str) -> str:
    """A Spark SQL string literal (backslash escapes, the default ``escapedStringLiterals=false``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def date_literal(value: date) -> str:
    """``DATE 'YYYY-MM-DD'``."""
    return f"DATE '{value.isoformat()}'"


def _wall(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") + (f".{value.microsecond:06d}" if value.microsecond else "")


def timestamp_literal(value: datetime) -> str:
    """``TIMESTAMP 'YYYY-MM-DD HH:MM:SS+hh:mm'``: an instant, with the offset it was given in."""
    offset = value.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"TIMESTAMP '{_wall(value)}{sign}{minutes // 60:02d}:{minutes % 60:02d}'"


def timestamp_ntz_literal(value: datetime) -> str:
    """``TIMESTAMP_NTZ 'YYYY-MM-DD HH:MM:SS'``: a wall-clock time."""
    return f"TIMESTAMP_NTZ '{_wall(value.replace(tzinfo=None))}'"


def sql_literal(value: Any, as_string: bool = False) -> str:
    """A Spark SQL literal for a Python value: str, bool, int, float, Decimal, date or datetime (a
    naive one read as UTC); ``as_string``: the value's text, to compare with a string column."""
    if as_string or isinstance(value, str):
        text = value.isoformat() if isinstance(value, date) else str(value)
        return string_literal(text)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE)" if not math.isfinite(value) else repr(value)
    if isinstance(value, Decimal):
        return f"{value}BD"
    if isinstance(value, datetime):
        return timestamp_literal(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    if isinstance(value, date):
        return date_literal(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a SQL literal")


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def number_literal(key: str) -> str | None:
    """The key as a numeric literal, or ``None`` when it is not a number."""
    return key.strip() if _NUMBER.fullmatch(key.strip()) else None


_EPOCH = datetime(1970, 1, 1)


def literal_from_internal(type_name: str, value: Any) -> str | None:
    """A Spark SQL literal from a value in Spark's internal form (what a Catalyst ``Literal`` and a
    Spark Connect ``LiteralExpression`` hold): days for ``date``, microseconds since the epoch (UTC)
    for ``timestamp``, wall-clock microseconds for ``timestamp_ntz``."""
    if value is None:
        return None
    name = type_name.lower()
    if name == "date":
        return date_literal((_EPOCH + timedelta(days=int(value))).date())
    if name == "timestamp":
        return timestamp_literal(_EPOCH.replace(tzinfo=timezone.utc) + timedelta(microseconds=int(value)))
    if name == "timestamp_ntz":
        return timestamp_ntz_literal(_EPOCH + timedelta(microseconds=int(value)))
    if spark_type_to_column_type(name) == "number":
        return number_literal(str(value))
    if name in ("string", "varchar", "char") or name.startswith(("varchar", "char")):
        return string_literal(str(value))
    return None


def equal_literal(key: str, column_type: str) -> str:
    """The literal a partition column of ``column_type`` is compared with for partition key ``key``."""
    if column_type == "number":
        number = number_literal(key)
        if number is not None:
            return number
    if column_type == "date":
        try:
            return date_literal(date.fromisoformat(key))
        except ValueError:
            pass
    return string_literal(key)


def literal_value(literal: str) -> tuple[str, Any] | None:
    """``(kind, value)`` of a literal in Spark SQL: ``string`` (str), ``number`` (Decimal), ``date``,
    ``timestamp`` (aware datetime; ``None`` without an offset, which depends on the session time
    zone), ``timestamp_ntz`` (naive datetime)."""
    try:
        toks = tokenize(literal)
    except Exception:
        return None
    if len(toks) == 1 and toks[0].kind == "string":
        return "string", toks[0].text
    text = "".join(t.text for t in toks)
    if _NUMBER.fullmatch(text):
        try:
            return "number", Decimal(text)
        except InvalidOperation:
            return None
    if len(toks) != 2 or toks[1].kind != "string":
        return None
    prefix, body = toks[0].upper, toks[1].text.strip()
    try:
        if prefix == "DATE":
            return "date", date.fromisoformat(body)
        if prefix == "TIMESTAMP_NTZ":
            return "timestamp_ntz", datetime.fromisoformat(body)
        if prefix in ("TIMESTAMP", "TIMESTAMP_LTZ"):
            value = datetime.fromisoformat(body.replace("Z", "+00:00").replace(" UTC", "+00:00"))
            return ("timestamp", value) if value.tzinfo is not None else None
    except ValueError:
        return None
    return None


def spark_type_to_column_type(type_name: str) -> str:
    """A Spark ``DataType.typeName()`` as a ``column_type``."""
    name = type_name.lower()
    if name in ("date", "timestamp", "timestamp_ntz"):
        return name
    if name in ("byte", "short", "integer", "long", "float", "double") or name.startswith("decimal"):
        return "number"
    return "string"
