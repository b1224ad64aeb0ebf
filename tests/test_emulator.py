"""The Databricks workspace emulator, driven by the real databricks-sdk and dagster-databricks."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    AlreadyExists,
    BadRequest,
    DatabricksError,
    InvalidParameterValue,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from databricks.sdk.service import files
from databricks.sdk.service.files import DownloadResponse, ReadResponse

from dagster_pipes_spark.testing import Emulator, EmulatorControl, FakeDbutils

MiB = 1024 * 1024
VOLUME = "/Volumes/main/default/pipes"

pytestmark = pytest.mark.databricks_emulator(volumes=["main/default/pipes"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def ws(databricks_emulator: Emulator) -> Emulator:
    return databricks_emulator


@pytest.fixture
def w(databricks_workspace_client: WorkspaceClient) -> WorkspaceClient:
    return databricks_workspace_client


def data_of(resp: ReadResponse) -> bytes:
    assert resp.data is not None
    return base64.b64decode(resp.data)


def open_stream(w: WorkspaceClient, path: str, overwrite: bool = False) -> int:
    handle = w.dbfs.create(path, overwrite=overwrite).handle
    assert isinstance(handle, int)
    return handle


def body(download: DownloadResponse) -> bytes:
    assert download.contents is not None
    return download.contents.read()


def raises(exc_type: type[DatabricksError], error_code: str | None = None) -> Any:
    """``pytest.raises`` that also checks the SDK error's ``error_code`` and that it is an OSError."""

    class _Check:
        def __enter__(self) -> Any:
            self._ctx = pytest.raises(exc_type)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc: Any) -> bool:
            handled = bool(self._ctx.__exit__(*exc))
            if not handled:
                return False
            assert isinstance(self.info.value, OSError)  # dagster's readers rely on `except OSError`
            if error_code is not None:
                assert self.info.value.error_code == error_code
            return handled

    return _Check()


# ------------------------------------------------------------------------------ lifecycle


def test_layout_properties_and_helpers(ws: Emulator, tmp_path: Path) -> None:
    assert ws.root == (tmp_path / "databricks").resolve()
    assert ws.dbfs_root == ws.root / "dbfs" and ws.dbfs_root.is_dir()
    assert ws.volumes_root == ws.root / "Volumes"
    assert ws.url == ws.host and ws.url.startswith("http://127.0.0.1:")
    assert ws.local_path("dbfs:/tmp/x") == ws.local_path("/tmp/x") == ws.dbfs_root / "tmp" / "x"
    assert ws.local_path(f"{VOLUME}/a/b") == ws.volumes_root / "main" / "default" / "pipes" / "a" / "b"
    assert ws.env() == {
        "DATABRICKS_HOST": ws.url,
        "DATABRICKS_TOKEN": ws.token,
        "DATABRICKS_AUTH_TYPE": "pat",
    }
    assert ws.volumes == [VOLUME]
    assert EmulatorControl(ws.url).health()


def test_standalone_context_manager_removes_its_tempdir() -> None:
    with Emulator(volumes=["c.s.v"]) as emulator:
        root = emulator.root
        assert emulator.volumes == ["/Volumes/c/s/v"]
        emulator.workspace_client().dbfs.mkdirs("/x")
        assert (root / "dbfs" / "x").is_dir()
    assert not root.exists()


def test_auth_is_required(ws: Emulator, w: WorkspaceClient) -> None:
    response = requests.get(f"{ws.url}/api/2.0/dbfs/get-status", params={"path": "/"}, timeout=5)
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    with Emulator(token="secret") as strict:
        with pytest.raises(PermissionDenied):
            strict.workspace_client(token="wrong").dbfs.get_status("/")
        assert strict.workspace_client().dbfs.get_status("/").is_dir
    unknown = requests.post(f"{ws.url}/api/2.0/dbfs/nope", headers={"Authorization": "Bearer x"}, timeout=5)
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert ws.unserved_requests == ["POST /api/2.0/dbfs/nope"]  # counted: the plugin would fail this test
    ws.clear_unserved_requests()


# ----------------------------------------------------------------------------------- DBFS


