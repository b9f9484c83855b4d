"""The fault proxy forwards, black-holes, resets, delays and denies, per proxy (per host)."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from gameday.fault_proxy import FaultProxy


@pytest.fixture
def upstream() -> Iterator[str]:
    """A stand-in for moto that echoes the operation it was asked for."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.dumps({"target": self.headers.get("X-Amz-Target"), "got": self.rfile.read(length).decode()})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: str) -> Iterator[FaultProxy]:
    with FaultProxy(upstream, blackhole_limit_seconds=5) as p:
        yield p


def _call(proxy: FaultProxy, target: str = "DynamoDB_20120810.GetItem", timeout: float = 2.0) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    try:
        conn.request("POST", "/", body=b"{}", headers={"X-Amz-Target": target})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_pass_forwards_to_the_upstream(proxy: FaultProxy) -> None:
    assert _call(proxy) == (200, {"target": "DynamoDB_20120810.GetItem", "got": "{}"})
    assert proxy.calls["pass"] == 1


def test_access_denied_answers_like_aws_without_reaching_the_upstream(proxy: FaultProxy) -> None:
    proxy.set_fault("access-denied")
    status, body = _call(proxy, "AmazonSSM.GetParameter")
    assert status == 400
    assert body["__type"].endswith("#AccessDeniedException")
    assert "ssm:GetParameter" in body["message"]
    status, body = _call(proxy)
    assert "dynamodb:GetItem" in body["message"]
    assert proxy.calls == {"access-denied": 2}


def test_the_aws_sdk_sees_an_access_denied_error(proxy: FaultProxy) -> None:
    import boto3
    from botocore.exceptions import ClientError

    proxy.set_fault("access-denied")
    client = boto3.client(
        "dynamodb", endpoint_url=proxy.endpoint_url, region_name="us-east-2",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    with pytest.raises(ClientError) as raised:
        client.get_item(TableName="t", Key={"k": {"S": "v"}})
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"


def test_blackhole_never_answers_and_releases_on_change(proxy: FaultProxy) -> None:
    proxy.set_fault("blackhole")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _call(proxy, timeout=0.5)
    assert 0.45 < time.monotonic() - started < 1.5
    # A held request is released (its connection closed) as soon as the fault changes.
    result: list[BaseException] = []

    def held() -> None:
        try:
            _call(proxy, timeout=5)
        except (OSError, http.client.HTTPException) as error:
            result.append(error)

    thread = threading.Thread(target=held)
    thread.start()
    time.sleep(0.3)
    proxy.set_fault("pass")
    thread.join(timeout=3)
    assert not thread.is_alive() and result  # closed without an answer, well before the 5 s timeout
    assert _call(proxy)[0] == 200


def test_reset_closes_the_connection_with_a_reset(proxy: FaultProxy) -> None:
    proxy.set_fault("reset")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        _call(proxy)


def test_latency_delays_the_answer(proxy: FaultProxy) -> None:
    proxy.set_fault("latency", latency_seconds=0.3)
    started = time.monotonic()
    assert _call(proxy)[0] == 200
    assert time.monotonic() - started >= 0.3


def test_faults_are_per_proxy(upstream: str) -> None:
    with FaultProxy(upstream) as bad, FaultProxy(upstream) as good:
        bad.set_fault("access-denied")
        assert _call(bad)[0] == 400
        assert _call(good)[0] == 200


def test_bad_fault_and_upstream_are_rejected(proxy: FaultProxy, upstream: str) -> None:
    with pytest.raises(ValueError, match="fault: 'flaky' is not allowed; allowed: pass, blackhole"):
        proxy.set_fault("flaky")
    with pytest.raises(ValueError, match="latency_seconds"):
        proxy.set_fault("latency", latency_seconds=-1)
    with pytest.raises(ValueError, match="expected http://host:port"):
        FaultProxy("https://example.com")


def test_close_frees_the_port(upstream: str) -> None:
    proxy = FaultProxy(upstream)
    port = proxy.port
    proxy.close()
    proxy.close()  # idempotent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # raises EADDRINUSE if the proxy still held it
        assert sock.getsockname() == ("127.0.0.1", port)
