"""The Files API for Unity Catalog volumes (``/api/2.0/fs/files`` and ``/api/2.0/fs/directories``).

Shapes follow ``databricks.sdk.service.files.FilesAPI`` (databricks-sdk 0.60); error codes follow
what the Databricks CLI's Files filer (``libs/filer/files_client.go``) handles: 409
``ALREADY_EXISTS`` for an existing file without overwrite, 400 ``INVALID_PARAMETER_VALUE`` with
reason ``FILES_API_DIRECTORY_IS_NOT_EMPTY`` for deleting a non-empty directory, 404 for missing
paths (``GET``/``HEAD`` of a directory through ``/fs/files`` is a 404 too).
"""

from __future__ import annotations

import base64
import json
import re
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from ._http import ApiError, Request, Response, Router, error_info, http_date
from ._storage import Storage, VolumePath, mtime_ms

__all__ = [
    "FILES_PATH_PATTERN",
    "MAX_PAGE_SIZE",
    "FilesApi",
    "check_upload_target",
    "file_not_found",
    "file_response",
    "parse_overwrite",
]

#: ``list_directory_contents`` returns at most this many entries per page (larger values are coerced).
MAX_PAGE_SIZE = 1000

#: Route pattern of a Files API file URL (the ``path`` group is the volume path).
FILES_PATH_PATTERN = r"/api/2\.0/fs/files(?P<path>/.*)"
_DIRS = r"/api/2\.0/fs/directories(?P<path>/.*)"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def file_not_found(path: str) -> ApiError:
    """The Files API's 404 for a missing file."""
    return ApiError(404, "NOT_FOUND", f"The file being accessed is not found: {path}")


def _dir_not_found(path: str) -> ApiError:
    return ApiError(
        404,
        "NOT_FOUND",
        f"The directory being accessed is not found: {path}",
        details=[error_info("FILES_API_DIRECTORY_IS_NOT_FOUND")],
    )


def parse_overwrite(value: str | None) -> bool:
    """The ``overwrite`` query parameter of an upload (true when absent)."""
    if value is None or value == "":
        return True  # "If true or unspecified, an existing file will be overwritten."
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid value for parameter overwrite: {value!r}")


def check_upload_target(vp: VolumePath, overwrite: bool) -> None:
    """Raise the 409 a workspace answers when a file cannot be written at ``vp`` (a directory is
    there, or a file and ``overwrite`` is false). Call under ``Storage.lock``."""
    if vp.is_volume_root or vp.local.is_dir():
        raise ApiError(409, "ALREADY_EXISTS", f"A directory already exists at the path {vp.path}.")
    if vp.local.exists() and not overwrite:
        raise ApiError(409, "ALREADY_EXISTS", f"The file being created already exists: {vp.path}")


def file_response(req: Request, storage: Storage, local: Path, shown: str) -> Response:
    """The file at ``local`` (API path ``shown``) as a ``GET`` answer: 200, or 206 for a satisfiable
    ``Range``; 404 without a file, 412 when ``If-Unmodified-Since`` fails, 416 for a range past the
    end. Shared by the Files API download and the presigned download URLs."""
    with storage.lock:
        if not local.is_file():
            raise file_not_found(shown)
        _check_unmodified_since(req, local)
        data = local.read_bytes()
        headers = _file_headers(local, len(data))
    size = len(data)
    range_header = req.header("range")
    match = _RANGE.fullmatch(range_header.strip()) if range_header else None
    # A syntactically invalid (or multi-) range is ignored and the whole file returned (RFC 9110).
    if match and (match.group(1) or match.group(2)):
        first_text, last_text = match.group(1), match.group(2)
        if first_text:
            first = int(first_text)
            valid = not last_text or int(last_text) >= first
            last = min(int(last_text), size - 1) if last_text else size - 1
        else:  # suffix range: the last N bytes
            first, last, valid = max(size - int(last_text), 0), size - 1, True
            if int(last_text) == 0:
                first = size
        if valid:
            if first >= size:
                raise ApiError(
                    416,
                    "INVALID_PARAMETER_VALUE",
                    f"Requested range {range_header!r} is not satisfiable for a {size}-byte file.",
                    headers={"Content-Range": f"bytes */{size}"},
                )
            body = data[first : last + 1]
            headers["Content-Length"] = str(len(body))
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            return Response(status=206, body=body, headers=headers)
    return Response(status=200, body=data, headers=headers)


