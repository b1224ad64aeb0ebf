"""The one retry policy for storage calls: how often and how long to retry which failures, and the
deadlines that cut it short.

Every storage operation of the package (a chunk upload of any channel, a context read of any
loader) is retried by exactly one :class:`RetryPolicy` at the level of the whole operation; the
backends under it (databricks-sdk, ``dbutils.fs``, FUSE, cloud SDKs) make a single attempt each, so
retry layers never multiply. What a failure means is decided at the backend's boundary: each backend
translates its library's errors into the package's own (:mod:`.errors`), and :func:`classify` reads
that family only — transient failures are retried, permanent ones (``not_found`` among them) raised
at once. An error from code the package does not own (a channel subclass, a store passed in) is
translated by the common HTTP and standard-library conventions (:func:`.errors.translate_foreign`).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from .._errors import DagsterPipesError
from .._redact import redact
from .errors import FailureKind, translate_foreign

logger = logging.getLogger("dagster_pipes_spark")

_T = TypeVar("_T")


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

    @property
    def may_have_applied(self) -> bool:
        """Whether the failed request may still have been applied: the server may have done it before
        its answer was lost (an unreadable or missing answer, a 500, a timeout), unlike a refusal
        (429, 503)."""
        return self.status is None or self.status in (500, 502, 504)

    def describe(self) -> str:
        """One line for logs and stderr: ``HTTP 503 (TemporarilyUnavailable: ...)``."""
        text = redact(" ".join(str(self.error).split()) or repr(self.error))
        if len(text) > 200:
            text = text[:197] + "..."
        what = f"{type(self.error).__name__}: {text}"
        return f"HTTP {self.status} ({what})" if self.status is not None else what


def classify(exc: BaseException) -> Failure:
    """What a storage failure means, from the package's error family (:mod:`.errors`) found in
    ``exc``'s chain; an error of other code is translated by :func:`.errors.translate_foreign`
    first. The failure names the storage library's error when there is one."""
    error = translate_foreign(exc)
    origin = error.origin if error.origin is not None else error
    return Failure(error.kind, origin, error.status, error.retry_after)


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
