"""The record of one write the hooks saw (``SparkWrite``), with the operation names and write modes it
is described by. Nothing here imports pyspark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dagster_pipes_spark.spark._lineage_types import ColumnLineage

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
    #: the Iceberg snapshot the write committed (``_iceberg``)
    snapshot_id: int | None = None
    #: a streaming query's metadata (``spark/streaming_*``; ``_streaming``), None for batch writes
    streaming: dict[str, Any] | None = None
    error: str | None = None
    asset_key: str | None = None
    api: str | None = None
    # partitions (see ``_partitions``): what the write replaced, as conjuncts (column, operator,
    # literal SQL) -- an overwrite condition; for a dynamic partition overwrite, a condition every
    # written row satisfies -- the target's partition columns, the static partition spec, whether
    # it was a dynamic partition overwrite, and how many partitions it wrote (Spark's numParts)
    replaced: tuple[tuple[str, str, str], ...] | None = None
    partition_columns: tuple[str, ...] | None = None
    static_partitions: dict[str, str] | None = None
    dynamic_overwrite: bool = False
    num_partitions: int | None = None
    #: written column -> the source columns flowing into it (``_lineage``); None: not known
    column_lineage: ColumnLineage | None = None
    #: why lineage columns were left out, and whether a plan node was not understood (logged on exit)
    lineage_problem: tuple[str, bool] | None = None
    # bookkeeping for the backends
    inner: bool = field(default=False, repr=False)  # may be the nested half of a following CTAS
    outer: bool = field(default=False, repr=False)  # a CTAS/RTAS whose data went in a nested write
    locations: tuple[str, ...] | None = field(default=None, repr=False)  # where an outer's table lives
    storage: str | None = field(default=None, repr=False)  # where a table target keeps its files
    source: Any = field(default=None, repr=False, compare=False)
    lineage_input: Any = field(default=None, repr=False, compare=False)  # Connect: explained on exit

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
        for key in (
            "mode",
            "format",
            "rows",
            "files",
            "bytes",
            "rows_inserted",
            "rows_updated",
            "rows_deleted",
            "delta_version",
            "snapshot_id",
        ):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out
