"""Where a chunk channel puts its chunks: the one-method :class:`ChunkSink` interface (the one contract
delivery knows), the payload a chunk travels as, the sinks for a directory and for a
:class:`~.file_store.FileStore`, and :class:`UploadMethodSink`, the adapter that makes a channel
subclass implementing ``upload_messages_chunk`` (the stock library's way) a sink.

A sink makes one attempt per call and raises the package's storage errors (:mod:`.errors`);
:mod:`.delivery` paces, retries, bounds and counts. The object-store sinks (S3, GCS, Azure) live with
their loaders in :mod:`.object_stores`.
"""

from __future__ import annotations

import io
import os
from typing import IO, Protocol, cast, runtime_checkable

from .errors import translate_common, translating
from .file_store import FileStore, write_local_file


@runtime_checkable
class ChunkSink(Protocol):
    """Publishes message chunks: ``put_chunk(index, data)`` stores chunk ``index`` (``{index}.json``
    under the sink's location) whole, in one attempt. ``destination`` names the location for
    messages."""

    @property
    def destination(self) -> str:
        """Where the chunks go, for messages."""

    def put_chunk(self, index: int, data: bytes) -> None:
        """Store ``data`` (newline-separated JSON messages) as chunk ``index``."""


class ChunkUploader(Protocol):
    """A channel in the stock library's shape: it uploads a chunk itself and names where to."""

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload ``payload`` as chunk ``index`` (one attempt)."""

    def destination(self) -> str:
        """Where the chunks go, for messages."""


class UploadMethodSink:
    """A :class:`ChunkSink` over a channel's own ``upload_messages_chunk``: each chunk is handed over
    as a :class:`ChunkPayload` (a text stream, as the stock library's ``StringIO``)."""

    def __init__(self, channel: ChunkUploader) -> None:
        self.channel = channel

    @property
    def destination(self) -> str:
        """What the channel names."""
        return self.channel.destination()

    def put_chunk(self, index: int, data: bytes) -> None:
        """Call the channel's ``upload_messages_chunk`` with chunk ``index``."""
        self.channel.upload_messages_chunk(cast(IO, ChunkPayload(data)), index)


class DirectorySink:
    """Chunks as files ``{path}/{index}.json`` on a local or FUSE-mounted filesystem, each written to
    a hidden temporary file and renamed into place."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.destination = path
        self._made = False

    def put_chunk(self, index: int, data: bytes) -> None:
        """Write chunk ``index`` atomically."""
        with translating(translate_common):
            if not self._made:  # once, not per chunk
                os.makedirs(self.path, exist_ok=True)
                self._made = True
            write_local_file(os.path.join(self.path, f"{index}.json"), data)


class FileStoreSink:
    """Chunks as files ``{path}/{index}.json`` of a :class:`~.file_store.FileStore` (which publishes
    each atomically and translates its own errors)."""

    def __init__(self, store: FileStore, path: str) -> None:
        self.store = store
        self.path = path.rstrip("/")

    @property
    def destination(self) -> str:
        """The directory and the backend."""
        return f"{self.path} via {self.store.describe()}"

    def put_chunk(self, index: int, data: bytes) -> None:
        """Publish chunk ``index``."""
        self.store.write_bytes(f"{self.path}/{index}.json", data)


class ChunkPayload(io.TextIOBase):
    """What ``upload_messages_chunk`` receives: a read-only text stream over a chunk (as the stock
    library's ``StringIO``), which also hands over its bytes as they are (:attr:`data`, used by
    :func:`payload_bytes`), so a chunk of tens of megabytes is neither decoded nor copied per attempt."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._text: str | None = None
        self._pos = 0

    def _value(self) -> str:
        if self._text is None:
            self._text = self.data.decode("utf-8")
        return self._text

    def readable(self) -> bool:
        """Always."""
        return True

    def read(self, size: int | None = -1) -> str:
        """Up to ``size`` characters (all that is left by default)."""
        text = self._value()
        start = self._pos
        end = len(text) if size is None or size < 0 else min(len(text), start + size)
        self._pos = end
        return text if (start, end) == (0, len(text)) else text[start:end]

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        """One line, with its newline."""
        text = self._value()
        nl = text.find("\n", self._pos)
        end = len(text) if nl < 0 else nl + 1
        if size is not None and size >= 0:
            end = min(end, self._pos + size)
        line, self._pos = text[self._pos : end], end
        return line

    def getvalue(self) -> str:
        """The whole payload (as ``io.StringIO.getvalue``)."""
        return self._value()

    def seekable(self) -> bool:
        """Seeking works (positions are characters)."""
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move to ``offset`` (from the start, the current position or the end)."""
        size = len(self._value())
        base = {0: 0, 1: self._pos, 2: size}[whence]
        self._pos = max(0, min(size, base + offset))
        return self._pos

    def tell(self) -> int:
        """The position, in characters."""
        return self._pos


def payload_bytes(payload: IO) -> bytes:
    """The bytes of a chunk payload: as they are from a :class:`ChunkPayload` (no copy), else read
    and encoded (a payload given by other code)."""
    data = getattr(payload, "data", None)
    if isinstance(data, bytes):
        return data
    read = payload.read()
    return read.encode("utf-8") if isinstance(read, str) else bytes(read)
