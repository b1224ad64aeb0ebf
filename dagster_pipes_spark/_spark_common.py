"""Mechanism-independent parts of the Spark write hooks: the write record, target naming, asset
resolution, aggregation into one materialization per asset, and the Pipes metadata.

Nothing here imports pyspark: the classic (py4j listener) and Connect (writer instrumentation)
backends live in ``_spark_classic`` and ``_spark_connect`` and are imported on first use.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

# --- operations and modes ---------------------------------------------------------------------

OP_WRITE = "WRITE"  #: a DataFrame written to a path (``save``/``parquet``/``json``/...)
OP_INSERT = "INSERT"
OP_INSERT_OVERWRITE = "INSERT OVERWRITE"
OP_CTAS = "CREATE TABLE AS SELECT"
OP_RTAS = "REPLACE TABLE AS SELECT"
OP_CREATE_OR_REPLACE = "CREATE OR REPLACE TABLE AS SELECT"
OP_MERGE = "MERGE"
OP_UPDATE = "UPDATE"
OP_DELETE = "DELETE"
OP_COPY_INTO = "COPY INTO"

_MODE_ALIASES = {
    "append": "append",
    "overwrite": "overwrite",
    "ignore": "ignore",
    "error": "errorifexists",
    "errorifexists": "errorifexists",
    "default": "errorifexists",
}


def normalize_mode(mode: Any) -> str | None:
    """``SaveMode`` names and DataFrameWriter mode strings to ``append|overwrite|ignore|errorifexists``."""
    if mode is None:
        return None
    text = str(mode).strip().lower().replace("_", "")
    return _MODE_ALIASES.get(text, text or None)


# --- identifiers and paths --------------------------------------------------------------------


def split_identifier(name: str) -> list[str]:
    """Split ``a.b.c`` / ```a.b`.c`` into name parts (backticks quote, doubled backticks escape)."""
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


# --- the write record -------------------------------------------------------------------------


@dataclass
class SparkWrite:
    """One batch write seen while :func:`~dagster_pipes_spark.spark.report_spark_writes` was open.

    ``table`` holds the name parts of a table target (as qualified as Spark told us), ``path`` the
    normalized location of a path target. Counters are ``None`` when Spark did not say.
    """

    operation: str
    table: tuple[str, ...] | None = None
    path: str | None = None
    mode: str | None = None
    format: str | None = None
    rows: int | None = None
    files: int | None = None
    bytes: int | None = None
    rows_inserted: int | None = None
    rows_updated: int | None = None
    rows_deleted: int | None = None
    columns: list[tuple[str, str]] | None = None
    is_delta: bool | None = None
    delta_version: int | None = None
    delta_operation: str | None = None
    error: str | None = None
    asset_key: str | None = None
    api: str | None = None
    # bookkeeping for the backends
    inner: bool = field(default=False, repr=False)  # may be the nested half of a following CTAS
    outer: bool = field(default=False, repr=False)  # a CTAS/RTAS whose data went in a nested write
    locations: tuple[str, ...] | None = field(default=None, repr=False)  # where an outer's table lives
    source: Any = field(default=None, repr=False, compare=False)

    @property
    def target(self) -> str:
        """Dotted table name, or the path."""
        if self.table:
            return ".".join(self.table)
        return self.path or "<unknown>"

    @property
    def succeeded(self) -> bool:
        """False for a write that raised."""
        return self.error is None

    @property
    def target_key(self) -> str:
        """Case-insensitive identity of the target, for grouping."""
        return ("t:" + ".".join(self.table).lower()) if self.table else ("p:" + (self.path or ""))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary of the write (used in ``spark/writes`` metadata)."""
        out: dict[str, Any] = {"target": self.target, "operation": self.operation}
        for key in ("mode", "format", "rows", "files", "bytes", "rows_inserted", "rows_updated",
                    "rows_deleted", "delta_version"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass
class SparkWriteReport:
    """What :func:`~dagster_pipes_spark.spark.report_spark_writes` saw and reported.

    Filled when the context exits: ``writes`` (successful, in order), ``failed_writes``, and
    ``materializations`` (asset key -> the metadata sent to Dagster). ``hook_seconds`` is the time
    spent in the hooks themselves while the block ran; ``exit_seconds`` the time spent on exit
    (waiting for Spark's events, history look-ups, reporting).
    """

    mechanism: str = "none"
    writes: list[SparkWrite] = field(default_factory=list)
    failed_writes: list[SparkWrite] = field(default_factory=list)
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)
    hook_seconds: float = 0.0
    hook_calls: int = 0
    exit_seconds: float = 0.0


