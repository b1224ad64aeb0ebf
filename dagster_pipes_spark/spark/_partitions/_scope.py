"""The partition(s) a Pipes step targets, read from the context (see the package docstring), and
the settings that say how an overwrite of a partitioned table behaves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timezone
from typing import Any

#: ``column_type`` values: how the partition column stores the partition.
COLUMN_TYPES = ("date", "timestamp", "timestamp_ntz", "string", "number")
MULTI_KEY_DELIMITER = "|"
#: Whether an overwrite of a partitioned target replaces the partitions its data has (``dynamic``)
#: or all partitions matching its static spec (``static``): the session conf and the write option.
PARTITION_OVERWRITE_MODE_CONF = "spark.sql.sources.partitionOverwriteMode"
PARTITION_OVERWRITE_MODE_OPTION = "partitionOverwriteMode"


# --- the partition(s) in scope ------------------------------------------------------------------


def _parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Window:
    """A partition time window; both ends carry the UTC offset the orchestrator sent."""

    start: datetime
    end: datetime

    @property
    def whole_days(self) -> bool:
        """Whether both ends are local midnights (a DATE column can select the window)."""
        return self.start.time() == time(0) and self.end.time() == time(0)

    @property
    def days(self) -> int:
        """Number of local days in a whole-day window."""
        return (self.end.date() - self.start.date()).days


@dataclass(frozen=True)
class PartitionScope:
    """The partition(s) a Pipes step targets, as the Pipes context describes them."""

    key_range: tuple[str, str]
    window: Window | None = None

    @property
    def key(self) -> str | None:
        """The partition key when exactly one partition is in scope."""
        start, end = self.key_range
        return start if start == end else None

    @classmethod
    def from_pipes(cls, pipes: Any) -> PartitionScope | None:
        """The scope of a Pipes context; ``None`` when it names no partition."""
        if not pipes.is_partition_step:
            return None
        rng = pipes.partition_key_range
        tw = pipes.partition_time_window
        window = Window(_parse_instant(tw["start"]), _parse_instant(tw["end"])) if tw else None
        return cls((str(rng["start"]), str(rng["end"])), window)

    def describe(self) -> str:
        """Human-readable scope, for messages."""
        start, end = self.key_range
        text = f"partition {start!r}" if start == end else f"partition key range {start!r}...{end!r}"
        if self.window is not None:
            text += f" (time window {self.window.start.isoformat()} to {self.window.end.isoformat()})"
        return text

    def dimension_keys(self, count: int) -> list[str | None] | None:
        """The key of each of ``count`` dimensions (``None`` where a range spans several keys), or
        ``None`` when the key does not have ``count`` dimensions."""
        start, end = self.key_range
        if count == 1 and self.window is not None and MULTI_KEY_DELIMITER in start:
            return None  # time keys have no delimiter: a multi-partition key with a time dimension
        starts = [start] if count == 1 else start.split(MULTI_KEY_DELIMITER)
        ends = [end] if count == 1 else end.split(MULTI_KEY_DELIMITER)
        if len(starts) != count or len(ends) != count:
            return None
        return [s if s == e else None for s, e in zip(starts, ends, strict=True)]

    def time_dimension(self, keys: Sequence[str | None]) -> int | None:
        """Index of the dimension the time window belongs to, when the keys tell (``None`` if not)."""
        if self.window is None:
            return None
        if len(keys) == 1:
            return 0
        wall = self.window.start.replace(tzinfo=None)
        candidates = [i for i, key in enumerate(keys) if key is None or _is_time_key(key, wall)]
        return candidates[0] if len(candidates) == 1 else None


#: Key formats of Dagster's time-window partitions (defaults, then common custom ones).
_TIME_KEY_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d-%H:%M",
    "%Y-%m-%d-%H",
    "%Y-%m",
    "%Y%m%d",
    "%Y%m%d%H",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d",
)


def _is_time_key(key: str, wall: datetime) -> bool:
    for fmt in _TIME_KEY_FORMATS:
        try:
            if datetime.strptime(key, fmt) == wall:
                return True
        except ValueError:
            continue
    return False
