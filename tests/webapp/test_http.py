"""The healthy service over real HTTP: the workshop's step 1, the response contract, the logs and
metrics, and every malformed thing a client can send (answered, never fatal)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opex_cdk.local import MotoServer
from opex_cdk.seed_data import USERS
from tests.webapp.conftest import SpawnWebapp
from tests.webapp.support import FaultProxy, WebappProcess, raw_exchange, request, status_of

pytestmark = pytest.mark.xdist_group("webapp-http")


@pytest.fixture(scope="module")
def service(moto: MotoServer, spawn: SpawnWebapp) -> WebappProcess:
    return spawn("healthy", moto.endpoint_url, instance_id="i-0healthy", availability_zone="us-east-2c")


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> FaultProxy:
    proxy = FaultProxy(moto.endpoint_url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def proxied(proxy: FaultProxy, spawn: SpawnWebapp) -> WebappProcess:
    return spawn("proxied-http", proxy.endpoint_url, "--dependency-budget", "1.0", "--healthcheck-cache", "0.5")


# ------------------------------------------------------------------------------------ workshop step 1


@pytest.mark.parametrize(("user_id", "name", "show"), USERS)
def test_step1_page_is_personalized(service: WebappProcess, user_id: int, name: str, show: str) -> None:
    reply = service.get(f"/?user={user_id}")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert reply.headers["x-recommendation-source"] == "dependency"
    assert reply.headers["x-instance-id"] == "i-0healthy"
    assert "What to watch next" in reply.text
    assert f'<b class="user">{name}</b>' in reply.text and f'<b class="show">{show}</b>' in reply.text
    assert "i-0healthy" in reply.text and "us-east-2c" in reply.text and "running outside AWS" in reply.text


def test_step1_random_user_from_1_to_4(service: WebappProcess) -> None:
    names = set()
    for _ in range(40):
        reply = service.get("/")
        assert reply.status == 200 and reply.headers["x-recommendation-source"] == "dependency"
        names.update(name for _, name, _ in USERS if f'<b class="user">{name}</b>' in reply.text)
    assert len(names) >= 3  # 40 draws over 4 users: missing two is a 1-in-10^11 event


def test_step1_deep_healthcheck_is_healthy(service: WebappProcess) -> None:
    reply = service.get("/healthcheck")
    assert reply.status == 200
    body = reply.json()
    assert body["status"] == "healthy" and body["kind"] == "ok" and body["instance"] == "i-0healthy"
    assert reply.headers["x-instance-id"] == "i-0healthy"
    assert "x-recommendation-source" not in reply.headers


def test_head_answers_headers_without_a_body(service: WebappProcess) -> None:
    reply = service.get("/", method="HEAD")
    assert reply.status == 200 and reply.body == b""
    assert int(reply.headers["content-length"]) > 0
    assert reply.headers["x-recommendation-source"] == "dependency"
    assert service.get("/healthcheck", method="HEAD").status == 200


def test_keep_alive_serves_many_requests_on_one_connection(service: WebappProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    try:
        service.get("/", connection=connection)
        sock = connection.sock
        for path in ("/", "/healthcheck", "/missing", "/?user=1"):
            reply = service.get(path, connection=connection)
            assert reply.status in (200, 404)
            assert connection.sock is sock  # not reconnected
    finally:
        connection.close()


# ------------------------------------------------------------------------------------ bad requests


@pytest.mark.parametrize("path", ["/nope", "/healthcheck/extra", "/index.html", "/HEALTHCHECK", "/%00"])
def test_unknown_paths_are_404(service: WebappProcess, path: str) -> None:
    reply = service.get(path)
    assert reply.status == 404
    assert reply.json()["error"] == "Not Found"
    assert reply.headers["x-instance-id"] == "i-0healthy"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"])
def test_other_methods_are_405(service: WebappProcess, method: str) -> None:
    reply = service.get("/", method=method, body=b"x=1" if method in ("POST", "PUT", "PATCH") else None)
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert reply.headers["x-instance-id"] == "i-0healthy"


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",  # HTTP/0.9
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / FOO/1.1\r\n\r\n",
        b"GET noslash HTTP/1.1\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"\x00\x01\x02\xff\r\n\r\n",
        b"G\xc3\xa9T / HTTP/1.1\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",  # request line over 8 KiB
        b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",  # one header line over 64 KiB
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",  # 150 headers
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 7000) for i in range(6)) + b"\r\n",
    ],
    ids=[
        "one-word",
        "http-0.9",
        "http-2",
        "bad-protocol",
        "no-slash",
        "absolute-form",
        "double-space",
        "four-words",
        "binary",
        "non-ascii-method",
        "long-request-line",
        "long-header-line",
        "too-many-headers",
        "header-section-over-32k",
    ],
)
def test_malformed_or_oversized_requests_are_400(service: WebappProcess, raw: bytes) -> None:
    answer = raw_exchange(service.port, raw)
    assert status_of(answer) == 400
    assert b"X-Instance-Id: i-0healthy" in answer
    assert b"Connection: close" in answer
    assert service.get("/healthcheck").status == 200  # and the server is fine


def test_invalid_user_parameter_is_400(service: WebappProcess) -> None:
    for query in ("user=0", "user=5", "user=abc", "user=-1", "user=1.5"):
        reply = service.get(f"/?{query}")
        assert reply.status == 400, query
        assert "user must be" in reply.json()["detail"]


def test_get_with_a_body_is_answered_and_the_connection_closed(service: WebappProcess) -> None:
    answer = raw_exchange(service.port, b"GET /healthcheck HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert status_of(answer) == 200 and b"Connection: close" in answer


@given(
    st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda method, target, version, header: b"%s %s %s\r\n%s\r\n\r\n" % (method, target, version, header),
            st.sampled_from([b"GET", b"HEAD", b"POST", b"get", b"", b"G ET"]),
            st.binary(max_size=40),
            st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1", b"HTTP/9.9", b"", b"HTTP/1.1\r\n"]),
            st.binary(max_size=80),
        ),
    )
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_nothing_a_client_sends_crashes_the_server(service: WebappProcess, data: bytes) -> None:
    answer = raw_exchange(service.port, data, timeout=8)
    if answer:
        assert status_of(answer) in (200, 400, 404, 405)
    assert service.process.poll() is None


def test_a_slow_client_does_not_block_others(service: WebappProcess) -> None:
    slow = socket.create_connection(("127.0.0.1", service.port))
    try:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # ...and never finishes its headers
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: service.get("/?user=2"), range(16)))
        assert all(reply.status == 200 for reply in replies)
        assert time.monotonic() - started < 2.0
    finally:
        slow.close()


def test_service_never_logged_an_unhandled_error(service: WebappProcess) -> None:
    assert service.events("handler_error") == [] and service.events("connection_error") == []
    assert service.process.poll() is None
    assert "Traceback" not in service.stderr()


# ------------------------------------------------------------------------------------ logs and metrics


def test_every_request_is_one_json_line_with_emf(service: WebappProcess) -> None:
    service.get("/?user=3")
    service.get("/nope")
    records = service.events("request")
    page = next(r for r in reversed(records) if r["path"] == "/" and r["status"] == 200)
    missing = next(r for r in reversed(records) if r["path"] == "/nope")
    for record in (page, missing):
        assert record["instance"] == "i-0healthy" and record["az"] == "us-east-2c"
        assert isinstance(record["latency_ms"], float) and record["latency_ms"] >= 0
        directive = record["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "OpexCdk/RecommendationService"
        assert directive["Dimensions"] == [["Service"]] and record["Service"] == "RecommendationService"
        assert record["Requests"] == 1 and record["Latency"] == record["latency_ms"]
        assert isinstance(record["_aws"]["Timestamp"], int)
    assert page["source"] == "dependency" and page["Status2xx"] == 1 and page["FallbackServed"] == 0
    assert page["DependencyErrors"] == 0
    assert missing["Status4xx"] == 1 and missing["Status2xx"] == 0 and missing["source"] is None
    bad = [r for r in records if r["status"] == 400]
    assert bad and all(r["Status4xx"] == 1 for r in bad)


# ------------------------------------------------------------------------------------ concurrency


def test_requests_are_served_concurrently(proxied: WebappProcess, proxy: FaultProxy) -> None:
    proxy.set("delay", targets=("DynamoDB_",), delay=0.3)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda _: proxied.get("/"), range(16)))
        elapsed = time.monotonic() - started
    finally:
        proxy.set("pass")
    assert all(r.status == 200 and r.headers["x-recommendation-source"] == "dependency" for r in replies)
    assert elapsed < 1.5  # one at a time would take 16 x 0.3 s = 4.8 s


def test_clients_are_created_once_and_connections_reused(proxied: WebappProcess, proxy: FaultProxy) -> None:
    proxied.get("/")
    proxy.reset_counts()
    started = time.monotonic()
    for _ in range(40):
        assert proxied.get("/").headers["x-recommendation-source"] == "dependency"
    elapsed = time.monotonic() - started
    # The workshop's server built new clients per request: 40 requests, 40+ new connections.
    assert proxy.calls["DynamoDB_20120810.GetItem"] == 40
    assert proxy.connections <= 2  # one pooled connection per client (SSM, DynamoDB)
    # The flag is cached for 2 s, not read per request.
    assert proxy.calls["AmazonSSM.GetParameter"] <= 1 + elapsed / 2
    assert proxied.events("clients_rebuilt") == []


def test_concurrent_health_checks_cost_one_dependency_call(proxied: WebappProcess, proxy: FaultProxy) -> None:
    time.sleep(0.55)  # let any cached result expire (cache 0.5 s here, 2 s by default)
    proxy.reset_counts()
    barrier = threading.Barrier(20)

    def check(_: int) -> int:
        barrier.wait()
        return request(proxied.port, "/healthcheck").status

    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(check, range(20)))
    assert statuses == [200] * 20
    # One shared check (two if the burst outlived the 0.5 s cache on a busy machine), never 20.
    checks = proxy.calls["DynamoDB_20120810.GetItem"]
    assert 1 <= checks <= 2 and proxy.calls["AmazonSSM.GetParameter"] == checks
    time.sleep(0.55)
    proxied.get("/healthcheck")
    assert proxy.calls["DynamoDB_20120810.GetItem"] == checks + 1  # the cache expired: checked again
