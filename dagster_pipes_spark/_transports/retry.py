"""The one retry policy for storage calls: which failures are transient, which mean "not found",
and how often and how long to retry.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

logger = logging.getLogger("dagster_pipes_spark")

_T = TypeVar("_T")


def is_transient(e: BaseException) -> bool:
    if isinstance(e, (ConnectionError, TimeoutError)):
        return True
    status = getattr(e, "status_code", None) or getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    code = str(getattr(e, "error_code", "") or "")
    if code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS", "INTERNAL_ERROR"):
        return True
    name = type(e).__name__
    return name in (
        "TooManyRequests",
        "TemporarilyUnavailable",
        "InternalError",
        "ServiceUnavailable",
        "DeadlineExceeded",
    )


def with_retries(fn: Callable[[], _T], what: str, attempts: int = 8) -> _T:
    """Call ``fn``, retrying transient failures (429, 5xx, resets) with exponential backoff and jitter."""
    delay = 0.2
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as e:
            if attempt == attempts - 1 or not is_transient(e):
                raise
            logger.debug(
                "dagster-pipes-spark: %s failed (%r); retry %d of %d", what, e, attempt + 1, attempts - 1
            )
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


def looks_not_found(e: BaseException) -> bool:
    text = f"{type(e).__name__} {e}"
    return any(
        s in text
        for s in (
            "FileNotFound",
            "NotFound",
            "RESOURCE_DOES_NOT_EXIST",
            "NOT_FOUND",
            "does not exist",
            "No such file",
        )
    )


def is_not_found(e: BaseException) -> bool:
    return type(e).__name__ in ("NotFound", "ResourceDoesNotExist") or getattr(e, "error_code", None) in (
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
    )
