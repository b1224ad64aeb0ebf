"""The filesystems behind the fake ``dbutils.fs``: DBFS and UC volumes over REST, and local files.

Each backend speaks plain paths (``/x`` within its filesystem) and reports the two conditions the
``dbutils.fs`` semantics need as :class:`ExistsError` / :class:`NotEmptyError`; every other failure
is the REST client's :class:`~dagster_pipes_spark.testing._rest.HttpError`.
"""

from __future__ import annotations

import base64
import posixpath
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

from .._rest import HttpError, RestClient, none_if_missing

__all__ = [
    "Backend",
    "DbfsBackend",
    "Entry",
    "ExistsError",
    "LocalBackend",
    "NotEmptyError",
    "VolumesBackend",
]

_MiB = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """A file or directory as a backend reports it (``mtime`` in epoch milliseconds)."""

    path: str
    is_dir: bool
    size: int
    mtime: int

    @property
    def name(self) -> str:
        """The last path component."""
        return posixpath.basename(self.path.rstrip("/"))


class ExistsError(Exception):
    """Something already exists where a file or directory was to be created."""


class NotEmptyError(Exception):
    """A non-recursive delete of a directory that has children."""


class Backend(Protocol):
    """One filesystem of ``dbutils.fs``."""

    def display(self, path: str) -> str:
        """``path`` as ``dbutils`` shows it (``dbfs:/x``, ``file:/x``)."""
        ...

    def stat(self, path: str) -> Entry | None:
        """The entry at ``path``, or ``None``."""
        ...

    def list(self, path: str) -> list[Entry]:
        """The entries of a directory."""
        ...

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        """Up to ``length`` bytes (all when ``None``) from ``offset``."""
        ...

    def write(self, path: str, data: bytes, overwrite: bool) -> None:
        """Create or replace a file (parents created)."""
        ...

    def mkdirs(self, path: str) -> None:
        """``mkdir -p``."""
        ...

    def delete(self, path: str, recursive: bool) -> None:
        """Remove a file or directory."""
        ...


@contextmanager
def _exists_when(matches: Callable[[HttpError], bool]) -> Iterator[None]:
    """Turn the REST errors that mean "already exists" into :class:`ExistsError`."""
    try:
        yield
    except HttpError as exc:
        if matches(exc):
            raise ExistsError(exc.message) from None
        raise


def _dbfs_exists(exc: HttpError) -> bool:
    return exc.error_code == "RESOURCE_ALREADY_EXISTS"


def _files_api_exists(exc: HttpError) -> bool:
    return exc.status == 409


