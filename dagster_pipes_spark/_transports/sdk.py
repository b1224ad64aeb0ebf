"""Workspace storage through databricks-sdk (REST): DBFS 2.0 and the Files API for UC Volumes.

Every method makes a single attempt: the caller's :class:`~.retry.RetryPolicy` retries whole
operations. The requests go through a client of our own, built from a copy of the given client's
configuration (same host, same credentials): its requests time out after ``request_timeout`` and the
SDK's own retry window (``retry_timeout_seconds``, 300 s by default) ends at the first failure, so a
call of ours never sits in the SDK's retry loop. The client the user passed is not changed.

What the SDK raises is translated here into the package's storage errors (:mod:`.errors`): its
error classes by the HTTP status each stands for, ``retry_after_secs`` as the server's wait.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import sys
import threading
import time
from typing import Any

from .._redact import register_secret
from .errors import (
    StorageCallError,
    error_chain,
    kind_for_status,
    seconds,
    storage_error,
    translate_foreign,
    translated,
)
from .file_store import (
    DBFS_MAX_BLOCK,
    FileStore,
    dbfs_path,
    write_then_rename,
)
from .retry import DEFAULT_RETRY_POLICY

logger = logging.getLogger("dagster_pipes_spark")

#: How far the clock of our SDK client jumps when the SDK asks to sleep before a retry.
_END_OF_RETRY_WINDOW = 1e9


#: databricks-sdk error classes (``databricks.sdk.errors``, 0.20 and later) and the HTTP status each
#: stands for; their subclasses (``ResourceDoesNotExist``, ``RequestLimitExceeded``…) inherit it.
_SDK_ERROR_STATUS: tuple[tuple[str, int], ...] = (
    ("BadRequest", 400),
    ("Unauthenticated", 401),
    ("PermissionDenied", 403),
    ("NotFound", 404),
    ("ResourceConflict", 409),
    ("TooManyRequests", 429),
    ("Cancelled", 499),
    ("InternalError", 500),
    ("NotImplemented", 501),
    ("TemporarilyUnavailable", 503),
    ("DeadlineExceeded", 504),
)
_sdk_classes: list[tuple[type[BaseException], int]] | None = None


def _sdk_error_classes() -> list[tuple[type[BaseException], int]]:
    global _sdk_classes
    if _sdk_classes is None:
        if "databricks.sdk" not in sys.modules:  # an SDK error cannot exist without the SDK loaded
            return []
        try:
            from databricks.sdk import errors
        except ImportError:
            return []
        found = [(getattr(errors, name, None), status) for name, status in _SDK_ERROR_STATUS]
        _sdk_classes = [(c, s) for c, s in found if isinstance(c, type) and issubclass(c, BaseException)]
    return _sdk_classes


def translate_sdk_error(exc: BaseException) -> StorageCallError:
    """The package's storage error for what databricks-sdk raised. Its error classes count by their
    HTTP status (also under the SDK's ``TimeoutError`` that wraps the last error of a retry window);
    the requests and decoding errors under it, by the common conventions."""
    classes = _sdk_error_classes()
    for e in error_chain(exc):
        status = next((s for cls, s in classes if isinstance(e, cls)), None)
        if status is not None:
            wait = seconds(getattr(e, "retry_after_secs", None))
            return storage_error(kind_for_status(status), e, status=status, retry_after=wait)
    return translate_foreign(exc)


class _SingleAttemptClock:
    """A databricks-sdk ``Clock`` (``time``/``sleep``) that turns the SDK's retry loops into one attempt.

    The SDK computes a deadline with ``time()``, tries, and on a failure it deems retryable calls
    ``sleep()`` and tries again while ``time()`` is before the deadline. Here ``sleep()`` returns at once
    and moves this thread's ``time()`` past any deadline, so the SDK raises its last error (or its
    ``TimeoutError`` from it) immediately and our retry policy decides what happens next. The clock
    only serves retry deadlines in the SDK (0.20 to 0.16x).
    """

    def __init__(self) -> None:
        self._skew = threading.local()

    def time(self) -> float:
        """Wall-clock time, plus this thread's skew."""
        return time.time() + float(getattr(self._skew, "seconds", 0.0))

    def sleep(self, seconds: float) -> None:
        """End the current retry window instead of sleeping."""
        self._skew.seconds = float(getattr(self._skew, "seconds", 0.0)) + _END_OF_RETRY_WINDOW


def bounded_client(client: Any, request_timeout: float) -> Any:
    """A ``WorkspaceClient`` sharing ``client``'s configuration and credentials whose requests time out
    after ``request_timeout`` seconds and are attempted once. Returns ``client`` itself when it is not a
    databricks-sdk client (our deadlines still bound its calls, from outside)."""
    config = getattr(client, "config", None)
    if config is None or not callable(getattr(config, "copy", None)):
        return client
    try:
        from databricks.sdk import WorkspaceClient

        for secret in ("token", "client_secret", "password", "azure_client_secret"):
            register_secret(getattr(config, secret, None))  # never printed nor sent by us
        ours = config.copy()  # shares the credentials; `Config.copy` also shares the attribute dict:
        if isinstance(getattr(ours, "_inner", None), dict):  # ... give ours its own before setting any
            ours._inner = dict(ours._inner)
            ours.http_timeout_seconds = float(request_timeout)
            ours.retry_timeout_seconds = max(1, math.ceil(request_timeout))  # if the clock is ignored
        if hasattr(ours, "files_ext_network_transfer_inactivity_timeout_seconds"):  # 0.16x presigned URLs
            ours.files_ext_network_transfer_inactivity_timeout_seconds = float(request_timeout)
        if hasattr(ours, "_clock"):  # what Config(clock=...) sets
            ours._clock = _SingleAttemptClock()
        return WorkspaceClient(config=ours)
    except Exception as e:  # noqa: BLE001 - an unusual client still works, bounded from outside
        logger.debug("dagster-pipes-spark: using the given client as is (%r)", e)
        return client


