"""``SparkSession.sql`` wrapped: the write a statement performs, parsed from its text."""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._connect._lineage import SQL_WITH_LINEAGE
from dagster_pipes_spark.spark._connect._partitions import sql_partitions
from dagster_pipes_spark.spark._connect._registry import Busy, backends_for_session, busy, error_text
from dagster_pipes_spark.spark._connect._writers import is_delta_format
from dagster_pipes_spark.spark._delta import maintenance_note, maintenance_statement
from dagster_pipes_spark.spark._lineage import merge_source_query
from dagster_pipes_spark.spark._write_record import OP_INSERT, OP_INSERT_OVERWRITE, OP_MERGE, SparkWrite

_WRITE_SQL_HEADS = frozenset({"INSERT", "CREATE", "REPLACE", "MERGE", "UPDATE", "DELETE", "COPY", "WITH"})
_FIRST_WORD = re.compile(r"[A-Za-z]+")


def may_write(sql: str) -> bool:
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
class MergeStatement:
    """A SQL ``MERGE`` to explain on exit, with the query of its source (``SELECT * FROM <source>``)."""

    statement: str
    source: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def wrap_sql(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def sql(self: Any, sqlQuery: str, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
        backends = backends_for_session(self)
        if not backends or busy() or not isinstance(sqlQuery, str):
            return original(self, sqlQuery, *args, **kwargs)
        if not may_write(sqlQuery):
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
            with Busy():
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
                        partitions = sql_partitions(self, sqlQuery, parsed.mode)
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
                        is_delta=is_delta_format(fmt),
                        api="sql",
                        error=error_text(error) if error is not None else None,
                    )
                    if partitions is not None:
                        write.static_partitions, write.replaced, write.dynamic_overwrite = partitions
                    if error is None and b.lineage and parsed.operation in SQL_WITH_LINEAGE:
                        write.lineage_input = (sqlQuery, args, kwargs)
                    elif error is None and b.lineage and parsed.operation == OP_MERGE:
                        source = merge_source_query(sqlQuery)
                        if source is not None:  # explained with its source on exit
                            write.lineage_input = MergeStatement(sqlQuery, source, args, kwargs)
                    b.collector.add(write)
            except Exception as exc:
                for b in backends:
                    b.collector.hook_error("sql", exc)
            elapsed += time.perf_counter() - started
            for b in backends:
                b.collector.timed(elapsed)

    return sql
