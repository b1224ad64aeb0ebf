"""Helpers that need ``databricks.sdk`` (imported only when a workspace client is requested)."""

from __future__ import annotations

import time
from typing import Any

from databricks.sdk import WorkspaceClient
from databricks.sdk.clock import RealClock
from databricks.sdk.core import Config

__all__ = ["FastRetryClock", "make_workspace_client"]


class FastRetryClock(RealClock):
    """A real clock whose ``sleep`` is scaled down and capped.

    The SDK sleeps ``Retry-After + random()`` seconds (so ~0.5 s on average even for
    ``Retry-After: 0``) before retrying a 429/503; tests with fault injection do not need to wait.
    Deadlines still use the real time.
    """

    def __init__(self, scale: float = 0.01, cap: float = 0.05) -> None:
        self.scale = scale
        self.cap = cap

    def sleep(self, seconds: float) -> None:
        """Sleep for a small fraction of ``seconds``."""
        time.sleep(min(max(seconds, 0.0) * self.scale, self.cap))


def make_workspace_client(*, fast_retries: bool = True, **config: Any) -> WorkspaceClient:
    """A PAT-authenticated ``WorkspaceClient`` (``config`` goes to ``databricks.sdk.core.Config``)."""
    kwargs: dict[str, Any] = {"auth_type": "pat"}
    if fast_retries:
        kwargs["clock"] = FastRetryClock()
    kwargs.update(config)
    return WorkspaceClient(config=Config(**kwargs))
