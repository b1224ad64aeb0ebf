"""Capturing queries where they start: ``writeStream``, the writer's setters and ``start`` /
``toTable`` wrapped while a block is open."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from dagster_pipes_spark.spark._patching import ClassPatches, Spec
from dagster_pipes_spark.spark._streaming._row_count import rows_preserved
from dagster_pipes_spark.spark._streaming._runs import ROWS_OBSERVATION

_observation_ids = iter(range(1, 1 << 62))


class QueryObserver(Protocol):
    """What the wrapped writer methods tell the observer of a block."""

    def owns_dataframe(self, df: Any) -> bool:
        """Whether ``df`` belongs to the observed session."""
        ...

    def owns(self, writer: Any) -> bool:
        """Whether ``writer`` writes a DataFrame of the observed session."""
        ...

    def started(
        self, writer: Any, query: Any, api: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """A query was started by ``writer.<api>(*args, **kwargs)``."""
        ...


_PATCHES: ClassPatches[QueryObserver] = ClassPatches()


def _writer_classes() -> list[type]:
    classes: list[type] = []
    try:
        from pyspark.sql.streaming.readwriter import DataStreamWriter

        classes.append(DataStreamWriter)
    except ImportError:  # pragma: no cover - pyspark without streaming
        pass
    try:
        from pyspark.sql.connect.streaming.readwriter import DataStreamWriter as ConnectWriter

        classes.append(ConnectWriter)
    except ImportError:  # no Connect extras installed
        pass
    return classes


def _note(writer: Any, key: str, value: Any) -> None:
    notes = writer.__dict__.setdefault("_dagster_pipes_stream", {})
    notes[key] = value


def _wrap_setter(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        try:
            if name == "format" and args:
                _note(self, "format", str(args[0]))
            elif name == "option" and len(args) >= 2:
                self.__dict__.setdefault("_dagster_pipes_stream", {}).setdefault("options", {})[
                    str(args[0]).lower()
                ] = args[1]
            elif name == "options":
                opts = self.__dict__.setdefault("_dagster_pipes_stream", {}).setdefault("options", {})
                opts.update({str(k).lower(): v for k, v in kwargs.items()})
            elif name == "queryName" and args:
                _note(self, "name", str(args[0]))
            elif name in ("foreachBatch", "foreach"):
                _note(self, "foreach_batch", True)
        except Exception:
            pass
        return result

    return wrapper


def _wrap_start(original: Callable[..., Any], api: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        query = original(self, *args, **kwargs)
        try:
            observers = _PATCHES.observers(lambda o: o.owns(self))
            for observer in observers:
                observer.started(self, query, api, args, kwargs)
        except Exception:
            pass
        return query

    return wrapper


def _dataframe_classes() -> list[type]:
    classes: list[type] = []
    for module in ("pyspark.sql.classic.dataframe", "pyspark.sql.dataframe", "pyspark.sql.connect.dataframe"):
        try:
            cls = __import__(module, fromlist=["DataFrame"]).DataFrame
        except ImportError:
            continue
        if isinstance(cls.__dict__.get("writeStream"), property) and cls not in classes:
            classes.append(cls)
    return classes


def _functions_for(df: Any) -> Any:
    """The functions module that builds columns for ``df``: Spark Connect's for a Connect DataFrame
    (``pyspark.sql.functions`` builds classic columns when the process also hosts a classic session,
    e.g. a local Connect server), else the classic one."""
    if type(df).__module__.startswith("pyspark.sql.connect"):
        try:
            from pyspark.sql.connect.functions import builtin
        except ImportError:  # Spark 3.5: a module, not a package
            from pyspark.sql.connect import functions as connect_functions

            return connect_functions
        return builtin
    from pyspark.sql import functions

    return functions


def _count_rows(df: Any) -> tuple[Any, str | None]:
    """``df`` with the row-counting observation and its name; ``df`` itself when its progress reports
    already count the rows it writes (a plan that writes every row it reads), or it cannot be added."""
    if rows_preserved(df):
        return df, None
    try:
        sf = _functions_for(df)
        name = f"{ROWS_OBSERVATION}_{next(_observation_ids)}"
        return df.observe(name, sf.count(sf.lit(1)).alias("rows")), name
    except Exception:
        return df, None


def _wrap_write_stream(original: property) -> property:
    getter = original.fget
    assert getter is not None

    def write_stream(df: Any) -> Any:
        observers = _PATCHES.observers(lambda o: o.owns_dataframe(df))
        if not observers:
            return getter(df)
        target, name = _count_rows(df)
        writer = getter(target)
        try:
            _note(writer, "dataframe", df)  # its plan gives the query's column lineage
            _note(writer, "observation", name)
            _note(writer, "columns", [(f.name, f.dataType.simpleString()) for f in df.schema.fields])
        except Exception:
            pass
        return writer

    return property(write_stream, doc=original.__doc__)


def _specs() -> list[Spec]:
    specs: list[Spec] = [(cls, "writeStream", _wrap_write_stream) for cls in _dataframe_classes()]
    for cls in _writer_classes():
        for name in ("format", "option", "options", "queryName", "foreachBatch", "foreach"):
            specs.append((cls, name, functools.partial(_wrap_setter, name=name)))
        for name in ("start", "toTable"):
            specs.append((cls, name, functools.partial(_wrap_start, api=name)))
    return specs


def install(observer: QueryObserver) -> None:
    """Observe the queries started while ``observer`` is present."""
    _PATCHES.add(observer, _specs)


def uninstall(observer: QueryObserver) -> None:
    """Stop; the last observer restores the classes."""
    _PATCHES.remove(observer)
