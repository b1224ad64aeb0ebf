"""Spark Connect (Databricks standard/shared access mode, serverless, ``builder.remote(...)``): no
listener API is reachable, so the Python writer classes are instrumented instead.

* ``DataFrameWriter.save`` / ``insertInto`` / ``saveAsTable`` (``parquet``, ``json``, ``csv``,
  ``orc``, ``text``, ``jdbc``... all go through ``save``), ``DataFrameWriterV2.create`` /
  ``replace`` / ``createOrReplace`` / ``append`` / ``overwrite`` / ``overwritePartitions``,
  ``MergeIntoWriter.merge`` and ``SparkSession.sql`` (statement parsed for INSERT / CTAS / RTAS /
  MERGE / UPDATE / DELETE / COPY INTO) are wrapped at class level while at least one
  :func:`report_spark_writes` block is open on a Connect session, and restored afterwards.
* Row counts of DataFrame writes come from a string-named observation (``count(1)`` in a
  ``CollectMetrics`` node on top of the written plan) whose value the server returns with the write
  command's ExecutionInfo: no second job, no wait (an ``Observation`` object would wait for the
  server's listener bus, ~0.1 s per write). SQL writes get
  theirs from Delta history only (``DESCRIBE HISTORY``), read on exit, once per Delta table.
* On exit, table names are qualified and schemas read with one ``DESCRIBE TABLE EXTENDED`` per
  table; path writes take the written DataFrame's schema.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._delta import enrich_from_delta_history
from dagster_pipes_spark.spark._parallel import parallel_map
from dagster_pipes_spark.spark._record import (
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_WRITE,
    Collector,
    SparkWrite,
    normalize_mode,
)
from dagster_pipes_spark.spark._targets import (
    normalize_path,
    parse_target,
    quote_identifier,
    split_identifier,
)

ROWS_METRIC = "__dagster_pipes_rows"

_LOCK = threading.RLock()
_ACTIVE: list[ConnectBackend] = []
_PATCHES: list[tuple[type, str, Any, Any]] = []  # (class, attribute, original, wrapper)
_STATE = threading.local()


def _busy() -> bool:
    return bool(getattr(_STATE, "busy", False))


class _Busy:
    """Marks the current thread as inside a hook, so nested writer calls are not recorded twice."""

    def __enter__(self) -> None:
        self._previous = _busy()
        _STATE.busy = True

    def __exit__(self, *exc: object) -> None:
        _STATE.busy = self._previous


def _backends_for_session(session: Any) -> list[ConnectBackend]:
    if session is None:
        return []
    with _LOCK:
        return [b for b in _ACTIVE if b.spark is session]


def _backends_for_client(client: Any) -> list[ConnectBackend]:
    if client is None:
        return []
    with _LOCK:
        return [b for b in _ACTIVE if getattr(b.spark, "client", None) is client]


# --- reading the writers ----------------------------------------------------------------------


def _table_or_path(name: str) -> tuple[tuple[str, ...] | None, str | None, str | None]:
    kind, parsed = parse_target(name)
    if kind == "path":
        fmt_match = re.match(r"^\s*([A-Za-z_]\w*)\s*\.", name)
        return None, str(parsed), fmt_match.group(1).lower() if fmt_match else None
    assert isinstance(parsed, tuple)
    return parsed, None, None


def _is_delta_format(fmt: str | None) -> bool | None:
    if fmt is None:
        return None
    return fmt.lower() == "delta"


def _v1_write(writer: Any, api: str) -> SparkWrite | None:
    op = writer._write
    fmt = op.source.lower() if getattr(op, "source", None) else None
    mode = normalize_mode(getattr(op, "mode", None))
    if api in ("insertInto", "saveAsTable"):
        if not op.table_name:
            return None
        table, path, path_fmt = _table_or_path(op.table_name)
        fmt = fmt or path_fmt
        if api == "insertInto":
            mode = mode or "append"
            operation = OP_INSERT_OVERWRITE if mode == "overwrite" else OP_INSERT
        else:
            mode = mode or "errorifexists"
            operation = OP_INSERT if mode == "append" else OP_CTAS
        return SparkWrite(
            operation, table=table, path=path, mode=mode, format=fmt, is_delta=_is_delta_format(fmt)
        )
    path = op.path or op.options.get("path")
    if not path:
        return None
    return SparkWrite(
        OP_WRITE,
        path=normalize_path(path),
        mode=mode or "errorifexists",
        format=fmt,
        is_delta=_is_delta_format(fmt),
    )


_V2_MODES = {
    "create": (OP_CTAS, "errorifexists"),
    "replace": (OP_RTAS, "overwrite"),
    "create_or_replace": (OP_CREATE_OR_REPLACE, "overwrite"),
    "append": (OP_INSERT, "append"),
    "overwrite": (OP_INSERT_OVERWRITE, "overwrite"),
    "overwrite_partitions": (OP_INSERT_OVERWRITE, "overwrite"),
}


def _v2_write(writer: Any, api: str) -> SparkWrite | None:
    op = writer._write
    if not op.table_name:
        return None
    operation, mode = _V2_MODES.get(str(op.mode), (OP_INSERT, None))
    table, path, path_fmt = _table_or_path(op.table_name)
    fmt = (op.provider or path_fmt or None) and str(op.provider or path_fmt).lower()
    return SparkWrite(
        operation, table=table, path=path, mode=mode, format=fmt, is_delta=_is_delta_format(fmt)
    )


def _merge_write(writer: Any, api: str) -> SparkWrite | None:
    table, path, fmt = _table_or_path(writer._target_table)
    return SparkWrite(OP_MERGE, table=table, path=path, format=fmt, is_delta=_is_delta_format(fmt))


class _Observed:
    """A row-count ``CollectMetrics`` put on top of a writer's plan, and what came back."""

    def __init__(self, writer: Any) -> None:
        from pyspark.sql.connect import plan
        from pyspark.sql.connect.functions import builtin as sf

        self.writer = writer
        self.name = f"{ROWS_METRIC}_{uuid.uuid4().hex}"
        self.child = writer._write._child
        self.callback = writer._callback
        self.execution_info: Any = None
        # A string-named observation (not an ``Observation`` object, whose delivery waits on the
        # server's listener bus): its values come back in the command's ExecutionInfo.
        writer._write._child = plan.CollectMetrics(self.child, self.name, [sf.count(sf.lit(1)).alias("rows")])

        def capture(execution_info: Any) -> None:
            self.execution_info = execution_info
            self.callback(execution_info)

        writer._callback = capture

    @staticmethod
    def supported(writer: Any) -> bool:
        """Clients before Spark 4 return no ExecutionInfo from commands."""
        return hasattr(writer, "_callback") and hasattr(getattr(writer, "_write", None), "_child")

    def restore(self) -> None:
        self.writer._write._child = self.child
        self.writer._callback = self.callback

    def rows(self) -> int | None:
        try:
            value = dict(self.execution_info.flows).get(self.name, {}).get("rows")
        except Exception:
            return None
        return int(value) if isinstance(value, int) else None


