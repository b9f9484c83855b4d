"""The HTTP server: a bounded worker pool, strict request parsing, JSON logs, graceful drain.

Why not ``http.server.ThreadingHTTPServer`` as is: it starts a thread per connection without limit,
answers parse errors of old-style requests without a status line, and logs to stderr as text. Here:

- connections are served by ``workers`` threads; beyond ``max_pending`` queued connections new ones
  get an immediate 503 (load shedding) instead of queueing without bound;
- request line ≤ 8 KiB and header section ≤ 32 KiB, else 400; only ``GET``/``HEAD`` (405 otherwise);
- a slow or idle client is dropped after ``idle_timeout`` seconds, so it cannot hold a worker;
- an exception in a handler is a logged 500 for that request, never a dead worker or process;
- :meth:`WebServer.drain` stops new work and waits for in-flight requests (SIGTERM).
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from .app import RecommendationService, Response, json_response
from .metrics import JsonLog

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
ALLOWED_METHODS = ("GET", "HEAD")
_REQUEST_LINE = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (/[^ ]*) HTTP/1\.([01])$")
INSTANCE_HEADER = "X-Instance-Id"


class _HeaderBudgetReader:
    """Wraps ``rfile`` while headers are parsed so the whole header section has a byte budget."""

    def __init__(self, raw: Any, budget: int) -> None:
        self._raw = raw
        self._remaining = budget

    def readline(self, size: int = -1) -> bytes:
        limit = self._remaining + 1 if size < 0 else min(size, self._remaining + 1)
        line: bytes = self._raw.readline(limit)
        self._remaining -= len(line)
        if self._remaining < 0:
            raise http.client.LineTooLong("header section")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class RequestHandler(http.server.BaseHTTPRequestHandler):
    """One connection: keep-alive HTTP/1.1, GET/HEAD only, every response logged as JSON."""

    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without TCP_NODELAY, Nagle + the client's delayed ACK add
    # ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server_version = "opex-webapp"
    sys_version = ""
    server: WebServer

    def version_string(self) -> str:
        """``Server`` header without the Python version."""
        return self.server_version

    def setup(self) -> None:
        """Apply the idle timeout before any read."""
        self.timeout = self.server.idle_timeout
        super().setup()
        self._started = time.monotonic()

    def handle_one_request(self) -> None:
        """Read, check and answer one request; any failure closes this connection only."""
        try:
            self.server.set_idle(self.connection, True)
            raw = self.rfile.readline(MAX_REQUEST_LINE + 1)
            for _ in range(4):  # RFC 9112 2.2: ignore empty lines before a request line
                if raw not in (b"\r\n", b"\n"):
                    break
                raw = self.rfile.readline(MAX_REQUEST_LINE + 1)
            self.server.set_idle(self.connection, False)
            self._started = time.monotonic()
            self.raw_requestline = raw
            if not raw:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self._dispatch()
            self.wfile.flush()
            if self.server.draining:
                self.close_connection = True
        except (TimeoutError, ConnectionError, OSError):
            # Idle or slow client, reset or vanished peer: drop this connection, keep the worker.
            self.close_connection = True

    def parse_request(self) -> bool:
        """Strict request line, bounded headers, allowed methods; sends the error itself on False."""
        self.command = ""
        self.request_version = "HTTP/1.1"  # so an error response always has a status line
        self.path = ""
        self.close_connection = True
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline = ""
            self.send_error(HTTPStatus.BAD_REQUEST, "request line too long")
            return False
        self.requestline = self.raw_requestline.decode("iso-8859-1").rstrip("\r\n")
        match = _REQUEST_LINE.match(self.requestline)
        if match is None:
            self.send_error(HTTPStatus.BAD_REQUEST, "malformed request line")
            return False
        raw_rfile = self.rfile
        self.rfile = _HeaderBudgetReader(raw_rfile, MAX_HEADER_BYTES)  # type: ignore[assignment]
        try:
            if not super().parse_request():
                return False
        finally:
            self.rfile = raw_rfile
        if self.command not in ALLOWED_METHODS:
            self.close_connection = True  # its body, if any, is not read: do not reuse the stream
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command[:32]} not allowed")
            return False
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a GET with a body: answer, then close rather than parse it
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error is a JSON body with our headers; oversized line/headers map to 400 (contract)."""
        if code in (HTTPStatus.REQUEST_URI_TOO_LONG, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE):
            code = HTTPStatus.BAD_REQUEST
        status = HTTPStatus(code)
        response = json_response(status, {"error": status.phrase, "detail": (message or status.phrase)[:200]})
        if status is HTTPStatus.METHOD_NOT_ALLOWED:
            response.headers["Allow"] = ", ".join(ALLOWED_METHODS)
        if status is HTTPStatus.BAD_REQUEST:
            self.close_connection = True
        self._respond(response)

    def _dispatch(self) -> None:
        try:
            response = self.server.app.handle(self.path)
        except Exception as error:  # a bug must cost one 500, not the worker or the process
            self.server.log.event(
                "handler_error",
                level="error",
                error=f"{type(error).__name__}: {error}"[:300],
                path=self.path[:200],
            )
            response = json_response(500, {"error": "Internal Server Error"}, reason="handler_error")
        self._respond(response)

    def _respond(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header(INSTANCE_HEADER, self.server.instance_id)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection or self.server.draining:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.server.log.request(
            method=self.command or None,
            path=self.path.split("?", 1)[0][:200] or None,
            status=response.status,
            latency_ms=(time.monotonic() - self._started) * 1000,
            source=response.source,
            dependency_error=response.dependency_error,
            reason=response.reason,
            client=self.client_address[0] if self.client_address else None,
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged as JSON by ``_respond``; silence the text log."""

    def log_message(self, format: str, *args: Any) -> None:
        """Route the base class's text messages to the JSON log."""
        self.server.log.event("http_server", level="warning", message=(format % args)[:300])


class WebServer(socketserver.TCPServer):
    """TCP server that hands each connection to a bounded pool and can drain.

    Args:
        address: (host, port); port 0 picks a free one (see ``server_address``).
        app: the application.
        log: the JSON log.
        instance_id: value of the ``X-Instance-Id`` header.
        workers: connection-serving threads.
        max_pending: accepted connections allowed to wait or run; more are shed with a 503.
        idle_timeout: seconds a connection may sit between or inside requests.
        listen_socket: an already bound and listening socket to serve on instead of binding
            ``address`` (a worker of :mod:`webapp.supervisor`, which shares it with the other
            workers). It is made non-blocking: when another process wins the race for a connection,
            ``accept`` fails at once instead of blocking the accept loop (and ``shutdown``).
    """

    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        app: RecommendationService,
        *,
        log: JsonLog,
        instance_id: str,
        workers: int = 64,
        max_pending: int = 256,
        idle_timeout: float = 5.0,
        listen_socket: socket.socket | None = None,
    ) -> None:
        # Everything server_close() touches exists before the bind, which may fail (port in use).
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http")
        if listen_socket is None:
            super().__init__(address, RequestHandler)
        else:
            super().__init__(address, RequestHandler, bind_and_activate=False)
            self.socket.close()  # the unbound socket TCPServer made: serve on the inherited one
            self.socket = listen_socket
            self.socket.setblocking(False)
            self.server_address = listen_socket.getsockname()
        self.app = app
        self.log = log
        self.instance_id = instance_id
        self.idle_timeout = idle_timeout
        self.max_pending = max(max_pending, workers)
        self.draining = False
        self._lock = threading.Lock()
        self._pending = 0
        self._idle: dict[socket.socket, bool] = {}
        self._all_done = threading.Condition(self._lock)

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Queue the connection for a worker, or shed it when too many are waiting."""
        with self._lock:
            shed = self._pending >= self.max_pending or self.draining
            if not shed:
                self._pending += 1
                self._idle[request] = False
        if shed:
            self._shed(request)
            return
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception as error:  # never let one connection kill the worker thread
            self.log.event("connection_error", level="error", error=f"{type(error).__name__}: {error}"[:300])
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._pending -= 1
                self._idle.pop(request, None)
                self._all_done.notify_all()

    def _shed(self, request: socket.socket) -> None:
        body = json.dumps({"error": "Service Unavailable", "detail": "overloaded or shutting down"}).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{INSTANCE_HEADER}: {self.instance_id}\r\n"
            "Retry-After: 1\r\nConnection: close\r\n\r\n"
        ).encode("latin-1")
        try:
            request.settimeout(0.5)
            request.sendall(head + body)
        except OSError:
            pass  # the client is gone; nothing to tell it
        finally:
            self.shutdown_request(request)
        self.log.request(method=None, path=None, status=503, latency_ms=0.0, reason="shed")

    def set_idle(self, connection: socket.socket, idle: bool) -> None:
        """Mark a connection as waiting for its next request (may be closed on drain) or busy."""
        with self._lock:
            if connection in self._idle:
                self._idle[connection] = idle
            close_now = idle and self.draining
        if close_now:
            _shutdown_read(connection)

    def drain(self, timeout: float) -> bool:
        """Stop taking work, close idle keep-alive connections, wait for in-flight requests.

        Call after ``shutdown()`` (no more accepts). Returns True when every request finished within
        ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self.draining = True
            idle = [connection for connection, is_idle in self._idle.items() if is_idle]
        for connection in idle:
            _shutdown_read(connection)
        with self._lock:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._all_done.wait(remaining)
        return True

    def in_flight(self) -> int:
        """Connections being served or queued."""
        with self._lock:
            return self._pending

    def server_close(self) -> None:
        """Close the listening socket and release the pool (without waiting for stuck threads)."""
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _shutdown_read(connection: socket.socket) -> None:
    # Wakes a worker blocked reading the next request: it sees EOF and ends the connection.
    try:
        connection.shutdown(socket.SHUT_RD)
    except OSError:
        pass  # already closed by the peer
