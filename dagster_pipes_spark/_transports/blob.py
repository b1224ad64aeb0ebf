"""Chunked ("blob store") message channels, paced to what the orchestrator's readers can drain.

Dagster's blob-store readers (S3, DBFS, UC Volumes, GCS, Azure) download ONE chunk ``{n}.json`` per
poll: every ``interval + 1`` to ``interval + 2`` seconds while the run is alive, then about one per
second for ~10 s after it ends, and they stop at the first ``closed`` message. A writer that makes
chunks faster than that builds a backlog the reader never drains, and the tail (with ``closed``) is
lost. This channel therefore:

* uploads at most one chunk per ``interval + READER_SLACK_SECONDS`` (the reader's worst-case poll
  period) — the first one period after opening, later ones immediately when it has been quiet — so
  the backlog stays at about one chunk for a run of any length, and latency follows ``interval``
  (a faster reader + matching ``interval`` is faster);
* packs everything pending at close into as few chunks as possible, ``closed`` last;
* retries failed uploads with backoff and jitter under the same index with the same payload, so a
  chunk is never skipped nor duplicated, and keeps messages queued until they are uploaded;
* warns when a run produces more chunks than the reader can drain after the run ends;
* serializes in the caller's thread, so a bad payload raises at the call site instead of killing the
  upload thread.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import warnings
from abc import abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from io import StringIO
from typing import IO, TypeVar

from .._channels import LineChannel
from .._errors import DagsterPipesError, DagsterPipesWarning
from .._protocol import PipesMessage, PipesParams
from .._writers import INCLUDE_STDIO_IN_MESSAGES_KEY, PipesMessageWriter, attach_stdio_capture

#: Worst-case lag of the stock reader's poll period beyond its ``interval`` (see module docstring).
READER_SLACK_SECONDS = 2.0
#: Chunks the stock reader reliably downloads after the external process has ended.
READER_DRAIN_BUDGET = 9
_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
_FINAL_FLUSH_DEADLINE = 120.0


class PipesBlobStoreMessageWriterChannel(LineChannel):
    """Buffers messages and uploads them periodically as numbered chunks ``1.json``, ``2.json``, ...

    Subclasses implement :meth:`upload_messages_chunk`. ``interval`` is the orchestrator reader's
    ``interval`` (10 by default). ``max_chunk_bytes`` caps a chunk (None: unlimited); chunks are
    split between messages, and a single message larger than the cap raises ``DagsterPipesError``.
    """

    def __init__(self, *, interval: float = 10, max_chunk_bytes: int | None = None):
        self.interval = interval
        self.max_chunk_bytes = max_chunk_bytes
        self._pending: deque[str] = deque()
        self._cond = threading.Condition()
        self._upload_lock = threading.RLock()
        self._counter = 1
        self._last_upload = float("-inf")
        self._stop = False
        self._thread: threading.Thread | None = None
        self._reader_done_at = 0.0  # model of when the reader will have consumed the last chunk
        self._backlog_warned = False
        self.uploaded_chunks = 0
        self.upload_calls = 0

    # ----------------------------------------------------------------------------- public API

    @property
    def upload_period(self) -> float:
        """Minimum seconds between two uploads while the run is alive."""
        return self.interval + READER_SLACK_SECONDS

    def write_line(self, line: str) -> None:
        """Queue one serialized message for upload."""
        if self.max_chunk_bytes is not None and len(line) + 1 > self.max_chunk_bytes:
            raise DagsterPipesError(
                f"A single Pipes message of {len(line):,} bytes exceeds this transport's chunk limit of "
                f"{self.max_chunk_bytes:,} bytes, so the orchestrator could never read it (its reader "
                "truncates larger chunks). Send less data per message (split it, or store it elsewhere "
                "and report a path)."
            )
        with self._cond:
            self._pending.append(line)
            self._cond.notify()

    def flush_messages(self) -> Sequence[PipesMessage]:
        """Remove and return every message not yet uploaded (stock-compatible helper)."""
        with self._cond:
            lines = list(self._pending)
            self._pending.clear()
        return [json.loads(line) for line in lines]

    @abstractmethod
    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk (newline-separated JSON messages) as chunk number ``index``."""

    @contextmanager
    def buffered_upload_loop(self) -> Iterator[None]:
        """Run the background uploader for the duration of the block, then flush everything."""
        self._stop = False
        # The pacing clock starts now: `opened` and the first messages travel together in chunk 1,
        # one reader cycle in, as with the stock writer (after that, a quiet channel uploads at once).
        self._last_upload = time.monotonic()
        self._thread = threading.Thread(target=self._upload_loop, name="dagster-pipes-uploader", daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self.close()

    def flush(self) -> None:
        """Upload everything pending now, ignoring pacing (used at close, on SIGTERM and at exit)."""
        deadline = time.monotonic() + _FINAL_FLUSH_DEADLINE
        with self._upload_lock:
            final_chunks = self._estimate_chunks()
            backlog = self._estimated_backlog()
            if final_chunks and backlog + final_chunks > READER_DRAIN_BUDGET:
                warnings.warn(
                    f"[dagster-pipes] About {backlog + final_chunks} message chunks may still be unread when "
                    f"this process ends, but Dagster's reader drains only about {READER_DRAIN_BUDGET} after "
                    "the run ends: the last messages (and `closed`) may be lost. Send fewer or smaller "
                    "messages, or use a transport without a chunk-size limit.",
                    DagsterPipesWarning,
                    stacklevel=2,
                )
            while True:
                with self._cond:
                    if not self._pending:
                        return
                    lines = self._take_chunk()
                if not self._upload_with_retry(lines, deadline=deadline):
                    with self._cond:
                        left = len(self._pending) + len(lines)
                        self._pending.extendleft(reversed(lines))
                    _report_loss(left)
                    return

    def close(self) -> None:
        """Stop the uploader thread and flush what is left (idempotent)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=_FINAL_FLUSH_DEADLINE)
        self._thread = None
        self.flush()

    # ----------------------------------------------------------------------------- internals

    def _take_chunk(self) -> list[str]:
        """Pop the longest prefix of pending lines that fits in one chunk (caller holds _cond)."""
        lines: list[str] = []
        if self.max_chunk_bytes is None:
            lines.extend(self._pending)
            self._pending.clear()
            return lines
        size = 0
        while self._pending:
            n = len(self._pending[0]) + 1
            if lines and size + n > self.max_chunk_bytes:
                break
            lines.append(self._pending.popleft())
            size += n
        return lines

    def _estimate_chunks(self) -> int:
        with self._cond:
            if not self._pending:
                return 0
            if self.max_chunk_bytes is None:
                return 1
            total = sum(len(line) + 1 for line in self._pending)
        return -(-total // self.max_chunk_bytes)

    def _estimated_backlog(self) -> int:
        """Chunks the orchestrator has probably not read yet, under the reader-cadence model."""
        remaining = self._reader_done_at - time.monotonic()
        return max(0, int(-(-remaining // self.upload_period))) if remaining > 0 else 0

    def _upload_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return
                    if self._pending:
                        wait = self._last_upload + self.upload_period - time.monotonic()
                        if wait <= 0:
                            break
                    else:
                        wait = None
                    self._cond.wait(timeout=wait if wait is None else min(wait, 1.0))
            with self._upload_lock:
                with self._cond:
                    if self._stop or not self._pending:
                        continue
                    lines = self._take_chunk()
                if not self._upload_with_retry(lines, deadline=None):
                    with self._cond:
                        self._pending.extendleft(reversed(lines))

    def _upload_with_retry(self, lines: list[str], deadline: float | None) -> bool:
        """Upload ``lines`` as the next chunk; retry transient failures. Caller holds _upload_lock."""
        payload = "\n".join(lines)
        index = self._counter
        for attempt in range(len(_RETRY_DELAYS) + 1):
            try:
                self.upload_calls += 1
                self.upload_messages_chunk(StringIO(payload), index)
            except Exception as e:  # noqa: BLE001 - any failure is retried under the same index
                last_error = e
                if attempt == len(_RETRY_DELAYS) or (deadline is not None and time.monotonic() > deadline):
                    break
                delay = _RETRY_DELAYS[attempt] * (0.5 + _jitter())
                if deadline is None and self._stop:
                    return False  # the closing flush takes over (same index, same payload)
                time.sleep(delay)
            else:
                now = time.monotonic()
                self._counter += 1
                self._last_upload = now
                self.uploaded_chunks += 1
                self._reader_done_at = max(self._reader_done_at, now) + self.upload_period
                self._maybe_warn_backlog()
                return True
        _safe_stderr(
            f"[dagster-pipes] uploading message chunk {index} failed after retries: {last_error!r}; "
            "messages are kept and retried.\n"
        )
        return False

    def _maybe_warn_backlog(self) -> None:
        if not self._backlog_warned and self._estimated_backlog() > READER_DRAIN_BUDGET // 2:
            self._backlog_warned = True
            _safe_stderr(
                "[dagster-pipes] messages are produced faster than Dagster's reader downloads chunks "
                f"(one per ~{self.upload_period:.0f}s); the backlog grows and may not drain after the run.\n"
            )


def _safe_stderr(text: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _report_loss(count: int) -> None:
    _safe_stderr(f"[dagster-pipes] {count} message(s) could not be uploaded before the deadline.\n")


class PipesBufferedFilesystemMessageWriterChannel(PipesBlobStoreMessageWriterChannel):
    """Writes chunks ``{path}/{index}.json`` on a (possibly FUSE-mounted) filesystem, atomically.

    Each chunk is written to a hidden temporary file and renamed into place, so a reader never sees
    a half-written chunk.
    """

    def __init__(self, path: str, *, interval: float = 10, max_chunk_bytes: int | None = None):
        super().__init__(interval=interval, max_chunk_bytes=max_chunk_bytes)
        self._path = path

    @property
    def path(self) -> str:
        """The directory chunks are written to."""
        return self._path

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Write chunk ``index`` via temp file + rename."""
        import os

        os.makedirs(self._path, exist_ok=True)
        final = os.path.join(self._path, f"{index}.json")
        tmp = os.path.join(self._path, f".{index}.json.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(payload.read())
        os.replace(tmp, final)


def _jitter() -> float:
    import random

    return random.random()


T_BlobStoreMessageWriterChannel = TypeVar(
    "T_BlobStoreMessageWriterChannel", bound=PipesBlobStoreMessageWriterChannel
)


class PipesBlobStoreMessageWriter(PipesMessageWriter[T_BlobStoreMessageWriterChannel]):
    """Base for writers that upload message chunks to a blob store at the reader's pace."""

    INCLUDE_STDIO_IN_MESSAGES_KEY = INCLUDE_STDIO_IN_MESSAGES_KEY

    def __init__(self, *, interval: float = 10):
        self.interval = interval

    @contextmanager
    def open(self, params: PipesParams) -> Iterator[T_BlobStoreMessageWriterChannel]:
        """Build the channel, run its uploader, optionally capture stdio, and flush on exit."""
        channel = self.make_channel(params)
        with ExitStack() as stack:
            stack.enter_context(channel.buffered_upload_loop())
            if params.get(self.INCLUDE_STDIO_IN_MESSAGES_KEY):
                attach_stdio_capture(channel, stack, params)
            yield channel

    @abstractmethod
    def make_channel(self, params: PipesParams) -> T_BlobStoreMessageWriterChannel:
        """Build the channel from the reader's params."""