class Collector:
    """Thread-safe store of writes; joins the nested half of a CTAS with the CTAS itself."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: list[SparkWrite] = []
        self.failures: list[SparkWrite] = []
        self.hook_errors: dict[str, int] = {}
        self.hook_seconds = 0.0
        self.hook_calls = 0

    def add(self, write: SparkWrite) -> None:
        """Record a write (success or failure)."""
        with self._lock:
            bucket = self.writes if write.succeeded else self.failures
            if write.outer and bucket:
                last = bucket[-1]
                if last.inner and (
                    last.target_key == write.target_key
                    or (last.path is not None and last.path in (write.locations or ()))
                ):
                    _absorb(last, write)
                    return
            bucket.append(write)

    def hook_error(self, where: str, exc: BaseException) -> None:
        """Remember an exception raised inside a hook (reported once per kind on exit)."""
        key = f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        with self._lock:
            self.hook_errors[key] = self.hook_errors.get(key, 0) + 1

    def timed(self, seconds: float) -> None:
        """Account time spent inside a hook."""
        with self._lock:
            self.hook_seconds += seconds
            self.hook_calls += 1

    def snapshot(self) -> tuple[list[SparkWrite], list[SparkWrite]]:
        """Copies of the successful and failed writes."""
        with self._lock:
            return list(self.writes), list(self.failures)


def _absorb(inner: SparkWrite, outer: SparkWrite) -> None:
    """Merge a CTAS/RTAS event into the nested write that carried its data."""
    inner.operation = outer.operation
    inner.mode = outer.mode or inner.mode
    inner.table = outer.table or inner.table
    inner.columns = outer.columns or inner.columns
    inner.format = outer.format or inner.format
    inner.is_delta = outer.is_delta if outer.is_delta is not None else inner.is_delta
    inner.error = outer.error or inner.error
    inner.api = outer.api or inner.api
    for attr in ("rows", "files", "bytes"):
        if getattr(inner, attr) is None:
            setattr(inner, attr, getattr(outer, attr))
    inner.inner = False


# --- asset resolution -------------------------------------------------------------------------

AssetKeyLike = str | Sequence[str]
AssetsMapping = Mapping[str, AssetKeyLike | None]
AssetsCallable = Callable[[str], AssetKeyLike | None]
AssetsArg = AssetsMapping | AssetsCallable | None


def escape_asset_key(parts: Sequence[str]) -> str:
    """Join asset key parts the way Pipes spells keys (``/`` inside a part escaped as ``\\/``)."""
    return "/".join(p.replace("/", "\\/") for p in parts)


def asset_key_parts(key: str) -> list[str]:
    """Split an escaped asset key string into its parts."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        if key[i] == "\\" and i + 1 < len(key) and key[i + 1] == "/":
            current.append("/")
            i += 2
            continue
        if key[i] == "/":
            parts.append("".join(current))
            current = []
        else:
            current.append(key[i])
        i += 1
    parts.append("".join(current))
    return parts


