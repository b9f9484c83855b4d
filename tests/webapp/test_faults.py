"""Every dependency fault: the page still answers 200 with the workshop's fallback, the deep health
check answers 503 with the reason (within 1 s), and the circuit breaker opens and closes.

Workshop rows covered here: step 2 (flag false: the basic server answered 502; here never an error),
step 3 (flag false -> static fallback, capacity degraded not down),
step 7 (flag false -> every instance fails the deep check, yet serves the fallback) and step 8
(flag true -> personalized again: the flag is an emergency lever).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from opex_cdk.local import MotoServer, set_flag
from tests.webapp.conftest import (
    DISABLED_FLAG,
    FLIP_FLAG,
    INVALID_FLAG,
    MALFORMED_FLAG,
    MALFORMED_TABLE,
    MISSING_FLAG,
    MISSING_TABLE,
    SpawnWebapp,
)
from tests.webapp.support import REGION, BlackHole, FaultProxy, Reply, WebappProcess, percentile, wait_until

pytestmark = pytest.mark.xdist_group("webapp-faults")

GET_ITEM = "DynamoDB_20120810.GetItem"
GET_PARAMETER = "AmazonSSM.GetParameter"


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> FaultProxy:
    proxy = FaultProxy(moto.endpoint_url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def hole() -> BlackHole:
    hole = BlackHole()
    yield hole
    hole.close()


@pytest.fixture(scope="module")
def services(moto: MotoServer, proxy: FaultProxy, hole: BlackHole, spawn: SpawnWebapp) -> dict[str, WebappProcess]:
    """Every faulty service, started together (start-up is mostly imports: overlap it)."""
    url = moto.endpoint_url
    processes = {
        "disabled": spawn("disabled", url, "--flag-parameter", DISABLED_FLAG, wait=False),
        "invalid": spawn("invalid", url, "--flag-parameter", INVALID_FLAG, wait=False),
        "no-table": spawn("no-table", url, "--table", MISSING_TABLE, wait=False),
        "no-flag": spawn("no-flag", url, "--flag-parameter", MISSING_FLAG, wait=False),
        "malformed": spawn(
            "malformed", url, "--table", MALFORMED_TABLE, "--flag-parameter", MALFORMED_FLAG, wait=False
        ),
        "flip": spawn(
            "flip", url, "--flag-parameter", FLIP_FLAG, "--flag-cache", "0.3", "--healthcheck-cache", "0.3", wait=False
        ),
        # Fault classes through the proxy; a breaker that never opens keeps each fault visible as itself.
        "proxied": spawn(
            "proxied",
            proxy.endpoint_url,
            "--breaker-failures",
            "100000",
            "--healthcheck-cache",
            "0.3",
            "--credential-min-interval",
            "0.5",
            wait=False,
        ),
        "breaker": spawn(
            "breaker",
            proxy.endpoint_url,
            "--breaker-failures",
            "3",
            "--breaker-open-seconds",
            "1",
            "--flag-cache",
            "30",
            wait=False,
        ),
        "blackhole": spawn("blackhole", hole.endpoint_url, "--breaker-open-seconds", "60", wait=False),
    }
    return {name: process.wait_started() for name, process in processes.items()}


def assert_fallback(reply: Reply, kind: str) -> None:
    assert reply.status == 200
    assert reply.headers["x-recommendation-source"] == "fallback"
    assert '<b class="user">Valued Customer</b>' in reply.text
    assert '<b class="show">I Love Lucy</b>' in reply.text
    assert f"dependency {kind}:" in reply.text
    assert "What to watch next" in reply.text


def assert_unhealthy(reply: Reply, kind: str, elapsed_limit: float = 1.0) -> dict[str, str]:
    assert reply.status == 503
    body = reply.json()
    assert body["status"] == "unhealthy" and body["kind"] == kind and body["reason"]
    assert reply.elapsed < elapsed_limit
    return body


# ------------------------------------------------------------------------------------ the flag


def test_step2_3_7_flag_false_serves_the_fallback_never_an_error_and_fails_the_deep_check(
    services: dict[str, WebappProcess],
) -> None:
    service = services["disabled"]
    replies = [service.get("/") for _ in range(30)]
    for reply in replies:
        assert_fallback(reply, "disabled")
    assert percentile([r.elapsed for r in replies], 0.5) < 0.05  # no DynamoDB call at all
    body = assert_unhealthy(service.get("/healthcheck"), "disabled")
    assert DISABLED_FLAG in body["reason"]
    page_lines = [r for r in service.events("request") if r["path"] == "/"]
    assert all(r["FallbackServed"] == 1 and r["DependencyErrors"] == 0 for r in page_lines)
    assert all(r["source"] == "fallback" and r["reason"] == "disabled" for r in page_lines)


def test_flag_neither_true_nor_false_counts_as_disabled_and_is_logged(services: dict[str, WebappProcess]) -> None:
    service = services["invalid"]
    assert_fallback(service.get("/"), "flag_invalid")
    assert_unhealthy(service.get("/healthcheck"), "flag_invalid")
    logged = service.events("flag_invalid")
    assert logged and logged[0]["value"] == "maybe" and logged[0]["treated_as"] == "disabled"
    assert logged[0]["level"] == "warning"
    page = next(r for r in service.events("request") if r["path"] == "/")
    assert page["DependencyErrors"] == 1


def test_step8_flag_is_an_emergency_lever(services: dict[str, WebappProcess], moto: MotoServer) -> None:
    service = services["flip"]
    assert service.get("/").headers["x-recommendation-source"] == "dependency"
    assert service.get("/healthcheck").status == 200
    set_flag(moto.endpoint_url, REGION, "false", flag_name=FLIP_FLAG)
    try:
        took = wait_until(lambda: service.get("/").headers["x-recommendation-source"] == "fallback", 3)
        assert took < 1.5  # flag cache 0.3 s here (2 s by default)
        wait_until(lambda: service.get("/healthcheck").status == 503, 2)
    finally:
        set_flag(moto.endpoint_url, REGION, "true", flag_name=FLIP_FLAG)
    wait_until(lambda: service.get("/").headers["x-recommendation-source"] == "dependency", 3)
    wait_until(lambda: service.get("/healthcheck").status == 200, 2)


def test_missing_flag_parameter(services: dict[str, WebappProcess]) -> None:
    service = services["no-flag"]
    assert_fallback(service.get("/"), "not_found")
    body = assert_unhealthy(service.get("/healthcheck"), "not_found")
    assert "ParameterNotFound" in body["reason"]


# ------------------------------------------------------------------------------------ the table


def test_missing_table(services: dict[str, WebappProcess]) -> None:
    service = services["no-table"]
    assert_fallback(service.get("/"), "not_found")
    # Every call fails: after 5 failures in a row (the start-up check included) the breaker opens.
    for _ in range(6):
        assert service.get("/").headers["x-recommendation-source"] == "fallback"
    kinds = [r["reason"] for r in service.events("request") if r["path"] == "/"]
    assert set(kinds) == {"not_found", "circuit_open"} and kinds[-1] == "circuit_open"
    body = assert_unhealthy(service.get("/healthcheck"), "not_found")  # the deep check still looks
    assert "ResourceNotFoundException" in body["reason"]
    page = next(r for r in service.events("request") if r["path"] == "/")
    assert page["DependencyErrors"] == 1 and page["FallbackServed"] == 1


@pytest.mark.parametrize("user_id", [1, 2, 3, 4])
def test_malformed_items_fall_back(services: dict[str, WebappProcess], user_id: int) -> None:
    assert_fallback(services["malformed"].get(f"/?user={user_id}"), "malformed")


def test_wrong_health_item_fails_the_deep_check(services: dict[str, WebappProcess]) -> None:
    body = assert_unhealthy(services["malformed"].get("/healthcheck"), "health_item_mismatch")
    assert "broken" in body["reason"]


# ------------------------------------------------------------------------------------ injected faults


@pytest.mark.parametrize(("fault", "kind"), [("deny", "access_denied"), ("garbage", "malformed")])
def test_dependency_errors_fall_back_and_fail_the_deep_check(
    services: dict[str, WebappProcess], proxy: FaultProxy, fault: str, kind: str
) -> None:
    service = services["proxied"]
    assert service.get("/").headers["x-recommendation-source"] == "dependency"
    proxy.set(fault, targets=("DynamoDB_",))
    try:
        time.sleep(0.35)  # the health result from before the fault may be cached (0.3 s here)
        proxy.reset_counts()
        assert_fallback(service.get("/"), kind)
        assert proxy.calls[GET_ITEM] == 1  # not retryable: one call (garbage parses as "no item")
        assert_unhealthy(service.get("/healthcheck"), kind)
        if kind == "access_denied":  # and the service asked for fresh credentials
            wait_until(lambda: any(e["reason"] == "auth_error" for e in service.events("clients_rebuilt")), 3)
    finally:
        proxy.set("pass")
    wait_until(lambda: service.get("/").headers["x-recommendation-source"] == "dependency", 3)


def test_throttling_falls_back_within_the_budget_with_bounded_retries(
    services: dict[str, WebappProcess], proxy: FaultProxy
) -> None:
    service = services["proxied"]
    proxy.set("throttle", targets=("DynamoDB_",))
    try:
        time.sleep(0.35)
        kinds = set()
        for _ in range(3):
            proxy.reset_counts()
            reply = service.get("/")
            assert reply.status == 200 and reply.headers["x-recommendation-source"] == "fallback"
            assert reply.elapsed < 1.2
            # botocore backs off up to 1 s before retrying a throttle; the 0.8 s budget may end first,
            # and then the retry is never sent (no attempt starts after the deadline).
            kinds.update(k for k in ("throttled", "timeout") if f"dependency {k}:" in reply.text)
            time.sleep(0.1)
            assert 1 <= proxy.calls[GET_ITEM] <= 2  # standard retry mode, 2 attempts in all
        assert kinds and kinds <= {"throttled", "timeout"}
        health = service.get("/healthcheck")
        assert health.status == 503 and health.json()["kind"] in ("throttled", "timeout")
        assert health.elapsed < 1.0
    finally:
        proxy.set("pass")
    wait_until(lambda: service.get("/").headers["x-recommendation-source"] == "dependency", 2)


# ------------------------------------------------------------------------------------ black hole + breaker


def test_black_holed_dependency_costs_the_time_budget_then_almost_nothing(services: dict[str, WebappProcess]) -> None:
    service = services["blackhole"]
    health = service.get("/healthcheck")
    assert_unhealthy(health, "timeout")
    assert "dependency timeout" in health.json()["reason"]

    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda _: service.get("/"), range(8)))
    for reply in first:
        assert_fallback(reply, "timeout")
        assert reply.elapsed < 1.2
    wait_until(lambda: service.events("breaker_opened"), 2)

    after = [service.get("/") for _ in range(100)]
    for reply in after:
        assert_fallback(reply, "circuit_open")
    latencies = [r.elapsed for r in after]
    # No dependency wait any more (the budget is 0.8 s); the bench measures the 50 ms goal on a quiet
    # machine, the margin here only absorbs a busy test machine.
    assert percentile(latencies, 0.5) < 0.05 and percentile(latencies, 0.99) < 0.3

    for _ in range(2):  # the health check keeps answering within 1 s, cached or not
        assert_unhealthy(service.get("/healthcheck"), "timeout")
        time.sleep(0.3)
    assert service.process.poll() is None


def test_breaker_opens_stops_calling_and_closes_after_recovery(
    services: dict[str, WebappProcess], proxy: FaultProxy
) -> None:
    service = services["breaker"]
    assert service.get("/").headers["x-recommendation-source"] == "dependency"  # flag now cached 30 s
    proxy.set("blackhole", targets=("DynamoDB_",))
    try:
        with ThreadPoolExecutor(3) as pool:
            for reply in pool.map(lambda _: service.get("/"), range(3)):
                assert_fallback(reply, "timeout")
        wait_until(lambda: service.events("breaker_opened"), 2)
        proxy.reset_counts()
        quick = [service.get("/") for _ in range(50)]
        assert all(r.headers["x-recommendation-source"] == "fallback" and r.elapsed < 0.3 for r in quick[:10])
        assert proxy.calls[GET_ITEM] <= 1  # open: no calls, at most one probe after 1 s
    finally:
        proxy.set("pass")
    took = wait_until(lambda: service.get("/").headers["x-recommendation-source"] == "dependency", 4)
    assert took < 2.5  # open period 1 s, then one probe closes it
    assert service.events("breaker_closed")
    transitions = [e["new"] for e in service.events() if e["event"].startswith("breaker_")]
    assert transitions[:3] == ["open", "half_open", "closed"]
