"""The context's logger (``pipes.log``): each record becomes one ``log`` message with its level.

Imported on the first ``pipes.log`` (so ``import`` and ``open_dagster_pipes`` do not load
``logging``). While nothing else observes the records -- only the context's own handler, no filters,
no parent, the standard record factory, no ``extra`` -- a call goes straight to the message: the
same text (``record.getMessage()``) and level, without building a ``LogRecord`` or looking up the
caller's frame. Anything else takes ``logging``'s own path, unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Literal

#: Sends one protocol message (the context's ``_write_message``).
Send = Callable[[Literal["log"], Mapping[str, Any]], None]

# Level names the orchestrator accepts; anything else (custom levels, NOTSET) is mapped to the nearest.
_ACCEPTED_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "FATAL"})


def level_name(levelno: int, levelname: str) -> str:
    """The level name sent for a record of ``levelno`` named ``levelname``."""
    if levelname in _ACCEPTED_LEVELS:
        return levelname
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG"


class PipesLoggerHandler(logging.Handler):
    """Sends each record it handles as a ``log`` message."""

    def __init__(self, send: Send) -> None:
        super().__init__()
        self._send = send

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record``'s message and level."""
        level = level_name(record.levelno, record.levelname)
        self._send("log", {"message": record.getMessage(), "level": level})


class PipesLogger(logging.Logger):
    """Streams records to Dagster with their level (a root-less logger: DEBUG is sent too)."""

    def __init__(self, send: Send) -> None:
        super().__init__(name="dagster-pipes")
        self._pipes_handler = PipesLoggerHandler(send)
        self.addHandler(self._pipes_handler)

    def _log(  # the signature of Logger._log on every supported Python
        self,
        level: int,
        msg: object,
        args: Any,
        exc_info: Any = None,
        extra: Mapping[str, object] | None = None,
        stack_info: bool = False,
        stacklevel: int = 1,
    ) -> None:
        handler = self._pipes_handler
        if (
            extra is None
            and self.handlers == [handler]
            and not self.filters
            and not handler.filters
            and self.parent is None
            and level >= handler.level
            and logging.getLogRecordFactory() is logging.LogRecord
        ):
            if self.disabled:
                return
            name = level_name(level, logging.getLevelName(level))
            handler._send("log", {"message": _message(msg, args), "level": name})
            return
        # One frame more than logging expects (this one): the caller it names stays the user's.
        super()._log(level, msg, args, exc_info, extra, stack_info, stacklevel + 1)


def _message(msg: object, args: Any) -> str:
    """``LogRecord(msg=msg, args=args).getMessage()`` without the record."""
    if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        args = args[0]  # as LogRecord does: a single mapping argument formats by name
    text = str(msg)
    if args:
        text = text % args
    return text
