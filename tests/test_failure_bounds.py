"""Bounded under failure: storage that fails, never answers or refuses, through the REAL readers.

The drills (``tests/_failure_drill.py``) run the real orchestrator with the real ``dagster_databricks``
DBFS and UC Volumes injectors and readers; the external process writes with a DEFAULT
``WorkspaceClient(host=..., token=...)`` (the SDK's own ~300 s retry window, not a fast one). Once its
first messages are delivered, every write request answers 503, never answers (a black hole) or answers
403. Measured on the wall clock: end of the job body -> process exit against ``flush_timeout`` (60 s by
default), SIGTERM -> exit against 30 s. Checked: what was delivered before the fault reached Dagster,
once and in order; nothing after it did; stderr counts exactly the lost messages, names the path and
the reason. All drills of the module run concurrently (each has its own emulator), so the file takes
about as long as its slowest drill (~1.5 min).
"""

import contextlib
import json
import re
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from _failure_drill import (
    AFTER,
    BEFORE,
    FAULTS,
    FLUSH_TIMEOUT,
    KINDS,
    LOST_AFTER_FAULT,
    SIGTERM_BOUND,
    VOLUME,
    Drill,
    phases,
    run_drills,
)

from dagster_pipes_spark import DagsterPipesError, DagsterPipesMessageLossError
from dagster_pipes_spark._protocol import make_message
from dagster_pipes_spark._transports.databricks import PipesFileStoreMessageWriterChannel
from dagster_pipes_spark._transports.retry import Deadline, RetryPolicy, classify
from dagster_pipes_spark._transports.sdk import SdkDbfsFileStore, SdkVolumesFileStore
from dagster_pipes_spark.testing import Emulator

#: close() returning late by scheduling only (the machine is busy with every drill at once).
CLOSE_SLACK = 0.5
#: Process teardown after close() returned (interpreter exit, ~0.5 s alone; measured up to 6 s with
#: every drill at once on a 2-core machine busy with other tests). close() itself is held to CLOSE_SLACK.
SLACK = 12.0
#: Two runs of every default-bound drill that ends with its body.
REPEATS = 2
#: Smaller flush timeouts: the bound follows the setting.
SCALED = (5.0, 15.0)

BODY_DRILLS = [Drill(k, f, "body", run=r) for k in KINDS for f in FAULTS for r in range(REPEATS)]
SIGTERM_DRILLS = [Drill(k, f, "sigterm") for k in KINDS for f in ("503", "blackhole")]
SCALED_DRILLS = [Drill("volumes", f, "body", flush_timeout=t) for f in ("503", "blackhole") for t in SCALED]


