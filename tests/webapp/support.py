"""Test doubles that run for real on 127.0.0.1: the service process, a black hole, a fault proxy, an IMDS.

Everything here is a real socket: the service under test is the real ``python -m webapp`` process,
talking to a real moto server, optionally through :class:`FaultProxy` (which forwards to moto and
injects DynamoDB/SSM errors) or to :class:`BlackHole` (accepts TCP connections, never answers).
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opex_cdk.local.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-2"


# --------------------------------------------------------------------------------------------------
# HTTP client helpers
# --------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP exchange as the client saw it."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
    connection: http.client.HTTPConnection | None = None,
) -> Reply:
    """One request (on ``connection`` when given, to reuse it), returning any status without raising."""
    own = connection is None
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        payload = response.read()
        return Reply(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            payload,
            time.monotonic() - started,
        )
    finally:
        if own:
            conn.close()


def raw_exchange(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close, return everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may already have closed on us: read what it sent
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(raw: bytes) -> int:
    """The status code of a raw HTTP/1.x response."""
    first = raw.split(b"\r\n", 1)[0].decode("latin-1")
    parts = first.split(" ")
    assert parts[0] in ("HTTP/1.1", "HTTP/1.0"), f"not an HTTP response: {raw[:80]!r}"
    return int(parts[1])


def percentile(values: Iterable[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    assert ordered, "no values"
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


# --------------------------------------------------------------------------------------------------
# The service under test
# --------------------------------------------------------------------------------------------------


def base_env(endpoint_url: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment: no real AWS settings leak in; the endpoint is always local."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    env.update(extra or {})
    return {key: value for key, value in env.items() if value is not None}


class WebappProcess:
    """``python -m webapp`` as a child process on 127.0.0.1 with a JSON log file.

    Args:
        log_path: the ``--log-file``.
        args: extra command-line arguments.
        env: the process environment (see :func:`base_env`).
        instance_id: ``--instance-id``; None to let the service probe IMDS.
    """

    def __init__(
        self,
        log_path: Path,
        args: Iterable[str] = (),
        *,
        env: Mapping[str, str],
        instance_id: str | None = "i-test",
        availability_zone: str | None = "us-east-2a",
    ) -> None:
        self.log_path = log_path
        self.stderr_path = log_path.with_suffix(".stderr")
        command = [sys.executable, "-m", "webapp", "--host", "127.0.0.1", "--port", "0"]
        # One process (no supervisor): these tests check per-process behaviour (breaker, caches,
        # drain); tests/webapp/test_processes.py overrides it (argparse: the last one wins).
        command += ["--region", REGION, "--log-file", str(log_path), "--processes", "1"]
        if instance_id is not None:
            command += ["--instance-id", instance_id]
        if availability_zone is not None:
            command += ["--availability-zone", availability_zone]
        command += list(args)
        self.command = command
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
            )
        self.port = 0

    def wait_started(self, timeout: float = 60.0) -> WebappProcess:
        """Block until the ``started`` event is logged; learn the port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events("started"):
                self.port = int(event["port"])
                return self
            if self.process.poll() is not None:
                raise AssertionError(f"webapp exited with {self.process.returncode}: {self.stderr()}")
            time.sleep(0.02)
        raise AssertionError(f"webapp did not start in {timeout} s: {self.stderr()}")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every JSON line of the log so far (optionally only one event type)."""
        if not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            record = json.loads(line)  # every line must be JSON: this is part of the contract
            if name is None or record.get("event") == name:
                found.append(record)
        return found

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def get(self, path: str = "/", **kwargs: Any) -> Reply:
        return request(self.port, path, **kwargs)

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it will not go; returns the exit code."""
        return stop_process(self.process, 15)


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> float:
    """Poll ``predicate`` until truthy; return the seconds it took, or fail."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


# --------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------


class BlackHole:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(256)
        self.port = self._listener.getsockname()[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(connection)  # held open, never read, never answered

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for connection in self._held:
            connection.close()


_FAULT_BODIES = {
    "throttle": {
        "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
        "message": "Rate of requests exceeds the allowed throughput.",
    },
    "deny": {
        "__type": "com.amazon.coral.service#AccessDeniedException",
        "message": "User is not authorized to perform: dynamodb:GetItem",
    },
}


class FaultProxy:
    """HTTP proxy in front of moto that can fail, delay or swallow chosen AWS calls.

    ``fault`` is one of ``pass``, ``throttle`` (400 ThrottlingException), ``deny`` (400
    AccessDeniedException), ``garbage`` (200 with a body that is not JSON), ``delay`` (answer after
    ``delay`` seconds) or ``blackhole`` (read the request, never answer). ``targets`` limits the fault
    to calls whose ``X-Amz-Target`` starts with one of them (e.g. ``DynamoDB_``); empty means all.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.fault = "pass"
        self.delay = 0.0
        self.targets: tuple[str, ...] = ()
        self.calls: Counter[str] = Counter()
        self.connections = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                proxy._handle(self)

            do_GET = do_POST

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set(self, fault: str, *, targets: tuple[str, ...] = (), delay: float = 0.0) -> None:
        """Switch the fault (releasing requests held by a previous black hole)."""
        with self._lock:
            self.fault, self.targets, self.delay = fault, targets, delay
            self._release.set()
            self._release = threading.Event()

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.connections = 0

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", "0") or 0)
        body = handler.rfile.read(length) if length else b""
        target = handler.headers.get("X-Amz-Target", "")
        with self._lock:
            self.calls[target] += 1
            fault, targets, delay, release = self.fault, self.targets, self.delay, self._release
        applies = fault != "pass" and (not targets or target.startswith(targets))
        if applies and fault == "blackhole":
            release.wait(timeout=30)
            handler.close_connection = True
            return
        if applies and fault == "delay":
            time.sleep(delay)
        if applies and fault in _FAULT_BODIES:
            self._reply(handler, 400, json.dumps(_FAULT_BODIES[fault]).encode())
            return
        if applies and fault == "garbage":
            self._reply(handler, 200, b"<html>this is not the API you are looking for</html>")
            return
        connection = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection", "keep-alive")}
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            handler.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in (
                    "connection",
                    "transfer-encoding",
                    "content-length",
                    "keep-alive",
                    "date",
                    "server",
                ):
                    handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        finally:
            connection.close()

    @staticmethod
    def _reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/x-amz-json-1.0")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


class FakeImds:
    """IMDSv2 on 127.0.0.1: a token from ``PUT /latest/api/token``, metadata only with that token."""

    TOKEN = "fake-imds-token"

    def __init__(self, metadata: Mapping[str, str]) -> None:
        self.metadata = dict(metadata)
        self.hits: Counter[str] = Counter()
        imds = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self) -> None:
                imds.hits[f"PUT {self.path}"] += 1
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._send(200, FakeImds.TOKEN.encode())
                else:
                    self._send(400, b"")

            def do_GET(self) -> None:
                imds.hits[f"GET {self.path}"] += 1
                if self.headers.get("X-aws-ec2-metadata-token") != FakeImds.TOKEN:
                    self._send(401, b"")  # IMDSv2 only: no token, no metadata
                    return
                key = self.path.removeprefix("/latest/meta-data/")
                if key in imds.metadata:
                    self._send(200, imds.metadata[key].encode())
                else:
                    self._send(404, b"")

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
