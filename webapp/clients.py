"""boto3 clients built once per process and rebuilt, off the request path, when credentials change.

Why rebuild at all: on EC2 botocore refreshes instance-role credentials only near their expiry (hours),
so after the instance profile is swapped the process keeps signing with the old role. The workshop's
"swap one instance's role" fault must take effect within 60 s in both directions:

- to a role *without* access: clients are rebuilt every ``max_age`` seconds (default 45 s), which
  re-reads the credential chain (IMDS on EC2, the shared credentials file locally);
- back to a role *with* access: the first auth error (AccessDenied, ExpiredToken, ...) asks for a
  rebuild at once, at most once per ``min_interval`` seconds so a flood of errors is one rebuild.

Clients are never created per request: the background thread builds the new pair and swaps one
reference; in-flight calls finish on the old pair.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from .budget import DeadlineExceeded

_attempt_deadline = threading.local()


@contextmanager
def deadline_for_attempts(deadline: float) -> Iterator[None]:
    """No new attempt (first try or retry) of a call made in this block starts after ``deadline``.

    Why: a call abandoned at its caller's deadline would otherwise go on retrying (a black-holed
    endpoint: another full read timeout) with nobody waiting for the answer, holding a pool thread.
    """
    previous = getattr(_attempt_deadline, "value", None)
    _attempt_deadline.value = deadline
    try:
        yield
    finally:
        _attempt_deadline.value = previous


def _stop_attempts_after_deadline(**kwargs: Any) -> None:
    """botocore ``before-send`` hook: raising here ends the call without a retry."""
    deadline = getattr(_attempt_deadline, "value", None)
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded("deadline passed before this attempt")


@dataclass(frozen=True)
class ClientPair:
    """The two clients the service needs, from one session (one set of credentials)."""

    ssm: Any
    dynamodb: Any
    generation: int


def botocore_config(
    *, connect_timeout: float, read_timeout: float, max_attempts: int, max_pool_connections: int
) -> Config:
    """Explicit timeouts and the ``standard`` retry mode (botocore's defaults are 60 s + legacy).

    ``max_attempts`` counts every attempt, the first included (botocore's ``total_max_attempts``;
    its ``max_attempts`` key would count retries only).
    """
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
    )


class AwsClients:
    """Holder of the current :class:`ClientPair`, with a background refresher.

    Args:
        region: AWS region.
        config: botocore config for both clients.
        max_age: rebuild at least this often (seconds).
        min_interval: never rebuild more often than this (seconds).
        session_factory: builds a session (tests may inject one). Default: ``boto3.session.Session``.
        on_rebuild: called with ``(generation, reason)`` after each rebuild (for the log).
    """

    def __init__(
        self,
        region: str,
        config: Config,
        *,
        max_age: float = 45.0,
        min_interval: float = 5.0,
        session_factory: Callable[[], Any] | None = None,
        on_rebuild: Callable[[int, str], None] | None = None,
    ) -> None:
        self._region = region
        self._config = config
        self._max_age = max_age
        self._min_interval = min_interval
        self._session_factory = session_factory or boto3.session.Session
        self._on_rebuild = on_rebuild
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._reason = "max_age"
        self._generation = 0
        self._superseded = 0  # generations up to this one are replaced (or being replaced) already
        self._built_at = time.monotonic()
        self._current = self._build()
        self._thread = threading.Thread(target=self._run, name="credential-refresher", daemon=True)

    @property
    def current(self) -> ClientPair:
        """The clients to use now (a plain attribute read: no lock on the request path)."""
        return self._current

    def start(self) -> None:
        """Start the background refresher."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the refresher."""
        self._stopping.set()
        self._wake.set()

    def report_auth_error(self, generation: int | None = None) -> None:
        """A call failed on credentials: rebuild soon (rate-limited by ``min_interval``).

        Args:
            generation: the generation of the clients that failed; a report about clients already
                replaced, or being replaced, is ignored (the rebuild it asks for has happened or is
                happening). Default: always rebuild.
        """
        if generation is not None and generation <= self._superseded:
            return
        self._reason = "auth_error"
        self._wake.set()

    def _build(self) -> ClientPair:
        session = self._session_factory()
        self._generation += 1
        pair = ClientPair(
            ssm=session.client("ssm", region_name=self._region, config=self._config),
            dynamodb=session.client("dynamodb", region_name=self._region, config=self._config),
            generation=self._generation,
        )
        for client in (pair.ssm, pair.dynamodb):
            events = getattr(getattr(client, "meta", None), "events", None)
            if events is not None:
                events.register("before-send", _stop_attempts_after_deadline)
        return pair

    def _run(self) -> None:
        while not self._stopping.is_set():
            remaining = self._max_age - (time.monotonic() - self._built_at)
            self._wake.wait(timeout=max(0.0, remaining))
            if self._stopping.is_set():
                return
            # Rate limit: an auth-error storm (every request failing) becomes one rebuild per interval.
            since = time.monotonic() - self._built_at
            if since < self._min_interval:
                self._stopping.wait(self._min_interval - since)
                if self._stopping.is_set():
                    return
            reason = self._reason
            self._wake.clear()
            self._reason = "max_age"
            # From here on, errors from the current clients are old news: this rebuild answers them.
            self._superseded = self._current.generation
            try:
                self._current = self._build()
            except Exception as error:  # keep the old clients; try again next period
                self._built_at = time.monotonic()
                if self._on_rebuild is not None:
                    self._on_rebuild(-1, f"{reason}: rebuild failed: {error}")
                continue
            self._built_at = time.monotonic()
            if self._on_rebuild is not None:
                self._on_rebuild(self._current.generation, reason)
