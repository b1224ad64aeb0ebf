"""Presigned-URL transfers of the Files API, and the cloud storage those URLs point at.

Newer databricks-sdk versions move file bytes through cloud storage instead of the workspace: the
workspace hands out short-lived *presigned* URLs and the client sends or fetches the bytes there
without the workspace token. The emulator plays both parts (shapes follow ``FilesExt`` of
databricks-sdk 0.162, which uses them by default, and of 0.60 behind its experimental flag):

* ``POST /api/2.0/fs/create-download-url`` (``path``, ``expire_time``; query or body) →
  ``{"url", "headers": [{"name", "value"}]}``; the client then ``GET``\\ s the URL (``Range`` and
  ``If-Unmodified-Since`` honoured).
* Multipart upload sessions on the file's Files API URL: ``POST /api/2.0/fs/files{path}?action=``
  ``initiate-upload`` (``&overwrite=``) → ``{"multipart_upload": {"session_token"}}``;
  ``POST /api/2.0/fs/create-upload-part-urls`` (``path``, ``session_token``, ``start_part_number``,
  ``count``, ``expire_time``) → ``{"upload_part_urls": [{"part_number", "url", "headers"}]}``; each
  part is ``PUT`` to its URL, which answers its ``ETag``; ``action=complete-upload`` (body
  ``{"parts": [{"part_number", "etag"}]}``) assembles the parts and publishes the file atomically;
  ``action=abort-upload``, or ``POST /api/2.0/fs/create-abort-upload-url`` and a ``DELETE`` of the
  URL it returns (the 0.60 client), drops the session.

The URLs point at ``<emulator>/cloud-storage/...`` and behave like an S3 bucket's presigned URLs:
served without the workspace token (a request that also sends an ``Authorization`` header is
refused, as S3 refuses two authentication mechanisms), signed (a tampered URL is refused) and
expiring: a URL lives until the ``expire_time`` the client asked for, capped at the emulator's
``presigned_url_ttl``; an expired one is answered ``403`` with S3's ``AccessDenied`` /
``Request has expired`` XML, which the SDK recognizes and answers by asking for a new URL. Parts
other than the last must hold at least 5 MiB, as on S3.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from ._files_api import (
    FILES_PATH_PATTERN,
    check_upload_target,
    file_not_found,
    file_response,
    parse_overwrite,
)
from ._http import ApiError, Request, Response, Router
from ._storage import MiB, Storage, VolumePath

__all__ = ["MAX_PARTS", "MIN_PART_SIZE", "STORAGE_PREFIX", "PresignedApi", "StorageError"]

#: Path prefix of the emulated cloud storage the presigned URLs point at.
STORAGE_PREFIX = "/cloud-storage"
#: Every part of a multipart upload but the last must hold at least this many bytes (S3's rule).
MIN_PART_SIZE = 5 * MiB
#: Part numbers run from 1 to this (S3's limit).
MAX_PARTS = 10_000

_EXPIRES = "X-Emulator-Expires"
_SIGNATURE = "X-Emulator-Signature"


class StorageError(ApiError):
    """An error of the emulated cloud storage, rendered as S3's XML error document."""

    def to_response(self) -> Response:
        """Render as ``<Error><Code>..</Code><Message>..</Message></Error>``."""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(self.error_code)}</Code><Message>{escape(self.message)}</Message></Error>"
        )
        return Response(
            status=self.status,
            body=body.encode("utf-8"),
            headers={"Content-Type": "application/xml", **self.headers},
        )


