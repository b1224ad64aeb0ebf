"""The emulator serves what a workspace serves to the newest databricks-sdk: presigned-URL transfers
(download URLs, multipart upload sessions, the cloud storage the URLs point at), the host discovery
document, and it fails any test that calls an endpoint it does not serve.

The newest SDK (0.16x) runs in its own environment (the dev stack pins 0.60 for dagster-databricks):
tests marked by the ``newest_python`` fixture take its Python from ``$DAGSTER_PIPES_SPARK_RUNTIME_NEWEST``
(a Python executable or a virtualenv with databricks-sdk 0.16x; CI sets it) and are skipped only when
it is not set. The other tests drive the same endpoints with the pinned SDK 0.60 (its opt-in
experimental Files client speaks the same multipart protocol) and with plain HTTP.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import AlreadyExists, BadRequest, InvalidParameterValue, NotFound
from databricks.sdk.mixins.files import FilesExt

from dagster_pipes_spark.testing import Emulator
from dagster_pipes_spark.testing.runtimes import runtime_env_var

MiB = 1024 * 1024
VOLUME = "/Volumes/main/default/pipes"
NEWEST_ENV = runtime_env_var("newest")

pytestmark = pytest.mark.databricks_emulator(volumes=["main/default/pipes"])


@pytest.fixture(scope="module")
def newest_python() -> str:
    """The Python of the "newest" runtime (databricks-sdk 0.16x)."""
    value = os.environ.get(NEWEST_ENV)
    if not value:
        pytest.skip(f"{NEWEST_ENV} is not set (the newest databricks-sdk runtime; CI sets it)")
    path = Path(value)
    return str(path / "bin" / "python") if path.is_dir() else value


def _expire_in(seconds: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _download_url(w: WorkspaceClient, path: str) -> str:
    answer = w.api_client.do(
        "POST", "/api/2.0/fs/create-download-url", query={"path": path, "expire_time": _expire_in(3600)}
    )
    assert isinstance(answer, dict) and answer["headers"] == []
    return str(answer["url"])


def _xml_error(response: requests.Response) -> tuple[str, str]:
    root = ET.fromstring(response.content)
    return root.findtext("Code") or "", root.findtext("Message") or ""


# ------------------------------------------------------------------ presigned URLs (plain HTTP, SDK 0.60)


def test_presigned_download_url_is_cloud_storage_not_the_workspace(
    databricks_emulator: Emulator, databricks_workspace_client: WorkspaceClient
) -> None:
    ws, w = databricks_emulator, databricks_workspace_client
    data = os.urandom(3000)
    w.files.upload(f"{VOLUME}/d/blob.bin", io.BytesIO(data))
    url = _download_url(w, f"{VOLUME}/d/blob.bin")
    assert url.startswith(f"{ws.url}/cloud-storage/")
    whole = requests.get(url, timeout=10)  # no workspace token
    assert whole.status_code == 200 and whole.content == data
    part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert part.status_code == 206 and part.content == data[10:20]
    # a client that leaks the workspace token to cloud storage is refused, as S3 refuses two auth mechanisms
    leaked = requests.get(url, headers={"Authorization": f"Bearer {ws.token}"}, timeout=10)
    assert leaked.status_code == 400 and _xml_error(leaked)[0] == "InvalidArgument"
    tampered = requests.get(url.replace("/blob.bin", "/other.bin"), timeout=10)
    assert tampered.status_code == 403 and _xml_error(tampered)[0] == "SignatureDoesNotMatch"
    with pytest.raises(NotFound):
        _download_url(w, f"{VOLUME}/d/missing.bin")
    with pytest.raises(InvalidParameterValue):  # DBFS is not served by presigned URLs
        _download_url(w, "/tmp/x")
    assert ws.stats["GET /cloud-storage"] == 4


def test_expired_url_is_refused_with_the_error_the_sdk_recognizes(
    databricks_emulator: Emulator, databricks_workspace_client: WorkspaceClient
) -> None:
    ws, w = databricks_emulator, databricks_workspace_client
    w.files.upload(f"{VOLUME}/e.txt", io.BytesIO(b"expiring"))
    ws.presigned_url_ttl = 0  # every URL is minted already expired
    expired = requests.get(_download_url(w, f"{VOLUME}/e.txt"), timeout=10)
    assert expired.status_code == 403
    assert _xml_error(expired) == ("AccessDenied", "Request has expired")
    assert FilesExt._is_url_expired_response(expired)  # the SDK's own classifier: it will ask for a new URL
    ws.presigned_url_ttl = 60
    assert requests.get(_download_url(w, f"{VOLUME}/e.txt"), timeout=10).content == b"expiring"


def test_multipart_upload_of_the_sdk_experimental_client(databricks_emulator: Emulator) -> None:
    """SDK 0.60's opt-in Files client uploads >= 5 MiB through a multipart session and part URLs."""
    ws = databricks_emulator
    w = ws.workspace_client(enable_experimental_files_api_client=True)
    data = os.urandom(12 * MiB)  # parts of 10 MiB + 2 MiB
    w.files.upload(f"{VOLUME}/big/one.bin", io.BytesIO(data), overwrite=False)
    assert ws.local_path(f"{VOLUME}/big/one.bin").read_bytes() == data
    stats = ws.stats
    assert stats["POST /api/2.0/fs/files"] == 2  # initiate-upload, complete-upload
    assert stats["POST /api/2.0/fs/create-upload-part-urls"] == 2
    assert stats["PUT /cloud-storage"] == 2
    assert ws.open_multipart_uploads == 0
    with pytest.raises(AlreadyExists):  # overwrite=False is checked when the session starts
        w.files.upload(f"{VOLUME}/big/one.bin", io.BytesIO(data), overwrite=False)
    # a part refused by cloud storage: the SDK aborts the session through a presigned abort URL
    with ws.faults(rate=1.0, statuses=(400,), endpoints=["PUT /cloud-storage"]):
        with pytest.raises(BadRequest):
            w.files.upload(f"{VOLUME}/big/two.bin", io.BytesIO(data))
    assert ws.stats["POST /api/2.0/fs/create-abort-upload-url"] == 1
    assert ws.stats["DELETE /cloud-storage"] == 1
    assert ws.open_multipart_uploads == 0
    # part URLs that expire: the SDK asks for new ones (3 times), then gives up; nothing is published
    # (its abort URL, minted now, is expired too: the session stays behind, as on a cloud)
    ws.presigned_url_ttl = 0
    with pytest.raises(ValueError, match="expired"):
        w.files.upload(f"{VOLUME}/big/two.bin", io.BytesIO(data))
    assert ws.stats["PUT /cloud-storage"] == 2 + 1 + 4
    assert not ws.local_path(f"{VOLUME}/big/two.bin").exists()


