"""Drop-in fidelity: code and unit tests written against the stock ``dagster_pipes`` behave the same
with ``import dagster_pipes_spark as dagster_pipes``.

Every test here that is about identical behaviour runs against BOTH libraries (the stock one is the
reference), written the way the stock library's own users test their code: a ``MagicMock`` writer
and params loader, an in-memory channel, a logging handler on the Prefect logger.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import MagicMock

import dagster_pipes
import pytest

import dagster_pipes_spark

LIBS = [pytest.param(dagster_pipes, id="stock"), pytest.param(dagster_pipes_spark, id="ours")]

BASE: dict[str, Any] = {
    "asset_keys": ["a"],
    "code_version_by_asset_key": {"a": "v1"},
    "provenance_by_asset_key": {"a": None},
    "partition_key": None,
    "partition_key_range": None,
    "partition_time_window": None,
    "run_id": "r1",
    "job_name": "j",
    "retry_number": 0,
    "extras": {"x": 1},
}

#: Context shapes a step can have, as the orchestrator sends them.
SHAPES: dict[str, dict[str, Any]] = {
    "op": {"asset_keys": None, "code_version_by_asset_key": None, "provenance_by_asset_key": None},
    "asset_check_step": {"asset_keys": [], "code_version_by_asset_key": {}, "provenance_by_asset_key": {}},
    "one_asset": {},
    "two_assets": {
        "asset_keys": ["a", "b"],
        "code_version_by_asset_key": {"a": "v1", "b": None},
        "provenance_by_asset_key": {"a": None, "b": None},
    },
    "static_partition": {"partition_key": "eu", "partition_key_range": {"start": "eu", "end": "eu"}},
    "time_partition": {
        "partition_key": "2024-01-01",
        "partition_key_range": {"start": "2024-01-01", "end": "2024-01-01"},
        "partition_time_window": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-02T00:00:00+00:00"},
    },
    "time_range": {
        "partition_key": None,
        "partition_key_range": {"start": "2024-01-01", "end": "2024-01-03"},
        "partition_time_window": {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-04T00:00:00+00:00"},
    },
}

PROPERTIES = [
    "is_asset_step",
    "asset_key",
    "asset_keys",
    "provenance",
    "provenance_by_asset_key",
    "code_version",
    "code_version_by_asset_key",
    "is_partition_step",
    "partition_key",
    "partition_key_range",
    "partition_time_window",
    "run_id",
    "job_name",
    "retry_number",
    "extras",
]

#: Deliberate differences (README, "Differences from dagster_pipes"): for a step over a range of
#: partitions stock says `partition_key` "does not target any partitions"; we say it targets several.
DELIBERATE = {("time_range", "partition_key")}


def _loader_class(lib: ModuleType, data: Mapping[str, Any]) -> Any:
    class InMemoryContextLoader(lib.PipesContextLoader):  # type: ignore[name-defined]
        @contextmanager
        def load_context(self, params: Any) -> Iterator[Any]:
            yield dict(data)

    return InMemoryContextLoader


def _memory_writer(lib: ModuleType) -> tuple[Any, list[Any]]:
    received: list[Any] = []

    class InMemoryChannel(lib.PipesMessageWriterChannel):  # type: ignore[name-defined]
        def write_message(self, message: Any) -> None:
            received.append(message)

    class InMemoryWriter(lib.PipesMessageWriter):  # type: ignore[name-defined]
        @contextmanager
        def open(self, params: Any) -> Iterator[Any]:
            yield InMemoryChannel()

    return InMemoryWriter(), received


@pytest.mark.parametrize("lib", LIBS)
def test_magicmock_writer_and_params_loader(lib: ModuleType) -> None:
    """The stock library's own unit-test pattern: construction works and messages reach the mock."""
    writer = MagicMock()
    context = lib.PipesContext(
        params_loader=MagicMock(), context_loader=_loader_class(lib, BASE)(), message_writer=writer
    )
    context.report_asset_materialization(metadata={"rows": 3}, data_version="v7")
    context.report_asset_check("c", passed=True)
    context.close()
    channel = writer.open.return_value.__enter__.return_value
    methods = [call.args[0]["method"] for call in channel.write_message.call_args_list]
    assert methods == ["opened", "report_asset_materialization", "report_asset_check", "closed"]
    materialization = channel.write_message.call_args_list[1].args[0]
    assert isinstance(materialization, dict)
    assert materialization["params"]["data_version"] == "v7"
    assert materialization["params"]["metadata"]["rows"] == {"raw_value": 3, "type": "__infer__"} or (
        materialization["params"]["metadata"]["rows"] == {"raw_value": 3, "type": "int"}
    )


