"""Delta Lake specifics for the Spark write hooks, kept apart so they can be checked on a workspace.

Two things live here and nowhere else:

* how Delta shows up in Spark plans: the simple class names of Delta's write commands (open-source
  ``org.apache.spark.sql.delta.commands.*`` and Databricks' ``com.databricks.sql.transaction.tahoe``
  variants, some of which carry an ``Edge`` suffix), of its V2 table, its data source and its file
  indexes, with the accessor chains that lead from each command to its target table or path;
* how ``DESCRIBE HISTORY`` rows look (the ``DeltaHistory`` case class: ``version``, ``timestamp``,
  ``userId``, ``userName``, ``operation``, ``operationParameters``, ``job``, ``notebook``,
  ``clusterId``, ``readVersion``, ``isolationLevel``, ``isBlindAppend``, ``operationMetrics``,
  ``userMetadata``, ``engineInfo``) and what the per-operation metric names mean
  (``DeltaOperationMetrics``: ``numOutputRows``, ``numFiles``, ``numOutputBytes`` for writes;
  ``numTargetRows*`` for ``MERGE``; ``numUpdatedRows`` / ``numDeletedRows`` for ``UPDATE`` /
  ``DELETE``; ``numAddedFiles`` / ``numAddedBytes``). Metric values are strings in the history.

* which commits are ours: while a hook block is open, the session's Delta commits carry a per-block
  tag in ``userMetadata`` (``spark.databricks.delta.commitInfo.userMetadata``), so a concurrent
  writer's commits (another thread's session, another process) are never taken for ours;
* which Delta commands are maintenance (``OPTIMIZE``, ``VACUUM``, ``REORG``): no materialization.

Nothing here imports pyspark.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster_pipes_spark.spark._parallel import parallel_map
from dagster_pipes_spark.spark._record import (
    OP_CREATE_OR_REPLACE,
    OP_CTAS,
    OP_DELETE,
    OP_INSERT,
    OP_INSERT_OVERWRITE,
    OP_MERGE,
    OP_RTAS,
    OP_UPDATE,
    OP_WRITE,
    SparkWrite,
)
from dagster_pipes_spark.spark._targets import quote_identifier

DELTA_PROVIDER = "delta"
#: The Delta write option that overwrites only the rows matching a predicate.
REPLACE_WHERE_OPTION = "replaceWhere"

# --- plan nodes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeltaCommandSpec:
    """How to read one Delta write command node (accessors are py4j method chains)."""

    operation: str
    #: chains returning ``Option[CatalogTable]`` (or a ``CatalogTable`` when ``catalog_table_direct``)
    catalog_table: tuple[str, ...] = ()
    catalog_table_direct: bool = False
    #: chains returning a Hadoop ``Path`` of the table root, tried in order
    paths: tuple[tuple[str, ...], ...] = ()
    #: chain returning a ``NamedRelation`` (``DataSourceV2Relation``) of the target
    relation: tuple[str, ...] = ()
    #: chain returning a ``SaveMode``
    mode: tuple[str, ...] = ()
    #: chain returning ``Option[LogicalPlan]``; an empty option means "no data written" (plain DDL)
    query_option: tuple[str, ...] = ()


#: Delta write commands by simple class name (prefix match, so Databricks' ``...Edge`` variants and
#: similar suffixed subclasses are covered). Field names follow the case classes in
#: ``spark/src/main/scala/org/apache/spark/sql/delta/commands/`` of delta-io/delta.
DELTA_COMMANDS: dict[str, DeltaCommandSpec] = {
    # WriteIntoDelta(deltaLog, mode, options, partitionColumns, configuration, data,
    #                catalogTableOpt, schemaInCatalog)
    "WriteIntoDelta": DeltaCommandSpec(
        OP_WRITE,
        catalog_table=("catalogTableOpt",),
        paths=(("deltaLog", "dataPath"),),
        mode=("mode",),
    ),
    # CreateDeltaTableCommand(table: CatalogTable, existingTableOpt, mode, query: Option[LogicalPlan],
    #                         operation, tableByPath, output, protocol, createTableFunc)
    "CreateDeltaTableCommand": DeltaCommandSpec(
        OP_CTAS,
        catalog_table=("table",),
        catalog_table_direct=True,
        mode=("mode",),
        query_option=("query",),
    ),
    # MergeIntoCommand(source, target, catalogTable, targetFileIndex, condition, matchedClauses, ...)
    "MergeIntoCommand": DeltaCommandSpec(
        OP_MERGE,
        catalog_table=("catalogTable",),
        paths=(("targetFileIndex", "path"),),
    ),
    # UpdateCommand(tahoeFileIndex, catalogTable, target, updateExpressions, condition)
    "UpdateCommand": DeltaCommandSpec(
        OP_UPDATE,
        catalog_table=("catalogTable",),
        paths=(("tahoeFileIndex", "path"),),
    ),
    # DeleteCommand(deltaLog, catalogTable, target, condition)
    "DeleteCommand": DeltaCommandSpec(
        OP_DELETE,
        catalog_table=("catalogTable",),
        paths=(("deltaLog", "dataPath"),),
    ),
    # DeltaDynamicPartitionOverwriteCommand(table: NamedRelation, deltaTable: DeltaTableV2, query, ...)
    "DeltaDynamicPartitionOverwriteCommand": DeltaCommandSpec(
        OP_INSERT_OVERWRITE,
        relation=("table",),
        paths=(("deltaTable", "path"),),
    ),
}

#: ``DataSourceV2Relation.table`` class of Delta tables (``org.apache.spark.sql.delta.catalog``).
DELTA_TABLE_CLASSES = frozenset({"DeltaTableV2", "StagedDeltaTableV2"})
#: ``SaveIntoDataSourceCommand.dataSource`` class for ``format("delta").save(path)``.
DELTA_DATA_SOURCE_CLASSES = frozenset({"DeltaDataSource"})
#: ``HadoopFsRelation.location`` classes of Delta reads (``TahoeLogFileIndex``, ``TahoeBatchFileIndex``, ...).
DELTA_FILE_INDEX_PREFIXES = ("Tahoe", "PreparedDeltaFileIndex")


#: The Python API's merge builder (``delta.tables.DeltaMergeBuilder``, classic sessions): Delta 3.x runs
#: ``execute()`` outside Spark's query execution (no listener event), so the hooks wrap it. Its Java
#: builder keeps the target in a private field of this class.
MERGE_BUILDER_MODULE, MERGE_BUILDER_CLASS = "delta.tables", "DeltaMergeBuilder"
MERGE_BUILDER_TARGET_CLASS = "io.delta.tables.DeltaTable"


#: Delta maintenance commands (simple class-name prefixes): they rewrite files, not the table's rows.
MAINTENANCE_COMMANDS = {
    "OptimizeTableCommand": "OPTIMIZE",
    "VacuumTableCommand": "VACUUM",
    "DeltaReorgTableCommand": "REORG",
}
_MAINTENANCE_SQL = re.compile(r"^\s*(OPTIMIZE|VACUUM|REORG)\b", re.IGNORECASE)


def maintenance_command(simple_class_name: str) -> str | None:
    """``OPTIMIZE`` / ``VACUUM`` / ``REORG`` for a Delta maintenance command node, else None."""
    for prefix, command in MAINTENANCE_COMMANDS.items():
        if simple_class_name.startswith(prefix):
            return command
    return None


def maintenance_statement(statement: str) -> str | None:
    """``OPTIMIZE`` / ``VACUUM`` / ``REORG`` when a SQL statement is a Delta maintenance command."""
    match = _MAINTENANCE_SQL.match(statement)
    return match.group(1).upper() if match else None


def maintenance_note(command: str, target: str) -> str:
    """The debug line logged for a maintenance command seen inside a hook block."""
    return f"[spark writes] {command} on {target}: Delta maintenance (rows unchanged), no materialization"


def delta_command_spec(simple_class_name: str) -> DeltaCommandSpec | None:
    """The spec for a Delta write command node, matching by simple-name prefix."""
    spec = DELTA_COMMANDS.get(simple_class_name)
    if spec is not None:
        return spec
    for name, candidate in DELTA_COMMANDS.items():
        if simple_class_name.startswith(name):
            return candidate
    return None


def is_delta_class_name(simple_class_name: str | None) -> bool:
    """True for a Delta table / data source / file index class (simple name)."""
    if not simple_class_name:
        return False
    return (
        simple_class_name in DELTA_TABLE_CLASSES
        or simple_class_name in DELTA_DATA_SOURCE_CLASSES
        or simple_class_name.startswith(DELTA_FILE_INDEX_PREFIXES)
    )


def is_delta_provider(provider: str | None) -> bool:
    """True for the provider / format string of a Delta table (``USING delta``)."""
    return bool(provider) and str(provider).strip().lower() == DELTA_PROVIDER


# --- commit tags -------------------------------------------------------------------------------

#: The session setting whose value Delta records as ``userMetadata`` of each commit.
COMMIT_TAG_CONF = "spark.databricks.delta.commitInfo.userMetadata"
_TAG_PREFIX = "dagster-pipes-spark:"


def new_commit_tag() -> str:
    """A fresh per-block tag for the commits of one :func:`report_spark_writes` block."""
    return _TAG_PREFIX + uuid.uuid4().hex


class CommitTagger:
    """Sets :data:`COMMIT_TAG_CONF` on a session for the length of a hook block, and restores it.

    ``get`` / ``set`` / ``unset`` act on the session's runtime conf. A value the user set is left
    alone (no tag: history matching falls back to the newest commits); the tag of an enclosing
    block on the same session is shared.
    """

    def __init__(
        self, get: Callable[[], str | None], set_: Callable[[str], None], unset: Callable[[], None]
    ) -> None:
        self._get, self._set, self._unset = get, set_, unset
        self.tag: str | None = None
        self._owned = False
        self.note: str | None = None

    def start(self) -> None:
        try:
            current = self._get()
        except Exception as exc:
            self.note = f"could not read {COMMIT_TAG_CONF}: {type(exc).__name__}"
            return
        if current and not current.startswith(_TAG_PREFIX):
            self.note = f"{COMMIT_TAG_CONF} is set by the job; Delta commits matched by position"
            return
        if current:
            self.tag = current
            return
        tag = new_commit_tag()
        try:
            self._set(tag)
        except Exception as exc:  # e.g. a session that does not allow it
            self.note = f"could not set {COMMIT_TAG_CONF}: {type(exc).__name__}"
            return
        self.tag, self._owned = tag, True

    def stop(self) -> None:
        if not self._owned:
            return
        self._owned = False
        try:
            if self._get() == self.tag:
                self._unset()
        except Exception:
            pass


# --- DESCRIBE HISTORY --------------------------------------------------------------------------

#: Delta operation names (``DeltaOperations.*.name``) that write table data, by our operation.
_DELTA_OPS_BY_KIND: dict[str, frozenset[str]] = {
    "write": frozenset(
        {
            "WRITE",
            "CREATE TABLE AS SELECT",
            "REPLACE TABLE AS SELECT",
            "CREATE OR REPLACE TABLE AS SELECT",
            "COPY INTO",
            "STREAMING UPDATE",
        }
    ),
    OP_MERGE: frozenset({"MERGE"}),
    OP_UPDATE: frozenset({"UPDATE"}),
    OP_DELETE: frozenset({"DELETE", "TRUNCATE"}),
}
_DATA_CHANGING_OPS = frozenset().union(*_DELTA_OPS_BY_KIND.values())


@dataclass
class DeltaCommit:
    """One ``DESCRIBE HISTORY`` row, reduced to what the hooks report."""

    version: int
    operation: str
    metrics: dict[str, int] = field(default_factory=dict)
    parameters: dict[str, str] = field(default_factory=dict)
    user_metadata: str | None = None

    @property
    def changes_data(self) -> bool:
        """Whether the commit wrote, merged, updated or deleted rows (not OPTIMIZE, VACUUM, DDL...)."""
        return self.operation.upper() in _DATA_CHANGING_OPS

    @property
    def rows_inserted(self) -> int | None:
        """Rows inserted by a MERGE."""
        return self.metrics.get("numTargetRowsInserted") if self._is(OP_MERGE) else None

    @property
    def rows_updated(self) -> int | None:
        """Rows updated by a MERGE or UPDATE."""
        if self._is(OP_MERGE):
            return self.metrics.get("numTargetRowsUpdated")
        if self._is(OP_UPDATE):
            return self.metrics.get("numUpdatedRows")
        return None

    @property
    def rows_deleted(self) -> int | None:
        """Rows deleted by a MERGE or DELETE (absent for whole-file deletes without row stats)."""
        if self._is(OP_MERGE):
            return self.metrics.get("numTargetRowsDeleted")
        if self._is(OP_DELETE):
            return self.metrics.get("numDeletedRows")
        return None

    @property
    def rows(self) -> int | None:
        """Rows written (WRITE/CTAS/...) or affected (MERGE/UPDATE/DELETE) by the commit."""
        if self._is(OP_MERGE):
            parts = (self.rows_inserted, self.rows_updated, self.rows_deleted)
            return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
        if self._is(OP_UPDATE):
            return self.rows_updated
        if self._is(OP_DELETE):
            return self.rows_deleted
        return self.metrics.get("numOutputRows")

    @property
    def files(self) -> int | None:
        """Data files added by the commit."""
        for key in ("numFiles", "numTargetFilesAdded", "numAddedFiles"):
            if key in self.metrics:
                return self.metrics[key]
        return None

    @property
    def bytes(self) -> int | None:
        """Bytes of data files added by the commit."""
        for key in ("numOutputBytes", "numTargetBytesAdded", "numAddedBytes"):
            if key in self.metrics:
                return self.metrics[key]
        return None

    def _is(self, kind: str) -> bool:
        return self.operation.upper() in _DELTA_OPS_BY_KIND.get(kind, frozenset())


def _as_mapping(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    as_dict = getattr(value, "asDict", None)  # a pyspark Row
    if callable(as_dict):
        return dict(as_dict())
    try:  # a list of (key, value) pairs, as some map encodings arrive
        return dict(value)
    except (TypeError, ValueError):
        return {}


def _to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        try:
            as_float = float(str(value).strip())
        except ValueError:
            return None
        return int(as_float) if as_float.is_integer() else None


def parse_history_row(row: Any) -> DeltaCommit | None:
    """Parse one ``DESCRIBE HISTORY`` row (a pyspark ``Row`` or a mapping); ``None`` if unusable."""
    data = _as_mapping(row)
    version = _to_int(data.get("version"))
    operation = data.get("operation")
    if version is None or not isinstance(operation, str):
        return None
    metrics: dict[str, int] = {}
    for key, value in _as_mapping(data.get("operationMetrics")).items():
        parsed = _to_int(value)
        if parsed is not None:
            metrics[str(key)] = parsed
    parameters = {
        str(k): "" if v is None else str(v) for k, v in _as_mapping(data.get("operationParameters")).items()
    }
    user_metadata = data.get("userMetadata")
    return DeltaCommit(
        version=version,
        operation=operation,
        metrics=metrics,
        parameters=parameters,
        user_metadata=str(user_metadata) if user_metadata is not None else None,
    )


def _write_kind(operation: str) -> str:
    if operation in (OP_MERGE, OP_UPDATE, OP_DELETE):
        return operation
    return "write"


def commit_matches(write_operation: str, commit: DeltaCommit) -> bool:
    """Whether a history commit can be the one a write with our ``operation`` produced."""
    return commit.operation.upper() in _DELTA_OPS_BY_KIND[_write_kind(write_operation)]


def history_sql(table: Sequence[str] | None = None, path: str | None = None, limit: int = 1) -> str:
    """``DESCRIBE HISTORY`` for a table (name parts) or a path-based Delta table."""
    if table:
        target = ".".join(quote_identifier(part) for part in table)
    elif path:
        target = "delta." + quote_identifier(path)
    else:
        raise ValueError("history_sql needs a table or a path")
    return f"DESCRIBE HISTORY {target} LIMIT {max(1, int(limit))}"


def match_commits(
    writes: Sequence[SparkWrite], commits: Iterable[DeltaCommit], tag: str | None = None
) -> list[tuple[SparkWrite, DeltaCommit]]:
    """Pair writes (oldest first) with history commits (any order), newest with newest.

    With a ``tag`` and commits carrying it, only those are candidates: they are this block's own
    commits, whatever other writers committed in between. Commits that change no data (OPTIMIZE,
    VACUUM, SET TBLPROPERTIES...) and commits whose operation cannot come from the write are skipped,
    so maintenance done in between does not shift the pairs.
    """
    candidates = list(commits)
    if tag is not None:
        ours = [c for c in candidates if c.user_metadata == tag]
        candidates = ours or [c for c in candidates if not (c.user_metadata or "").startswith(_TAG_PREFIX)]
    pending = sorted((c for c in candidates if c.changes_data), key=lambda c: c.version, reverse=True)
    pairs: list[tuple[SparkWrite, DeltaCommit]] = []
    for write in reversed(list(writes)):
        while pending and not commit_matches(write.operation, pending[0]):
            pending.pop(0)
        if not pending:
            break
        pairs.append((write, pending.pop(0)))
    pairs.reverse()
    return pairs


def _copy_counters(commit: DeltaCommit, write: SparkWrite) -> None:
    for attr in ("rows", "files", "bytes", "rows_inserted", "rows_updated", "rows_deleted"):
        value = getattr(commit, attr)
        if value is not None:
            setattr(write, attr, value)


#: Delta's name of a table-creating commit -> our operation
_CREATE_OPERATIONS = {
    "CREATE TABLE AS SELECT": OP_CTAS,
    "REPLACE TABLE AS SELECT": OP_RTAS,
    "CREATE OR REPLACE TABLE AS SELECT": OP_CREATE_OR_REPLACE,
}


def apply_commit(write: SparkWrite, commit: DeltaCommit) -> None:
    """Fill a write's counters from its Delta commit (the history is authoritative for Delta).

    ``saveAsTable`` / ``writeTo(...).create*`` of a Delta table take the operation Delta committed:
    ``CREATE OR REPLACE TABLE AS SELECT`` for a new table, a ``WRITE`` (reported as ``INSERT`` /
    ``INSERT OVERWRITE``) when it went into an existing one (``replaceWhere``, dynamic partition
    overwrite, append), whichever plan or client call carried it.
    """
    write.delta_version = commit.version
    write.format = DELTA_PROVIDER
    if write.operation in _CREATE_OPERATIONS.values():
        created = _CREATE_OPERATIONS.get(commit.operation.upper())
        if created is not None:
            write.operation = created
        elif commit.operation.upper() == "WRITE":
            write.operation = OP_INSERT_OVERWRITE if write.mode == "overwrite" else OP_INSERT
    _copy_counters(commit, write)


def apply_operation_metrics(write: SparkWrite, operation: str, metrics: Mapping[str, int]) -> None:
    """Fill a write's counters from metrics named as in ``DeltaOperationMetrics`` (Spark's own write
    statistics ``numOutputRows`` / ``numFiles`` / ``numOutputBytes`` use the same names)."""
    _copy_counters(DeltaCommit(version=-1, operation=operation, metrics=dict(metrics)), write)


__all__ = [
    "COMMIT_TAG_CONF",
    "DELTA_COMMANDS",
    "DELTA_PROVIDER",
    "MERGE_BUILDER_CLASS",
    "MERGE_BUILDER_MODULE",
    "MERGE_BUILDER_TARGET_CLASS",
    "CommitTagger",
    "DeltaCommandSpec",
    "DeltaCommit",
    "apply_commit",
    "apply_operation_metrics",
    "commit_matches",
    "delta_command_spec",
    "history_sql",
    "is_delta_class_name",
    "is_delta_provider",
    "maintenance_command",
    "maintenance_note",
    "maintenance_statement",
    "match_commits",
    "parse_history_row",
]


# --- DESCRIBE HISTORY look-ups (both mechanisms) ----------------------------------------------


_DEEP_HISTORY = 200


def _is_parse_error(exc: BaseException) -> bool:
    return "PARSE_SYNTAX_ERROR" in str(exc) or "ParseException" in type(exc).__name__


def enrich_from_delta_history(
    writes: Sequence[SparkWrite],
    run_sql: Callable[[str], list[Any]],
    *,
    probe_unknown: bool,
    on_error: Callable[[str], None],
    tag: str | None = None,
) -> None:
    """Fill version, row counts and file/byte counters of Delta writes from ``DESCRIBE HISTORY``.

    One query per Delta target (``LIMIT`` = writes to it + a margin for maintenance commits), run
    concurrently; with a commit ``tag``, a target where fewer of this block's commits than writes
    came back (other writers committed in between) is read again further back. Targets whose format
    is unknown are probed when ``probe_unknown``; a parse error on the first probe (no Delta SQL in
    this session) skips the others.
    """
    groups: dict[str, list[SparkWrite]] = {}
    for write in writes:
        if write.is_delta is False or (write.is_delta is None and not probe_unknown):
            continue
        groups.setdefault(write.target_key, []).append(write)
    known = [g for g in groups.values() if any(w.is_delta for w in g)]
    unknown = [g for g in groups.values() if not any(w.is_delta for w in g)]

    def history(group: list[SparkWrite]) -> list[Any]:
        first = group[0]
        target = (first.table, None if first.table else first.path)
        limit = len(group) + 5
        rows = run_sql(history_sql(*target, limit))
        if tag is not None and len(rows) >= limit:
            ours = sum(1 for r in rows if _as_mapping(r).get("userMetadata") == tag)
            if ours < len(group):  # concurrent commits pushed ours further back
                rows = run_sql(history_sql(*target, max(_DEEP_HISTORY, 10 * limit)))
        return rows

    def apply(group: list[SparkWrite], result: list[Any] | BaseException, known_delta: bool) -> None:
        if isinstance(result, BaseException):
            if known_delta:
                text = str(result).strip()
                on_error(
                    f"DESCRIBE HISTORY for {group[0].target} failed: {type(result).__name__}:"
                    f" {text.splitlines()[0] if text else ''}"
                )
            for w in group:
                if w.is_delta is None:
                    w.is_delta = False
            return
        commits = [c for c in (parse_history_row(r) for r in result) if c is not None]
        for w in group:
            w.is_delta = True
        for write, commit in match_commits(group, commits, tag):
            apply_commit(write, commit)

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
