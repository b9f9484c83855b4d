"""An HTTP proxy between one service process and the moto server that can break that host's AWS calls.

Each "instance" reaches AWS through its own proxy (``AWS_ENDPOINT_URL``), so a fault can hit one host
only (the workshop's swapped instance role) or every host (a shared dependency failing). Faults:

- ``pass``: forward to moto unchanged;
- ``blackhole``: read the request and never answer (the connection stays open until the client gives up);
- ``reset``: read the request and close the connection with a TCP reset;
- ``latency``: forward after ``latency_seconds``;
- ``access-denied``: answer as DynamoDB/SSM do for credentials without permission (400,
  ``AccessDeniedException`` JSON body), never reaching moto.

The proxy runs as threads of the harness process on 127.0.0.1; :meth:`FaultProxy.close` stops them.
"""

from __future__ import annotations

import http.client
import http.server
import json
import select
import socket
import struct
import threading
import time
from collections import Counter
from typing import Any

FAULTS = ("pass", "blackhole", "reset", "latency", "access-denied")

#: What DynamoDB (awsJson1.0) and SSM (awsJson1.1) return when the caller's role lacks the permission.
ACCESS_DENIED_STATUS = 400
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server"})


def access_denied_body(target: str) -> bytes:
    """The AccessDeniedException body for the ``X-Amz-Target`` operation (``DynamoDB_20120810.GetItem``)."""
    service, _, operation = target.partition(".")
    action = ("dynamodb:" if service.startswith("DynamoDB") else "ssm:") + (operation or "*")
    return json.dumps(
        {
            "__type": "com.amazon.coral.service#AccessDeniedException",
            "message": f"User: arn:aws:sts::123456789012:assumed-role/no-access/i-local is not authorized to "
            f"perform: {action} because no identity-based policy allows the {action} action",
        }
    ).encode()


class FaultProxy:
    """A fault-injecting HTTP proxy on 127.0.0.1 in front of ``upstream`` (``http://host:port``).

    Args:
        upstream: the moto server's endpoint URL.
        name: label for logs and the report. Default: ``proxy``.
        blackhole_limit_seconds: the longest a black-holed request is held before its connection is
            closed, so a client without a timeout cannot pin a thread forever. Default: 60.

    Attributes:
        endpoint_url: where the service should send its AWS calls.
        calls: requests seen, by fault applied (``pass``, ``access-denied``, ...).
    """

    def __init__(self, upstream: str, *, name: str = "proxy", blackhole_limit_seconds: float = 60.0) -> None:
        if not upstream.startswith("http://"):
            raise ValueError(f"upstream: {upstream!r} is not allowed; expected http://host:port")
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port or 80))
        self.name = name
        self.blackhole_limit_seconds = blackhole_limit_seconds
        self.calls: Counter[str] = Counter()
        self._fault = "pass"
        self._latency = 0.0
        self._lock = threading.Lock()
        self._changed = threading.Event()  # set (and replaced) on every fault change: releases held requests
        self._closing = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the harness records what matters."""

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fault-proxy-{name}", daemon=True
        )
        self._thread.start()

    @property
    def fault(self) -> str:
        """The fault applied now."""
        return self._fault

    def set_fault(self, fault: str, *, latency_seconds: float = 0.0) -> None:
        """Switch the fault; requests held by a black hole are released (their connections closed)."""
        if fault not in FAULTS:
            raise ValueError(f"fault: {fault!r} is not allowed; allowed: {', '.join(FAULTS)}")
        if latency_seconds < 0:
            raise ValueError(f"latency_seconds: {latency_seconds} is not allowed; allowed: >= 0")
        with self._lock:
            self._fault, self._latency = fault, latency_seconds
            changed, self._changed = self._changed, threading.Event()
        changed.set()

    def close(self) -> None:
        """Stop serving and release every held request. Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._changed.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0") or 0)
        body = handler.rfile.read(length) if length else b""
        target = handler.headers.get("X-Amz-Target", "")
        with self._lock:
            fault, latency, changed = self._fault, self._latency, self._changed
            self.calls[fault] += 1
        if fault == "blackhole":
            self._hold(handler.connection, changed)
            handler.close_connection = True
            return
        if fault == "reset":
            # SO_LINGER with a zero timeout turns close() into a TCP RST: "connection reset by peer".
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            return
        if fault == "access-denied":
            self._reply(handler, ACCESS_DENIED_STATUS, access_denied_body(target))
            return
        if fault == "latency" and latency > 0:
            time.sleep(latency)
        self._forward(handler, body)

    def _hold(self, connection: socket.socket, changed: threading.Event) -> None:
        """Never answer: wait until the fault changes, the client hangs up, or the hold limit passes."""
        deadline = time.monotonic() + self.blackhole_limit_seconds
        while not changed.is_set() and time.monotonic() < deadline:
            readable, _, _ = select.select([connection], [], [], 0.2)
            if readable:
                try:
                    if not connection.recv(1, socket.MSG_PEEK):
                        return  # the client gave up (its read timeout): free this thread
                except OSError:
                    return

    def _forward(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection", "keep-alive")}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        except OSError:
            # moto itself is unreachable: tell the client the way an AWS front end would.
            self._reply(handler, 503, b'{"__type":"ServiceUnavailable","message":"upstream unavailable"}')
            return
        finally:
            upstream.close()
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(payload)

    @staticmethod
    def _reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/x-amz-json-1.0")
        handler.send_header("x-amzn-RequestId", "gameday-fault-proxy")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
