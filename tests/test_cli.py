"""The dagster-pipes-spark console command."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster_pipes_spark as dps

EXE = [sys.executable, "-m", "dagster_pipes_spark.cli"]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EXE, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60
    )


def test_decode_roundtrip_and_error():
    enc = dps.encode_param({"path": "/tmp/abc", "include_stdio_in_messages": True})
    out = _run("decode", enc)
    assert out.returncode == 0 and json.loads(out.stdout) == {
        "include_stdio_in_messages": True,
        "path": "/tmp/abc",
    }
    bad = _run("decode", "!!!")
    assert bad.returncode == 1 and "Malformed Pipes bootstrap value" in bad.stderr


def test_doctor_reports_sources_and_transport(tmp_path):
    (tmp_path / "dbfs").mkdir()
    env = {
        "DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT": str(tmp_path / "dbfs"),
        "DAGSTER_PIPES_CONTEXT": dps.encode_param({"path": "x"}),
        "DAGSTER_PIPES_MESSAGES": dps.encode_param({"path": "y"}),
        "DATABRICKS_HOST": "http://127.0.0.1:9",
        "DATABRICKS_TOKEN": "t",
    }
    out = _run("doctor", "--json", env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["params_source"] == "env"
    assert report["fuse"]["dbfs"]["mounted"] is True
    assert report["transport"]["dbfs"].startswith("fuse")
    assert report["transport"]["volumes"] == "databricks-sdk (http://127.0.0.1:9)"
    text = _run("doctor", env=env).stdout
    assert "DBFS transport" in text and "params source" in text


def test_emulator_command_serves(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*EXE, "emulator", "--port", str(port), "--root", str(tmp_path), "--volume", "main/default/v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, (
                    proc.stderr.read() if proc.stderr else ""
                )
                time.sleep(0.2)
        from databricks.sdk import WorkspaceClient

        w = WorkspaceClient(host=f"http://127.0.0.1:{port}", token="t")
        w.dbfs.put("/tmp/hello.txt", contents="aGk=", overwrite=True)
        assert (Path(tmp_path) / "dbfs" / "tmp" / "hello.txt").read_text() == "hi"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
