"""The DBFS 2.0 REST API (``/api/2.0/dbfs/*``), with the platform's limits and error shapes.

Limits and errors follow the ``databricks.sdk.service.files.DbfsAPI`` docstrings (databricks-sdk
0.60) and behaviour observed by the Databricks CLI's DBFS filer (``libs/filer/dbfs_client.go``).
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import itertools
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._http import ApiError, Request, Response, Router
from ._storage import MiB, Storage, mtime_ms

__all__ = ["DEFAULT_READ_LENGTH", "MAX_BLOCK_SIZE", "MAX_READ_LENGTH", "DbfsApi"]

#: ``put`` inline ``contents`` and each ``add-block`` are limited to 1 MB of (decoded) data.
MAX_BLOCK_SIZE = MiB
#: ``read`` returns at most 1 MB per call ...
MAX_READ_LENGTH = MiB
#: ... and 0.5 MB when ``length`` is not given.
DEFAULT_READ_LENGTH = MiB // 2

_PREFIX = "/api/2.0/dbfs"


@dataclass
class _Handle:
    normalized: str
    local: Path
    last_used: float


def _as_bool(value: Any, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid value for parameter {name}: {value!r}")


def _as_int(value: Any, name: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Missing required field: {name}")
        return default
    if isinstance(value, bool):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid value for parameter {name}: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", f"Invalid value for parameter {name}: {value!r}"
        ) from None


def _b64decode(value: Any, name: str) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid value for parameter {name}: expected base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid base64 data in parameter {name}.") from None


def _not_found(path: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No file or directory exists on path {path}.")


def _already_exists(path: str) -> ApiError:
    return ApiError(
        400, "RESOURCE_ALREADY_EXISTS", f"A file or directory already exists at the input path {path}."
    )


def _block_too_large(size: int) -> ApiError:
    return ApiError(
        400,
        "MAX_BLOCK_SIZE_EXCEEDED",
        f"The block of data ({size} bytes) exceeds the maximum allowed size of {MAX_BLOCK_SIZE} bytes "
        "(1 MB). Use the streaming upload (create / add-block / close) for larger files.",
    )


class DbfsApi:
    """Handlers for ``/api/2.0/dbfs/{put,create,add-block,close,read,get-status,list,mkdirs,move,delete}``.

    Streaming writes are visible while in progress: ``create`` leaves an empty file and every
    ``add-block`` appends to it immediately. Handles expire after ``handle_idle_timeout`` seconds
    without use (10 minutes on the platform).
    """

    def __init__(self, storage: Storage, *, handle_idle_timeout: float = 600.0) -> None:
        self._storage = storage
        self.handle_idle_timeout = handle_idle_timeout
        self._handles: dict[int, _Handle] = {}
        self._handle_ids = itertools.count(int(time.time() * 1000) % 1_000_000_000 + 1)
        self._handles_lock = threading.Lock()

    def register(self, router: Router) -> None:
        """Add the DBFS routes."""
        for method, op, handler in (
            ("POST", "put", self.put),
            ("POST", "create", self.create),
            ("POST", "add-block", self.add_block),
            ("POST", "close", self.close),
            ("GET", "read", self.read),
            ("GET", "get-status", self.get_status),
            ("GET", "list", self.list),
            ("POST", "mkdirs", self.mkdirs),
            ("POST", "move", self.move),
            ("POST", "delete", self.delete),
        ):
            path = f"{_PREFIX}/{op}"
            router.add(method, path.replace(".", r"\."), handler, name=f"{method} {path}")

    @property
    def open_handles(self) -> int:
        """Number of streaming handles that are open and not expired."""
        now = time.monotonic()
        with self._handles_lock:
            return sum(1 for h in self._handles.values() if now - h.last_used <= self.handle_idle_timeout)

    # ----------------------------------------------------------------------------- helpers

    def _info(self, normalized: str, local: Path) -> dict[str, Any]:
        is_dir = local.is_dir()
        return {
            "path": normalized,
            "is_dir": is_dir,
            "file_size": 0 if is_dir else local.stat().st_size,
            "modification_time": mtime_ms(local),
        }

    def _take_handle(self, raw: Any, *, remove: bool = False) -> _Handle:
        handle_id = _as_int(raw, "handle")
        now = time.monotonic()
        with self._handles_lock:
            handle = self._handles.get(handle_id)
            if handle is not None and now - handle.last_used > self.handle_idle_timeout:
                del self._handles[handle_id]
                handle = None
            if handle is None:
                raise ApiError(
                    404,
                    "RESOURCE_DOES_NOT_EXIST",
                    f"There is no open stream with handle {handle_id} (it was never created, was "
                    "already closed, or expired after 10 minutes idle).",
                )
            if remove:
                del self._handles[handle_id]
            else:
                handle.last_used = now
            return handle

    def _put_args(self, req: Request) -> tuple[Any, bytes, bool]:
        content_type = req.header("content-type") or ""
        if content_type.lower().startswith("multipart/form-data"):
            return self._multipart_put_args(req, content_type)
        args = req.json()
        data = _b64decode(args.get("contents"), "contents")
        if len(data) > MAX_BLOCK_SIZE:
            raise _block_too_large(len(data))
        return args.get("path"), data, _as_bool(args.get("overwrite"), "overwrite")

    def _multipart_put_args(self, req: Request, content_type: str) -> tuple[Any, bytes, bool]:
        # A posted file (the "streaming" form of put) is not subject to the 1 MB inline limit.
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + req.body
        )
        fields: dict[str, bytes] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = payload
        path = fields.get("path", b"").decode("utf-8") or None
        overwrite = fields.get("overwrite", b"false").decode("utf-8")
        return path, fields.get("contents", b""), _as_bool(overwrite, "overwrite")

    # ---------------------------------------------------------------------------- handlers

    def put(self, req: Request) -> Response:
        """``POST put``: single-call upload (inline base64 ``contents`` limited to 1 MB)."""
        raw_path, data, overwrite = self._put_args(req)
        normalized, local = self._storage.dbfs_path(raw_path)
        with self._storage.lock:
            self._storage.dbfs_ensure_parents(normalized, local)
            if local.is_dir() or (local.exists() and not overwrite):
                raise _already_exists(normalized)
            self._storage.atomic_write(local, data)
        return Response.json({})

    def create(self, req: Request) -> Response:
        """``POST create``: open a streaming upload; the (empty) file is visible immediately."""
        args = req.json()
        normalized, local = self._storage.dbfs_path(args.get("path"))
        overwrite = _as_bool(args.get("overwrite"), "overwrite")
        with self._storage.lock:
            self._storage.dbfs_ensure_parents(normalized, local)
            if local.is_dir() or (local.exists() and not overwrite):
                raise _already_exists(normalized)
            local.write_bytes(b"")
        with self._handles_lock:
            handle_id = next(self._handle_ids)
            self._handles[handle_id] = _Handle(normalized, local, time.monotonic())
        return Response.json({"handle": handle_id})

    def add_block(self, req: Request) -> Response:
        """``POST add-block``: append ≤ 1 MB to an open stream (visible at once)."""
        args = req.json()
        handle = self._take_handle(args.get("handle"))
        data = _b64decode(args.get("data"), "data")
        if len(data) > MAX_BLOCK_SIZE:
            raise _block_too_large(len(data))
        with self._storage.lock:
            if not handle.local.is_file():
                raise _not_found(handle.normalized)
            with handle.local.open("ab") as fh:
                fh.write(data)
        return Response.json({})

    def close(self, req: Request) -> Response:
        """``POST close``: close an open stream."""
        self._take_handle(req.json().get("handle"), remove=True)
        return Response.json({})

    def read(self, req: Request) -> Response:
        """``GET read``: up to ``length`` bytes (default 0.5 MB, max 1 MB) from ``offset``."""
        args = req.args()
        normalized, local = self._storage.dbfs_path(args.get("path"))
        length = _as_int(args.get("length"), "length", DEFAULT_READ_LENGTH)
        offset = _as_int(args.get("offset"), "offset", 0)
        if length == 0:
            length = DEFAULT_READ_LENGTH  # proto3: an explicit 0 is indistinguishable from unset
        if length < 0 or offset < 0:
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                f"Invalid read range: offset={offset}, length={length}; both must be non-negative.",
            )
        if length > MAX_READ_LENGTH:
            raise ApiError(
                400,
                "MAX_READ_SIZE_EXCEEDED",
                f"Cannot read more than {MAX_READ_LENGTH} bytes (1 MB) per request; requested {length}.",
            )
        with self._storage.lock:
            if not local.exists():
                raise _not_found(normalized)
            if local.is_dir():
                raise ApiError(
                    400, "INVALID_PARAMETER_VALUE", f"Cannot read {normalized}: it is a directory."
                )
            with local.open("rb") as fh:
                fh.seek(offset)
                data = fh.read(length)
        return Response.json({"bytes_read": len(data), "data": base64.b64encode(data).decode("ascii")})

    def get_status(self, req: Request) -> Response:
        """``GET get-status``: ``FileInfo`` of a file or directory."""
        normalized, local = self._storage.dbfs_path(req.args().get("path"))
        with self._storage.lock:
            if not local.exists():
                raise _not_found(normalized)
            return Response.json(self._info(normalized, local))

    def list(self, req: Request) -> Response:
        """``GET list``: a directory's entries (sorted), or the file itself when given a file."""
        normalized, local = self._storage.dbfs_path(req.args().get("path"))
        with self._storage.lock:
            if not local.exists():
                raise _not_found(normalized)
            if not local.is_dir():
                return Response.json({"files": [self._info(normalized, local)]})
            base = "" if normalized == "/" else normalized
            files = [self._info(f"{base}/{child.name}", child) for child in sorted(local.iterdir())]
        return Response.json({"files": files} if files else {})

    def mkdirs(self, req: Request) -> Response:
        """``POST mkdirs``: ``mkdir -p``; a file on the way is ``RESOURCE_ALREADY_EXISTS``."""
        normalized, local = self._storage.dbfs_path(req.json().get("path"))
        with self._storage.lock:
            self._storage.dbfs_mkdirs(normalized, local)
        return Response.json({})

    def move(self, req: Request) -> Response:
        """``POST move``: rename a file or (recursively) a directory."""
        args = req.json()
        src, src_local = self._storage.dbfs_path(args.get("source_path"), param="source_path")
        dst, dst_local = self._storage.dbfs_path(args.get("destination_path"), param="destination_path")
        if src == "/" or dst == "/" or dst == src or dst.startswith(src.rstrip("/") + "/"):
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"Cannot move {src} to {dst}: invalid destination."
            )
        with self._storage.lock:
            if not src_local.exists():
                raise _not_found(src)
            if dst_local.exists():
                raise _already_exists(dst)
            self._storage.dbfs_ensure_parents(dst, dst_local)
            src_local.rename(dst_local)
        return Response.json({})

    def delete(self, req: Request) -> Response:
        """``POST delete``: missing paths succeed; a non-empty directory needs ``recursive``."""
        args = req.json()
        normalized, local = self._storage.dbfs_path(args.get("path"))
        recursive = _as_bool(args.get("recursive"), "recursive")
        if normalized == "/":
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Cannot delete the DBFS root.")
        with self._storage.lock:
            if not local.exists():
                return Response.json({})
            if not local.is_dir():
                local.unlink()
            elif recursive:
                shutil.rmtree(local)
            elif any(local.iterdir()):
                raise ApiError(
                    400,
                    "IO_ERROR",
                    f"Cannot delete {normalized}: it is a non-empty directory and recursive is false.",
                )
            else:
                local.rmdir()
        return Response.json({})
