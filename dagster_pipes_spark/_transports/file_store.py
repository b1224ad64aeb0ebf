"""The one small interface every workspace storage backend implements (FUSE, ``dbutils.fs``,
databricks-sdk, memory), and the paths it takes.

Paths given to a store are *logical* workspace paths: ``/tmp/x`` (or ``dbfs:/tmp/x``) for DBFS and
``/Volumes/<catalog>/<schema>/<volume>/...`` for Unity Catalog Volumes. Every store publishes a file
atomically (a reader never sees a half-written file) and reads files of any size. Each method makes
one attempt: the loaders and channels retry whole operations with one :class:`~.retry.RetryPolicy`
(a missing path raises :class:`StorageNotFoundError`). Each implementation translates its library's errors into the package's own (:mod:`.errors`) at its
boundary, by its :meth:`FileStore.translate_error` and the :func:`~.errors.translated` decorator.
Implementations live beside this module, one per file; everything above this line talks to
``FileStore`` only.
"""

from __future__ import annotations

import os
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from .errors import StorageCallError, StorageNotFoundError, translate_foreign

__all__ = [
    "DBFS_FUSE_ROOT_ENV",
    "DBFS_MAX_BLOCK",
    "VOLUMES_FUSE_ROOT_ENV",
    "FileStore",
    "Kind",
    "StorageNotFoundError",
    "dbfs_path",
    "write_local_file",
    "write_then_rename",
]

Kind = Literal["dbfs", "volumes"]


#: Env vars that relocate the FUSE mounts (tests map them onto a temp dir).
DBFS_FUSE_ROOT_ENV = "DAGSTER_PIPES_SPARK_DBFS_FUSE_ROOT"
VOLUMES_FUSE_ROOT_ENV = "DAGSTER_PIPES_SPARK_VOLUMES_FUSE_ROOT"
DBFS_MAX_BLOCK = 1024 * 1024  # put / add-block / read limit of the DBFS API


def write_then_rename(
    path: str,
    write: Callable[[str], None],
    rename: Callable[[str, str], None],
    discard: Callable[[str], None],
) -> None:
    """Publish ``path`` whole: ``write`` a hidden temporary sibling (``.{name}.{random}.tmp``), then
    ``rename`` it into place, so a reader never sees a half-written file. If either step fails, the
    temporary file is ``discard``-ed (best effort) and the error propagates unchanged."""
    parent, sep, base = path.rpartition("/")
    tmp = f"{parent}{sep}.{base}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        rename(tmp, path)
    except BaseException:
        try:
            discard(tmp)
        except Exception:  # noqa: BLE001 - best effort: the original error is what matters
            pass
        raise


def write_local_file(path: str, data: bytes) -> None:
    """Create or replace a local (or FUSE-mounted) file atomically (see :func:`write_then_rename`)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    def discard(tmp: str) -> None:
        if os.path.exists(tmp):
            os.unlink(tmp)

    write_then_rename(path, write, os.replace, discard)


def dbfs_path(path: str) -> str:
    """Normalise a DBFS path to ``/x/y`` (accepts ``dbfs:/x/y``, ``dbfs:x`` and ``/dbfs/x/y``)."""
    if path.startswith("dbfs:"):
        path = path[len("dbfs:") :]
    if path.startswith("/dbfs/"):
        path = path[len("/dbfs") :]
    return "/" + path.lstrip("/")


class FileStore(ABC):
    """The operations Pipes loaders and writers need from workspace storage."""

    #: short name for logs and ``doctor``: ``fuse``, ``dbutils``, ``sdk`` or ``memory``
    name: str = "store"

    @abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path``; raises ``StorageNotFoundError`` if missing."""

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

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """The package's storage error for what this backend's library raised (default: by the
        common HTTP and standard-library conventions)."""
        return translate_foreign(exc)

    # The one "not found" handling of the backends that learn it from their library's errors.

    def is_missing(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by this backend's library, says the path does not exist."""
        return isinstance(self.translate_error(exc), StorageNotFoundError)

    @contextmanager
    def missing_raises(self, path: str) -> Iterator[None]:
        """Raise ``StorageNotFoundError("{path} does not exist.")`` when the block fails on a missing path."""
        try:
            yield
        except Exception as e:
            if self.is_missing(e):
                raise StorageNotFoundError(f"{path} does not exist.") from e
            raise

    @contextmanager
    def missing_ok(self) -> Iterator[None]:
        """Ignore a failure of the block on a missing path."""
        try:
            yield
        except Exception as e:
            if not self.is_missing(e):
                raise

    def found(self, probe: Callable[[], object]) -> bool:
        """Whether ``probe()`` succeeds; False when it fails on a missing path."""
        with self.missing_ok():
            probe()
            return True
        return False
