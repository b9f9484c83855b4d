"""The dependency: an SSM flag and a DynamoDB table, read within a time budget.

Every way the dependency can fail ends as a :class:`DependencyFailure` with a short ``kind``; the
page turns it into the static fallback and the health check into a 503. Nothing here raises anything
else to a request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from .breaker import CircuitBreaker
from .budget import BoundedExecutor, DeadlineExceeded, SingleFlight
from .clients import AwsClients, ClientPair, deadline_for_attempts
from .metrics import JsonLog

SERVICE_API = "getRecommendation"
HEALTH_CHECK_USER_ID = 0
HEALTH_CHECK_VALUE = "test"
MAX_FIELD_LENGTH = 256

#: Errors that mean "these credentials may not do this" (stale or swapped role) -> rebuild clients.
AUTH_ERROR_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "MissingAuthenticationToken",
        "MissingAuthenticationTokenException",
        "IncompleteSignature",
        "IncompleteSignatureException",
        "UnauthorizedOperation",
        "RequestExpired",
    }
)
THROTTLING_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ThrottledException",
    }
)
NOT_FOUND_ERROR_CODES = frozenset({"ResourceNotFoundException", "ParameterNotFound"})
_XML_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
T = TypeVar("T")


class DependencyFailure(Exception):
    """Why the dependency gave no answer for this request.

    Attributes:
        kind: ``disabled``, ``flag_invalid``, ``circuit_open``, ``timeout``, ``throttled``,
            ``access_denied``, ``not_found``, ``unavailable``, ``malformed`` or ``error``.
        detail: one short line for the page, the health check body and the log.
        trips_breaker: counts as a failure for the circuit breaker (availability problems do; a
            disabled flag or a malformed item is an answer, not an outage).
        is_error: counts in the ``DependencyErrors`` metric (everything but a deliberate disable).
    """

    def __init__(self, kind: str, detail: str, *, trips_breaker: bool = True, is_error: bool = True) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail[:300]
        self.trips_breaker = trips_breaker
        self.is_error = is_error


@dataclass(frozen=True)
class Recommendation:
    """A user's name and the show recommended to them."""

    user_id: int
    user_name: str
    show: str


@dataclass(frozen=True)
class HealthResult:
    """Outcome of one deep check.

    Attributes:
        healthy: flag ``true`` and the health item reads ``test``/``test``.
        kind: ``ok`` or the failure kind (see :class:`DependencyFailure`).
        reason: human-readable reason.
        checked_at: wall-clock time of the check (seconds).
        duration_ms: how long the dependency took.
    """

    healthy: bool
    kind: str
    reason: str
    checked_at: float = field(default_factory=time.time)
    duration_ms: float = 0.0


def parse_flag(value: str) -> bool | None:
    """``true`` -> True, ``false`` -> False, anything else -> None (treated as disabled, and logged)."""
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def _string_attribute(item: dict[str, Any], name: str, user_id: int) -> str:
    attribute = item.get(name)
    if not isinstance(attribute, dict) or not isinstance(attribute.get("S"), str):
        raise DependencyFailure("malformed", f"item for user {user_id} has no string {name}", trips_breaker=False)
    value = attribute["S"]
    if not value.strip() or len(value) > MAX_FIELD_LENGTH:
        raise DependencyFailure(
            "malformed", f"item for user {user_id} has an empty or oversized {name}", trips_breaker=False
        )
    return value


def parse_recommendation(response: dict[str, Any], user_id: int) -> Recommendation:
    """Read a GetItem response; DependencyFailure("malformed") when the item is missing or wrong."""
    item = response.get("Item")
    if not isinstance(item, dict):
        raise DependencyFailure("malformed", f"no item for user {user_id}", trips_breaker=False)
    return Recommendation(
        user_id=user_id,
        user_name=_string_attribute(item, "UserName", user_id),
        show=_string_attribute(item, "Result", user_id),
    )


def classify(error: BaseException) -> DependencyFailure:
    """Turn any exception from a dependency call into a DependencyFailure."""
    if isinstance(error, DependencyFailure):
        return error
    if isinstance(error, DeadlineExceeded):
        return DependencyFailure("timeout", "no answer within the time budget")
    if isinstance(error, ReadTimeoutError | ConnectTimeoutError):
        return DependencyFailure("timeout", type(error).__name__)
    if isinstance(error, EndpointConnectionError | ConnectionClosedError):
        return DependencyFailure("unavailable", type(error).__name__)
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return DependencyFailure("access_denied", type(error).__name__)
    if isinstance(error, ClientError):
        code, message, status = error_code(error)
        detail = f"{code}: {message}" if message else code
        if code in AUTH_ERROR_CODES or status == 403:
            return DependencyFailure("access_denied", detail)
        if code in THROTTLING_ERROR_CODES or status == 429:
            return DependencyFailure("throttled", detail)
        if code in NOT_FOUND_ERROR_CODES:
            return DependencyFailure("not_found", detail)
        return DependencyFailure("error", detail)
    if isinstance(error, BotoCoreError):
        return DependencyFailure("error", type(error).__name__)
    return DependencyFailure("error", f"{type(error).__name__}: {error}")


