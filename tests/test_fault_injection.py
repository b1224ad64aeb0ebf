"""Fault injection through the REAL readers: every message delivered exactly once, in order, and in bound.

Two parts:

* the emulator's fault kinds (``FaultConfig.kinds``), request by request: what a client sees, and
  whether the request was applied (a lost answer to an applied write, connection resets in the
  request body and in the answer, slow answers and stalls, 429 with ``Retry-After``, garbled 200
  bodies, outages that end, echoed request headers), all configurable over the control API;
* real Dagster runs (``run_fault_job`` in ``tests/_failure_drill.py``): the real ``dagster_databricks``
  DBFS and UC Volumes injectors and readers, an external process writing through a DEFAULT
  ``WorkspaceClient`` (the SDK's own retry policy) with our loader and writer, and one kind of fault
  on its chunk uploads or on its context read. Each run asserts: the process exits 0; every custom
  message arrived once and in order, the materialization and every log line once, ``closed`` too;
  no chunk the reader downloaded repeats a message; nothing was reported lost; the faults really
  happened; and the close (or the context read) took no longer than the retry policy allows for
  them (measured on the wall clock, with ``SLACK`` for a busy machine).

All runs of the module go at once (at most ``CONCURRENCY`` at a time, each with its own emulator):
the file takes about two minutes.
"""

from __future__ import annotations

import base64
import itertools
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from _failure_drill import CONTEXT_READ, VOLUME, WRITE_ENDPOINTS, FaultJob, run_fault_jobs

from dagster_pipes_spark.testing import Emulator, EmulatorControl, FaultConfig

#: Scheduling on a busy 2-core machine (other suites run beside this one).
SLACK = 6.0
#: ... plus the interpreter's teardown once the context has closed.
EXIT_SLACK = 20.0
#: Jobs at once: each is mostly waiting, but starts two interpreters.
CONCURRENCY = 10
#: The default retry policy's waits (0.5 s doubling to 8 s, +50% jitter), summed: the longest a
#: close may spend waiting between ``n`` attempts.
_WAITS = [min(0.5 * 2**i, 8.0) * 1.5 for i in range(8)]


def retry_waits(n: int) -> float:
    """The longest the default policy waits in total over its first ``n`` retries."""
    return sum(_WAITS[:n])


# ------------------------------------------------------------------------------ the emulator's kinds


@pytest.fixture
def ws():
    with Emulator(volumes=["main/default/pipes"], record_requests=True) as emulator:
        yield emulator


def _put(ws: Emulator, name: str, data: bytes = b'{"x": 1}', timeout: float = 5) -> requests.Response:
    return requests.put(
        f"{ws.url}/api/2.0/fs/files{VOLUME}/{name}",
        data=data,
        headers={"Authorization": f"Bearer {ws.token}"},
        timeout=timeout,
    )


def _dbfs_put(ws: Emulator, path: str, data: bytes = b"{}", timeout: float = 5) -> requests.Response:
    body: dict[str, Any] = {"path": path, "contents": base64.b64encode(data).decode(), "overwrite": True}
    return requests.post(
        f"{ws.url}/api/2.0/dbfs/put",
        json=body,
        headers={"Authorization": f"Bearer {ws.token}"},
        timeout=timeout,
    )


def _stored(ws: Emulator, name: str) -> bytes | None:
    path = ws.local_path(f"{VOLUME}/{name}")
    return path.read_bytes() if path.exists() else None


