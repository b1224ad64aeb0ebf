"""A small REST client for a workspace (or the emulator), with the standard library only.

Shared by the fake notebook ``dbutils`` (DBFS and Files API calls) and :class:`EmulatorControl`
(the emulator's control surface), so that both work in a task's Python without extra packages.
Requests answered 429 or 503 are retried (honouring ``Retry-After``, capped at 1 s), as are
connection failures; any other error status raises :class:`HttpError`.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

__all__ = ["HttpError", "RestClient", "UnreachableError", "none_if_missing"]

T = TypeVar("T")


class HttpError(Exception):
    """An error status; ``error_code`` and ``message`` come from the Databricks JSON error body."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


class UnreachableError(OSError):
    """The host did not answer (after the connection retries)."""


def none_if_missing(call: Callable[[], T]) -> T | None:
    """``call()``, or ``None`` when it fails with a 404 (the one not-found translation)."""
    try:
        return call()
    except HttpError as exc:
        if exc.status == 404:
            return None
        raise


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_delay(retry_after: str | None, attempt: int) -> float:
    try:
        seconds = float(retry_after) if retry_after is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(seconds, 1.0) + 0.01 * attempt


def _http_error(status: int, raw: bytes, reason: Any) -> HttpError:
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        return HttpError(status, str(parsed.get("error_code", "")), str(parsed.get("message", reason)))
    return HttpError(status, "", raw.decode("utf-8", "replace") or str(reason))


class RestClient:
    """JSON and raw requests to ``host``.

    Args:
        host: Base URL, e.g. ``http://127.0.0.1:8080``.
        token: Bearer token sent with every request (none when ``None``).
        max_retries: Retries of 429 / 503 answers (connection failures: at most 3).
        timeout: Per-request timeout in seconds.
    """

    def __init__(self, host: str, token: str | None, *, max_retries: int, timeout: float) -> None:
        self.host = host.rstrip("/")
        self.token = token
        self.max_retries = max_retries
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request (retried as described above); ``(status, lower-cased headers, body)``."""
        url = self.host + quote(path)
        if query:
            url += "?" + urlencode({k: _query_value(v) for k, v in query.items()})
        all_headers = dict(headers or {})
        if self.token is not None:
            all_headers["Authorization"] = f"Bearer {self.token}"
        payload = data
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        for attempt in itertools.count():
            request = urllib.request.Request(url, data=payload, headers=all_headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return (
                        response.status,
                        {k.lower(): v for k, v in response.headers.items()},
                        response.read(),
                    )
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                if exc.code in (429, 503) and attempt < self.max_retries:
                    time.sleep(_retry_delay(exc.headers.get("Retry-After"), attempt))
                    continue
                raise _http_error(exc.code, raw, exc.reason) from None
            except (urllib.error.URLError, ConnectionError) as exc:
                if attempt < min(self.max_retries, 3):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise UnreachableError(f"cannot reach the workspace at {self.host}: {exc}") from exc
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`call`, with the response body parsed as a JSON object (``{}`` when empty)."""
        _, _, raw = self.call(method, path, **kwargs)
        parsed = json.loads(raw) if raw.strip() else {}
        return parsed if isinstance(parsed, dict) else {}
