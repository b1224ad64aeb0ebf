"""The look-ups of a block's Delta commits on exit (both mechanisms): the tables' logs in one job,
``DESCRIBE HISTORY`` per table where the logs cannot tell."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dagster_pipes_spark.spark._delta._history import (
    DeltaCommit,
    apply_commit,
    as_mapping,
    history_sql,
    match_commits,
    parse_history_row,
)
from dagster_pipes_spark.spark._delta._log import log_key
from dagster_pipes_spark.spark._parallel import parallel_map
from dagster_pipes_spark.spark._write_record import SparkWrite

_DEEP_HISTORY = 200


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def _is_parse_error(exc: BaseException) -> bool:
    return "PARSE_SYNTAX_ERROR" in str(exc) or "ParseException" in type(exc).__name__


def enrich_from_delta_history(
    writes: Sequence[SparkWrite],
    run_sql: Callable[[str], list[Any]],
    *,
    probe_unknown: bool,
    debug: Callable[[str], None],
    tag: str | None = None,
    read_logs: Callable[[Sequence[str]], dict[str, list[DeltaCommit]]] | None = None,
) -> None:
    """Fill version, row counts and file/byte counters of Delta writes from their commits.

    With ``read_logs`` (table locations -> commits by :func:`~._log.log_key`), the commits of every
    known Delta target with a location are first read from the tables' logs at once; a target is
    served there when each of its writes found its commit. The others get one ``DESCRIBE HISTORY``
    query per target (``LIMIT`` = writes to it + a margin for maintenance commits), run
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
    if read_logs is not None:
        known = _from_logs(known, read_logs, tag, debug)

    def history(group: list[SparkWrite]) -> list[Any]:
        first = group[0]
        target = (first.table, None if first.table else first.path)
        limit = len(group) + 5
        rows = run_sql(history_sql(*target, limit))
        if tag is not None and len(rows) >= limit:
            ours = sum(1 for r in rows if as_mapping(r).get("userMetadata") == tag)
            if ours < len(group):  # concurrent commits pushed ours further back
                rows = run_sql(history_sql(*target, max(_DEEP_HISTORY, 10 * limit)))
        return rows

    def apply(group: list[SparkWrite], result: list[Any] | BaseException, known_delta: bool) -> None:
        if isinstance(result, BaseException):
            if known_delta:
                debug(f"DESCRIBE HISTORY for {group[0].target} failed: {_first_line(result)}")
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


def _location(write: SparkWrite) -> str | None:
    return write.storage if write.table else write.path


def _from_logs(
    groups: list[list[SparkWrite]],
    read_logs: Callable[[Sequence[str]], dict[str, list[DeltaCommit]]],
    tag: str | None,
    debug: Callable[[str], None],
) -> list[list[SparkWrite]]:
    """Serve the groups whose commits all are in their tables' logs; return the others."""
    located = [(g, location) for g in groups if (location := _location(g[0]))]
    if not located:
        return groups
    try:
        found = read_logs([location for _, location in located])
    except Exception as exc:
        debug(
            f"[spark writes] Delta logs unreadable ({_first_line(exc)});"
            f" DESCRIBE HISTORY for {len(groups)} target(s)"
        )
        return groups
    rest = [g for g in groups if not _location(g[0])]
    for group, location in located:
        commits = found.get(log_key(location), [])
        pairs = match_commits(group, commits, tag)
        if len(pairs) < len(group):
            rest.append(group)
            continue
        for write in group:
            write.is_delta = True
        for write, commit in pairs:
            apply_commit(write, commit)
    served = len(groups) - len(rest)
    debug(
        f"[spark writes] Delta commits of {served} target(s) read from their logs in one job;"
        f" DESCRIBE HISTORY for {len(rest)}"
    )
    return rest