def test_fault_options_are_defined_once_and_checked_over_the_control_api(ws):
    control = EmulatorControl(ws.url)
    options: dict[str, Any] = {
        "rate": 1.0,
        "kinds": ["lost", "reset_request", "reset_response", "slow", "garbled_json", "garbled_html"],
        "statuses": [500],
        "delay": 0.2,
        "skip": 1,
        "duration": 3,
        "paths": ["x.json"],
        "echo_request": True,
        "seed": 7,
    }
    control.set_faults(**options)
    served = control.fault_config()
    assert served == FaultConfig.from_json(options).to_json()
    assert ws.fault_config.kinds == tuple(options["kinds"]) and ws.fault_config.paths == ("x.json",)
    bads: list[dict[str, Any]] = [
        {"kinds": ["explode"]},
        {"kinds": ["slow"], "delay": 0},
        {"skip": -1},
        {"duration": 0},
    ]
    for bad in bads:
        response = requests.post(f"{ws.url}/_emulator/faults", json={"rate": 1.0, **bad}, timeout=5)
        assert response.status_code == 400, bad
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert requests.post(f"{ws.url}/_emulator/faults", json={"bogus": 1}, timeout=5).status_code == 400
    control.clear_faults()
    assert ws.fault_config == FaultConfig()


def test_lost_answer_applies_the_write(ws):
    ws.faults(rate=1.0, kinds=["lost"], statuses=[500], endpoints=["PUT /api/2.0/fs/files"], max_faults=1)
    response = _put(ws, "lost.json", b'{"n": 1}')
    assert response.status_code == 500 and response.json()["error_code"] == "INTERNAL_ERROR"
    assert _stored(ws, "lost.json") == b'{"n": 1}'  # applied, though the client was told it failed
    assert _put(ws, "lost.json", b'{"n": 1}').status_code == 204  # max_faults: served again
    [first, second] = [r for r in ws.requests if r.endpoint == "PUT /api/2.0/fs/files"]
    assert (first.fault, first.status, second.fault) == ("lost", 500, None)


def test_reset_in_the_request_body_applies_nothing(ws):
    ws.faults(rate=1.0, kinds=["reset_request"], endpoints=["PUT /api/2.0/fs/files"], max_faults=1)
    with pytest.raises(requests.ConnectionError):
        _put(ws, "reset.json", b"x" * 200_000)
    assert _stored(ws, "reset.json") is None
    assert _put(ws, "reset.json").status_code == 204  # the server goes on serving
    assert [r.fault for r in ws.requests if r.endpoint == "PUT /api/2.0/fs/files"] == ["reset_request", None]


def test_reset_in_the_answer_applies_the_write(ws):
    for seed in range(6):  # cuts anywhere: before the status line, in the headers, in the body
        ws.faults(rate=1.0, kinds=["reset_response"], endpoints=["POST /api/2.0/dbfs/put"], seed=seed)
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            _dbfs_put(ws, f"/tmp/reset/{seed}.json", b'{"seed": %d}' % seed)
        ws.clear_faults()
        assert ws.dbfs_root.joinpath(f"tmp/reset/{seed}.json").read_bytes() == b'{"seed": %d}' % seed


def test_reset_is_a_tcp_reset(ws):
    ws.faults(rate=1.0, kinds=["reset_request"], endpoints=["GET /api/2.0/dbfs/get-status"])
    with socket.create_connection(("127.0.0.1", ws.port), timeout=5) as sock:
        sock.sendall(
            f"GET /api/2.0/dbfs/get-status?path=/ HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {ws.token}\r\n\r\n".encode()
        )
        with pytest.raises(ConnectionResetError):
            while sock.recv(1024):
                pass


def test_slow_answers_and_stalls(ws):
    ws.faults(rate=1.0, kinds=["slow"], delay=0.6, endpoints=["PUT /api/2.0/fs/files"], max_faults=1)
    started = time.monotonic()
    assert _put(ws, "slow.json").status_code == 204
    assert 0.55 < time.monotonic() - started < 5
    ws.faults(rate=1.0, kinds=["slow"], delay=2.0, endpoints=["PUT /api/2.0/fs/files"], max_faults=1)
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        _put(ws, "stall.json", b'{"late": true}', timeout=0.5)
    assert time.monotonic() - started < 1.9  # the client gave up; the server was still waiting
    deadline = time.monotonic() + 5
    while _stored(ws, "stall.json") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _stored(ws, "stall.json") == b'{"late": true}'  # a stalled write is applied late
    # a stall ends early when the faults are cleared
    ws.faults(rate=1.0, kinds=["slow"], delay=600, endpoints=["PUT /api/2.0/fs/files"])
    started = time.monotonic()
    import threading

    threading.Timer(0.3, ws.clear_faults).start()
    assert _put(ws, "released.json").status_code == 204
    assert time.monotonic() - started < 3


