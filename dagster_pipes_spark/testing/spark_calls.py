"""Counting what a piece of code asks Spark: Spark Connect requests by kind (client side) and Spark
jobs submitted to a local driver (classic, or the JVM behind a local Connect server).

Used by the tests that pin how many requests / jobs leaving ``report_spark_writes`` makes, and by
``benchmarks/bench_growth.py``. Spark itself is the oracle: the client's own request methods are
counted (each call is one gRPC round trip: ``ExecutePlan``, ``AnalyzePlan``, ``Config``), and jobs
are read from the ``DAGScheduler``'s job-id counter (every job submitted, including failed ones).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: client methods that make one round trip each, and what they are counted as
_CONNECT_REQUESTS = {
    "_execute_and_fetch_as_iterator": "execute",
    "_execute": "execute",
    "_analyze": "analyze",
    "config": "config",
}


class ConnectRequests:
    """Spark Connect requests a client made while :func:`count_connect_requests` was open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_kind: Counter[str] = Counter()
        self.analyze_methods: Counter[str] = Counter()

    def add(self, kind: str, method: str | None = None) -> None:
        """Count one request."""
        with self._lock:
            self.by_kind[kind] += 1
            if method is not None:
                self.analyze_methods[method] += 1

    @property
    def total(self) -> int:
        """All requests."""
        return sum(self.by_kind.values())

    def snapshot(self) -> dict[str, int]:
        """Requests by kind (``execute``, ``analyze``, ``config``) and ``total``."""
        with self._lock:
            return {**dict(self.by_kind), "total": sum(self.by_kind.values())}


@contextmanager
def count_connect_requests(spark: Any) -> Iterator[ConnectRequests]:
    """Count the round trips ``spark`` (a Spark Connect session) makes inside the block, from any
    thread: the client's request methods are wrapped on the client instance and restored after."""
    client = spark.client
    counts = ConnectRequests()
    saved: dict[str, Any] = {}
    for name, kind in _CONNECT_REQUESTS.items():
        original = getattr(client, name)
        saved[name] = client.__dict__.get(name)

        def counted(*args: Any, __original: Any = original, __kind: str = kind, **kwargs: Any) -> Any:
            method = kwargs.get("method") if __kind == "analyze" else None
            counts.add(__kind, method)
            return __original(*args, **kwargs)

        setattr(client, name, counted)
    try:
        yield counts
    finally:
        for name, previous in saved.items():
            if previous is None:
                delattr(client, name)
            else:
                setattr(client, name, previous)


def submitted_jobs(spark_context: Any = None) -> int:
    """How many jobs the local driver's ``DAGScheduler`` has been given so far (its next job id).
    ``spark_context``: a classic ``SparkContext``; by default the active one (with a local Spark
    Connect server, the one behind it)."""
    if spark_context is None:
        from pyspark import SparkContext

        spark_context = SparkContext._active_spark_context
        if spark_context is None:
            raise RuntimeError("no active SparkContext in this process")
    counter = spark_context._jsc.sc().dagScheduler().nextJobId()
    return int(counter if isinstance(counter, int) else counter.get())  # py4j may convert the AtomicInteger
