"""A loopback Databricks workspace emulator (DBFS 2.0, Files API, Jobs runs) for tests.

The real ``databricks.sdk.WorkspaceClient`` (and everything built on it, such as the
``dagster_databricks.pipes`` injectors and readers) works against it unchanged::

    with Emulator(volumes=["main/default/pipes"]) as ws:
        w = ws.workspace_client()
        w.dbfs.put("/tmp/x.json", contents="e30=", overwrite=True)

Only the standard library is used at runtime; ``databricks.sdk`` is imported lazily by
:meth:`Emulator.workspace_client`.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ._dbfs_api import DbfsApi
from ._faults import FaultConfig, FaultInjector, RequestRecord, RequestStats
from ._files_api import FilesApi
from ._http import ApiError, EmulatorApi, Request, Response, Router
from ._jobs_api import JobsApi, TaskLogs
from ._storage import Storage, parse_volume_name

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

    from ._dbutils import FakeDbutils

__all__ = ["DEFAULT_TOKEN", "Emulator", "FaultsHandle"]

logger = logging.getLogger("dagster_pipes_spark.testing.emulator")

#: The token handed to clients when the emulator was not given one.
DEFAULT_TOKEN = "dapi-emulator-token"


class FaultsHandle:
    """Returned by :meth:`Emulator.faults`: the faults are active already; used as a context
    manager, the previous fault configuration is restored on exit."""

    def __init__(self, injector: FaultInjector, config: FaultConfig, previous: FaultConfig) -> None:
        self._injector = injector
        self.config = config
        self._previous = previous

    def __enter__(self) -> FaultsHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._injector.configure(self._previous)


class _ControlApi:
    """``/_emulator/*``: control surface for tests and subprocesses (no auth, faults or stats)."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    def register(self, router: Router) -> None:
        """Add the control routes."""
        e = self._emulator
        for method, path, handler in (
            ("GET", "/_emulator/health", lambda req: Response.json({"ok": True, "root": str(e.root)})),
            ("GET", "/_emulator/faults", lambda req: Response.json(e.fault_config.to_json())),
            ("POST", "/_emulator/faults", self._set_faults),
            ("DELETE", "/_emulator/faults", self._clear_faults),
            ("GET", "/_emulator/stats", lambda req: Response.json(e.stats)),
            ("GET", "/_emulator/stats/faults", lambda req: Response.json(e.fault_stats)),
            ("DELETE", "/_emulator/stats", self._reset_stats),
            ("GET", "/_emulator/requests", self._requests),
            ("DELETE", "/_emulator/requests", self._clear_requests),
            ("GET", "/_emulator/volumes", lambda req: Response.json({"volumes": e.volumes})),
            ("POST", "/_emulator/volumes", self._create_volume),
        ):
            router.add(method, path, handler, name=f"{method} {path}", internal=True)

    def _set_faults(self, req: Request) -> Response:
        try:
            config = FaultConfig.from_json(req.json())
        except (TypeError, ValueError) as exc:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", str(exc)) from None
        self._emulator._injector.configure(config)
        return Response.json(config.to_json())

    def _clear_faults(self, req: Request) -> Response:
        self._emulator.clear_faults()
        return Response.json({})

    def _reset_stats(self, req: Request) -> Response:
        self._emulator.reset_stats()
        return Response.json({})

    def _requests(self, req: Request) -> Response:
        return Response.json({"requests": [r.to_json() for r in self._emulator.requests]})

    def _clear_requests(self, req: Request) -> Response:
        self._emulator.clear_requests()
        return Response.json({})

    def _create_volume(self, req: Request) -> Response:
        body = req.json()
        try:
            if "name" in body:
                catalog, schema, volume = parse_volume_name(str(body["name"]))
            else:
                catalog, schema, volume = str(body["catalog"]), str(body["schema"]), str(body["volume"])
            path = self._emulator.create_volume(catalog, schema, volume)
        except (KeyError, ValueError) as exc:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid volume: {exc}") from None
        return Response.json({"path": path})


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.server.emulator._serve(self)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _RequestHandler)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        chunks: list[bytes] = []
        while True:
            size_line = handler.rfile.readline()
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


class Emulator:
    """A loopback HTTP server emulating a Databricks workspace's DBFS and Files APIs.

    Args:
        root: Storage directory (a fresh temporary directory, removed on stop, by default).
            DBFS ``/x`` lives at ``root/dbfs/x`` and ``/Volumes/c/s/v/p`` at ``root/Volumes/c/s/v/p``.
        volumes: Volumes to pre-create, as ``"catalog/schema/volume"`` (or ``"c.s.v"``).
        auto_create_volumes: Create volumes on first use instead of answering 404.
        token: Require exactly this bearer token (any bearer token is accepted when ``None``).
        require_auth: Answer 401 to API requests without an ``Authorization`` header.
        record_requests: Keep a log of served requests (see :attr:`requests`).
        handle_idle_timeout: Seconds after which an unused DBFS streaming handle expires.
        host: Interface to bind (loopback by default).
        port: Port to bind (an ephemeral port by default).
        task_python: Python executable (or virtualenv directory) that runs Jobs API tasks
            (``sys.executable`` by default); see :attr:`jobs` for more settings.
        cluster_log_conf: ``cluster_log_conf`` that ``clusters/get`` reports for existing clusters.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        volumes: Iterable[str] = (),
        auto_create_volumes: bool = False,
        token: str | None = None,
        require_auth: bool = True,
        record_requests: bool = False,
        handle_idle_timeout: float = 600.0,
        host: str = "127.0.0.1",
        port: int = 0,
        task_python: str | os.PathLike[str] | None = None,
        cluster_log_conf: dict[str, Any] | None = None,
    ) -> None:
        self._owns_root = root is None
        root_path = Path(tempfile.mkdtemp(prefix="databricks-emulator-")) if root is None else Path(root)
        root_path.mkdir(parents=True, exist_ok=True)
        self._storage = Storage(root_path.resolve(), auto_create_volumes=auto_create_volumes)
        self._token = token
        self.require_auth = require_auth
        self.record_requests = record_requests
        self._bind = (host, port)
        self._router = Router()
        self._injector = FaultInjector()
        self._stats = RequestStats()
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._dbfs = DbfsApi(self._storage, handle_idle_timeout=handle_idle_timeout)
        self._jobs = JobsApi(self, python=task_python, existing_cluster_log_conf=cluster_log_conf)
        for api in (_ControlApi(self), self._dbfs, FilesApi(self._storage), self._jobs):
            self.add_api(api)
        for name in volumes:
            self.create_volume(*parse_volume_name(name))

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> Emulator:
        """Start serving in a background thread (idempotent); returns ``self``."""
        if self._server is None:
            self._server = _Server(self._bind, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"databricks-emulator-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (cancelling active job runs); removes the storage root if the emulator created it."""
        self._jobs.shutdown()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._owns_root:
            shutil.rmtree(self._storage.root, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_api(self, api: EmulatorApi) -> None:
        """Register another emulated API (an object with ``register(router)``), e.g. a Jobs API."""
        api.register(self._router)

    @property
    def router(self) -> Router:
        """The routing table."""
        return self._router

    @property
    def storage(self) -> Storage:
        """The shared on-disk storage (for additional emulated APIs)."""
        return self._storage

    # --------------------------------------------------------------------------- properties

    @property
    def root(self) -> Path:
        """The storage root directory."""
        return self._storage.root

    @property
    def dbfs_root(self) -> Path:
        """``root/dbfs``: where DBFS lives (map the ``/dbfs`` FUSE mount here)."""
        return self._storage.dbfs_root

    @property
    def volumes_root(self) -> Path:
        """``root/Volumes``: where UC volumes live (map the ``/Volumes`` FUSE mount here)."""
        return self._storage.volumes_root

    @property
    def port(self) -> int:
        """The bound TCP port (the server must be started)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the workspace host to give clients."""
        return f"http://{self._bind[0]}:{self.port}"

    @property
    def host(self) -> str:
        """Alias of :attr:`url` (what ``DATABRICKS_HOST`` should be)."""
        return self.url

    @property
    def token(self) -> str:
        """The bearer token clients should send."""
        return self._token or DEFAULT_TOKEN

    @property
    def volumes(self) -> list[str]:
        """The existing volumes as ``/Volumes/c/s/v`` paths."""
        base = self.volumes_root
        return sorted(f"/Volumes/{v.relative_to(base).as_posix()}" for v in base.glob("*/*/*") if v.is_dir())

    @property
    def jobs(self) -> JobsApi:
        """The emulated Jobs API: task interpreter, start-up delay, extra env, run inspection."""
        return self._jobs

    def run_logs(self, run_id: int) -> dict[str, TaskLogs]:
        """stdout / stderr of a job run's tasks, by task key (see :meth:`JobsApi.run_logs`)."""
        return self._jobs.run_logs(run_id)

    @property
    def dbfs_open_handles(self) -> int:
        """Number of open (unexpired) DBFS streaming handles."""
        return self._dbfs.open_handles

    # ------------------------------------------------------------------------------ helpers

    def local_path(self, path: str) -> Path:
        """The on-disk location of a DBFS (``dbfs:/x`` or ``/x``) or ``/Volumes/c/s/v/...`` path."""
        try:
            if path.startswith("/Volumes/") or path == "/Volumes":
                return self._storage.volume_path(path).local
            return self._storage.dbfs_path(path)[1]
        except ApiError as exc:
            raise ValueError(exc.message) from None

    def create_volume(self, catalog: str, schema: str, volume: str) -> str:
        """Create a UC volume (idempotent); returns its ``/Volumes/c/s/v`` path."""
        for part in (catalog, schema, volume):
            if not part or "/" in part or part in (".", ".."):
                raise ValueError(f"invalid volume name component {part!r}")
        return self._storage.create_volume(catalog, schema, volume)

    def env(self) -> dict[str, str]:
        """Environment variables pointing a subprocess's SDK / :class:`FakeDbutils` here."""
        return {
            "DATABRICKS_HOST": self.url,
            "DATABRICKS_TOKEN": self.token,
            "DATABRICKS_AUTH_TYPE": "pat",
        }

    def workspace_client(self, *, fast_retries: bool = True, **config: Any) -> WorkspaceClient:
        """A real ``databricks.sdk.WorkspaceClient`` configured for this emulator.

        With ``fast_retries`` the SDK's retry back-off sleeps are shortened (injected 429/503 are
        still retried by the SDK itself, just without the ~0.5 s average jitter each).
        Extra keyword arguments are passed to ``databricks.sdk.core.Config``.
        """
        from ._sdk import make_workspace_client

        return make_workspace_client(
            **{"host": self.url, "token": self.token, **config}, fast_retries=fast_retries
        )

    def fake_dbutils(self, widgets: dict[str, str] | None = None) -> FakeDbutils:
        """A :class:`FakeDbutils` talking to this emulator."""
        from ._dbutils import FakeDbutils

        return FakeDbutils(host=self.url, token=self.token, widgets=widgets)

    # ------------------------------------------------------------------------------- faults

    def faults(
        self,
        rate: float = 0.15,
        statuses: Sequence[int] = (429, 503),
        *,
        seed: int | None = None,
        endpoints: Sequence[str] | None = None,
        retry_after: int = 0,
        max_faults: int | None = None,
    ) -> FaultsHandle:
        """Inject errors into a fraction ``rate`` of API requests, before any side effect.

        Takes effect immediately; use the result as a context manager to restore the previous
        setting on exit. ``endpoints`` limits injection to endpoint names containing one of the
        substrings (e.g. ``"dbfs/read"``); ``max_faults`` caps the number of injected errors.
        """
        config = FaultConfig(
            rate=rate,
            statuses=tuple(statuses),
            seed=seed,
            endpoints=None if endpoints is None else tuple(endpoints),
            retry_after=retry_after,
            max_faults=max_faults,
        )
        previous = self._injector.configure(config)
        return FaultsHandle(self._injector, config, previous)

    def clear_faults(self) -> None:
        """Stop injecting faults."""
        self._injector.configure(FaultConfig())

    @property
    def fault_config(self) -> FaultConfig:
        """The active fault configuration."""
        return self._injector.config

    @contextmanager
    def no_faults(self) -> Iterator[None]:
        """Temporarily disable fault injection (e.g. for test setup / assertions)."""
        previous = self._injector.configure(FaultConfig())
        try:
            yield
        finally:
            self._injector.configure(previous)

    # -------------------------------------------------------------------------------- stats

    @property
    def stats(self) -> dict[str, int]:
        """Requests per endpoint (e.g. ``"POST /api/2.0/dbfs/put"``), faulted ones included, plus
        ``"faults"``: the total number of injected faults."""
        return self._stats.snapshot()

    @property
    def fault_stats(self) -> dict[str, int]:
        """Injected faults per endpoint."""
        return self._stats.faults()

    def reset_stats(self) -> None:
        """Zero the request and fault counters."""
        self._stats.reset()

    @property
    def requests(self) -> list[RequestRecord]:
        """Served requests, oldest first (only when ``record_requests`` is enabled)."""
        with self._records_lock:
            return list(self._records)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._records_lock:
            self._records.clear()

    # ------------------------------------------------------------------------------ serving

    def _check_auth(self, req: Request) -> None:
        if not self.require_auth:
            return
        header = req.header("authorization") or ""
        scheme, _, credential = header.partition(" ")
        if not header:
            raise ApiError(401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type.")
        if scheme.lower() != "bearer" or not credential.strip():
            raise ApiError(401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type.")
        if self._token is not None and credential.strip() != self._token:
            raise ApiError(403, "PERMISSION_DENIED", "Invalid access token.")

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        started = time.monotonic()
        method = handler.command.upper()
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        endpoint: str | None = None
        faulted = False
        try:
            body = _read_body(handler)
        except (ValueError, OSError):
            handler.close_connection = True
            body = b""
        req = Request(
            method=method,
            raw_path=split.path,
            query=query,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
        )
        try:
            route, req.params = self._router.resolve(method, split.path)
            endpoint = route.name
            if not route.internal:
                self._check_auth(req)
                fault = self._injector.decide(endpoint)
                faulted = fault is not None
                self._stats.count(endpoint, faulted=faulted)
                if fault is not None:
                    raise fault
            response = route.handler(req)
        except ApiError as exc:
            response = exc.to_response()
        except Exception as exc:  # a bug in the emulator: answer 500 rather than hang the client
            logger.exception("emulator error serving %s %s", method, handler.path)
            response = ApiError(500, "INTERNAL_ERROR", f"Emulator error: {exc!r}").to_response()
        self._write(handler, method, response)
        duration_ms = (time.monotonic() - started) * 1000
        logger.debug("%s %s -> %s (%.1f ms)", method, handler.path, response.status, duration_ms)
        if self.record_requests:
            record = RequestRecord(
                method=method,
                path=req.path,
                query=query,
                endpoint=endpoint,
                status=response.status,
                faulted=faulted,
                duration_ms=round(duration_ms, 3),
            )
            with self._records_lock:
                self._records.append(record)

    @staticmethod
    def _write(handler: BaseHTTPRequestHandler, method: str, response: Response) -> None:
        headers = dict(response.headers)
        body = response.body
        if response.status in (204, 304):
            body = b""
            headers.pop("Content-Length", None)
        elif "Content-Length" not in headers:
            headers["Content-Length"] = str(len(body))
        if method == "HEAD":
            if response.status >= 400:
                headers["Content-Length"] = "0"
            body = b""
        try:
            handler.send_response(response.status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            if body:
                handler.wfile.write(body)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
