"""What a writer call targets: a table or a path, and whether it is Delta."""

from __future__ import annotations

import re
from typing import Any

from dagster_pipes_spark.spark._connect._registry import Observer
from dagster_pipes_spark.spark._targets import parse_target


def table_or_path(name: str) -> tuple[tuple[str, ...] | None, str | None, str | None]:
    kind, parsed = parse_target(name)
    if kind == "path":
        fmt_match = re.match(r"^\s*([A-Za-z_]\w*)\s*\.", name)
        return None, str(parsed), fmt_match.group(1).lower() if fmt_match else None
    assert isinstance(parsed, tuple)
    return parsed, None, None


def is_delta_format(fmt: str | None) -> bool | None:
    if fmt is None:
        return None
    return fmt.lower() == "delta"


def targets_delta(writer: Any, backend: Observer) -> bool:
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
