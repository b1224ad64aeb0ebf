"""The emulator's HTTP front: the loopback server, and what happens to every request before and after
its route's handler (authentication, fault injection, statistics, the request log, unserved endpoints).

It knows nothing about DBFS, Files or Jobs: the emulated APIs add their routes to its :class:`Router`.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ._faults import Fault, FaultInjector, RequestRecord, RequestStats
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

    def parse_request(self) -> bool:
        # when the request line arrived (before headers and body): what the request log records
        self.arrived = time.time()
        return super().parse_request()

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


def _read_part_of_body(handler: BaseHTTPRequestHandler) -> None:
    """Read about half of the request body (what arrived before a reset)."""
    try:
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    try:
        if length > 1:
            handler.rfile.read(length // 2)
        elif "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
            handler.rfile.readline()
    except OSError:
        pass


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Abort the connection with a TCP RST (not an orderly FIN): ``SO_LINGER`` 0, then close."""
    handler.close_connection = True
    sock = handler.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        handler.rfile.close()  # drop the reader's reference, so that close() closes the socket now
        sock.close()
    except OSError:
        pass


def _prepare(method: str, response: Response) -> tuple[dict[str, str], bytes]:
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
    return headers, body


def _write(handler: BaseHTTPRequestHandler, method: str, response: Response) -> None:
    headers, body = _prepare(method, response)
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


def _write_part_and_reset(
    handler: BaseHTTPRequestHandler, method: str, response: Response, cut: float
) -> None:
    """Send the first ``cut`` of the answer's bytes (status line, headers, body), then reset."""
    headers, body = _prepare(method, response)
    reason = handler.responses.get(response.status, ("",))[0]
    lines = [
        f"{handler.protocol_version} {response.status} {reason}",
        f"Server: {handler.version_string()}",
        f"Date: {handler.date_time_string()}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    try:
        handler.wfile.write(raw[: int(len(raw) * min(max(cut, 0.0), 0.999))])
        handler.wfile.flush()
    except OSError:
        pass
    _reset(handler)


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

    def _check_auth(self, headers: dict[str, str]) -> None:
        if not self.require_auth:
            return
        header = headers.get("authorization") or ""
        scheme, _, credential = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not credential.strip():
            raise ApiError(401, "UNAUTHENTICATED", _UNAUTHENTICATED)
        if self.token is not None and credential.strip() != self.token:
            raise ApiError(403, "PERMISSION_DENIED", "Invalid access token.")

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one request: route it, check auth, decide its fault (before reading the body, so a
        fault can reset the connection in the middle of it), run the handler, write the answer."""
        started = time.monotonic()
        arrived = float(getattr(handler, "arrived", None) or time.time())
        method = handler.command.upper()
        split = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request_line = f"{method} {handler.path}"
        endpoint: str | None = None
        fault: Fault | None = None
        early: ApiError | None = None  # an answer decided before the body was read
        route = None
        try:
            route, params = self.router.resolve(method, split.path)
            endpoint = route.name
            if not route.internal:
                if route.auth:
                    self._check_auth(headers)
                fault = self.injector.decide(endpoint, unquote(handler.path)) if route.faults else None
                self.stats.count(endpoint, faulted=fault is not None, kind=fault.kind if fault else None)
        except EndpointNotFoundError as exc:
            self.unserved.add(exc.method, exc.path)
            logger.warning("the emulator does not serve %s %s", exc.method, exc.path)
            early = exc
        except ApiError as exc:
            early = exc
        if fault is not None and fault.kind == "reset_request":
            _read_part_of_body(handler)
            self._record(method, split.path, query, endpoint, 0, fault, started, arrived)
            logger.debug("%s %s -> connection reset in the request body (injected)", method, handler.path)
            _reset(handler)
            return
        try:
            body = _read_body(handler)
        except (ValueError, OSError):
            handler.close_connection = True
            body = b""
        req = Request(method=method, raw_path=split.path, query=query, headers=headers, body=body)
        if early is not None:
            response = early.to_response()
        else:
            assert route is not None
            req.params = params
            try:
                if fault is not None:
                    fault.before(headers, request_line)
                response = route.handler(req)
            except ApiError as exc:
                response = exc.to_response()
            except Exception as exc:  # a bug in the emulator: answer 500 rather than hang the client
                logger.exception("emulator error serving %s %s", method, handler.path)
                response = ApiError(500, "INTERNAL_ERROR", f"Emulator error: {exc!r}").to_response()
            if fault is not None and fault.applies_request:
                response = fault.after(response, headers, request_line)
        # recorded before the answer goes out: a client never sees it missing
        self._record(method, split.path, query, endpoint, response.status, fault, started, arrived)
        logger.debug(
            "%s %s -> %s (%.1f ms)",
            method,
            handler.path,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        if fault is not None and fault.kind == "reset_response":
            _write_part_and_reset(handler, method, response, fault.cut)
        else:
            _write(handler, method, response)

    def _record(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        endpoint: str | None,
        status: int,
        fault: Fault | None,
        started: float,
        arrived: float,
    ) -> None:
        if not self.record_requests:
            return
        record = RequestRecord(
            method=method,
            path=unquote(path),
            query=query,
            endpoint=endpoint,
            status=status,
            faulted=fault is not None,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            fault=fault.kind if fault is not None else None,
            at=arrived,
        )
        with self._records_lock:
            self._records.append(record)
