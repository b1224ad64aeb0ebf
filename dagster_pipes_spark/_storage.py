"""One small file-store interface over DBFS / UC Volumes: FUSE, ``dbutils.fs``, databricks-sdk, memory.

Paths given to a store are *logical* workspace paths: ``/tmp/x`` (or ``dbfs:/tmp/x``) for DBFS and
``/Volumes/<catalog>/<schema>/<volume>/...`` for Unity Catalog Volumes. Every store publishes a file
atomically (a reader never sees a half-written file) and reads files of any size.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from ._errors import DagsterPipesError

logger = logging.getLogger("dagster_pipes_spark")

Kind = Literal["dbfs", "volumes"]
_T = TypeVar("_T")

#: Env vars that relocate the FUSE mounts (tests map them onto a temp dir).
DBFS_FUSE_ROOT_ENV = "DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT"
VOLUMES_FUSE_ROOT_ENV = "DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT"
DBFS_MAX_BLOCK = 1024 * 1024  # put / add-block / read limit of the DBFS API


class StorageNotFound(DagsterPipesError):
    """The path does not exist."""


def dbfs_path(path: str) -> str:
    """Normalise a DBFS path to ``/x/y`` (accepts ``dbfs:/x/y``, ``dbfs:x`` and ``/dbfs/x/y``)."""
    if path.startswith("dbfs:"):
        path = path[len("dbfs:") :]
    if path.startswith("/dbfs/"):
        path = path[len("/dbfs") :]
    return "/" + path.lstrip("/")


def _is_transient(e: BaseException) -> bool:
    if isinstance(e, (ConnectionError, TimeoutError)):
        return True
    status = getattr(e, "status_code", None) or getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return True
    code = str(getattr(e, "error_code", "") or "")
    if code in ("TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS", "INTERNAL_ERROR"):
        return True
    name = type(e).__name__
    return name in ("TooManyRequests", "TemporarilyUnavailable", "InternalError", "ServiceUnavailable", "DeadlineExceeded")


def with_retries(fn: Callable[[], _T], what: str, attempts: int = 8) -> _T:
    """Call ``fn``, retrying transient failures (429, 5xx, resets) with exponential backoff and jitter."""
    delay = 0.2
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as e:
            if attempt == attempts - 1 or not _is_transient(e):
                raise
            logger.debug("dagster-pipes-spark: %s failed (%r); retry %d of %d", what, e, attempt + 1, attempts - 1)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


class FileStore(ABC):
    """The operations Pipes loaders and writers need from workspace storage."""

    #: short name for logs and ``doctor``: ``fuse``, ``dbutils``, ``sdk`` or ``memory``
    name: str = "store"

    @abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path``; raises ``StorageNotFound`` if missing."""

    @abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` atomically."""

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether ``path`` exists (file or directory)."""

    @abstractmethod
    def list(self, path: str) -> list[str]:
        """Names of the entries of directory ``path``."""

    @abstractmethod
    def mkdirs(self, path: str) -> None:
        """Create directory ``path`` with its parents."""

    @abstractmethod
    def delete(self, path: str, recursive: bool = False) -> None:
        """Delete a file or directory (missing paths are fine)."""

    def describe(self) -> str:
        """A one-line description for logs."""
        return self.name


# ----------------------------------------------------------------------------------- FUSE


class FuseFileStore(FileStore):
    """Direct file access through a FUSE mount (``/dbfs`` or ``/Volumes``) or any local directory."""

    name = "fuse"

    def __init__(self, kind: Kind, root: str | None = None):
        self.kind = kind
        if root is None:
            env = DBFS_FUSE_ROOT_ENV if kind == "dbfs" else VOLUMES_FUSE_ROOT_ENV
            root = os.environ.get(env) or ("/dbfs" if kind == "dbfs" else "/Volumes")
        self.root = root.rstrip("/") or "/"
        self._made: set[str] = set()

    @staticmethod
    def available(kind: Kind) -> bool:
        """Whether the mount for ``kind`` is present here."""
        return os.path.isdir(FuseFileStore(kind).root)

    def local(self, path: str) -> str:
        """The local filesystem path for a logical path."""
        if self.kind == "dbfs":
            return self.root + dbfs_path(path)
        if not path.startswith("/Volumes/") and path != "/Volumes":
            raise DagsterPipesError(f"{path!r} is not a Unity Catalog Volumes path (expected /Volumes/<catalog>/<schema>/<volume>/...).")
        return self.root + path[len("/Volumes") :]

    def read_bytes(self, path: str) -> bytes:
        try:
            with open(self.local(path), "rb") as f:
                return f.read()
        except FileNotFoundError as e:
            raise StorageNotFound(f"{path} does not exist ({self.local(path)}).") from e

    def write_bytes(self, path: str, data: bytes) -> None:
        final = self.local(path)
        directory, base = os.path.split(final)
        if directory not in self._made:  # once per directory, not per chunk
            os.makedirs(directory, exist_ok=True)
            self._made.add(directory)
        tmp = os.path.join(directory, f".{base}.{uuid.uuid4().hex[:8]}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, final)

    def exists(self, path: str) -> bool:
        return os.path.exists(self.local(path))

    def list(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.local(path)))
        except FileNotFoundError as e:
            raise StorageNotFound(f"{path} does not exist.") from e

    def mkdirs(self, path: str) -> None:
        os.makedirs(self.local(path), exist_ok=True)

    def delete(self, path: str, recursive: bool = False) -> None:
        import shutil

        local = self.local(path)
        if os.path.isdir(local):
            if recursive:
                shutil.rmtree(local, ignore_errors=True)
            else:
                os.rmdir(local)
        elif os.path.exists(local):
            os.remove(local)

    def describe(self) -> str:
        return f"fuse ({self.root})"


# ----------------------------------------------------------------------------------- memory


class MemoryFileStore(FileStore):
    """An in-memory store for unit tests (directories are implicit)."""

    name = "memory"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.calls = 0

    @staticmethod
    def _key(path: str) -> str:
        return "/" + path.replace("dbfs:", "").strip("/")

    def read_bytes(self, path: str) -> bytes:
        self.calls += 1
        try:
            return self.files[self._key(path)]
        except KeyError as e:
            raise StorageNotFound(f"{path} does not exist.") from e

    def write_bytes(self, path: str, data: bytes) -> None:
        self.calls += 1
        self.files[self._key(path)] = bytes(data)

    def exists(self, path: str) -> bool:
        key = self._key(path)
        return key in self.files or any(k.startswith(key + "/") for k in self.files)

    def list(self, path: str) -> list[str]:
        prefix = self._key(path).rstrip("/") + "/"
        return sorted({k[len(prefix) :].split("/")[0] for k in self.files if k.startswith(prefix)})

    def mkdirs(self, path: str) -> None:
        return None

    def delete(self, path: str, recursive: bool = False) -> None:
        key = self._key(path)
        for k in [k for k in self.files if k == key or k.startswith(key + "/")]:
            del self.files[k]


# ----------------------------------------------------------------------------------- dbutils


class DbutilsFileStore(FileStore):
    """Storage through a notebook's ``dbutils.fs`` (works on every compute type, no FUSE needed)."""

    name = "dbutils"

    def __init__(self, kind: Kind, dbutils: Any):
        self.kind = kind
        self.fs = getattr(dbutils, "fs", dbutils)

    def _uri(self, path: str) -> str:
        return "dbfs:" + dbfs_path(path) if self.kind == "dbfs" else path

    def read_bytes(self, path: str) -> bytes:
        uri = self._uri(path)
        try:
            size = self._size(uri)
            text = self.fs.head(uri, max(size, 1) + 1)
        except Exception as e:
            if _looks_not_found(e):
                raise StorageNotFound(f"{path} does not exist.") from e
            raise
        return text.encode("utf-8") if isinstance(text, str) else bytes(text)

    def _size(self, uri: str) -> int:
        parent, _, base = uri.rstrip("/").rpartition("/")
        for info in self.fs.ls(parent or "/"):
            if getattr(info, "name", "").rstrip("/") == base:
                return int(getattr(info, "size", 0))
        raise StorageNotFound(f"{uri} does not exist.")

    def write_bytes(self, path: str, data: bytes) -> None:
        uri = self._uri(path)
        parent, _, base = uri.rpartition("/")
        tmp = f"{parent}/.{base}.{uuid.uuid4().hex[:8]}.tmp"
        with_retries(lambda: self.fs.put(tmp, data.decode("utf-8"), True), f"put {tmp}")
        with_retries(lambda: self.fs.mv(tmp, uri), f"mv {tmp}")

    def exists(self, path: str) -> bool:
        uri = self._uri(path)
        try:
            self.fs.ls(uri)
            return True
        except Exception as e:
            if _looks_not_found(e):
                return False
            raise

    def list(self, path: str) -> list[str]:
        return sorted(getattr(i, "name", "").rstrip("/") for i in self.fs.ls(self._uri(path)))

    def mkdirs(self, path: str) -> None:
        self.fs.mkdirs(self._uri(path))

    def delete(self, path: str, recursive: bool = False) -> None:
        try:
            self.fs.rm(self._uri(path), recursive)
        except Exception as e:
            if not _looks_not_found(e):
                raise


def _looks_not_found(e: BaseException) -> bool:
    text = f"{type(e).__name__} {e}"
    return any(s in text for s in ("FileNotFound", "NotFound", "RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "does not exist", "No such file"))


# ----------------------------------------------------------------------------------- databricks-sdk


def _is_not_found(e: BaseException) -> bool:
    return type(e).__name__ in ("NotFound", "ResourceDoesNotExist") or getattr(e, "error_code", None) in (
        "RESOURCE_DOES_NOT_EXIST",
        "NOT_FOUND",
    )


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
                if _is_not_found(e):
                    raise StorageNotFound(f"dbfs:{path} does not exist.") from e
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
        except Exception as e:  # noqa: BLE001
            if not _is_not_found(e):
                raise
        with_retries(lambda: self.api.move(tmp, path), f"move {tmp}")

    def exists(self, path: str) -> bool:
        try:
            with_retries(lambda: self.api.get_status(dbfs_path(path)), f"get-status {path}")
            return True
        except Exception as e:
            if _is_not_found(e):
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
            if _is_not_found(e):
                raise StorageNotFound(f"{path} does not exist.") from e
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
                if not _is_not_found(e):
                    raise
        return False

    def list(self, path: str) -> list[str]:
        return sorted(e.name or e.path.rstrip("/").rsplit("/", 1)[-1] for e in self.api.list_directory_contents(path))

    def mkdirs(self, path: str) -> None:
        with_retries(lambda: self.api.create_directory(path), f"create-directory {path}")

    def delete(self, path: str, recursive: bool = False) -> None:
        try:
            self.api.delete(path)
            return
        except Exception as e:
            if _is_not_found(e):
                return
            if not recursive:
                raise
        for name in self.list(path):
            self.delete(f"{path.rstrip('/')}/{name}", recursive=True)
        self.api.delete_directory(path)


def _workspace_client() -> Any:
    try:
        from databricks.sdk import WorkspaceClient
    except ImportError as e:
        raise DagsterPipesError(
            "No way to reach Databricks storage here: no FUSE mount, no notebook `dbutils`, and "
            "databricks-sdk is not installed. Install `dagster-pipes-spark[databricks]`, or pass "
            "`client=WorkspaceClient(...)` or `dbutils=dbutils`."
        ) from e
    return WorkspaceClient()


def resolve_store(kind: Kind, *, client: Any = None, dbutils: Any = None, store: FileStore | None = None) -> FileStore:
    """Pick the storage backend: explicit ``store``/``client``/``dbutils``, else FUSE, notebook
    ``dbutils``, then ``WorkspaceClient()`` from the environment (Databricks unified auth)."""
    chosen: FileStore
    if store is not None:
        chosen = store
    elif client is not None:
        chosen = SdkDbfsFileStore(client) if kind == "dbfs" else SdkVolumesFileStore(client)
    elif dbutils is not None:
        chosen = DbutilsFileStore(kind, dbutils)
    elif FuseFileStore.available(kind):
        chosen = FuseFileStore(kind)
    else:
        from ._params import find_notebook_dbutils

        nb = find_notebook_dbutils()
        if nb is not None and getattr(nb, "fs", None) is not None:
            chosen = DbutilsFileStore(kind, nb)
        else:
            wc = _workspace_client()
            chosen = SdkDbfsFileStore(wc) if kind == "dbfs" else SdkVolumesFileStore(wc)
    logger.info("dagster-pipes-spark: %s storage via %s", kind, chosen.describe())
    return chosen
