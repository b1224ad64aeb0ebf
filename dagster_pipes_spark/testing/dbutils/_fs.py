"""``dbutils.fs`` over the workspace REST APIs (DBFS, the Files API for ``/Volumes``) and ``file:/``.

Semantics follow the notebook's ``dbutils.fs``: ``ls`` returns ``dbfs:/...`` paths with a trailing
``/`` on directories, ``put`` is not limited to 1 MB (it streams through create / add-block / close
in ≤ 1 MB blocks), and failures raise :class:`ExecutionError` whose message names the Java
exception the real one reports (e.g. ``java.io.FileNotFoundException``).
"""

from __future__ import annotations

import posixpath
from typing import Any, NamedTuple

from .._rest import HttpError, RestClient, UnreachableError
from ._backends import Backend, DbfsBackend, Entry, ExistsError, LocalBackend, NotEmptyError, VolumesBackend
from ._errors import DbutilsError, ExecutionError

__all__ = ["FakeFs", "FileInfo"]


class FileInfo(NamedTuple):
    """An entry returned by ``dbutils.fs.ls`` (same fields as the notebook's ``FileInfo``)."""

    path: str
    name: str
    size: int
    modificationTime: int  # noqa: N815 - the notebook FileInfo field name


def _already_exists(method: str, detail: str) -> ExecutionError:
    return ExecutionError(method, "org.apache.hadoop.fs.FileAlreadyExistsException", detail)


