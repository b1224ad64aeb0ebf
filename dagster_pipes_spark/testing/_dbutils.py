"""A fake notebook ``dbutils`` (``fs``, ``widgets``, ``notebook``) for tests.

``FakeDbutils.fs`` speaks the DBFS and Files REST APIs of a workspace (normally the
:class:`~dagster_pipes_spark.testing.Emulator`, possibly running in another process) using only
``urllib``; it has no ``databricks-sdk`` dependency. Semantics follow the notebook ``dbutils.fs``:
``ls`` returns ``dbfs:/...`` paths with a trailing ``/`` on directories, ``put`` is not limited to
1 MB (it streams through create / add-block / close in ≤ 1 MB blocks), ``/Volumes/...`` paths go
to the Files API, and failures raise :class:`ExecutionError` whose message names the Java
exception the real one reports (e.g. ``java.io.FileNotFoundException``).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import posixpath
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlencode

__all__ = [
    "DbutilsError",
    "ExecutionError",
    "FakeDbutils",
    "FakeFs",
    "FakeNotebook",
    "FakeWidgets",
    "FileInfo",
    "InputWidgetNotDefined",
    "NotebookExit",
]

_MiB = 1024 * 1024
_call_ids = itertools.count(100)


class FileInfo(NamedTuple):
    """An entry returned by ``dbutils.fs.ls`` (same fields as the notebook's ``FileInfo``)."""

    path: str
    name: str
    size: int
    modificationTime: int


class DbutilsError(Exception):
    """Base class of the errors raised by :class:`FakeDbutils`."""


class ExecutionError(DbutilsError):
    """A failed ``dbutils`` call, worded like the py4j ``ExecutionError`` a notebook shows::

    An error occurred while calling o123.ls.
    : java.io.FileNotFoundException: File dbfs:/nope does not exist.
    """

    def __init__(self, method: str, java_class: str, detail: str) -> None:
        self.method = method
        self.java_class = java_class
        self.detail = detail
        super().__init__(
            f"An error occurred while calling o{next(_call_ids)}.{method}.\n: {java_class}: {detail}"
        )


class InputWidgetNotDefined(ExecutionError):
    """Raised by ``dbutils.widgets.get`` for a widget that is neither defined nor bound."""

    def __init__(self, method: str, name: str) -> None:
        super().__init__(
            method,
            "com.databricks.dbutils_v1.InputWidgetNotDefined",
            f"No input widget named {name} is defined",
        )
        self.name = name


class NotebookExit(Exception):
    """Raised by ``dbutils.notebook.exit(value)`` to stop the notebook (as the real one does)."""

    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(f"Notebook exited: {value}")


# ------------------------------------------------------------------------------------ widgets


class FakeWidgets:
    """``dbutils.widgets``. ``values`` are the bound parameters (e.g. a job's ``base_parameters``):
    they are readable without being defined and take precedence over widget defaults."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        self._bound: dict[str, str] = {str(k): str(v) for k, v in (values or {}).items()}
        self._defaults: dict[str, str] = {}
        self._choices: dict[str, list[str]] = {}
        self._labels: dict[str, str | None] = {}

    def get(self, name: str) -> str:
        """The widget's value; raises :class:`InputWidgetNotDefined` if there is none."""
        if name in self._bound:
            return self._bound[name]
        if name in self._defaults:
            return self._defaults[name]
        raise InputWidgetNotDefined("getArgument", name)

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:
        """Deprecated notebook API: the value, or ``defaultValue`` when the widget is undefined."""
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            if defaultValue is None:
                raise
            return defaultValue

    def getAll(self) -> dict[str, str]:
        """All widget values (bound parameters over defaults)."""
        return {**self._defaults, **self._bound}

    def text(self, name: str, defaultValue: str, label: str | None = None) -> None:
        """Define a text widget."""
        self._define(name, str(defaultValue), None, label)

    def dropdown(
        self, name: str, defaultValue: str, choices: Iterable[str], label: str | None = None
    ) -> None:
        """Define a dropdown widget (``defaultValue`` must be one of ``choices``)."""
        self._define(name, str(defaultValue), [str(c) for c in choices], label, require_default=True)

    def combobox(
        self, name: str, defaultValue: str, choices: Iterable[str], label: str | None = None
    ) -> None:
        """Define a combobox widget (free text with suggestions)."""
        self._define(name, str(defaultValue), [str(c) for c in choices], label)

    def multiselect(
        self,
        name: str,
        defaultValue: str,
        choices: Iterable[str],
        label: str | None = None,
    ) -> None:
        """Define a multiselect widget; its value is a comma-separated string."""
        self._define(name, str(defaultValue), [str(c) for c in choices], label, require_default=True)

    def remove(self, name: str) -> None:
        """Remove a defined widget."""
        if name not in self._defaults:
            raise InputWidgetNotDefined("removeArgument", name)
        for store in (self._defaults, self._choices, self._labels):
            store.pop(name, None)

    def removeAll(self) -> None:
        """Remove all defined widgets (bound parameters stay readable)."""
        self._defaults.clear()
        self._choices.clear()
        self._labels.clear()

    def _define(
        self,
        name: str,
        default: str,
        choices: list[str] | None,
        label: str | None,
        *,
        require_default: bool = False,
    ) -> None:
        if require_default and choices is not None:
            selected = default.split(",") if default else []
            missing = [v for v in selected if v not in choices]
            if missing or not selected:
                raise ExecutionError(
                    "dropdown",
                    "java.lang.IllegalArgumentException",
                    f"Default value {default!r} of widget {name} is not among the choices {choices}",
                )
        self._defaults[name] = default
        self._labels[name] = label
        if choices is not None:
            self._choices[name] = choices


class FakeNotebook:
    """``dbutils.notebook``: ``exit(value)`` raises :class:`NotebookExit` and records the value."""

    def __init__(self) -> None:
        self.exit_value: str | None = None

    def exit(self, value: str) -> None:
        """Stop the notebook, returning ``value`` to the caller (raises :class:`NotebookExit`)."""
        self.exit_value = str(value)
        raise NotebookExit(self.exit_value)


# ------------------------------------------------------------------------------------- REST


class _HttpError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message


class _Rest:
    """A tiny JSON/raw REST client with retries on 429/503 (honouring ``Retry-After``)."""

    def __init__(self, host: str, token: str, *, max_retries: int, timeout: float) -> None:
        self.host = host.rstrip("/")
        self.token = token
        self.max_retries = max_retries
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        url = self.host + quote(path)
        if query:
            url += "?" + urlencode({k: _query_value(v) for k, v in query.items()})
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        payload = data
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        for attempt in itertools.count():
            request = urllib.request.Request(url, data=payload, headers=all_headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return (
                        response.status,
                        {k.lower(): v for k, v in response.headers.items()},
                        response.read(),
                    )
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                if exc.code in (429, 503) and attempt < self.max_retries:
                    time.sleep(_retry_delay(exc.headers.get("Retry-After"), attempt))
                    continue
                raise _http_error(exc.code, raw, exc.reason) from None
            except (urllib.error.URLError, ConnectionError) as exc:
                if attempt < min(self.max_retries, 3):
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise DbutilsError(f"cannot reach the workspace at {self.host}: {exc}") from exc
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        _, _, raw = self.call(method, path, **kwargs)
        parsed = json.loads(raw) if raw.strip() else {}
        return parsed if isinstance(parsed, dict) else {}


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_delay(retry_after: str | None, attempt: int) -> float:
    try:
        seconds = float(retry_after) if retry_after is not None else 1.0
    except ValueError:
        seconds = 1.0
    return min(seconds, 1.0) + 0.01 * attempt


def _http_error(status: int, raw: bytes, reason: Any) -> _HttpError:
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        return _HttpError(status, str(parsed.get("error_code", "")), str(parsed.get("message", reason)))
    return _HttpError(status, "", raw.decode("utf-8", "replace") or str(reason))


# ----------------------------------------------------------------------------------- backends


@dataclass(frozen=True)
class _Entry:
    path: str
    is_dir: bool
    size: int
    mtime: int

    @property
    def name(self) -> str:
        return posixpath.basename(self.path.rstrip("/"))


class _Exists(Exception):
    pass


class _NotEmpty(Exception):
    pass


class _Backend(Protocol):
    def display(self, path: str) -> str: ...
    def stat(self, path: str) -> _Entry | None: ...
    def list(self, path: str) -> list[_Entry]: ...
    def read(self, path: str, offset: int, length: int | None) -> bytes: ...
    def write(self, path: str, data: bytes, overwrite: bool) -> None: ...
    def mkdirs(self, path: str) -> None: ...
    def delete(self, path: str, recursive: bool) -> None: ...


class _DbfsBackend:
    """DBFS over ``/api/2.0/dbfs``."""

    def __init__(self, rest: _Rest) -> None:
        self._rest = rest

    def display(self, path: str) -> str:
        return "dbfs:" + path

    @staticmethod
    def _entry(info: Mapping[str, Any]) -> _Entry:
        return _Entry(
            str(info["path"]),
            bool(info.get("is_dir", False)),
            int(info.get("file_size", 0)),
            int(info.get("modification_time", 0)),
        )

    def stat(self, path: str) -> _Entry | None:
        try:
            return self._entry(self._rest.json("GET", "/api/2.0/dbfs/get-status", query={"path": path}))
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str) -> list[_Entry]:
        files = self._rest.json("GET", "/api/2.0/dbfs/list", query={"path": path}).get("files") or []
        return [self._entry(f) for f in files]

    def read(self, path: str, offset: int, length: int | None) -> bytes:
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
        try:
            created = self._rest.json(
                "POST", "/api/2.0/dbfs/create", body={"path": path, "overwrite": overwrite}
            )
        except _HttpError as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                raise _Exists(exc.message) from None
            raise
        handle = created["handle"]
        for start in range(0, len(data), _MiB):
            block = base64.b64encode(data[start : start + _MiB]).decode("ascii")
            self._rest.json("POST", "/api/2.0/dbfs/add-block", body={"handle": handle, "data": block})
        self._rest.json("POST", "/api/2.0/dbfs/close", body={"handle": handle})

    def mkdirs(self, path: str) -> None:
        try:
            self._rest.json("POST", "/api/2.0/dbfs/mkdirs", body={"path": path})
        except _HttpError as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                raise _Exists(exc.message) from None
            raise

    def delete(self, path: str, recursive: bool) -> None:
        try:
            self._rest.json("POST", "/api/2.0/dbfs/delete", body={"path": path, "recursive": recursive})
        except _HttpError as exc:
            if exc.status == 400 and exc.error_code in ("IO_ERROR", "BAD_REQUEST"):
                raise _NotEmpty(exc.message) from None
            raise

    def move(self, src: str, dst: str) -> None:
        try:
            self._rest.json("POST", "/api/2.0/dbfs/move", body={"source_path": src, "destination_path": dst})
        except _HttpError as exc:
            if exc.error_code == "RESOURCE_ALREADY_EXISTS":
                raise _Exists(exc.message) from None
            raise


class _VolumesBackend:
    """UC volumes over the Files API (``/api/2.0/fs/files`` and ``/api/2.0/fs/directories``)."""

    def __init__(self, rest: _Rest) -> None:
        self._rest = rest

    def display(self, path: str) -> str:
        return "dbfs:" + path

    def stat(self, path: str) -> _Entry | None:
        try:
            _, headers, _ = self._rest.call("HEAD", "/api/2.0/fs/files" + path)
            modified = headers.get("last-modified")
            mtime = int(parsedate_to_datetime(modified).timestamp() * 1000) if modified else 0
            return _Entry(path, False, int(headers.get("content-length", 0)), mtime)
        except _HttpError as exc:
            if exc.status != 404:
                raise
        try:
            self._rest.call("HEAD", "/api/2.0/fs/directories" + path)
            return _Entry(path, True, 0, 0)
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, path: str) -> list[_Entry]:
        entries: list[_Entry] = []
        query: dict[str, Any] = {}
        while True:
            page = self._rest.json("GET", "/api/2.0/fs/directories" + path, query=query)
            for item in page.get("contents") or []:
                child = posixpath.join(path, str(item["name"]))
                is_dir = bool(item.get("is_directory", False))
                entries.append(
                    _Entry(
                        child, is_dir, int(item.get("file_size") or 0), int(item.get("last_modified") or 0)
                    )
                )
            token = page.get("next_page_token")
            if not token:
                return entries
            query = {"page_token": token}

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        headers = {}
        if length is not None:
            if length <= 0:
                return b""
            headers["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            status, _, raw = self._rest.call("GET", "/api/2.0/fs/files" + path, headers=headers)
        except _HttpError as exc:
            if exc.status == 416:
                return b""
            raise
        if status == 200 and headers:  # the server ignored the range
            raw = raw[offset : None if length is None else offset + length]
        return raw

    def write(self, path: str, data: bytes, overwrite: bool) -> None:
        try:
            self._rest.call(
                "PUT",
                "/api/2.0/fs/files" + path,
                query={"overwrite": overwrite},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        except _HttpError as exc:
            if exc.status == 409:
                raise _Exists(exc.message) from None
            raise

    def mkdirs(self, path: str) -> None:
        try:
            self._rest.call("PUT", "/api/2.0/fs/directories" + path)
        except _HttpError as exc:
            if exc.status == 409:
                raise _Exists(exc.message) from None
            raise

    def delete(self, path: str, recursive: bool) -> None:
        entry = self.stat(path)
        if entry is None:
            return
        if not entry.is_dir:
            self._rest.call("DELETE", "/api/2.0/fs/files" + path)
            return
        children = self.list(path)
        if children and not recursive:
            raise _NotEmpty(f"Directory {path} is not empty")
        for child in children:
            self.delete(child.path, True)
        self._rest.call("DELETE", "/api/2.0/fs/directories" + path)


class _LocalBackend:
    """The driver's local filesystem (``file:/...`` paths)."""

    def display(self, path: str) -> str:
        return "file:" + path

    def stat(self, path: str) -> _Entry | None:
        local = Path(path)
        if not local.exists():
            return None
        st = local.stat()
        is_dir = local.is_dir()
        return _Entry(path, is_dir, 0 if is_dir else st.st_size, st.st_mtime_ns // 1_000_000)

    def list(self, path: str) -> list[_Entry]:
        entries = [self.stat(str(child)) for child in Path(path).iterdir()]
        return [e for e in entries if e is not None]

    def read(self, path: str, offset: int, length: int | None) -> bytes:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read() if length is None else fh.read(length)

    def write(self, path: str, data: bytes, overwrite: bool) -> None:
        local = Path(path)
        if local.exists() and (local.is_dir() or not overwrite):
            raise _Exists(f"{path} already exists")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)

    def mkdirs(self, path: str) -> None:
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise _Exists(str(exc)) from None

    def delete(self, path: str, recursive: bool) -> None:
        local = Path(path)
        if not local.is_dir():
            local.unlink(missing_ok=True)
            return
        if any(local.iterdir()) and not recursive:
            raise _NotEmpty(f"Directory {path} is not empty")
        shutil.rmtree(local)


# --------------------------------------------------------------------------------------- fs


class FakeFs:
    """``dbutils.fs`` over the workspace REST APIs (DBFS, Files API for ``/Volumes``) and ``file:/``."""

    def __init__(self, rest: _Rest | None, *, verbose: bool = True) -> None:
        self._rest = rest
        self.verbose = verbose
        self._local = _LocalBackend()

    # ---------------------------------------------------------------------------- routing

    def _resolve(self, method: str, raw: str) -> tuple[_Backend, str]:
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
            return _VolumesBackend(self._rest), path
        return _DbfsBackend(self._rest), path

    def _call(self, method: str, backend: _Backend, path: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except _HttpError as exc:
            raise ExecutionError(
                method, "java.io.IOException", f"{backend.display(path)}: {exc.error_code}: {exc.message}"
            ) from None

    def _stat(self, method: str, backend: _Backend, path: str) -> _Entry | None:
        entry: _Entry | None = self._call(method, backend, path, backend.stat, path)
        return entry

    def _require(self, method: str, backend: _Backend, path: str) -> _Entry:
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
        children: list[_Entry] = self._call("ls", backend, path, backend.list, path)
        result = []
        for child in sorted(children, key=lambda e: e.name):
            suffix = "/" if child.is_dir else ""
            shown = backend.display(child.path.rstrip("/")) + suffix
            result.append(
                FileInfo(shown, child.name + suffix, 0 if child.is_dir else child.size, child.mtime)
            )
        return result

    def head(self, file: str, maxBytes: int = 65536) -> str:
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
        except _Exists:
            raise ExecutionError(
                "put",
                "org.apache.hadoop.fs.FileAlreadyExistsException",
                f"File already exists: {backend.display(path)}",
            ) from None
        if self.verbose:
            print(f"Wrote {len(data)} bytes.")
        return True

    def mkdirs(self, dir: str) -> bool:
        """Create a directory and its parents."""
        backend, path = self._resolve("mkdirs", dir)
        try:
            self._call("mkdirs", backend, path, backend.mkdirs, path)
        except _Exists:
            raise ExecutionError(
                "mkdirs",
                "org.apache.hadoop.fs.FileAlreadyExistsException",
                f"Cannot create directory {backend.display(path)}: a file exists on the path",
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
        except _NotEmpty:
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
        if isinstance(src_backend, _DbfsBackend) and isinstance(dst_backend, _DbfsBackend):
            target = self._stat("mv", dst_backend, dst)
            if target is not None and target.is_dir and not entry.is_dir:
                dst = posixpath.join(dst, entry.name)
            try:
                self._call("mv", src_backend, src, src_backend.move, src, dst)
            except _Exists:
                raise ExecutionError(
                    "mv",
                    "org.apache.hadoop.fs.FileAlreadyExistsException",
                    f"File already exists: {dst_backend.display(dst)}",
                ) from None
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

    def _copy_file(
        self, method: str, src_backend: _Backend, src: str, dst_backend: _Backend, dst: str
    ) -> None:
        data: bytes = self._call(method, src_backend, src, src_backend.read, src, 0, None)
        try:
            self._call(method, dst_backend, dst, dst_backend.write, dst, data, True)
        except _Exists:
            raise ExecutionError(
                method,
                "org.apache.hadoop.fs.FileAlreadyExistsException",
                f"Cannot write {dst_backend.display(dst)}: a directory exists there",
            ) from None

    def _copy_tree(self, src_backend: _Backend, src: str, dst_backend: _Backend, dst: str) -> None:
        self._call("cp", dst_backend, dst, dst_backend.mkdirs, dst)
        children: list[_Entry] = self._call("cp", src_backend, src, src_backend.list, src)
        for child in children:
            child_src = posixpath.join(src, child.name)
            child_dst = posixpath.join(dst, child.name)
            if child.is_dir:
                self._copy_tree(src_backend, child_src, dst_backend, child_dst)
            else:
                self._copy_file("cp", src_backend, child_src, dst_backend, child_dst)


# ---------------------------------------------------------------------------------- dbutils


class FakeDbutils:
    """A stand-in for the notebook ``dbutils`` object: ``fs``, ``widgets`` and ``notebook``.

    Args:
        host: Workspace URL (e.g. ``Emulator.url``); defaults to ``$DATABRICKS_HOST``. Only
            ``fs`` needs it.
        token: Bearer token; defaults to ``$DATABRICKS_TOKEN`` (or a placeholder).
        widgets: Bound widget values (a job's notebook parameters).
        verbose: Print what the real one prints (``Wrote N bytes.``, head truncation notices).
        max_retries: Retries of requests answered 429/503 (the real ``dbutils`` never sees
            those, so they are retried transparently).
        timeout: Per-request timeout in seconds.
    """

    def __init__(
        self,
        host: str | None = None,
        token: str | None = None,
        *,
        widgets: Mapping[str, Any] | None = None,
        verbose: bool = True,
        max_retries: int = 10,
        timeout: float = 60.0,
    ) -> None:
        host = host or os.environ.get("DATABRICKS_HOST")
        token = token or os.environ.get("DATABRICKS_TOKEN") or "dapi-fake-dbutils"
        if host and "://" not in host:
            host = "https://" + host
        rest = _Rest(host, token, max_retries=max_retries, timeout=timeout) if host else None
        self.host = host
        self.fs = FakeFs(rest, verbose=verbose)
        self.widgets = FakeWidgets(widgets)
        self.notebook = FakeNotebook()
