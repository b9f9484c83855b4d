"""Start-up and shutdown: instance metadata found once, graceful drain on SIGTERM/SIGINT, a port in
use, load shedding, and EMF sent to the CloudWatch agent's UDP listener."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from opex_cdk.local import MotoServer
from tests.webapp.conftest import SpawnWebapp
from tests.webapp.support import (
    BlackHole,
    FakeImds,
    FaultProxy,
    Reply,
    WebappProcess,
    raw_exchange,
    request,
    status_of,
    wait_until,
)

pytestmark = pytest.mark.xdist_group("webapp-lifecycle")


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> FaultProxy:
    proxy = FaultProxy(moto.endpoint_url)
    yield proxy
    proxy.close()


@dataclass
class Doubles:
    imds: FakeImds
    no_imds: BlackHole
    agent: socket.socket


@pytest.fixture(scope="module")
def doubles() -> Iterator[Doubles]:
    imds = FakeImds(
        {"instance-id": "i-0imds", "placement/availability-zone": "us-east-2b", "instance-type": "t3.micro"}
    )
    no_imds = BlackHole()  # an IMDS that never answers: the probe must give up after ~0.3 s
    agent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the CloudWatch agent's EMF listener
    agent.bind(("127.0.0.1", 0))
    agent.settimeout(5)
    yield Doubles(imds, no_imds, agent)
    imds.close()
    no_imds.close()
    agent.close()


@pytest.fixture(scope="module")
def services(moto: MotoServer, proxy: FaultProxy, doubles: Doubles, spawn: SpawnWebapp) -> dict[str, WebappProcess]:
    """Started together, each waited for by the test that uses it (start-up is mostly imports)."""
    url = moto.endpoint_url
    with_imds = {"AWS_EC2_METADATA_DISABLED": "false"}
    unknown = {"instance_id": None, "availability_zone": None}
    return {
        "drain": spawn("drain", proxy.endpoint_url, "--dependency-budget", "1.0", wait=False),
        "idle-SIGTERM": spawn("idle-term", url, "--idle-timeout", "30", wait=False),
        "idle-SIGINT": spawn("idle-int", url, "--idle-timeout", "30", wait=False),
        "imds": spawn(
            "imds",
            url,
            env={**with_imds, "AWS_EC2_METADATA_SERVICE_ENDPOINT": doubles.imds.endpoint_url},
            wait=False,
            **unknown,
        ),
        "no-imds": spawn(
            "no-imds",
            url,
            env={**with_imds, "AWS_EC2_METADATA_SERVICE_ENDPOINT": doubles.no_imds.endpoint_url},
            wait=False,
            **unknown,
        ),
        "shed": spawn("shed", url, "--workers", "1", "--max-pending", "1", wait=False),
        "emf-udp": spawn(
            "emf-udp", url, "--emf-endpoint", f"udp://127.0.0.1:{doubles.agent.getsockname()[1]}", wait=False
        ),
    }


def test_sigterm_drains_in_flight_requests_then_exits_cleanly(
    proxy: FaultProxy, services: dict[str, WebappProcess]
) -> None:
    service = services["drain"].wait_started()
    service.get("/")  # warm: flag cached
    proxy.set("delay", targets=("DynamoDB_",), delay=0.7)
    replies: list[Reply] = []
    try:
        in_flight = threading.Thread(target=lambda: replies.append(service.get("/")))
        in_flight.start()
        time.sleep(0.25)
        service.signal(signal.SIGTERM)
        time.sleep(0.25)
        with pytest.raises(ConnectionRefusedError):  # no new work once draining
            socket.create_connection(("127.0.0.1", service.port), timeout=1).close()
        in_flight.join(5)
    finally:
        proxy.set("pass")
    assert replies and replies[0].status == 200
    assert replies[0].headers["x-recommendation-source"] == "dependency"  # finished, not cut off
    assert replies[0].headers["connection"] == "close"
    assert service.process.wait(timeout=5) == 0
    stopped = service.events("stopped")
    assert stopped and stopped[0]["drained"] is True
    assert service.events("draining")[0]["in_flight"] == 1


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_keep_alive_connections_do_not_delay_shutdown(
    services: dict[str, WebappProcess], signum: signal.Signals
) -> None:
    service = services[f"idle-{signum.name}"].wait_started()
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
    try:
        assert request(service.port, "/healthcheck", connection=connection).status == 200
        started = time.monotonic()
        service.signal(signum)
        assert service.process.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0  # not the 30 s idle timeout
    finally:
        connection.close()
    assert service.events("stopped")[0]["drained"] is True


def test_instance_metadata_comes_from_imds_v2_once_at_start_up(
    services: dict[str, WebappProcess], doubles: Doubles
) -> None:
    service = services["imds"].wait_started()
    for _ in range(10):
        reply = service.get("/")
        assert reply.headers["x-instance-id"] == "i-0imds"
        assert "i-0imds" in reply.text and "us-east-2b" in reply.text and "t3.micro" in reply.text
    assert service.get("/nope").headers["x-instance-id"] == "i-0imds"
    assert doubles.imds.hits["PUT /latest/api/token"] == 1  # never per request
    assert service.events("started")[0]["on_aws"] is True


def test_without_imds_the_page_says_running_outside_aws(services: dict[str, WebappProcess], doubles: Doubles) -> None:
    service = services["no-imds"].wait_started()
    reply = service.get("/")
    assert reply.headers["x-instance-id"] == "local"
    assert "running outside AWS" in reply.text
    assert service.events("started")[0]["on_aws"] is False
    assert doubles.no_imds.accepted == 1  # probed once, at start-up


def test_port_in_use_exits_with_an_error(
    moto: MotoServer, services: dict[str, WebappProcess], spawn: SpawnWebapp
) -> None:
    first = services["no-imds"].wait_started()  # any running service holds a port
    second = spawn("second", moto.endpoint_url, "--port", str(first.port), wait=False)
    assert second.process.wait(timeout=20) == 1
    failed = second.events("bind_failed")
    assert failed and failed[0]["port"] == first.port
    assert first.get("/healthcheck").status == 200


def test_overload_is_shed_with_503_not_queued_without_bound(services: dict[str, WebappProcess]) -> None:
    service = services["shed"].wait_started()
    hog = socket.create_connection(("127.0.0.1", service.port))
    try:
        hog.sendall(b"GET / HTTP/1.1\r\n")  # holds the only worker, headers never finished
        time.sleep(0.2)
        answer = raw_exchange(service.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(answer) == 503
        assert b"Retry-After: 1" in answer and b"X-Instance-Id: i-test" in answer
    finally:
        hog.close()
    wait_until(lambda: service.get("/").status == 200, 5)  # the worker is free again
    shed = [r for r in service.events("request") if r.get("reason") == "shed"]
    assert shed and shed[0]["Status5xx"] == 1


def test_emf_can_go_to_the_cloudwatch_agent_over_udp(services: dict[str, WebappProcess], doubles: Doubles) -> None:
    service = services["emf-udp"].wait_started()
    assert service.get("/?user=4").status == 200
    document = json.loads(doubles.agent.recv(65536))
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "OpexCdk/RecommendationService"
    assert directive["Dimensions"] == [["Service"]] and document["Service"] == "RecommendationService"
    assert document["Requests"] == 1 and document["Status2xx"] == 1 and document["path"] == "/"
    wait_until(lambda: service.events("request"), 2)  # the log line is written right after the datagram
    line = service.events("request")[-1]
    assert "_aws" not in line and line["status"] == 200  # the metric is not counted twice
