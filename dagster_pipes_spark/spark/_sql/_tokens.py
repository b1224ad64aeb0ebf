"""Spark SQL text as tokens (strings, quoted names, comments), and a small cursor over them."""

from __future__ import annotations

from dataclasses import dataclass

from dagster_pipes_spark.spark._targets import (
    looks_like_path,
    normalize_path,
    split_identifier,
)


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

    def kw_is(self, offset: int, text: str) -> bool:
        """Whether the token at ``offset`` is the punctuation or word ``text``."""
        tok = self.peek(offset)
        return tok is not None and tok.text == text

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
