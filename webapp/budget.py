"""Time budgets for dependency calls: a bounded pool that callers wait on with a deadline.

botocore's own timeouts bound one attempt, not a call with retries and back-off, so a request that
must answer within its budget runs the call in this pool and stops waiting at its deadline. The
worker may still be blocked on a black-holed socket until botocore's read timeout; the pool is
bounded so such workers cannot pile up without limit, and the circuit breaker stops new ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The caller's deadline passed before the call finished."""


class BoundedExecutor:
    """A fixed-size pool for blocking dependency calls.

    Args:
        workers: threads in the pool.
        name: thread name prefix (shows in thread dumps).
    """

    def __init__(self, workers: int, name: str = "dependency") -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Start ``fn`` in the pool."""
        return self._pool.submit(fn)

    def call(self, fn: Callable[[], T], deadline: float) -> T:
        """Run ``fn`` in the pool; return its result or raise it, or raise DeadlineExceeded.

        Args:
            fn: the blocking call.
            deadline: a ``time.monotonic()`` instant.
        """
        return wait_for(self.submit(fn), deadline)

    def shutdown(self) -> None:
        """Stop accepting work; do not wait for blocked calls (they end at botocore's timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def wait_for(future: Future[T], deadline: float) -> T:
    """The future's result if it arrives before ``deadline`` (monotonic), else DeadlineExceeded."""
    try:
        return future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        future.cancel()  # still queued: never start it, nobody is waiting any more
        raise DeadlineExceeded from None


class SingleFlight(Generic[T]):
    """One shared, cached load: concurrent callers join the load in flight, results live ``ttl`` s.

    A burst of callers (16 page requests, or every load balancer node's health check) costs one
    dependency call; each caller still waits no longer than its own deadline.

    Args:
        loader: the blocking load. Its exceptions propagate to the callers waiting on that load and
            are not cached (the next caller loads again); a loader that wants failures cached
            returns them as values.
        ttl: seconds a result stays fresh; 0 shares only the load in flight.
        executor: where the load runs.
        clock: monotonic clock.
    """

    def __init__(
        self,
        loader: Callable[[], T],
        ttl: float,
        executor: BoundedExecutor,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._ttl = ttl
        self._executor = executor
        self._clock = clock
        self._lock = threading.Lock()
        self._result: tuple[T] | None = None
        self._expires = 0.0
        self._inflight: Future[T] | None = None

    def get(self, deadline: float) -> T:
        """The fresh cached result, or the result of the (shared) load, or DeadlineExceeded."""
        with self._lock:
            if self._result is not None and self._clock() < self._expires:
                return self._result[0]
            if self._inflight is None:
                self._inflight = self._executor.submit(self._load)
            future = self._inflight
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            # Not cancelled: other callers share it, and its result will be cached when it lands.
            raise DeadlineExceeded from None

    def put(self, value: T) -> None:
        """Store a value obtained elsewhere (e.g. the health check read the flag fresh)."""
        with self._lock:
            self._result = (value,)
            self._expires = self._clock() + self._ttl

    def invalidate(self) -> None:
        """Forget the cached result."""
        with self._lock:
            self._result = None

    def _load(self) -> T:
        try:
            value = self._loader()
        except BaseException:
            with self._lock:
                self._inflight = None
            raise
        with self._lock:
            self._inflight = None
            self._result = (value,)
            self._expires = self._clock() + self._ttl
        return value
