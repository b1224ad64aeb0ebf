"""``pipes.log``: the direct path (no ``LogRecord`` while only the context's handler listens) sends
what ``logging``'s own path sends. Oracles: the stock ``dagster_pipes`` logger on the same calls, and
our logger forced onto ``logging``'s path (a filter attached) on the same calls."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any
from unittest.mock import MagicMock

import dagster_pipes
import pytest

import dagster_pipes_spark

CONTEXT = {
    "asset_keys": ["a"],
    "code_version_by_asset_key": {"a": None},
    "provenance_by_asset_key": {"a": None},
    "partition_key": None,
    "partition_key_range": None,
    "partition_time_window": None,
    "run_id": "r",
    "job_name": None,
    "retry_number": 0,
    "extras": {},
}


class _Obj:
    def __str__(self) -> str:
        return "obj %s"


def _calls(log: logging.Logger) -> None:
    """Every way a user's call shapes the message (kept free of levels stock maps differently)."""
    log.info("plain")
    log.info("100% done")  # no args: no formatting
    log.info("a %s b %d", "x", 3)
    log.info("%(k)s=%(v)s", {"k": "key", "v": 1})  # one mapping argument formats by name
    log.info("%s", {"k": "v"})  # ... but `%s` of a mapping when the text has no names
    log.info("%s", {})  # an empty mapping is an ordinary argument
    log.info("%s and %s", [1], (2,))
    log.info(_Obj(), "arg")  # msg is str()-ed before formatting
    log.info(42)
    log.debug("debug")
    log.warning("warn")
    log.error("error")
    log.critical("critical")
    log.log(logging.INFO, "log(INFO)")
    log.info("exc_info and stack_info do not change the message", exc_info=True, stack_info=True)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("exception")


def _sent(lib: ModuleType, calls: Callable[[logging.Logger], None], prepare: Any = None) -> list[Any]:
    received: list[Any] = []

    class Channel(lib.PipesMessageWriterChannel):  # type: ignore[name-defined]
        def write_message(self, message: Any) -> None:
            received.append(message)

    class Writer(lib.PipesMessageWriter):  # type: ignore[name-defined]
        @contextmanager
        def open(self, params: Any) -> Iterator[Any]:
            yield Channel()

    class Loader(lib.PipesContextLoader):  # type: ignore[name-defined]
        @contextmanager
        def load_context(self, params: Any) -> Iterator[Any]:
            yield dict(CONTEXT)

    with lib.PipesContext(params_loader=MagicMock(), context_loader=Loader(), message_writer=Writer()) as ctx:
        if prepare is not None:
            prepare(ctx.log)
        calls(ctx.log)
    return [m["params"] for m in received if m["method"] == "log"]


def _with_filter(log: logging.Logger) -> None:
    log.addFilter(lambda record: True)  # anything observing records takes logging's own path


def test_direct_path_sends_what_stock_and_logging_path_send() -> None:
    ours = _sent(dagster_pipes_spark, _calls)
    assert len(ours) == 16
    assert ours == _sent(dagster_pipes, _calls)
    assert ours == _sent(dagster_pipes_spark, _calls, _with_filter)
    assert ours[3] == {"message": "key=1", "level": "INFO"}
    assert ours[7] == {"message": "obj arg", "level": "INFO"}


def test_custom_levels_map_to_the_nearest_on_both_paths() -> None:
    def calls(log: logging.Logger) -> None:
        log.log(35, "no name")
        log.log(5, "below debug")
        log.log(55, "above critical")

    expected = [
        {"message": "no name", "level": "WARNING"},
        {"message": "below debug", "level": "DEBUG"},
        {"message": "above critical", "level": "CRITICAL"},
    ]
    assert _sent(dagster_pipes_spark, calls) == expected
    assert _sent(dagster_pipes_spark, calls, _with_filter) == expected


def test_bad_format_raises_at_the_call_site_like_stock() -> None:
    for lib in (dagster_pipes, dagster_pipes_spark):
        with pytest.raises(TypeError):
            _sent(lib, lambda log: log.info("%d", "not a number"))


def test_levels_disable_and_extra_handlers_are_honoured() -> None:
    def calls(log: logging.Logger) -> None:
        log.info("info")
        log.warning("warning")
        log.error("error")

    def level(log: logging.Logger) -> None:
        log.setLevel(logging.WARNING)

    def handler_level(log: logging.Logger) -> None:
        log.handlers[0].setLevel(logging.ERROR)

    def disabled(log: logging.Logger) -> None:
        log.disabled = True

    for prepare in (level, handler_level, disabled):
        assert _sent(dagster_pipes_spark, calls, prepare) == _sent(dagster_pipes, calls, prepare)
    assert len(_sent(dagster_pipes_spark, calls, level)) == 2
    assert len(_sent(dagster_pipes_spark, calls, handler_level)) == 1
    assert _sent(dagster_pipes_spark, calls, disabled) == []

    logging.disable(logging.WARNING)
    try:
        assert _sent(dagster_pipes_spark, calls) == [{"message": "error", "level": "ERROR"}]
    finally:
        logging.disable(logging.NOTSET)

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    def helper(log: logging.Logger) -> None:
        log.info("from the helper's caller", stacklevel=2)

    def more(log: logging.Logger) -> None:
        calls(log)
        helper(log)

    sent = _sent(dagster_pipes_spark, more, lambda log: log.addHandler(Keep()))
    assert sent == _sent(dagster_pipes_spark, more)
    # The extra handler got real records naming the user's code as the caller, as stock's do.
    stock: list[logging.LogRecord] = []
    _sent(dagster_pipes, more, lambda log: log.addHandler(Keep()))
    records, stock = records[:4], records[4:]
    assert [r.getMessage() for r in records] == ["info", "warning", "error", "from the helper's caller"]
    where = [(r.pathname, r.funcName, r.lineno) for r in records]
    assert where == [(r.pathname, r.funcName, r.lineno) for r in stock]
    assert [w[:2] for w in where] == [(__file__, "calls")] * 3 + [(__file__, "more")]
    # `extra=` takes logging's path: its reserved-key check applies.
    with pytest.raises(KeyError):
        _sent(dagster_pipes_spark, lambda log: log.info("x", extra={"message": "clash"}))


def test_logging_is_not_imported_to_open_and_close() -> None:
    import subprocess

    code = (
        "import sys, dagster_pipes_spark as lib\n"
        "loader = lib.PipesMappingParamsLoader({lib.DAGSTER_PIPES_CONTEXT_ENV_VAR: lib.encode_param("
        "{'path': sys.argv[1]}), lib.DAGSTER_PIPES_MESSAGES_ENV_VAR: lib.encode_param({'path': sys.argv[2]})})\n"
        "with lib.open_dagster_pipes(params_loader=loader) as pipes:\n"
        "    assert 'logging' not in sys.modules, 'logging imported to open'\n"
        "    pipes.log.info('now it is')\n"
        "print(sorted(m for m in ('logging', 'traceback', 'datetime') if m in sys.modules))\n"
    )
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        ctx = Path(tmp, "ctx.json")
        ctx.write_text(json.dumps(CONTEXT))
        out = Path(tmp, "messages")
        done = subprocess.run(
            [sys.executable, "-c", code, str(ctx), str(out)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "['logging', 'traceback']"
        lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [m["method"] for m in lines] == ["opened", "log", "closed"]
    assert lines[1]["params"] == {"message": "now it is", "level": "INFO"}
