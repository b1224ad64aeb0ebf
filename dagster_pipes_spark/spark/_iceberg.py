"""Apache Iceberg specifics for the Spark write hooks: what a write committed, from the table's
``snapshots`` metadata table (``snapshot_id``, ``parent_id``, ``operation``, ``summary``).

The summary's counters are strings: ``added-records``, ``deleted-records``, ``added-data-files``,
``added-files-size``, ``added-position-deletes``, ``total-records``, and ``spark.app.id`` (the
application that committed). A copy-on-write ``DELETE`` rewrites files: its rows deleted are the
records of the removed files minus the records rewritten (``deleted-records - added-records``), plus
position deletes for merge-on-read. Nothing here imports pyspark; only mechanisms import it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster_pipes_spark.spark._parallel import parallel_map
from dagster_pipes_spark.spark._targets import quote_identifier
from dagster_pipes_spark.spark._write_record import OP_DELETE, OP_MERGE, OP_UPDATE, SparkWrite

ICEBERG_PROVIDER = "iceberg"


@dataclass
class IcebergSnapshot:
    """One row of ``<table>.snapshots``, reduced to what the hooks report."""

    snapshot_id: int
    operation: str
    summary: dict[str, str] = field(default_factory=dict)

    def counter(self, name: str) -> int | None:
        """A summary counter as an int, or None."""
        try:
            return int(self.summary[name])
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def app_id(self) -> str | None:
        return self.summary.get("spark.app.id") or self.summary.get("app-id")


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    as_dict = getattr(value, "asDict", None)
    if callable(as_dict):
        return dict(as_dict())
    try:
        return dict(value)
    except (TypeError, ValueError):
        return {}


def parse_snapshot_row(row: Any) -> IcebergSnapshot | None:
    """One ``snapshots`` row (a pyspark ``Row`` or mapping); None if unusable."""
    data = _as_dict(row)
    try:
        snapshot_id = int(data["snapshot_id"])
    except (KeyError, TypeError, ValueError):
        return None
    summary = {str(k): str(v) for k, v in _as_dict(data.get("summary")).items() if v is not None}
    return IcebergSnapshot(snapshot_id, str(data.get("operation") or ""), summary)


def snapshots_sql(table: Sequence[str], limit: int) -> str:
    """The newest ``limit`` snapshots of a table, newest first."""
    name = ".".join(quote_identifier(part) for part in (*table, "snapshots"))
    return (
        f"SELECT snapshot_id, operation, summary FROM {name} ORDER BY committed_at DESC"
        f" LIMIT {max(1, int(limit))}"
    )


def apply_snapshot(write: SparkWrite, snapshot: IcebergSnapshot) -> None:
    """Fill a write's snapshot id and counters from the snapshot it committed."""
    write.snapshot_id = snapshot.snapshot_id
    write.format = ICEBERG_PROVIDER
    added = snapshot.counter("added-records")
    files = snapshot.counter("added-data-files")
    if files is not None:
        write.files = files
    size = snapshot.counter("added-files-size")
    if size is not None:
        write.bytes = size
    if write.operation == OP_DELETE:
        removed = snapshot.counter("deleted-records")
        positions = snapshot.counter("added-position-deletes") or 0
        if removed is not None or positions:
            write.rows_deleted = (removed or 0) - (added or 0) + positions
            write.rows = write.rows_deleted
    elif write.operation not in (OP_MERGE, OP_UPDATE) and added is not None:
        write.rows = added


def enrich_from_iceberg_snapshots(
    writes: Sequence[SparkWrite],
    run_sql: Callable[[str], list[Any]],
    *,
    app_id: str | None,
    on_error: Callable[[str], None],
) -> None:
    """Snapshot id and counters of the writes to Iceberg tables: one ``snapshots`` query per table
    (run concurrently); this application's snapshots (``spark.app.id``) paired newest with newest."""
    groups: dict[str, list[SparkWrite]] = {}
    for write in writes:
        if write.table:
            groups.setdefault(write.target_key, []).append(write)
    iceberg = [g for g in groups.values() if any((w.format or "").lower() == ICEBERG_PROVIDER for w in g)]
    if not iceberg:
        return

    def snapshots(group: list[SparkWrite]) -> list[Any]:
        table = group[0].table
        assert table is not None
        return run_sql(snapshots_sql(table, len(group) + 20))

    for group, result in zip(iceberg, parallel_map(snapshots, iceberg), strict=True):
        if isinstance(result, BaseException):
            text = str(result).strip()
            on_error(
                f"[spark writes] Iceberg snapshots of {group[0].target} unavailable:"
                f" {type(result).__name__}: {text.splitlines()[0] if text else ''}"
            )
            continue
        parsed = [s for s in (parse_snapshot_row(r) for r in result) if s is not None]
        ours = [s for s in parsed if app_id is None or s.app_id in (None, app_id)]
        for write, snapshot in zip(reversed(group), ours, strict=False):
            apply_snapshot(write, snapshot)
