"""Wrapping the writer classes at class level while a block is open, and restoring them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from dagster_pipes_spark.spark._connect._observation import wrap_fetch
from dagster_pipes_spark.spark._connect._registry import (
    PATCHES,
    Observer,
    backends_for_client,
    backends_for_session,
)
from dagster_pipes_spark.spark._connect._sql import wrap_sql
from dagster_pipes_spark.spark._connect._writers import merge_write, v1_write, v2_write, wrap_writer


def patch_specs() -> list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]]:
    from pyspark.sql.connect.readwriter import DataFrameWriter, DataFrameWriterV2
    from pyspark.sql.connect.session import SparkSession

    def session_of(writer: Any) -> list[Observer]:
        return backends_for_session(getattr(writer, "_spark", None))

    def client_of(writer: Any) -> list[Observer]:
        return backends_for_client(getattr(writer, "_client", None))

    specs: list[tuple[type, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = []
    for api in ("save", "insertInto", "saveAsTable"):
        specs.append(
            (
                DataFrameWriter,
                api,
                functools.partial(wrap_writer, api=api, read=v1_write, backends_of=session_of, observe=True),
            )
        )
    for api in ("create", "replace", "createOrReplace", "append", "overwrite", "overwritePartitions"):
        specs.append(
            (
                DataFrameWriterV2,
                api,
                functools.partial(wrap_writer, api=api, read=v2_write, backends_of=session_of, observe=True),
            )
        )
    try:
        from pyspark.sql.connect.merge import MergeIntoWriter
    except ImportError:  # Spark < 4
        pass
    else:
        specs.append(
            (
                MergeIntoWriter,
                "merge",
                functools.partial(
                    wrap_writer, api="merge", read=merge_write, backends_of=client_of, observe=False
                ),
            )
        )
    specs.append((SparkSession, "sql", wrap_sql))
    try:  # where Spark 3.5 clients drop the observed metrics of commands
        from pyspark.sql.connect.client.core import SparkConnectClient
    except ImportError:
        pass
    else:
        specs.append((SparkConnectClient, "_execute_and_fetch", wrap_fetch))
    return specs


def install(backend: Observer) -> None:
    """Observe the writes of ``backend``'s session while it is present."""
    PATCHES.add(backend, patch_specs)


def uninstall(backend: Observer) -> list[str]:
    """Remove ``backend``; restore the classes when it was the last. Returns what was left patched."""
    return PATCHES.remove(backend)


def is_instrumented() -> bool:
    """Whether the Connect writer classes are currently wrapped (for tests)."""
    return PATCHES.wrapped()
