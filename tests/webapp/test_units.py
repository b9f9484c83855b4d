"""The service's parts on their own: breaker, budgets, parsing, error classes, metrics, page, config,
metadata and the client refresher. No AWS, no moto: fakes, clocks and local sockets only."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ReadTimeoutError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.webapp.support import BlackHole, FakeImds
from webapp.breaker import BreakerState, CircuitBreaker
from webapp.budget import BoundedExecutor, DeadlineExceeded, SingleFlight
from webapp.clients import AwsClients, botocore_config
from webapp.config import Settings, parse_args
from webapp.dependency import DependencyFailure, Recommendation, classify, parse_flag, parse_recommendation
from webapp.metadata import InstanceInfo, probe_imds, resolve_instance_info
from webapp.metrics import METRICS, NAMESPACE, JsonLog, emf_document, request_metrics
from webapp.page import FALLBACK, render_page


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------------------- breaker


def test_breaker_opens_after_consecutive_failures_and_blocks_calls() -> None:
    clock = FakeClock()
    changes: list[tuple[BreakerState, BreakerState]] = []
    breaker = CircuitBreaker(3, 5.0, clock=clock, on_change=lambda old, new: changes.append((old, new)))
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()  # a success in between resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert changes == [(BreakerState.CLOSED, BreakerState.OPEN)]


def test_breaker_lets_one_probe_through_after_the_open_period() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record_failure()
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.2
    assert breaker.allow()  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure()  # probe failed: open for another period
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    clock.now += 5.1
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))


def test_breaker_probe_lease_expires_and_release_returns_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 2.0, clock=clock)
    breaker.record_failure()
    clock.now += 2.0
    assert breaker.allow()
    breaker.release()  # the permit was not used for a call
    assert breaker.allow()  # so another request may probe
    clock.now += 2.0  # that probe never reported (its thread died): the lease expires
    assert breaker.allow()


def test_breaker_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, 0)


# ---------------------------------------------------------------------------------------------- budgets


def test_bounded_executor_stops_waiting_at_the_deadline() -> None:
    executor = BoundedExecutor(2)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        executor.call(lambda: release.wait(5), time.monotonic() + 0.2)
    assert time.monotonic() - started < 0.5
    release.set()
    assert executor.call(lambda: 42, time.monotonic() + 1) == 42
    executor.shutdown()


def test_single_flight_shares_one_load_and_caches_it() -> None:
    executor = BoundedExecutor(4)
    loads = 0
    gate = threading.Event()

    def load() -> int:
        nonlocal loads
        loads += 1
        gate.wait(2)
        return loads

    flight = SingleFlight(load, 60.0, executor)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(flight.get(time.monotonic() + 3))) for _ in range(16)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    gate.set()
    for thread in threads:
        thread.join()
    assert results == [1] * 16
    assert flight.get(time.monotonic() + 1) == 1  # cached
    assert loads == 1
    flight.invalidate()
    assert flight.get(time.monotonic() + 1) == 2
    executor.shutdown()


def test_single_flight_does_not_cache_errors_and_respects_deadlines() -> None:
    executor = BoundedExecutor(2)
    outcomes = iter([RuntimeError("first fails"), "second works"])

    def load() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    flight = SingleFlight(load, 60.0, executor)
    with pytest.raises(RuntimeError):
        flight.get(time.monotonic() + 1)
    assert flight.get(time.monotonic() + 1) == "second works"

    slow = SingleFlight(lambda: time.sleep(0.5) or "late", 60.0, executor)
    with pytest.raises(DeadlineExceeded):
        slow.get(time.monotonic() + 0.05)
    time.sleep(0.6)
    assert slow.get(time.monotonic()) == "late"  # the abandoned load still filled the cache
    executor.shutdown()


# ---------------------------------------------------------------------------------------------- parsing


def test_flag_is_strict() -> None:
    assert parse_flag("true") is True
    assert parse_flag("false") is False
    for value in ("True", "FALSE", "yes", "", " true", "1"):
        assert parse_flag(value) is None


def _item(name: Any, result: Any) -> dict[str, Any]:
    return {
        "Item": {"ServiceAPI": {"S": "getRecommendation"}, "UserID": {"N": "1"}, "UserName": name, "Result": result}
    }


def test_recommendation_parsing_accepts_good_items() -> None:
    assert parse_recommendation(_item({"S": "Alice"}, {"S": "The Expanse"}), 1) == Recommendation(
        1, "Alice", "The Expanse"
    )


@pytest.mark.parametrize(
    "response",
    [
        {},
        {"Item": None},
        _item({"S": "Alice"}, {"N": "42"}),
        _item({"S": "Alice"}, None),
        _item({"S": ""}, {"S": "x"}),
        _item({"S": "Alice"}, {"S": "   "}),
        _item({"S": "Alice"}, {"S": "x" * 300}),
        _item("Alice", {"S": "x"}),
    ],
)
def test_recommendation_parsing_rejects_malformed_items(response: dict[str, Any]) -> None:
    with pytest.raises(DependencyFailure) as raised:
        parse_recommendation(response, 1)
    assert raised.value.kind == "malformed"
    assert not raised.value.trips_breaker  # the dependency answered: not an outage
    assert raised.value.is_error


_attribute_values = st.one_of(st.none(), st.text(max_size=8), st.integers(), st.lists(st.integers(), max_size=2))
_attributes = st.one_of(
    _attribute_values,
    st.dictionaries(st.sampled_from(["S", "N", "BOOL", "L", ""]), _attribute_values, max_size=2),
)


@given(st.one_of(_attribute_values, st.dictionaries(st.sampled_from(["UserName", "Result", "x"]), _attributes)))
@settings(max_examples=150)
def test_recommendation_parsing_never_raises_anything_else(item: Any) -> None:
    try:
        parsed = parse_recommendation({"Item": item}, 2)
    except DependencyFailure as failure:
        assert failure.kind == "malformed"
    else:
        assert parsed.user_name.strip() and parsed.show.strip()


def _client_error(code: str, status: int, message: str = "boom") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetItem"
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error("AccessDeniedException", 400), "access_denied"),
        (_client_error("UnrecognizedClientException", 400), "access_denied"),
        (_client_error("ExpiredTokenException", 400), "access_denied"),
        (_client_error("InvalidClientTokenId", 403), "access_denied"),
        # moto answers a JSON-protocol call with an XML error: botocore reports the status as the code.
        (_client_error("403", 403, "<ErrorResponse><Errors><Error><Code>AccessDenied</Code>"), "access_denied"),
        (_client_error("ThrottlingException", 400), "throttled"),
        (_client_error("ProvisionedThroughputExceededException", 400), "throttled"),
        (_client_error("ResourceNotFoundException", 400), "not_found"),
        (_client_error("ParameterNotFound", 400), "not_found"),
        (_client_error("InternalServerError", 500), "error"),
        (ReadTimeoutError(endpoint_url="http://x"), "timeout"),
        (EndpointConnectionError(endpoint_url="http://x"), "unavailable"),
        (NoCredentialsError(), "access_denied"),
        (DeadlineExceeded(), "timeout"),
        (ValueError("surprise"), "error"),
    ],
)
def test_every_error_is_classified(error: Exception, kind: str) -> None:
    failure = classify(error)
    assert failure.kind == kind
    assert failure.trips_breaker
    assert len(failure.detail) <= 300


def test_moto_xml_error_code_is_read_from_the_body() -> None:
    failure = classify(_client_error("403", 403, "<ErrorResponse><Errors><Error><Code>AccessDenied</Code></Error>"))
    assert failure.detail.startswith("AccessDenied")


# ---------------------------------------------------------------------------------------------- metrics


def test_emf_document_matches_the_alarm_contract() -> None:
    document = emf_document(
        request_metrics(status=200, latency_ms=12.5, fallback_served=True, dependency_error=False, page=True),
        timestamp_ms=1_700_000_000_000,
        path="/",
    )
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == NAMESPACE == "OpexCdk/RecommendationService"
    assert directive["Dimensions"] == [["Service"]]
    assert document["Service"] == "RecommendationService"
    assert {(m["Name"], m["Unit"]) for m in directive["Metrics"]} == {
        ("Requests", "Count"),
        ("PageRequests", "Count"),
        ("Latency", "Milliseconds"),
        ("FallbackServed", "Count"),
        ("DependencyErrors", "Count"),
        ("Status2xx", "Count"),
        ("Status4xx", "Count"),
        ("Status5xx", "Count"),
    }
    for name, _ in METRICS:
        assert isinstance(document[name], int | float)  # EMF: every declared metric has a value
    assert document["FallbackServed"] == 1 and document["Latency"] == 12.5 and document["path"] == "/"
    assert document["PageRequests"] == 1


def test_only_the_page_counts_as_a_page_request() -> None:
    """The fallback share's denominator must not include the load balancer's health checks."""
    health = request_metrics(status=503, latency_ms=3, fallback_served=False, dependency_error=True)
    assert health["PageRequests"] == 0 and health["Requests"] == 1


@given(st.integers(min_value=100, max_value=599))
def test_exactly_one_status_class_or_none(status: int) -> None:
    values = request_metrics(status=status, latency_ms=1, fallback_served=False, dependency_error=False)
    classes = values["Status2xx"] + values["Status4xx"] + values["Status5xx"]
    assert classes == (1 if status // 100 in (2, 4, 5) else 0)


def test_json_log_lines_stay_whole_under_concurrency() -> None:
    stream = io.StringIO()
    log = JsonLog(stream, static={"instance": "i-1"})

    def write() -> None:
        for i in range(200):
            log.request(method="GET", path="/", status=200, latency_ms=i, source="dependency")

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1600
    for line in lines:
        record = json.loads(line)
        assert record["event"] == "request" and record["instance"] == "i-1" and "_aws" in record


# ---------------------------------------------------------------------------------------------- page


@given(st.text(max_size=40), st.text(max_size=40))
@settings(max_examples=100)
def test_page_escapes_whatever_the_table_holds(name: str, show: str) -> None:
    page = render_page(Recommendation(1, name, show), InstanceInfo("i-<x>", "az&1")).decode()
    body = page.split("<body>", 1)[1]
    for dangerous in ("<script", "<img", "<x>"):
        if dangerous in name or dangerous in show:
            assert dangerous not in body
    assert "What to watch next" in page
    assert "i-&lt;x&gt;" in page and "az&amp;1" in page


def test_fallback_page_is_the_workshops_and_says_why() -> None:
    page = render_page(FALLBACK, InstanceInfo(), DependencyFailure("timeout", "no answer")).decode()
    assert "Valued Customer" in page and "I Love Lucy" in page
    assert "dependency timeout: no answer" in page
    assert "running outside AWS" in page


# ---------------------------------------------------------------------------------------------- config


def test_cli_defaults_are_the_production_values() -> None:
    settings_ = parse_args([])
    assert (settings_.host, settings_.port, settings_.region) == ("0.0.0.0", 80, "us-east-2")
    assert (settings_.table, settings_.flag_parameter) == ("RecommendationService", "RecommendationServiceEnabled")
    assert settings_.dependency_budget <= 1 and settings_.healthcheck_deadline < 1
    assert settings_.healthcheck_cache <= 2 and settings_.credential_max_age <= 60


@pytest.mark.parametrize(
    "override",
    [
        {"dependency_budget": 1.5},
        {"healthcheck_deadline": 2.0},
        {"healthcheck_cache": 3.0},
        {"credential_max_age": 120.0},
        {"credential_min_interval": 50.0, "credential_max_age": 10.0},
        {"workers": 0},
        {"read_timeout": 0.0},
        {"port": 70000},
    ],
)
def test_settings_reject_values_that_break_the_promises(override: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Settings(**override)


def test_cli_reports_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--healthcheck-cache", "5"])
    assert exited.value.code == 2
    assert "healthcheck_cache" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- metadata


def test_imds_v2_probe_reads_the_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    imds = FakeImds({"instance-id": "i-0abc", "placement/availability-zone": "us-east-2b", "instance-type": "t3.micro"})
    hole = BlackHole()
    try:
        # A proxy from the environment must not be used for the link-local IMDS.
        monkeypatch.setenv("HTTP_PROXY", hole.endpoint_url)
        info = resolve_instance_info(environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint_url})
        assert info == InstanceInfo("i-0abc", "us-east-2b", "t3.micro", on_aws=True)
        assert imds.hits["PUT /latest/api/token"] == 1
        overridden = resolve_instance_info(
            "i-local-1", None, environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.endpoint_url}
        )
        assert (overridden.instance_id, overridden.availability_zone) == ("i-local-1", "us-east-2b")
    finally:
        imds.close()
        hole.close()


def test_no_imds_means_local_after_a_short_timeout() -> None:
    hole = BlackHole()
    try:
        started = time.monotonic()
        assert probe_imds(hole.endpoint_url, timeout=0.3) is None
        assert time.monotonic() - started < 1.0
        info = resolve_instance_info(environ={"AWS_EC2_METADATA_SERVICE_ENDPOINT": hole.endpoint_url})
        assert info == InstanceInfo("local", "local", "unknown", on_aws=False)
        disabled = resolve_instance_info(environ={"AWS_EC2_METADATA_DISABLED": "true"})
        assert not disabled.on_aws
        assert hole.accepted == 2  # the disabled case never connected
    finally:
        hole.close()


# ---------------------------------------------------------------------------------------------- clients


class CountingSessions:
    def __init__(self) -> None:
        self.created = 0

    def __call__(self) -> Any:
        self.created += 1
        factory = self

        class Session:
            def client(self, service: str, **kwargs: Any) -> tuple[str, int]:
                return (service, factory.created)

        return Session()


def test_clients_rebuild_on_auth_error_at_most_once_per_interval() -> None:
    sessions = CountingSessions()
    rebuilds: list[tuple[int, str]] = []
    clients = AwsClients(
        "us-east-2",
        botocore_config(connect_timeout=1, read_timeout=1, max_attempts=2, max_pool_connections=4),
        max_age=60,
        min_interval=0.3,
        session_factory=sessions,
        on_rebuild=lambda generation, reason: rebuilds.append((generation, reason)),
    )
    clients.start()
    try:
        assert clients.current.generation == 1 and sessions.created == 1
        for _ in range(50):  # an error storm
            clients.report_auth_error()
        wait = time.monotonic() + 2
        while clients.current.generation < 2 and time.monotonic() < wait:
            time.sleep(0.01)
        assert clients.current.generation == 2
        assert clients.current.dynamodb == ("dynamodb", 2)
        time.sleep(0.2)
        assert sessions.created == 2  # 50 reports, one rebuild
        assert rebuilds == [(2, "auth_error")]
        clients.report_auth_error(generation=1)  # late news about clients already replaced
        time.sleep(0.5)
        assert sessions.created == 2
    finally:
        clients.stop()


def test_clients_rebuild_when_old_even_without_errors() -> None:
    sessions = CountingSessions()
    clients = AwsClients(
        "us-east-2",
        botocore_config(connect_timeout=1, read_timeout=1, max_attempts=2, max_pool_connections=4),
        max_age=0.2,
        min_interval=0.1,
        session_factory=sessions,
    )
    clients.start()
    try:
        time.sleep(0.7)
        assert 3 <= sessions.created <= 5  # the first + one per 0.2 s
    finally:
        clients.stop()
