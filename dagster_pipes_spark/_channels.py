"""Message writer channels that write one JSON line per message (file and stream)."""

from __future__ import annotations

import os
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import IO, Any, TextIO

from ._errors import DagsterPipesError
from ._json import dumps
from ._protocol import PipesMessage


def serialize_message(message: PipesMessage | dict[str, Any]) -> str:
    """Serialize a message to one JSON line (no newline), raising ``DagsterPipesError`` if impossible."""
    try:
        return dumps(message)
    except (TypeError, ValueError) as e:
        method = message.get("method") if isinstance(message, dict) else None
        raise DagsterPipesError(
            f"Cannot send `{method}` message: its params are not JSON-serializable ({e}). "
            "Convert values to dicts, lists, strings, numbers, bools or None."
        ) from e


class PipesMessageWriterChannel(ABC):
    """Writes messages back to the orchestration process."""

    @abstractmethod
    def write_message(self, message: PipesMessage) -> None:
        """Write a message to the orchestration process."""

    def flush(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Push buffered messages out now (no-op for unbuffered channels)."""


class LineChannel(PipesMessageWriterChannel):
    """One of our channels: it accepts pre-serialized lines, so each message is serialized once.

    ``PipesContext`` writes to it with :meth:`write_line`; any other channel (a user's subclass of
    ``PipesMessageWriterChannel``) receives message dicts through ``write_message``, as in the stock
    library. A stdio capture feeding the channel registers with :meth:`attach_capture` and is stopped
    by the context with :meth:`stop_capture` before ``closed`` is written.
    """

    _stop_capture: Callable[[], None] | None = None

    def write_message(self, message: PipesMessage) -> None:
        """Serialize ``message`` and write it as one line."""
        self.write_line(serialize_message(message))

    @abstractmethod
    def write_line(self, line: str) -> None:
        """Write one serialized message (without trailing newline)."""

    def attach_capture(self, stop: Callable[[], None]) -> None:
        """Register how to stop the stdio capture that feeds this channel."""
        self._stop_capture = stop

    def stop_capture(self) -> None:
        """Stop the stdio capture feeding this channel (if any), flushing what it captured."""
        stop, self._stop_capture = self._stop_capture, None
        if stop is not None:
            stop()


class PipesFileMessageWriterChannel(LineChannel):
    """Appends one message per line to a file; each line lands with one ``write`` system call.

    Unlike the stock channel it keeps the file open (append mode) instead of reopening it for every
    message, and serializes writers with a lock, so concurrent threads never interleave lines. Lines
    reach the OS immediately, so nothing is lost if the process is killed.
    """

    def __init__(self, path: str):
        self._path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        """The file messages are appended to."""
        return self._path

    def write_line(self, line: str) -> None:
        """Append ``line`` plus a newline in a single write."""
        data = (line + "\n").encode("utf-8")
        with self._lock:
            fd = self._fd
            if fd is None:
                fd = self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            written = os.write(fd, data)
            if written < len(data):  # a short write (a full disk, a signal): write the rest
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(fd, view) :]

    def close(self) -> None:
        """Close the file descriptor (it is reopened if more messages arrive)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass


_STREAM_FLUSH_INTERVAL = 0.1
_dirty_streams: weakref.WeakSet[PipesStreamMessageWriterChannel] = weakref.WeakSet()
_flusher_started = False
_flusher_lock = threading.Lock()


def _flusher_loop() -> None:
    while True:
        time.sleep(_STREAM_FLUSH_INTERVAL)
        for channel in list(_dirty_streams):
            if channel._dirty:
                channel.flush()


def _ensure_flusher() -> None:
    global _flusher_started
    if _flusher_started:
        return
    with _flusher_lock:
        if not _flusher_started:
            threading.Thread(target=_flusher_loop, name="dagster-pipes-stream-flusher", daemon=True).start()
            _flusher_started = True


class PipesStreamMessageWriterChannel(LineChannel):
    """Writes one message per line to a text stream (for example ``sys.stderr``).

    Writes are buffered by the stream and flushed at most every 0.1 s (and on close), which keeps
    throughput at the level of unflushed writes while bounding what a SIGKILL can lose.
    """

    def __init__(self, stream: TextIO | IO[str]):
        self._stream = stream
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._dirty = False
        # A line-buffered stream (sys.stderr, a tty) already flushes at every newline.
        self._self_flushing = bool(getattr(stream, "line_buffering", False))

    def write_line(self, line: str) -> None:
        """Write ``line`` and a newline to the stream."""
        with self._lock:
            self._stream.write(line + "\n")
            if self._self_flushing:
                return
            now = time.monotonic()
            if now - self._last_flush >= _STREAM_FLUSH_INTERVAL:
                self._flush_locked(now)
            elif not self._dirty:
                self._dirty = True
                _dirty_streams.add(self)
                _ensure_flusher()

    def _flush_locked(self, now: float) -> None:
        self._last_flush = now
        self._dirty = False
        try:
            self._stream.flush()
        except (OSError, ValueError):  # closed stream at interpreter exit
            pass

    def flush(self) -> None:
        """Flush the underlying stream."""
        with self._lock:
            self._flush_locked(time.monotonic())


class PipesBufferedStreamMessageWriterChannel(LineChannel):
    """Keeps messages in memory and writes them all to a stream on ``flush()`` (used by AWS Lambda).

    ``flush()`` runs when the writer closes, on SIGTERM and at interpreter exit, so the messages
    land at the tail of the stream as the orchestrator's log-tail readers expect.
    """

    def __init__(self, stream: TextIO | IO[str]):
        self._stream = stream
        self._buffer: list[str] = []
        self._lock = threading.Lock()

    def write_line(self, line: str) -> None:
        """Buffer ``line`` until the next flush."""
        with self._lock:
            self._buffer.append(line)

    def flush(self) -> None:
        """Write every buffered message to the stream, one per line."""
        with self._lock:
            lines, self._buffer = self._buffer, []
            if lines:
                self._stream.write("".join(line + "\n" for line in lines))
            try:
                self._stream.flush()
            except (OSError, ValueError):
                pass