def coerce_asset_key(value: Any) -> str | None:
    """An asset key given as a string, a sequence of parts, or a ``dagster.AssetKey``."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    path = getattr(value, "path", None)  # dagster.AssetKey
    if isinstance(path, (list, tuple)) and all(isinstance(p, str) for p in path):
        return escape_asset_key(path) or None
    if isinstance(value, Sequence) and all(isinstance(p, str) for p in value):
        return escape_asset_key(list(value)) or None
    raise TypeError(f"not an asset key: {value!r}")


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
        self._scope_parts = [(tuple(p.lower() for p in asset_key_parts(k)), k) for k in self.scope]
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
            found, key = self._lookup(write)
            if not found:
                key = self._default(write)
            if key is None:
                return None, "no asset key maps to it" if not found else "it is mapped to None"
        if key not in self._scope_set:
            return None, f"asset key {key!r} is not in scope {self.scope}"
        return key, ""

    def _lookup(self, write: SparkWrite) -> tuple[bool, str | None]:
        if write.table:
            parts = tuple(p.lower() for p in write.table)
            for entry, key in self._tables:
                if len(entry) <= len(parts) and parts[len(parts) - len(entry) :] == entry:
                    return True, key
        if write.path is not None and write.path in self._paths:
            return True, self._paths[write.path]
        return False, None

    def _default(self, write: SparkWrite) -> str | None:
        if not write.table:
            return None
        parts = tuple(p.lower() for p in write.table)
        best: tuple[int, str] | None = None
        for key_parts, key in self._scope_parts:
            n = len(key_parts)
            if n <= len(parts) and parts[len(parts) - n :] == key_parts:
                if best is None or n > best[0]:
                    best = (n, key)
        return best[1] if best else None


# --- metadata ---------------------------------------------------------------------------------

MAX_WRITES_IN_METADATA = 50


def _mv(raw: Any, kind: str) -> dict[str, Any]:
    return {"raw_value": raw, "type": kind}


def _sum_known(values: Iterable[int | None]) -> int | None:
    total = 0
    for value in values:
        if value is None:
            return None
        total += value
    return total


def _distinct(values: Iterable[str | None]) -> list[str]:
    out: list[str] = []
    for value in values:
        if value and value not in out:
            out.append(value)
    return out


def build_metadata(writes: Sequence[SparkWrite], application_id: str | None) -> dict[str, Any]:
    """Pipes metadata for one asset from the (successful) writes that map to it, oldest first."""
    md: dict[str, Any] = {}
    rows = _sum_known(w.rows for w in writes)
    if rows is not None:
        md["dagster/row_count"] = _mv(rows, "int")
    last = writes[-1]
    tables = _distinct(w.target for w in writes if w.table)
    paths = _distinct(w.path for w in writes if not w.table and w.path)
    if last.table:
        md["dagster/table_name"] = _mv(last.target, "text")
    elif last.path:
        md["dagster/uri"] = _mv(last.path, "url" if is_uri(last.path) else "path")
    if len(tables) + len(paths) > 1:
        md["spark/targets"] = _mv(tables + paths, "json")
    columns = next((w.columns for w in reversed(writes) if w.columns), None)
    if columns:
        md["dagster/column_schema"] = _mv(
            {"columns": [{"name": name, "type": kind} for name, kind in columns]}, "table_schema"
        )
    md["spark/operation"] = _mv(", ".join(_distinct(w.operation for w in writes)), "text")
    modes = _distinct(w.mode for w in writes)
    if modes:
        md["spark/write_mode"] = _mv(", ".join(modes), "text")
    formats = _distinct(w.format for w in writes)
    if formats:
        md["spark/format"] = _mv(", ".join(formats), "text")
    md["spark/num_writes"] = _mv(len(writes), "int")
    for key, attr in (("spark/files_written", "files"), ("spark/bytes_written", "bytes")):
        total = _sum_known(getattr(w, attr) for w in writes)
        if total is not None:
            md[key] = _mv(total, "int")
    dml = [w for w in writes if w.operation in (OP_MERGE, OP_UPDATE, OP_DELETE)]
    for key, attr in (("spark/rows_inserted", "rows_inserted"), ("spark/rows_updated", "rows_updated"),
                      ("spark/rows_deleted", "rows_deleted")):
        values = [getattr(w, attr) for w in dml if getattr(w, attr) is not None]
        if values:
            md[key] = _mv(sum(values), "int")
    versions = [w.delta_version for w in writes if w.delta_version is not None]
    if versions:
        md["delta/version"] = _mv(versions[-1], "int")
    if application_id:
        md["spark/application_id"] = _mv(application_id, "text")
    summaries = [w.summary() for w in writes[-MAX_WRITES_IN_METADATA:]]
    md["spark/writes"] = _mv(summaries, "json")
    return md


def data_version_for(writes: Sequence[SparkWrite]) -> str | None:
    """The Delta version after the last write, when all Delta writes of the asset hit one table."""
    delta = [w for w in writes if w.delta_version is not None]
    if not delta or len({w.target_key for w in delta}) != 1:
        return None
    return str(delta[-1].delta_version)


# --- the hook session -------------------------------------------------------------------------


class Backend(Protocol):
    """What a mechanism (classic listener / Connect instrumentation) provides."""

    mechanism: str

    def start(self) -> None:
        """Begin observing writes."""

    def stop(self, timeout: float) -> None:
        """Wait (bounded) for pending write events, then stop observing. Must not raise."""

    def prepare(self, writes: list[SparkWrite]) -> None:
        """Complete writes before asset resolution (e.g. qualify table names)."""

    def enrich(self, writes: list[SparkWrite]) -> None:
        """Complete mapped writes (schemas, Delta history)."""

    def application_id(self) -> str | None:
        """The Spark application id, if known."""


def is_mock(obj: Any) -> bool:
    """Whether ``obj`` is a ``unittest.mock`` object (the no-op Pipes context outside Dagster)."""
    import sys

    mock_module = sys.modules.get("unittest.mock")
    return mock_module is not None and isinstance(obj, mock_module.NonCallableMock)


def _already_materialized(exc: BaseException) -> bool:
    return "already been materialized" in str(exc)


class HookSession:
    """Collects writes and turns them into materializations when the block ends."""

    def __init__(self, pipes: Any, assets: AssetsArg, report: SparkWriteReport) -> None:
        # validate the mapping up front so a bad ``assets`` fails where it was written
        AssetResolver(assets, [])
        self.pipes = pipes
        self.assets = assets
        self.report = report
        self.collector = Collector()

    def _log(self, level: str, message: str) -> None:
        try:
            getattr(self.pipes.log, level)(message)
        except Exception:
            pass

    def _scope(self) -> list[str]:
        try:
            keys = self.pipes.asset_keys
        except Exception as exc:  # DagsterPipesError: the step targets no asset
            self._log("debug", f"[spark writes] no asset keys in scope ({exc}); nothing will be reported")
            return []
        try:
            return [str(k) for k in keys]
        except TypeError:
            return []

    def finish(self, backend: Backend | None, timeout: float) -> None:
        """Stop observing, resolve, aggregate and report. Never raises."""
        started = time.perf_counter()
        try:
            self._finish(backend, timeout)
        except Exception as exc:  # pragma: no cover - defensive: reporting must not fail the job
            self._log("warning", f"[spark writes] automatic reporting failed: {type(exc).__name__}: {exc}")
        finally:
            self.report.exit_seconds = time.perf_counter() - started

    def _finish(self, backend: Backend | None, timeout: float) -> None:
        if backend is not None:
            backend.stop(timeout)
        writes, failures = self.collector.snapshot()
        self.report.writes = writes
        self.report.failed_writes = failures
        self.report.hook_seconds = self.collector.hook_seconds
        self.report.hook_calls = self.collector.hook_calls
        for problem, count in self.collector.hook_errors.items():
            times = f" ({count} times)" if count > 1 else ""
            self._log("warning", f"[spark writes] error inside a write hook, ignored{times}: {problem}")
        for failed in failures:
            self._log(
                "warning",
                f"[spark writes] {failed.operation} to {failed.target} failed; not reported as a"
                f" materialization: {failed.error}",
            )
        if not writes or backend is None:
            return
        scope = self._scope()
        self._guard(backend.prepare, writes)
        resolver = AssetResolver(self.assets, scope)
        by_key: dict[str, list[SparkWrite]] = {}
        for write in writes:
            key, reason = resolver.resolve(write)
            write.asset_key = key
            if key is None:
                self._log("debug", f"[spark writes] {write.operation} to {write.target} not reported: {reason}")
                continue
            by_key.setdefault(key, []).append(write)
        if not by_key:
            return
        mapped = [w for ws in by_key.values() for w in ws]
        self._guard(backend.enrich, mapped)
        app_id = None
        try:
            app_id = backend.application_id()
        except Exception:
            pass
        for key, key_writes in by_key.items():
            metadata = build_metadata(key_writes, app_id)
            try:
                self.pipes.report_asset_materialization(
                    metadata=metadata, data_version=data_version_for(key_writes), asset_key=key
                )
            except Exception as exc:
                if _already_materialized(exc):
                    self._log(
                        "info",
                        f"[spark writes] asset {key} was already reported by the job; skipping the"
                        f" automatic report of its {len(key_writes)} Spark write(s)",
                    )
                else:
                    self._log("warning", f"[spark writes] could not report asset {key}: {exc}")
                continue
            self.report.materializations[key] = metadata

    def _guard(self, fn: Callable[[list[SparkWrite]], None], writes: list[SparkWrite]) -> None:
        try:
            fn(writes)
        except Exception as exc:
            self._log("warning", f"[spark writes] {getattr(fn, '__name__', 'step')} failed: {type(exc).__name__}: {exc}")


# --- Delta history (shared by both mechanisms) ------------------------------------------------


_T = TypeVar("_T")
_R = TypeVar("_R")


def parallel_map(fn: Callable[[_T], _R], items: Sequence[_T], max_workers: int = 8) -> list[_R | BaseException]:
    """``fn`` over ``items`` on a few threads (Spark Connect and py4j calls are thread-safe and the
    look-ups are round-trip bound); an item's exception is returned in its place."""

    def call(item: _T) -> _R | BaseException:
        try:
            return fn(item)
        except Exception as exc:
            return exc

    if len(items) <= 1:
        return [call(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(max_workers, len(items)), thread_name_prefix="spark-writes") as pool:
        return list(pool.map(call, items))


def _is_parse_error(exc: BaseException) -> bool:
    return "PARSE_SYNTAX_ERROR" in str(exc) or "ParseException" in type(exc).__name__


def enrich_from_delta_history(
    writes: Sequence[SparkWrite],
    run_sql: Callable[[str], list[Any]],
    *,
    probe_unknown: bool,
    on_error: Callable[[str], None],
) -> None:
    """Fill version, row counts and file/byte counters of Delta writes from ``DESCRIBE HISTORY``.

    One query per Delta target (``LIMIT`` = writes to it + a margin for maintenance commits), run
    concurrently. Targets whose format is unknown are probed when ``probe_unknown``; a parse error
    on the first probe (no Delta SQL in this session) skips the others.
    """
    from dagster_pipes_spark import _delta

    groups: dict[str, list[SparkWrite]] = {}
    for write in writes:
        if write.is_delta is False or (write.is_delta is None and not probe_unknown):
            continue
        groups.setdefault(write.target_key, []).append(write)
    known = [g for g in groups.values() if any(w.is_delta for w in g)]
    unknown = [g for g in groups.values() if not any(w.is_delta for w in g)]

    def history(group: list[SparkWrite]) -> list[Any]:
        first = group[0]
        return run_sql(_delta.history_sql(first.table, None if first.table else first.path, len(group) + 5))

    def apply(group: list[SparkWrite], result: list[Any] | BaseException, known_delta: bool) -> None:
        if isinstance(result, BaseException):
            if known_delta:
                text = str(result).strip()
                on_error(f"DESCRIBE HISTORY for {group[0].target} failed: {type(result).__name__}:"
                         f" {text.splitlines()[0] if text else ''}")
            for w in group:
                if w.is_delta is None:
                    w.is_delta = False
            return
        commits = [c for c in (_delta.parse_history_row(r) for r in result) if c is not None]
        for w in group:
            w.is_delta = True
        for write, commit in _delta.match_commits(group, commits):
            _delta.apply_commit(write, commit)

    for group, result in zip(known, parallel_map(history, known), strict=True):
        apply(group, result, True)
    if unknown:
        first_result = parallel_map(history, unknown[:1])[0]
        apply(unknown[0], first_result, False)
        rest = unknown[1:]
        if isinstance(first_result, BaseException) and _is_parse_error(first_result):
            rest_results: list[list[Any] | BaseException] = [first_result] * len(rest)
        else:
            rest_results = parallel_map(history, rest)
        for group, result in zip(rest, rest_results, strict=True):
            apply(group, result, False)


# --- type names -------------------------------------------------------------------------------

_JSON_SIMPLE_TYPES = {
    "long": "bigint",
    "integer": "int",
    "short": "smallint",
    "byte": "tinyint",
    "null": "void",
}


def spark_json_type_to_sql(t: Any) -> str:
    """A Spark ``DataType`` in its JSON form (``StructType.json()``) as its ``simpleString``."""
    if isinstance(t, str):
        return _JSON_SIMPLE_TYPES.get(t, t)
    if not isinstance(t, Mapping):
        return str(t)
    kind = t.get("type")
    if kind == "array":
        return f"array<{spark_json_type_to_sql(t.get('elementType'))}>"
    if kind == "map":
        return f"map<{spark_json_type_to_sql(t.get('keyType'))},{spark_json_type_to_sql(t.get('valueType'))}>"
    if kind == "struct":
        fields = ",".join(f"{f.get('name')}:{spark_json_type_to_sql(f.get('type'))}" for f in t.get("fields", []))
        return f"struct<{fields}>"
    if kind == "udt":
        return spark_json_type_to_sql(t.get("sqlType"))
    return str(kind)


def columns_from_schema_json(schema_json: str) -> list[tuple[str, str]] | None:
    """``[(name, type)]`` from ``StructType.json()``."""
    import json

    try:
        data = json.loads(schema_json)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, Mapping) or data.get("type") != "struct":
        return None
    return [(str(f.get("name")), spark_json_type_to_sql(f.get("type"))) for f in data.get("fields", [])]