def test_429_carries_retry_after(ws):
    ws.faults(rate=1.0, statuses=[429], retry_after=7, endpoints=["PUT /api/2.0/fs/files"])
    response = _put(ws, "throttled.json")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert _stored(ws, "throttled.json") is None  # an `error` fault happens before any side effect


def test_garbled_bodies_are_200s_that_do_not_parse(ws):
    ws.faults(rate=1.0, kinds=["garbled_json"], endpoints=["POST /api/2.0/dbfs/put"], max_faults=1)
    response = _dbfs_put(ws, "/tmp/garbled.json")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert ws.dbfs_root.joinpath("tmp/garbled.json").exists()  # applied
    # a truncated read answer (JSON with the data cut short), then a gateway's HTML page
    ws.faults(rate=1.0, kinds=["garbled_json"], endpoints=["GET /api/2.0/dbfs/read"], max_faults=1)
    auth = {"Authorization": f"Bearer {ws.token}"}
    read = requests.get(f"{ws.url}/api/2.0/dbfs/read", params={"path": "/tmp/garbled.json"}, headers=auth)
    assert read.status_code == 200 and read.text.startswith('{"bytes_read"')
    with pytest.raises(ValueError):
        read.json()
    ws.faults(rate=1.0, kinds=["garbled_html"], endpoints=["PUT /api/2.0/fs/files"], max_faults=1)
    page = _put(ws, "html.json")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.text.lstrip().startswith("<!DOCTYPE html>")
    assert _stored(ws, "html.json") == b'{"x": 1}'


def test_skip_paths_and_an_outage_that_ends(ws):
    ws.faults(
        rate=1.0, statuses=[503], endpoints=["PUT /api/2.0/fs/files"], paths=["outage"], skip=1, duration=0.6
    )
    assert _put(ws, "other.json").status_code == 204  # another path: not eligible
    assert _put(ws, "outage-1.json").status_code == 204  # skipped: the first eligible request
    started = time.monotonic()
    statuses: list[int] = []
    while time.monotonic() - started < 10 and 204 not in statuses[-1:]:
        statuses.append(_put(ws, "outage-2.json").status_code)
        time.sleep(0.05)
    assert time.monotonic() - started >= 0.55  # it lasted its duration
    assert statuses[0] == 503 and statuses[-1] == 204
    assert set(statuses) == {503, 204} and statuses.index(204) == statuses.count(503)  # one outage


def test_echoed_request_headers(ws):
    ws.faults(rate=1.0, statuses=[403], endpoints=["PUT /api/2.0/fs/files"], echo_request=True)
    response = _put(ws, "echo.json")
    assert response.status_code == 403
    assert f"authorization: Bearer {ws.token}" in response.json()["message"]


def test_limits_stay_strict_under_faults(ws):
    """A fault never relaxes a real limit: an over-sized put is refused as on the platform."""
    ws.faults(rate=1.0, kinds=["slow"], delay=0.05, endpoints=["POST /api/2.0/dbfs/put"])
    response = _dbfs_put(ws, "/tmp/big.json", b"x" * (1024 * 1024 + 1))
    assert response.status_code == 400 and response.json()["error_code"] == "MAX_BLOCK_SIZE_EXCEEDED"
    ws.faults(rate=1.0, kinds=["lost"], statuses=[500], endpoints=["POST /api/2.0/dbfs/put"])
    assert _dbfs_put(ws, "/tmp/big.json", b"x" * (1024 * 1024 + 1)).status_code == 500
    assert not ws.dbfs_root.joinpath("tmp/big.json").exists()  # "applied" = refused: nothing stored