def test_multipart_session_rules(
    databricks_emulator: Emulator, databricks_workspace_client: WorkspaceClient
) -> None:
    """S3's rules: ETags must match, parts but the last hold >= 5 MiB; abort ends the session."""
    ws, w = databricks_emulator, databricks_workspace_client
    path = f"{VOLUME}/rules.bin"
    files_url = f"/api/2.0/fs/files{path}"

    def start() -> str:
        answer = w.api_client.do("POST", files_url, query={"action": "initiate-upload"})
        assert isinstance(answer, dict)
        return str(answer["multipart_upload"]["session_token"])

    def put_parts(token: str, sizes: list[int]) -> list[dict[str, Any]]:
        body = {"path": path, "session_token": token, "start_part_number": 1, "count": len(sizes)}
        answer = w.api_client.do("POST", "/api/2.0/fs/create-upload-part-urls", body=body)
        assert isinstance(answer, dict)
        parts = []
        for spec, size in zip(answer["upload_part_urls"], sizes, strict=True):
            put = requests.put(spec["url"], data=b"p" * size, timeout=10)
            assert put.status_code == 200
            parts.append({"part_number": spec["part_number"], "etag": put.headers["ETag"]})
        return parts

    def complete(token: str, parts: list[dict[str, Any]]) -> None:
        query = {"action": "complete-upload", "upload_type": "multipart", "session_token": token}
        w.api_client.do("POST", files_url, query=query, body={"parts": parts})

    token = start()
    parts = put_parts(token, [10, 10])
    with pytest.raises(InvalidParameterValue, match="minimum part size"):
        complete(token, parts)
    with pytest.raises(InvalidParameterValue, match="ETag"):
        complete(token, [{"part_number": 1, "etag": '"nope"'}])
    w.api_client.do(
        "POST",
        files_url,
        query={"action": "abort-upload", "upload_type": "multipart", "session_token": token},
    )
    assert ws.open_multipart_uploads == 0
    with pytest.raises(NotFound):
        complete(token, parts)
    token = start()
    complete(token, put_parts(token, [5 * MiB, 3]))
    assert ws.local_path(path).stat().st_size == 5 * MiB + 3 and ws.open_multipart_uploads == 0


