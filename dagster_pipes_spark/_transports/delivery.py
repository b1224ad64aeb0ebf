"""Delivery of message chunks to a :class:`~.sinks.ChunkSink`, paced to what the orchestrator's
readers drain: pacing, flushing, retrying, and what is done when messages are lost.

Dagster's blob-store readers download ONE chunk ``{n}.json`` per poll (every ``interval + 1`` to
``interval + 2`` seconds while the run is alive, then about one per second for ~10 s after it ends)
and stop at the first ``closed``: a writer faster than that builds a backlog whose tail (with
``closed``) is lost. :class:`ChunkDelivery` therefore:

* uploads at most one chunk per ``interval + READER_SLACK_SECONDS`` (the first one period after
  opening, later ones at once when it has been quiet), so the backlog stays at about one chunk;
* packs everything pending at close into as few chunks as possible, ``closed`` last;
* retries a failed upload with the :class:`~.retry.RetryPolicy` (transient errors only), always under
  the same index with the same payload, so no chunk is skipped and messages stay queued until
  uploaded; a server's ``Retry-After`` is honoured; the first permanent error (HTTP 403) ends uploads;
* keeps memory bounded in a long outage (:mod:`.pending`: spill to a temporary file, past its cap the
  oldest *log lines* dropped, never a report);
* returns from :meth:`ChunkDelivery.close` within ``flush_timeout`` (at most
  ``TERMINATION_FLUSH_TIMEOUT`` after SIGTERM) whatever storage does — uploads run in a daemon thread
  abandoned at the deadline — then says on stderr how many messages were lost, where to and why, and
  raises :class:`DagsterPipesMessageLossError` if a report was (unless ``on_message_loss="warn"``);
* warns when a run produces more chunks than the reader can drain after the run ends.
"""

from __future__ import annotations

import math
import threading
import time
import warnings

from .. import _lifecycle
from .._errors import DagsterPipesError, DagsterPipesMessageLossError, DagsterPipesWarning
from .._redact import write_stderr
from .errors import translate_foreign, translating
from .options import DeliveryOptions
from .pending import EMPTY, Chunk, PendingMessages, is_report
from .retry import Deadline, DeadlineExceededError, Failure, classify
from .sinks import ChunkSink

__all__ = ["READER_DRAIN_BUDGET", "READER_SLACK_SECONDS", "ChunkDelivery"]

#: Worst-case lag of the stock reader's poll period beyond its ``interval`` (see module docstring).
READER_SLACK_SECONDS = 2.0
#: Chunks the stock reader reliably downloads after the external process has ended.
READER_DRAIN_BUDGET = 9
#: A chunk may always hold this much, whatever the memory cap.
_MIN_CHUNK_BYTES = 1024 * 1024
#: Pause between two retry rounds of the closing flush when storage keeps failing.
_CLOSING_PAUSE = 0.5
#: Uploading stops this much before ``flush_timeout`` (at most a tenth of it), leaving time to report
#: and return, so that ``close()`` returns within ``flush_timeout`` of being called.
_CLOSE_MARGIN = 0.25