def _check_unmodified_since(req: Request, local: Path) -> None:
    value = req.header("if-unmodified-since")
    if not value:
        return
    try:
        limit = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return
    if int(local.stat().st_mtime) > int(limit):
        raise ApiError(412, "FAILED_PRECONDITION", "The file has been modified since the given time.")


def _file_headers(local: Path, size: int) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
        "Last-Modified": http_date(local.stat().st_mtime),
        "Accept-Ranges": "bytes",
    }


class FilesApi:
    """Handlers for the Files API file and directory endpoints (GET/HEAD/PUT/DELETE each)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def register(self, router: Router) -> None:
        """Add the Files API routes."""
        router.add("PUT", FILES_PATH_PATTERN, self.upload, name="PUT /api/2.0/fs/files")
        router.add("GET", FILES_PATH_PATTERN, self.download, name="GET /api/2.0/fs/files")
        router.add("HEAD", FILES_PATH_PATTERN, self.get_metadata, name="HEAD /api/2.0/fs/files")
        router.add("DELETE", FILES_PATH_PATTERN, self.delete, name="DELETE /api/2.0/fs/files")
        router.add("PUT", _DIRS, self.create_directory, name="PUT /api/2.0/fs/directories")
        router.add("GET", _DIRS, self.list_directory_contents, name="GET /api/2.0/fs/directories")
        router.add("HEAD", _DIRS, self.get_directory_metadata, name="HEAD /api/2.0/fs/directories")
        router.add("DELETE", _DIRS, self.delete_directory, name="DELETE /api/2.0/fs/directories")
        router.add(
            "GET", r"/api/2\.0/fs/endpoints", self.endpoints, name="GET /api/2.0/fs/endpoints", faults=False
        )

    def endpoints(self, req: Request) -> Response:
        """``GET /fs/endpoints``: the file-transfer endpoints a workspace lists (databricks-sdk 0.167 asks
        before its first Files transfer, one attempt). The emulated workspace is one the API has not
        reached yet: 404, which the SDK takes as "use the built-in order" (presigned URLs, then the
        Files API on the workspace host), exactly what the emulator serves."""
        raise ApiError(404, "ENDPOINT_NOT_FOUND", "The endpoints API is not available in this workspace.")

    # ----------------------------------------------------------------------------- helpers

    def _resolve(self, req: Request) -> VolumePath:
        return self._storage.existing_volume_path(req.param("path"))

    # ------------------------------------------------------------------------------- files

    def upload(self, req: Request) -> Response:
        """``PUT /fs/files{path}?overwrite=``: write raw bytes; missing parent directories are created."""
        vp = self._resolve(req)
        overwrite = parse_overwrite(req.query.get("overwrite"))
        with self._storage.lock:
            check_upload_target(vp, overwrite)
            self._storage.volume_ensure_dirs(vp, vp.local.parent)
            self._storage.atomic_write(vp.local, req.body)
        return Response.no_content()

    def download(self, req: Request) -> Response:
        """``GET /fs/files{path}``: raw bytes; honours ``Range`` and ``If-Unmodified-Since``."""
        vp = self._resolve(req)
        return file_response(req, self._storage, vp.local, vp.path)

    def get_metadata(self, req: Request) -> Response:
        """``HEAD /fs/files{path}``: ``content-length``, ``content-type``, ``last-modified`` headers."""
        vp = self._resolve(req)
        with self._storage.lock:
            if not vp.local.is_file():
                raise file_not_found(vp.path)
            headers = _file_headers(vp.local, vp.local.stat().st_size)
        return Response(status=200, headers=headers)

    def delete(self, req: Request) -> Response:
        """``DELETE /fs/files{path}``: 404 when there is no file at the path."""
        vp = self._resolve(req)
        with self._storage.lock:
            if not vp.local.is_file():
                raise file_not_found(vp.path)
            vp.local.unlink()
        return Response.no_content()

    # ------------------------------------------------------------------------- directories

    def create_directory(self, req: Request) -> Response:
        """``PUT /fs/directories{path}``: ``mkdir -p`` (idempotent); a file on the way is a 409."""
        vp = self._resolve(req)
        with self._storage.lock:
            self._storage.volume_ensure_dirs(vp, vp.local)
        return Response.no_content()

    def get_directory_metadata(self, req: Request) -> Response:
        """``HEAD /fs/directories{path}``: 200 if the directory exists, else 404."""
        vp = self._resolve(req)
        if not vp.local.is_dir():
            raise _dir_not_found(vp.path)
        return Response(status=200)

    def list_directory_contents(self, req: Request) -> Response:
        """``GET /fs/directories{path}``: one page of entries (sorted by name)."""
        vp = self._resolve(req)
        page_size = self._page_size(req.query.get("page_size"))
        token = req.query.get("page_token") or None
        after = self._decode_token(token, vp.path, page_size) if token else None
        with self._storage.lock:
            if not vp.local.is_dir():
                raise _dir_not_found(vp.path)
            children = sorted(vp.local.iterdir(), key=lambda p: p.name)
            if after is not None:
                children = [c for c in children if c.name > after]
            page, more = children[:page_size], len(children) > page_size
            contents = [self._entry(vp, child) for child in page]
        payload: dict[str, Any] = {}
        if contents:
            payload["contents"] = contents
        if more:
            payload["next_page_token"] = self._encode_token(vp.path, page_size, page[-1].name)
        return Response.json(payload)

    @staticmethod
    def _entry(vp: VolumePath, child: Path) -> dict[str, Any]:
        path = f"{vp.path}/{child.name}"
        if child.is_dir():
            return {"path": path + "/", "is_directory": True, "name": child.name}
        return {
            "path": path,
            "is_directory": False,
            "file_size": child.stat().st_size,
            "last_modified": mtime_ms(child),
            "name": child.name,
        }

    @staticmethod
    def _page_size(raw: str | None) -> int:
        if raw is None or raw == "":
            return MAX_PAGE_SIZE
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"Invalid value for parameter page_size: {raw!r}"
            ) from None
        if value < 0:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "page_size must not be negative.")
        return MAX_PAGE_SIZE if value == 0 else min(value, MAX_PAGE_SIZE)

    @staticmethod
    def _encode_token(path: str, page_size: int, after: str) -> str:
        raw = json.dumps({"p": path, "n": page_size, "a": after}).encode("utf-8")
        return base64.urlsafe_b64encode(raw).decode("ascii")

    @staticmethod
    def _decode_token(token: str, path: str, page_size: int) -> str:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            token_path, token_size, after = data["p"], data["n"], data["a"]
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Invalid page_token.") from None
        if token_path != path or token_size != page_size or not isinstance(after, str):
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "When providing a page_token, all other parameters must match the previous request.",
            )
        return after

    def delete_directory(self, req: Request) -> Response:
        """``DELETE /fs/directories{path}``: only empty directories; the volume root is refused."""
        vp = self._resolve(req)
        with self._storage.lock:
            if not vp.local.is_dir():
                raise _dir_not_found(vp.path)
            if vp.is_volume_root:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cannot delete the volume root {vp.path}.")
            if any(vp.local.iterdir()):
                raise ApiError(
                    400,
                    "INVALID_PARAMETER_VALUE",
                    f"The directory being deleted is not empty: {vp.path}",
                    details=[error_info("FILES_API_DIRECTORY_IS_NOT_EMPTY")],
                )
            vp.local.rmdir()
        return Response.no_content()