# ----------------------------------------------------------------------------------- discovery


def test_discovery_document_is_public_and_never_faulted(databricks_emulator: Emulator) -> None:
    ws = databricks_emulator
    with ws.faults(rate=1.0, statuses=(503,)):
        answer = requests.get(f"{ws.url}/.well-known/databricks-config", timeout=10)  # no token
    assert answer.status_code == 200
    document = answer.json()
    assert document["workspace_id"] == ws.workspace_id and document["oidc_endpoint"] == f"{ws.url}/oidc"
    assert document["cloud"] == "aws" and document["account_id"]


# ------------------------------------------------------------------------------ newest SDK (0.16x)

_NEWEST_CLIENT = textwrap.dedent(
    """
    import io, json, logging, os, sys
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.version import __version__

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(logging.INFO)
            self.lines = []
        def emit(self, record):
            self.lines.append(f"{record.levelname} {record.getMessage()}")

    keep = Keep()
    logging.getLogger("databricks.sdk").addHandler(keep)
    logging.getLogger("databricks.sdk").setLevel(logging.INFO)
    w = WorkspaceClient()  # DATABRICKS_HOST / DATABRICKS_TOKEN: the emulator
    volume, size = sys.argv[1], int(sys.argv[2])
    data = os.urandom(size)
    w.files.upload(f"{volume}/small.txt", io.BytesIO(b"small"), overwrite=True)
    w.files.upload(f"{volume}/big.bin", io.BytesIO(data), overwrite=True)
    print(json.dumps({
        "version": __version__,
        "workspace_id": w.config.workspace_id,
        "small": w.files.download(f"{volume}/small.txt").contents.read().decode(),
        "big": w.files.download(f"{volume}/big.bin").contents.read() == data,
        "log": keep.lines,
    }))
    """
)


