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
  command's ExecutionInfo (Spark 4 clients; Spark 3.5 clients drop it, so their client's fetch is
  instrumented to keep it): no second job, no wait (an ``Observation`` object would wait for the
  server's listener bus, ~0.1 s per write). A server that sends no observed metrics of commands
  (before Spark 4) gives no row count, and a debug log says why. SQL writes get
  theirs from Delta history only (``DESCRIBE HISTORY``), read on exit, once per Delta table.
* On exit, table names are qualified and schemas read with one ``DESCRIBE TABLE EXTENDED`` per
  table; path writes take the written DataFrame's schema.
* Column lineage: the written DataFrame's plan (when it reads anything but local data) or the SQL
  statement is kept, and explained on exit (``EXPLAIN EXTENDED``: analysis and planning on the
  server, no job), once per distinct plan, concurrently; the analysed plan is read by ``_lineage``.
  A SQL ``MERGE`` is explained with its source (``SELECT * FROM <source>``): Delta's analysed
  ``MergeIntoCommand`` prints its actions but not its source plan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from dagster_pipes_spark.spark._delta import (
    COMMIT_TAG_CONF,
    REPLACE_WHERE_OPTION,
    CommitTagger,
    enrich_from_delta_history,
    maintenance_note,
    maintenance_statement,
)
from dagster_pipes_spark.spark._iceberg import enrich_from_iceberg_snapshots
from dagster_pipes_spark.spark._lineage import (
    lineage_from_explain,
    merge_lineage_from_explain,
    merge_source_query,
)
from dagster_pipes_spark.spark._parallel import parallel_map
from dagster_pipes_spark.spark._partitions import (
    PARTITION_OVERWRITE_MODE_CONF,
    PARTITION_OVERWRITE_MODE_OPTION,
    sql_insert_partitions,
)
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
from dagster_pipes_spark.spark._sql import (
    FLIPPED_OPERATORS,
    Conjunct,
    conjuncts_from_sql,
    literal_from_internal,
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
    """A row-count ``CollectMetrics`` put on top of a writer's plan, and what came back.

    A string-named observation (not an ``Observation`` object, whose delivery waits on the
    server's listener bus): the server sends its value with the write command's response. Spark 4
    clients hand it to the writer's ``_callback`` (the command's ExecutionInfo); Spark 3.5 clients
    receive it and drop it, so :func:`_wrap_fetch` keeps it for the observations open on this thread.
    Either way the number is the server's own count of the written rows, or none.
    """

    def __init__(self, writer: Any) -> None:
        from pyspark.sql.connect import plan

        try:
            from pyspark.sql.connect.functions import builtin as sf
        except ImportError:  # Spark 3.5: a module, not a package
            from pyspark.sql.connect import functions as sf  # type: ignore[no-redef]

        self.writer = writer
        self.name = f"{ROWS_METRIC}_{uuid.uuid4().hex}"
        self.child = writer._write._child
        self.execution_info: Any = None
        self.observed: Any = None  # a fetched PlanObservedMetrics (Spark 3.5 clients)
        writer._write._child = plan.CollectMetrics(self.child, self.name, [sf.count(sf.lit(1)).alias("rows")])
        self.callback = getattr(writer, "_callback", None)
        if self.callback is None:
            _observing().append(self)
            return
        callback = self.callback

        def capture(execution_info: Any) -> None:
            self.execution_info = execution_info
            callback(execution_info)

        writer._callback = capture

    @staticmethod
    def supported(writer: Any) -> bool:
        """Whether the writer's plan can be observed and the value can come back: through the
        writer's ExecutionInfo callback (Spark 4), else through the instrumented fetch (3.5)."""
        if not hasattr(getattr(writer, "_write", None), "_child"):
            return False
        return getattr(writer, "_callback", None) is not None or _fetch_instrumented()

    def restore(self) -> None:
        self.writer._write._child = self.child
        if self.callback is not None:
            self.writer._callback = self.callback
        else:
            with contextlib.suppress(ValueError):
                _observing().remove(self)

    def rows(self) -> int | None:
        """The observed row count, or None when the server sent none."""
        value: Any = None
        try:
            if self.execution_info is not None:
                value = dict(self.execution_info.flows).get(self.name, {}).get("rows")
            elif self.observed is not None and len(self.observed.metrics) == 1:
                literal = self.observed.metrics[0]
                value = getattr(literal, literal.WhichOneof("literal_type") or "", None)
        except Exception:
            return None
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _plan_dataframe(plan: Any, spark: Any) -> Any:
    """A Connect DataFrame of a logical plan (``DataFrame(plan, session)`` from Spark 4;
    ``DataFrame.withPlan(plan, session)`` in Spark 3.5, whose constructor takes the session only)."""
    from pyspark.sql.connect.dataframe import DataFrame

    with_plan = getattr(DataFrame, "withPlan", None)
    return with_plan(plan, spark) if with_plan is not None else DataFrame(plan, spark)


def _observing() -> list[_Observed]:
    """The observations of writes in progress on this thread (Spark 3.5 clients)."""
    pending = getattr(_STATE, "observing", None)
    if pending is None:
        pending = _STATE.observing = []
    return pending


def _fetch_instrumented() -> bool:
    with _LOCK:
        return any(name == "_execute_and_fetch" for _, name, _, _ in _PATCHES)


def _wrap_fetch(original: Callable[..., Any]) -> Callable[..., Any]:
    """``SparkConnectClient._execute_and_fetch`` keeping the observed metrics (a list of objects
    with ``name`` and ``metrics``) that belong to observations open on this thread."""

    @functools.wraps(original)
    def _execute_and_fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        pending = getattr(_STATE, "observing", None)
        if pending:
            try:
                by_name = {o.name: o for o in pending}
                for item in result if isinstance(result, tuple) else ():
                    for metric in item if isinstance(item, list) else ():
                        observed = by_name.get(getattr(metric, "name", None))
                        if observed is not None and hasattr(metric, "metrics"):
                            observed.observed = metric
            except Exception:
                pass  # no row count rather than a failed write
        return result

    return _execute_and_fetch


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
        unavailable: str | None = None  # why a write that is not Delta gets no row count
        if observe and backends[0].count_rows and not _targets_delta(self, backends[0]):
            if not _Observed.supported(self):
                unavailable = "this Spark Connect client returns no observed metrics of commands"
            else:
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
                    if error is None:
                        try:
                            _read_partitions(self, api, write, backends[0])
                        except Exception as exc:
                            for b in backends:
                                b.collector.hook_error(f"{api} (partitions)", exc)
                    if error is not None:
                        write.error = _error_text(error)
                    elif observed is not None:
                        write.rows = observed.rows()
                        if write.rows is None:
                            unavailable = "the server sent no value for the row-count observation"
                        if write.path is not None:
                            write.source = observed.child
                    elif write.path is not None:
                        write.source = getattr(getattr(self, "_write", None), "_child", None)
                    written = getattr(getattr(self, "_write", None), "_child", None)
                    if error is None and backends[0].lineage and written is not None:
                        plan = observed.child if observed is not None else written
                        if _reads_sources(plan):  # explained on exit
                            write.lineage_input = plan
                        else:  # local data or range(): known to have no source
                            write.column_lineage = {}
                    for b in backends:
                        b.collector.add(write if len(backends) == 1 else _copy(write))
                        if unavailable and error is None:
                            b._debug(
                                f"[spark writes] no row count for {api} to {write.target}: {unavailable}"
                            )
            except Exception as exc:
                for b in backends:
                    b.collector.hook_error(api, exc)
            elapsed += time.perf_counter() - started
            for b in backends:
                b.collector.timed(elapsed)

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


@dataclasses.dataclass(frozen=True)
class _MergeStatement:
    """A SQL ``MERGE`` to explain on exit, with the query of its source (``SELECT * FROM <source>``)."""

    statement: str
    source: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def _wrap_sql(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def sql(self: Any, sqlQuery: str, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
        backends = _backends_for_session(self)
        if not backends or _busy() or not isinstance(sqlQuery, str):
            return original(self, sqlQuery, *args, **kwargs)
        if not _may_write(sqlQuery):
            command = maintenance_statement(sqlQuery)
            if command is not None:
                result = original(self, sqlQuery, *args, **kwargs)
                target = " ".join(sqlQuery.split()[1:2]) or "a Delta table"
                for b in backends:
                    b.collector.note(maintenance_note(command, target))
                return result
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
                partitions = None
                if error is None and parsed.operation in (OP_INSERT, OP_INSERT_OVERWRITE):
                    try:
                        partitions = _sql_partitions(self, sqlQuery, parsed.mode)
                    except Exception as exc:
                        for b in backends:
                            b.collector.hook_error("sql (partitions)", exc)
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
                    if partitions is not None:
                        write.static_partitions, write.replaced, write.dynamic_overwrite = partitions
                    if error is None and b.lineage and parsed.operation in _SQL_WITH_LINEAGE:
                        write.lineage_input = (sqlQuery, args, kwargs)
                    elif error is None and b.lineage and parsed.operation == OP_MERGE:
                        source = merge_source_query(sqlQuery)
                        if source is not None:  # explained with its source on exit
                            write.lineage_input = _MergeStatement(sqlQuery, source, args, kwargs)
                    b.collector.add(write)
            except Exception as exc:
                for b in backends:
                    b.collector.hook_error("sql", exc)
            elapsed += time.perf_counter() - started
            for b in backends:
                b.collector.timed(elapsed)

    return sql


# --- partitions -------------------------------------------------------------------------------

_COMPARISONS = {"==": "=", "<=>": "=", ">=": ">=", ">": ">", "<=": "<=", "<": "<"}
#: Client plan nodes between a write and a filter below it that keep every row's column values.
_ROW_PRESERVING = frozenset(
    {"SubqueryAlias", "Repartition", "RepartitionByExpression", "Sort", "Limit", "Offset", "Deduplicate"}
    | {"Sample", "Hint", "CollectMetrics"}
)
_PLAIN_NAME = re.compile(r"`?([A-Za-z_][A-Za-z0-9_]*)`?")


def _overwrite_mode(spark: Any) -> str:
    """The session's ``spark.sql.sources.partitionOverwriteMode`` (one round trip)."""
    with _Busy():
        return str(spark.conf.get(PARTITION_OVERWRITE_MODE_CONF, "static") or "static").lower()


def _condition_conjuncts(column: Any, lenient: bool) -> tuple[Conjunct, ...] | None:
    """Conjuncts of a client-side ``Column`` condition: SQL text (``where("...")``, ``F.expr``) or
    comparisons of a column with a literal joined with ``&``."""
    expr = getattr(column, "_expr", column)
    kind = type(expr).__name__
    if kind == "SQLExpression":
        return conjuncts_from_sql(str(expr._expr), lenient=lenient)
    if kind != "UnresolvedFunction":
        return () if lenient else None
    name, args = str(expr._name).lower(), list(expr._args)
    if name == "and" and len(args) == 2:
        found: list[Conjunct] = []
        for arg in args:
            part = _condition_conjuncts(arg, lenient)
            if part is None:
                return None
            found.extend(part)
        return tuple(found)
    op = _COMPARISONS.get(name)
    if op is not None and len(args) == 2:
        for column_side, literal_side, flipped in ((args[0], args[1], False), (args[1], args[0], True)):
            if (
                type(column_side).__name__ == "ColumnReference"
                and type(literal_side).__name__ == "LiteralExpression"
            ):
                literal = literal_from_internal(literal_side._dataType.typeName(), literal_side._value)
                if literal is not None:
                    column_name = str(column_side.name()).split(".")[-1].strip("`")
                    return ((column_name, FLIPPED_OPERATORS[op] if flipped else op, literal),)
    return () if lenient else None


def _reference_name(column: Any) -> str | None:
    """The column name a projection passes on unchanged, or ``None`` for anything else."""
    expr = getattr(column, "_expr", column)
    if isinstance(expr, str):
        text = expr
    elif type(expr).__name__ == "ColumnReference":
        text = str(expr.name())
    elif type(expr).__name__ == "SQLExpression":
        text = str(expr._expr)
    else:
        return None
    match = _PLAIN_NAME.fullmatch(text.strip())
    return match.group(1).lower() if match else None


def _filter_conjuncts(plan: Any) -> tuple[Conjunct, ...]:
    """Conjuncts every row of a written client plan satisfies: the ``column <op> literal`` terms of
    the filters on its spine, through projections that pass columns on under their own names."""
    found: list[Conjunct] = []
    names: set[str] | None = None  # the columns still passed on (None: all)
    node = plan
    for _ in range(64):
        kind = type(node).__name__
        if kind == "Project":
            passed = [_reference_name(c) for c in node._columns]
            if any(name is None for name in passed):
                break
            names = {n for n in passed if n} & names if names is not None else {n for n in passed if n}
        elif kind == "Filter":
            for term in _condition_conjuncts(node.filter, lenient=True) or ():
                if names is None or term[0].lower() in names:
                    found.append(term)
        elif kind not in _ROW_PRESERVING:
            break
        node = getattr(node, "_child", None)
        if node is None:
            break
    return tuple(found)


def _read_partitions(writer: Any, api: str, write: SparkWrite, backend: ConnectBackend) -> None:
    """What a DataFrame write says about partitions: a Delta ``replaceWhere``, a V2 overwrite
    condition, or for a dynamic partition overwrite the filters its rows passed."""
    op = writer._write
    if api == "overwrite":
        write.replaced = _condition_conjuncts(op.overwrite_condition, lenient=False)
        return
    if api == "overwritePartitions":
        write.dynamic_overwrite = True
        write.replaced = _filter_conjuncts(op._child)
        return
    if api not in ("save", "insertInto", "saveAsTable") or write.mode != "overwrite":
        return
    options = {str(k).lower(): str(v) for k, v in (op.options or {}).items() if v is not None}
    if op.partitioning_cols:
        write.partition_columns = tuple(str(c) for c in op.partitioning_cols)
    condition = options.get(REPLACE_WHERE_OPTION.lower())
    if condition and _targets_delta(writer, backend):
        write.replaced = conjuncts_from_sql(condition)
        return
    if api == "saveAsTable" or (api == "save" and not op.partitioning_cols):  # replaces it all
        return
    mode = options.get(PARTITION_OVERWRITE_MODE_OPTION.lower()) or _overwrite_mode(writer._spark)
    if mode.lower() == "dynamic":
        write.dynamic_overwrite = True
        write.replaced = _filter_conjuncts(op._child)


def _sql_partitions(
    spark: Any, sql: str, mode: str | None
) -> tuple[dict[str, str] | None, tuple[Conjunct, ...] | None, bool] | None:
    """``(static partition spec, replaced condition, dynamic overwrite)`` of an ``INSERT``."""
    found = sql_insert_partitions(sql)
    if found is None or (found.static is None and found.replace_where is None):
        return None
    dynamic = bool(mode == "overwrite" and found.static is not None and _overwrite_mode(spark) == "dynamic")
    return found.static, found.replace_where, dynamic


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
    try:  # where Spark 3.5 clients drop the observed metrics of commands
        from pyspark.sql.connect.client.core import SparkConnectClient
    except ImportError:
        pass
    else:
        specs.append((SparkConnectClient, "_execute_and_fetch", _wrap_fetch))
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
) -> tuple[tuple[str, ...] | None, list[tuple[str, str]] | None, str | None, tuple[str, ...]]:
    """``(qualified_parts, columns, provider, partition_columns)`` from ``DESCRIBE TABLE EXTENDED``."""
    rows = spark.sql("DESCRIBE TABLE EXTENDED " + ".".join(quote_identifier(p) for p in parts)).collect()
    columns: list[tuple[str, str]] = []
    info: dict[str, str] = {}
    partition_columns: list[str] = []
    in_columns = True
    in_partitions = False
    for row in rows:
        name = (row[0] or "").strip()
        value = (row[1] or "").strip() if len(row) > 1 and row[1] is not None else ""
        if in_columns:
            if not name or name.startswith("#"):
                in_columns = False
                in_partitions = name in ("# Partition Information", "# Partitioning")
            else:
                columns.append((name, value))
            continue
        if name in ("# Partition Information", "# Partitioning"):  # V1 / V2 (e.g. Delta) tables
            in_partitions = True
        elif in_partitions and name and not name.startswith("#"):
            if _PLAIN_NAME.fullmatch(name):
                partition_columns.append(name.strip("`"))
            elif name.startswith("Part ") and _PLAIN_NAME.fullmatch(
                value
            ):  # "Part 0 | ds"; a transform such as days(ts) is not a column
                partition_columns.append(value.strip("`"))
            continue
        elif not name or name.startswith("#"):
            in_partitions = in_partitions and name == "# col_name"
        if name and not name.startswith("#") and name not in info:
            info[name] = value
    qualified: tuple[str, ...] | None = None
    database = info.get("Database") or info.get("Schema") or info.get("Namespace")
    if info.get("Catalog") and database and info.get("Table"):
        qualified = (info["Catalog"], *split_identifier(database), info["Table"])
    elif info.get("Name") and len(split_identifier(info["Name"])) >= 3:
        # a V2 table (Delta's DeltaTableV2, Iceberg): one "Name" row, fully qualified
        qualified = tuple(split_identifier(info["Name"]))
    provider = info.get("Provider")
    return qualified, columns or None, provider.lower() if provider else None, tuple(partition_columns)


# --- column lineage ---------------------------------------------------------------------------

#: Session settings that let an explained plan print whole (set while explaining, then restored).
_WHOLE_PLAN_CONFS = {
    "spark.sql.debug.maxToStringFields": str(2**31 - 1),
    "spark.sql.maxMetadataStringLength": str(2**31 - 1),
}
#: SQL writes whose statement has a query to explain (not MERGE / UPDATE / DELETE / COPY INTO)
_SQL_WITH_LINEAGE = frozenset({OP_INSERT, OP_INSERT_OVERWRITE, OP_CTAS, OP_RTAS, OP_CREATE_OR_REPLACE})
#: client plan leaves whose rows are in the plan itself
_SOURCELESS_LEAVES = frozenset({"LocalRelation", "CachedLocalRelation", "Range"})


def _reads_sources(plan: Any) -> bool:
    """Whether a client plan may read a table, a file or SQL (worth explaining on exit): a DataFrame
    built from local data or ``range`` has no source, and its plan (which may hold the data) is
    not kept."""
    from pyspark.sql.connect.plan import LogicalPlan

    stack = [plan]
    while stack:
        node = stack.pop()
        children = [
            child
            for value in vars(node).values()
            for child in (value if isinstance(value, (list, tuple)) else (value,))
            if isinstance(child, LogicalPlan)
        ]
        if not children and type(node).__name__ not in _SOURCELESS_LEAVES:
            return True
        stack.extend(children)
    return False


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
        lineage: bool = True,
    ) -> None:
        self.spark = spark
        #: explain the written plans on exit for column lineage
        self.lineage = lineage
        #: count rows of non-Delta writes with a named observation (a few ms of server time per write)
        self.count_rows = count_rows
        self.collector = collector
        self._warn = warn
        self._debug = debug
        self._default_format: str | bool | None = False  # False: not read yet

        def get() -> str | None:
            with _Busy():
                value = self.spark.conf.get(COMMIT_TAG_CONF, None)
            return str(value) if value else None

        def set_(tag: str) -> None:
            with _Busy():
                self.spark.conf.set(COMMIT_TAG_CONF, tag)

        def unset() -> None:
            with _Busy():
                self.spark.conf.unset(COMMIT_TAG_CONF)

        self._tagger = CommitTagger(get, set_, unset)

    def start(self) -> None:
        self._tagger.start()
        if self._tagger.note:
            self._debug(f"[spark writes] {self._tagger.note}")
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
        self._tagger.stop()
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
        ) -> tuple[tuple[str, ...] | None, list[tuple[str, str]] | None, str | None, tuple[str, ...]]:
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
            qualified, columns, provider, partition_columns = info
            if qualified and len(qualified) >= len(write.table):
                write.table = qualified
            write.columns = write.columns or columns
            write.partition_columns = write.partition_columns or partition_columns or None
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
            with _Busy():
                schema = _plan_dataframe(plans[plan_id], self.spark).schema
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

        enrich_from_delta_history(
            writes, run_sql, probe_unknown=True, on_error=self._debug, tag=self._tagger.tag
        )
        if any((w.format or "").lower() == "iceberg" for w in writes):
            enrich_from_iceberg_snapshots(writes, run_sql, app_id=self.application_id(), on_error=self._debug)
        for write in writes:
            write.source = None
        if self.lineage:
            self._column_lineage(writes)

    def _column_lineage(self, writes: list[SparkWrite]) -> None:
        """Column lineage of the written plans and SQL statements: one ``EXPLAIN EXTENDED`` each
        (analysis and planning on the server, no job), run concurrently."""
        inputs: dict[int, Any] = {}
        for write in writes:
            if write.lineage_input is not None:
                inputs.setdefault(id(write.lineage_input), write.lineage_input)
        keys = list(inputs)

        def explain_sql(query: str, args: Any, kwargs: Any) -> str:
            return str(self.spark.sql("EXPLAIN EXTENDED " + query, *args, **kwargs).collect()[0][0])

        def explain(key: int) -> str | tuple[str, str]:
            item = inputs[key]
            with _Busy():
                if isinstance(item, _MergeStatement):  # the MERGE and its source
                    return (
                        explain_sql(item.statement, item.args, item.kwargs),
                        explain_sql(item.source, item.args, item.kwargs),
                    )
                if isinstance(item, tuple):  # (statement, args, kwargs) of SparkSession.sql
                    return explain_sql(*item)
                return str(_plan_dataframe(item, self.spark)._explain_string(extended=True))

        with self._all_fields_in_plans(bool(keys)):
            texts = dict(zip(keys, parallel_map(explain, keys), strict=True))
        for write in writes:
            item, write.lineage_input = write.lineage_input, None
            if item is None:
                continue
            text = texts[id(item)]
            if isinstance(text, BaseException):
                self._debug(f"[spark writes] no column lineage for {write.target}: {_error_text(text)}")
                continue
            columns = [name for name, _ in write.columns] if write.columns else None
            if isinstance(text, tuple):
                write.column_lineage = merge_lineage_from_explain(*text, columns)
            else:
                write.column_lineage = lineage_from_explain(text, columns)
            if write.column_lineage is None:
                self._debug(f"[spark writes] no column lineage for {write.target}: plan not understood")

    @contextlib.contextmanager
    def _all_fields_in_plans(self, needed: bool) -> Iterator[None]:
        """Let explained plans print whole: every column (``spark.sql.debug.maxToStringFields``, 25
        by default, cuts longer lists: their columns would get no lineage) and whole file locations
        (``spark.sql.maxMetadataStringLength``, 100 by default, cuts a long input path: its columns
        would get no lineage). The settings are restored."""
        previous: dict[str, str | None] = {}
        if needed:
            for key, value in _WHOLE_PLAN_CONFS.items():
                try:
                    with _Busy():
                        previous[key] = self.spark.conf.get(key, None)
                        self.spark.conf.set(key, value)
                except Exception as exc:  # e.g. a serverless session that does not allow it
                    previous.pop(key, None)
                    self._debug(f"[spark writes] plans keep their {key}: {_error_text(exc)}")
        try:
            yield
        finally:
            for key, old in previous.items():
                try:
                    with _Busy():
                        if old is None:
                            self.spark.conf.unset(key)
                        else:
                            self.spark.conf.set(key, old)
                except Exception as exc:
                    self._warn(f"[spark writes] could not restore {key}: {_error_text(exc)}")

    def application_id(self) -> str | None:
        with _Busy():
            try:
                value = self.spark.conf.get("spark.app.id", None)
            except Exception:
                return None
        return str(value) if value else None
