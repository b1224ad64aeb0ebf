"""Workspace storage through databricks-sdk (REST): DBFS 2.0 and the Files API for UC Volumes."""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

from .file_store import (
    DBFS_MAX_BLOCK,
    FileStore,
    StorageNotFoundError,
    dbfs_path,
)
from .retry import is_not_found, with_retries


class SdkDbfsFileStore(FileStore):
    """DBFS through ``WorkspaceClient().dbfs`` (REST): works off-cluster and without FUSE."""

    name = "sdk"

    def __init__(self, client: Any):
        self.client = client
        self.api = client.dbfs

    def read_bytes(self, path: str) -> bytes:
        path = dbfs_path(path)
        out = io.BytesIO()
        offset = 0
        while True:

            def call(offset: int = offset) -> Any:
                return self.api.read(path, offset=offset, length=DBFS_MAX_BLOCK)

            try:
                resp = with_retries(call, f"read {path}")
            except Exception as e:
                if is_not_found(e):
                    raise StorageNotFoundError(f"dbfs:{path} does not exist.") from e
                raise
            chunk = base64.b64decode(resp.data or "")
            out.write(chunk)
            offset += len(chunk)
            if len(chunk) < DBFS_MAX_BLOCK:
                return out.getvalue()

    def write_bytes(self, path: str, data: bytes) -> None:
        path = dbfs_path(path)
        if len(data) <= DBFS_MAX_BLOCK:
            # One request: the file appears whole (no partially visible stream).
            encoded = base64.b64encode(data).decode("ascii")
            with_retries(lambda: self.api.put(path, contents=encoded, overwrite=True), f"put {path}")
            return
        parent, _, base = path.rpartition("/")
        tmp = f"{parent}/.{base}.{uuid.uuid4().hex[:8]}.tmp"
        handle = with_retries(lambda: self.api.create(tmp, overwrite=True), f"create {tmp}").handle
        for start in range(0, len(data), DBFS_MAX_BLOCK):
            block = base64.b64encode(data[start : start + DBFS_MAX_BLOCK]).decode("ascii")
            self.api.add_block(handle, block)  # not retried: a retry could append twice
        with_retries(lambda: self.api.close(handle), f"close {tmp}")
        try:
            self.api.delete(path)
        except Exception as e:
            if not is_not_found(e):
                raise
        with_retries(lambda: self.api.move(tmp, path), f"move {tmp}")

    def exists(self, path: str) -> bool:
        try:
            with_retries(lambda: self.api.get_status(dbfs_path(path)), f"get-status {path}")
            return True
        except Exception as e:
            if is_not_found(e):
                return False
            raise

    def list(self, path: str) -> list[str]:
        return sorted(f.path.rstrip("/").rsplit("/", 1)[-1] for f in self.api.list(dbfs_path(path)))

    def mkdirs(self, path: str) -> None:
        with_retries(lambda: self.api.mkdirs(dbfs_path(path)), f"mkdirs {path}")

    def delete(self, path: str, recursive: bool = False) -> None:
        with_retries(lambda: self.api.delete(dbfs_path(path), recursive=recursive), f"delete {path}")


class SdkVolumesFileStore(FileStore):
    """UC Volumes through the Files API (``WorkspaceClient().files``)."""

    name = "sdk"

    def __init__(self, client: Any):
        self.client = client
        self.api = client.files

    def read_bytes(self, path: str) -> bytes:
        def call() -> bytes:
            resp = self.api.download(path)
            return bytes(resp.contents.read())

        try:
            return with_retries(call, f"download {path}")
        except Exception as e:
            if is_not_found(e):
                raise StorageNotFoundError(f"{path} does not exist.") from e
            raise

    def write_bytes(self, path: str, data: bytes) -> None:
        # A single PUT: the Files API publishes the file when the upload completes.
        with_retries(lambda: self.api.upload(path, io.BytesIO(data), overwrite=True), f"upload {path}")

    def exists(self, path: str) -> bool:
        for probe in (self.api.get_metadata, self.api.get_directory_metadata):
            try:
                with_retries(lambda probe=probe: probe(path), f"metadata {path}")  # type: ignore[misc]
                return True
            except Exception as e:
                if not is_not_found(e):
                    raise
        return False

    def list(self, path: str) -> list[str]:
        return sorted(
            e.name or e.path.rstrip("/").rsplit("/", 1)[-1] for e in self.api.list_directory_contents(path)
        )

    def mkdirs(self, path: str) -> None:
        with_retries(lambda: self.api.create_directory(path), f"create-directory {path}")

    def delete(self, path: str, recursive: bool = False) -> None:
        try:
            self.api.delete(path)
            return
        except Exception as e:
            if is_not_found(e):
                return
            if not recursive:
                raise
        for name in self.list(path):
            self.delete(f"{path.rstrip('/')}/{name}", recursive=True)
        self.api.delete_directory(path)
