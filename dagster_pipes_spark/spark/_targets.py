"""Target naming and asset resolution: table identifiers, write paths, and which asset a write is.

Nothing here imports pyspark.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from dagster_pipes_spark._protocol import coerce_asset_key, escape_asset_key_path, to_asset_key_path
from dagster_pipes_spark.spark._write_record import SparkWrite

# --- identifiers and paths --------------------------------------------------------------------


def split_identifier(name: str) -> list[str]:
    """Split ``a.b.c`` / ```a.b`.c`` into name parts (backticks quote, doubled backticks escape)."""
    if "`" not in name:  # the common case (every relation of a printed plan): no character loop
        return [part for part in (p.strip() for p in name.split(".")) if part]
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(name):
        ch = name[i]
        if quoted:
            if ch == "`":
                if i + 1 < len(name) and name[i + 1] == "`":
                    current.append("`")
                    i += 1
                else:
                    quoted = False
            else:
                current.append(ch)
        elif ch == "`":
            quoted = True
        elif ch == ".":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def quote_identifier(part: str) -> str:
    """Backtick-quote one name part."""
    return "`" + part.replace("`", "``") + "`"


_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def normalize_path(path: str) -> str:
    """Canonical form of a write path: local ``file:`` URIs and ``dbfs:/Volumes`` become plain paths,
    duplicate and trailing slashes go; other URIs (``s3://``, ``abfss://``, ``dbfs:/``) are kept.
    """
    p = str(path).strip()
    if p.startswith("file://"):
        p = p[len("file://") :]
        if not p.startswith("/"):  # file://host/path: keep the path part
            p = "/" + p.split("/", 1)[1] if "/" in p else "/"
    elif p.startswith("file:"):
        p = p[len("file:") :]
    if p.startswith("dbfs:/Volumes/"):
        p = p[len("dbfs:") :]
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*:/*)(.*)$", p)
    prefix, rest = (match.group(1), match.group(2)) if match else ("", p)
    if not prefix and rest.startswith("/"):
        prefix, rest = "/", rest.lstrip("/")
    rest = re.sub(r"/{2,}", "/", rest).rstrip("/")
    return prefix + rest if rest or prefix else p


def is_uri(path: str) -> bool:
    """Whether a (normalized) path carries a URI scheme."""
    return bool(_URI_SCHEME.match(path))


_FORMAT_PATH_REF = re.compile(r"^\s*(?P<fmt>[A-Za-z_][A-Za-z0-9_]*)\s*\.\s*`(?P<path>[^`]+)`\s*$")


def looks_like_path(text: str) -> bool:
    """Whether a mapping key / target string names a path rather than a table."""
    t = text.strip()
    return "/" in t or "\\" in t or (bool(_URI_SCHEME.match(t)) and not t.startswith("`"))


def parse_target(text: str) -> tuple[str, tuple[str, ...] | str]:
    """``("path", normalized_path)`` or ``("table", name_parts)`` for a user-given target string.

    ``delta.`/some/path``` (any ``format.`path```) is a path.
    """
    match = _FORMAT_PATH_REF.match(text)
    if match and looks_like_path(match.group("path")):
        return "path", normalize_path(match.group("path"))
    if looks_like_path(text) and "`" not in text:
        return "path", normalize_path(text)
    return "table", tuple(split_identifier(text))


# --- asset resolution -------------------------------------------------------------------------

AssetKeyLike = str | Sequence[str]
AssetsMapping = Mapping[str, AssetKeyLike | None]
AssetsCallable = Callable[[str], AssetKeyLike | None]
AssetsArg = AssetsMapping | AssetsCallable | None


class AssetResolver:
    """Maps a write's target to an asset key in scope.

    A mapping is looked up first (table names match on any qualification, case-insensitively, the
    most qualified entry winning; paths match after normalization; a ``None`` value excludes the
    target); targets it does not name fall back to the default rule: a table whose trailing name
    parts equal an in-scope asset key's parts (so ``orders`` <- ``spark_catalog.default.orders``).
    A callable decides alone.
    """

    def __init__(self, assets: AssetsArg, scope: Sequence[str]) -> None:
        self.scope = list(scope)
        self._scope_set = set(self.scope)
        self._scope_parts = [(tuple(p.lower() for p in to_asset_key_path(k)), k) for k in self.scope]
        self._fn: AssetsCallable | None = None
        self._tables: list[tuple[tuple[str, ...], str | None]] = []
        self._paths: dict[str, str | None] = {}
        if isinstance(assets, Mapping):
            for target, key in assets.items():
                kind, parsed = parse_target(str(target))
                coerced = coerce_asset_key(key)
                if kind == "path":
                    assert isinstance(parsed, str)
                    self._paths[parsed] = coerced
                else:
                    self._tables.append((tuple(p.lower() for p in parsed), coerced))
            self._tables.sort(key=lambda entry: len(entry[0]), reverse=True)
        elif assets is not None:
            if not callable(assets):
                raise TypeError("assets must be a mapping, a callable or None")
            self._fn = assets

    def resolve(self, write: SparkWrite) -> tuple[str | None, str]:
        """``(asset_key, "")`` or ``(None, reason)``."""
        if self._fn is not None:
            try:
                key = coerce_asset_key(self._fn(write.target))
            except Exception as exc:  # a user callable must not break reporting
                return None, f"the assets callable raised {type(exc).__name__}: {exc}"
            if key is None:
                return None, "the assets callable returned None"
        else:
            found, key = self._lookup(write.table, write.path)
            if not found:
                key = self._default(write.table)
            if key is None:
                return None, "no asset key maps to it" if not found else "it is mapped to None"
        if key not in self._scope_set:
            return None, f"asset key {key!r} is not in scope {self.scope}"
        return key, ""

    def resolve_source(self, table: Sequence[str] | None, path: str | None) -> str | None:
        """Asset key of a table or path a write reads (for column lineage), or ``None``.

        The same mapping or callable as for targets; a table the mapping does not name takes the
        in-scope key equal to its trailing name parts, else its bare name (``orders`` for
        ``main.sales.orders``). The key need not be in scope.
        """
        if self._fn is not None:
            try:
                return coerce_asset_key(self._fn(".".join(table) if table else path or ""))
            except Exception:  # a user callable must not break reporting
                return None
        found, key = self._lookup(table, path)
        if found:
            return key
        if not table:
            return None
        return self._default(table) or escape_asset_key_path([table[-1]])

    def _lookup(self, table: Sequence[str] | None, path: str | None) -> tuple[bool, str | None]:
        if table:
            parts = tuple(p.lower() for p in table)
            for entry, key in self._tables:
                if len(entry) <= len(parts) and parts[len(parts) - len(entry) :] == entry:
                    return True, key
        if path is not None and path in self._paths:
            return True, self._paths[path]
        return False, None

    def _default(self, table: Sequence[str] | None) -> str | None:
        if not table:
            return None
        parts = tuple(p.lower() for p in table)
        best: tuple[int, str] | None = None
        for key_parts, key in self._scope_parts:
            n = len(key_parts)
            if n <= len(parts) and parts[len(parts) - n :] == key_parts:
                if best is None or n > best[0]:
                    best = (n, key)
        return best[1] if best else None