def test_dbfs_put_get_status_read_list(ws: Emulator, w: WorkspaceClient) -> None:
    w.dbfs.put("dbfs:/tmp/a/b.txt", contents=b64(b"hello"), overwrite=False)  # parents created
    assert ws.local_path("/tmp/a/b.txt").read_bytes() == b"hello"
    status = w.dbfs.get_status("/tmp/a/b.txt")
    assert (status.path, status.is_dir, status.file_size) == ("/tmp/a/b.txt", False, 5)
    assert abs((status.modification_time or 0) / 1000 - time.time()) < 60  # milliseconds
    assert w.dbfs.get_status("/tmp/a").is_dir
    read = w.dbfs.read("/tmp/a/b.txt")
    assert (read.bytes_read, data_of(read)) == (5, b"hello")
    w.dbfs.put("/tmp/a/a.txt", contents=b64(b""))
    assert [f.path for f in w.dbfs.list("/tmp/a")] == ["/tmp/a/a.txt", "/tmp/a/b.txt"]  # sorted
    assert [(f.path, f.file_size) for f in w.dbfs.list("/tmp/a/b.txt")] == [("/tmp/a/b.txt", 5)]
    w.dbfs.mkdirs("/tmp/empty")
    assert list(w.dbfs.list("/tmp/empty")) == []
    with raises(ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST") as info:
        w.dbfs.get_status("/tmp/missing")
    assert isinstance(info.value, NotFound) and info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with raises(ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST"):
        list(files.DbfsAPI(w.api_client).list("/tmp/missing"))
    with raises(ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST"):
        w.dbfs.read("/tmp/missing")


def test_dbfs_put_limits_and_overwrite(w: WorkspaceClient) -> None:
    w.dbfs.put("/tmp/exactly-1mib", contents=b64(b"x" * MiB), overwrite=True)
    with raises(BadRequest, "MAX_BLOCK_SIZE_EXCEEDED"):
        w.dbfs.put("/tmp/too-big", contents=b64(b"x" * (MiB + 1)), overwrite=True)
    with raises(ResourceAlreadyExists, "RESOURCE_ALREADY_EXISTS") as info:
        w.dbfs.put("/tmp/exactly-1mib", contents=b64(b"y"))
    assert "already exists" in str(info.value)
    w.dbfs.put("/tmp/exactly-1mib", contents=b64(b"y"), overwrite=True)
    assert w.dbfs.get_status("/tmp/exactly-1mib").file_size == 1
    w.dbfs.mkdirs("/tmp/dir")
    with raises(ResourceAlreadyExists):
        w.dbfs.put("/tmp/dir", contents=b64(b"y"), overwrite=True)
    with raises(ResourceAlreadyExists):  # a file where a parent directory should be
        w.dbfs.put("/tmp/exactly-1mib/child", contents=b64(b"y"))
    with raises(InvalidParameterValue, "INVALID_PARAMETER_VALUE"):
        w.dbfs.put("relative/path", contents=b64(b"y"))
    with raises(InvalidParameterValue):  # volumes are served by the Files API, not DBFS
        w.dbfs.put(f"{VOLUME}/x", contents=b64(b"y"))


def test_dbfs_multipart_put_is_not_limited_to_1mb(ws: Emulator) -> None:
    auth = {"Authorization": f"Bearer {ws.token}"}
    url = f"{ws.url}/api/2.0/dbfs/put"
    data = os.urandom(2 * MiB)
    ok = requests.post(
        url, headers=auth, data={"path": "/mp.bin", "overwrite": "True"}, files={"contents": data}
    )
    assert ok.status_code == 200 and ws.local_path("/mp.bin").read_bytes() == data
    again = requests.post(
        url, headers=auth, data={"path": "/mp.bin", "overwrite": "False"}, files={"contents": b"x"}
    )
    assert again.status_code == 400 and again.json()["error_code"] == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(ValueError):
        ws.local_path("relative")


def test_dbfs_streaming_upload_is_visible_while_in_progress(ws: Emulator, w: WorkspaceClient) -> None:
    handle = open_stream(w, "/tmp/stream.bin", overwrite=False)
    assert isinstance(handle, int)
    assert w.dbfs.get_status("/tmp/stream.bin").file_size == 0
    w.dbfs.add_block(handle, b64(b"a" * MiB))  # exactly 1 MiB is allowed
    assert ws.local_path("/tmp/stream.bin").stat().st_size == MiB
    w.dbfs.add_block(handle, b64(b"bc"))
    assert w.dbfs.get_status("/tmp/stream.bin").file_size == MiB + 2
    tail = w.dbfs.read("/tmp/stream.bin", offset=MiB, length=10)
    assert data_of(tail) == b"bc"
    with raises(BadRequest, "MAX_BLOCK_SIZE_EXCEEDED"):
        w.dbfs.add_block(handle, b64(b"x" * (MiB + 1)))
    assert ws.dbfs_open_handles == 1
    w.dbfs.close(handle)
    assert ws.dbfs_open_handles == 0
    with raises(ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST"):
        w.dbfs.add_block(handle, b64(b"late"))
    with raises(ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST"):
        w.dbfs.close(handle)
    with raises(ResourceDoesNotExist):
        w.dbfs.close(123)
    with raises(ResourceAlreadyExists, "RESOURCE_ALREADY_EXISTS"):
        w.dbfs.create("/tmp/stream.bin")
    handle2 = open_stream(w, "/tmp/stream.bin", overwrite=True)
    assert w.dbfs.get_status("/tmp/stream.bin").file_size == 0  # truncated at once
    w.dbfs.close(handle2)


@pytest.mark.databricks_emulator(handle_idle_timeout=0.2)
def test_dbfs_handles_expire_when_idle(w: WorkspaceClient) -> None:
    handle = open_stream(w, "/tmp/idle")
    w.dbfs.add_block(handle, b64(b"a"))
    time.sleep(0.3)
    with raises(ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST"):
        w.dbfs.add_block(handle, b64(b"b"))
    assert w.dbfs.get_status("/tmp/idle").file_size == 1  # what was written stays


def test_dbfs_read_limits(w: WorkspaceClient) -> None:
    payload = bytes(range(256)) * (3 * MiB // 256)
    with w.dbfs.open("/tmp/3mib", write=True) as fh:
        fh.write(payload)
    default = w.dbfs.read("/tmp/3mib")
    assert default.bytes_read == 524_288  # the 0.5 MB default that truncates stock chunk reads
    assert data_of(default) == payload[:524_288]
    assert w.dbfs.read("/tmp/3mib", length=MiB).bytes_read == MiB
    with raises(BadRequest, "MAX_READ_SIZE_EXCEEDED"):
        w.dbfs.read("/tmp/3mib", length=MiB + 1)
    past_end = w.dbfs.read("/tmp/3mib", offset=len(payload) + 10)
    assert past_end.bytes_read == 0
    near_end = w.dbfs.read("/tmp/3mib", offset=len(payload) - 3, length=100)
    assert data_of(near_end) == payload[-3:]
    with raises(InvalidParameterValue, "INVALID_PARAMETER_VALUE"):
        w.dbfs.read("/tmp/3mib", offset=-1)
    w.dbfs.mkdirs("/tmp/adir")
    with raises(InvalidParameterValue, "INVALID_PARAMETER_VALUE"):
        w.dbfs.read("/tmp/adir")


def test_dbfs_mkdirs_move_delete(ws: Emulator, w: WorkspaceClient) -> None:
    w.dbfs.mkdirs("/a/b/c")
    w.dbfs.mkdirs("/a/b/c")  # idempotent
    w.dbfs.put("/a/b/file", contents=b64(b"f"))
    with raises(ResourceAlreadyExists, "RESOURCE_ALREADY_EXISTS"):
        w.dbfs.mkdirs("/a/b/file/sub")
    raw = files.DbfsAPI(w.api_client)  # w.dbfs.delete refuses directories client-side
    with raises(BadRequest, "IO_ERROR"):
        raw.delete("/a", recursive=False)
    raw.delete("/does/not/exist")  # succeeds, like the platform
    raw.delete("/a/b/c")  # empty directory without recursive
    w.dbfs.move("/a/b/file", "/moved/deep/file")  # destination parents created
    assert ws.local_path("/moved/deep/file").read_bytes() == b"f"
    with raises(ResourceDoesNotExist, "RESOURCE_DOES_NOT_EXIST"):
        w.dbfs.move("/a/b/file", "/elsewhere")
    w.dbfs.put("/other", contents=b64(b"o"))
    with raises(ResourceAlreadyExists, "RESOURCE_ALREADY_EXISTS"):
        w.dbfs.move("/other", "/moved/deep/file")
    w.dbfs.move("/moved", "/renamed")  # directories move recursively
    assert w.dbfs.get_status("/renamed/deep/file").file_size == 1
    with raises(InvalidParameterValue):
        w.dbfs.move("/renamed", "/renamed/inside")
    w.dbfs.delete("/renamed", recursive=True)
    assert not ws.local_path("/renamed").exists()


def test_dbfs_mixin_helpers(ws: Emulator, w: WorkspaceClient) -> None:
    big = os.urandom(2 * MiB + 123)
    with w.dbfs.open("/mix/big.bin", write=True) as fh:
        fh.write(big)
    assert ws.stats["POST /api/2.0/dbfs/add-block"] == 3  # ≤ 1 MiB blocks
    assert w.dbfs.download("/mix/big.bin").read() == big
    w.dbfs.upload("/mix/sub/small.txt", io.BytesIO(b"small"))
    with pytest.raises(ResourceAlreadyExists):
        w.dbfs.upload("/mix/sub/small.txt", io.BytesIO(b"again"))
    w.dbfs.upload("/mix/sub/small.txt", io.BytesIO(b"again"), overwrite=True)
    assert w.dbfs.exists("/mix/sub/small.txt") and not w.dbfs.exists("/mix/nope")
    assert sorted(str(f.path) for f in w.dbfs.list("/mix", recursive=True)) == [
        "/mix/big.bin",
        "/mix/sub/small.txt",
    ]
    w.dbfs.copy("/mix/sub/small.txt", "/mix/copy.txt")
    assert ws.local_path("/mix/copy.txt").read_bytes() == b"again"
    with pytest.raises(IOError, match="recursive"):
        w.dbfs.delete("/mix")
    w.dbfs.delete("/mix", recursive=True)
    assert not w.dbfs.exists("/mix")


# ------------------------------------------------------------------------------ Files API


def test_files_upload_download_metadata(ws: Emulator, w: WorkspaceClient) -> None:
    path = f"{VOLUME}/deep/dir/name with ?, # and %.txt"
    w.files.upload(path, io.BytesIO(b"some text data"))  # parents created, overwrite defaults to True
    assert ws.local_path(path).read_bytes() == b"some text data"
    download = w.files.download(path)
    assert body(download) == b"some text data"
    assert (download.content_length, download.content_type) == (14, "application/octet-stream")
    assert download.last_modified and download.last_modified.endswith("GMT")
    meta = w.files.get_metadata(path)
    assert (meta.content_length, meta.content_type) == (14, "application/octet-stream")
    w.files.upload(path, io.BytesIO(b"replaced"))
    with raises(AlreadyExists, "ALREADY_EXISTS") as info:
        w.files.upload(path, io.BytesIO(b"nope"), overwrite=False)
    assert isinstance(info.value, ResourceConflict)
    assert body(w.files.download(path)) == b"replaced"
    w.files.delete(path)
    for call in (w.files.download, w.files.get_metadata, w.files.delete):
        with raises(NotFound):
            call(path)
    with raises(NotFound):  # /fs/files does not serve directories
        w.files.download(f"{VOLUME}/deep/dir")
    with raises(AlreadyExists):
        w.files.upload(f"{VOLUME}/deep", io.BytesIO(b"x"))


def test_files_range_reads(ws: Emulator, w: WorkspaceClient) -> None:
    path = f"{VOLUME}/range.bin"
    w.files.upload(path, io.BytesIO(b"0123456789"))
    url = f"{ws.url}/api/2.0/fs/files{path}"
    auth = {"Authorization": f"Bearer {ws.token}"}
    part = requests.get(url, headers={**auth, "Range": "bytes=2-5"}, timeout=5)
    assert part.status_code == 206 and part.content == b"2345"
    assert part.headers["Content-Range"] == "bytes 2-5/10" and part.headers["Content-Length"] == "4"
    assert requests.get(url, headers={**auth, "Range": "bytes=7-"}, timeout=5).content == b"789"
    assert requests.get(url, headers={**auth, "Range": "bytes=-3"}, timeout=5).content == b"789"
    assert requests.get(url, headers={**auth, "Range": "bytes=8-100"}, timeout=5).content == b"89"
    unsatisfiable = requests.get(url, headers={**auth, "Range": "bytes=10-"}, timeout=5)
    assert unsatisfiable.status_code == 416 and unsatisfiable.headers["Content-Range"] == "bytes */10"
    # The SDK's raw API client sends the same headers as FilesExt's resumable download.
    res = w.api_client.do(
        "GET",
        f"/api/2.0/fs/files{path}",
        headers={"Range": "bytes=4-", "If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
        raw=True,
        response_headers=["content-length"],
    )
    assert isinstance(res, dict) and res["contents"].read() == b"456789" and res["content-length"] == "6"
    stale = requests.get(
        url, headers={**auth, "If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, timeout=5
    )
    assert stale.status_code == 412
    head = requests.head(url, headers=auth, timeout=5)
    assert head.status_code == 200 and head.headers["Content-Length"] == "10" and head.content == b""


def test_files_directories(ws: Emulator, w: WorkspaceClient) -> None:
    w.files.create_directory(f"{VOLUME}/d/e/f")
    w.files.create_directory(f"{VOLUME}/d/e/f/")  # idempotent, trailing slash accepted
    w.files.get_directory_metadata(f"{VOLUME}/d/e")
    for i in range(5):
        w.files.upload(f"{VOLUME}/d/file{i}.json", io.BytesIO(b"{}"))
    ws.reset_stats()
    entries = list(w.files.list_directory_contents(f"{VOLUME}/d", page_size=2))
    assert [e.name for e in entries] == [
        "e",
        "file0.json",
        "file1.json",
        "file2.json",
        "file3.json",
        "file4.json",
    ]
    assert ws.stats["GET /api/2.0/fs/directories"] == 3  # pages of 2 via next_page_token
    first = entries[0]
    assert first.is_directory and first.path == f"{VOLUME}/d/e/" and first.file_size is None
    assert (
        entries[1].file_size == 2 and entries[1].last_modified and entries[1].path == f"{VOLUME}/d/file0.json"
    )
    listing = w.api_client.do("GET", f"/api/2.0/fs/directories{VOLUME}/d", query={"page_size": 5000})
    assert isinstance(listing, dict) and len(listing["contents"]) == 6 and "next_page_token" not in listing
    page = w.api_client.do("GET", f"/api/2.0/fs/directories{VOLUME}/d", query={"page_size": 2})
    assert isinstance(page, dict)
    with raises(InvalidParameterValue):  # other parameters must match the original request
        w.api_client.do(
            "GET",
            f"/api/2.0/fs/directories{VOLUME}/d",
            query={"page_size": 3, "page_token": page["next_page_token"]},
        )
    with raises(InvalidParameterValue, "INVALID_PARAMETER_VALUE") as info:
        w.files.delete_directory(f"{VOLUME}/d")
    error_info = info.value.get_error_details().error_info
    assert error_info is not None and error_info.reason == "FILES_API_DIRECTORY_IS_NOT_EMPTY"
    w.files.delete_directory(f"{VOLUME}/d/e/f")
    for call in (w.files.get_directory_metadata, w.files.delete_directory):
        with raises(NotFound):
            call(f"{VOLUME}/d/e/f")
    with raises(NotFound):
        list(w.files.list_directory_contents(f"{VOLUME}/d/e/f"))
    with raises(NotFound):  # a file is not a directory
        list(w.files.list_directory_contents(f"{VOLUME}/d/file0.json"))
    with raises(ResourceConflict):
        w.files.create_directory(f"{VOLUME}/d/file0.json/sub")
    with raises(BadRequest):
        w.files.delete_directory(VOLUME)


def test_volumes_must_exist(ws: Emulator, w: WorkspaceClient) -> None:
    with raises(NotFound) as info:
        w.files.upload("/Volumes/main/default/missing/x.txt", io.BytesIO(b"x"))
    assert "main.default.missing" in str(info.value)
    with raises(NotFound):
        w.files.get_metadata("/Volumes/main/default/missing/x.txt")  # HEAD: empty body, still typed
    with raises(InvalidParameterValue):
        list(w.files.list_directory_contents("/Volumes/main/default"))
    with raises(InvalidParameterValue):
        w.files.upload("/tmp/not-a-volume.txt", io.BytesIO(b"x"))
    assert ws.create_volume("main", "default", "missing") == "/Volumes/main/default/missing"
    w.files.upload("/Volumes/main/default/missing/x.txt", io.BytesIO(b"x"))
    assert EmulatorControl(ws.url).create_volume("c.s.v") == "/Volumes/c/s/v"
    assert "/Volumes/c/s/v" in ws.volumes


@pytest.mark.databricks_emulator(auto_create_volumes=True)
def test_volumes_can_be_auto_created(ws: Emulator, w: WorkspaceClient) -> None:
    w.files.upload("/Volumes/any/thing/goes/x.txt", io.BytesIO(b"x"))
    assert "/Volumes/any/thing/goes" in ws.volumes


def test_dbfs_mixin_routes_volumes_to_files_api(ws: Emulator, w: WorkspaceClient) -> None:
    with w.dbfs.open(f"{VOLUME}/mixin/a.txt", write=True, overwrite=True) as fh:
        fh.write(b"via files api")
    assert w.dbfs.exists(f"{VOLUME}/mixin/a.txt") and w.dbfs.exists(f"{VOLUME}/mixin")
    assert [f.path for f in w.dbfs.list(f"{VOLUME}/mixin")] == [f"{VOLUME}/mixin/a.txt"]
    assert w.dbfs.download(f"{VOLUME}/mixin/a.txt").read(-1) == b"via files api"  # SDK: read() needs n
    assert not any("/api/2.0/dbfs/" in endpoint for endpoint in ws.stats)


# ---------------------------------------------------------------------------------- faults


def test_faults_are_injected_before_side_effects_and_sdk_retries(ws: Emulator, w: WorkspaceClient) -> None:
    with ws.faults(rate=0.3, seed=7) as handle:
        assert handle.config.rate == 0.3
        for i in range(15):
            # overwrite=False: a side effect before the fault would make the retry fail
            w.dbfs.put(f"/faulty/{i}", contents=b64(b"%d" % i), overwrite=False)
            h = open_stream(w, f"/faulty/stream{i}", overwrite=False)
            w.dbfs.add_block(h, b64(b"abc"))
            w.dbfs.close(h)
            w.files.upload(f"{VOLUME}/faulty/{i}", io.BytesIO(b"v"), overwrite=False)
            assert data_of(w.dbfs.read(f"/faulty/{i}")) == b"%d" % i
    stats = ws.stats
    assert stats["faults"] > 5
    assert sum(ws.fault_stats.values()) == stats["faults"]
    assert stats["POST /api/2.0/dbfs/put"] == 15 + ws.fault_stats.get("POST /api/2.0/dbfs/put", 0)
    assert ws.fault_config.rate == 0  # restored on exit
    for i in range(15):  # each block appended exactly once despite faulted add-block calls
        assert ws.local_path(f"/faulty/stream{i}").read_bytes() == b"abc"


def test_fault_filters_and_retry_after(ws: Emulator, w: WorkspaceClient) -> None:
    ws.faults(rate=1.0, statuses=(429,), endpoints=["dbfs/get-status"], max_faults=2)
    ws.reset_stats()
    assert w.dbfs.get_status("/").is_dir  # two 429s, then success
    assert ws.stats["GET /api/2.0/dbfs/get-status"] == 3 and ws.stats["faults"] == 2
    ws.faults(rate=1.0, statuses=(429,), endpoints=["dbfs/list"])
    response = requests.get(
        f"{ws.url}/api/2.0/dbfs/list", params={"path": "/"}, headers={"Authorization": "Bearer t"}, timeout=5
    )
    assert response.status_code == 429 and response.headers["Retry-After"] == "0"
    assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    ws.faults(rate=1.0, statuses=(503,), endpoints=["dbfs/list"])
    response = requests.get(
        f"{ws.url}/api/2.0/dbfs/list", params={"path": "/"}, headers={"Authorization": "Bearer t"}, timeout=5
    )
    assert response.status_code == 503 and response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    ws.faults(rate=1.0, statuses=(500,), endpoints=["dbfs/mkdirs"])
    with pytest.raises(DatabricksError):  # not retried by the SDK
        w.dbfs.mkdirs("/never")
    assert not ws.local_path("/never").exists()
    ws.clear_faults()
    w.dbfs.mkdirs("/now")


def test_faults_and_stats_over_http(ws: Emulator, w: WorkspaceClient) -> None:
    control = EmulatorControl(ws.url)
    control.set_faults(rate=1.0, statuses=[503], endpoints=["fs/files"], max_faults=1, seed=3)
    assert ws.fault_config.endpoints == ("fs/files",) and ws.fault_config.max_faults == 1
    w.files.upload(f"{VOLUME}/http.txt", io.BytesIO(b"x"))
    assert control.stats()["faults"] == 1
    assert control.fault_stats() == {"PUT /api/2.0/fs/files": 1}
    control.reset_stats()
    assert control.stats() == {"faults": 0}
    with control.faults(rate=1.0, statuses=[429], endpoints=["nothing-matches"]):
        assert ws.fault_config.endpoints == ("nothing-matches",)
    assert ws.fault_config.endpoints == ("fs/files",)
    control.clear_faults()
    assert ws.fault_config.rate == 0


@pytest.mark.databricks_emulator(record_requests=True)
def test_request_log(ws: Emulator, w: WorkspaceClient) -> None:
    w.dbfs.mkdirs("/logged")
    with pytest.raises(NotFound):
        w.dbfs.get_status("/not-there")
    records = ws.requests
    assert [(r.method, r.path, r.status) for r in records] == [
        ("POST", "/api/2.0/dbfs/mkdirs", 200),
        ("GET", "/api/2.0/dbfs/get-status", 404),
    ]
    assert records[1].query == {"path": "/not-there"}
    assert EmulatorControl(ws.url).requests()[0]["endpoint"] == "POST /api/2.0/dbfs/mkdirs"
    ws.clear_requests()
    assert ws.requests == []


# -------------------------------------------------------------------------- dagster-databricks


def test_dagster_dbfs_context_injector(ws: Emulator, w: WorkspaceClient) -> None:
    from dagster_databricks.pipes import PipesDbfsContextInjector

    context: Any = {"asset_keys": ["a"], "extras": {"blob": "x" * 1000}}
    with PipesDbfsContextInjector(client=w).inject_context(context) as params:
        path = params["path"]
        assert path.startswith("/tmp/") and path.endswith("/context.json")
        read = w.dbfs.read(path)
        assert json.loads(data_of(read)) == context
        assert json.loads(ws.local_path(path).read_text()) == context  # what a /dbfs FUSE reader sees
    assert not ws.local_path(path).parent.exists()  # dbfs_tempdir cleaned up


def test_dagster_dbfs_context_injector_hits_the_1mb_put_limit(w: WorkspaceClient) -> None:
    from dagster_databricks.pipes import PipesDbfsContextInjector

    fits: Any = {"extras": {"blob": "x" * 1_000_000}}  # ~1 MB of JSON: still within the put limit
    with PipesDbfsContextInjector(client=w).inject_context(fits):
        pass
    too_big: Any = {"extras": {"blob": "x" * MiB}}
    with raises(BadRequest, "MAX_BLOCK_SIZE_EXCEEDED"):
        with PipesDbfsContextInjector(client=w).inject_context(too_big):
            pass


def test_dagster_dbfs_message_reader_with_fake_dbutils(ws: Emulator, w: WorkspaceClient) -> None:
    from dagster_databricks.pipes import PipesDbfsMessageReader

    reader = PipesDbfsMessageReader(client=w, interval=0.1)
    dbutils = FakeDbutils(host=ws.url, token=ws.token, verbose=False)
    with reader.get_params() as params:
        assert params["include_stdio_in_messages"] is False
        assert reader.messages_are_readable(params)
        assert reader.download_messages_chunk(1, params) is None  # not written yet
        chunk = '{"__dagster_pipes_version": "0.1", "method": "opened", "params": {}}\n'
        dbutils.fs.put(f"dbfs:{params['path']}/1.json", chunk)
        assert reader.download_messages_chunk(1, params) == chunk
        big = "x" * (600 * 1024)
        dbutils.fs.put(f"{params['path']}/2.json", big)  # > 1 MB-safe write, > 0.5 MB chunk
        truncated = reader.download_messages_chunk(2, params)
        assert truncated is not None and len(truncated) == 524_288  # the stock reader's silent cut
        tempdir = params["path"]
    assert not w.dbfs.exists(tempdir)
    assert not reader.messages_are_readable({"path": "/tmp/gone"})


def test_dagster_unity_catalog_volumes_injector_and_reader(ws: Emulator, w: WorkspaceClient) -> None:
    from dagster_databricks.pipes import (
        PipesUnityCatalogVolumesContextInjector,
        PipesUnityCatalogVolumesMessageReader,
        volumes_tempdir,
    )

    context: Any = {"asset_keys": ["a"], "extras": {"k": "v"}}
    injector = PipesUnityCatalogVolumesContextInjector(client=w, volume_path=VOLUME)
    with injector.inject_context(context) as params:
        path = params["path"]
        assert path.startswith(f"{VOLUME}/tmp/") and path.endswith("/context.json")
        assert json.loads(body(w.files.download(path))) == context
        assert json.loads(ws.local_path(path).read_text()) == context  # plain JSON on the /Volumes mount
    assert not ws.local_path(path).parent.exists()

    reader = PipesUnityCatalogVolumesMessageReader(client=w, volume_path=VOLUME, interval=0.1)
    dbutils = FakeDbutils(host=ws.url, token=ws.token, verbose=False)
    with reader.get_params() as params:
        assert params["include_stdio_in_messages"] is True
        assert reader.messages_are_readable(params)
        assert reader.download_messages_chunk(1, params) is None
        big_chunk = "y" * (2 * MiB)  # no size cap on the Files API path
        dbutils.fs.put(f"{params['path']}/1.json", big_chunk)
        assert reader.download_messages_chunk(1, params) == big_chunk
        tempdir = params["path"]
    assert not ws.local_path(tempdir).exists()  # delete_volume_directory_recursive worked
    # Stock quirk: list_directory_contents is a lazy generator, so this never makes a request and
    # is True even for a directory that does not exist.
    assert reader.messages_are_readable({"path": f"{VOLUME}/does/not/exist"})

    with volumes_tempdir(w.files, VOLUME) as tmp:
        w.files.upload(f"{tmp}/nested/a.json", io.BytesIO(b"{}"))
    assert not ws.local_path(tmp).exists()
    missing_volume = PipesUnityCatalogVolumesContextInjector(client=w, volume_path="/Volumes/x/y/z")
    with pytest.raises(NotFound):  # a missing volume fails loudly, as in production
        with missing_volume.inject_context(context):
            pass


# ---------------------------------------------------------------------------- the plugin


def test_plugin_import_is_light() -> None:
    code = textwrap.dedent(
        """
        import sys
        import dagster_pipes_spark.testing.pytest_plugin
        import dagster_pipes_spark.testing
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "databricks", "dagster"))
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_subprocess_uses_env(ws: Emulator, w: WorkspaceClient) -> None:
    code = textwrap.dedent(
        """
        from dagster_pipes_spark.testing import FakeDbutils, EmulatorControl
        dbutils = FakeDbutils(verbose=False)  # DATABRICKS_HOST / DATABRICKS_TOKEN from env()
        EmulatorControl().set_faults(rate=0.5, seed=1, endpoints=["dbfs"])
        dbutils.fs.put("dbfs:/from-subprocess.txt", "hi " * 10)
        print(dbutils.fs.head("/from-subprocess.txt"))
        """
    )
    env = {**os.environ, **ws.env()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == ("hi " * 10).strip()
    assert ws.fault_config.rate == 0.5  # flipped over HTTP from the subprocess
    ws.clear_faults()
    assert data_of(w.dbfs.read("/from-subprocess.txt")) == b"hi " * 10