def test_dbfs_streamed_write_retried_after_lost_answers_is_exact(ws):
    """A DBFS file over 1 MB goes create / add-block / close to a temporary file, then move. Answers
    lost after the server applied a block (or a close, a move), resets and garbled answers: the write
    is retried as a whole, never appending a block twice, and a reader polling the path meanwhile only
    ever sees nothing or the exact content (what the DBFS reader sees of a chunk)."""
    import threading

    from databricks.sdk import WorkspaceClient

    from dagster_pipes_spark import RetryPolicy
    from dagster_pipes_spark._transports.sdk import SdkDbfsFileStore

    client = WorkspaceClient(host=ws.url, token=ws.token)  # the SDK's default retry policy
    store = SdkDbfsFileStore(client, request_timeout=2)
    data = bytes(range(256)) * (10 * 1024 + 17)  # 2.6 MB: three blocks
    path = "/tmp/streamed/1.json"
    seen: list[bytes | None] = []
    stop = threading.Event()

    def poll() -> None:
        reader = ws.workspace_client()
        while not stop.is_set():
            try:
                size = reader.dbfs.get_status(path).file_size or 0
                parts = [
                    reader.dbfs.read(path, offset=o, length=1024 * 1024).data or ""
                    for o in range(0, size, 1024 * 1024)
                ]
                seen.append(b"".join(base64.b64decode(p) for p in parts))
            except Exception:  # noqa: BLE001 - absent (or moved away mid-read): nothing seen
                seen.append(None)
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    ws.faults(
        rate=0.6,
        kinds=["lost", "reset_request", "reset_response", "garbled_json"],
        statuses=[500, 503],
        endpoints=["dbfs/create", "dbfs/add-block", "dbfs/close", "dbfs/move", "dbfs/delete"],
        seed=2,
        max_faults=5,
    )
    started = time.monotonic()
    RetryPolicy(backoff=0.05, backoff_max=0.2).call(lambda: store.write_bytes(path, data), "streamed write")
    elapsed = time.monotonic() - started
    ws.clear_faults()
    time.sleep(0.1)
    stop.set()
    poller.join(5)
    assert ws.dbfs_root.joinpath("tmp/streamed/1.json").read_bytes() == data
    assert ws.stats["faults"] == 5 and elapsed < 10
    kinds = {r.fault for r in ws.requests if r.faulted}
    assert {"lost", "reset_response"} & kinds, kinds  # applied writes whose answers were lost
    observed = {len(x) if x is not None else None for x in seen}
    assert all(x is None or x == data for x in seen), observed  # never a duplicated or partial block
    leftovers = [p.name for p in ws.dbfs_root.joinpath("tmp/streamed").iterdir() if p.name != "1.json"]
    assert all(name.startswith(".1.json.") for name in leftovers), leftovers  # temporary files only


# ------------------------------------------------------------------------------ through the readers


@dataclass(frozen=True)
class Scenario:
    """One fault on one target (``messages``: the chunk uploads; ``context``: the context read)."""

    name: str
    target: str
    faults: dict[str, Any]
    #: the longest the close (messages) or the context read (context) may take, in seconds
    bound: float
    #: faults that must have been injected (at least)
    min_faults: int = 1
    retry: dict[str, Any] | None = None
    body_seconds: float = 3.0
    messages: int = 60
    #: more keyword arguments of the writer
    writer: dict[str, Any] = field(default_factory=dict)


def _w(**options: Any) -> dict[str, Any]:
    return {"rate": 1.0, "endpoints": list(WRITE_ENDPOINTS), **options}


def _c(**options: Any) -> dict[str, Any]:
    return {"rate": 1.0, **CONTEXT_READ, **options}


def _ctx(name: str, faults: dict[str, Any], bound: float, min_faults: int = 1, **kw: Any) -> Scenario:
    """A context-read scenario: a short body, since the context read is what is under test."""
    return Scenario(name, "context", faults, bound, min_faults, body_seconds=0.5, messages=10, **kw)


MIX_KINDS = ["error", "lost", "reset_request", "reset_response", "slow", "garbled_json", "garbled_html"]
#: A stalled request is abandoned after this (the writer's and loader's RetryPolicy.request_timeout).
STALL_TIMEOUT = 1.5