class ChunkDelivery:
    """Queues serialized messages and delivers them to ``sink`` as chunks ``1``, ``2``, ... on a
    daemon thread, under ``options`` (see the module docstring). ``max_chunk_bytes`` caps a chunk
    (None: unlimited)."""

    def __init__(self, sink: ChunkSink, options: DeliveryOptions, *, max_chunk_bytes: int | None = None):
        self.sink = sink
        self.options = options
        self.max_chunk_bytes = max_chunk_bytes
        self._pending = PendingMessages(
            max_memory_bytes=options.max_pending_bytes, max_spill_bytes=options.max_spill_bytes
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

    @property
    def upload_period(self) -> float:
        """Minimum seconds between two uploads while the run is alive."""
        return self.options.interval + READER_SLACK_SECONDS

    def append(self, line: str) -> None:
        """Queue one serialized message; a message larger than a chunk may hold raises."""
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

    def take_all(self) -> list[str]:
        """Remove and return every line not yet uploaded."""
        with self._cond:
            return self._pending.take(None).lines

    def pending_stats(self) -> dict[str, int]:
        """Pending messages and where they are (:meth:`.pending.PendingMessages.stats`)."""
        with self._cond:
            return self._pending.stats()

    def start(self) -> None:
        """Start the uploader; the pacing clock starts now: `opened` and the first messages travel
        together in chunk 1, one reader cycle in, as with the stock writer (after that, a quiet channel
        uploads at once)."""
        with self._cond:
            self._next_upload_at = time.monotonic() + self.upload_period
        self._start_uploader()

    def flush(self) -> None:
        """Upload everything pending now, ignoring pacing; wait at most ``flush_timeout`` seconds."""
        with self._cond:
            if self._closed:
                return
            self._urgent = True
            self._cond.notify_all()
        self._start_uploader()
        deadline = Deadline(self.options.flush_timeout)
        with self._cond:
            while self._has_work() and self._failure is None and not deadline.expired():
                self._cond.wait(min(0.1, deadline.remaining()))

    def close(self) -> None:
        """Deliver what is left within ``flush_timeout`` (idempotent), stop the uploader, say on stderr
        what was lost, and raise :class:`DagsterPipesMessageLossError` if a report was (unless
        ``on_message_loss="warn"``)."""
        flush_timeout = self.options.flush_timeout
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop = True
            margin = min(_CLOSE_MARGIN, flush_timeout / 10)
            self._deadline.tighten(time.monotonic() + flush_timeout - margin)
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
        if lost_reports and self.options.on_message_loss == "raise":
            raise DagsterPipesMessageLossError(
                f"{lost_reports} report(s) (materializations, asset checks, custom messages or `closed`) "
                f"could not be delivered to {self.sink.destination}, so Dagster does not have them: this "
                "run's results are incomplete (the reason is on stderr above). Pass "
                "on_message_loss='warn' to the message writer to only warn."
            )

    def _has_work(self) -> bool:
        return self._inflight is not None or bool(self._pending)

    def _chunk_cap(self) -> int | None:
        """The most bytes one chunk may hold: the transport's limit, and no more than the memory cap
        (a chunk is held in memory while it is uploaded) — but never under ``_MIN_CHUNK_BYTES``, so a
        small memory cap does not make more chunks than the reader can drain."""
        caps = [self.max_chunk_bytes] if self.max_chunk_bytes is not None else []
        if self.options.max_pending_bytes is not None:
            caps.append(max(self.options.max_pending_bytes, _MIN_CHUNK_BYTES))
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
                stacklevel=4,
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
        """Put ``payload`` as chunk ``index`` under the retry policy; whether it was delivered."""

        def attempt() -> None:
            self.upload_calls += 1
            self._uploading = True  # a request is out: storage has not answered yet
            try:
                with translating(translate_foreign):  # a sink given by the user is code we do not own
                    self.sink.put_chunk(index, payload)
            except Exception as e:
                self._last_error = classify(e)
                raise
            finally:
                self._uploading = False

        try:
            self.options.retry.call(attempt, f"upload of message chunk {index}", deadline=self._deadline)
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
            write_stderr(
                f"[dagster-pipes] uploading message chunk {index} to {self.sink.destination} failed with a "
                f"permanent error, so it is not retried: {failure.describe()}. No later message can be "
                "delivered; the count is reported when the channel closes.\n"
            )
        elif first:
            write_stderr(
                f"[dagster-pipes] uploading message chunk {index} to {self.sink.destination} is failing: "
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
        destination = self.sink.destination
        if not in_flight and not len(self._pending) and not self._dropped:  # only the disk cap's drops
            write_stderr(
                f"[dagster-pipes] {dropped_logs} log message(s) were not delivered to {destination}: "
                f"storage was unavailable for so long that pending messages exceeded the memory cap "
                f"({self.options.max_pending_bytes or 0:,} bytes) and the disk cap, so the oldest log "
                "lines were dropped (no report was).\n"
            )
            return 0
        terminating = _lifecycle.termination_deadline()
        limit = (
            f"the {_lifecycle.TERMINATION_FLUSH_TIMEOUT:g} s allowed after SIGTERM"
            if terminating is not None and terminating <= self._deadline.at
            else f"the flush timeout of {self.options.flush_timeout:g} s"
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
        if in_flight and (hung or (last is not None and last.may_have_applied)):
            maybe = (
                f" The {in_flight} message(s) of chunk {first} may have reached storage all the same: "
                "its last request was sent but its answer was lost."
            )
        write_stderr(
            f"[dagster-pipes] {lost} message(s) were not delivered to {destination} (every message "
            f"from chunk {first} on; {reports}): {why}{extra}.{maybe}\n"
        )
        return lost_reports

    def _maybe_warn_backlog(self) -> None:
        if not self._backlog_warned and self._estimated_backlog() > READER_DRAIN_BUDGET // 2:
            self._backlog_warned = True
            write_stderr(
                "[dagster-pipes] messages are produced faster than Dagster's reader downloads chunks "
                f"(one per ~{self.upload_period:.0f}s); the backlog grows and may not drain after the run.\n"
            )