def _targets_delta(writer: Any, backend: ConnectBackend) -> bool:
    """Whether a writer evidently writes Delta (its format, a ``delta.`path``` name, or the
    session's default format when none is given): then Delta history gives the row count."""
    op = getattr(writer, "_write", None)
    fmt = getattr(op, "source", None) or getattr(op, "provider", None)
    name = getattr(op, "table_name", None)
    if name and re.match(r"^\s*delta\s*\.\s*`", name, re.IGNORECASE):
        return True
    if fmt:
        return str(fmt).lower() == "delta"
    return backend.default_format() == "delta"


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]


def _wrap_writer(
    original: Callable[..., Any],
    api: str,
    read: Callable[[Any, str], SparkWrite | None],
    backends_of: Callable[[Any], list[ConnectBackend]],
    observe: bool,
) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        backends = backends_of(self)
        if not backends or _busy():
            return original(self, *args, **kwargs)
        started = time.perf_counter()
        observed: _Observed | None = None
        if (
            observe
            and backends[0].count_rows
            and _Observed.supported(self)
            and not _targets_delta(self, backends[0])
        ):
            try:
                observed = _Observed(self)
            except Exception as exc:
                for b in backends:
                    b.collector.hook_error(f"{api} (row count)", exc)
        elapsed = time.perf_counter() - started
        error: BaseException | None = None
        try:
            with _Busy():
                return original(self, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            started = time.perf_counter()
            if observed is not None:
                try:
                    observed.restore()
                except Exception:
                    pass
            try:
                write = read(self, api)
                if write is not None:
                    write.api = api
                    if error is not None:
                        write.error = _error_text(error)
                    elif observed is not None:
                        write.rows = observed.rows()
                        if write.path is not None:
                            write.source = observed.child
                    elif write.path is not None:
                        write.source = getattr(getattr(self, "_write", None), "_child", None)
                    for b in backends:
                        b.collector.add(write if len(backends) == 1 else _copy(write))
            except Exception as exc:
                for b in backends:
                    b.collector.hook_error(api, exc)
            elapsed += time.perf_counter() - started
            for b in backends:
                b.collector.timed(elapsed)

    wrapper.__dagster_pipes_hook__ = True  # type: ignore[attr-defined]
    return wrapper


def _copy(write: SparkWrite) -> SparkWrite:
    import copy

    return copy.copy(write)


_WRITE_SQL_HEADS = frozenset({"INSERT", "CREATE", "REPLACE", "MERGE", "UPDATE", "DELETE", "COPY", "WITH"})
_FIRST_WORD = re.compile(r"[A-Za-z]+")


def _may_write(sql: str) -> bool:
    """Cheap pre-check: does the statement start (after comments) with a writing keyword?"""
    i, n = 0, len(sql)
    while i < n:
        if sql[i].isspace() or sql[i] == "(":
            i += 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            break
    match = _FIRST_WORD.match(sql, i)
    return match is not None and match.group(0).upper() in _WRITE_SQL_HEADS


def _wrap_sql(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def sql(self: Any, sqlQuery: str, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
        backends = _backends_for_session(self)
        if not backends or _busy() or not isinstance(sqlQuery, str) or not _may_write(sqlQuery):
            return original(self, sqlQuery, *args, **kwargs)
        started = time.perf_counter()
        parsed = None
        try:
            from dagster_pipes_spark.spark._sql import parse_sql_write

            parsed = parse_sql_write(sqlQuery)
        except Exception as exc:
            for b in backends:
                b.collector.hook_error("sql (parsing)", exc)
        elapsed = time.perf_counter() - started
        if parsed is None:
            for b in backends:
                b.collector.timed(elapsed)
            return original(self, sqlQuery, *args, **kwargs)
        error: BaseException | None = None
        try:
            with _Busy():
                return original(self, sqlQuery, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            started = time.perf_counter()
            try:
                fmt = parsed.format
                for b in backends:
                    write = SparkWrite(
                        parsed.operation,
                        table=parsed.table,
                        path=parsed.path,
                        mode=parsed.mode,
                        format=fmt,
                        is_delta=_is_delta_format(fmt),
                        api="sql",
                        error=_error_text(error) if error is not None else None,
                    )
                    b.collector.add(write)
            except Exception as exc:
                for b in backends:
                    b.collector.hook_error("sql", exc)
            elapsed += time.perf_counter() - started
            for b in backends:
                b.collector.timed(elapsed)

    sql.__dagster_pipes_hook__ = True  # type: ignore[attr-defined]
    return sql


def _patch_specs() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    from pyspark.sql.connect.readwriter import DataFrameWriter, DataFrameWriterV2
    from pyspark.sql.connect.session import SparkSession

    def session_of(writer: Any) -> list[ConnectBackend]:
        return _backends_for_session(getattr(writer, "_spark", None))

    def client_of(writer: Any) -> list[ConnectBackend]:
        return _backends_for_client(getattr(writer, "_client", None))

    specs: list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = []
    for api in ("save", "insertInto", "saveAsTable"):
        specs.append(
            (
                DataFrameWriter,
                api,
                functools.partial(
                    _wrap_writer, api=api, read=_v1_write, backends_of=session_of, observe=True
                ),
            )
        )
    for api in ("create", "replace", "createOrReplace", "append", "overwrite", "overwritePartitions"):
        specs.append(
            (
                DataFrameWriterV2,
                api,
                functools.partial(
                    _wrap_writer, api=api, read=_v2_write, backends_of=session_of, observe=True
                ),
            )
        )
    try:
        from pyspark.sql.connect.merge import MergeIntoWriter
    except ImportError:  # Spark < 4
        pass
    else:
        specs.append(
            (
                MergeIntoWriter,
                "merge",
                functools.partial(
                    _wrap_writer, api="merge", read=_merge_write, backends_of=client_of, observe=False
                ),
            )
        )
    specs.append((SparkSession, "sql", _wrap_sql))
    return specs


def _install(backend: ConnectBackend) -> None:
    with _LOCK:
        if not _PATCHES:
            for cls, name, make in _patch_specs():
                original = cls.__dict__.get(name)
                if original is None:
                    continue
                wrapper = make(original)
                setattr(cls, name, wrapper)
                _PATCHES.append((cls, name, original, wrapper))
        _ACTIVE.append(backend)


def _uninstall(backend: ConnectBackend) -> list[str]:
    """Remove ``backend``; restore the classes when it was the last. Returns what was left patched."""
    left: list[str] = []
    with _LOCK:
        if backend in _ACTIVE:
            _ACTIVE.remove(backend)
        if _ACTIVE:
            return left
        for cls, name, original, wrapper in reversed(_PATCHES):
            if cls.__dict__.get(name) is wrapper:
                setattr(cls, name, original)
            else:  # someone patched over us: leave theirs (ours then passes through: no backends)
                left.append(f"{cls.__name__}.{name}")
        _PATCHES.clear()
    return left


def is_instrumented() -> bool:
    """Whether the Connect writer classes are currently wrapped (for tests)."""
    with _LOCK:
        return bool(_PATCHES)


# --- the backend ------------------------------------------------------------------------------


def _describe_table(
    spark: Any, parts: tuple[str, ...]
) -> tuple[tuple[str, ...] | None, list[tuple[str, str]] | None, str | None]:
    """``(qualified_parts, columns, provider)`` from ``DESCRIBE TABLE EXTENDED``."""
    rows = spark.sql("DESCRIBE TABLE EXTENDED " + ".".join(quote_identifier(p) for p in parts)).collect()
    columns: list[tuple[str, str]] = []
    info: dict[str, str] = {}
    in_columns = True
    for row in rows:
        name = (row[0] or "").strip()
        value = (row[1] or "").strip() if len(row) > 1 and row[1] is not None else ""
        if in_columns:
            if not name or name.startswith("#"):
                in_columns = False
            else:
                columns.append((name, value))
            continue
        if name and not name.startswith("#") and name not in info:
            info[name] = value
    qualified: tuple[str, ...] | None = None
    database = info.get("Database") or info.get("Schema") or info.get("Namespace")
    if info.get("Catalog") and database and info.get("Table"):
        qualified = (info["Catalog"], *split_identifier(database), info["Table"])
    provider = info.get("Provider")
    return qualified, columns or None, provider.lower() if provider else None


class ConnectBackend:
    """Observes writes of one Spark Connect session by instrumenting the Python writer APIs."""

    mechanism = "connect"

    def __init__(
        self,
        spark: Any,
        collector: Collector,
        warn: Callable[[str], None],
        debug: Callable[[str], None],
        *,
        count_rows: bool = True,
    ) -> None:
        self.spark = spark
        #: count rows of non-Delta writes with a named observation (a few ms of server time per write)
        self.count_rows = count_rows
        self.collector = collector
        self._warn = warn
        self._debug = debug
        self._default_format: str | bool | None = False  # False: not read yet

    def start(self) -> None:
        _install(self)

    def default_format(self) -> str | None:
        """``spark.sql.sources.default`` (``delta`` on Databricks), read once."""
        if self._default_format is False:
            try:
                with _Busy():
                    value = self.spark.conf.get("spark.sql.sources.default", "parquet")
                self._default_format = str(value).lower() if value else None
            except Exception:
                self._default_format = None
        return self._default_format if isinstance(self._default_format, str) else None

    def stop(self, timeout: float) -> None:
        try:
            left = _uninstall(self)
        except Exception as exc:
            self._warn(f"[spark writes] could not remove the Spark Connect write hooks: {exc}")
            return
        if left:
            self._debug(f"[spark writes] left wrapped by another library: {', '.join(left)}")

    def prepare(self, writes: list[SparkWrite]) -> None:
        """Qualify table names and read their schema and provider (one DESCRIBE per table, run
        concurrently)."""
        tables: dict[tuple[str, ...], tuple[str, ...]] = {}
        for write in writes:
            if write.table:
                tables.setdefault(tuple(p.lower() for p in write.table), write.table)
        keys = list(tables)

        def describe(
            key: tuple[str, ...],
        ) -> tuple[tuple[str, ...] | None, list[tuple[str, str]] | None, str | None]:
            with _Busy():
                return _describe_table(self.spark, tables[key])

        described = dict(zip(keys, parallel_map(describe, keys), strict=True))
        for write in writes:
            if not write.table:
                continue
            info = described[tuple(p.lower() for p in write.table)]
            if isinstance(info, BaseException):
                self._debug(f"[spark writes] DESCRIBE TABLE {write.target} failed: {_error_text(info)}")
                continue
            qualified, columns, provider = info
            if qualified and len(qualified) >= len(write.table):
                write.table = qualified
            write.columns = write.columns or columns
            if provider:
                write.format = write.format or provider
                if write.is_delta is None:
                    write.is_delta = provider == "delta"

    def enrich(self, writes: list[SparkWrite]) -> None:
        """Schemas of path writes, the default format, and Delta history."""
        default_format = None
        if any(w.path and not w.table and w.format is None for w in writes):
            default_format = self.default_format()
        last_by_target: dict[str, SparkWrite] = {}
        for write in writes:
            if write.table:
                continue
            if write.format is None and default_format:
                write.format = default_format
                write.is_delta = default_format == "delta"
            last_by_target[write.target_key] = write
        # one schema look-up per distinct written plan (the same DataFrame is often written twice)
        plans: dict[int, Any] = {}
        for write in last_by_target.values():
            if write.columns is None and write.source is not None:
                plans.setdefault(id(write.source), write.source)
        plan_ids = list(plans)

        def schema_of(plan_id: int) -> list[tuple[str, str]]:
            from pyspark.sql.connect.dataframe import DataFrame

            with _Busy():
                schema = DataFrame(plans[plan_id], self.spark).schema
            return [(f.name, f.dataType.simpleString()) for f in schema.fields]

        schemas = dict(zip(plan_ids, parallel_map(schema_of, plan_ids), strict=True))
        for write in last_by_target.values():
            if write.columns is None and write.source is not None:
                result = schemas.get(id(write.source))
                if isinstance(result, BaseException):
                    self._debug(f"[spark writes] schema of {write.target} unavailable: {_error_text(result)}")
                elif result is not None:
                    write.columns = result

        def run_sql(query: str) -> list[Any]:
            with _Busy():
                return list(self.spark.sql(query).collect())

        enrich_from_delta_history(writes, run_sql, probe_unknown=True, on_error=self._debug)
        for write in writes:
            write.source = None

    def application_id(self) -> str | None:
        with _Busy():
            try:
                value = self.spark.conf.get("spark.app.id", None)
            except Exception:
                return None
        return str(value) if value else None
