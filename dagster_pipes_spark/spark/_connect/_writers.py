"""The write a wrapped writer call performs (``DataFrameWriter``, ``DataFrameWriterV2``,
``MergeIntoWriter``), and the wrapper recording it."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._connect._lineage import reads_sources
from dagster_pipes_spark.spark._connect._observation import Observed
from dagster_pipes_spark.spark._connect._partitions import read_partitions
from dagster_pipes_spark.spark._connect._registry import Busy, Observer, busy, error_text
from dagster_pipes_spark.spark._connect._targets import is_delta_format, table_or_path, targets_delta
from dagster_pipes_spark.spark._targets import normalize_path
from dagster_pipes_spark.spark._write_record import (
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_WRITE,
    SparkWrite,
    normalize_mode,
)


def v1_write(writer: Any, api: str) -> SparkWrite | None:
    op = writer._write
    fmt = op.source.lower() if getattr(op, "source", None) else None
    mode = normalize_mode(getattr(op, "mode", None))
    if api in ("insertInto", "saveAsTable"):
        if not op.table_name:
            return None
        table, path, path_fmt = table_or_path(op.table_name)
        fmt = fmt or path_fmt
        if api == "insertInto":
            mode = mode or "append"
            operation = OP_INSERT_OVERWRITE if mode == "overwrite" else OP_INSERT
        else:
            mode = mode or "errorifexists"
            operation = OP_INSERT if mode == "append" else OP_CTAS
        return SparkWrite(
            operation, table=table, path=path, mode=mode, format=fmt, is_delta=is_delta_format(fmt)
        )
    path = op.path or op.options.get("path")
    if not path:
        return None
    return SparkWrite(
        OP_WRITE,
        path=normalize_path(path),
        mode=mode or "errorifexists",
        format=fmt,
        is_delta=is_delta_format(fmt),
    )


_V2_MODES = {
    "create": (OP_CTAS, "errorifexists"),
    "replace": (OP_RTAS, "overwrite"),
    "create_or_replace": (OP_CREATE_OR_REPLACE, "overwrite"),
    "append": (OP_INSERT, "append"),
    "overwrite": (OP_INSERT_OVERWRITE, "overwrite"),
    "overwrite_partitions": (OP_INSERT_OVERWRITE, "overwrite"),
}


def v2_write(writer: Any, api: str) -> SparkWrite | None:
    op = writer._write
    if not op.table_name:
        return None
    operation, mode = _V2_MODES.get(str(op.mode), (OP_INSERT, None))
    table, path, path_fmt = table_or_path(op.table_name)
    fmt = (op.provider or path_fmt or None) and str(op.provider or path_fmt).lower()
    return SparkWrite(operation, table=table, path=path, mode=mode, format=fmt, is_delta=is_delta_format(fmt))


def merge_write(writer: Any, api: str) -> SparkWrite | None:
    table, path, fmt = table_or_path(writer._target_table)
    return SparkWrite(OP_MERGE, table=table, path=path, format=fmt, is_delta=is_delta_format(fmt))


def wrap_writer(
    original: Callable[..., Any],
    api: str,
    read: Callable[[Any, str], SparkWrite | None],
    backends_of: Callable[[Any], list[Observer]],
    observe: bool,
) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        backends = backends_of(self)
        if not backends or busy():
            return original(self, *args, **kwargs)
        started = time.perf_counter()
        observed: Observed | None = None
        unavailable: str | None = None  # why a write that is not Delta gets no row count
        if observe and backends[0].count_rows and not targets_delta(self, backends[0]):
            if not Observed.supported(self):
                unavailable = "this Spark Connect client returns no observed metrics of commands"
            else:
                try:
                    observed = Observed(self)
                except Exception as exc:
                    for b in backends:
                        b.collector.hook_error(f"{api} (row count)", exc)
        elapsed = time.perf_counter() - started
        error: BaseException | None = None
        try:
            with Busy():
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
                            read_partitions(self, api, write, backends[0])
                        except Exception as exc:
                            for b in backends:
                                b.collector.hook_error(f"{api} (partitions)", exc)
                    if error is not None:
                        write.error = error_text(error)
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
                        if reads_sources(plan):  # explained on exit
                            write.lineage_input = plan
                        else:  # local data or range(): known to have no source
                            write.column_lineage = {}
                    for b in backends:
                        b.collector.add(write if len(backends) == 1 else copy_write(write))
                        if unavailable and error is None:
                            b.debug(f"[spark writes] no row count for {api} to {write.target}: {unavailable}")
            except Exception as exc:
                for b in backends:
                    b.collector.hook_error(api, exc)
            elapsed += time.perf_counter() - started
            for b in backends:
                b.collector.timed(elapsed)

    return wrapper


def copy_write(write: SparkWrite) -> SparkWrite:
    import copy

    return copy.copy(write)
