"""Controlling an emulator over HTTP (``/_emulator/*``), e.g. from a subprocess or another test
process, with the standard library only."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ._faults import FaultConfig
from ._rest import HttpError, RestClient

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
        self._rest = RestClient(self.url, None, max_retries=0, timeout=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            return self._rest.json(method, path, body=body)
        except HttpError as exc:
            raise RuntimeError(f"{method} {path} failed: HTTP {exc.status}: {exc.message}") from None

    def health(self, attempts: int = 3) -> bool:
        """Whether the emulator answers (``attempts`` tries half a second apart: a busy machine can
        leave one request unanswered)."""
        for attempt in range(max(1, attempts)):
            try:
                if self._call("GET", "/_emulator/health").get("ok"):
                    return True
            except (OSError, RuntimeError):
                pass
            if attempt + 1 < attempts:
                time.sleep(0.5)
        return False

    def set_faults(
        self, rate: float = 0.15, statuses: Sequence[int] | None = None, **options: Any
    ) -> dict[str, Any]:
        """Activate fault injection: the fields of :class:`FaultConfig` (as :meth:`Emulator.faults`,
        validated here); returns the active configuration."""
        if statuses is not None:
            options["statuses"] = statuses
        config = FaultConfig.from_json({"rate": rate, **options})
        return self._call("POST", "/_emulator/faults", config.to_json())

    @contextmanager
    def faults(
        self, rate: float = 0.15, statuses: Sequence[int] | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Inject faults for the duration of a ``with`` block, then restore the previous setting."""
        previous = self.fault_config()
        try:
            yield self.set_faults(rate, statuses, **options)
        finally:
            self._call("POST", "/_emulator/faults", previous)

    def fault_config(self) -> dict[str, Any]:
        """The active fault configuration."""
        return self._call("GET", "/_emulator/faults")

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

    def unserved_requests(self) -> list[str]:
        """Requests to endpoints the emulator does not serve (see :attr:`Emulator.unserved_requests`)."""
        return [str(r) for r in self._call("GET", "/_emulator/unserved").get("unserved", [])]

    def create_volume(self, name: str) -> str:
        """Create a volume (``"c/s/v"`` or ``"c.s.v"``); returns its ``/Volumes/...`` path."""
        return str(self._call("POST", "/_emulator/volumes", {"name": name})["path"])
