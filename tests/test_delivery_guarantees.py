"""What the chunked channels guarantee when storage misbehaves (issue 15, items 1-4).

* an unreadable answer (a garbled 200 body) is transient; a programming error stays permanent;
* ``Retry-After`` is honoured even while closing, within the deadline;
* memory stays bounded in a long outage: pending messages spill to disk, the oldest log lines are
  dropped past the disk cap, reports never are, and every loss is counted;
* a lost report fails the job (non-zero exit) unless ``on_message_loss="warn"``;
* boto3 clients are used with one retry layer (ours): the user's client is untouched.

The end-to-end drills through the real Dagster readers are in ``test_fault_injection.py``.
"""

from __future__ import annotations

import binascii
import http.client
import http.server
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import pytest

from dagster_pipes_spark import DagsterPipesError, DagsterPipesMessageLossError
from dagster_pipes_spark._errors import UnreadableAnswerError
from dagster_pipes_spark._protocol import make_message
from dagster_pipes_spark._transports.blob import PipesBlobStoreMessageWriterChannel
from dagster_pipes_spark._transports.pending import PendingMessages, is_report
from dagster_pipes_spark._transports.retry import Deadline, RetryPolicy, classify


def _line(method: str, i: int, pad: int = 0) -> str:
    params: dict[str, Any] = {"message": f"{i}" + "x" * pad, "level": "INFO"} if method == "log" else {"i": i}
    return json.dumps(make_message(method, params))  # type: ignore[arg-type]


class _Channel(PipesBlobStoreMessageWriterChannel):
    """A channel over an in-test store whose behaviour the test scripts (storage is the external part)."""

    def __init__(self, fail: Any = None, **options: Any) -> None:
        super().__init__(**options)
        self.fail = fail  # callable(index) -> exception to raise, or None
        self.chunks: dict[int, list[str]] = {}
        self.attempts: list[tuple[float, int]] = []

    def upload_messages_chunk(self, payload: IO, index: int) -> None:
        self.attempts.append((time.monotonic(), index))
        error = self.fail(index) if self.fail is not None else None
        if error is not None:
            raise error
        self.chunks[index] = payload.read().splitlines()

    def received(self) -> list[str]:
        return [line for i in sorted(self.chunks) for line in self.chunks[i]]


# ----------------------------------------------------------------------------- classification


def test_unreadable_answers_are_transient_and_programming_errors_permanent():
    import requests

    def garbled_sdk_answer() -> BaseException:
        # what databricks-sdk raises for a 200 whose body is not JSON: requests' JSONDecodeError
        # (an OSError and a ValueError) over json's (a ValueError)
        response = requests.models.Response()
        response._content = b"<html><body>502 Bad Gateway</body></html>"
        response.status_code = 200
        try:
            response.json()
        except Exception as e:  # noqa: BLE001
            return e
        raise AssertionError("expected a decode error")

    transient = [
        garbled_sdk_answer(),
        json.JSONDecodeError("Expecting value", '{"a": ', 6),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        binascii.Error("Incorrect padding"),  # DBFS `data` that is not base64
        http.client.IncompleteRead(b"abc", 10),
        UnreadableAnswerError("The Pipes context at x is not valid JSON"),
    ]
    for exc in transient:
        assert classify(exc).kind == "transient", repr(exc)
    for exc in [TypeError("bug"), ValueError("bad argument"), AttributeError("x"), DagsterPipesError("bad")]:
        assert classify(exc).kind == "permanent", repr(exc)


