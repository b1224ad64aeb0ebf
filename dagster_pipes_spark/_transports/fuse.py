"""Workspace storage through the ``/dbfs`` and ``/Volumes`` FUSE mounts of a cluster.

Plain file operations, one attempt each; their ``OSError``s are translated into the package's
storage errors by their numbers (``EIO`` from a struggling mount is transient, ``EACCES`` permanent,
``ENOENT`` not found). A mount that hangs is cut off by the writer's
deadline: uploads run in a daemon thread.
"""

from __future__ import annotations

import os

from .._errors import DagsterPipesError
from .errors import StorageCallError, StorageNotFoundError, translate_common, translated
from .file_store import (
    DBFS_FUSE_ROOT_ENV,
    VOLUMES_FUSE_ROOT_ENV,
    FileStore,
    Kind,
    dbfs_path,
    write_local_file,
)


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

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """By the standard library's error types and ``OSError`` numbers."""
        return translate_common(exc)

    @staticmethod
    def available(kind: Kind) -> bool:
        """Whether the mount for ``kind`` is present here."""
        return os.path.isdir(FuseFileStore(kind).root)

    def local(self, path: str) -> str:
        """The local filesystem path for a logical path."""
        if self.kind == "dbfs":
            return self.root + dbfs_path(path)
        if not path.startswith("/Volumes/") and path != "/Volumes":
            raise DagsterPipesError(
                f"{path!r} is not a Unity Catalog Volumes path (expected /Volumes/<catalog>/<schema>/<volume>/...)."
            )
        return self.root + path[len("/Volumes") :]

    @translated
    def read_bytes(self, path: str) -> bytes:
        try:
            with open(self.local(path), "rb") as f:
                return f.read()
        except FileNotFoundError as e:
            raise StorageNotFoundError(f"{path} does not exist ({self.local(path)}).") from e

    @translated
    def write_bytes(self, path: str, data: bytes) -> None:
        final = self.local(path)
        directory = os.path.dirname(final)
        if directory not in self._made:  # once per directory, not per chunk
            os.makedirs(directory, exist_ok=True)
            self._made.add(directory)
        write_local_file(final, data)

    @translated
    def exists(self, path: str) -> bool:
        return os.path.exists(self.local(path))

    @translated
    def list(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.local(path)))
        except FileNotFoundError as e:
            raise StorageNotFoundError(f"{path} does not exist.") from e

    @translated
    def mkdirs(self, path: str) -> None:
        os.makedirs(self.local(path), exist_ok=True)

    @translated
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
