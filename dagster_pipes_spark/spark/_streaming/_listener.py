"""The classic sessions' progress listener: each report crosses py4j once, as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from dagster_pipes_spark.spark._streaming._runs import Batch, progress_batch


class _JsonProgressListener:
    """The py4j side of the classic listener (``PythonStreamingQueryListener``): each progress report
    crosses over as ONE call (``progress().json()``), parsed here, instead of the dozens of py4j calls
    (and a cloudpickle per observed metric) pyspark's own event conversion makes, which on a busy
    driver lets the listener bus fall behind and the block's exit wait for it."""

    def __init__(self, on_progress: Callable[[str, Batch | None], None]) -> None:
        self._on_progress = on_progress

    def onQueryStarted(self, jevent: Any) -> None:  # noqa: N802 - Spark's callback names
        pass

    def onQueryProgress(self, jevent: Any) -> None:  # noqa: N802
        try:
            data = json.loads(str(jevent.progress().json()))
            self._on_progress(str(data.get("runId")), progress_batch(data))
        except Exception:
            pass

    def onQueryIdle(self, jevent: Any) -> None:  # noqa: N802
        pass

    def onQueryTerminated(self, jevent: Any) -> None:  # noqa: N802
        pass

    class Java:
        implements: ClassVar[list[str]] = ["org.apache.spark.sql.streaming.PythonStreamingQueryListener"]


def make_listener(on_progress: Callable[[str, Batch | None], None]) -> Any:
    """A classic ``StreamingQueryListener`` that hands every progress report to ``on_progress`` (through
    :class:`_JsonProgressListener`, registered by ``spark.streams.addListener`` as pyspark's own)."""
    try:
        from pyspark.sql.streaming import StreamingQueryListener
    except ImportError:  # pragma: no cover
        return None

    class _Listener(StreamingQueryListener):
        def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's callback names
            pass

        def onQueryProgress(self, event: Any) -> None:  # noqa: N802
            pass  # the JVM calls _JsonProgressListener, never this

        def onQueryIdle(self, event: Any) -> None:  # noqa: N802
            pass

        def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
            pass

        @property
        def _jlistener(self) -> Any:  # what addListener / removeListener hand to the JVM
            wrapper = self.__dict__.get("_dagster_pipes_jlistener")
            if wrapper is None:
                from pyspark import SparkContext

                jvm: Any = SparkContext._jvm
                wrapper = jvm.PythonStreamingQueryListenerWrapper(_JsonProgressListener(on_progress))
                self.__dict__["_dagster_pipes_jlistener"] = wrapper
            return wrapper

    return _Listener()
