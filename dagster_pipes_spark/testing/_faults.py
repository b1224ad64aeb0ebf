"""Fault injection and request statistics for the workspace emulator.

:class:`FaultConfig` is the one place that defines the fault knobs (``Emulator.faults``,
``EmulatorControl.set_faults`` and ``POST /_emulator/faults`` all build one from the same options);
:data:`FAULT_KINDS` names what an injected fault does to a request. The HTTP front asks the
:class:`FaultInjector` for a :class:`Fault` before reading a request's body and applies it around the
route's handler; the emulated APIs know nothing of faults, so their limits and error shapes stay those
of the platform.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ._http import ApiError, Response

__all__ = ["FAULT_KINDS", "Fault", "FaultConfig", "FaultInjector", "RequestRecord", "RequestStats"]

#: What each fault kind does to a request it hits.
FAULT_KINDS: dict[str, str] = {
    "error": "answer a status from `statuses` before any side effect (with `hold`: hold the request "
    "open without an answer while the configuration lasts, then answer 503)",
    "lost": "apply the request, then answer a status from `statuses` instead of its real answer "
    "(the answer to an applied write is lost)",
    "reset_request": "reset the connection (TCP RST) in the middle of the request body, before any "
    "side effect",
    "reset_response": "apply the request, then reset the connection in the middle of its answer "
    "(after a random prefix of the answer's bytes, possibly none)",
    "slow": "wait `delay` seconds, then serve the request (a stall when `delay` exceeds the client's "
    "request timeout; the request is applied late)",
    "garbled_json": "apply the request, then answer 200 with its JSON body cut short (a truncated body)",
    "garbled_html": "apply the request, then answer 200 with a gateway's HTML page instead of JSON",
}

#: Kinds whose fault happens after the request was applied.
_AFTER_APPLY = frozenset({"lost", "reset_response", "garbled_json", "garbled_html"})

#: Error bodies for injected faults, shaped like the platform's throttling / outage responses.
_FAULT_BODIES: dict[int, tuple[str, str]] = {
    429: (
        "REQUEST_LIMIT_EXCEEDED",
        "Your request was rejected since your organization has exceeded the rate limit. "
        "Please retry your request later.",
    ),
    403: (
        "PERMISSION_DENIED",
        "User does not have permission to write {endpoint} (injected by the emulator).",
    ),
    500: ("INTERNAL_ERROR", "Internal error (injected by the workspace emulator)."),
    502: ("BAD_GATEWAY", "Bad gateway (injected by the workspace emulator)."),
    503: (
        "TEMPORARILY_UNAVAILABLE",
        "The service at {endpoint} is temporarily unavailable. Please try again later.",
    ),
    504: ("DEADLINE_EXCEEDED", "Gateway timeout (injected by the workspace emulator)."),
}

#: What a gateway in front of the workspace answers during maintenance: a 200 HTML page.
_GATEWAY_HTML = (
    b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Workspace maintenance</title></head>\n'
    b"<body><h1>We'll be back soon</h1><p>This workspace is undergoing scheduled maintenance. "
    b"Please try again in a few minutes.</p><hr><address>gateway</address></body></html>\n"
)


@dataclass(frozen=True)
class FaultConfig:
    """What to inject. ``rate`` is the probability per eligible request.

    A request is eligible when its endpoint name (e.g. ``"POST /api/2.0/dbfs/put"``) contains one of
    the ``endpoints`` substrings and its target (the percent-decoded path and query string, e.g.
    ``/api/2.0/dbfs/read?path=/tmp/x/context.json``) one of the ``paths`` substrings (``None``: any).
    The first ``skip`` eligible requests are served normally; ``max_faults`` stops injecting after
    that many faults, ``duration`` that many seconds after the first fault (an outage that ends).

    ``kinds`` are the fault kinds (see :data:`FAULT_KINDS`), one picked at random (``seed``) per
    fault: ``"error"`` (the default), ``"lost"``, ``"reset_request"``, ``"reset_response"``,
    ``"slow"``, ``"garbled_json"``, ``"garbled_html"``. ``statuses`` are the statuses of ``error`` and
    ``lost`` answers; ``retry_after`` is the ``Retry-After`` header (seconds) sent with 429 and 503;
    ``delay`` the wait of a ``slow`` fault. With ``hold``, an ``error`` fault is a black hole instead:
    the request is held open without an answer for as long as this configuration is active (it gets
    a 503 once the faults are reconfigured or cleared); a ``slow`` fault also ends early then. With
    ``echo_request``, an injected error's message quotes the request line and headers, as some
    misconfigured proxies do (credentials included).
    """

    rate: float = 0.0
    statuses: tuple[int, ...] = (429, 503)
    seed: int | None = None
    endpoints: tuple[str, ...] | None = None
    retry_after: int = 0
    max_faults: int | None = None
    hold: bool = False
    kinds: tuple[str, ...] = ("error",)
    paths: tuple[str, ...] | None = None
    skip: int = 0
    duration: float | None = None
    delay: float = 0.0
    echo_request: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.rate > 0 and not self.statuses:
            raise ValueError("fault statuses must not be empty")
        for status in self.statuses:
            if not 400 <= int(status) <= 599:
                raise ValueError(f"fault status must be an HTTP error status, got {status}")
        if self.retry_after < 0:
            raise ValueError("retry_after must not be negative")
        if not self.kinds:
            raise ValueError("fault kinds must not be empty")
        unknown = sorted(set(self.kinds) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(FAULT_KINDS)}")
        if self.skip < 0:
            raise ValueError("skip must not be negative")
        if self.max_faults is not None and self.max_faults < 0:
            raise ValueError("max_faults must not be negative")
        if self.duration is not None and not self.duration > 0:
            raise ValueError("duration must be > 0 seconds (or null: no end)")
        if not 0 <= self.delay <= 3600:
            raise ValueError("delay must be within [0, 3600] seconds")
        if "slow" in self.kinds and self.rate > 0 and self.delay <= 0:
            raise ValueError("a `slow` fault needs a `delay` > 0")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from keyword options or the JSON body of ``POST /_emulator/faults``: the one place
        that turns fault options into a configuration (lists become tuples; an unknown option is a
        ``TypeError``, an invalid value a ``ValueError``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TypeError(
                f"unknown fault option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        for k, v in data.items():
            if isinstance(v, str) and k in ("statuses", "endpoints", "kinds", "paths"):
                v = [v]  # one value given for a list
            values[k] = tuple(v) if isinstance(v, (list, tuple)) else v
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by ``GET /_emulator/faults``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def eligible(self, endpoint: str, target: str) -> bool:
        """Whether a request to ``endpoint`` for ``target`` may be faulted (filters only)."""
        if self.endpoints is not None and not any(e in endpoint for e in self.endpoints):
            return False
        return self.paths is None or any(p in target for p in self.paths)


@dataclass(frozen=True)
class Fault:
    """One injected fault, decided before the request's body is read; the HTTP front applies it."""

    kind: str
    status: int
    endpoint: str
    config: FaultConfig
    #: where a ``reset_response`` cuts the answer (a fraction of its bytes)
    cut: float
    released: threading.Event = field(repr=False, compare=False)

    @property
    def applies_request(self) -> bool:
        """Whether the request is applied (its handler runs) before the fault shows."""
        return self.kind in _AFTER_APPLY or self.kind == "slow"

    def before(self, headers: Mapping[str, str], request_line: str) -> None:
        """Run before the handler: raise the error of an ``error`` fault (after holding the request
        when ``hold``), or wait out a ``slow`` fault."""
        if self.kind == "slow":
            self.released.wait(self.config.delay)
        elif self.kind == "error":
            status = self.status
            if self.config.hold:  # a black hole: no answer while this configuration lasts
                self.released.wait()
                status = 503
            raise self.error(status, headers, request_line)

    def after(self, response: Response, headers: Mapping[str, str], request_line: str) -> Response:
        """The answer sent instead of ``response`` once the request was applied."""
        if self.kind == "lost":
            return self.error(self.status, headers, request_line).to_response()
        if self.kind == "garbled_json":
            body = response.body if response.body.strip() else b'{"status": "OK"}'
            return Response(
                status=200,
                body=body[: max(1, len(body) // 2)],  # a proper prefix of a JSON document never parses
                headers={"Content-Type": response.headers.get("Content-Type", "application/json")},
            )
        if self.kind == "garbled_html":
            return Response(
                status=200, body=_GATEWAY_HTML, headers={"Content-Type": "text/html; charset=utf-8"}
            )
        return response

    def error(self, status: int, headers: Mapping[str, str], request_line: str) -> ApiError:
        """The platform-shaped error an ``error`` / ``lost`` fault answers with."""
        error_code, message = _FAULT_BODIES.get(
            status, ("INJECTED_FAULT", "Error injected by the workspace emulator.")
        )
        message = message.format(endpoint=self.endpoint)
        if self.config.echo_request:  # credentials first, as a proxy's debug echo shows them
            ordered = sorted(headers.items(), key=lambda kv: kv[0].lower() != "authorization")
            echoed = "; ".join(f"{k}: {v}" for k, v in ordered)
            message = f"{message} Request headers: {echoed}; request: {request_line}"
        retry = {"Retry-After": str(self.config.retry_after)} if status in (429, 503) else {}
        return ApiError(status, error_code, message, headers=retry)


class FaultInjector:
    """Decides, before any side effect, whether (and how) a request is faulted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._rng = random.Random()
        self._injected = 0
        self._eligible = 0
        self._first_fault_at: float | None = None
        self._released = threading.Event()  # set when the configuration that holds requests ends

    @property
    def config(self) -> FaultConfig:
        """The active configuration."""
        with self._lock:
            return self._config

    def configure(self, config: FaultConfig) -> FaultConfig:
        """Activate ``config`` (re-seeding the RNG, zeroing its counters); returns the previous one."""
        with self._lock:
            previous, self._config = self._config, config
            self._rng = random.Random(config.seed)
            self._injected = 0
            self._eligible = 0
            self._first_fault_at = None
            self._released.set()
            self._released = threading.Event()
            return previous

    def decide(self, endpoint: str, target: str = "") -> Fault | None:
        """The fault for a request to ``endpoint`` (``target``: its decoded path and query string), or
        ``None`` to serve it normally. Never blocks: holding and delays happen in :meth:`Fault.before`."""
        with self._lock:
            config = self._config
            if config.rate <= 0 or not config.eligible(endpoint, target):
                return None
            self._eligible += 1
            if self._eligible <= config.skip:
                return None
            if config.max_faults is not None and self._injected >= config.max_faults:
                return None
            now = time.monotonic()
            if (
                config.duration is not None
                and self._first_fault_at is not None
                and now - self._first_fault_at >= config.duration
            ):
                return None
            if self._rng.random() >= config.rate:
                return None
            kind = self._rng.choice(config.kinds)
            status = self._rng.choice(config.statuses)
            cut = self._rng.random()
            self._injected += 1
            if self._first_fault_at is None:
                self._first_fault_at = now
            return Fault(kind, int(status), endpoint, config, cut, self._released)


@dataclass(frozen=True)
class RequestRecord:
    """One served request (kept when request recording is enabled)."""

    method: str
    path: str
    query: dict[str, str]
    endpoint: str | None
    status: int
    faulted: bool
    duration_ms: float
    #: the kind of the injected fault (see :data:`FAULT_KINDS`), if any
    fault: str | None = None
    #: when the request arrived (``time.time()``)
    at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``GET /_emulator/requests``."""
        return asdict(self)


@dataclass
class RequestStats:
    """Thread-safe per-endpoint request counters (faulted requests included) and fault counters."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _requests: Counter[str] = field(default_factory=Counter)
    _faults: Counter[str] = field(default_factory=Counter)
    _kinds: Counter[str] = field(default_factory=Counter)

    def count(self, endpoint: str, *, faulted: bool = False, kind: str | None = None) -> None:
        """Record one request to ``endpoint`` (``kind``: the kind of its injected fault)."""
        with self._lock:
            self._requests[endpoint] += 1
            if faulted:
                self._faults[endpoint] += 1
                self._kinds[kind or "error"] += 1

    def snapshot(self) -> dict[str, int]:
        """``{endpoint: requests, ..., "faults": total injected faults}``."""
        with self._lock:
            data = dict(self._requests)
            data["faults"] = sum(self._faults.values())
            return data

    def faults(self) -> dict[str, int]:
        """``{endpoint: injected faults}``."""
        with self._lock:
            return dict(self._faults)

    def fault_kinds(self) -> dict[str, int]:
        """``{fault kind: injected faults}``."""
        with self._lock:
            return dict(self._kinds)

    def reset(self) -> None:
        """Zero all counters."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._kinds.clear()