class _SdkStore(FileStore):
    name = "sdk"
    _api_name: str

    def __init__(self, client: Any, *, request_timeout: float = DEFAULT_RETRY_POLICY.request_timeout):
        #: the client as given (unchanged); requests go through a bounded copy of it
        self.client = client
        self.api = getattr(bounded_client(client, request_timeout), self._api_name)

    def describe(self) -> str:
        """``sdk (<API> at <host>)``."""
        host = getattr(getattr(self.client, "config", None), "host", None)
        return f"sdk ({self._api_name} API{f' at {host}' if host else ''})"

    def translate_error(self, exc: BaseException) -> StorageCallError:
        """See :func:`translate_sdk_error`."""
        return translate_sdk_error(exc)


class SdkDbfsFileStore(_SdkStore):
    """DBFS through ``WorkspaceClient().dbfs`` (REST): works off-cluster and without FUSE."""

    _api_name = "dbfs"

    @translated
    def read_bytes(self, path: str) -> bytes:
        """Read in 1 MB blocks (the API's limit)."""
        path = dbfs_path(path)
        out = io.BytesIO()
        with self.missing_raises(f"dbfs:{path}"):
            while True:
                resp = self.api.read(path, offset=out.tell(), length=DBFS_MAX_BLOCK)
                chunk = base64.b64decode(resp.data or "")
                out.write(chunk)
                if len(chunk) < DBFS_MAX_BLOCK:
                    return out.getvalue()

    @translated
    def write_bytes(self, path: str, data: bytes) -> None:
        """One ``put`` up to 1 MB; larger files are streamed to a temporary file, then moved."""
        path = dbfs_path(path)
        if len(data) <= DBFS_MAX_BLOCK:
            # One request: the file appears whole (no partially visible stream).
            self.api.put(path, contents=base64.b64encode(data).decode("ascii"), overwrite=True)
            return

        def stream(tmp: str) -> None:
            handle = self.api.create(tmp, overwrite=True).handle
            for start in range(0, len(data), DBFS_MAX_BLOCK):
                self.api.add_block(
                    handle, base64.b64encode(data[start : start + DBFS_MAX_BLOCK]).decode("ascii")
                )
            self.api.close(handle)

        def replace(tmp: str, final: str) -> None:
            self.delete(final)  # DBFS move does not overwrite
            self.api.move(tmp, final)

        write_then_rename(path, stream, replace, self.api.delete)

    @translated
    def exists(self, path: str) -> bool:
        """Whether ``get-status`` finds it."""
        return self.found(lambda: self.api.get_status(dbfs_path(path)))

    @translated
    def list(self, path: str) -> list[str]:
        """Entry names."""
        with self.missing_raises(f"dbfs:{dbfs_path(path)}"):
            return sorted(f.path.rstrip("/").rsplit("/", 1)[-1] for f in self.api.list(dbfs_path(path)))

    @translated
    def mkdirs(self, path: str) -> None:
        """``mkdirs``."""
        self.api.mkdirs(dbfs_path(path))

    @translated
    def delete(self, path: str, recursive: bool = False) -> None:
        """``delete`` (a missing path is fine)."""
        with self.missing_ok():
            self.api.delete(dbfs_path(path), recursive=recursive)


class SdkVolumesFileStore(_SdkStore):
    """UC Volumes through the Files API (``WorkspaceClient().files``)."""

    _api_name = "files"

    @translated
    def read_bytes(self, path: str) -> bytes:
        """Download the file."""
        with self.missing_raises(path):
            return bytes(self.api.download(path).contents.read())

    @translated
    def write_bytes(self, path: str, data: bytes) -> None:
        """A single upload: the Files API publishes the file when the upload completes."""
        self.api.upload(path, io.BytesIO(data), overwrite=True)

    @translated
    def exists(self, path: str) -> bool:
        """Whether it is a file or a directory."""
        return self.found(lambda: self.api.get_metadata(path)) or self.found(
            lambda: self.api.get_directory_metadata(path)
        )

    @translated
    def list(self, path: str) -> list[str]:
        """Entry names."""
        with self.missing_raises(path):
            entries = list(self.api.list_directory_contents(path))
        return sorted(e.name or e.path.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    @translated
    def mkdirs(self, path: str) -> None:
        """``create-directory`` (with parents)."""
        self.api.create_directory(path)

    @translated
    def delete(self, path: str, recursive: bool = False) -> None:
        """Delete a file, or a directory (its content too with ``recursive``); missing is fine."""
        try:
            self.api.delete(path)
            return
        except Exception as e:
            if self.is_missing(e):
                return
            if not recursive:
                raise
        for name in self.list(path):
            self.delete(f"{path.rstrip('/')}/{name}", recursive=True)
        self.api.delete_directory(path)