SCENARIOS = [
    # the chunk uploads
    Scenario("lost-500", "messages", _w(kinds=["lost"], statuses=[500], max_faults=3), retry_waits(3), 3),
    Scenario("lost-reset", "messages", _w(kinds=["reset_response"], seed=1, max_faults=3), retry_waits(3), 3),
    Scenario("reset-request", "messages", _w(kinds=["reset_request"], max_faults=3), retry_waits(3), 3),
    Scenario("slow", "messages", _w(kinds=["slow"], delay=1.0, max_faults=3), 3 * 1.0, 2),
    Scenario(
        "stall",
        "messages",
        _w(kinds=["slow"], delay=4 * STALL_TIMEOUT, max_faults=2),
        2 * STALL_TIMEOUT + retry_waits(2),
        2,
        retry={"request_timeout": STALL_TIMEOUT},
    ),
    # on the closing flush (skip the first upload): Retry-After is honoured while closing
    Scenario(
        "429-retry-after", "messages", _w(statuses=[429], retry_after=2, skip=1, max_faults=2), 2 * 2 + 1, 2
    ),
    Scenario("garbled-json", "messages", _w(kinds=["garbled_json"], skip=1, max_faults=1), retry_waits(1), 1),
    Scenario("garbled-html", "messages", _w(kinds=["garbled_html"], max_faults=2), retry_waits(2), 2),
    Scenario("outage", "messages", _w(statuses=[503], duration=5.0), 5.0 + retry_waits(5), 2),
    # a longer outage with a small memory cap: what waits spills to a temporary file, then goes out
    Scenario(
        "outage-spill",
        "messages",
        _w(statuses=[503], duration=4.0),
        4.0 + retry_waits(5),
        2,
        messages=400,
        writer={"max_pending_bytes": 4096},
    ),
    Scenario(
        "mix",
        "messages",
        _w(
            kinds=MIX_KINDS,
            statuses=[429, 500, 503],
            retry_after=1,
            delay=0.5,
            seed=44,  # slow, lost 500, error 429, reset_request, garbled_html (one chunk, 5 faults)
            max_faults=5,
        ),
        retry_waits(5) + 5 * 1.0,
        5,
        body_seconds=4.0,
        messages=80,
    ),
    # the context read
    _ctx("500", _c(statuses=[500], max_faults=2), retry_waits(2), 2),
    _ctx("reset-response", _c(kinds=["reset_response"], seed=3, max_faults=2), retry_waits(2), 2),
    _ctx(
        "stall",
        _c(kinds=["slow"], delay=4 * STALL_TIMEOUT, max_faults=1),
        STALL_TIMEOUT + retry_waits(1),
        1,
        retry={"request_timeout": STALL_TIMEOUT},
    ),
    _ctx("429-retry-after", _c(statuses=[429], retry_after=2, max_faults=1), 2 + 0.5, 1),
    _ctx("garbled-json", _c(kinds=["garbled_json"], max_faults=1), retry_waits(1), 1),
    _ctx("garbled-html", _c(kinds=["garbled_html"], max_faults=1), retry_waits(1), 1),
    _ctx("outage", _c(statuses=[503], duration=3.0), 3.0 + retry_waits(4), 2),
    _ctx(
        "mix",
        _c(
            kinds=MIX_KINDS,
            statuses=[429, 500, 503],
            retry_after=1,
            delay=0.5,
            seed=36,  # error 500, garbled_json, reset_response
            max_faults=3,
        ),
        retry_waits(3) + 3 * 1.0,
        3,
    ),
]

