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
* retries a failed upload with the channel's :class:`~.retry.RetryPolicy` (transient errors only,
  an unreadable answer included), always under the same index with the same payload, so a chunk whose
  answer was lost is rewritten identically, a chunk is never skipped while a later one is delivered,
  and messages stay queued until they are uploaded; a server's ``Retry-After`` is honoured, closing
  or not;
* stops at the first permanent error (such as HTTP 403): nothing later is attempted;
* keeps memory bounded in a long outage: pending messages beyond ``max_pending_bytes`` spill to a
  temporary file, and past its cap the oldest *log lines* are dropped (counted), never a report
  (:mod:`.pending`);
* fails the job when a report is lost: ``close()`` raises :class:`DagsterPipesMessageLossError` when a
  materialization, an asset check, a custom message or ``closed`` could not be delivered, unless
  ``on_message_loss="warn"`` (lost log lines alone only warn);
* is bounded: ``close()`` returns within ``flush_timeout`` seconds (at most
  ``TERMINATION_FLUSH_TIMEOUT`` after SIGTERM) even when every request fails or never answers —
  uploads run in a daemon thread that is abandoned at the deadline — and then says on stderr exactly
  how many messages were not delivered, where to, and why;
* warns when a run produces more chunks than the reader can drain after the run ends;
* serializes in the caller's thread, so a bad payload raises at the call site instead of killing the
  upload thread.

