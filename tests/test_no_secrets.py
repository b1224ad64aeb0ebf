"""No secret in anything the job sends or prints.

A distinctive workspace token (and a ``DATABRICKS_CLIENT_SECRET``, a ``DATABRICKS_PASSWORD``) is planted
in the external process's environment; the emulator requires exactly that token. Real Dagster runs
(``run_fault_job``: the real ``dagster_databricks`` injectors and readers, the reader asking for
stdout/stderr in messages, the package's logger at DEBUG on stderr) then go through: a clean run that
prints ``dagster-pipes-spark doctor`` output; transient errors whose body echoes the request headers
(``Authorization`` included, as misconfigured proxies do); a permanent 403 that echoes them on a chunk
upload and on the context read. Every byte of what Dagster received (each chunk its reader downloaded,
the run's event log), of the job's stdout and stderr, and of the files the emulator stores, is searched
for the secrets (raw, and base64-encoded as DBFS carries them). The doctor is also run directly with
conflicting credentials in the environment (its error path quotes the SDK's configuration).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from typing import Any

import pytest
from _failure_drill import CONTEXT_READ, WRITE_ENDPOINTS, FaultJob, external_env, run_fault_jobs

#: Distinctive secrets: their random parts cannot appear anywhere by chance.
TOKEN = f"dapi{secrets.token_hex(16)}"
CLIENT_SECRET = f"dose{secrets.token_hex(16)}"
PASSWORD = f"pw-{secrets.token_hex(12)}"
SECRETS = {"token": TOKEN, "client secret": CLIENT_SECRET, "password": PASSWORD}
ENV = {
    "DATABRICKS_CLIENT_ID": "planted-client-id",
    "DATABRICKS_CLIENT_SECRET": CLIENT_SECRET,
    "DATABRICKS_USERNAME": "planted-user",
    "DATABRICKS_PASSWORD": PASSWORD,
}
PRINTED = "the job prints this line"


def _needles() -> dict[str, bytes]:
    """What to search for: each secret, a 12-character piece of its random part (a truncated error
    message still shows), and the base64 forms DBFS carries."""
    found: dict[str, bytes] = {}
    for what, value in SECRETS.items():
        raw = value.encode()
        found[what] = raw
        found[f"{what} (piece)"] = raw[4:16]
        for shift in range(3):  # base64 of the value at any alignment within a larger payload
            encoded = base64.b64encode(b"\0" * shift + raw)[4:-4]
            found[f"{what} (base64/{shift})"] = encoded[:16]
    return found


def _leaks(blobs: dict[str, bytes]) -> list[str]:
    needles = _needles()
    return [f"{what} in {where}" for where, blob in blobs.items() for what, n in needles.items() if n in blob]


def _show(leaks: list[str], blobs: dict[str, bytes]) -> str:
    """The leaks, and where the first one of each place sits (for the failure message)."""
    lines = list(dict.fromkeys(leaks))
    for where, blob in blobs.items():
        for what, needle in _needles().items():
            at = blob.find(needle)
            if at >= 0:
                lines.append(f"--- {what} in {where}: ...{blob[max(0, at - 300) : at + 40]!r}...")
                break
    return "\n".join(lines)


def _everything(result: dict[str, Any]) -> dict[str, bytes]:
    """Every byte Dagster received, the job printed, and the emulator stores."""
    blobs: dict[str, bytes] = {
        "stdout": result.get("stdout", "").encode(),
        "stderr": result.get("stderr", "").encode(),
        "received custom messages": json.dumps(result.get("received", []), default=str).encode(),
        "dagster logs": json.dumps(result.get("logs", []), default=str).encode(),
    }
    for i, chunk in enumerate(result.get("chunks", [])):
        blobs[f"downloaded chunk {i + 1}"] = chunk.encode()
    for i, entry in enumerate(result.get("event_log", [])):
        blobs[f"event log entry {i}"] = entry.encode()
    for path, data in result.get("stored", {}).items():
        blobs[f"stored file {path}"] = data
    return blobs


def _job(name: str, kind: str, faults: dict[str, Any], **kw: Any) -> FaultJob:
    return FaultJob(
        name=f"{name}-{kind}",
        kind=kind,
        faults=faults,
        messages=20,
        body_seconds=1.0,
        token=TOKEN,
        env=ENV,
        stdio=True,
        debug_logging=True,
        print_lines=(PRINTED,),
        **kw,
    )


ECHO = {"rate": 1.0, "echo_request": True}
JOBS = [
    job
    for kind in ("dbfs", "volumes")
    for job in (
        _job("clean", kind, {}, doctor=True),
        _job(
            "echo-transient",
            kind,
            {**ECHO, "endpoints": list(WRITE_ENDPOINTS), "statuses": [503, 429], "max_faults": 2},
        ),
        _job("echo-403-upload", kind, {**ECHO, "endpoints": list(WRITE_ENDPOINTS), "statuses": [403]}),
        _job("echo-403-context", kind, {**ECHO, **CONTEXT_READ, "statuses": [403]}),
        _job("echo-transient-context", kind, {**ECHO, **CONTEXT_READ, "statuses": [500], "max_faults": 2}),
    )
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_fault_jobs(JOBS, tmp_path_factory.mktemp("no-secrets"), concurrency=10)


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.name)
def test_no_secret_in_anything_sent_printed_or_stored(runs, job: FaultJob):
    result = runs[job.name]
    assert "error" not in result, result.get("error")
    assert not result.get("killed"), result["stderr"]
    blobs = _everything(result)
    leaks = _leaks(blobs)
    assert leaks == [], _show(leaks, blobs)
    # the search looked at real data: the job ran, said what it was told to, and was heard
    about = f"returncode {result.get('returncode')}\n--- stdout:\n{result['stdout'][-1500:]}\n--- stderr:\n{result['stderr'][-3000:]}"
    assert result["started"] is not None, about
    if not job.name.startswith("echo-403-context"):  # the body ran
        assert PRINTED in result["stdout"] and PRINTED in result["stderr"], about
    if "echo" in job.name:  # the emulator did echo the token: the search would have found a leak
        assert any(r.faulted for r in result["requests"]), about
    if job.name.startswith(("clean", "echo-transient")):  # delivered, stdout/stderr included
        assert result["returncode"] == 0 and result["received_closed"], about
        assert any(PRINTED in chunk for chunk in result["chunks"]), (
            f"stdout/stderr were not in messages\n{about}"
        )
    if job.name.startswith("clean"):
        assert "databricks-sdk" in result["stdout"], about  # the doctor's output was printed (and searched)


def test_the_search_finds_a_planted_secret():
    """The search itself: a token in an error message, truncated, or base64-encoded is found."""
    assert _leaks({"x": f"403 Forbidden: headers: authorization: Bearer {TOKEN}".encode()})
    assert _leaks({"x": f"... Bearer {TOKEN[:18]}...".encode()})
    assert _leaks({"x": base64.b64encode(f'{{"k": "{CLIENT_SECRET}"}}'.encode())})
    assert _leaks({"x": base64.b64encode(f'{{"kk": "{PASSWORD}"}}'.encode())})
    assert not _leaks({"x": b"dapi-emulator-token " + TOKEN[:4].encode()})


@pytest.mark.parametrize("auth_type", ["pat", None], ids=["pat", "conflicting-credentials"])
def test_doctor_prints_no_secret(auth_type: str | None):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")},
        **external_env("ours"),
        **ENV,
        "DATABRICKS_HOST": "http://127.0.0.1:9",
        "DATABRICKS_TOKEN": TOKEN,
    }
    if auth_type:
        env["DATABRICKS_AUTH_TYPE"] = auth_type
    outputs: dict[str, bytes] = {}
    started = time.monotonic()
    for args in (["doctor"], ["doctor", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "dagster_pipes_spark.cli", *args],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr.decode()
        outputs[f"{' '.join(args)} stdout"] = done.stdout
        outputs[f"{' '.join(args)} stderr"] = done.stderr
    assert time.monotonic() - started < 60
    assert _leaks(outputs) == [], outputs
    report = json.loads(outputs["doctor --json stdout"])
    sdk = report["databricks_sdk"]
    if auth_type is None:  # the SDK refused the configuration: its error is shown, secrets masked
        assert "more than one authorization method" in sdk.get("error", ""), sdk
    else:
        assert sdk.get("auth_type") == "pat", sdk


def test_failure_descriptions_carry_no_credentials():
    """In process, through the real SDK: what our retry layer says of a failed request (the text of
    every stderr line and log about it) and the error a failed context read raises hold no secret,
    even when the server's error message echoes the Authorization header."""
    from databricks.sdk import WorkspaceClient

    from dagster_pipes_spark import PipesUnityCatalogVolumesContextLoader, RetryPolicy
    from dagster_pipes_spark._transports.retry import classify
    from dagster_pipes_spark._transports.sdk import SdkVolumesFileStore
    from dagster_pipes_spark.testing import Emulator

    with Emulator(volumes=["main/default/pipes"], token=TOKEN) as ws:
        client = WorkspaceClient(host=ws.url, token=TOKEN)
        store = SdkVolumesFileStore(client, request_timeout=5)
        path = "/Volumes/main/default/pipes/ctx/context.json"
        store.write_bytes(path, b"{}")
        texts: dict[str, bytes] = {}
        for status in (403, 429, 500, 503):
            ws.faults(rate=1.0, statuses=[status], echo_request=True)
            with pytest.raises(Exception) as raised:
                store.read_bytes(path)
            texts[f"describe() of HTTP {status}"] = classify(raised.value).describe().encode()
        ws.faults(rate=1.0, statuses=[403], echo_request=True)
        loader = PipesUnityCatalogVolumesContextLoader(client=client, retry=RetryPolicy(attempts=1))
        with pytest.raises(Exception) as failed:
            with loader.load_context({"path": path}):
                pass
        error: BaseException | None = failed.value
        depth = 0
        while error is not None and depth < 10:  # the error and every error it carries along
            texts[f"context read error {depth} ({type(error).__name__})"] = str(error).encode()
            error = error.__cause__ or error.__context__
            depth += 1
        ws.clear_faults()
    assert texts and _leaks(texts) == [], _show(_leaks(texts), texts)
