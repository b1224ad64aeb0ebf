"""Requests that an emulator could not route: the endpoints it does not serve.

A real workspace serves far more than the emulator, so a client that calls an endpoint the emulator
lacks gets ``404 ENDPOINT_NOT_FOUND`` here but something else in production: the test would not
prove what it claims. Every emulator keeps an :class:`UnservedRequests` log, and all logs of the
process are registered here, so that the pytest plugin can fail any test during which an emulator
was asked for an endpoint it does not serve (stdlib only: the plugin imports this module).
"""

from __future__ import annotations

import threading

__all__ = ["UnservedRequests", "acknowledge_unserved", "pending_unserved"]

_registry_lock = threading.Lock()
_registry: list[UnservedRequests] = []


class UnservedRequests:
    """A thread-safe log of ``"METHOD /path"`` strings answered ``ENDPOINT_NOT_FOUND``.

    Entries stay until :meth:`clear`: a test that calls an unserved endpoint on purpose asserts
    on them and clears them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[str] = []
        with _registry_lock:
            _registry.append(self)

    def add(self, method: str, path: str) -> None:
        """Record one request that no route matched."""
        with self._lock:
            self._items.append(f"{method} {path}")

    def snapshot(self) -> list[str]:
        """The recorded requests, oldest first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        """Forget the recorded requests (acknowledge them)."""
        with self._lock:
            self._items.clear()


def pending_unserved() -> list[str]:
    """Every unacknowledged unserved request of every emulator in this process."""
    with _registry_lock:
        logs = list(_registry)
    return [item for log in logs for item in log.snapshot()]


def acknowledge_unserved() -> None:
    """Clear every emulator's log (after a failure was reported for them)."""
    with _registry_lock:
        logs = list(_registry)
    for log in logs:
        log.clear()
