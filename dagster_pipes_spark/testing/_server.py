"""The emulator's HTTP front: the loopback server, and what happens to every request before and after
its route's handler (authentication, fault injection, statistics, the request log, unserved endpoints).

It knows nothing about DBFS, Files or Jobs: the emulated APIs add their routes to its :class:`Router`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ._faults import FaultInjector, RequestRecord, RequestStats
from ._http import ApiError, EndpointNotFoundError, Request, Response, Router
from ._unserved import UnservedRequests

__all__ = ["HttpFront"]

logger = logging.getLogger("dagster_pipes_spark.testing.emulator")

_UNAUTHENTICATED = "Credential was not sent or was of an unsupported type."


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and
        # delayed ACKs add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.server.front.serve(self)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET  # noqa: N815 - http.server dispatches on these names

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], front: HttpFront) -> None:
        self.front = front
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


class HttpFront:
    """Serves a :class:`Router` on a loopback port in a background thread.

    Args:
        router: The routing table the emulated APIs registered with.
        host: Interface to bind.
        port: Port to bind (0: an ephemeral port).
        token: Require exactly this bearer token (any bearer token is accepted when ``None``).
        require_auth: Answer 401 to API requests without an ``Authorization`` header.
        record_requests: Keep a log of served requests (:attr:`requests`).
    """

    def __init__(
        self,
        router: Router,
        *,
        host: str,
        port: int,
        token: str | None,
        require_auth: bool,
        record_requests: bool,
    ) -> None:
        self.router = router
        self.token = token
        self.require_auth = require_auth
        self.record_requests = record_requests
        self.injector = FaultInjector()
        self.stats = RequestStats()
        self.unserved = UnservedRequests()
        self._bind = (host, port)
        self._records: list[RequestRecord] = []
        self._records_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start serving (idempotent)."""
        if self._server is not None:
            return
        self._server = _Server(self._bind, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"databricks-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        """The bound TCP port (the server must be started)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://<host>:<port>``."""
        return f"http://{self._bind[0]}:{self.port}"

    # ------------------------------------------------------------------------- request log

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
        if not header or scheme.lower() != "bearer" or not credential.strip():
            raise ApiError(401, "UNAUTHENTICATED", _UNAUTHENTICATED)
        if self.token is not None and credential.strip() != self.token:
            raise ApiError(403, "PERMISSION_DENIED", "Invalid access token.")

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request: route it, apply auth / faults / statistics, run the handler, write."""
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
            route, req.params = self.router.resolve(method, split.path)
            endpoint = route.name
            if not route.internal:
                if route.auth:
                    self._check_auth(req)
                fault = self.injector.decide(endpoint) if route.faults else None
                faulted = fault is not None
                self.stats.count(endpoint, faulted=faulted)
                if fault is not None:
                    raise fault
            response = route.handler(req)
        except EndpointNotFoundError as exc:
            self.unserved.add(exc.method, exc.path)
            logger.warning("the emulator does not serve %s %s", exc.method, exc.path)
            response = exc.to_response()
        except ApiError as exc:
            response = exc.to_response()
        except Exception as exc:  # a bug in the emulator: answer 500 rather than hang the client
            logger.exception("emulator error serving %s %s", method, handler.path)
            response = ApiError(500, "INTERNAL_ERROR", f"Emulator error: {exc!r}").to_response()
        duration_ms = (time.monotonic() - started) * 1000
        if self.record_requests:  # recorded before the answer goes out: a client never sees it missing
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
        logger.debug("%s %s -> %s (%.1f ms)", method, handler.path, response.status, duration_ms)
        _write(handler, method, response)