@pytest.mark.parametrize("lib", LIBS)
def test_custom_channel_receives_message_dicts(lib: ModuleType) -> None:
    writer, received = _memory_writer(lib)
    with lib.PipesContext(
        params_loader=MagicMock(), context_loader=_loader_class(lib, BASE)(), message_writer=writer
    ) as context:
        context.log.info("hello")
        context.report_custom_message({"k": [1, 2]})
    assert all(isinstance(m, dict) for m in received)
    assert [m["method"] for m in received] == ["opened", "log", "report_custom_message", "closed"]
    assert received[1]["params"] == {"message": "hello", "level": "INFO"}
    assert received[2]["params"] == {"payload": {"k": [1, 2]}}
    assert received[0]["__dagster_pipes_version"] == "0.1"


def test_unsendable_user_payload_still_fails_at_the_call_site_on_custom_channels() -> None:
    writer, received = _memory_writer(dagster_pipes_spark)
    with dagster_pipes_spark.PipesContext(
        params_loader=MagicMock(),
        context_loader=_loader_class(dagster_pipes_spark, BASE)(),
        message_writer=writer,
    ) as context:
        with pytest.raises(dagster_pipes_spark.DagsterPipesError, match="not JSON-serializable"):
            context.report_custom_message({"when": object()})
        context.report_custom_message("still open")
    assert [m["method"] for m in received] == ["opened", "report_custom_message", "closed"]


def _outcome(context: Any, prop: str) -> Any:
    try:
        return ("value", getattr(context, prop))
    except Exception as e:  # noqa: BLE001 - the outcome under comparison is the error itself
        return ("error", type(e).__name__, str(e))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_property_matches_stock_values_and_error_texts(shape: str) -> None:
    data = {**BASE, **SHAPES[shape]}
    outcomes = {}
    for lib in (dagster_pipes, dagster_pipes_spark):
        writer, _ = _memory_writer(lib)
        context = lib.PipesContext(
            params_loader=MagicMock(), context_loader=_loader_class(lib, data)(), message_writer=writer
        )
        outcomes[lib.__name__] = {prop: _outcome(context, prop) for prop in PROPERTIES}
        context.close()
    stock, ours = outcomes["dagster_pipes"], outcomes["dagster_pipes_spark"]
    for prop in PROPERTIES:
        if (shape, prop) in DELIBERATE:
            assert ours[prop][0] == stock[prop][0] == "error"
            continue
        assert ours[prop] == stock[prop], prop


def test_partition_time_window_error_names_itself() -> None:
    writer, _ = _memory_writer(dagster_pipes_spark)
    with dagster_pipes_spark.PipesContext(
        params_loader=MagicMock(),
        context_loader=_loader_class(dagster_pipes_spark, BASE)(),
        message_writer=writer,
    ) as context:
        with pytest.raises(dagster_pipes_spark.DagsterPipesError) as info:
            _ = context.partition_time_window
    assert str(info.value) == (
        "Missing required property: `partition_time_window` is undefined. Current step does not target any partitions."
    )


@pytest.mark.parametrize("lib", LIBS)
def test_prefect_oversize_closed_keeps_the_exception_name(lib: ModuleType) -> None:
    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger(lib.PipesPrefectLogsMessageWriter.LOGGER_NAME)
    handler = Capture()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        writer = lib.PipesPrefectLogsMessageWriter()
        with writer.open({"prefect_logs": True, "max_message_bytes": 2000}) as channel:
            huge: dict[str, Any] = {
                "message": "x" * 5000,
                "stack": [],
                "name": "KeyError",
                "cause": None,
                "context": None,
            }
            channel.write_message(
                {"__dagster_pipes_version": "0.1", "method": "closed", "params": {"exception": huge}}
            )
    finally:
        logger.removeHandler(handler)
    closed = json.loads(records[-1])
    assert closed["method"] == "closed"
    assert closed["params"]["exception"]["name"] == "KeyError"
    assert len(records[-1]) < 2000


@pytest.mark.parametrize("lib", LIBS)
def test_version_submodule(lib: ModuleType) -> None:
    module = __import__(f"{lib.__name__}.version", fromlist=["__version__"])
    assert isinstance(module.__version__, str) and module.__version__


@pytest.mark.parametrize("lib", LIBS)
def test_stdio_log_writer_channel_handler_follows_a_file(lib: ModuleType, tmp_path: Path) -> None:
    chunks: list[str] = []

    class Collecting(lib.PipesStdioLogWriterChannel):  # type: ignore[name-defined]
        WAIT_FOR_TEE_SECONDS = 0.2

        def write_chunk(self, chunk: str) -> None:
            chunks.append(chunk)

    path = tmp_path / "out.log"
    path.write_text("first\n")
    channel = Collecting(stream="stdout", interval=0.05, name="collect")
    started, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=channel.handler, args=(str(path), started, stop))
    thread.start()
    assert started.wait(5)
    with path.open("a") as f:
        f.write("second\n")
    time.sleep(0.2)
    stop.set()
    with path.open("a") as f:  # written right after stop: still delivered within WAIT_FOR_TEE_SECONDS
        f.write("third\n")
    thread.join(5)
    assert not thread.is_alive()
    assert "".join(chunks) == "first\nsecond\nthird\n"
