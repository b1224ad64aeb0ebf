"""Which blocks are open: the backends observing Connect sessions, the classes wrapped for them,
and the per-thread flag that keeps nested writer calls from being recorded twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from dagster_pipes_spark.spark._collector import Collector
from dagster_pipes_spark.spark._patching import ClassPatches


class Observer(Protocol):
    """What the wrapped writer methods need of a backend observing a session."""

    spark: Any
    collector: Collector
    #: explain the written plans on exit for column lineage
    lineage: bool
    #: count rows of non-Delta writes with a named observation
    count_rows: bool
    debug: Callable[[str], None]

    def default_format(self) -> str | None:
        """``spark.sql.sources.default``."""
        ...


#: the backends present and the classes wrapped for them
PATCHES: ClassPatches[Observer] = ClassPatches()
STATE = threading.local()


def busy() -> bool:
    return bool(getattr(STATE, "busy", False))


class Busy:
    """Marks the current thread as inside a hook, so nested writer calls are not recorded twice."""

    def __enter__(self) -> None:
        self._previous = busy()
        STATE.busy = True

    def __exit__(self, *exc: object) -> None:
        STATE.busy = self._previous


def backends_for_session(session: Any) -> list[Observer]:
    if session is None:
        return []
    return PATCHES.observers(lambda b: b.spark is session)


def backends_for_client(client: Any) -> list[Observer]:
    if client is None:
        return []
    return PATCHES.observers(lambda b: getattr(b.spark, "client", None) is client)


def error_text(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:500]
