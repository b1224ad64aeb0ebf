"""Fault injection and request statistics for the workspace emulator."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ._http import ApiError

__all__ = ["FaultConfig", "FaultInjector", "RequestRecord", "RequestStats"]

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


@dataclass(frozen=True)
class FaultConfig:
    """What to inject. ``rate`` is the probability per eligible request.

    ``endpoints`` restricts injection to endpoints whose name (e.g. ``"POST /api/2.0/dbfs/put"``)
    contains one of the given substrings. ``max_faults`` stops injecting after that many faults.
    ``retry_after`` is the ``Retry-After`` header (seconds) sent with 429 and 503. With ``hold``, a
    faulted request is a black hole instead: it is held open without an answer for as long as this
    configuration is active (it gets a 503 once the faults are reconfigured or cleared).
    """

    rate: float = 0.0
    statuses: tuple[int, ...] = (429, 503)
    seed: int | None = None
    endpoints: tuple[str, ...] | None = None
    retry_after: int = 0
    max_faults: int | None = None
    hold: bool = False

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
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in data.items()}
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The JSON form served by ``GET /_emulator/faults``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class FaultInjector:
    """Decides, before any side effect, whether a request is answered with an injected error."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config = FaultConfig()
        self._rng = random.Random()
        self._injected = 0
        self._released = threading.Event()  # set when the configuration that holds requests ends

    @property
    def config(self) -> FaultConfig:
        """The active configuration."""
        with self._lock:
            return self._config

    def configure(self, config: FaultConfig) -> FaultConfig:
        """Activate ``config`` (re-seeding the RNG); returns the previous configuration."""
        with self._lock:
            previous, self._config = self._config, config
            self._rng = random.Random(config.seed)
            self._injected = 0
            self._released.set()
            self._released = threading.Event()
            return previous

    def decide(self, endpoint: str) -> ApiError | None:
        """The error to answer ``endpoint`` with, or ``None`` to serve the request normally."""
        with self._lock:
            config = self._config
            if config.rate <= 0:
                return None
            if config.endpoints is not None and not any(e in endpoint for e in config.endpoints):
                return None
            if config.max_faults is not None and self._injected >= config.max_faults:
                return None
            if self._rng.random() >= config.rate:
                return None
            status = self._rng.choice(config.statuses)
            self._injected += 1
            released = self._released
        if config.hold:  # a black hole: no answer while this configuration lasts
            released.wait()
            status = 503
        error_code, message = _FAULT_BODIES.get(
            status, ("INJECTED_FAULT", "Error injected by the workspace emulator.")
        )
        headers = {"Retry-After": str(config.retry_after)} if status in (429, 503) else {}
        return ApiError(status, error_code, message.format(endpoint=endpoint), headers=headers)


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

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``GET /_emulator/requests``."""
        return asdict(self)


@dataclass
class RequestStats:
    """Thread-safe per-endpoint request counters (faulted requests included) and fault counters."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _requests: Counter[str] = field(default_factory=Counter)
    _faults: Counter[str] = field(default_factory=Counter)

    def count(self, endpoint: str, *, faulted: bool = False) -> None:
        """Record one request to ``endpoint``."""
        with self._lock:
            self._requests[endpoint] += 1
            if faulted:
                self._faults[endpoint] += 1

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

    def reset(self) -> None:
        """Zero all counters."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