def test_a_garbled_answer_is_retried_and_nothing_is_lost(capfd):
    """One garbled answer (the write was applied, its answer unreadable): retried under the same index;
    every message arrives once, in order, and nothing is reported lost."""
    garbled = {2}

    def fail(index: int) -> BaseException | None:
        if index in garbled:
            garbled.discard(index)
            return json.JSONDecodeError("Unterminated string", '{"path": "/tmp', 9)
        return None

    channel = _Channel(fail, interval=0, retry=RetryPolicy(backoff=0.01))
    lines = [_line("report_custom_message", i) for i in range(300)]
    with channel.buffered_upload_loop():
        for i, line in enumerate(lines):
            channel.write_line(line)
            if i % 50 == 0:
                channel.flush()
    assert channel.received() == lines
    assert [i for _, i in channel.attempts].count(2) == 2
    assert "not delivered" not in capfd.readouterr().err


# ----------------------------------------------------------------------------- Retry-After


def test_retry_after_is_honoured_while_closing():
    """A 429 with Retry-After: 3, then close(): the next request waits the 3 s (the issue measured 0.5 s)."""
    from databricks.sdk import errors

    from dagster_pipes_spark._transports.sdk import translate_sdk_error

    # what the databricks-sdk backend raises for the SDK's 429
    answers = [translate_sdk_error(errors.TooManyRequests("slow down", retry_after_secs=3))]
    channel = _Channel(lambda index: answers.pop(0) if answers else None, interval=0)
    with channel.buffered_upload_loop():
        channel.write_line(_line("report_custom_message", 0))
        deadline = time.monotonic() + 5
        while not channel.attempts and time.monotonic() < deadline:
            time.sleep(0.01)
    # close() returned: the retry went out after the wait the server asked for, and delivered
    (first, _), (second, _) = channel.attempts
    assert 3.0 <= second - first < 4.5, second - first
    assert channel.delivered_messages == 1


def test_retry_after_past_the_deadline_gives_up_instead_of_sending_early():
    calls: list[float] = []

    def fn() -> None:
        from databricks.sdk import errors

        from dagster_pipes_spark._transports.sdk import translate_sdk_error

        calls.append(time.monotonic())
        raise translate_sdk_error(errors.TemporarilyUnavailable("later", retry_after_secs=5))

    deadline = Deadline(30)
    threading.Timer(0.3, lambda: deadline.tighten(time.monotonic() + 1.0)).start()  # close() called
    started = time.monotonic()
    with pytest.raises(Exception, match="later"):
        RetryPolicy(timeout=60).call(fn, "op", deadline=deadline)
    assert len(calls) == 1  # never sent before the 5 s were up
    assert time.monotonic() - started < 1.5


# ----------------------------------------------------------------------------- bounded memory


def test_pending_messages_spill_to_disk_and_come_back_in_order():
    pending = PendingMessages(max_memory_bytes=10_000, max_spill_bytes=10**9)
    lines = [_line("log" if i % 3 else "report_asset_materialization", i, pad=100) for i in range(2000)]
    for line in lines:
        pending.append(line)
    assert pending.memory_bytes <= 10_000 and pending.spill_bytes > 200_000
    assert pending.peak_memory_bytes <= 10_000 + 300  # one buffer: a byte per byte of message
    assert pending.reports == sum(1 for line in lines if is_report(line))
    out: list[str] = []
    while pending:
        chunk = pending.take(50_000)
        assert sum(len(x) + 1 for x in chunk.lines) <= 50_000
        out.extend(chunk.lines)
        assert chunk.count == len(chunk.lines) and chunk.reports == sum(map(is_report, chunk.lines))
    assert out == lines and pending.reports == 0 and pending.dropped_logs == 0
    pending.close()


def test_past_the_disk_cap_the_oldest_log_lines_go_first_and_reports_never():
    pending = PendingMessages(max_memory_bytes=5_000, max_spill_bytes=50_000)
    lines = [_line("log" if i % 4 else "report_asset_check", i, pad=150) for i in range(1000)]
    for line in lines:
        pending.append(line)
    assert pending.spill_bytes <= 50_000 + 5_000
    assert pending.dropped_logs > 500
    out = pending.take(None).lines
    assert len(out) + pending.dropped_logs == len(lines)
    # every report is still there, in order, and the log lines kept are the newest ones, in order
    assert [x for x in out if is_report(x)] == [x for x in lines if is_report(x)]
    kept_logs = [x for x in out if not is_report(x)]
    all_logs = [x for x in lines if not is_report(x)]
    assert kept_logs == all_logs[len(all_logs) - len(kept_logs) :]
    pending.close()


