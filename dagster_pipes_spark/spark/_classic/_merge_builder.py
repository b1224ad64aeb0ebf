"""Delta's Python merge builder (``delta.tables.DeltaMergeBuilder``): Delta 3.x runs ``execute()``
outside Spark's query execution (no listener event), so the backend wraps it while a block is open."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any, Protocol

from dagster_pipes_spark.spark._classic._py4j import JavaObject, plan_columns
from dagster_pipes_spark.spark._classic._relations import relation_target
from dagster_pipes_spark.spark._delta import (
    MERGE_BUILDER_CLASS,
    MERGE_BUILDER_MODULE,
    MERGE_BUILDER_TARGET_CLASS,
)
from dagster_pipes_spark.spark._patching import ClassPatches, Spec
from dagster_pipes_spark.spark._write_record import OP_MERGE, SparkWrite


class MergeObserver(Protocol):
    """What the wrapper tells a backend about each ``execute()`` on its session."""

    def observes(self, spark: Any) -> bool:
        """Whether this backend observes the session ``spark``."""
        ...

    def before_api_merge(self) -> tuple[int, int]:
        """Before ``execute()``: a mark of what was recorded so far."""
        ...

    def after_api_merge(
        self, jbuilder: JavaObject, mark: tuple[int, int], error: BaseException | None
    ) -> None:
        """After it (``error`` when it raised)."""
        ...


_PATCHES: ClassPatches[MergeObserver] = ClassPatches()


def _merge_builder_class() -> type | None:
    """``delta.tables.DeltaMergeBuilder`` when the delta-spark Python package is importable."""
    if MERGE_BUILDER_MODULE not in sys.modules:
        try:
            if importlib.util.find_spec(MERGE_BUILDER_MODULE.split(".")[0]) is None:
                return None
        except (ImportError, ValueError):
            return None
    try:
        cls = getattr(importlib.import_module(MERGE_BUILDER_MODULE), MERGE_BUILDER_CLASS)
    except Exception:
        return None
    return cls if isinstance(cls, type) else None


def merge_target(jbuilder: JavaObject) -> SparkWrite | None:
    """The MERGE a Java ``DeltaMergeBuilder`` performs: its target ``DeltaTable`` (a private field,
    read by reflection) resolved through the table's analysed plan."""
    for java_field in jbuilder.getClass().getDeclaredFields():
        if str(java_field.getType().getName()) == MERGE_BUILDER_TARGET_CLASS:
            java_field.setAccessible(True)
            plan = java_field.get(jbuilder).toDF().queryExecution().analyzed()
            parts, path, _, _, holder = relation_target(plan)
            if parts is None and path is None:
                return None
            return SparkWrite(
                OP_MERGE, table=parts, path=path, format="delta", columns=plan_columns(holder), is_delta=True
            )
    return None


def _wrap_merge_execute(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        spark = getattr(self, "_spark", None)
        backends = _PATCHES.observers(lambda b: b.observes(spark))
        if not backends:
            return original(self, *args, **kwargs)
        marks = [b.before_api_merge() for b in backends]
        error: BaseException | None = None
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            for backend, mark in zip(backends, marks, strict=True):
                backend.after_api_merge(getattr(self, "_jbuilder", None), mark, error)

    return execute


def _specs() -> list[Spec]:
    cls = _merge_builder_class()
    return [(cls, "execute", _wrap_merge_execute)] if cls is not None else []


def install_merge_hook(backend: MergeObserver) -> None:
    """Tell ``backend`` about each ``DeltaMergeBuilder.execute()`` on its session while it is present."""
    _PATCHES.add(backend, _specs)


def uninstall_merge_hook(backend: MergeObserver) -> None:
    """Stop; the last backend restores the class."""
    _PATCHES.remove(backend)