class FakeFs:
    """``dbutils.fs`` over the workspace REST APIs (DBFS, Files API for ``/Volumes``) and ``file:/``."""

    def __init__(self, rest: RestClient | None, *, verbose: bool = True) -> None:
        self._rest = rest
        self.verbose = verbose
        self._local = LocalBackend()

    # ---------------------------------------------------------------------------- routing

    def _resolve(self, method: str, raw: str) -> tuple[Backend, str]:
        if not isinstance(raw, str) or not raw:
            raise ExecutionError(method, "java.lang.IllegalArgumentException", f"Invalid path: {raw!r}")
        if raw.startswith("file:"):
            return self._local, posixpath.normpath("/" + raw[len("file:") :].lstrip("/"))
        text = raw[len("dbfs:") :] if raw.startswith("dbfs:") else raw
        if "://" in raw or (":" in raw.split("/", 1)[0] and not raw.startswith("dbfs:")):
            raise ExecutionError(
                method,
                "java.lang.UnsupportedOperationException",
                f"FakeDbutils supports dbfs:/, /Volumes/... and file:/ paths only, got {raw}",
            )
        path = posixpath.normpath("/" + text.lstrip("/"))
        if self._rest is None:
            raise DbutilsError(
                "FakeDbutils has no workspace host: pass host=... or set DATABRICKS_HOST to use dbutils.fs"
            )
        if path == "/Volumes" or path.startswith("/Volumes/"):
            return VolumesBackend(self._rest), path
        return DbfsBackend(self._rest), path

    def _call(self, method: str, backend: Backend, path: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except HttpError as exc:
            raise ExecutionError(
                method, "java.io.IOException", f"{backend.display(path)}: {exc.error_code}: {exc.message}"
            ) from None
        except UnreachableError as exc:
            raise DbutilsError(str(exc)) from exc

    def _stat(self, method: str, backend: Backend, path: str) -> Entry | None:
        entry: Entry | None = self._call(method, backend, path, backend.stat, path)
        return entry

    def _require(self, method: str, backend: Backend, path: str) -> Entry:
        entry = self._stat(method, backend, path)
        if entry is None:
            raise ExecutionError(
                method, "java.io.FileNotFoundException", f"File {backend.display(path)} does not exist."
            )
        return entry

    # ------------------------------------------------------------------------------- API

    def ls(self, dir: str) -> list[FileInfo]:
        """List a directory (or return the single entry for a file)."""
        backend, path = self._resolve("ls", dir)
        entry = self._require("ls", backend, path)
        if not entry.is_dir:
            return [FileInfo(backend.display(path), entry.name, entry.size, entry.mtime)]
        children: list[Entry] = self._call("ls", backend, path, backend.list, path)
        result = []
        for child in sorted(children, key=lambda e: e.name):
            suffix = "/" if child.is_dir else ""
            shown = backend.display(child.path.rstrip("/")) + suffix
            result.append(
                FileInfo(shown, child.name + suffix, 0 if child.is_dir else child.size, child.mtime)
            )
        return result

    def head(self, file: str, maxBytes: int = 65536) -> str:  # noqa: N803 - dbutils API
        """Up to the first ``maxBytes`` bytes of a file, decoded as UTF-8."""
        backend, path = self._resolve("head", file)
        entry = self._require("head", backend, path)
        if entry.is_dir:
            raise ExecutionError(
                "head",
                "java.lang.IllegalArgumentException",
                f"Cannot head a directory: {backend.display(path)}",
            )
        data: bytes = self._call("head", backend, path, backend.read, path, 0, maxBytes)
        if self.verbose and entry.size > maxBytes:
            print(f"[Truncated to first {maxBytes} bytes]")
        return data.decode("utf-8", errors="replace")

    def put(self, file: str, contents: str, overwrite: bool = False) -> bool:
        """Write a string (UTF-8) to a file; streams in ≤ 1 MB blocks, so any size works."""
        if not isinstance(contents, str):
            raise TypeError(f"contents must be a str, not {type(contents).__name__}")
        backend, path = self._resolve("put", file)
        data = contents.encode("utf-8")
        try:
            self._call("put", backend, path, backend.write, path, data, overwrite)
        except ExistsError:
            raise _already_exists("put", f"File already exists: {backend.display(path)}") from None
        if self.verbose:
            print(f"Wrote {len(data)} bytes.")
        return True

    def mkdirs(self, dir: str) -> bool:
        """Create a directory and its parents."""
        backend, path = self._resolve("mkdirs", dir)
        try:
            self._call("mkdirs", backend, path, backend.mkdirs, path)
        except ExistsError:
            raise _already_exists(
                "mkdirs", f"Cannot create directory {backend.display(path)}: a file exists on the path"
            ) from None
        return True

    def rm(self, dir: str, recurse: bool = False) -> bool:
        """Remove a file or directory; returns ``False`` if nothing was there."""
        backend, path = self._resolve("rm", dir)
        entry = self._stat("rm", backend, path)
        if entry is None:
            return False
        try:
            self._call("rm", backend, path, backend.delete, path, recurse)
        except NotEmptyError:
            raise ExecutionError(
                "rm",
                "java.io.IOException",
                f"Cannot delete non-empty directory {backend.display(path)} (use recurse=True)",
            ) from None
        return True

    def cp(self, from_: str, to: str, recurse: bool = False) -> bool:
        """Copy a file, or a directory with ``recurse=True`` (across DBFS, volumes and local)."""
        src_backend, src = self._resolve("cp", from_)
        dst_backend, dst = self._resolve("cp", to)
        entry = self._require("cp", src_backend, src)
        if entry.is_dir and not recurse:
            raise ExecutionError(
                "cp",
                "java.io.IOException",
                f"{src_backend.display(src)} is a directory; use recurse=True to copy directories",
            )
        if not entry.is_dir:
            target = self._stat("cp", dst_backend, dst)
            if target is not None and target.is_dir:
                dst = posixpath.join(dst, entry.name)
            self._copy_file("cp", src_backend, src, dst_backend, dst)
            return True
        self._copy_tree(src_backend, src, dst_backend, dst)
        return True

    def mv(self, from_: str, to: str, recurse: bool = False) -> bool:
        """Move a file or directory (a rename within DBFS, copy + delete across filesystems)."""
        src_backend, src = self._resolve("mv", from_)
        dst_backend, dst = self._resolve("mv", to)
        entry = self._require("mv", src_backend, src)
        if isinstance(src_backend, DbfsBackend) and isinstance(dst_backend, DbfsBackend):
            target = self._stat("mv", dst_backend, dst)
            if target is not None and target.is_dir and not entry.is_dir:
                dst = posixpath.join(dst, entry.name)
            try:
                self._call("mv", src_backend, src, src_backend.move, src, dst)
            except ExistsError:
                raise _already_exists("mv", f"File already exists: {dst_backend.display(dst)}") from None
            return True
        if entry.is_dir and not recurse:
            raise ExecutionError(
                "mv",
                "java.io.IOException",
                f"{src_backend.display(src)} is a directory; use recurse=True to move directories",
            )
        self.cp(from_, to, recurse=recurse)
        self._call("mv", src_backend, src, src_backend.delete, src, True)
        return True

    def _copy_file(self, method: str, src_backend: Backend, src: str, dst_backend: Backend, dst: str) -> None:
        data: bytes = self._call(method, src_backend, src, src_backend.read, src, 0, None)
        try:
            self._call(method, dst_backend, dst, dst_backend.write, dst, data, True)
        except ExistsError:
            raise _already_exists(
                method, f"Cannot write {dst_backend.display(dst)}: a directory exists there"
            ) from None

    def _copy_tree(self, src_backend: Backend, src: str, dst_backend: Backend, dst: str) -> None:
        self._call("cp", dst_backend, dst, dst_backend.mkdirs, dst)
        children: list[Entry] = self._call("cp", src_backend, src, src_backend.list, src)
        for child in children:
            child_src = posixpath.join(src, child.name)
            child_dst = posixpath.join(dst, child.name)
            if child.is_dir:
                self._copy_tree(src_backend, child_src, dst_backend, child_dst)
            else:
                self._copy_file("cp", src_backend, child_src, dst_backend, child_dst)