def test_memory_stays_bounded_in_an_outage_and_everything_arrives_after_it():
    """Storage down while 20,000 messages (~4 MB) are written with a 256 KB memory cap; then it comes
    back: all arrive once, in order; memory never held more than the cap (plus one message)."""
    down = threading.Event()
    down.set()
    unavailable = ConnectionResetError(104, "Connection reset by peer")
    channel = _Channel(
        lambda index: unavailable if down.is_set() else None,
        interval=0,
        max_pending_bytes=256 * 1024,
        retry=RetryPolicy(backoff=0.05, backoff_max=0.2, timeout=120),
    )
    lines = [_line("log", i, pad=150) for i in range(20_000)]
    with channel.buffered_upload_loop():
        for line in lines:
            channel.write_line(line)
        stats = channel.pending_stats
        assert stats["spill_bytes"] > 3_000_000, stats
        assert stats["peak_memory_bytes"] <= 256 * 1024 + 300, stats
        down.clear()
    assert channel.received() == lines
    # chunks are capped too: by the memory cap, but never under 1 MiB (the reader drains one per poll)
    assert max(len("\n".join(c)) for c in channel.chunks.values()) <= 1024 * 1024
    assert channel.pending_stats["peak_memory_bytes"] <= 256 * 1024 + 300


# ----------------------------------------------------------------------------- the job's exit status

_JOB = textwrap.dedent(
    """
    import sys
    from dagster_pipes_spark import PipesMappingParamsLoader, PipesDefaultContextLoader, open_dagster_pipes
    from dagster_pipes_spark._transports.blob import PipesBlobStoreMessageWriter, PipesBlobStoreMessageWriterChannel

    class Denied(PipesBlobStoreMessageWriterChannel):
        def upload_messages_chunk(self, payload, index):
            raise PermissionError(13, "Permission denied")

    class Writer(PipesBlobStoreMessageWriter):
        def make_channel(self, params):
            return Denied(**self.channel_options())

    mode, on_loss = sys.argv[1], sys.argv[2]
    from dagster_pipes_spark._encoding import encode_param
    params = {
        "DAGSTER_PIPES_CONTEXT": encode_param({"data": {"asset_keys": ["a"], "run_id": "r", "extras": {}}}),
        "DAGSTER_PIPES_MESSAGES": encode_param({}),
    }
    pipes = open_dagster_pipes(
        params_loader=PipesMappingParamsLoader(params),
        context_loader=PipesDefaultContextLoader(),
        message_writer=Writer(interval=0, on_message_loss=on_loss),
    )
    if mode == "log-only":
        pipes.log.info("hello")
        pipes.close()
    else:
        pipes.report_asset_materialization(metadata={"n": 1})
        if mode == "with":
            pipes.close()
        # "atexit": never closed; the interpreter's exit closes it
    print("body done")
    """
)


