"""The package's own storage errors, and the translation of other code's errors into them.

Every backend translates what its library raises at its boundary (databricks-sdk classes in
:mod:`.sdk`, botocore / Google / Azure shapes in :mod:`.object_stores`, Java exception text in
:mod:`.dbutils`, ``OSError`` numbers in :mod:`.fuse`) into one family:

* :class:`TransientStorageError` — retrying may help (HTTP 408, 429, 5xx, timeouts, connection
  resets, I/O errors, an answer that could not be decoded);
* :class:`PermanentStorageError` — retrying cannot help (other 4xx, permission errors, programming
  errors);
* :class:`StorageNotFoundError` — the path does not exist (a permanent error).

The retry policy (:mod:`.retry`) classifies this family only. Code the package does not own — a
channel subclass's ``upload_messages_chunk``, a ``FileStore`` passed in — is translated by
:func:`translate_foreign`, which knows the conventions shared by HTTP libraries (a ``status_code``,
``status`` or ``code`` attribute, a ``Retry-After`` header) and the standard library's errors.
"""

from __future__ import annotations

import binascii
import errno
import functools
import http.client
import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal, TypeVar, cast

from .._errors import DagsterPipesError, UnreadableAnswerError

FailureKind = Literal["transient", "permanent", "not_found"]

_F = TypeVar("_F", bound=Callable[..., Any])


class StorageCallError(Exception):
    """One storage call failed: what it means (:attr:`kind`), the HTTP status if any, how long the
    server asked to wait, and the error the storage library raised (:attr:`origin`)."""

    kind: ClassVar[FailureKind] = "transient"

    def __init__(
        self,
        message: str = "",
        *,
        origin: BaseException | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or (str(origin) if origin is not None else ""))
        #: the error the storage library raised (named in descriptions); None when the package's own
        self.origin = origin
        self.status = status
        self.retry_after = retry_after


class TransientStorageError(StorageCallError):
    """A storage call failed in a way retrying may fix."""

    kind: ClassVar[FailureKind] = "transient"


class PermanentStorageError(StorageCallError):
    """A storage call failed in a way retrying cannot fix."""

    kind: ClassVar[FailureKind] = "permanent"


class StorageNotFoundError(PermanentStorageError, DagsterPipesError):
    """The path does not exist."""

    kind: ClassVar[FailureKind] = "not_found"


#: OSError numbers that retrying cannot fix.
_PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.EINVAL, errno.EISDIR, errno.ENOTDIR}
)


def _unreadable_answer_types() -> tuple[type[BaseException], ...]:
    """Errors that mean "the answer could not be decoded": raised while reading a response, by the
    standard library's decoders or the XML parser cloud SDKs use."""
    from xml.etree.ElementTree import ParseError

    return (
        UnreadableAnswerError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        binascii.Error,  # a base64 field (DBFS `data`) that is not base64
        http.client.HTTPException,  # broken framing: IncompleteRead, BadStatusLine, LineTooLong...
        ParseError,
    )


_UNREADABLE_ANSWER = _unreadable_answer_types()

#: Errors of the program, not of storage: retrying cannot fix them.
_PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    ValueError,
    AttributeError,
    LookupError,
    NotImplementedError,
    AssertionError,
    ImportError,
    MemoryError,
    RecursionError,
)

_BY_KIND: dict[FailureKind, type[StorageCallError]] = {
    "transient": TransientStorageError,
    "permanent": PermanentStorageError,
    "not_found": StorageNotFoundError,
}


def storage_error(
    kind: FailureKind, origin: BaseException, *, status: int | None = None, retry_after: float | None = None
) -> StorageCallError:
    """The family's error of ``kind`` for ``origin`` (its text is the origin's)."""
    return _BY_KIND[kind](origin=origin, status=status, retry_after=retry_after)


def error_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the errors behind it (``raise ... from`` causes, then implicit contexts)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen and len(seen) < 16:
        seen.add(id(e))
        yield e
        e = e.__cause__ if e.__cause__ is not None else (None if e.__suppress_context__ else e.__context__)


def kind_for_status(status: int) -> FailureKind:
    """What an HTTP status means: 404/410 not found, 408/429/5xx transient, other 4xx permanent."""
    if status in (404, 410):
        return "not_found"
    if status in (408, 429) or status >= 500:
        return "transient"
    if 400 <= status < 500:
        return "permanent"
    return "transient"


def http_status(value: Any) -> int | None:
    """``value`` if it is an HTTP status code, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599 else None


def seconds(value: Any) -> float | None:
    """A ``Retry-After`` value in seconds (a number or numeric text), or None."""
    try:
        result = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return result if result is not None and math.isfinite(result) and result >= 0 else None


def _header_retry_after(e: BaseException) -> float | None:
    headers: Any = getattr(getattr(e, "response", None), "headers", None) or getattr(e, "headers", None)
    return seconds(headers.get("Retry-After")) if hasattr(headers, "get") else None


def translate_common(exc: BaseException) -> StorageCallError:
    """Translate by the standard library's error types (no HTTP status): an undecodable answer,
    a timeout or a reset connection is transient; a missing file is not found; a permission error
    or a programming error is permanent; other ``OSError``s are transient unless their number says
    retrying cannot help. The root cause of a chain decides; anything unknown is transient
    (retrying it costs bounded time, giving up on it loses messages)."""
    chain = list(error_chain(exc))
    for e in chain:
        if isinstance(e, _UNREADABLE_ANSWER):
            return storage_error("transient", e, retry_after=_header_retry_after(e))
    for e in reversed(chain):
        kind = _kind_for_type(e)
        if kind is not None:
            # ... and the deepest library error describes it best (not a bare socket "timed out")
            named = [x for x in chain if type(x).__module__ != "builtins"]
            return storage_error(kind, named[-1] if named else e, retry_after=_header_retry_after(e))
    return storage_error("transient", exc)


def _kind_for_type(e: BaseException) -> FailureKind | None:
    if isinstance(e, FileNotFoundError):
        return "not_found"
    if isinstance(e, DagsterPipesError):
        return "permanent"
    if isinstance(e, (TimeoutError, ConnectionError)):
        return "transient"
    if isinstance(e, _PROGRAMMING_ERRORS):  # before OSError: requests' InvalidURL is both
        return "permanent"
    if isinstance(e, OSError):  # requests/urllib3 errors, EIO from a FUSE mount, ...
        return "permanent" if e.errno in _PERMANENT_ERRNOS else "transient"
    return None


def translate_foreign(exc: BaseException) -> StorageCallError:
    """Translate an error from code the package does not own: the HTTP status an error carries by
    the common conventions (``status_code``, ``status``, ``code``, ``response.status_code``) and
    its ``Retry-After`` header, else :func:`translate_common`. An error of the family is returned
    as it is."""
    for e in error_chain(exc):
        if isinstance(e, StorageCallError):
            return e
    for e in error_chain(exc):
        status = next(
            (s for s in (http_status(getattr(e, a, None)) for a in ("status_code", "status", "code")) if s),
            None,
        )
        if status is None:
            status = http_status(getattr(getattr(e, "response", None), "status_code", None))
        if status is not None:
            return storage_error(
                kind_for_status(status), e, status=status, retry_after=_header_retry_after(e)
            )
    return translate_common(exc)


@contextmanager
def translating(translate: Callable[[BaseException], StorageCallError]) -> Iterator[None]:
    """Raise what fails inside the block as the family's error ``translate`` gives (chained to the
    original). The package's own errors pass unchanged."""
    try:
        yield
    except (StorageCallError, DagsterPipesError):
        raise
    except Exception as e:
        raise translate(e) from e


def translated(method: _F) -> _F:
    """Decorate a storage method: what it raises is translated by its object's ``translate_error``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with translating(self.translate_error):
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)
