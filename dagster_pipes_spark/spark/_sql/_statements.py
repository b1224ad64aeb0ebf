"""Find the write target of a Spark SQL statement without Spark (used on Spark Connect, where the
analysed plan is not reachable): INSERT [INTO|OVERWRITE] (also ``INSERT OVERWRITE DIRECTORY``),
CREATE [OR REPLACE] TABLE ... AS SELECT, REPLACE TABLE ... AS SELECT, MERGE INTO, UPDATE,
DELETE FROM and Databricks' COPY INTO, with leading CTEs, comments and quoted names.

Also the partition clauses of an ``INSERT`` (``PARTITION (...)``, ``REPLACE WHERE``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster_pipes_spark.spark._sql._tokens import _Parser, _Tok, tokenize
from dagster_pipes_spark.spark._targets import (
    normalize_path,
)
from dagster_pipes_spark.spark._write_record import (
    OP_COPY_INTO,
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_DELETE,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_UPDATE,
)


@dataclass(frozen=True)
class SqlWrite:
    """The write a SQL statement performs."""

    operation: str
    mode: str | None
    table: tuple[str, ...] | None = None
    path: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class InsertClauses:
    """The partition clauses of an ``INSERT`` statement, as written."""

    #: ``PARTITION (col = value, ...)``: column -> the value's text (a string literal unquoted);
    #: None without a ``PARTITION`` clause
    static: dict[str, str] | None
    #: columns ``PARTITION (...)`` lists without a value (a dynamic partition insert)
    dynamic: tuple[str, ...]
    #: the tokens of ``REPLACE WHERE <condition>`` (Delta), None without one
    replace_where: list[_Tok] | None


def parse_insert_clauses(sql: str) -> InsertClauses | None:
    """The ``PARTITION (...)`` and ``REPLACE WHERE`` clauses of an ``INSERT`` statement (None: not an
    ``INSERT`` into a named table or path)."""
    p = _Parser(tokenize(sql))
    p.skip_ctes()
    if not p.accept("INSERT"):
        return None
    p.accept("OVERWRITE", "INTO")
    p.accept("TABLE")
    table, path, _ = p.name()
    if table is None and path is None:
        return None
    static: dict[str, str] | None = None
    dynamic: list[str] = []
    if p.kw() == "PARTITION" and p.kw_is(1, "("):
        p.i += 2
        static = {}
        while (tok := p.peek()) is not None and tok.text != ")":
            value = p.peek(2)
            if tok.kind in ("word", "quoted") and p.kw_is(1, "=") and value is not None:
                static[tok.text] = value.text
                p.i += 3
                continue
            if tok.kind in ("word", "quoted"):
                dynamic.append(tok.text)
            p.i += 1
        p.i += 1
    replace_where = None
    if p.accept_seq("REPLACE", "WHERE"):
        end = p.find_top_level("SELECT", "WITH", "FROM", "VALUES", "TABLE")
        replace_where = p.toks[p.i : end]
    return InsertClauses(static or None, tuple(dynamic), replace_where)


_QUERY_START = {"SELECT", "WITH", "FROM", "VALUES", "TABLE", "MAP", "REDUCE"}


def _is_query_start(tok: _Tok | None) -> bool:
    return tok is not None and (tok.upper in _QUERY_START or (tok.kind == "punct" and tok.text == "("))


def _using_format(p: _Parser, start: int) -> str | None:
    saved = p.i
    p.i = start
    j = p.find_top_level("USING")
    p.i = saved
    if j is not None and j + 1 < len(p.toks) and p.toks[j + 1].kind in ("word", "quoted"):
        return p.toks[j + 1].text.lower()
    return None


#: Statements whose target follows a keyword: head -> (optional words, required word, operation, mode).
_TARGETED_STATEMENTS: dict[str, tuple[tuple[str, ...], str | None, str, str | None]] = {
    "MERGE": (("WITH", "SCHEMA", "EVOLUTION"), "INTO", OP_MERGE, None),
    "UPDATE": ((), None, OP_UPDATE, None),
    "DELETE": ((), "FROM", OP_DELETE, None),
    "COPY": ((), "INTO", OP_COPY_INTO, "append"),
}


def parse_sql_write(sql: str) -> SqlWrite | None:
    """The write target of one SQL statement, or ``None`` when it writes no table data."""
    if not isinstance(sql, str):
        return None
    toks = tokenize(sql)
    # drop a trailing semicolon and leading parentheses-free noise
    while toks and toks[-1].kind == "punct" and toks[-1].text == ";":
        toks.pop()
    p = _Parser(toks)
    p.skip_ctes()
    head = p.kw()
    if head == "INSERT":
        p.i += 1
        if p.accept("OVERWRITE"):
            op, mode = OP_INSERT_OVERWRITE, "overwrite"
            if p.accept("LOCAL"):
                pass
            if p.accept("DIRECTORY"):
                tok = p.peek()
                if tok is None or tok.kind != "string":
                    return None
                return SqlWrite(op, mode, path=normalize_path(tok.text), format=_using_format(p, p.i))
        elif p.accept("INTO"):
            op, mode = OP_INSERT, "append"
        else:
            return None
        p.accept("TABLE")
        table, path, fmt = p.name()
        if table is None and path is None:
            return None
        if p.find_top_level("REPLACE") is not None:  # INSERT INTO t REPLACE WHERE / USING
            op, mode = OP_INSERT_OVERWRITE, "overwrite"
        return SqlWrite(op, mode, table=table, path=path, format=fmt)
    if head in ("CREATE", "REPLACE"):
        p.i += 1
        if head == "CREATE":
            or_replace = p.accept_seq("OR", "REPLACE")
            op = OP_CREATE_OR_REPLACE if or_replace else OP_CTAS
        else:
            or_replace = True
            op = OP_RTAS
        p.accept("EXTERNAL", "TEMPORARY", "TEMP", "GLOBAL")
        if not p.accept("TABLE"):
            return None
        if_not_exists = p.accept_seq("IF", "NOT", "EXISTS")
        start = p.i
        table, path, fmt = p.name()
        if table is None and path is None:
            return None
        as_at = p.find_top_level("AS")
        while as_at is not None and not _is_query_start(
            p.toks[as_at + 1] if as_at + 1 < len(p.toks) else None
        ):
            p.i = as_at + 1
            as_at = p.find_top_level("AS")
        if as_at is None:
            return None  # plain DDL: no data written
        p.i = start
        fmt = _using_format(p, start) or fmt
        mode = "overwrite" if or_replace else ("ignore" if if_not_exists else "errorifexists")
        return SqlWrite(op, mode, table=table, path=path, format=fmt)
    row_level = _TARGETED_STATEMENTS.get(head)
    if row_level is None:
        return None
    optional, required, target_op, target_mode = row_level
    p.i += 1
    if optional:
        p.accept_seq(*optional)
    if required and not p.accept(required):
        return None
    table, path, fmt = p.name()
    return SqlWrite(target_op, target_mode, table=table, path=path, format=fmt) if table or path else None