def error_code(error: ClientError) -> tuple[str, str, int | None]:
    """(code, message, HTTP status) of a ClientError.

    Some endpoints (moto, proxies) answer a JSON-protocol call with an XML error body; botocore then
    reports the HTTP status as the code and the XML as the message. Read the real code from the XML.
    """
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    message = str(details.get("Message", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code.isdigit():
        found = _XML_CODE.search(message)
        if found:
            code = found.group(1)
            message = ""
    return code, message.splitlines()[0][:200] if message else "", status


class RecommendationDependency:
    """Reads the flag and the table for the page and the health check.

    Args:
        clients: the (refreshing) boto3 clients.
        table: DynamoDB table name.
        flag_parameter: SSM parameter name.
        breaker: the circuit breaker guarding page requests.
        executor: the bounded pool dependency calls run in.
        flag_ttl: seconds a flag value is reused (SSM's GetParameter is rate-limited, and the flag is
            an operator's lever, not per-request data).
        budget_seconds: time budget of a page request's dependency calls.
        log: the JSON log.
    """

    def __init__(
        self,
        *,
        clients: AwsClients,
        table: str,
        flag_parameter: str,
        breaker: CircuitBreaker,
        executor: BoundedExecutor,
        flag_ttl: float,
        budget_seconds: float,
        log: JsonLog,
    ) -> None:
        self._clients = clients
        self._table = table
        self._flag_parameter = flag_parameter
        self._breaker = breaker
        self._executor = executor
        self._log = log
        self._budget = budget_seconds
        self._flag = SingleFlight(self._load_flag_within_budget, flag_ttl, executor)

    def recommend(self, user_id: int, deadline: float) -> Recommendation:
        """The user's recommendation, or DependencyFailure. Waits no later than ``deadline`` (monotonic)."""
        if not self._breaker.allow():
            raise DependencyFailure("circuit_open", "dependency failing; calls paused by the circuit breaker")
        try:
            self._require_enabled(self._flag.get(deadline))
            response = self._executor.call(lambda: self._get_item(user_id, deadline), deadline)
        except Exception as error:  # every failure becomes a fallback, never an escaped exception
            failure = classify(error)
            if failure.trips_breaker:
                self._breaker.record_failure()
            else:
                self._breaker.release()
            raise failure from error
        self._breaker.record_success()
        return parse_recommendation(response, user_id)

    def deep_check(self, budget_seconds: float) -> HealthResult:
        """The health check: a fresh flag read and the UserID 0 item. Never raises.

        No attempt starts after ``budget_seconds``. Feeds the breaker too, so a recovered dependency
        closes it without waiting for a page probe.
        """
        started = time.monotonic()
        deadline = started + budget_seconds
        try:
            with deadline_for_attempts(deadline):
                raw = self._load_flag()
            self._flag.put(raw)
            self._require_enabled(raw)
            response = self._get_item(HEALTH_CHECK_USER_ID, deadline)
        except Exception as error:  # reported as a 503 with the reason
            failure = classify(error)
            if failure.trips_breaker:
                self._breaker.record_failure()
            return HealthResult(False, failure.kind, failure.detail, duration_ms=_ms_since(started))
        self._breaker.record_success()
        try:
            item = parse_recommendation(response, HEALTH_CHECK_USER_ID)
        except DependencyFailure as failure:
            return HealthResult(False, failure.kind, failure.detail, duration_ms=_ms_since(started))
        if (item.user_name, item.show) != (HEALTH_CHECK_VALUE, HEALTH_CHECK_VALUE):
            return HealthResult(
                False,
                "health_item_mismatch",
                f"health item reads {item.user_name!r}/{item.show!r}, expected 'test'/'test'",
                duration_ms=_ms_since(started),
            )
        return HealthResult(
            True, "ok", "flag is true and the health item reads test/test", duration_ms=_ms_since(started)
        )

    def _call(self, operation: Callable[[ClientPair], T]) -> T:
        """Run one AWS call on the current clients; an auth error asks for fresh credentials.

        The report names the clients' generation, so a late error from clients already replaced
        (a call that started before the rebuild) does not trigger another rebuild.
        """
        pair = self._clients.current
        try:
            return operation(pair)
        except Exception as error:
            if classify(error).kind == "access_denied":
                self._clients.report_auth_error(pair.generation)
            raise

    def _require_enabled(self, raw: str) -> None:
        enabled = parse_flag(raw)
        if enabled is None:
            raise DependencyFailure(
                "flag_invalid", f"{self._flag_parameter} is neither true nor false", trips_breaker=False
            )
        if not enabled:
            raise DependencyFailure("disabled", f"{self._flag_parameter} is false", trips_breaker=False, is_error=False)

    def _load_flag_within_budget(self) -> str:
        with deadline_for_attempts(time.monotonic() + self._budget):
            return self._load_flag()

    def _load_flag(self) -> str:
        parameter = self._call(lambda pair: pair.ssm.get_parameter(Name=self._flag_parameter))["Parameter"]
        value = str(parameter.get("Value", ""))
        if parse_flag(value) is None:
            # Logged on every load (at most once per flag TTL), not per request.
            self._log.event(
                "flag_invalid",
                level="warning",
                parameter=self._flag_parameter,
                value=value[:64],
                treated_as="disabled",
            )
        return value

    def _get_item(self, user_id: int, deadline: float) -> dict[str, Any]:
        with deadline_for_attempts(deadline):
            response: dict[str, Any] = self._call(
                lambda pair: pair.dynamodb.get_item(
                    TableName=self._table,
                    Key={"ServiceAPI": {"S": SERVICE_API}, "UserID": {"N": str(user_id)}},
                    # Only what the page shows ("Result" is a reserved word, hence the placeholder).
                    ProjectionExpression="UserName, #result",
                    ExpressionAttributeNames={"#result": "Result"},
                )
            )
        return response


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
