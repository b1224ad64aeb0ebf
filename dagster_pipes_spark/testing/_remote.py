"""Controlling an emulator over HTTP (``/_emulator/*``), e.g. from a subprocess or another test
process, with the standard library only."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["EmulatorControl"]


class EmulatorControl:
    """Client for an emulator's control endpoints.

    Args:
        url: The emulator URL; defaults to ``$DATABRICKS_HOST``.
        timeout: Per-request timeout in seconds.
    """

    def __init__(self, url: str | None = None, *, timeout: float = 10.0) -> None:
        resolved = url or os.environ.get("DATABRICKS_HOST")
        if not resolved:
            raise ValueError("no emulator URL given and DATABRICKS_HOST is not set")
        self.url = resolved.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path} failed: HTTP {exc.code}: {exc.read()!r}") from None
        return json.loads(raw) if raw.strip() else {}

    def health(self) -> bool:
        """Whether the emulator answers."""
        try:
            return bool(self._call("GET", "/_emulator/health").get("ok"))
        except (OSError, RuntimeError):
            return False

    def set_faults(
        self,
        rate: float = 0.15,
        statuses: Sequence[int] = (429, 503),
        *,
        seed: int | None = None,
        endpoints: Sequence[str] | None = None,
        retry_after: int = 0,
        max_faults: int | None = None,
    ) -> dict[str, Any]:
        """Activate fault injection (see :meth:`Emulator.faults`); returns the active config."""
        result: dict[str, Any] = self._call(
            "POST",
            "/_emulator/faults",
            {
                "rate": rate,
                "statuses": list(statuses),
                "seed": seed,
                "endpoints": None if endpoints is None else list(endpoints),
                "retry_after": retry_after,
                "max_faults": max_faults,
            },
        )
        return result

    @contextmanager
    def faults(
        self,
        rate: float = 0.15,
        statuses: Sequence[int] = (429, 503),
        *,
        seed: int | None = None,
        endpoints: Sequence[str] | None = None,
        retry_after: int = 0,
        max_faults: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Inject faults for the duration of a ``with`` block, then restore the previous setting."""
        previous = self.fault_config()
        try:
            yield self.set_faults(
                rate,
                statuses,
                seed=seed,
                endpoints=endpoints,
                retry_after=retry_after,
                max_faults=max_faults,
            )
        finally:
            self._call("POST", "/_emulator/faults", previous)

    def fault_config(self) -> dict[str, Any]:
        """The active fault configuration."""
        result: dict[str, Any] = self._call("GET", "/_emulator/faults")
        return result

    def clear_faults(self) -> None:
        """Stop injecting faults."""
        self._call("DELETE", "/_emulator/faults")

    def stats(self) -> dict[str, int]:
        """Requests per endpoint plus ``"faults"`` (see :attr:`Emulator.stats`)."""
        return {str(k): int(v) for k, v in self._call("GET", "/_emulator/stats").items()}

    def fault_stats(self) -> dict[str, int]:
        """Injected faults per endpoint."""
        return {str(k): int(v) for k, v in self._call("GET", "/_emulator/stats/faults").items()}

    def reset_stats(self) -> None:
        """Zero the counters."""
        self._call("DELETE", "/_emulator/stats")

    def requests(self) -> list[dict[str, Any]]:
        """The recorded requests (when the emulator records them)."""
        return list(self._call("GET", "/_emulator/requests").get("requests", []))

    def create_volume(self, name: str) -> str:
        """Create a volume (``"c/s/v"`` or ``"c.s.v"``); returns its ``/Volumes/...`` path."""
        return str(self._call("POST", "/_emulator/volumes", {"name": name})["path"])
