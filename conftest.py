"""Shared test setup: the venv's bin on PATH (examples call `shutil.which("python")`), quiet Dagster."""

import os
import sys
import warnings

_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("DAGSTER_HOME", "")
os.environ.pop("DAGSTER_HOME") if not os.environ.get("DAGSTER_HOME") else None
warnings.filterwarnings("ignore", message=".*is currently in preview.*")
warnings.filterwarnings("ignore", message=".*is currently in beta.*")


import socket  # noqa: E402

import pytest  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3():
    """A moto S3 server on loopback; yields (endpoint_url, boto3 client, env for external processes)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="pipes")
    try:
        yield url, client, env
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _hermetic_fuse(monkeypatch):
    """In-process code never picks up real /dbfs or /Volumes mounts of the machine running the tests."""
    monkeypatch.setenv("DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT", "/nonexistent/dbfs-fuse")
    monkeypatch.setenv("DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT", "/nonexistent/volumes-fuse")
