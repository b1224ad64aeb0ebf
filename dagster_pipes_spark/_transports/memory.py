"""An in-memory ``FileStore`` (tests and dry runs)."""

from __future__ import annotations

from .errors import StorageNotFoundError
from .file_store import FileStore


class MemoryFileStore(FileStore):
    """An in-memory store for unit tests (directories are implicit)."""

    name = "memory"

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    @staticmethod
    def _key(path: str) -> str:
        return "/" + path.replace("dbfs:", "").strip("/")

    def read_bytes(self, path: str) -> bytes:
        try:
            return self.files[self._key(path)]
        except KeyError as e:
            raise StorageNotFoundError(f"{path} does not exist.") from e

    def write_bytes(self, path: str, data: bytes) -> None:
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