@pytest.mark.parametrize(
    ("mode", "on_loss", "status"),
    [
        ("with", "raise", 1),
        ("atexit", "raise", 1),
        ("with", "warn", 0),
        ("atexit", "warn", 0),
    ],
)
def test_a_lost_report_fails_the_job_unless_told_to_warn(mode, on_loss, status):
    proc = subprocess.run(
        [sys.executable, "-c", _JOB, mode, on_loss], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == status, proc.stderr
    assert "body done" in proc.stdout or (mode, on_loss) == ("with", "raise")  # close() raised there
    assert "message(s) were not delivered" in proc.stderr
    assert "report(s)" in proc.stderr
    if status:
        assert "on_message_loss='warn'" in proc.stderr  # the error says how to opt out


def test_a_lost_log_line_alone_only_warns():
    """`opened` is lost too here, so the job fails: a log line alone (after a good `opened`) is the
    channel-level case, checked in test_failure_bounds; here the writer's denial of everything
    includes reports, so only `warn` keeps the status 0."""
    proc = subprocess.run(
        [sys.executable, "-c", _JOB, "log-only", "warn"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


def test_on_message_loss_and_max_pending_bytes_are_validated():
    from dagster_pipes_spark import PipesDbfsMessageWriter

    with pytest.raises(DagsterPipesError, match="on_message_loss='ignore'"):
        PipesDbfsMessageWriter(on_message_loss="ignore")  # type: ignore[arg-type]
    with pytest.raises(DagsterPipesError, match="max_pending_bytes=0"):
        PipesDbfsMessageWriter(max_pending_bytes=0)
    with pytest.raises(DagsterPipesMessageLossError):
        raise DagsterPipesMessageLossError("is a DagsterPipesError")


# ----------------------------------------------------------------------------- one retry layer for S3


@pytest.fixture
def always_503() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering every request 503 (an S3 outage); yields (url, requests seen)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_POST = _answer  # noqa: N815 - http.server's handler names

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_s3_requests_go_out_once_per_policy_attempt(always_503):
    import boto3
    from botocore.config import Config

    from dagster_pipes_spark import PipesS3ContextLoader, PipesS3MessageWriterChannel

    url, seen = always_503
    user_config = Config(retries={"max_attempts": 5, "mode": "legacy"})
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=user_config,
    )
    user_retries = dict(client.meta.config.retries)
    with pytest.raises(Exception, match=r"503|SlowDown"):  # boto3 alone: 1 + 5 retries per call
        client.put_object(Bucket="b", Key="k", Body=b"x")
    assert len(seen) == 6
    seen.clear()

    policy = RetryPolicy(attempts=3, backoff=0.01, backoff_max=0.01)
    channel = PipesS3MessageWriterChannel(
        client, "b", "msgs", interval=0, retry=policy, flush_timeout=3, on_message_loss="warn"
    )
    with channel.buffered_upload_loop():
        channel.write_line(_line("log", 0))
    puts = len([r for r in seen if r.startswith("PUT")])
    assert channel.upload_calls >= 3 and puts == channel.upload_calls, seen  # one request per attempt
    seen.clear()
    with (
        pytest.raises(DagsterPipesError, match="Cannot read the Pipes context"),
        PipesS3ContextLoader(client, retry=policy).load_context({"bucket": "b", "key": "ctx.json"}),
    ):
        pass
    assert len(seen) == 3, seen
    # the user's client is untouched: its own retry settings stand
    assert client.meta.config.retries == user_retries
    seen.clear()
    with pytest.raises(Exception, match=r"503|SlowDown"):
        client.put_object(Bucket="b", Key="k", Body=b"x")
    assert len(seen) == 6


def test_s3_single_attempt_copy_still_works_against_moto(moto_s3):
    """The copy keeps the endpoint, region and credentials: a real round trip through moto."""
    from dagster_pipes_spark import PipesS3ContextLoader, PipesS3MessageWriterChannel

    _url, client, _env = moto_s3
    client.put_object(
        Bucket="pipes",
        Key="ctx.json",
        Body=json.dumps({"asset_keys": ["a"], "run_id": "r", "extras": {}}).encode(),
    )
    with PipesS3ContextLoader(client).load_context({"bucket": "pipes", "key": "ctx.json"}) as data:
        assert data["run_id"] == "r"
    channel = PipesS3MessageWriterChannel(client, "pipes", "single", interval=0)
    with channel.buffered_upload_loop():
        channel.write_line(_line("log", 1))
    body = client.get_object(Bucket="pipes", Key="single/1.json")["Body"].read().decode()
    assert json.loads(body)["params"]["message"] == "1"