def _bad(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def _expire_time(raw: Any) -> float | None:
    """An RFC 3339 ``expire_time`` as epoch seconds (``None`` when not given)."""
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise _bad(f"Invalid expire_time: {raw!r}")
    try:
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"Invalid expire_time {raw!r}: expected an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def _path_arg(args: dict[str, Any]) -> str:
    path = args.get("path")
    if not isinstance(path, str) or not path:
        raise _bad("Missing required field: path")
    return path


def _int_arg(args: dict[str, Any], name: str) -> int:
    raw = args.get(name)
    if isinstance(raw, bool) or raw is None or raw == "":
        raise _bad(f"Missing or invalid field: {name}")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise _bad(f"Invalid value for {name}: {raw!r}") from None


def _headers_json(headers: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in headers.items()]


@dataclass
class _Upload:
    """One multipart upload session."""

    token: str
    target: VolumePath
    overwrite: bool
    staging: Path
    etags: dict[int, str] = field(default_factory=dict)


class PresignedApi:
    """Handlers for the presigned-URL endpoints, the multipart session actions and the storage URLs.

    Args:
        storage: The emulator's storage.
        url_ttl: The longest a presigned URL stays valid, in seconds (whatever the client asks).
    """

    def __init__(self, storage: Storage, *, url_ttl: float = 3600.0) -> None:
        self._storage = storage
        self.url_ttl = url_ttl
        self._secret = secrets.token_bytes(32)
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()

    def register(self, router: Router) -> None:
        """Add the routes: the workspace endpoints (authenticated) and the storage URLs (not)."""
        for op, handler in (
            ("create-download-url", self.create_download_url),
            ("create-upload-part-urls", self.create_upload_part_urls),
            ("create-abort-upload-url", self.create_abort_upload_url),
        ):
            path = f"/api/2.0/fs/{op}"
            router.add("POST", re.escape(path), handler, name=f"POST {path}")
        router.add("POST", FILES_PATH_PATTERN, self.upload_action, name="POST /api/2.0/fs/files")
        for method, pattern, storage_handler in (
            ("GET", r"(?P<path>/Volumes/.*)", self.storage_get),
            ("PUT", r"/multipart/(?P<token>[^/]+)/(?P<part>\d+)", self.storage_put_part),
            ("DELETE", r"/multipart/(?P<token>[^/]+)", self.storage_abort),
        ):
            name = f"{method} {STORAGE_PREFIX}"
            router.add(method, re.escape(STORAGE_PREFIX) + pattern, storage_handler, name=name, auth=False)

    @property
    def open_uploads(self) -> int:
        """Number of multipart upload sessions neither completed nor aborted."""
        with self._lock:
            return len(self._uploads)

    # ------------------------------------------------------------------------- URL signing

    def _sign(self, method: str, key: str, expires: int) -> str:
        message = f"{method}\n{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _mint(self, req: Request, method: str, key: str, requested: float | None) -> dict[str, Any]:
        """A presigned URL for ``method`` on storage object ``key`` as the API's ``{url, headers}``."""
        now = time.time()
        if requested is not None and requested <= now:
            raise _bad("expire_time must be in the future.")
        expires = int(min(requested if requested is not None else now + self.url_ttl, now + self.url_ttl))
        host = req.header("host") or "127.0.0.1"
        query = f"{_EXPIRES}={expires}&{_SIGNATURE}={self._sign(method, key, expires)}"
        return {"url": f"http://{host}{STORAGE_PREFIX}{quote(key)}?{query}", "headers": _headers_json({})}

    def _verify(self, req: Request, key: str) -> None:
        """Refuse a storage request that carries workspace credentials, is not signed, or expired."""
        if req.header("authorization"):
            raise StorageError(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the presigned query string or the Authorization "
                "header should be specified (a presigned URL must be used without workspace credentials).",
            )
        try:
            expires = int(req.query.get(_EXPIRES, ""))
        except ValueError:
            raise StorageError(
                403, "AccessDenied", "Query-string authentication requires a signature."
            ) from None
        expected = self._sign(req.method, key, expires)
        if not hmac.compare_digest(expected, req.query.get(_SIGNATURE, "")):
            raise StorageError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if time.time() >= expires:
            raise StorageError(403, "AccessDenied", "Request has expired")

    # --------------------------------------------------------------------------- downloads

    def create_download_url(self, req: Request) -> Response:
        """``POST create-download-url``: a presigned ``GET`` URL for an existing file."""
        args = req.args()
        requested = _expire_time(args.get("expire_time"))
        vp = self._storage.existing_volume_path(_path_arg(args))
        with self._storage.lock:
            if not vp.local.is_file():
                raise file_not_found(vp.path)
        return Response.json(self._mint(req, "GET", vp.path, requested))

    def storage_get(self, req: Request) -> Response:
        """``GET`` of a presigned download URL: the file's bytes (a range of them)."""
        path = req.param("path")
        self._verify(req, path)
        try:
            vp = self._storage.existing_volume_path(path)
            return file_response(req, self._storage, vp.local, vp.path)
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise StorageError(404, "NoSuchKey", "The specified key does not exist.") from None

    # ----------------------------------------------------------------------------- uploads

    def upload_action(self, req: Request) -> Response:
        """``POST /fs/files{path}?action=initiate-upload|complete-upload|abort-upload``."""
        action = req.query.get("action")
        vp = self._storage.existing_volume_path(req.param("path"))
        if action == "initiate-upload":
            return self._initiate(vp, parse_overwrite(req.query.get("overwrite")))
        if action == "complete-upload":
            upload = self._session(req.query.get("session_token"), vp)
            return self._complete(upload, req.json().get("parts"))
        if action == "abort-upload":
            self._drop(self._session(req.query.get("session_token"), vp))
            return Response.json({})
        raise _bad(
            f"Unsupported action {action!r}: expected initiate-upload, complete-upload or abort-upload."
        )

    def _initiate(self, vp: VolumePath, overwrite: bool) -> Response:
        with self._storage.lock:
            check_upload_target(vp, overwrite)
        token = secrets.token_urlsafe(24)
        staging = self._storage.tmp_root / f"multipart-{token}"
        staging.mkdir()
        with self._lock:
            self._uploads[token] = _Upload(token, vp, overwrite, staging)
        return Response.json({"multipart_upload": {"session_token": token}})

    def _session(self, token: Any, vp: VolumePath | None = None) -> _Upload:
        with self._lock:
            upload = self._uploads.get(token) if isinstance(token, str) else None
        if upload is None:
            raise ApiError(
                404, "NOT_FOUND", "The upload session does not exist (completed, aborted or never started)."
            )
        if vp is not None and vp.path != upload.target.path:
            raise _bad(f"The upload session is for {upload.target.path}, not {vp.path}.")
        return upload

    def create_upload_part_urls(self, req: Request) -> Response:
        """``POST create-upload-part-urls``: presigned ``PUT`` URLs for ``count`` parts."""
        args = req.json()
        upload = self._session(args.get("session_token"), self._storage.volume_path(_path_arg(args)))
        start, count = _int_arg(args, "start_part_number"), _int_arg(args, "count")
        if start < 1 or count < 1 or start + count - 1 > MAX_PARTS:
            raise _bad(f"Part numbers must lie within 1..{MAX_PARTS}; got {count} from {start}.")
        requested = _expire_time(args.get("expire_time"))
        urls = []
        for number in range(start, start + count):
            minted = self._mint(req, "PUT", f"/multipart/{upload.token}/{number}", requested)
            urls.append({"part_number": number, **minted})
        return Response.json({"upload_part_urls": urls})

    def storage_put_part(self, req: Request) -> Response:
        """``PUT`` of a presigned part URL: stores the part, answers its ``ETag``."""
        token, number = req.param("token"), int(req.param("part"))
        self._verify(req, f"/multipart/{token}/{number}")
        with self._lock:
            upload = self._uploads.get(token)
            if upload is None:
                raise StorageError(404, "NoSuchUpload", "The specified multipart upload does not exist.")
            etag = f'"{hashlib.md5(req.body).hexdigest()}"'
            (upload.staging / f"{number:05d}").write_bytes(req.body)
            upload.etags[number] = etag
        return Response(status=200, headers={"ETag": etag})

    def _complete(self, upload: _Upload, parts: Any) -> Response:
        if not isinstance(parts, list) or not parts:
            raise _bad("complete-upload needs a non-empty list of parts.")
        numbers: list[int] = []
        for part in parts:
            number = part.get("part_number") if isinstance(part, dict) else None
            if not isinstance(number, int) or isinstance(number, bool):
                raise _bad(f"Invalid part {part!r}: expected {{'part_number': int, 'etag': str}}.")
            if upload.etags.get(number) != part.get("etag"):
                raise _bad(f"Part {number} was not uploaded, or its ETag does not match.")
            numbers.append(number)
        if numbers != sorted(set(numbers)):
            raise _bad("Parts must be listed in ascending order of part_number, each once.")
        files = [upload.staging / f"{n:05d}" for n in numbers]
        small = [n for n, f in zip(numbers[:-1], files[:-1], strict=True) if f.stat().st_size < MIN_PART_SIZE]
        if small:
            raise _bad(f"Part {small[0]} is smaller than the minimum part size of {MIN_PART_SIZE} bytes.")
        assembled = upload.staging / "assembled"
        with open(assembled, "wb") as out:
            for file in files:
                with open(file, "rb") as src:
                    shutil.copyfileobj(src, out, MiB)
        target = upload.target
        with self._storage.lock:
            check_upload_target(target, upload.overwrite)
            self._storage.volume_ensure_dirs(target, target.local.parent)
            assembled.replace(target.local)
        self._drop(upload)
        return Response.json({})

    def _drop(self, upload: _Upload) -> None:
        with self._lock:
            self._uploads.pop(upload.token, None)
        shutil.rmtree(upload.staging, ignore_errors=True)

    def create_abort_upload_url(self, req: Request) -> Response:
        """``POST create-abort-upload-url``: a presigned ``DELETE`` URL that aborts the session."""
        args = req.json()
        upload = self._session(args.get("session_token"), self._storage.volume_path(_path_arg(args)))
        minted = self._mint(
            req, "DELETE", f"/multipart/{upload.token}", _expire_time(args.get("expire_time"))
        )
        return Response.json({"abort_upload_url": minted})

    def storage_abort(self, req: Request) -> Response:
        """``DELETE`` of a presigned abort URL: drops the session and its parts."""
        token = req.param("token")
        self._verify(req, f"/multipart/{token}")
        with self._lock:
            upload = self._uploads.get(token)
        if upload is None:
            raise StorageError(404, "NoSuchUpload", "The specified multipart upload does not exist.")
        self._drop(upload)
        return Response(status=200)
