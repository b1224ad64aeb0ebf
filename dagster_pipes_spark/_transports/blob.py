"""Chunked ("blob store") message channels and writers: every object store and workspace file store
writes through :class:`PipesBlobStoreMessageWriterChannel`.

A channel knows one contract, :class:`~.sinks.ChunkSink` (``put_chunk(index, data)``, where chunks go),
given as ``sink=``. The stock library's way — a subclass implementing ``upload_messages_chunk`` —
works too: the channel then wraps itself in an :class:`~.sinks.UploadMethodSink`. Pacing, flushing,
retrying and loss handling are :mod:`.delivery`'s, under one :class:`~.options.DeliveryOptions`.
Messages are serialized in the caller's thread, so a bad payload raises at the call site.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import IO, Any, TypeVar

from .._channels import LineChannel
from .._errors import DagsterPipesError
from .._protocol import PipesMessage, PipesParams
from .._writers import INCLUDE_STDIO_IN_MESSAGES_KEY, PipesMessageWriter, attach_stdio_capture
from .delivery import READER_DRAIN_BUDGET, READER_SLACK_SECONDS, ChunkDelivery
from .options import DEFAULT_FLUSH_TIMEOUT, DeliveryOptions, DeliverySettings, Forwarded, OnMessageLoss
from .pending import DEFAULT_MAX_MEMORY_BYTES
from .retry import DEFAULT_RETRY_POLICY, RetryPolicy
from .sinks import ChunkPayload, ChunkSink, DirectorySink, UploadMethodSink, payload_bytes

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


class PipesBlobStoreMessageWriterChannel(DeliverySettings, LineChannel):
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
        cls = PipesBlobStoreMessageWriterChannel
        uploads_itself = type(self).upload_messages_chunk is not cls.upload_messages_chunk
        if sink is None and not uploads_itself:
            raise DagsterPipesError(
                f"{type(self).__name__} has nowhere to put chunks: pass sink= (a ChunkSink) or implement "
                "upload_messages_chunk(payload, index) in a subclass."
            )
        self.sink = sink
        # What delivery puts chunks into: the sink, unless this subclass uploads or names them itself.
        named_itself = type(self).destination is not cls.destination
        target = UploadMethodSink(self) if uploads_itself or named_itself or sink is None else sink
        self._delivery = ChunkDelivery(target, self.delivery, max_chunk_bytes=max_chunk_bytes)

    # ----------------------------------------------------------------------------- public API

    @property
    def max_chunk_bytes(self) -> int | None:
        """The most bytes one chunk may hold (None: unlimited)."""
        return self._delivery.max_chunk_bytes

    @max_chunk_bytes.setter
    def max_chunk_bytes(self, value: int | None) -> None:
        self._delivery.max_chunk_bytes = value

    uploaded_chunks = Forwarded[int]("_delivery", "Chunks delivered so far.")
    upload_calls = Forwarded[int]("_delivery", "Upload attempts so far (retries included).")
    delivered_messages = Forwarded[int]("_delivery", "Messages delivered so far.")
    upload_period = Forwarded[float](
        "_delivery", "Minimum seconds between two uploads while the run is alive."
    )

    def destination(self) -> str:
        """Where chunks go, for messages (the sink's location; subclasses name their path)."""
        return self.sink.destination if self.sink is not None else type(self).__name__

    def write_line(self, line: str) -> None:
        """Queue one serialized message for upload."""
        self._delivery.append(line)

    def flush_messages(self) -> Sequence[PipesMessage]:
        """Remove and return every message not yet uploaded (stock-compatible helper)."""
        return [json.loads(line) for line in self._delivery.take_all()]

    @property
    def pending_stats(self) -> dict[str, int]:
        """Pending messages and where they are: ``messages``, ``memory_bytes``, ``spill_bytes``,
        the peaks of both, and ``dropped_logs`` (dropped because memory and disk were full)."""
        return self._delivery.pending_stats()

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        """Upload one chunk (newline-separated JSON messages) as chunk number ``index`` (one attempt):
        to the sink, unless a subclass does it itself."""
        assert self.sink is not None  # checked when the channel was made
        self.sink.put_chunk(index, payload_bytes(payload))

    @contextmanager
    def buffered_upload_loop(self) -> Iterator[None]:
        """Run the background uploader for the duration of the block, then flush everything."""
        self._delivery.start()
        try:
            yield
        finally:
            self.close()

    def flush(self) -> None:
        """Upload everything pending now, ignoring pacing; wait at most ``flush_timeout`` seconds."""
        self._delivery.flush()

    def close(self) -> None:
        """Deliver what is left within ``flush_timeout`` (idempotent), then stop the uploader.

        Returns by the deadline whatever storage does; messages that could not be delivered are
        counted on stderr with the path and the reason, and if a report was among them (with
        ``on_message_loss="raise"``, the default) :class:`DagsterPipesMessageLossError` is raised.
        """
        self._delivery.close()


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


class PipesBlobStoreMessageWriter(DeliverySettings, PipesMessageWriter[T_BlobStoreMessageWriterChannel]):
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
