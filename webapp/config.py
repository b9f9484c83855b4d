"""Command-line configuration. No environment variables are read here: boto3 reads its own
(``AWS_ENDPOINT_URL``, credentials), and :mod:`webapp.metadata` the IMDS ones botocore also honours."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields

DEFAULT_TABLE = "RecommendationService"
DEFAULT_FLAG_PARAMETER = "RecommendationServiceEnabled"
MAX_PROCESSES = 64


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told. Defaults are the production values.

    Timing defaults are chosen so that a page answers within ~1 s and the health check within 1 s
    whatever the dependency does, and so that a swapped instance role takes effect within 60 s.
    """

    host: str = "0.0.0.0"
    port: int = 80
    region: str = "us-east-2"
    table: str = DEFAULT_TABLE
    flag_parameter: str = DEFAULT_FLAG_PARAMETER
    instance_id: str | None = None
    availability_zone: str | None = None
    log_file: str | None = None
    emf_endpoint: str | None = None
    emf_log_group: str | None = None
    workers: int = 64
    max_pending: int = 256
    idle_timeout: float = 5.0
    dependency_workers: int = 32
    dependency_budget: float = 0.8
    healthcheck_deadline: float = 0.7
    healthcheck_cache: float = 2.0
    flag_cache: float = 2.0
    connect_timeout: float = 0.5
    read_timeout: float = 0.8
    max_attempts: int = 2
    breaker_failures: int = 5
    breaker_open_seconds: float = 5.0
    credential_max_age: float = 45.0
    credential_min_interval: float = 5.0
    imds_timeout: float = 0.3
    drain_seconds: float = 10.0
    processes: int = 0
    # Internal: set by the supervisor on the command line of each worker it spawns.
    listen_fd: int | None = None
    worker_index: int | None = None
    supervisor_pid: int | None = None

    @property
    def process_count(self) -> int:
        """How many serving processes ``processes`` means: 0 is one per CPU (at least 1)."""
        return self.processes or max(1, os.cpu_count() or 1)

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.dependency_budget <= 1.0:
            problems.append("dependency_budget must be in (0, 1] s")
        if not 0 < self.healthcheck_deadline <= 1.0:
            problems.append("healthcheck_deadline must be in (0, 1] s: the health check answers within 1 s")
        if not 0 <= self.healthcheck_cache <= 2.0:
            problems.append("healthcheck_cache must be in [0, 2] s")
        if self.credential_max_age > 60 or self.credential_max_age <= 0:
            problems.append("credential_max_age must be in (0, 60] s: a swapped role takes effect within 60 s")
        if self.credential_min_interval < 0 or self.credential_min_interval > self.credential_max_age:
            problems.append("credential_min_interval must be in [0, credential_max_age]")
        for name in ("workers", "dependency_workers", "max_attempts", "breaker_failures"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        for name in (
            "idle_timeout",
            "connect_timeout",
            "read_timeout",
            "breaker_open_seconds",
            "imds_timeout",
        ):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if self.flag_cache < 0 or self.drain_seconds < 0:
            problems.append("flag_cache and drain_seconds must not be negative")
        if not 0 <= self.port <= 65535:
            problems.append("port must be in 0-65535")
        if not 0 <= self.processes <= MAX_PROCESSES:
            problems.append(f"processes must be in 0-{MAX_PROCESSES} (0: one per CPU)")
        worker_flags = (self.listen_fd, self.worker_index, self.supervisor_pid)
        if any(value is not None for value in worker_flags):
            if None in worker_flags or self.processes != 1:
                problems.append("listen_fd, worker_index, supervisor_pid are internal: all three, with processes 1")
            elif min(value or 0 for value in worker_flags) < 0:
                problems.append("listen_fd, worker_index and supervisor_pid must not be negative")
        if problems:
            raise ValueError("; ".join(problems))


_HELP = {
    "host": "address to listen on",
    "port": "TCP port (0: any free port, logged in the 'started' event)",
    "region": "AWS region of the table and the parameter",
    "table": "DynamoDB table",
    "flag_parameter": "SSM parameter that enables the dependency (true/false)",
    "instance_id": "instance id to show and send as X-Instance-Id (default: from IMDSv2, else 'local')",
    "availability_zone": "AZ to show (default: from IMDSv2, else 'local')",
    "log_file": "append JSON logs here (default: stdout)",
    "emf_endpoint": "send EMF metrics to udp://host:port (the CloudWatch agent) instead of the log lines",
    "emf_log_group": "LogGroupName for the EMF documents (default: the agent's)",
    "workers": "threads serving connections",
    "max_pending": "connections allowed to wait or run before new ones get 503",
    "idle_timeout": "seconds a connection may sit idle or send slowly",
    "dependency_workers": "threads running dependency calls",
    "dependency_budget": "seconds a page request waits for the dependency (<= 1)",
    "healthcheck_deadline": "seconds /healthcheck waits before answering 503 dependency timeout (<= 1)",
    "healthcheck_cache": "seconds a health result is reused (<= 2)",
    "flag_cache": "seconds a flag value is reused by page requests",
    "connect_timeout": "botocore connect timeout, seconds",
    "read_timeout": "botocore read timeout, seconds",
    "max_attempts": "botocore standard-mode attempts per call (first try included)",
    "breaker_failures": "consecutive dependency failures that open the circuit breaker",
    "breaker_open_seconds": "seconds the breaker stays open before one probe",
    "credential_max_age": "rebuild AWS clients at least this often, seconds (<= 60)",
    "credential_min_interval": "rebuild AWS clients at most this often on auth errors, seconds",
    "imds_timeout": "IMDSv2 probe timeout at start-up, seconds",
    "drain_seconds": "on SIGTERM, wait this long for in-flight requests",
    "processes": "serving processes sharing the port (0: one per CPU; 1: no supervisor); a Python process "
    "uses at most one core",
    "listen_fd": "internal, set by the supervisor for its workers: serve on this inherited listening socket",
    "worker_index": "internal, set by the supervisor for its workers: the 'worker' field of every log line",
    "supervisor_pid": "internal, set by the supervisor for its workers: drain and exit when this parent is gone",
}

#: Field types argparse cannot infer from a None default.
_OPTIONAL_INT = ("listen_fd", "worker_index", "supervisor_pid")


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the command line (``--flag-parameter``, ``--dependency-budget``, ...)."""
    parser = argparse.ArgumentParser(
        prog="python -m webapp", description="Recommendation page with a deep health check."
    )
    for spec in fields(Settings):
        default = spec.default
        option = "--" + spec.name.replace("_", "-")
        kind = int if spec.name in _OPTIONAL_INT else type(default) if default is not None else str
        parser.add_argument(
            option, dest=spec.name, type=kind, default=default, help=_HELP[spec.name] + " (%(default)s)"
        )
    namespace = parser.parse_args(argv)
    try:
        return Settings(**vars(namespace))
    except ValueError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits
