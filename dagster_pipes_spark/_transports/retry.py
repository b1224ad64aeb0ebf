"""The one retry policy for storage calls: which failures are transient, which are permanent (and
which of those mean "not found"), how often and how long to retry, and the deadlines that cut it short.

Every storage operation of the package (a chunk upload of any channel, a context read of any
loader) is retried by exactly one :class:`RetryPolicy` at the level of the whole operation; the
backends under it (databricks-sdk, ``dbutils.fs``, FUSE, cloud SDKs) make a single attempt each, so
retry layers never multiply. Failures are classified by HTTP status and by exception class, never by
the name of a type:

* transient (retried): HTTP 408, 429 and 5xx, the databricks-sdk classes ``TooManyRequests``,
  ``TemporarilyUnavailable``, ``InternalError``, ``DeadlineExceeded``… (through their status),
  connection resets, timeouts and other I/O errors, and an *unreadable answer* — a body that does not
  decode (JSON, text, base64, XML, HTTP framing: a truncated response, a gateway's HTML page) is a
  fault of the response, not of the program, whatever Python base class the decoder's error has;
* permanent (raised at once): HTTP 400, 401, 403, 409 and every other 4xx, the classes
  ``BadRequest``, ``Unauthenticated``, ``PermissionDenied``…, permission errors, and programming
  errors (``TypeError``, ``ValueError``… other than the decoding errors above);
* not found (permanent): HTTP 404/410, ``NotFound`` (and ``ResourceDoesNotExist``),
  ``FileNotFoundError`` and :class:`~.file_store.StorageNotFoundError`.

Anything else is treated as transient: retrying it costs bounded time, giving up on it loses messages.
"""

from __future__ import annotations

import binascii
import errno
import http.client
import json
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from .._errors import DagsterPipesError, UnreadableAnswerError
from .._redact import redact

logger = logging.getLogger("dagster_pipes_spark")

_T = TypeVar("_T")

FailureKind = Literal["transient", "permanent", "not_found"]

#: databricks-sdk error classes (``databricks.sdk.errors``, 0.20 and later) and the HTTP status each
#: stands for; their subclasses (``ResourceDoesNotExist``, ``RequestLimitExceeded``…) inherit it.
_SDK_ERROR_STATUS: tuple[tuple[str, int], ...] = (
    ("BadRequest", 400),
    ("Unauthenticated", 401),
    ("PermissionDenied", 403),
    ("NotFound", 404),
    ("ResourceConflict", 409),
    ("TooManyRequests", 429),
    ("Cancelled", 499),
    ("InternalError", 500),
    ("NotImplemented", 501),
    ("TemporarilyUnavailable", 503),
    ("DeadlineExceeded", 504),
)
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


@dataclass(frozen=True)
class Failure:
    """What a failed storage call means: its kind, the HTTP status if any, and the error that told."""

    kind: FailureKind
    error: BaseException
    status: int | None = None
    #: seconds the server asked us to wait (``Retry-After``), if it did
    retry_after: float | None = None

    @property
    def transient(self) -> bool:
        """Whether retrying may help."""
        return self.kind == "transient"

    def describe(self) -> str:
        """One line for logs and stderr: ``HTTP 503 (TemporarilyUnavailable: ...)``."""
        text = redact(" ".join(str(self.error).split()) or repr(self.error))
        if len(text) > 200:
            text = text[:197] + "..."
        what = f"{type(self.error).__name__}: {text}"
        return f"HTTP {self.status} ({what})" if self.status is not None else what


def classify(exc: BaseException) -> Failure:
    """Classify a storage failure (see the module docstring). Looks through ``raise ... from`` chains,
    so ``TimeoutError("Timed out") from TemporarilyUnavailable(...)`` is an HTTP 503, and a
    ``requests`` ``JSONDecodeError`` over ``json.JSONDecodeError`` is an unreadable answer."""
    chain = list(_chain(exc))
    for e in chain:
        status = _http_status(e)
        if status is not None:
            return Failure(_kind_for_status(status), e, status, _retry_after(e))
    for e in chain:
        if isinstance(e, _UNREADABLE_ANSWER):
            return Failure("transient", e, None, _retry_after(e))
    for e in reversed(chain):  # the root cause decides ("Read timed out" under the SDK's "Timed out")
        kind = _kind_for_type(e)
        if kind is not None:
            # ... and the deepest library error describes it best (not a bare socket "timed out")
            named = [x for x in chain if type(x).__module__ != "builtins"]
            return Failure(kind, named[-1] if named else e, None, _retry_after(e))
    return Failure("transient", exc)


def is_not_found(exc: BaseException) -> bool:
    """Whether ``exc`` says the path does not exist."""
    return classify(exc).kind == "not_found"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen and len(seen) < 16:
        seen.add(id(e))
        yield e
        e = e.__cause__ if e.__cause__ is not None else (None if e.__suppress_context__ else e.__context__)


def _int_status(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599 else None


def _http_status(e: BaseException) -> int | None:
    for attr in ("status_code", "status", "code"):  # requests/azure, urllib/botocore-ish, urllib/google
        status = _int_status(getattr(e, attr, None))
        if status is not None:
            return status
    response = getattr(e, "response", None)
    status = _int_status(getattr(response, "status_code", None))
    if status is None and isinstance(response, dict):  # botocore ClientError
        status = _int_status(response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
    return status if status is not None else _sdk_status(e)


def _sdk_status(e: BaseException) -> int | None:
    if "databricks.sdk" not in sys.modules:  # an SDK error cannot exist without the SDK loaded
        return None
    for cls, status in _sdk_error_classes():
        if isinstance(e, cls):
            return status
    return None


_sdk_classes: list[tuple[type[BaseException], int]] | None = None


def _sdk_error_classes() -> list[tuple[type[BaseException], int]]:
    global _sdk_classes
    if _sdk_classes is None:
        try:
            from databricks.sdk import errors
        except ImportError:
            return []
        found = [(getattr(errors, name, None), status) for name, status in _SDK_ERROR_STATUS]
        _sdk_classes = [(c, s) for c, s in found if isinstance(c, type) and issubclass(c, BaseException)]
    return _sdk_classes


def _kind_for_status(status: int) -> FailureKind:
    if status in (404, 410):
        return "not_found"
    if status in (408, 429) or status >= 500:
        return "transient"
    if 400 <= status < 500:
        return "permanent"
    return "transient"


def _kind_for_type(e: BaseException) -> FailureKind | None:
    from .file_store import StorageNotFoundError

    if isinstance(e, (StorageNotFoundError, FileNotFoundError)):
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


def _retry_after(e: BaseException) -> float | None:
    value = getattr(e, "retry_after_secs", None)  # databricks-sdk
    if value is None:
        headers: Any = getattr(getattr(e, "response", None), "headers", None) or getattr(e, "headers", None)
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


# ----------------------------------------------------------------------------------------- deadlines


class Deadline:
    """A point in time (``time.monotonic()``) that can only move earlier; waiting on it wakes up
    early when it does. ``Deadline()`` never expires."""

    def __init__(self, seconds: float | None = None) -> None:
        self._at = math.inf if seconds is None else time.monotonic() + seconds
        self._cond = threading.Condition(threading.Lock())

    @property
    def at(self) -> float:
        """The deadline (``time.monotonic()`` scale; ``inf`` if none)."""
        return self._at

    def remaining(self) -> float:
        """Seconds left (``inf`` if none, 0 once expired)."""
        return max(0.0, self._at - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self._at

    def tighten(self, at: float) -> None:
        """Move the deadline to ``at`` if that is earlier, waking everyone waiting on it."""
        with self._cond:
            if at < self._at:
                self._at = at
                self._cond.notify_all()

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or until the deadline passes or is moved, whichever comes first."""
        end = time.monotonic() + seconds
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= end or now >= self._at:
                    return
                at = self._at
                self._cond.wait(min(end, at) - now)
                if self._at != at:  # moved: let the caller re-check
                    return


class DeadlineExceededError(DagsterPipesError, TimeoutError):
    """A storage operation could not even be attempted: its deadline had passed."""


# ----------------------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class RetryPolicy:
    """How every storage operation is retried (in the spirit of urllib3's ``Retry``).

    Args:
        attempts: Attempts per operation, the first included (1 = no retries).
        backoff: Seconds before the first retry; doubles with each retry, up to ``backoff_max``.
        backoff_max: Longest wait between two attempts (a server's ``Retry-After`` may ask for
            more, within the deadline).
        jitter: Each wait is multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.
        timeout: Seconds one operation may take, all attempts and waits included. A caller's
            deadline (a writer's ``flush_timeout``, SIGTERM) can cut it shorter.
        request_timeout: Seconds one request may wait for the server (given to the databricks-sdk
            client the package builds for its own calls, so a request that never answers fails
            instead of hanging).

    Only transient failures are retried; a permanent one (such as HTTP 403) is raised at once.
    """

    attempts: int = 8
    backoff: float = 0.5
    backoff_max: float = 8.0
    jitter: float = 0.5
    timeout: float = 60.0
    request_timeout: float = 20.0
    _rng: random.Random = field(default_factory=random.Random, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise DagsterPipesError(f"RetryPolicy(attempts={self.attempts}): at least 1 attempt is needed.")
        for name in ("backoff", "backoff_max", "timeout", "request_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and not math.isnan(value)):
                raise DagsterPipesError(f"RetryPolicy({name}={value!r}): expected a number of seconds >= 0.")
        if self.request_timeout <= 0:
            raise DagsterPipesError(f"RetryPolicy(request_timeout={self.request_timeout!r}): must be > 0.")
        if not 0 <= self.jitter <= 1:
            raise DagsterPipesError(f"RetryPolicy(jitter={self.jitter!r}): expected a fraction in [0, 1].")

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with some settings changed."""
        return replace(self, **changes)

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based), honouring ``Retry-After``."""
        base = min(self.backoff * 2 ** (retry - 1), self.backoff_max)
        wait = base * (1 - self.jitter + 2 * self.jitter * self._rng.random())
        return max(wait, retry_after) if retry_after is not None else wait

    def call(self, fn: Callable[[], _T], what: str, *, deadline: Deadline | None = None) -> _T:
        """Call ``fn``, retrying transient failures; raise the last error when attempts, the policy's
        ``timeout`` or ``deadline`` run out, and any
        permanent error at once. ``what`` names the operation in debug logs."""
        outer = deadline
        own = time.monotonic() + self.timeout
        sleeper = outer if outer is not None else Deadline()
        if outer is not None and outer.expired():
            raise DeadlineExceededError(f"{what}: the deadline passed before it could be attempted.")
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except Exception as e:
                failure = classify(e)
                if not failure.transient or attempt == self.attempts:
                    raise
                wait = self.delay(attempt, failure.retry_after)
                resume = time.monotonic() + wait
                if resume >= min(own, outer.at if outer is not None else math.inf):
                    raise
                logger.debug(
                    "dagster-pipes-spark: %s failed (%s); retry %d of %d in %.1fs",
                    what,
                    failure.describe(),
                    attempt,
                    self.attempts - 1,
                    wait,
                )
                # The whole wait, even when the deadline moves (close(), SIGTERM): a server's
                # Retry-After is honoured; if the deadline now falls before the wait ends, give up.
                while (now := time.monotonic()) < resume:
                    if outer is not None and resume >= outer.at:
                        raise
                    sleeper.wait(resume - now)
        raise AssertionError("unreachable")  # pragma: no cover


#: The policy used when none is given.
DEFAULT_RETRY_POLICY = RetryPolicy()


class StorageError(DagsterPipesError):
    """A storage operation failed for good; the message names it and says why (credentials masked)."""


def call_or_explain(policy: RetryPolicy, fn: Callable[[], _T], what: str) -> _T:
    """``policy.call(fn, what)``; a failure other than the package's own errors is raised as a
    :class:`StorageError` saying ``what`` failed and why. Its text is redacted and the storage
    library's error is not chained (neither as cause nor as context): that error's text can echo
    credentials (a proxy quoting the request headers), and a chained error is printed and sent in
    ``closed``."""
    failure: Failure | None = None
    try:
        return policy.call(fn, what)
    except DagsterPipesError:
        raise
    except Exception as e:  # noqa: BLE001 - re-raised below, explained and redacted
        failure = classify(e)
    raise StorageError(f"Cannot {what}: {failure.describe()}")
