"""A circuit breaker: stop calling a dependency that keeps failing, probe it again later.

Why: with a black-holed dependency every call costs the full time budget. After ``failure_threshold``
consecutive failures the breaker opens and requests take the fallback path at once; after
``open_seconds`` one request is let through as a probe (half-open): success closes the breaker,
failure opens it for another period.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    """Where the breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Thread-safe consecutive-failure circuit breaker.

    Args:
        failure_threshold: consecutive failures that open it.
        open_seconds: how long it stays open before letting one probe through.
        clock: monotonic clock (tests pass a fake one).
        on_change: called as ``on_change(old, new)`` after each state change, outside the lock.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        open_seconds: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if open_seconds <= 0:
            raise ValueError("open_seconds must be positive")
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> BreakerState:
        """The current state (an open breaker whose period is over still reads OPEN until asked)."""
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """May this request call the dependency? A True in half-open state is the single probe."""
        with self._lock:
            now = self._clock()
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if now - self._opened_at < self.open_seconds:
                    return False
                transition = self._set(BreakerState.HALF_OPEN)
                self._probe_started = now
            else:
                # Half-open: one probe at a time. A probe that never reported (its thread died)
                # must not wedge the breaker, so its lease expires after one open period.
                if self._probe_started is not None and now - self._probe_started < self.open_seconds:
                    return False
                self._probe_started = now
                transition = None
        self._notify(transition)
        return True

    def release(self) -> None:
        """Give back a permit that was not used for a call (e.g. the flag said "disabled")."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._probe_started = None

    def record_success(self) -> None:
        """A call succeeded: close the breaker and forget past failures."""
        with self._lock:
            self._failures = 0
            self._probe_started = None
            transition = self._set(BreakerState.CLOSED)
        self._notify(transition)

    def record_failure(self) -> None:
        """A call failed: count it; open on the threshold, re-open when a probe fails."""
        with self._lock:
            now = self._clock()
            transition = None
            if self._state is BreakerState.HALF_OPEN:
                self._opened_at = now
                self._probe_started = None
                transition = self._set(BreakerState.OPEN)
            elif self._state is BreakerState.CLOSED:
                self._failures += 1
                if self._failures >= self.failure_threshold:
                    self._opened_at = now
                    transition = self._set(BreakerState.OPEN)
            # Already open: late failures of calls started before it opened change nothing.
        self._notify(transition)

    def _set(self, new: BreakerState) -> tuple[BreakerState, BreakerState] | None:
        old = self._state
        if old is new:
            return None
        self._state = new
        if new is BreakerState.CLOSED:
            self._failures = 0
        return old, new

    def _notify(self, transition: tuple[BreakerState, BreakerState] | None) -> None:
        if transition is not None and self._on_change is not None:
            self._on_change(*transition)
