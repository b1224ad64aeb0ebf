"""Workspace storage through a notebook's ``dbutils.fs``.

Every method makes a single attempt (the caller's retry policy retries whole operations). ``dbutils``
errors cross py4j as text (``ExecutionError: ... java.io.FileNotFoundException: ...``), so they are
translated into the package's storage errors (:mod:`.errors`) by the Java exception the message
names ("not found", "access denied"), else by the common conventions.
"""

from __future__ import annotations

from typing import Any

from .errors import (
    StorageCallError,
    StorageNotFoundError,
    storage_error,
    translate_foreign,
    translated,
)
from .file_store import (
    FileStore,
    Kind,
    dbfs_path,
    write_then_rename,
)

#: Java exceptions ``dbutils.fs`` reports (as text, through py4j) for a missing path.
_JAVA_NOT_FOUND = ("java.io.FileNotFoundException", "java.nio.file.NoSuchFileException")
#: ... and for a path it may not touch.
_JAVA_DENIED = ("java.nio.file.AccessDeniedException", "java.lang.SecurityException")


def translate_dbutils_error(exc: BaseException) -> StorageCallError:
    """The package's storage error for what ``dbutils.fs`` raised (see the module docstring)."""
    text = str(exc)
    if any(name in text for name in _JAVA_NOT_FOUND):
        return storage_error("not_found", exc)
    if any(name in text for name in _JAVA_DENIED):
        return storage_error("permanent", exc)
    return translate_foreign(exc)


class DbutilsFileStore(FileStore):
    """Storage through a notebook's ``dbutils.fs`` (works on every compute type, no FUSE needed)."""

    name = "dbutils"

    def __init__(self, kind: Kind, dbutils: Any):
        self.kind = kind
        self.fs = getattr(dbutils, "fs", dbutils)

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_dbutils_error`."""
        return translate_dbutils_error(exc)

    def _uri(self, path: str) -> str:
        return "dbfs:" + dbfs_path(path) if self.kind == "dbfs" else path

    @translated
    def read_bytes(self, path: str) -> bytes:
        uri = self._uri(path)
        with self.missing_raises(path):
            size = self._size(uri)
            text = self.fs.head(uri, max(size, 1) + 1)
        return text.encode("utf-8") if isinstance(text, str) else bytes(text)

    def _size(self, uri: str) -> int:
        parent, _, base = uri.rstrip("/").rpartition("/")
        for info in self.fs.ls(parent or "/"):
            if getattr(info, "name", "").rstrip("/") == base:
                return int(getattr(info, "size", 0))
        raise StorageNotFoundError(f"{uri} does not exist.")

    @translated
    def write_bytes(self, path: str, data: bytes) -> None:
        write_then_rename(
            self._uri(path),
            lambda tmp: self.fs.put(tmp, data.decode("utf-8"), True),
            self.fs.mv,
            self.fs.rm,
        )

    @translated
    def exists(self, path: str) -> bool:
        uri = self._uri(path)
        return self.found(lambda: self.fs.ls(uri))

    @translated
    def list(self, path: str) -> list[str]:
        return sorted(getattr(i, "name", "").rstrip("/") for i in self.fs.ls(self._uri(path)))

    @translated
    def mkdirs(self, path: str) -> None:
        self.fs.mkdirs(self._uri(path))

    @translated
    def delete(self, path: str, recursive: bool = False) -> None:
        with self.missing_ok():
            self.fs.rm(self._uri(path), recursive)
