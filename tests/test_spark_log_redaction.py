"""A Spark hook's warning that quotes an exception carries no credential: every line the hooks log
through the Pipes context is masked by ``_redact`` first. No Spark needed: the failures are planted
where the hooks record them."""

from __future__ import annotations

import secrets
from typing import Any

from dagster_pipes_spark._redact import MASK, register_secret
from dagster_pipes_spark.spark._session import HookSession
from dagster_pipes_spark.spark._write_record import SparkWrite
from dagster_pipes_spark.spark._write_report import SparkWriteReport

TOKEN = f"dapi{secrets.token_hex(16)}"


class _RecordingLog:
    """A Pipes context's logger that keeps what it is given."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda message: self.lines.append((level, message))


class _Pipes:
    def __init__(self) -> None:
        self.log = _RecordingLog()


def _finished_session(*failures: BaseException, failed_write_error: str) -> list[tuple[str, str]]:
    pipes = _Pipes()
    session = HookSession(pipes, None, SparkWriteReport())
    for exc in failures:
        session.collector.hook_error("onSuccess", exc)
    session.collector.add(SparkWrite(operation="write", path="/tmp/t", error=failed_write_error))
    session.finish(None, timeout=1.0)
    return pipes.log.lines


def test_hook_warnings_mask_tokens_in_exception_texts() -> None:
    lines = _finished_session(
        RuntimeError(f"gateway said 401 for Authorization: Bearer {TOKEN}"),
        ValueError(f"bad url https://host/api?token={TOKEN}"),
        failed_write_error=f"Py4JJavaError: storage refused (password={TOKEN})",
    )
    warnings = [message for level, message in lines if level == "warning"]
    assert len(warnings) == 3, lines  # two hook errors and the failed write
    assert all(TOKEN not in message and TOKEN[4:16] not in message for _, message in lines), lines
    assert all(MASK in message for message in warnings), warnings


def test_registered_secrets_are_masked_anywhere_in_a_warning() -> None:
    secret = f"s3cr3t-{secrets.token_hex(12)}"
    register_secret(secret)
    lines = _finished_session(failed_write_error=f"could not write: the client echoed {secret} back")
    assert lines and all(secret not in message for _, message in lines), lines
    assert any(MASK in message for _, message in lines), lines
