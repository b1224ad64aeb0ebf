"""Run round-trip-bound Spark look-ups on a few threads (py4j and Spark Connect calls are thread-safe)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


def parallel_map(
    fn: Callable[[_T], _R], items: Sequence[_T], max_workers: int = 8
) -> list[_R | BaseException]:
    """``fn`` over ``items`` on a few threads (Spark Connect and py4j calls are thread-safe and the
    look-ups are round-trip bound); an item's exception is returned in its place."""

    def call(item: _T) -> _R | BaseException:
        try:
            return fn(item)
        except Exception as exc:
            return exc

    if len(items) <= 1:
        return [call(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(
        max_workers=min(max_workers, len(items)), thread_name_prefix="spark-writes"
    ) as pool:
        return list(pool.map(call, items))