class DbfsBackend:
    """DBFS over ``/api/2.0/dbfs``."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def display(self, path: str) -> str:
        """``dbfs:/x``."""
        return "dbfs:" + path

    @staticmethod
    def _entry(info: Mapping[str, Any]) -> Entry:
        return Entry(
            str(info["path"]),
            bool(info.get("is_dir", False)),
            int(info.get("file_size", 0)),
            int(info.get("modification_time", 0)),
        )

    def stat(self, path: str) -> Entry | None:
        """``get-status``."""
        info = none_if_missing(
            lambda: self._rest.json("GET", "/api/2.0/dbfs/get-status", query={"path": path})
        )
        return None if info is None else self._entry(info)

    def list(self, path: str) -> list[Entry]:
        """``list``."""
        files = self._rest.json("GET", "/api/2.0/dbfs/list", query={"path": path}).get("files") or []
        return [self._entry(f) for f in files]

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        """``read`` in 1 MB calls."""
        chunks: list[bytes] = []
        remaining = length
        while remaining is None or remaining > 0:
            want = _MiB if remaining is None else min(remaining, _MiB)
            resp = self._rest.json(
                "GET", "/api/2.0/dbfs/read", query={"path": path, "offset": offset, "length": want}
            )
            got = int(resp.get("bytes_read", 0))
            if got == 0:
                break
            chunks.append(base64.b64decode(resp.get("data") or ""))
            offset += got
            if remaining is not None:
                remaining -= got
        return b"".join(chunks)

    def write(self, path: str, data: bytes, overwrite: bool) -> None:
        """``create`` / ``add-block`` (≤ 1 MB each) / ``close``: any size."""
        with _exists_when(_dbfs_exists):
            created = self._rest.json(
                "POST", "/api/2.0/dbfs/create", body={"path": path, "overwrite": overwrite}
            )
        handle = created["handle"]
        for start in range(0, len(data), _MiB):
            block = base64.b64encode(data[start : start + _MiB]).decode("ascii")
            self._rest.json("POST", "/api/2.0/dbfs/add-block", body={"handle": handle, "data": block})
        self._rest.json("POST", "/api/2.0/dbfs/close", body={"handle": handle})

    def mkdirs(self, path: str) -> None:
        """``mkdirs``."""
        with _exists_when(_dbfs_exists):
            self._rest.json("POST", "/api/2.0/dbfs/mkdirs", body={"path": path})

    def delete(self, path: str, recursive: bool) -> None:
        """``delete``."""
        try:
            self._rest.json("POST", "/api/2.0/dbfs/delete", body={"path": path, "recursive": recursive})
        except HttpError as exc:
            if exc.status == 400 and exc.error_code in ("IO_ERROR", "BAD_REQUEST"):
                raise NotEmptyError(exc.message) from None
            raise

    def move(self, src: str, dst: str) -> None:
        """``move`` (a rename within DBFS)."""
        with _exists_when(_dbfs_exists):
            self._rest.json("POST", "/api/2.0/dbfs/move", body={"source_path": src, "destination_path": dst})


class VolumesBackend:
    """UC volumes over the Files API (``/api/2.0/fs/files`` and ``/api/2.0/fs/directories``)."""

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    def display(self, path: str) -> str:
        """``dbfs:/Volumes/...`` (as the notebook shows volume paths)."""
        return "dbfs:" + path

    def stat(self, path: str) -> Entry | None:
        """``HEAD`` the file, then the directory."""
        file = none_if_missing(lambda: self._rest.call("HEAD", "/api/2.0/fs/files" + path))
        if file is not None:
            headers = file[1]
            modified = headers.get("last-modified")
            mtime = int(parsedate_to_datetime(modified).timestamp() * 1000) if modified else 0
            return Entry(path, False, int(headers.get("content-length", 0)), mtime)
        directory = none_if_missing(lambda: self._rest.call("HEAD", "/api/2.0/fs/directories" + path))
        return None if directory is None else Entry(path, True, 0, 0)

    def list(self, path: str) -> list[Entry]:
        """All pages of ``GET /fs/directories``."""
        entries: list[Entry] = []
        query: dict[str, Any] = {}
        while True:
            page = self._rest.json("GET", "/api/2.0/fs/directories" + path, query=query)
            for item in page.get("contents") or []:
                child = posixpath.join(path, str(item["name"]))
                is_dir = bool(item.get("is_directory", False))
                size, mtime = int(item.get("file_size") or 0), int(item.get("last_modified") or 0)
                entries.append(Entry(child, is_dir, size, mtime))
            token = page.get("next_page_token")
            if not token:
                return entries
            query = {"page_token": token}

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        """``GET /fs/files`` with a ``Range``."""
        headers = {}
        if length is not None:
            if length <= 0:
                return b""
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            status, _, raw = self._rest.call("GET", "/api/2.0/fs/files" + path, headers=headers)
        except HttpError as exc:
            if exc.status == 416:
                return b""
            raise
        if status == 200 and headers:  # the server ignored the range
            raw = raw[offset : None if length is None else offset + length]
        return raw

    def write(self, path: str, data: bytes, overwrite: bool) -> None:
        """``PUT /fs/files``."""
        with _exists_when(_files_api_exists):
            self._rest.call(
                "PUT",
                "/api/2.0/fs/files" + path,
                query={"overwrite": overwrite},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )

    def mkdirs(self, path: str) -> None:
        """``PUT /fs/directories``."""
        with _exists_when(_files_api_exists):
            self._rest.call("PUT", "/api/2.0/fs/directories" + path)

    def delete(self, path: str, recursive: bool) -> None:
        """Delete a file, or a directory (its children first when ``recursive``)."""
        entry = self.stat(path)
        if entry is None:
            return
        if not entry.is_dir:
            self._rest.call("DELETE", "/api/2.0/fs/files" + path)
            return
        children = self.list(path)
        if children and not recursive:
            raise NotEmptyError(f"Directory {path} is not empty")
        for child in children:
            self.delete(child.path, True)
        self._rest.call("DELETE", "/api/2.0/fs/directories" + path)


class LocalBackend:
    """The driver's local filesystem (``file:/...`` paths)."""

    def display(self, path: str) -> str:
        """``file:/x``."""
        return "file:" + path

    def stat(self, path: str) -> Entry | None:
        """``os.stat``."""
        local = Path(path)
        if not local.exists():
            return None
        st = local.stat()
        is_dir = local.is_dir()
        return Entry(path, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns // 1_000_000)

    def list(self, path: str) -> list[Entry]:
        """The directory's entries."""
        entries = [self.stat(str(child)) for child in Path(path).iterdir()]
        return [e for e in entries if e is not None]

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        """Read a byte range."""
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read() if length is None else fh.read(length)

    def write(self, path: str, data: bytes, overwrite: bool) -> None:
        """Write a file (parents created)."""
        local = Path(path)
        if local.exists() and (local.is_dir() or not overwrite):
            raise ExistsError(f"{path} already exists")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)

    def mkdirs(self, path: str) -> None:
        """``mkdir -p``."""
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise ExistsError(str(exc)) from None

    def delete(self, path: str, recursive: bool) -> None:
        """Remove a file or directory."""
        local = Path(path)
        if not local.is_dir():
            local.unlink(missing_ok=True)
            return
        if any(local.iterdir()) and not recursive:
            raise NotEmptyError(f"Directory {path} is not empty")
        shutil.rmtree(local)
