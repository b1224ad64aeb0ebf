"""The block's Delta commits read straight from the tables' transaction logs, all tables in one job.

A Delta commit is the file ``<table>/_delta_log/<version, 20 digits>.json``; its ``commitInfo``
action holds what ``DESCRIBE HISTORY`` shows (``operation``, ``operationMetrics``,
``operationParameters``, ``userMetadata``). ``DESCRIBE HISTORY`` runs one Spark job per table;
reading the commit files of every Delta target written in a block with one JSON scan (an explicit
schema, so no inference pass; only files modified since the block began, less a margin for clock
skew) is one job for all of them. Where that read cannot serve a target (the storage refuses direct
reads, as Unity Catalog does for managed tables; commits still staged outside ``_delta_log``; fewer
of the block's commits found than writes), the caller falls back to ``DESCRIBE HISTORY``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from dagster_pipes_spark.spark._delta._history import DeltaCommit, as_mapping, parse_history_row
from dagster_pipes_spark.spark._targets import normalize_path

#: The part of a commit file the hooks read (metric and parameter values are strings in the log).
COMMIT_INFO_SCHEMA = (
    "commitInfo STRUCT<operation: STRING, operationMetrics: MAP<STRING, STRING>,"
    " operationParameters: MAP<STRING, STRING>, userMetadata: STRING>"
)
#: Commit files modified this long before the block began are still read (storage clocks drift).
CLOCK_MARGIN_SECONDS = 300.0
_COMMIT_FILE = re.compile(r"^(?P<table>.+)/_delta_log/(?P<version>\d{20})\.json$")


def log_key(location: str) -> str:
    """The form a table location is compared in (scheme-normalized, percent-decoded, no trailing /)."""
    return normalize_path(unquote(str(location)))


def commit_file(path: str) -> tuple[str, int] | None:
    """``(log_key of the table, version)`` of a commit file's path; ``None`` for any other file
    (checkpoints, ``.crc``, compacted logs)."""
    match = _COMMIT_FILE.match(unquote(str(path)))
    if match is None:
        return None
    return log_key(match.group("table")), int(match.group("version"))


def modified_after(since: float) -> str:
    """The ``modifiedAfter`` option value (UTC, whole seconds) for commits since ``since`` (epoch s),
    less :data:`CLOCK_MARGIN_SECONDS`."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(max(0.0, since - CLOCK_MARGIN_SECONDS)))


def read_commit_logs(spark: Any, locations: Sequence[str], since: float) -> dict[str, list[DeltaCommit]]:
    """The commits of each table location (by :func:`log_key`) made since ``since``, from one scan of
    their ``_delta_log`` directories (classic or Connect session). Raises what Spark raises (a
    missing or unreadable location fails the whole read)."""
    keys = {log_key(loc): loc for loc in locations}
    if not keys:
        return {}
    dirs = [loc.rstrip("/") + "/_delta_log" for loc in keys.values()]
    rows = (
        spark.read.schema(COMMIT_INFO_SCHEMA)
        .option("pathGlobFilter", "*.json")
        .option("timeZone", "UTC")
        .option("modifiedAfter", modified_after(since))
        .json(dirs)
        .where("commitInfo IS NOT NULL")
        .selectExpr("_metadata.file_path AS file", "commitInfo.*")
        .collect()
    )
    found: dict[str, list[DeltaCommit]] = {key: [] for key in keys}
    for row in rows:
        data = as_mapping(row)
        located = commit_file(data.pop("file", "") or "")
        if located is None or located[0] not in found:
            continue
        commit = parse_history_row({**data, "version": located[1]})
        if commit is not None:
            found[located[0]].append(commit)
    return found