def _run_newest(ws: Emulator, python: str, tmp_path: Path, size: int) -> dict[str, Any]:
    script = tmp_path / "newest_client.py"
    script.write_text(_NEWEST_CLIENT)
    env = {**os.environ, **ws.env()}
    out = subprocess.run(
        [python, str(script), VOLUME, str(size)], env=env, capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_newest_sdk_default_transfers_use_presigned_urls(
    databricks_emulator: Emulator, newest_python: str, tmp_path: Path
) -> None:
    """databricks-sdk 0.16x with its defaults: discovery, presigned download, multipart upload >= 50 MB."""
    ws = databricks_emulator
    result = _run_newest(ws, newest_python, tmp_path, 55 * MiB)
    assert tuple(int(p) for p in result["version"].split(".")[:2]) >= (0, 160)
    assert result["small"] == "small" and result["big"] is True
    assert result["workspace_id"] == ws.workspace_id  # the discovery document was read
    noisy = [
        line for line in result["log"] if line.startswith(("WARNING", "ERROR")) or "next endpoint" in line
    ]
    assert noisy == []  # no "failed to resolve host metadata", no fallback from presigned URLs
    stats = ws.stats
    assert stats["GET /.well-known/databricks-config"] == 1
    assert stats["POST /api/2.0/fs/create-download-url"] == 2 and stats["GET /cloud-storage"] == 2
    assert stats.get("GET /api/2.0/fs/files", 0) == 0  # every download went through cloud storage
    assert stats["POST /api/2.0/fs/files"] == 2  # initiate-upload, complete-upload of the 55 MB file
    assert (
        stats["PUT /cloud-storage"] == stats["POST /api/2.0/fs/create-upload-part-urls"] == 6
    )  # 10 MiB parts
    assert stats["PUT /api/2.0/fs/files"] == 1  # the small file: single shot
    assert ws.open_multipart_uploads == 0


def test_newest_sdk_renews_expired_urls_then_falls_back(
    databricks_emulator: Emulator, newest_python: str, tmp_path: Path
) -> None:
    """Every URL expired: the SDK recognizes the cloud's error, asks for new URLs, then uses the Files API."""
    ws = databricks_emulator
    ws.presigned_url_ttl = 0
    result = _run_newest(ws, newest_python, tmp_path, 55 * MiB)
    assert result["small"] == "small" and result["big"] is True
    stats = ws.stats
    # 1 URL + 3 renewals per download, each refused as expired (a 403 of another kind is not renewed)
    assert stats["POST /api/2.0/fs/create-download-url"] == 8 and stats["GET /cloud-storage"] == 8
    assert stats["GET /api/2.0/fs/files"] == 2
    assert stats["PUT /cloud-storage"] == 4  # the first part, renewed 3 times, then a single-shot upload
    assert stats["PUT /api/2.0/fs/files"] == 2
    assert ws.open_multipart_uploads == 0  # the abandoned session was aborted


# ----------------------------------------------------------------------------- unserved endpoints

_INNER_TESTS = textwrap.dedent(
    """
    import requests
    import pytest

    def test_calls_an_unserved_endpoint(databricks_emulator):
        requests.get(databricks_emulator.url + "/api/2.0/not/served", headers={"Authorization": "Bearer t"})

    def test_acknowledges_it(databricks_emulator):
        requests.get(databricks_emulator.url + "/api/2.0/not/served", headers={"Authorization": "Bearer t"})
        assert databricks_emulator.unserved_requests == ["GET /api/2.0/not/served"]
        databricks_emulator.clear_unserved_requests()

    def test_own_emulator_is_checked_too():
        from dagster_pipes_spark.testing import Emulator
        with Emulator() as ws:
            requests.post(ws.url + "/api/2.1/unity-catalog/nothing", headers={"Authorization": "Bearer t"})

    def test_ini_runtimes_reach_the_fixture(databricks_emulator):
        selection = databricks_emulator.jobs.runtimes.select("15.4.x-scala2.12")
        assert selection.profile == "15.4" and selection.python == "/opt/py-15.4/bin/python"
    """
)


def _inner_pytest(directory: Path, ini: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the inner tests under ``ini`` in their own pytest process (this plugin is loaded by entry point)."""
    (directory / "test_inner.py").write_text(_INNER_TESTS)
    (directory / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *args]
    env = {**os.environ, "INNER_PY_ROOT": "/opt/py-15.4"}
    return subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=120)


def test_a_request_to_an_unserved_endpoint_fails_the_test(tmp_path: Path) -> None:
    out = _inner_pytest(tmp_path, "databricks_emulator_runtimes =\n    15.4 = ${INNER_PY_ROOT}/bin/python")
    assert out.returncode == 1, out.stdout
    assert "4 passed, 2 errors" in out.stdout, out.stdout
    assert "ERROR at teardown of test_calls_an_unserved_endpoint" in out.stdout
    assert "ERROR at teardown of test_own_emulator_is_checked_too" in out.stdout
    assert "GET /api/2.0/not/served" in out.stdout and "POST /api/2.1/unity-catalog/nothing" in out.stdout
    relaxed = _inner_pytest(tmp_path, "databricks_emulator_fail_on_unserved = false", "-k", "unserved or own")
    assert relaxed.returncode == 0, relaxed.stdout


def test_unserved_requests_are_counted_over_http(databricks_emulator: Emulator) -> None:
    ws = databricks_emulator
    from dagster_pipes_spark.testing import EmulatorControl

    control = EmulatorControl(ws.url)
    assert (
        requests.delete(
            f"{ws.url}/api/2.0/dbfs/put", headers={"Authorization": "Bearer t"}, timeout=5
        ).status_code
        == 404
    )
    assert control.unserved_requests() == ws.unserved_requests == ["DELETE /api/2.0/dbfs/put"]
    ws.clear_unserved_requests()
    assert control.unserved_requests() == []