KINDS = ("dbfs", "volumes")
CASES = [(s, k) for s in SCENARIOS for k in KINDS]
#: A Retry-After longer than the flush timeout: the deadline bounds the close anyway.
CUT_FLUSH_TIMEOUT = 3.0
CUT_JOBS = [
    FaultJob(
        f"cut-retry-after-{on_loss}-{k}",
        k,
        _w(statuses=[429], retry_after=30),
        messages=10,
        body_seconds=0.5,
        flush_timeout=CUT_FLUSH_TIMEOUT,
        writer_options={"on_message_loss": on_loss},
    )
    for k in KINDS
    for on_loss in ("raise", "warn")
]
#: What the cut jobs lose: `opened`, 10 custom messages, one log line, the materialization, `closed`.
CUT_LOST = 1 + 10 + 1 + 1 + 1


def _job_name(scenario: Scenario, kind: str) -> str:
    return f"{scenario.target}-{scenario.name}-{kind}"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    jobs = [
        FaultJob(
            _job_name(s, k),
            k,
            s.faults,
            messages=s.messages,
            body_seconds=s.body_seconds,
            retry=s.retry,
            writer_options=s.writer,
        )
        for s, k in CASES
    ] + CUT_JOBS
    started = time.monotonic()
    results = run_fault_jobs(jobs, tmp_path_factory.mktemp("fault-jobs"), concurrency=CONCURRENCY)
    print(f"\n{len(jobs)} fault jobs in {time.monotonic() - started:.1f} s")
    for name, r in sorted(results.items()):
        kinds = Counter(x.fault for x in r.get("requests", []) if x.faulted)
        close, load = r.get("close_seconds"), r.get("load_seconds")
        print(f"  {name:<34} faults {dict(kinds)!s:<60} load {load or 0:5.2f} s  close {close or 0:5.2f} s")
    return results


def _faulted(result: dict[str, Any], endpoints: tuple[str, ...] | None = None) -> list[Any]:
    return [
        r
        for r in result["requests"]
        if r.faulted and (endpoints is None or any(e in (r.endpoint or "") for e in endpoints))
    ]


def _eligible(config: FaultConfig, record: Any) -> bool:
    query = "&".join(f"{k}={v}" for k, v in record.query.items())
    return config.eligible(record.endpoint or "", f"{record.path}?{query}")


def _check_exactly_once(result: dict[str, Any], messages: int) -> None:
    stderr = result["stderr"]
    assert "error" not in result, result.get("error")
    assert not result.get("killed"), f"still running after the hard limit\n{stderr}"
    assert result["loaded"] is not None, f"the context read failed\n{stderr}"
    assert result["returncode"] == 0, stderr
    got = [m.get("i") for m in result["received"]]
    assert got == list(range(messages)), f"received {got}\n{stderr}"  # all, once, in order
    assert result["received_closed"], stderr
    [materialization] = result["materializations"]
    assert materialization.metadata["messages"].value == messages
    logs = Counter(result["logs"])
    for i in range(0, messages, 20):
        assert logs[f"progress {i}"] == 1, logs
    lines = [line for chunk in result["chunks"] for line in chunk.split("\n") if line.strip()]
    assert len(lines) == len(set(lines)), "a message was delivered twice"
    assert not result["loss"] and "were not delivered" not in stderr, stderr
    assert result["success"], result["logs"]
    assert result["tmp_leftovers"] == [], result["tmp_leftovers"]  # no spill file left behind