@pytest.fixture(scope="module")
def drills(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run every drill of the module at once; results by drill name."""
    results = run_drills(
        [*BODY_DRILLS, *SIGTERM_DRILLS, *SCALED_DRILLS], tmp_path_factory.mktemp("failure-drills")
    )
    return {r["name"]: r for r in results}


def _result(drills: dict[str, dict[str, Any]], drill: Drill) -> dict[str, Any]:
    result = drills[drill.name]
    assert "error" not in result, result.get("error")
    assert not result.get("killed"), f"{drill.name}: still running after the hard limit\n{result['stderr']}"
    return result


def _check_delivery(drill: Drill, result: dict[str, Any]) -> None:
    """What was delivered before the fault is all there, once, in order; nothing after it; stderr says
    exactly how many messages were lost, where, and why."""
    got = phases(result)
    assert got["before"] == list(range(BEFORE)), got  # delivered before the fault: all, once, in order
    assert got["after"] == [], got  # never a later message after a lost one
    assert not result["received_closed"]
    [(lost, where)] = result["loss"]
    assert lost == LOST_AFTER_FAULT  # AFTER custom messages, one log, `closed`
    directory = r"/tmp/\w+" if drill.kind == "dbfs" else re.escape(VOLUME) + r"/tmp/\w+"
    assert re.fullmatch(rf"{directory} via sdk \((dbfs|files) API at http://127\.0\.0\.1:\d+\)", where), where
    # a black hole is named either way: the deadline fell while a request was waiting for its answer,
    # or after one had timed out (its read timeout) and the next was waiting for its backoff
    reason = {
        "503": r"HTTP 503 \(TemporarilyUnavailable",
        "403": r"HTTP 403 \(PermissionDenied",
        "blackhole": r"was still waiting for storage to answer|storage kept failing until .* Read timed out",
    }[drill.fault]
    loss_line = next(line for line in result["stderr"].splitlines() if "were not delivered" in line)
    assert re.search(reason, loss_line), loss_line


@pytest.mark.parametrize("drill", BODY_DRILLS, ids=lambda d: d.name)
def test_end_of_body_to_exit_within_flush_timeout(drills, drill):
    """Default writer settings: the process ends within flush_timeout (60 s) of its body, whatever
    storage does; a permanent error (403) ends it at once, after one attempt."""
    result = _result(drills, drill)
    _check_delivery(drill, result)
    elapsed = result["exit_seconds"]
    # reports (custom messages, `closed`) were lost: the job must not look green
    assert result["returncode"] == 1, result["stderr"]
    assert "DagsterPipesMessageLossError: 16 report(s)" in result["stderr"], result["stderr"]
    if drill.fault == "403":
        # at once: close() returns without waiting, and the process ends nowhere near flush_timeout
        # (interpreter exit on a busy 2-core machine alone can take seconds)
        assert result["close_seconds"] < SLACK, result
        assert elapsed < FLUSH_TIMEOUT / 4, elapsed
        assert result["stats"]["faults"] == 1  # one attempt: a permanent error is not retried
        assert "permanent error" in result["stderr"]
    else:
        # It keeps trying until the flush timeout (the outage may end), and not a moment longer.
        assert FLUSH_TIMEOUT - 1 < result["close_seconds"] <= FLUSH_TIMEOUT + CLOSE_SLACK, result
        assert elapsed <= FLUSH_TIMEOUT + SLACK, elapsed
    if drill.fault == "503":  # retried with backoff, not hammered: the SDK made one request per attempt
        assert 3 <= result["stats"]["faults"] <= 40, result["stats"]


@pytest.mark.parametrize("drill", SIGTERM_DRILLS, ids=lambda d: d.name)
def test_sigterm_during_an_outage_exits_within_30s(drills, drill):
    result = _result(drills, drill)
    _check_delivery(drill, result)
    assert result["returncode"] == -signal.SIGTERM
    assert result["exit_seconds"] <= SIGTERM_BOUND, result["exit_seconds"]
    assert "allowed after SIGTERM" in result["stderr"]


@pytest.mark.parametrize("drill", SCALED_DRILLS, ids=lambda d: d.name)
def test_bound_follows_flush_timeout(drills, drill):
    result = _result(drills, drill)
    _check_delivery(drill, result)
    assert drill.flush_timeout is not None
    assert drill.flush_timeout - 1 < result["close_seconds"] <= drill.flush_timeout + CLOSE_SLACK
    assert result["exit_seconds"] <= drill.flush_timeout + SLACK
    assert f"the flush timeout of {drill.flush_timeout:g} s ran out" in result["stderr"]


# ----------------------------------------------------------------------------- in-process checks


@pytest.fixture
def ws():
    with Emulator(volumes=["main/default/pipes"]) as emulator:
        yield emulator


def _default_client(ws: Emulator) -> Any:
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=ws.url, token=ws.token)  # the SDK's default retry policy


@pytest.mark.parametrize("store_class", [SdkDbfsFileStore, SdkVolumesFileStore])
def test_sdk_calls_never_sit_in_the_sdk_retry_window(ws, store_class):
    """A default client retries 503 for ~300 s and waits 60 s per request; our calls through it make
    one attempt bounded by request_timeout, and the user's client is left as it was."""
    client = _default_client(ws)
    store = store_class(client, request_timeout=1.5)
    path = "/tmp/bound/1.json" if store_class is SdkDbfsFileStore else f"{VOLUME}/bound/1.json"
    store.write_bytes(path, b"{}")
    writes = ["POST /api/2.0/dbfs/", "PUT /api/2.0/fs/"]

    ws.faults(rate=1.0, statuses=[503], endpoints=writes)
    ws.reset_stats()
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        store.write_bytes(path, b"{}")
    assert time.monotonic() - started < 1.0
    assert ws.stats["faults"] == 1  # one request: the SDK did not retry it
    assert classify(raised.value).transient and classify(raised.value).status == 503
    # translated at the backend's boundary into the package's own error, naming the SDK's
    assert type(raised.value).__name__ == "TransientStorageError"
    assert type(classify(raised.value).error).__name__ == "TemporarilyUnavailable"

    ws.faults(rate=1.0, hold=True, endpoints=writes)  # a black hole
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        store.write_bytes(path, b"{}")
    assert 1.4 < time.monotonic() - started < 3.0  # the request timeout, not the SDK's 60 s
    assert classify(raised.value).transient
    ws.clear_faults()

    assert client.config.http_timeout_seconds is None and client.config.retry_timeout_seconds is None
    assert type(client.config.clock).__name__ == "RealClock"


def test_permanent_errors_are_not_retried_and_transient_ones_stop_at_the_deadline():
    calls: list[float] = []

    class StatusError(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(f"HTTP {status}")
            self.status_code = status

    def failing(status: int):
        def fn() -> None:
            calls.append(time.monotonic())
            raise StatusError(status)

        return fn

    policy = RetryPolicy(attempts=50, backoff=0.05, backoff_max=0.2, timeout=30)
    for status in (400, 401, 403, 404):
        calls.clear()
        with pytest.raises(StatusError):
            policy.call(failing(status), "op")
        assert len(calls) == 1, status
    calls.clear()
    started = time.monotonic()
    with pytest.raises(StatusError):
        policy.call(failing(503), "op", deadline=Deadline(1.0))
    assert 0.7 < time.monotonic() - started <= 1.1 and len(calls) > 3
    calls.clear()
    with pytest.raises(StatusError):
        RetryPolicy(attempts=3, backoff=0.01).call(failing(429), "op")
    assert len(calls) == 3
    # a deadline moved earlier (close(), SIGTERM) wakes a retry that is waiting
    deadline = Deadline()
    threading.Timer(0.3, lambda: deadline.tighten(time.monotonic())).start()
    started = time.monotonic()
    with pytest.raises(StatusError):
        RetryPolicy(backoff=10, backoff_max=10, timeout=60).call(failing(503), "op", deadline=deadline)
    assert time.monotonic() - started < 1.5
    with pytest.raises(DagsterPipesError, match="attempts"):
        RetryPolicy(attempts=0)


def test_backends_translate_their_errors_and_the_policy_reads_only_ours():
    """Each backend turns its library's errors into the package's own at its boundary (SDK classes by
    status, botocore responses, Java text from dbutils, OSError numbers from FUSE); the retry policy
    classifies that family, and nothing else."""
    import botocore.exceptions
    import requests
    from databricks.sdk import errors

    from dagster_pipes_spark._transports.dbutils import translate_dbutils_error
    from dagster_pipes_spark._transports.errors import (
        PermanentStorageError,
        StorageNotFoundError,
        TransientStorageError,
        translate_common,
    )
    from dagster_pipes_spark._transports.object_stores import (
        translate_azure_error,
        translate_boto3_error,
        translate_gcs_error,
    )
    from dagster_pipes_spark._transports.sdk import translate_sdk_error

    sdk_cases: list[tuple[BaseException, str, int | None]] = [
        (errors.PermissionDenied("no"), "permanent", 403),
        (errors.Unauthenticated("no"), "permanent", 401),
        (errors.BadRequest("no"), "permanent", 400),
        (errors.InvalidParameterValue("no"), "permanent", 400),
        (errors.NotFound("no"), "not_found", 404),
        (errors.ResourceDoesNotExist("no"), "not_found", 404),
        (errors.TooManyRequests("slow down"), "transient", 429),
        (errors.RequestLimitExceeded("slow down"), "transient", 429),
        (errors.TemporarilyUnavailable("later"), "transient", 503),
        (errors.InternalError("oops"), "transient", 500),
        (errors.DeadlineExceeded("slow"), "transient", 504),
        (requests.ConnectionError("reset"), "transient", None),
        (requests.ReadTimeout("read timed out"), "transient", None),
    ]
    fuse_cases: list[tuple[BaseException, str, int | None]] = [
        (ConnectionResetError(104, "Connection reset by peer"), "transient", None),
        (TimeoutError("timed out"), "transient", None),
        (OSError(5, "Input/output error"), "transient", None),  # EIO from a FUSE mount
        (PermissionError(13, "Permission denied"), "permanent", None),
        (FileNotFoundError(2, "No such file"), "not_found", None),
        (TypeError("bug"), "permanent", None),
    ]
    family = {
        "transient": TransientStorageError,
        "permanent": PermanentStorageError,
        "not_found": StorageNotFoundError,
    }
    for translate, cases in ((translate_sdk_error, sdk_cases), (translate_common, fuse_cases)):
        for exc, kind, status in cases:
            translated = translate(exc)
            assert isinstance(translated, family[kind]), exc
            failure = classify(translated)
            assert (failure.kind, failure.status, failure.error) == (kind, status, translated.origin), exc
    # the SDK wraps the last error of its retry window: the cause decides
    try:
        try:
            raise errors.TemporarilyUnavailable("later")
        except errors.TemporarilyUnavailable as e:
            raise TimeoutError("Timed out after 0:05:00") from e
    except TimeoutError as wrapped:
        assert translate_sdk_error(wrapped).status == 503
    # a renamed class does not fool it: only the class hierarchy and the status count
    renamed = type("TemporarilyUnavailable", (Exception,), {})
    assert translate_sdk_error(renamed("x")).status is None
    # the policy itself knows no library: an SDK error nobody translated carries no status for it
    assert classify(errors.PermissionDenied("no")).status is None

    # botocore: the status and Retry-After of the parsed response
    throttled = botocore.exceptions.ClientError(
        {
            "Error": {"Code": "SlowDown", "Message": "Reduce your request rate."},
            "ResponseMetadata": {"HTTPStatusCode": 503, "HTTPHeaders": {"retry-after": "3"}},
        },
        "PutObject",
    )
    denied = botocore.exceptions.ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject"
    )
    assert (
        classify(translate_boto3_error(throttled)).status,
        classify(translate_boto3_error(throttled)).retry_after,
    ) == (503, 3.0)
    assert classify(translate_boto3_error(denied)).kind == "permanent"
    timeout = botocore.exceptions.ReadTimeoutError(endpoint_url="http://s3")
    assert classify(translate_boto3_error(timeout)).kind == "transient"

    # google-api-core and azure-core shapes (their libraries are not installed here)
    gcs_error = type("Forbidden", (Exception,), {"code": 403})("forbidden")
    azure_error = type("HttpResponseError", (Exception,), {"status_code": 429})("throttled")
    assert classify(translate_gcs_error(gcs_error)).kind == "permanent"
    assert classify(translate_azure_error(azure_error)).status == 429

    # dbutils: the Java exception named in the py4j text
    missing = Exception(
        "ExecutionError: An error occurred while calling o1.ls.\n: java.io.FileNotFoundException: x"
    )
    denied_java = Exception("java.nio.file.AccessDeniedException: /Volumes/a/b/c")
    assert isinstance(translate_dbutils_error(missing), StorageNotFoundError)
    assert classify(translate_dbutils_error(denied_java)).kind == "permanent"


def test_an_outage_that_ends_loses_nothing_and_never_skips_a_chunk(ws):
    """503 on the first uploads, then storage recovers: every message arrives once, in order, in
    contiguous chunks; nothing already delivered is rewritten."""
    client = _default_client(ws)
    store = SdkDbfsFileStore(client)
    ws.faults(rate=0.5, statuses=[503], seed=3, endpoints=["POST /api/2.0/dbfs/put"], max_faults=6)
    channel = PipesFileStoreMessageWriterChannel(
        store,
        "/tmp/recover",
        interval=0.2,
        max_chunk_bytes=200,  # many chunks, some of them failing
        retry=RetryPolicy(backoff=0.05, backoff_max=0.2),
    )
    with warnings.catch_warnings(), channel.buffered_upload_loop():
        warnings.simplefilter("ignore")  # many small chunks: the reader-drain warning is expected
        for i in range(60):
            channel.write_line(json.dumps({"method": "log", "params": {"i": i}}))
            time.sleep(0.02)
    chunks = sorted(ws.dbfs_root.joinpath("tmp/recover").glob("*.json"), key=lambda p: int(p.stem))
    assert [int(p.stem) for p in chunks] == list(range(1, len(chunks) + 1))
    received = [json.loads(line)["params"]["i"] for p in chunks for line in p.read_text().splitlines()]
    assert received == list(range(60))
    assert 0 < ws.stats["faults"] <= 6 and len(chunks) > 5
    assert channel.delivered_messages == 60 and channel.uploaded_chunks == len(chunks)
    # each chunk index was published by one successful request: none rewritten
    assert ws.stats["POST /api/2.0/dbfs/put"] - ws.stats["faults"] == len(chunks)


def test_messages_written_after_a_permanent_error_are_counted_not_kept(ws, capfd):
    client = _default_client(ws)
    store = SdkVolumesFileStore(client)
    ws.faults(rate=1.0, statuses=[403], endpoints=["PUT /api/2.0/fs/files"])
    channel = PipesFileStoreMessageWriterChannel(store, f"{VOLUME}/denied", interval=0)
    started = time.monotonic()

    def log(n: int) -> str:
        return json.dumps(make_message("log", {"message": str(n), "level": "INFO"}))

    with channel.buffered_upload_loop():
        channel.write_line(log(0))
        channel.flush()  # returns at the permanent error
        assert channel.upload_calls == 1
        for n in range(1, 1000):
            channel.write_line(log(n))
    assert time.monotonic() - started < 2.0
    assert channel.pending_stats["messages"] == 0  # nothing kept in memory once nothing can be delivered
    assert ws.stats["faults"] == 1
    err = capfd.readouterr().err
    assert re.search(
        rf"1000 message\(s\) were not delivered to {VOLUME}/denied via sdk [^\n]*; all of them log lines", err
    )
    # a lost report (here: a materialization) fails the job, unless the writer only warns
    for on_loss in ("raise", "warn"):
        channel = PipesFileStoreMessageWriterChannel(
            store, f"{VOLUME}/denied", interval=0, on_message_loss=on_loss
        )
        with contextlib.ExitStack() as stack:
            if on_loss == "raise":
                stack.enter_context(pytest.raises(DagsterPipesMessageLossError, match="1 report"))
            with channel.buffered_upload_loop():
                channel.write_line(log(0))
                channel.write_line(json.dumps(make_message("report_asset_materialization", {})))
        assert "2 message(s) were not delivered" in capfd.readouterr().err


def test_flush_timeout_is_validated():
    with pytest.raises(DagsterPipesError, match="flush_timeout=0"):
        PipesFileStoreMessageWriterChannel(None, "/tmp/x", flush_timeout=0)  # type: ignore[arg-type]


def test_drill_script_constants_match():
    """The drill module and the external script agree on how many messages go before/after."""
    script = (Path(__file__).parent / "scripts" / "failure_ext.py").read_text()
    assert f"BEFORE, AFTER = {BEFORE}, {AFTER}" in script
