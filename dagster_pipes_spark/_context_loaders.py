"""Context loaders: read the context payload from where the orchestrator's injector put it."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ._errors import DagsterPipesError, UnreadableAnswerError
from ._protocol import PipesContextData, PipesParams

_REQUIRED_KEYS = ("run_id",)


class PipesContextLoader(ABC):
    """Loads the context payload injected by the orchestrator."""

    @abstractmethod
    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """A context manager yielding the context data located by ``params``."""


def parse_context(text: str | bytes, where: str) -> PipesContextData:
    """Parse and sanity-check a context payload, naming ``where`` it came from on failure."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DagsterPipesError(f"The Pipes context at {where} is not valid JSON ({e}).") from e
    return check_context(data, where)


def parse_downloaded_context(data: bytes, where: str) -> PipesContextData:
    """:func:`parse_context` for a payload just downloaded from storage: one that does not parse is
    an :class:`UnreadableAnswerError` (the answer was garbled on the way; reading again may succeed)."""
    try:
        return parse_context(data, where)
    except DagsterPipesError as e:
        raise UnreadableAnswerError(str(e)) from e


def check_context(data: Any, where: str) -> PipesContextData:
    """Check that ``data`` looks like a context payload."""
    if not isinstance(data, Mapping):
        raise DagsterPipesError(
            f"The Pipes context at {where} must be a JSON object, got {type(data).__name__}."
        )
    missing = [k for k in _REQUIRED_KEYS if k not in data]
    if missing:
        raise DagsterPipesError(
            f"The Pipes context at {where} lacks required keys {missing}: it was not written by a Dagster "
            "context injector (or the loader does not match the injector)."
        )
    return data  # type: ignore[return-value]


class PipesDefaultContextLoader(PipesContextLoader):
    """Loads the context from a local file (``path``) or inline in the params (``data``)."""

    FILE_PATH_KEY = "path"
    DIRECT_KEY = "data"

    @contextmanager
    def load_context(self, params: PipesParams) -> Iterator[PipesContextData]:
        """Yield the context from ``path`` or ``data``."""
        if self.FILE_PATH_KEY in params:
            path = params[self.FILE_PATH_KEY]
            if not isinstance(path, str):
                raise DagsterPipesError(f"Invalid params for {type(self).__name__}: `path` must be a string.")
            try:
                with open(path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError as e:
                raise DagsterPipesError(
                    f"The Pipes context file {path!r} does not exist. It is written by the orchestrator just "
                    "before launch and deleted after the run: run this process from Dagster, and make sure "
                    "the path is reachable here (for remote storage use the matching context loader)."
                ) from e
            except OSError as e:
                raise DagsterPipesError(f"Cannot read the Pipes context file {path!r}: {e}.") from e
            yield parse_context(text, repr(path))
        elif self.DIRECT_KEY in params:
            yield check_context(params[self.DIRECT_KEY], "params `data`")
        else:
            raise DagsterPipesError(
                f'Invalid params for {type(self).__name__}, expected key "path" or "data", received {dict(params)}'
            )
