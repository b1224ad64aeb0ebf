"""Message writers: open a channel from the orchestrator's params, optionally capturing stdio."""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._channels import (
    LineChannel,
    PipesBufferedStreamMessageWriterChannel,
    PipesFileMessageWriterChannel,
    PipesMessageWriterChannel,
    PipesStreamMessageWriterChannel,
    serialize_message,
)
from ._errors import DagsterPipesError
from ._protocol import PipesExtras, PipesMessage, PipesOpenedData, PipesParams, make_message

if TYPE_CHECKING:
    import logging

T_MessageChannel = TypeVar("T_MessageChannel", bound=PipesMessageWriterChannel)

INCLUDE_STDIO_IN_MESSAGES_KEY = "include_stdio_in_messages"


class PipesMessageWriter(ABC, Generic[T_MessageChannel]):
    """Opens a channel for writing messages back to Dagster from the orchestrator's params."""

    @abstractmethod
    @contextmanager
    def open(self, params: PipesParams) -> Iterator[T_MessageChannel]:
        """A context manager yielding the channel built from ``params``."""

    def get_opened_payload(self) -> PipesOpenedData:
        """The ``opened`` payload: ``{"extras": get_opened_extras()}`` (do not override)."""
        return {"extras": self.get_opened_extras()}

    def get_opened_extras(self) -> PipesExtras:
        """Writer-specific information sent to the orchestrator in ``opened`` (none by default)."""
        return {}


def attach_stdio_capture(channel: LineChannel, stack: ExitStack, params: PipesParams) -> None:
    """Forward stdout/stderr through ``channel`` as ``log_external_stream`` until the context closes.

    Capture is registered on ``stack`` and on the channel (:meth:`LineChannel.attach_capture`), so
    the context stops it *before* sending ``closed`` (the orchestrator stops reading at ``closed``).
    """
    from ._log_capture import PipesDefaultLogWriter, PipesLogWriter

    log_params = params.get(PipesLogWriter.LOG_WRITER_KEY, {})
    capture = ExitStack()
    capture.enter_context(PipesDefaultLogWriter(message_channel=channel).open(log_params))
    stack.callback(capture.close)
    channel.attach_capture(capture.close)


class PipesDefaultMessageWriter(PipesMessageWriter[PipesMessageWriterChannel]):
    """Writes messages to a file (``path``) or to stdout/stderr (``stdio`` / ``buffered_stdio``).

    With ``path`` and ``include_stdio_in_messages``, stdout and stderr are also forwarded as
    ``log_external_stream`` messages.
    """

    FILE_PATH_KEY = "path"
    STDIO_KEY = "stdio"
    BUFFERED_STDIO_KEY = "buffered_stdio"
    STDERR = "stderr"
    STDOUT = "stdout"
    INCLUDE_STDIO_IN_MESSAGES_KEY = INCLUDE_STDIO_IN_MESSAGES_KEY

    @contextmanager
    def open(self, params: PipesParams) -> Iterator[PipesMessageWriterChannel]:
        """Open the channel selected by ``params``."""
        with ExitStack() as stack:
            if self.FILE_PATH_KEY in params:
                file_channel = PipesFileMessageWriterChannel(
                    _str_param(params, self.FILE_PATH_KEY, type(self))
                )
                stack.callback(file_channel.close)
                if params.get(self.INCLUDE_STDIO_IN_MESSAGES_KEY):
                    attach_stdio_capture(file_channel, stack, params)
                yield file_channel
            elif self.STDIO_KEY in params:
                stream = _stdio(params[self.STDIO_KEY], self.STDIO_KEY)
                channel = PipesStreamMessageWriterChannel(stream)
                stack.callback(channel.flush)
                yield channel
            elif self.BUFFERED_STDIO_KEY in params:
                stream = _stdio(params[self.BUFFERED_STDIO_KEY], self.BUFFERED_STDIO_KEY)
                buffered = PipesBufferedStreamMessageWriterChannel(stream)
                stack.callback(buffered.flush)
                yield buffered
            else:
                raise DagsterPipesError(
                    f'Invalid params for {type(self).__name__}, expected key "path" or "std", received {dict(params)}. '
                    "The orchestration side's message reader may expect a different message writer: pass it as "
                    "`message_writer` to `open_dagster_pipes`."
                )


def _stdio(value: Any, key: str) -> Any:
    if value == PipesDefaultMessageWriter.STDERR:
        return sys.stderr
    if value == PipesDefaultMessageWriter.STDOUT:
        return sys.stdout
    raise DagsterPipesError(
        f'Invalid value for key "std", expected "stderr" or "stdout" but received {value!r} (key `{key}`).'
    )


def _str_param(params: PipesParams, key: str, owner: type) -> str:
    if key not in params:
        raise DagsterPipesError(
            f"Invalid params for {owner.__name__}: missing key `{key}` (received keys {sorted(params)}). "
            "The orchestrator side's message reader or context injector probably does not match: pass the "
            "matching loader/writer to `open_dagster_pipes`."
        )
    value = params[key]
    if not isinstance(value, str):
        raise DagsterPipesError(
            f"Invalid params for {owner.__name__}: `{key}` must be a string, got {type(value).__name__}."
        )
    return value


class PipesPrefectLogsMessageWriter(PipesMessageWriter["PipesPrefectLogsMessageWriterChannel"]):
    """Emits each message as one INFO record on a Prefect-visible logger."""

    PREFECT_LOGS_KEY = "prefect_logs"
    MAX_MESSAGE_BYTES_KEY = "max_message_bytes"
    LOGGER_NAME = "prefect.flow_runs.dagster_pipes"
    DEFAULT_MAX_MESSAGE_BYTES = 900_000

    @contextmanager
    def open(self, params: PipesParams) -> Iterator[PipesPrefectLogsMessageWriterChannel]:
        """Open the logger channel (requires ``prefect_logs`` in params)."""
        if not params.get(self.PREFECT_LOGS_KEY):
            raise DagsterPipesError(
                f"Invalid params for {type(self).__name__}: expected `{self.PREFECT_LOGS_KEY}: true`."
            )
        max_bytes = int(params.get(self.MAX_MESSAGE_BYTES_KEY) or self.DEFAULT_MAX_MESSAGE_BYTES)
        import logging

        yield PipesPrefectLogsMessageWriterChannel(logging.getLogger(self.LOGGER_NAME), max_bytes)


class PipesPrefectLogsMessageWriterChannel(PipesMessageWriterChannel):
    """Logs each message as JSON; oversize messages are replaced by an explanatory message."""

    def __init__(self, logger: logging.Logger, max_message_bytes: int):
        self._logger = logger
        self._max = max_message_bytes

    def write_message(self, message: PipesMessage) -> None:
        """Log ``message`` (or its oversize replacement) at INFO."""
        line = serialize_message(message)
        size = len(line.encode("utf-8"))
        if size > self._max:
            line = serialize_message(self._oversize_replacement(message, size))
        self._logger.info(line)

    def _oversize_replacement(self, message: PipesMessage, size: int) -> PipesMessage:
        method = message.get("method")
        text = f"Dropped a `{method}` Pipes message of {size} bytes (limit {self._max} bytes)."
        if method == "closed":  # keep the close itself, and the name of what ended the run
            params = message.get("params") or {}
            exc = params.get("exception")
            return make_message(
                "closed",
                {
                    "exception": {
                        "message": text,
                        "stack": [],
                        "name": exc.get("name") if isinstance(exc, dict) else None,
                        "cause": None,
                        "context": None,
                    }
                },
            )
        return make_message("log", {"message": text, "level": "ERROR"})
