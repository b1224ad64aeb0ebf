"""The queue of messages a chunked channel has not uploaded yet, bounded in memory and on disk.

Messages wait here while storage is slow or down. Up to ``max_memory_bytes`` of them are kept in
memory, as one compact buffer of newline-terminated lines (about one byte of memory per byte of message,
not a Python object each); older ones beyond that spill to an anonymous temporary file (deleted when the
process ends, whatever way it ends) and come back, in order, when they are uploaded. Past
``max_spill_bytes`` on disk too, the *oldest log lines* are dropped first (``log`` and
``log_external_stream``); reports — ``opened``, ``closed``, materializations, asset checks, custom
messages — are never dropped here, and every dropped line is counted.

The queue is an ordered sequence split in two: the oldest part in the spill file, the newest in
memory. Spilling moves lines from the head of the memory part to the tail of the file; taking a chunk
reads from the file first. Serialized messages are ASCII JSON without raw newlines, so a line's length
in characters is its size in bytes. Not thread-safe: the channel holds its lock around every call.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from dataclasses import dataclass
from typing import IO

#: Default bytes of pending messages kept in memory before older ones spill to disk.
DEFAULT_MAX_MEMORY_BYTES = 32 * 1024 * 1024
#: Default bytes of pending messages allowed on disk before the oldest log lines are dropped.
DEFAULT_MAX_SPILL_BYTES = 1024 * 1024 * 1024

#: Methods whose messages may be dropped (oldest first) when memory and disk are both full.
_DROPPABLE = frozenset({"log", "log_external_stream"})
#: A serialized message starts ``{"__dagster_pipes_version": "0.1", "method": "<name>"`` (the key order
#: of ``make_message``); the method is looked for within this many leading characters.
_METHOD_WINDOW = 96
_METHOD_KEY = '"method": "'


def is_report(line: str) -> bool:
    """Whether a serialized message is a report (anything but a log line): never dropped, and its
    loss fails the job. Reads the ``method`` near the start of the line (no JSON parsing)."""
    start = line.find(_METHOD_KEY, 0, _METHOD_WINDOW)
    if start < 0:
        return True  # not our serialization: keep it as if it mattered
    start += len(_METHOD_KEY)
    end = line.find('"', start, start + 40)
    return end < 0 or line[start:end] not in _DROPPABLE


@dataclass(frozen=True)
class Chunk:
    """Messages taken for one upload: their bytes (newline-separated, as uploaded), how many, and how
    many of them are reports."""

    data: bytes
    count: int
    reports: int

    def __len__(self) -> int:
        return self.count

    @property
    def lines(self) -> list[str]:
        """The serialized messages."""
        return self.data.decode("utf-8").split("\n") if self.count else []


EMPTY = Chunk(b"", 0, 0)


class PendingMessages:
    """Pending serialized messages, oldest first; see the module docstring.

    ``max_memory_bytes=None`` keeps everything in memory (no spilling); ``max_spill_bytes`` bounds
    the file. Sizes count each line with its newline.
    """

    def __init__(
        self,
        *,
        max_memory_bytes: int | None = DEFAULT_MAX_MEMORY_BYTES,
        max_spill_bytes: int = DEFAULT_MAX_SPILL_BYTES,
    ) -> None:
        self.max_memory_bytes = max_memory_bytes
        self.max_spill_bytes = max_spill_bytes
        # the newest part: lines in one buffer from offset _mem_at, one flag (1 = report) per line
        self._mem = bytearray()
        self._mem_at = 0
        self._flags = array("B")
        self._flags_at = 0
        self._mem_reports = 0
        # the oldest part: records b"R" / b"L" + line + b"\n" in a file from offset _file_at
        self._file: IO[bytes] | None = None
        self._file_at = 0
        self._spilled = 0
        self._spilled_reports = 0
        self._spilled_bytes = 0  # the lines' size (markers not counted)
        #: log lines dropped because memory and disk were full
        self.dropped_logs = 0
        #: most bytes ever held in memory / on disk at once (for benchmarks and tests)
        self.peak_memory_bytes = 0
        self.peak_spill_bytes = 0

    # ---------------------------------------------------------------------------- size

    def __len__(self) -> int:
        return len(self._flags) - self._flags_at + self._spilled

    def __bool__(self) -> bool:
        return len(self) > 0

    def stats(self) -> dict[str, int]:
        """``messages``, ``memory_bytes``, ``spill_bytes``, their peaks, and ``dropped_logs``."""
        return {
            "messages": len(self),
            "memory_bytes": self.memory_bytes,
            "spill_bytes": self.spill_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_spill_bytes": self.peak_spill_bytes,
            "dropped_logs": self.dropped_logs,
        }

    @property
    def reports(self) -> int:
        """Reports (non-log messages) pending."""
        return self._mem_reports + self._spilled_reports

    @property
    def memory_bytes(self) -> int:
        """Bytes pending in memory."""
        return len(self._mem) - self._mem_at

    @property
    def spill_bytes(self) -> int:
        """Bytes pending on disk."""
        return self._spilled_bytes

    @property
    def total_bytes(self) -> int:
        """Bytes pending, in memory and on disk."""
        return self.memory_bytes + self._spilled_bytes

    # ---------------------------------------------------------------------------- in and out

    def append(self, line: str) -> None:
        """Queue one serialized message (no trailing newline) at the end."""
        report = is_report(line)
        self._mem += line.encode("utf-8")
        self._mem += b"\n"
        self._flags.append(report)
        self._mem_reports += report
        size = self.memory_bytes
        if size > self.peak_memory_bytes:
            self.peak_memory_bytes = size
        if self.max_memory_bytes is not None and size > self.max_memory_bytes:
            self._spill()

    def take(self, max_bytes: int | None) -> Chunk:
        """Remove and return the oldest messages that fit in ``max_bytes`` (newlines counted; at least
        one message when any is pending; ``None``: everything)."""
        first = self._take_spilled(max_bytes) if self._spilled else EMPTY
        if self._spilled or self._flags_at == len(self._flags):
            return first
        if not first.count:
            return self._take_memory(max_bytes, at_least_one=True)
        budget = None if max_bytes is None else max_bytes - len(first.data) - 1
        second = self._take_memory(budget, at_least_one=False)
        if not second.count:
            return first
        return Chunk(
            first.data + b"\n" + second.data, first.count + second.count, first.reports + second.reports
        )

    def _take_memory(self, max_bytes: int | None, *, at_least_one: bool) -> Chunk:
        start = self._mem_at
        end = len(self._mem)
        if max_bytes is not None and end - start > max_bytes:
            cut = self._mem.rfind(b"\n", start, start + max(0, max_bytes))
            if cut >= 0:
                end = cut + 1
            elif at_least_one:  # one oversized line goes alone
                end = self._mem.find(b"\n", start) + 1
            else:
                return EMPTY
        count = self._mem.count(b"\n", start, end)
        first = self._flags_at
        reports = sum(self._flags[first : first + count])
        data = bytes(self._mem[start : end - 1])
        self._mem_at, self._flags_at = end, first + count
        self._mem_reports -= reports
        self._compact_memory()
        return Chunk(data, count, reports)

    def clear(self) -> tuple[int, int]:
        """Remove everything (what will never be sent); returns how many messages and reports."""
        count, reports = len(self), self.reports
        self._mem, self._mem_at, self._flags, self._flags_at, self._mem_reports = (
            bytearray(),
            0,
            array("B"),
            0,
            0,
        )
        self._reset_file()
        return count, reports

    def close(self) -> None:
        """Release the spill file and the buffer."""
        self.clear()
        if self._file is not None:
            self._file.close()
            self._file = None

    # ---------------------------------------------------------------------------- memory

    def _compact_memory(self) -> None:
        """Drop consumed bytes once they are most of the buffer (amortized O(1) per byte)."""
        if self._mem_at and self._mem_at * 2 >= len(self._mem):
            del self._mem[: self._mem_at]
            self._mem_at = 0
            del self._flags[: self._flags_at]
            self._flags_at = 0

    # ---------------------------------------------------------------------------- the spill file

    def _open_file(self) -> IO[bytes]:
        if self._file is None:
            # An unnamed file (removed from the directory at once on POSIX): nothing is left behind.
            self._file = tempfile.TemporaryFile(prefix="dagster-pipes-pending-")
        return self._file

    def _spill(self) -> None:
        """Move the oldest in-memory lines to the file until memory is at half its cap (so spilling
        happens in batches), dropping the oldest log lines when the file is full."""
        assert self.max_memory_bytes is not None
        start = self._mem_at
        limit = self.memory_bytes - self.max_memory_bytes // 2
        cut = self._mem.rfind(b"\n", start, start + limit + 1)
        if cut < 0:
            return
        end = cut + 1
        count = self._mem.count(b"\n", start, end)
        flags = self._flags[self._flags_at : self._flags_at + count]
        records = bytearray()
        pos = start
        for flag in flags:
            nl = self._mem.index(b"\n", pos)
            records += b"R" if flag else b"L"
            records += self._mem[pos : nl + 1]
            pos = nl + 1
        f = self._open_file()
        f.seek(0, os.SEEK_END)
        f.write(records)
        reports = sum(flags)
        self._spilled += count
        self._spilled_reports += reports
        self._spilled_bytes += end - start
        self._mem_reports -= reports
        self._mem_at, self._flags_at = end, self._flags_at + count
        self._compact_memory()
        if self._spilled_bytes > self.max_spill_bytes:
            self._drop_oldest_logs()
        self.peak_spill_bytes = max(self.peak_spill_bytes, self._spilled_bytes)

    def _drop_oldest_logs(self) -> None:
        """Rewrite the file without its oldest log lines until it is at three quarters of its cap
        (reports are kept even past the cap: they are never dropped)."""
        f = self._open_file()
        excess = self._spilled_bytes - self.max_spill_bytes * 3 // 4
        f.seek(self._file_at)
        fresh = tempfile.TemporaryFile(prefix="dagster-pipes-pending-")
        kept = kept_bytes = 0
        for record in f:
            size = len(record) - 1  # the line and its newline, without the marker
            if excess > 0 and record[:1] == b"L":
                excess -= size
                self.dropped_logs += 1
                continue
            fresh.write(record)
            kept += 1
            kept_bytes += size
        f.close()
        self._file, self._file_at = fresh, 0
        self._spilled, self._spilled_bytes = kept, kept_bytes

    def _take_spilled(self, max_bytes: int | None) -> Chunk:
        f = self._open_file()
        f.seek(self._file_at)  # one seek per chunk: the records are then read in sequence
        parts: list[bytes] = []
        size = count = reports = 0
        while count < self._spilled:
            record = f.readline()
            n = len(record) - 1
            if count and max_bytes is not None and size + n > max_bytes:
                break
            report = record[:1] == b"R"
            self._file_at += len(record)
            parts.append(record[1:])
            count += 1
            reports += report
            size += n
        self._spilled -= count
        self._spilled_reports -= reports
        self._spilled_bytes -= size
        if not self._spilled:
            self._reset_file()
        return Chunk(b"".join(parts)[:-1], count, reports)

    def _reset_file(self) -> None:
        self._spilled = self._spilled_reports = self._spilled_bytes = self._file_at = 0
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
