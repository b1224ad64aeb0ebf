"""Find the write target of a Spark SQL statement without Spark (used on Spark Connect, where the
analysed plan is not reachable): INSERT [INTO|OVERWRITE] (also ``INSERT OVERWRITE DIRECTORY``),
CREATE [OR REPLACE] TABLE ... AS SELECT, REPLACE TABLE ... AS SELECT, MERGE INTO, UPDATE,
DELETE FROM and Databricks' COPY INTO, with leading CTEs, comments and quoted names.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster_pipes_spark.spark._record import (
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
from dagster_pipes_spark.spark._targets import looks_like_path, normalize_path, split_identifier


@dataclass(frozen=True)
class SqlWrite:
    """The write a SQL statement performs."""

    operation: str
    mode: str | None
    table: tuple[str, ...] | None = None
    path: str | None = None
    format: str | None = None


@dataclass(frozen=True)
class _Tok:
    kind: str  # "word", "quoted" (backticks), "string", "punct", "number"
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _quoted(sql: str, start: int, *, backslash: bool) -> tuple[str, int]:
    """The text of the quoted token opening at ``start`` and the index after it; a doubled quote
    stands for itself, and (in string literals) a backslash escapes the next character."""
    quote, buf, i, n = sql[start], [], start + 1, len(sql)
    while i < n:
        if backslash and sql[i] == "\\" and i + 1 < n:
            buf.append(sql[i + 1])
            i += 2
        elif sql[i] == quote:
            if i + 1 < n and sql[i + 1] == quote:
                buf.append(quote)
                i += 2
            else:
                return "".join(buf), i + 1
        else:
            buf.append(sql[i])
            i += 1
    return "".join(buf), i


def tokenize(sql: str) -> list[_Tok]:
    """Tokens of a statement, comments and whitespace dropped."""
    toks: list[_Tok] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif ch == "`":
            text, i = _quoted(sql, i, backslash=False)
            toks.append(_Tok("quoted", text))
        elif ch in "'\"":
            text, i = _quoted(sql, i, backslash=True)
            toks.append(_Tok("string", text))
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            toks.append(_Tok("word", sql[i:j]))
            i = j
        elif ch.isdigit():
            j = i
            while j < n and (sql[j].isalnum() or sql[j] in "._"):
                j += 1
            toks.append(_Tok("number", sql[i:j]))
            i = j
        else:
            toks.append(_Tok("punct", ch))
            i += 1
    return toks


class _Parser:
    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if 0 <= j < len(self.toks) else None

    def kw(self, offset: int = 0) -> str:
        tok = self.peek(offset)
        return tok.upper if tok else ""

    def accept(self, *words: str) -> bool:
        if self.kw() in words:
            self.i += 1
            return True
        return False

    def accept_seq(self, *words: str) -> bool:
        if all(self.kw(k) == w for k, w in enumerate(words)):
            self.i += len(words)
            return True
        return False

    def skip_parens(self) -> None:
        """Skip a balanced ``( ... )`` group starting at the current token."""
        tok = self.peek()
        if not tok or tok.text != "(" or tok.kind != "punct":
            return
        depth = 0
        while self.i < len(self.toks):
            t = self.toks[self.i]
            self.i += 1
            if t.kind == "punct" and t.text == "(":
                depth += 1
            elif t.kind == "punct" and t.text == ")":
                depth -= 1
                if depth == 0:
                    return

    def skip_ctes(self) -> None:
        """Skip ``WITH [RECURSIVE] name [(cols)] AS (...) [, ...]``."""
        if not self.accept("WITH"):
            return
        self.accept("RECURSIVE")
        while self.peek() is not None:
            self.i += 1  # the CTE name
            if self.peek() and self.peek().text == "(":  # type: ignore[union-attr]
                self.skip_parens()  # column list
            self.accept("AS")
            self.skip_parens()
            tok = self.peek()
            if tok and tok.kind == "punct" and tok.text == ",":
                self.i += 1
                continue
            return

    def name(self) -> tuple[tuple[str, ...] | None, str | None, str | None]:
        """A (possibly qualified) table name -> ``(parts, path, format)``.

        ``fmt.`/path``` gives a path and its format; ``IDENTIFIER('a.b')`` is read from the literal.
        """
        tok = self.peek()
        if tok is None:
            return None, None, None
        if tok.upper == "IDENTIFIER" and self.peek(1) and self.peek(1).text == "(":  # type: ignore[union-attr]
            lit = self.peek(2)
            if lit is None or lit.kind != "string":
                return None, None, None
            self.i += 3
            if self.peek() and self.peek().text == ")":  # type: ignore[union-attr]
                self.i += 1
            return tuple(split_identifier(lit.text)), None, None
        parts: list[tuple[str, str]] = []
        while True:
            tok = self.peek()
            if tok is None or tok.kind not in ("word", "quoted"):
                break
            parts.append((tok.kind, tok.text))
            self.i += 1
            nxt = self.peek()
            if nxt is not None and nxt.kind == "punct" and nxt.text == ".":
                self.i += 1
                continue
            break
        if not parts:
            return None, None, None
        if len(parts) == 2 and parts[1][0] == "quoted" and looks_like_path(parts[1][1]):
            return None, normalize_path(parts[1][1]), parts[0][1].lower()
        return tuple(text for _, text in parts), None, None

    def find_top_level(self, *words: str) -> int | None:
        """Index of the first depth-0 keyword in ``words`` from the current position."""
        depth = 0
        for j in range(self.i, len(self.toks)):
            t = self.toks[j]
            if t.kind == "punct" and t.text == "(":
                depth += 1
            elif t.kind == "punct" and t.text == ")":
                depth -= 1
            elif depth == 0 and t.upper in words:
                return j
        return None


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