Where chunks go is a :class:`~.sinks.ChunkSink` (one method, ``put_chunk``) given as ``sink=``; the
delivery settings travel together as one :class:`DeliveryOptions`. Subclassing the channel and
implementing ``upload_messages_chunk`` (the stock library's way) works too.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import warnings
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, fields, replace
from typing import IO, Any, Literal, TypeVar, cast

from .. import _lifecycle
from .._channels import LineChannel
from .._errors import DagsterPipesError, DagsterPipesMessageLossError, DagsterPipesWarning
from .._protocol import PipesMessage, PipesParams
from .._redact import redact
from .._writers import INCLUDE_STDIO_IN_MESSAGES_KEY, PipesMessageWriter, attach_stdio_capture
from .errors import translate_foreign, translating
from .pending import (
    DEFAULT_MAX_MEMORY_BYTES,
    DEFAULT_MAX_SPILL_BYTES,
    EMPTY,
    Chunk,
    PendingMessages,
    is_report,
)
from .retry import DEFAULT_RETRY_POLICY, Deadline, DeadlineExceededError, Failure, RetryPolicy, classify
from .sinks import ChunkPayload, ChunkSink, DirectorySink, payload_bytes

__all__ = [
    "DEFAULT_FLUSH_TIMEOUT",
    "READER_DRAIN_BUDGET",
    "READER_SLACK_SECONDS",
    "ChunkPayload",
    "DeliveryOptions",
    "OnMessageLoss",
    "PipesBlobStoreMessageWriter",
    "PipesBlobStoreMessageWriterChannel",
    "PipesBufferedFilesystemMessageWriterChannel",
    "payload_bytes",
]

OnMessageLoss = Literal["raise", "warn"]

#: Worst-case lag of the stock reader's poll period beyond its ``interval`` (see module docstring).
READER_SLACK_SECONDS = 2.0
#: Chunks the stock reader reliably downloads after the external process has ended.
READER_DRAIN_BUDGET = 9
#: Default seconds ``close()`` may spend delivering what is left.
DEFAULT_FLUSH_TIMEOUT = 60.0
#: A chunk may always hold this much, whatever the memory cap.
_MIN_CHUNK_BYTES = 1024 * 1024
#: Pause between two retry rounds of the closing flush when storage keeps failing.
_CLOSING_PAUSE = 0.5
#: Uploading stops this much before ``flush_timeout`` (at most a tenth of it), leaving time to report
#: and return, so that ``close()`` returns within ``flush_timeout`` of being called.
_CLOSE_MARGIN = 0.25


def check_on_message_loss(value: str) -> OnMessageLoss:
    """Validate an ``on_message_loss`` argument."""
    if value not in ("raise", "warn"):
        raise DagsterPipesError(
            f"on_message_loss={value!r}: expected 'raise' (the default: a lost report fails the job) or "
            "'warn' (only say so on stderr)."
        )
    return value  # type: ignore[return-value]


def check_max_pending_bytes(value: int | None) -> int | None:
    """Validate a ``max_pending_bytes`` argument (bytes > 0, or None for no cap)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise DagsterPipesError(
            f"max_pending_bytes={value!r}: expected a number of bytes > 0 (default "
            f"{DEFAULT_MAX_MEMORY_BYTES:,}), or None to keep every pending message in memory."
        )
    return value


def check_flush_timeout(flush_timeout: float) -> float:
    """Validate a ``flush_timeout`` argument (seconds > 0)."""
    if not isinstance(flush_timeout, (int, float)) or not flush_timeout > 0 or math.isinf(flush_timeout):
        raise DagsterPipesError(
            f"flush_timeout={flush_timeout!r}: expected a finite number of seconds > 0 (the default is "
            f"{DEFAULT_FLUSH_TIMEOUT:g})."
        )
    return float(flush_timeout)


@dataclass(frozen=True)
class DeliveryOptions:
    """How a chunk channel delivers, validated once and shared by a writer's channels.

    ``interval`` is the orchestrator reader's ``interval`` (uploads are paced to it);
    ``flush_timeout`` bounds :meth:`~PipesBlobStoreMessageWriterChannel.close`; ``retry`` is the
    :class:`~.retry.RetryPolicy` for uploads; ``on_message_loss`` says whether a lost report fails
    the job (``"raise"``) or only warns; ``max_pending_bytes`` caps the messages kept in memory while
    storage is slow or down (older ones spill to a temporary file of at most ``max_spill_bytes``).
    """

    interval: float = 10
    flush_timeout: float = DEFAULT_FLUSH_TIMEOUT
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    on_message_loss: OnMessageLoss = "raise"
    max_pending_bytes: int | None = DEFAULT_MAX_MEMORY_BYTES
    max_spill_bytes: int = DEFAULT_MAX_SPILL_BYTES

    def __post_init__(self) -> None:
        object.__setattr__(self, "flush_timeout", check_flush_timeout(self.flush_timeout))
        object.__setattr__(self, "retry", self.retry or DEFAULT_RETRY_POLICY)
        check_on_message_loss(self.on_message_loss)
        check_max_pending_bytes(self.max_pending_bytes)

    @classmethod
    def of(
        cls, delivery: DeliveryOptions | None = None, *, interval: float | None = None, **changes: Any
    ) -> DeliveryOptions:
        """``delivery`` (default settings if None) with ``interval`` and other settings changed;
        an unknown setting is an error naming the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise DagsterPipesError(
                f"Unknown delivery setting(s) {', '.join(unknown)}: expected {', '.join(sorted(known))}."
            )
        if interval is not None:
            changes["interval"] = interval
        base = delivery if delivery is not None else cls()
        return replace(base, **changes) if changes else base


class _DeliverySettings:
    """Read access to the :class:`DeliveryOptions` a channel or a writer holds as ``delivery``."""

    delivery: DeliveryOptions

    @property
    def interval(self) -> float:
        """The orchestrator reader's ``interval`` (uploads are paced to it)."""
        return self.delivery.interval

    @property
    def flush_timeout(self) -> float:
        """Seconds closing may spend delivering what is left."""
        return self.delivery.flush_timeout

    @property
    def retry(self) -> RetryPolicy:
        """How failed uploads are retried."""
        return self.delivery.retry

    @property
    def on_message_loss(self) -> OnMessageLoss:
        """Whether a lost report fails the job (``"raise"``) or only warns (``"warn"``)."""
        return self.delivery.on_message_loss

    @property
    def max_pending_bytes(self) -> int | None:
        """The most bytes of pending messages kept in memory (None: no cap)."""
        return self.delivery.max_pending_bytes


class PipesBlobStoreMessageWriterChannel(_DeliverySettings, LineChannel):
    """Buffers messages and uploads them periodically as numbered chunks ``1.json``, ``2.json``, ...

    Chunks go to ``sink`` (a :class:`~.sinks.ChunkSink`), or — the stock library's way — to a
    subclass's :meth:`upload_messages_chunk` (one attempt; the channel retries). ``max_chunk_bytes``
    caps a chunk (None: unlimited); chunks are split between messages, and a single message larger
    than the cap raises ``DagsterPipesError``. The delivery settings (``interval``, ``flush_timeout``,
    ``retry``, ``on_message_loss``, ``max_pending_bytes``, ``max_spill_bytes``) come as one
    :class:`DeliveryOptions` (``delivery=``) or as keyword arguments.
    """

    def __init__(
        self,
        *,
        interval: float | None = None,
        sink: ChunkSink | None = None,
        max_chunk_bytes: int | None = None,
        delivery: DeliveryOptions | None = None,
        **settings: Any,
    ):
        self.delivery = DeliveryOptions.of(delivery, interval=interval, **settings)
        if (
            sink is None
            and type(self).upload_messages_chunk is PipesBlobStoreMessageWriterChannel.upload_messages_chunk
        ):
            raise DagsterPipesError(
                f"{type(self).__name__} has nowhere to put chunks: pass sink= (a ChunkSink) or implement "
                "upload_messages_chunk(payload, index) in a subclass."
            )
        self.sink = sink
        self.max_chunk_bytes = max_chunk_bytes
        self._pending = PendingMessages(
            max_memory_bytes=self.max_pending_bytes, max_spill_bytes=self.delivery.max_spill_bytes
        )
        self._cond = threading.Condition()
        self._counter = 1  # index of the next chunk to deliver (the in-flight one, if any)
        self._inflight: Chunk | None = None  # retried as is until delivered
        self._resume_at = -math.inf  # not before this (a server's Retry-After)
        self._uploading = False
        self._next_upload_at = -math.inf
        self._stop = False
        self._urgent = False
        self._closed = False
        self._abandoned = False
        self._deadline = Deadline()  # tightened by close() and SIGTERM
        self._failure: Failure | None = None  # permanent: nothing more is attempted
        self._last_error: Failure | None = None
        self._failing = False
        self._dropped = 0  # messages that will never be sent (after a permanent failure; counted, not kept)
        self._dropped_reports = 0  # ... of which reports
        self._thread: threading.Thread | None = None
        self._reader_done_at = 0.0  # model of when the reader will have consumed the last chunk
        self._backlog_warned = False
        self.uploaded_chunks = 0
        self.upload_calls = 0
        self.delivered_messages = 0

    # ----------------------------------------------------------------------------- public API

    @property
    def upload_period(self) -> float:
        """Minimum seconds between two uploads while the run is alive."""
        return self.interval + READER_SLACK_SECONDS

    def destination(self) -> str:
        """Where chunks go, for messages (the sink's location; subclasses name their path)."""
        return self.sink.destination if self.sink is not None else type(self).__name__

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
            if self._failure is not None or self._abandoned:
                self._dropped += 1  # it could only be delivered after a message that never will be
                self._dropped_reports += is_report(line)
                return
            self._pending.append(line)
            self._cond.notify_all()

    def flush_messages(self) -> Sequence[PipesMessage]:
        """Remove and return every message not yet uploaded (stock-compatible helper)."""
        with self._cond:
            lines = self._pending.take(None).lines
        return [json.loads(line) for line in lines]

    @property
    def pending_stats(self) -> dict[str, int]:
        """Pending messages and where they are: ``messages``, ``memory_bytes``, ``spill_bytes``,
        the peaks of both, and ``dropped_logs`` (dropped because memory and disk were full)."""
        with self._cond:
            p = self._pending
            return {
                "messages": len(p),
                "memory_bytes": p.memory_bytes,
                "spill_bytes": p.spill_bytes,
                "peak_memory_bytes": p.peak_memory_bytes,
                "peak_spill_bytes": p.peak_spill_bytes,
                "dropped_logs": p.dropped_logs,
            }

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk (newline-separated JSON messages) as chunk number ``index`` (one attempt):
        to the sink, unless a subclass does it itself."""
        assert self.sink is not None  # checked when the channel was made
        self.sink.put_chunk(index, payload_bytes(payload))

    @contextmanager
    def buffered_upload_loop(self) -> Iterator[None]:
        """Run the background uploader for the duration of the block, then flush everything."""
        # The pacing clock starts now: `opened` and the first messages travel together in chunk 1,
        # one reader cycle in, as with the stock writer (after that, a quiet channel uploads at once).
        with self._cond:
            self._next_upload_at = time.monotonic() + self.upload_period
        self._start_uploader()
        try:
            yield
        finally:
            self.close()

    def flush(self) -> None:
        """Upload everything pending now, ignoring pacing; wait at most ``flush_timeout`` seconds."""
        with self._cond:
            if self._closed:
                return
            self._urgent = True
            self._cond.notify_all()
        self._start_uploader()
        deadline = Deadline(self.flush_timeout)
        with self._cond:
            while self._has_work() and self._failure is None and not deadline.expired():
                self._cond.wait(min(0.1, deadline.remaining()))

    def close(self) -> None:
        """Deliver what is left within ``flush_timeout`` (idempotent), then stop the uploader.

        Returns by the deadline whatever storage does; messages that could not be delivered are
        counted on stderr with the path and the reason, and if a report was among them (with
        ``on_message_loss="raise"``, the default) :class:`DagsterPipesMessageLossError` is raised.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop = True
            margin = min(_CLOSE_MARGIN, self.flush_timeout / 10)
            self._deadline.tighten(time.monotonic() + self.flush_timeout - margin)
            self._cond.notify_all()
        self._warn_if_tail_may_be_lost()
        self._start_uploader()
        while True:
            terminating = _lifecycle.termination_deadline()
            if terminating is not None:
                self._deadline.tighten(terminating)
            thread = self._thread
            if thread is None or not thread.is_alive() or self._deadline.expired():
                break
            thread.join(timeout=min(0.1, self._deadline.remaining()))
        with self._cond:
            self._abandoned = self._has_work()
            self._cond.notify_all()
        lost_reports = self._report_loss()
        with self._cond:
            if not self._uploading:  # a hung request may still read the spill file: leave it to exit
                self._pending.close()
        if lost_reports and self.on_message_loss == "raise":
            raise DagsterPipesMessageLossError(
                f"{lost_reports} report(s) (materializations, asset checks, custom messages or `closed`) "
                f"could not be delivered to {self.destination()}, so Dagster does not have them: this "
                "run's results are incomplete (the reason is on stderr above). Pass "
                "on_message_loss='warn' to the message writer to only warn."
            )

    # ----------------------------------------------------------------------------- internals

    def _has_work(self) -> bool:
        return self._inflight is not None or bool(self._pending)

    def _chunk_cap(self) -> int | None:
        """The most bytes one chunk may hold: the transport's limit, and no more than the memory cap
        (a chunk is held in memory while it is uploaded) — but never under ``_MIN_CHUNK_BYTES``, so a
        small memory cap does not make more chunks than the reader can drain."""
        caps = [self.max_chunk_bytes] if self.max_chunk_bytes is not None else []
        if self.max_pending_bytes is not None:
            caps.append(max(self.max_pending_bytes, _MIN_CHUNK_BYTES))
        return min(caps) if caps else None

    def _start_uploader(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._failure is not None or self._abandoned or (self._closed and not self._has_work()):
                return
            thread = threading.Thread(target=self._upload_loop, name="dagster-pipes-uploader", daemon=True)
            try:
                thread.start()
                self._thread = thread
                return
            except RuntimeError:  # interpreter shutdown (3.12+): upload from this thread, deadline-bound
                self._thread = None
        self._upload_loop()

    def _estimate_chunks(self) -> int:
        with self._cond:
            if not self._pending:
                return 0
            cap = self._chunk_cap()
            if cap is None:
                return 1
            total = self._pending.total_bytes
        return -(-total // cap)

    def _estimated_backlog(self) -> int:
        """Chunks the orchestrator has probably not read yet, under the reader-cadence model."""
        remaining = self._reader_done_at - time.monotonic()
        return max(0, int(-(-remaining // self.upload_period))) if remaining > 0 else 0

    def _warn_if_tail_may_be_lost(self) -> None:
        final_chunks = self._estimate_chunks()
        backlog = self._estimated_backlog()
        if final_chunks and backlog + final_chunks > READER_DRAIN_BUDGET:
            warnings.warn(
                f"[dagster-pipes] About {backlog + final_chunks} message chunks may still be unread when "
                f"this process ends, but Dagster's reader drains only about {READER_DRAIN_BUDGET} after "
                "the run ends: the last messages (and `closed`) may be lost. Send fewer or smaller "
                "messages, or use a transport without a chunk-size limit.",
                DagsterPipesWarning,
                stacklevel=3,
            )

    def _upload_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._failure is not None or self._abandoned:
                        return
                    if not self._has_work():
                        self._urgent = False
                        self._cond.notify_all()
                        if self._stop:
                            return
                        self._cond.wait()
                        continue
                    now = time.monotonic()
                    if now < self._resume_at:  # the server asked us to wait (Retry-After)
                        self._cond.wait(self._resume_at - now)
                        continue
                    if self._stop or self._urgent:
                        break
                    wait = self._next_upload_at - now
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._inflight is None:
                    self._inflight = self._pending.take(self._chunk_cap())
                chunk, index = self._inflight, self._counter
            delivered = self._deliver(chunk.data, index)
            with self._cond:
                now = time.monotonic()
                self._next_upload_at = now + self.upload_period
                if delivered:
                    self._inflight = None
                    self._counter += 1
                    self.uploaded_chunks += 1
                    self.delivered_messages += len(chunk)
                    self._failing = False
                    self._last_error = None
                    self._reader_done_at = max(self._reader_done_at, now) + self.upload_period
                self._cond.notify_all()
            if delivered:
                self._maybe_warn_backlog()
            elif self._stop and self._failure is None:
                # Storage keeps failing while closing: the next round shortly, or when the server
                # said (Retry-After) — unless that is past the deadline, which ends the uploads.
                last = self._last_error
                pause = max(_CLOSING_PAUSE, (last.retry_after or 0.0) if last is not None else 0.0)
                if time.monotonic() + pause >= self._deadline.at:
                    return
                self._deadline.wait(pause)

    def _deliver(self, payload: bytes, index: int) -> bool:
        """Upload ``payload`` as chunk ``index`` under the retry policy; whether it was delivered."""

        def attempt() -> None:
            self.upload_calls += 1
            self._uploading = True  # a request is out: storage has not answered yet
            try:
                with translating(translate_foreign):  # a subclass's upload is code we do not own
                    self.upload_messages_chunk(cast(IO, ChunkPayload(payload)), index)
            except Exception as e:
                self._last_error = classify(e)
                raise
            finally:
                self._uploading = False

        try:
            self.retry.call(attempt, f"upload of message chunk {index}", deadline=self._deadline)
            return True
        except DeadlineExceededError:
            return False
        except Exception as e:  # noqa: BLE001 - every failure is classified; permanent ones end uploads
            failure = classify(e)
        with self._cond:
            if failure.retry_after:
                self._resume_at = max(self._resume_at, time.monotonic() + failure.retry_after)
            if self._abandoned:
                return False
            first = not self._failing
            self._failing = True
            if not failure.transient:
                self._failure = failure
                count, reports = self._pending.clear()
                self._dropped += count
                self._dropped_reports += reports
        if not failure.transient:
            _safe_stderr(
                f"[dagster-pipes] uploading message chunk {index} to {self.destination()} failed with a "
                f"permanent error, so it is not retried: {failure.describe()}. No later message can be "
                "delivered; the count is reported when the channel closes.\n"
            )
        elif first:
            _safe_stderr(
                f"[dagster-pipes] uploading message chunk {index} to {self.destination()} is failing: "
                f"{failure.describe()}. The messages are kept and retried.\n"
            )
        return False

    def _report_loss(self) -> int:
        """Say on stderr what was not delivered and why; returns how many reports that was."""
        with self._cond:
            inflight = self._inflight or EMPTY
            in_flight = len(inflight)
            dropped_logs = self._pending.dropped_logs
            lost = in_flight + len(self._pending) + self._dropped + dropped_logs
            lost_reports = inflight.reports + self._pending.reports + self._dropped_reports
            hung = self._uploading
            failure, last, first = self._failure, self._last_error, self._counter
        if not lost:
            return 0
        if not in_flight and not len(self._pending) and not self._dropped:  # only the disk cap's drops
            _safe_stderr(
                f"[dagster-pipes] {dropped_logs} log message(s) were not delivered to {self.destination()}: "
                f"storage was unavailable for so long that pending messages exceeded the memory cap "
                f"({self.max_pending_bytes or 0:,} bytes) and the disk cap, so the oldest log lines "
                "were dropped (no report was).\n"
            )
            return 0
        terminating = _lifecycle.termination_deadline()
        limit = (
            f"the {_lifecycle.TERMINATION_FLUSH_TIMEOUT:g} s allowed after SIGTERM"
            if terminating is not None and terminating <= self._deadline.at
            else f"the flush timeout of {self.flush_timeout:g} s"
        )
        if failure is not None:
            why = f"{failure.describe()} is a permanent error, so nothing was retried"
        elif hung:
            why = (
                f"the upload of chunk {first} ({in_flight} message(s)) was still waiting for storage to "
                f"answer when {limit} ran out"
            )
            if last is not None:
                why += f"; the previous attempt failed with {last.describe()}"
        elif last is not None:
            why = f"storage kept failing until {limit} ran out; the last error was {last.describe()}"
        else:
            why = f"{limit} ran out before they could be uploaded"
        reports = f"{lost_reports} of them report(s)" if lost_reports else "all of them log lines"
        extra = (
            f"; besides, {dropped_logs} older log line(s) were dropped when memory and disk were full"
            if dropped_logs
            else ""
        )
        maybe = ""
        if in_flight and (hung or (last is not None and _may_have_applied(last))):
            maybe = (
                f" The {in_flight} message(s) of chunk {first} may have reached storage all the same: "
                "its last request was sent but its answer was lost."
            )
        _safe_stderr(
            f"[dagster-pipes] {lost} message(s) were not delivered to {self.destination()} (every message "
            f"from chunk {first} on; {reports}): {why}{extra}.{maybe}\n"
        )
        return lost_reports

    def _maybe_warn_backlog(self) -> None:
        if not self._backlog_warned and self._estimated_backlog() > READER_DRAIN_BUDGET // 2:
            self._backlog_warned = True
            _safe_stderr(
                "[dagster-pipes] messages are produced faster than Dagster's reader downloads chunks "
                f"(one per ~{self.upload_period:.0f}s); the backlog grows and may not drain after the run.\n"
            )


def _may_have_applied(failure: Failure) -> bool:
    """Whether a failed upload may still have been written: the server may have applied it before its
    answer was lost (an unreadable or missing answer, a 500, a timeout), unlike a refusal (429, 503)."""
    return failure.status is None or failure.status in (500, 502, 504)


def _safe_stderr(text: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    try:
        stream.write(redact(text))
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


class PipesBufferedFilesystemMessageWriterChannel(PipesBlobStoreMessageWriterChannel):
    """Writes chunks ``{path}/{index}.json`` on a (possibly FUSE-mounted) filesystem, atomically.

    Each chunk is written to a hidden temporary file and renamed into place, so a reader never sees
    a half-written chunk (a :class:`~.sinks.DirectorySink`).
    """

    def __init__(self, path: str, *, interval: float | None = None, **options: Any):
        super().__init__(sink=DirectorySink(path), interval=interval, **options)
        self._path = path

    @property
    def path(self) -> str:
        """The directory chunks are written to."""
        return self._path


T_BlobStoreMessageWriterChannel = TypeVar(
    "T_BlobStoreMessageWriterChannel", bound=PipesBlobStoreMessageWriterChannel
)


class PipesBlobStoreMessageWriter(_DeliverySettings, PipesMessageWriter[T_BlobStoreMessageWriterChannel]):
    """Base for writers that upload message chunks to a blob store at the reader's pace.

    ``flush_timeout`` (seconds, default 60) bounds the final flush; ``retry`` (a
    :class:`~.retry.RetryPolicy`) sets how failed uploads are retried; ``on_message_loss``
    (``"raise"``, the default, or ``"warn"``) whether a lost report fails the job; ``max_pending_bytes``
    caps the pending messages kept in memory during an outage (older ones spill to disk). They are
    validated once into :attr:`delivery`, which every channel of the writer shares
    (:meth:`channel_options`).
    """

    INCLUDE_STDIO_IN_MESSAGES_KEY = INCLUDE_STDIO_IN_MESSAGES_KEY

    def __init__(
        self,
        *,
        interval: float = 10,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        retry: RetryPolicy | None = None,
        on_message_loss: OnMessageLoss = "raise",
        max_pending_bytes: int | None = DEFAULT_MAX_MEMORY_BYTES,
    ):
        #: the delivery settings of this writer's channels
        self.delivery = DeliveryOptions(
            interval=interval,
            flush_timeout=flush_timeout,
            retry=retry or DEFAULT_RETRY_POLICY,
            on_message_loss=on_message_loss,
            max_pending_bytes=max_pending_bytes,
        )

    def channel_options(self) -> dict[str, Any]:
        """What every channel of this writer takes (as keyword arguments): ``delivery``."""
        return {"delivery": self.delivery}

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
