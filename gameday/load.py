"""A fixed-rate (open-loop) load generator that records every request.

Requests are scheduled at ``rate`` per second whatever the answers do, and latency is measured from the
scheduled time, so a stalled backend shows up as latency instead of silently lowering the request rate
(no coordinated omission).
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

INSTANCE_HEADER = "X-Instance-Id"
SOURCE_HEADER = "X-Recommendation-Source"


@dataclass(frozen=True)
class RequestRecord:
    """One request as a user saw it. ``status`` 0: no HTTP answer (connection error or timeout)."""

    t: float  # seconds since the run's start, when the request was due
    status: int
    latency: float  # seconds, from due time to the full answer (or the error)
    instance: str | None
    source: str | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LoadGenerator:
    """Send ``GET path`` to ``127.0.0.1:port`` at ``rate`` requests per second until :meth:`stop`.

    Args:
        port: the load balancer's port.
        rate: requests per second (1-500).
        clock_zero: ``time.monotonic()`` value that is t = 0 in the records.
        path: request path. Default: ``/``.
        timeout: per-request timeout in seconds. Default: 5.
        max_requests: hard cap on requests sent (a safety bound). Default: 100000.
        workers: concurrent requests at most. Default: 64.
    """

    def __init__(
        self,
        port: int,
        rate: float,
        clock_zero: float,
        *,
        path: str = "/",
        timeout: float = 5.0,
        max_requests: int = 100_000,
        workers: int = 64,
    ) -> None:
        if not 1 <= rate <= 500:
            raise ValueError(f"rate: {rate} is not allowed; allowed: 1-500 requests per second")
        self.port, self.rate, self.clock_zero = port, rate, clock_zero
        self.path, self.timeout, self.max_requests = path, timeout, max_requests
        self.records: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
        self._thread = threading.Thread(target=self._schedule, name="load-scheduler", daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> list[RequestRecord]:
        """Stop scheduling, wait for requests in flight, return every record sorted by time. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)
        with self._lock:
            return sorted(self.records, key=lambda r: r.t)

    def _schedule(self) -> None:
        period = 1.0 / self.rate
        started = time.monotonic()
        for n in range(self.max_requests):
            due = started + n * period
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self._pool.submit(self._one, due)

    def _one(self, due: float) -> None:
        # A fresh connection per request: a user's browser, not a pooled client whose idle connection the
        # load balancer may have closed (which would count a client artefact as a failure).
        status, instance, source, error = 0, None, None, None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers={"User-Agent": "gameday-load", "Connection": "close"})
            response = conn.getresponse()
            response.read()
            status = response.status
            instance, source = response.getheader(INSTANCE_HEADER), response.getheader(SOURCE_HEADER)
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            conn.close()
        record = RequestRecord(due - self.clock_zero, status, time.monotonic() - due, instance, source, error)
        with self._lock:
            self.records.append(record)
