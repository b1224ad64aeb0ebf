"""HTTP plumbing for the workspace emulator: requests, responses, errors and a routing table.

Each emulated API (DBFS, Files, Jobs, the emulator's own control surface, ...) is an object
with a ``register(router)`` method that adds its routes; the server only knows about the router.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol
from urllib.parse import unquote

__all__ = [
    "ApiError",
    "EmulatorApi",
    "EndpointNotFoundError",
    "Handler",
    "Request",
    "Response",
    "Route",
    "Router",
    "error_info",
    "http_date",
]

_ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


def http_date(epoch_seconds: float) -> str:
    """Format a timestamp as an RFC 1123 HTTP date (``Last-Modified`` style)."""
    return formatdate(epoch_seconds, usegmt=True)


def error_info(reason: str, domain: str = "filesystem.databricks.com") -> dict[str, Any]:
    """A ``google.rpc.ErrorInfo`` detail entry, as the Files API attaches to some errors."""
    return {"@type": _ERROR_INFO_TYPE, "reason": reason, "domain": domain, "metadata": {}}


@dataclass
class Request:
    """One parsed HTTP request as seen by a route handler."""

    method: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The percent-decoded request path (without query string)."""
        return unquote(self.raw_path)

    def header(self, name: str) -> str | None:
        """A request header, looked up case-insensitively."""
        return self.headers.get(name.lower())

    def param(self, name: str) -> str:
        """A path parameter captured by the route pattern, percent-decoded."""
        return unquote(self.params[name])

    def json(self) -> dict[str, Any]:
        """The body parsed as a JSON object (``{}`` for an empty body)."""
        if not self.body.strip():
            return {}
        try:
            obj = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            obj = None
        if not isinstance(obj, dict):
            raise ApiError(
                400,
                "MALFORMED_REQUEST",
                "Invalid JSON given in the body of the request - expected a map",
            )
        return obj

    def args(self) -> dict[str, Any]:
        """JSON body fields overlaid with query-string parameters (GET endpoints accept both)."""
        merged = self.json()
        merged.update(self.query)
        return merged


@dataclass
class Response:
    """An HTTP response produced by a route handler."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response."""
        return cls(
            status=status,
            body=json.dumps(obj).encode("utf-8"),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def no_content(cls) -> Response:
        """A bodiless ``204 No Content`` response."""
        return cls(status=204)


class ApiError(Exception):
    """Raised by handlers; rendered as the Databricks ``{"error_code", "message"}`` JSON shape."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def to_response(self) -> Response:
        """Render the error as a JSON response."""
        payload: dict[str, Any] = {"error_code": self.error_code, "message": self.message}
        if self.details:
            payload["details"] = self.details
        return Response.json(payload, status=self.status, headers=self.headers)


class EndpointNotFoundError(ApiError):
    """No route matches the request: the platform's ``ENDPOINT_NOT_FOUND`` 404 (an unserved endpoint)."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")
        self.method = method
        self.path = path


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """One routing-table entry.

    ``pattern`` is matched with ``fullmatch`` against the raw (still percent-encoded) path; named
    groups become ``Request.params``. ``name`` is the key used in request statistics. Internal routes
    (the emulator's control surface) bypass authentication, statistics and fault injection; routes
    with ``auth=False`` are served without the workspace token (discovery documents, presigned
    storage URLs) and routes with ``faults=False`` are never answered with an injected fault.
    """

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    name: str
    internal: bool = False
    auth: bool = True
    faults: bool = True


class Router:
    """An ordered routing table: the first route whose method and pattern match wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._lock = threading.Lock()

    def add(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        name: str | None = None,
        internal: bool = False,
        auth: bool = True,
        faults: bool = True,
    ) -> Route:
        """Register ``handler`` for ``method`` on paths fully matching the regex ``pattern``."""
        route = Route(
            method=method.upper(),
            pattern=re.compile(pattern),
            handler=handler,
            name=name or f"{method.upper()} {pattern}",
            internal=internal,
            auth=auth and not internal,
            faults=faults and not internal,
        )
        with self._lock:
            self._routes.append(route)
        return route

    @property
    def routes(self) -> list[Route]:
        """A snapshot of the registered routes."""
        with self._lock:
            return list(self._routes)

    def resolve(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """Find the route for a request, or raise the platform's ``ENDPOINT_NOT_FOUND`` 404."""
        for route in self.routes:
            if route.method != method:
                continue
            match = route.pattern.fullmatch(raw_path)
            if match is not None:
                return route, {k: v for k, v in match.groupdict().items() if v is not None}
        raise EndpointNotFoundError(method, unquote(raw_path))


class EmulatorApi(Protocol):
    """An emulated REST API: something that adds its routes to a router."""

    def register(self, router: Router) -> None:
        """Add this API's routes to ``router``."""
        ...