@pytest.mark.parametrize(("scenario", "kind"), CASES, ids=[_job_name(s, k) for s, k in CASES])
def test_every_message_once_in_order_within_bound(runs, scenario: Scenario, kind: str):
    result = runs[_job_name(scenario, kind)]
    _check_exactly_once(result, scenario.messages)
    endpoints = WRITE_ENDPOINTS if scenario.target == "messages" else tuple(CONTEXT_READ["endpoints"])
    faulted = _faulted(result, endpoints)
    assert len(faulted) >= scenario.min_faults, [(r.endpoint, r.fault) for r in result["requests"]]
    if scenario.target == "messages":
        elapsed = result["close_seconds"]
        assert elapsed <= scenario.bound + SLACK, (elapsed, scenario.bound)
        assert result["exit_at"] - result["body_end"] <= scenario.bound + EXIT_SLACK
    else:
        elapsed = result["load_seconds"]
        assert elapsed <= scenario.bound + SLACK, (elapsed, scenario.bound)
        lifetime = result["exit_at"] - result["started"]
        assert lifetime <= scenario.bound + scenario.body_seconds + EXIT_SLACK, lifetime
    options = scenario.faults
    config = FaultConfig.from_json(options)
    # the attempts of the faulted operation, in the order they arrived
    writes = sorted((r for r in result["requests"] if _eligible(config, r)), key=lambda r: r.at)
    if scenario.name == "429-retry-after":  # the next attempt waited for Retry-After (even closing)
        for before, after in itertools.pairwise(writes):
            if before.fault == "error" and before.status == 429:
                assert after.at - before.at >= options["retry_after"] - 0.2, (before, after)
    if scenario.name == "stall":  # each stalled request was abandoned at the request timeout, and
        stalls = 0  # retried before the server would answer
        for before, after in itertools.pairwise(writes):
            if before.fault == "slow":
                stalls += 1
                assert after.at - before.at < options["delay"], (before, after)
                if scenario.target == "messages":
                    assert after.at - before.at >= STALL_TIMEOUT - 0.5, (before, after)
        if scenario.target == "context":
            # The context read runs while every job of the module starts at once, and the server's
            # arrival stamps can be late then (two runs' stalled reads stamped 0.4 ms apart, their
            # retries 0.13 s later). The client's own clock cannot run short: the read took at least
            # one request timeout per stalled attempt, so none was abandoned early.
            assert result["load_seconds"] >= stalls * STALL_TIMEOUT - 0.1, (result["load_seconds"], stalls)
    if scenario.name == "outage-spill":  # memory stayed under the cap: the backlog went to disk
        stats = result["channel"]
        assert stats["peak_spill_bytes"] > 0 and stats["peak_memory_bytes"] <= 2 * 4096, stats
        assert stats["messages"] == 0 and stats["spill_bytes"] == 0, stats  # all of it delivered
    if scenario.name in ("outage", "outage-spill"):  # it lasted, and the writer (or loader) outlived it
        first, last = faulted[0].at, faulted[-1].at
        recovered = [r for r in writes if r.at > last]  # the attempt that went through
        assert recovered and recovered[0].at - first >= options["duration"] - 0.2, [
            (r.at, r.status) for r in writes
        ]


def test_the_suite_covers_every_fault_kind():
    kinds = {k for s in SCENARIOS for k in s.faults.get("kinds", ["error"])}
    from dagster_pipes_spark.testing._faults import FAULT_KINDS

    assert kinds == set(FAULT_KINDS)
    assert json.dumps([s.faults for s in SCENARIOS])  # the options travel as JSON (control API)


@pytest.mark.parametrize("job", CUT_JOBS, ids=lambda j: j.name)
def test_retry_after_beyond_the_flush_timeout_is_cut_by_the_deadline(runs, job: FaultJob):
    """Retry-After is honoured while closing, but never past the deadline: a 429 asking for 30 s
    ends the close at flush_timeout (3 s), every message counted as lost, and the job, which lost
    its materialization and `closed`, does not exit 0 (unless its writer only warns)."""
    result = runs[job.name]
    assert "error" not in result, result.get("error")
    stderr = result["stderr"]
    assert result["close_seconds"] <= CUT_FLUSH_TIMEOUT + 0.5, (result["close_seconds"], stderr)
    assert result["exit_at"] - result["body_end"] <= CUT_FLUSH_TIMEOUT + EXIT_SLACK
    attempts = [r for r in result["requests"] if r.faulted]
    assert 1 <= len(attempts) <= 2, [(r.endpoint, r.status) for r in attempts]  # no retry sooner than asked
    assert result["received"] == [] and not result["received_closed"]
    assert [lost for lost, _ in result["loss"]] == [CUT_LOST], stderr
    if job.writer_options == {"on_message_loss": "warn"}:
        assert result["returncode"] == 0, stderr
    else:
        assert result["returncode"] != 0, stderr
