"""One asset-key escape/split pair for the whole package, with Dagster's ``AssetKey`` rules: a key whose
parts hold ``/`` and ``\\`` resolves the same in ``report_asset_materialization`` and in the Spark hooks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import MagicMock

import dagster as dg
import pytest

from dagster_pipes_spark import (
    PipesContext,
    PipesContextLoader,
    PipesMessageWriter,
    PipesMessageWriterChannel,
)
from dagster_pipes_spark._protocol import escape_asset_key_path, to_asset_key_path
from dagster_pipes_spark.spark._targets import AssetResolver
from dagster_pipes_spark.spark._write_record import OP_WRITE, SparkWrite

PARTS_CASES = [
    ["raw\\zone", "orders/2024"],
    ["a/b", "c"],
    ["back\\slash"],
    ["trailing\\"],
    ["x", "y\\/z"],
]


@pytest.mark.parametrize("parts", PARTS_CASES)
def test_escape_and_split_match_dagster(parts: list[str]) -> None:
    escaped = escape_asset_key_path(parts)
    assert escaped == dg.AssetKey(parts).to_escaped_user_string()
    assert to_asset_key_path(escaped) == parts
    assert dg.AssetKey.from_escaped_user_string(escaped).path == parts


class _Loader(PipesContextLoader):
    def __init__(self, keys: list[str]) -> None:
        self._keys = keys

    @contextmanager
    def load_context(self, params: Any) -> Iterator[Any]:
        yield {
            "asset_keys": self._keys,
            "code_version_by_asset_key": dict.fromkeys(self._keys),
            "provenance_by_asset_key": dict.fromkeys(self._keys),
            "partition_key": None,
            "partition_key_range": None,
            "partition_time_window": None,
            "run_id": "r",
            "job_name": None,
            "retry_number": 0,
            "extras": {},
        }


class _Writer(PipesMessageWriter[Any]):
    def __init__(self) -> None:
        self.messages: list[Any] = []

    @contextmanager
    def open(self, params: Any) -> Iterator[Any]:
        messages = self.messages

        class Channel(PipesMessageWriterChannel):
            def write_message(self, message: Any) -> None:
                messages.append(message)

        yield Channel()


@pytest.mark.parametrize("parts", PARTS_CASES)
def test_context_and_spark_hooks_resolve_the_same_key(parts: list[str]) -> None:
    escaped = dg.AssetKey(parts).to_escaped_user_string()  # what the orchestrator sends in asset_keys
    writer = _Writer()
    with PipesContext(
        params_loader=MagicMock(), context_loader=_Loader([escaped, "other"]), message_writer=writer
    ) as ctx:
        ctx.report_asset_materialization(asset_key=parts)  # type: ignore[arg-type]  # parts are accepted
        with pytest.raises(Exception, match="already been materialized"):
            ctx.report_asset_materialization(asset_key=dg.AssetKey(parts))  # type: ignore[arg-type]
    [materialization] = [m for m in writer.messages if m["method"] == "report_asset_materialization"]
    assert materialization["params"]["asset_key"] == escaped

    write = SparkWrite(OP_WRITE, table=("main", "sales", "orders"))
    mappings: list[Any] = [
        {"main.sales.orders": parts},
        {"orders": dg.AssetKey(parts)},
        {"sales.orders": escaped},
    ]
    for mapping in mappings:
        assert AssetResolver(mapping, [escaped, "other"]).resolve(write) == (escaped, "")
    assert AssetResolver(lambda target: parts, [escaped]).resolve(write) == (escaped, "")


def test_default_rule_matches_unescaped_key_parts() -> None:
    """A table maps to the in-scope key whose parts equal its trailing name parts, whatever they hold."""
    parts = ["sales", "ord\\ers/v2"]
    escaped = escape_asset_key_path(parts)
    write = SparkWrite(OP_WRITE, table=("main", "sales", "ord\\ers/v2"))
    assert AssetResolver(None, [escaped, "other"]).resolve(write) == (escaped, "")
