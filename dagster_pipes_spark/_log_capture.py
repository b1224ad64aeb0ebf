"""Capture of the process's stdout/stderr, forwarded as ``log_external_stream`` messages.

Differences from the stock capture (same class names and hooks):

* no ``tee`` subprocess: file descriptor 1/2 is redirected into a pipe drained by a thread that
  copies everything to the original stream (so driver logs stay intact) and buffers it for Dagster;
* stdout and stderr are captured separately (stderr text does not leak into the stdout stream);
* when ``sys.stdout``/``sys.stderr`` is not backed by the file descriptor (a Databricks or Jupyter
  notebook's ``OutStream``), Python-level writes are teed as well, so ``print()`` is forwarded;
* shutdown is bounded and fast (no fixed sleeps), and the capture is stopped before ``closed``.
"""

from __future__ import annotations

import codecs
import os
import select
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from queue import Queue
from typing import Any, Generic, Literal, TextIO, TypeVar, cast

from ._channels import PipesMessageWriterChannel
from ._protocol import PipesExtras, PipesLogWriterOpenedData, PipesParams, make_message

StdStream = Literal["stdout", "stderr"]


class ExcThread(threading.Thread):
    """A thread that records an exception raised by its target and reports it on ``join``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exception: BaseException | None = None

    def run(self) -> None:
        """Run the target, recording any exception."""
        try:
            super().run()
        except BaseException as e:  # noqa: BLE001 - reported on join
            self.exception = e

    def join(self, timeout: float | None = None) -> None:
        """Join, then write a recorded exception to stderr."""
        super().join(timeout)
        if self.exception is not None:
            _raw_write(2, f"[dagster-pipes] {self.name} failed: {self.exception!r}\n")


def _raw_write(fd: int, text: str) -> None:
    data = text.encode("utf-8", "replace")
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass


class PipesLogWriterChannel(ABC):
    """Captures logs (for example stdout/stderr) while its ``capture()`` block runs."""

    @abstractmethod
    @contextmanager
    def capture(self) -> Iterator[None]:
        """Capture logs for the duration of the block."""


T_LogChannel = TypeVar("T_LogChannel", bound=PipesLogWriterChannel)


class PipesLogWriter(ABC, Generic[T_LogChannel]):
    """Opens log capture for a Pipes session (stdout/stderr or other log sources)."""

    LOG_WRITER_KEY = "log_writer"

    @abstractmethod
    @contextmanager
    def open(self, params: PipesParams) -> Iterator[None]:
        """Capture logs for the duration of the block."""

    def get_opened_payload(self) -> PipesLogWriterOpenedData:
        """Information about this log writer for the ``opened`` message."""
        return {"extras": self.get_opened_extras()}

    def get_opened_extras(self) -> PipesExtras:
        """Extras for the ``opened`` message (none by default)."""
        return {}


class _TeeStream:
    """Wraps a Python text stream: writes go to it and to a capture callback."""

    def __init__(self, wrapped: Any, sink: Any) -> None:
        self._wrapped = wrapped
        self._sink = sink

    def write(self, s: str) -> int:
        n = self._wrapped.write(s)
        if s:
            self._sink(s)
        return cast(int, n) if n is not None else len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class PipesStdioLogWriterChannel(PipesLogWriterChannel):
    """Captures one standard stream of this process and hands text chunks to :meth:`write_chunk`."""

    WAIT_FOR_TEE_SECONDS: float = 1.0  # kept for compatibility; shutdown does not sleep for it

    def __init__(self, stream: StdStream, interval: float, name: str):
        self.stream: StdStream = stream
        self.interval = interval
        self._name = name
        self.error_messages: Queue[str] = Queue()
        self._buffer: list[str] = []
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """A readable name for this channel."""
        return self._name

    @property
    def stdio(self) -> TextIO:
        """The original (``sys.__stdout__``/``sys.__stderr__``) stream for this channel."""
        if self.stream == "stdout":
            return cast(TextIO, sys.__stdout__)
        if self.stream == "stderr":
            return cast(TextIO, sys.__stderr__)
        raise ValueError(f"stream must be 'stdout' or 'stderr', got {self.stream}")

    @abstractmethod
    def write_chunk(self, chunk: str) -> None:
        """Deliver one chunk of captured text."""

    def handler(
        self, path: str, capturing_started: threading.Event, capturing_should_stop: threading.Event
    ) -> None:
        """Follow the file at ``path`` and deliver what is appended to it through :meth:`write_chunk`.

        The stock library's capture-thread target, with its signature and semantics: read every
        ``interval`` seconds, set ``capturing_started`` after the first read, and return
        ``WAIT_FOR_TEE_SECONDS`` after ``capturing_should_stop`` is set (so late writes still arrive).
        Errors are queued on ``error_messages``. This class's own :meth:`capture` drains a pipe
        instead of a file and does not use it.
        """
        with open(path, encoding="utf-8") as input_file:
            stop_seen_at: float | None = None
            while stop_seen_at is None or time.monotonic() - stop_seen_at <= self.WAIT_FOR_TEE_SECONDS:
                try:
                    chunk = input_file.read()
                    if chunk:
                        self.write_chunk(chunk)
                except Exception as e:  # noqa: BLE001 - reported through error_messages, as stock does
                    self.error_messages.put(f"Exception in thread {self.name}:\n{e}")
                capturing_started.set()
                if stop_seen_at is None and capturing_should_stop.is_set():
                    stop_seen_at = time.monotonic()
                time.sleep(self.interval)

    def _append(self, text: str) -> None:
        with self._lock:
            self._buffer.append(text)

    def _emit(self, restore_fd: int | None) -> None:
        with self._lock:
            text = "".join(self._buffer)
            self._buffer.clear()
        if text:
            try:
                self.write_chunk(text)
            except Exception as e:  # noqa: BLE001 - never break the user's output
                self.error_messages.put(repr(e))
                if restore_fd is not None:
                    _raw_write(restore_fd, f"[dagster-pipes] could not forward {self.stream}: {e!r}\n")

    @contextmanager
    def capture(self) -> Iterator[None]:
        """Capture the stream (file descriptor and, if replaced, the Python object) during the block."""
        with ExitStack() as stack:
            saved_fd = self._capture_fd(stack)
            self._capture_python_stream(stack)
            stop = threading.Event()
            if saved_fd is None:  # no fd to drain: just emit periodically
                emitter = ExcThread(
                    target=self._emit_loop, args=(stop,), name=f"{self.name}-emitter", daemon=True
                )
                emitter.start()

                def stop_emitter() -> None:
                    stop.set()
                    emitter.join(timeout=5)

                stack.callback(stop_emitter)
            try:
                yield
            finally:
                self._flush_python_streams()
        self._emit(None)

    # -- python-level tee (notebooks) --------------------------------------------------------

    def _capture_python_stream(self, stack: ExitStack) -> None:
        current = sys.stdout if self.stream == "stdout" else sys.stderr
        original = self.stdio
        if current is None or current is original or isinstance(current, _TeeStream):
            return
        try:  # a replacement that still writes to the same fd is already captured there
            if original is not None and current.fileno() == original.fileno():
                return
        except (OSError, ValueError, AttributeError):
            pass
        tee = _TeeStream(current, self._append)
        setattr(sys, self.stream, tee)

        def restore() -> None:
            if getattr(sys, self.stream) is tee:
                setattr(sys, self.stream, current)

        stack.callback(restore)

    def _flush_python_streams(self) -> None:
        for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if s is not None:
                    s.flush()
            except (OSError, ValueError, AttributeError):
                pass

    def _emit_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self._emit(None)

    # -- fd-level capture --------------------------------------------------------------------

    def _capture_fd(self, stack: ExitStack) -> int | None:
        stdio = self.stdio
        try:
            fd = stdio.fileno() if stdio is not None else -1
        except (OSError, ValueError, AttributeError):
            fd = -1
        if fd < 0 or not hasattr(os, "pipe"):
            return None
        self._flush_python_streams()
        saved = os.dup(fd)
        read_end, write_end = os.pipe()
        os.dup2(write_end, fd)
        os.close(write_end)
        stop = threading.Event()
        thread = ExcThread(
            target=self._drain, args=(read_end, saved, stop), name=f"{self.name}-drain", daemon=True
        )
        thread.start()

        def restore() -> None:
            self._flush_python_streams()
            os.dup2(saved, fd)  # our copy of the pipe's write end is gone: the drain sees EOF
            stop.set()
            thread.join(timeout=5)
            os.close(read_end)
            os.close(saved)

        stack.callback(restore)
        return saved

    def _drain(self, read_end: int, saved: int, stop: threading.Event) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        next_emit = time.monotonic() + self.interval
        while True:
            timeout = max(0.0, next_emit - time.monotonic())
            if stop.is_set():
                timeout = 0.05  # after restore: drain what is left, do not wait for stray writers
            ready, _, _ = select.select([read_end], [], [], timeout)
            if ready:
                data = os.read(read_end, 65536)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    try:
                        view = view[os.write(saved, view) :]
                    except OSError:
                        break
                self._append(decoder.decode(data))
            elif stop.is_set():
                break
            if time.monotonic() >= next_emit:
                self._emit(saved)
                next_emit = time.monotonic() + self.interval
        tail = decoder.decode(b"", final=True)
        if tail:
            self._append(tail)


class PipesStdioLogWriter(PipesLogWriter[T_LogChannel]):
    """Captures stdout and stderr; subclasses say where chunks go via :meth:`make_channel`."""

    @abstractmethod
    def make_channel(self, params: PipesParams, stream: StdStream) -> T_LogChannel:
        """Build the channel for one stream."""

    @contextmanager
    def open(self, params: PipesParams) -> Iterator[None]:
        """Capture both streams for the duration of the block."""
        with self.make_channel(params, "stdout").capture(), self.make_channel(params, "stderr").capture():
            yield


class PipesDefaultLogWriterChannel(PipesStdioLogWriterChannel):
    """Forwards captured text through the message channel as ``log_external_stream`` messages."""

    def __init__(
        self, message_channel: PipesMessageWriterChannel, stream: StdStream, name: str, interval: float
    ):
        self.message_channel = message_channel
        super().__init__(interval=interval, stream=stream, name=name)

    def write_chunk(self, chunk: str) -> None:
        """Send ``chunk`` (split if the transport caps chunk sizes)."""
        limit = getattr(self.message_channel, "max_chunk_bytes", None)
        for piece in _split_for_limit(chunk, limit):
            self.message_channel.write_message(
                make_message("log_external_stream", {"stream": self.stream, "text": piece, "extras": {}})
            )


def _split_for_limit(text: str, limit: int | None) -> Iterator[str]:
    if limit is None:
        yield text
        return
    budget = max(1024, (limit - 256) // 6)  # worst case: every char escaped as \uXXXX
    for start in range(0, len(text), budget):
        yield text[start : start + budget]


class PipesDefaultLogWriter(PipesStdioLogWriter[PipesDefaultLogWriterChannel]):
    """Captures stdout/stderr and sends them through a message channel."""

    def __init__(self, message_channel: PipesMessageWriterChannel, interval: float = 1):
        self.interval = interval
        self._message_channel = message_channel
        super().__init__()

    @property
    def message_channel(self) -> PipesMessageWriterChannel:
        """The channel captured text is sent through."""
        return self._message_channel

    def make_channel(self, params: PipesParams, stream: StdStream) -> PipesDefaultLogWriterChannel:
        """Build the forwarding channel for ``stream``."""
        return PipesDefaultLogWriterChannel(
            message_channel=self.message_channel,
            stream=stream,
            name=f"PipesDefaultLogWriterChannel({stream})",
            interval=self.interval,
        )


class PipesStdioFileLogWriterChannel(PipesStdioLogWriterChannel):
    """Appends captured text to a file."""

    def __init__(self, output_path: str, stream: StdStream, name: str, interval: float):
        self.output_path = output_path
        super().__init__(interval=interval, stream=stream, name=name)

    def write_chunk(self, chunk: str) -> None:
        """Append ``chunk`` to the output file."""
        with open(self.output_path, "a", encoding="utf-8") as f:
            f.write(chunk)


class PipesStdioFileLogWriter(PipesStdioLogWriter[PipesStdioFileLogWriterChannel]):
    """Writes stdout and stderr to ``{logs_dir}/stdout`` and ``{logs_dir}/stderr``."""

    LOGS_DIR_KEY = "logs_dir"

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        super().__init__()

    def make_channel(self, params: PipesParams, stream: StdStream) -> PipesStdioFileLogWriterChannel:
        """Build the file channel for ``stream`` (creating ``logs_dir``)."""
        logs_dir = params[self.LOGS_DIR_KEY]
        os.makedirs(logs_dir, exist_ok=True)
        path = os.path.join(logs_dir, stream)
        return PipesStdioFileLogWriterChannel(
            output_path=path,
            stream=stream,
            name=f"PipesStdioFileLogWriterChannel({stream}->{path})",
            interval=self.interval,
        )
