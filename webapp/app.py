"""Routing and responses, independent of the HTTP server: ``/``, ``/healthcheck``, 404.

The page never fails because of the dependency: any :class:`DependencyFailure` becomes the static
fallback with a 200. The health check is deep (flag + health item), shared between concurrent
callers, cached briefly, and answered within its deadline whatever the dependency does.
"""

from __future__ import annotations

import json
import random
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from .budget import BoundedExecutor, DeadlineExceeded, SingleFlight
from .dependency import DependencyFailure, HealthResult, RecommendationDependency
from .metadata import InstanceInfo
from .page import FALLBACK, render_page

USER_IDS = (1, 2, 3, 4)
SOURCE_HEADER = "X-Recommendation-Source"


@dataclass
class Response:
    """What to send back, plus what the request log needs to know about it.

    Attributes:
        status: HTTP status code.
        body: the body (not sent for HEAD).
        content_type: Content-Type header.
        headers: extra headers.
        source: ``dependency`` or ``fallback`` for ``/``; None elsewhere.
        dependency_error: the dependency failed for this request (the ``DependencyErrors`` metric).
        reason: short reason for logs (failure kind, health reason).
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    dependency_error: bool = False
    reason: str | None = None


def json_response(status: int, payload: dict[str, Any], **fields: Any) -> Response:
    """A JSON response."""
    return Response(status, json.dumps(payload, separators=(",", ":")).encode(), **fields)


class HealthCheck:
    """The deep health check behind ``/healthcheck``.

    Args:
        dependency: runs the actual check.
        executor: where the check runs, so its caller can stop waiting.
        cache_seconds: a result is reused this long (≤ 2 s): a burst of checks costs one call.
        deadline_seconds: the longest a caller waits; then 503 "dependency timeout".
    """

    def __init__(
        self,
        dependency: RecommendationDependency,
        executor: BoundedExecutor,
        *,
        cache_seconds: float,
        deadline_seconds: float,
    ) -> None:
        self._deadline_seconds = deadline_seconds
        self._flight = SingleFlight(lambda: dependency.deep_check(deadline_seconds), cache_seconds, executor)

    def check(self) -> HealthResult:
        """The (possibly cached) result, or an unhealthy "timeout" result at the deadline."""
        try:
            return self._flight.get(time.monotonic() + self._deadline_seconds)
        except DeadlineExceeded:
            return HealthResult(False, "timeout", f"dependency timeout: no answer within {self._deadline_seconds:g} s")


class RecommendationService:
    """The application: turns (method, target) into a :class:`Response`.

    Args:
        dependency: the flag + table reader.
        health: the deep health check.
        instance: what to say about this host.
        budget_seconds: time budget of the dependency per page request.
        rng: picks the random user (tests may seed it).
    """

    def __init__(
        self,
        *,
        dependency: RecommendationDependency,
        health: HealthCheck,
        instance: InstanceInfo,
        budget_seconds: float,
        rng: random.Random | None = None,
    ) -> None:
        self._dependency = dependency
        self._health = health
        self._instance = instance
        self._budget = budget_seconds
        self._rng = rng or random.Random()

    def handle(self, target: str) -> Response:
        """Route a GET/HEAD request target (path + optional query)."""
        parsed = urllib.parse.urlsplit(target)
        if parsed.path == "/":
            return self.index(parsed.query)
        if parsed.path == "/healthcheck":
            return self.healthcheck()
        return json_response(404, {"error": "Not Found", "path": parsed.path[:200]})

    def index(self, query: str = "") -> Response:
        """The page for a random user 1-4 (or ``?user=N``), falling back to the static pick."""
        requested = urllib.parse.parse_qs(query).get("user")
        if requested:
            if requested[0] not in {str(user) for user in USER_IDS}:
                return json_response(400, {"error": "Bad Request", "detail": "user must be 1, 2, 3 or 4"})
            user_id = int(requested[0])
        else:
            user_id = self._rng.choice(USER_IDS)
        try:
            recommendation = self._dependency.recommend(user_id, time.monotonic() + self._budget)
        except DependencyFailure as failure:
            return Response(
                200,
                render_page(FALLBACK, self._instance, failure),
                "text/html; charset=utf-8",
                {SOURCE_HEADER: "fallback"},
                source="fallback",
                dependency_error=failure.is_error,
                reason=failure.kind,
            )
        return Response(
            200,
            render_page(recommendation, self._instance),
            "text/html; charset=utf-8",
            {SOURCE_HEADER: "dependency"},
            source="dependency",
        )

    def healthcheck(self) -> Response:
        """200 when the deep check passes, else 503 with the reason (JSON)."""
        result = self._health.check()
        payload = {
            "status": "healthy" if result.healthy else "unhealthy",
            "kind": result.kind,
            "reason": result.reason,
            "instance": self._instance.instance_id,
            "checked_at": round(result.checked_at, 3),
            "check_duration_ms": result.duration_ms,
        }
        return json_response(
            200 if result.healthy else 503,
            payload,
            dependency_error=not result.healthy and result.kind != "disabled",
            reason=None if result.healthy else result.kind,
        )
