"""The Connect mechanism's backend: table names and schemas on exit, column lineage from the
explained plans, Delta and Iceberg look-ups."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dagster_pipes_spark.spark._collector import Collector
from dagster_pipes_spark.spark._connect._catalog import describe_tables
from dagster_pipes_spark.spark._connect._lineage import WHOLE_PLAN_CONFS, combinable
from dagster_pipes_spark.spark._connect._observation import plan_dataframe
from dagster_pipes_spark.spark._connect._patches import install, uninstall
from dagster_pipes_spark.spark._connect._registry import Busy, error_text
from dagster_pipes_spark.spark._connect._sql import MergeStatement
from dagster_pipes_spark.spark._delta import (
    COMMIT_TAG_CONF,
    CommitTagger,
    DeltaCommit,
    enrich_from_delta_history,
    read_commit_logs,
)
from dagster_pipes_spark.spark._iceberg import enrich_from_iceberg_snapshots
from dagster_pipes_spark.spark._lineage import (
    PLAN_MARKER,
    UnreadableError,
    lineage_from_combined_explain,
    lineage_from_explain,
    lineage_problem,
    merge_lineage_from_explain,
)
from dagster_pipes_spark.spark._lineage_types import ColumnLineage
from dagster_pipes_spark.spark._parallel import chunked, parallel_map
from dagster_pipes_spark.spark._write_record import SparkWrite


@dataclass(frozen=True)
class Combined:
    """A plan's lineage read from the explain of many plans at once."""

    lineage: ColumnLineage


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
        self.debug = debug
        self._default_format: str | bool | None = False  # False: not read yet

        def get() -> str | None:
            with Busy():
                value = self.spark.conf.get(COMMIT_TAG_CONF, None)
            return str(value) if value else None

        def set_(tag: str) -> None:
            with Busy():
                self.spark.conf.set(COMMIT_TAG_CONF, tag)

        def unset() -> None:
            with Busy():
                self.spark.conf.unset(COMMIT_TAG_CONF)

        self._tagger = CommitTagger(get, set_, unset)

    def start(self) -> None:
        self._tagger.start()
        if self._tagger.note:
            self.debug(f"[spark writes] {self._tagger.note}")
        install(self)

    def default_format(self) -> str | None:
        """``spark.sql.sources.default`` (``delta`` on Databricks), read once."""
        if self._default_format is False:
            try:
                with Busy():
                    value = self.spark.conf.get("spark.sql.sources.default", "parquet")
                self._default_format = str(value).lower() if value else None
            except Exception:
                self._default_format = None
        return self._default_format if isinstance(self._default_format, str) else None

    def stop(self, timeout: float) -> None:
        self._tagger.stop()
        try:
            left = uninstall(self)
        except Exception as exc:
            self._warn(f"[spark writes] could not remove the Spark Connect write hooks: {exc}")
            return
        if left:
            self.debug(f"[spark writes] left wrapped by another library: {', '.join(left)}")

    def prepare(self, writes: list[SparkWrite]) -> None:
        """Qualify table names and read their schema, provider, location and partition columns
        from the catalog, all tables at once (:func:`~._catalog.describe_tables`)."""
        tables: dict[tuple[str, ...], tuple[str, ...]] = {}
        partitioned: set[tuple[str, ...]] = set()
        for write in writes:
            if write.table:
                key = tuple(p.lower() for p in write.table)
                tables.setdefault(key, write.table)
                if write.partition_columns is None and (write.static_partitions or write.dynamic_overwrite):
                    partitioned.add(key)
        keys = list(tables)

        def busy(request: Callable[[], Any]) -> Any:
            with Busy():
                return request()

        described = dict(
            zip(
                keys,
                describe_tables(
                    self.spark,
                    [tables[k] for k in keys],
                    lambda parts: tuple(p.lower() for p in parts) in partitioned,
                    busy,
                    self.debug,
                ),
                strict=True,
            )
        )
        for write in writes:
            if not write.table:
                continue
            info = described[tuple(p.lower() for p in write.table)]
            if isinstance(info, BaseException):
                self.debug(f"[spark writes] DESCRIBE TABLE {write.target} failed: {error_text(info)}")
                continue
            qualified, columns, provider, partition_columns, location = info
            write.storage = write.storage or location
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
            with Busy():
                schema = plan_dataframe(plans[plan_id], self.spark).schema
            return [(f.name, f.dataType.simpleString()) for f in schema.fields]

        schemas = dict(zip(plan_ids, parallel_map(schema_of, plan_ids), strict=True))
        for write in last_by_target.values():
            if write.columns is None and write.source is not None:
                result = schemas.get(id(write.source))
                if isinstance(result, BaseException):
                    self.debug(f"[spark writes] schema of {write.target} unavailable: {error_text(result)}")
                elif result is not None:
                    write.columns = result

        def run_sql(query: str) -> list[Any]:
            with Busy():
                return list(self.spark.sql(query).collect())

        def read_logs(locations: Sequence[str]) -> dict[str, list[DeltaCommit]]:
            with Busy():
                return read_commit_logs(self.spark, locations, self._tagger.started)

        enrich_from_delta_history(
            writes, run_sql, probe_unknown=True, debug=self.debug, tag=self._tagger.tag, read_logs=read_logs
        )
        if any((w.format or "").lower() == "iceberg" for w in writes):
            enrich_from_iceberg_snapshots(writes, run_sql, app_id=self.application_id(), on_error=self.debug)
        for write in writes:
            write.source = None
        if self.lineage:
            self._column_lineage(writes)

    def _column_lineage(self, writes: list[SparkWrite]) -> None:
        """Column lineage of the written plans and SQL statements: the DataFrame plans over tables
        and local data in ONE ``EXPLAIN EXTENDED`` of their union (:meth:`_combined_lineage`), the
        others (path reads, SQL text, MERGE, streams, what the union could not serve) one
        ``EXPLAIN EXTENDED`` each, run concurrently (analysis and planning on the server, no job)."""
        inputs: dict[int, Any] = {}
        for write in writes:
            if write.lineage_input is not None:
                inputs.setdefault(id(write.lineage_input), write.lineage_input)
        keys = list(inputs)

        def explain_sql(query: str, args: Any, kwargs: Any) -> str:
            return str(self.spark.sql("EXPLAIN EXTENDED " + query, *args, **kwargs).collect()[0][0])

        def explain(key: int) -> str | tuple[str, str]:
            item = inputs[key]
            with Busy():
                if isinstance(item, MergeStatement):  # the MERGE and its source
                    return (
                        explain_sql(item.statement, item.args, item.kwargs),
                        explain_sql(item.source, item.args, item.kwargs),
                    )
                if isinstance(item, tuple):  # (statement, args, kwargs) of SparkSession.sql
                    return explain_sql(*item)
                return str(plan_dataframe(item, self.spark)._explain_string(extended=True))

        together = [
            k for k in keys if not isinstance(inputs[k], (MergeStatement, tuple)) and combinable(inputs[k])
        ]
        texts: dict[int, Any] = {}
        with self._all_fields_in_plans(bool(keys)):
            groups = [group for group in chunked(together) if len(group) > 1]
            for found in parallel_map(lambda group: self._combined_lineage(group, inputs), groups):
                if isinstance(found, dict):
                    texts.update(found)
            alone = [k for k in keys if k not in texts]
            texts.update(zip(alone, parallel_map(explain, alone), strict=True))
        for write in writes:
            item, write.lineage_input = write.lineage_input, None
            if item is None:
                continue
            text = texts[id(item)]
            if isinstance(text, BaseException):
                self.debug(f"[spark writes] no column lineage for {write.target}: {error_text(text)}")
                continue
            columns = [name for name, _ in write.columns] if write.columns else None
            if isinstance(text, Combined):  # by the plan's output names: the written ones when as many
                names = columns if columns is not None and len(columns) == len(text.lineage) else None
                write.column_lineage = dict(zip(names or text.lineage, text.lineage.values(), strict=True))
                write.lineage_problem = None
            elif isinstance(text, tuple):
                merge_text, source_text = text
                write.column_lineage = merge_lineage_from_explain(merge_text, source_text, columns)
                if write.column_lineage is None:
                    write.lineage_problem = ("the MERGE's plans not understood", False)
            else:
                problems: list[UnreadableError] = []
                write.column_lineage = lineage_from_explain(text, columns, problems)
                write.lineage_problem = lineage_problem(problems)

    def _combined_lineage(self, keys: list[int], inputs: dict[int, Any]) -> dict[int, Combined]:
        """The lineage of many written plans from ONE explain: their union, each plan marked by a
        literal (:func:`~..._lineage.lineage_from_combined_explain`). The plans it cannot serve (the
        request fails, the text cannot be split, a plan's lineage comes back incomplete) are left
        to be explained alone."""
        from pyspark.sql.connect import functions as sf

        frames = [
            plan_dataframe(inputs[k], self.spark).select(sf.lit(i).alias(PLAN_MARKER))
            for i, k in enumerate(keys)
        ]
        while len(frames) > 1:  # a balanced union: the plan's depth grows with log2 of the plans
            frames = [
                frames[i].union(frames[i + 1]) if i + 1 < len(frames) else frames[i]
                for i in range(0, len(frames), 2)
            ]
        try:
            with Busy():
                text = str(frames[0]._explain_string(extended=True))
        except Exception as exc:
            self.debug(
                f"[spark writes] one explain for {len(keys)} plans failed ({error_text(exc)}); one each"
            )
            return {}
        found = lineage_from_combined_explain(text, [None] * len(keys))
        if found is None:
            self.debug(f"[spark writes] the explain of {len(keys)} plans could not be split; one each")
            return {}
        return {
            k: Combined(lineage)
            for k, lineage in zip(keys, found, strict=True)
            if lineage is not None and all(deps is not None for deps in lineage.values())
        }

    @contextlib.contextmanager
    def _all_fields_in_plans(self, needed: bool) -> Iterator[None]:
        """Let explained plans print whole: every column (``spark.sql.debug.maxToStringFields``, 25
        by default, cuts longer lists: their columns would get no lineage) and whole file locations
        (``spark.sql.maxMetadataStringLength``, 100 by default, cuts a long input path: its columns
        would get no lineage). The settings are restored."""
        previous: dict[str, str | None] = {}
        if needed:
            for key, value in WHOLE_PLAN_CONFS.items():
                try:
                    with Busy():
                        previous[key] = self.spark.conf.get(key, None)
                        self.spark.conf.set(key, value)
                except Exception as exc:  # e.g. a serverless session that does not allow it
                    previous.pop(key, None)
                    self.debug(f"[spark writes] plans keep their {key}: {error_text(exc)}")
        try:
            yield
        finally:
            for key, old in previous.items():
                try:
                    with Busy():
                        if old is None:
                            self.spark.conf.unset(key)
                        else:
                            self.spark.conf.set(key, old)
                except Exception as exc:
                    self._warn(f"[spark writes] could not restore {key}: {error_text(exc)}")

    def application_id(self) -> str | None:
        with Busy():
            try:
                value = self.spark.conf.get("spark.app.id", None)
            except Exception:
                return None
        return str(value) if value else None
