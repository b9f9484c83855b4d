"""``python -m webapp``: wire the parts, serve until SIGTERM/SIGINT, drain, exit 0.

With ``--processes`` above 1 this process is the supervisor (:mod:`webapp.supervisor`): it binds the
port and runs that many workers, each of which is this module again with ``--listen-fd``."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import IO

from . import __version__
from .app import HealthCheck, RecommendationService
from .breaker import BreakerState, CircuitBreaker
from .budget import BoundedExecutor
from .clients import AwsClients, botocore_config
from .config import Settings, parse_args
from .dependency import RecommendationDependency
from .metadata import resolve_instance_info
from .metrics import AppendFile, EmfUdpSink, JsonLog
from .server import WebServer


def run(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run the service until ``stop`` is set (by a signal handler in :func:`main`); return the exit code.

    As a supervisor's worker (``settings.listen_fd`` set) it serves on the inherited socket, adds
    ``worker`` to every log line, and also stops when its supervisor is gone.
    """
    stop = stop or threading.Event()
    stream: IO[str] = AppendFile(settings.log_file) if settings.log_file else sys.stdout
    instance = resolve_instance_info(settings.instance_id, settings.availability_zone, timeout=settings.imds_timeout)
    static: dict[str, object] = {"instance": instance.instance_id, "az": instance.availability_zone}
    if settings.worker_index is not None:
        static["worker"] = settings.worker_index
    log = JsonLog(
        stream,
        static=static,
        emf_sink=EmfUdpSink(settings.emf_endpoint) if settings.emf_endpoint else None,
        emf_log_group=settings.emf_log_group,
    )

    def breaker_changed(old: BreakerState, new: BreakerState) -> None:
        event = {BreakerState.OPEN: "breaker_opened", BreakerState.CLOSED: "breaker_closed"}.get(new, "breaker_probe")
        log.event(event, level="warning" if new is BreakerState.OPEN else "info", old=old.value, new=new.value)

    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_open_seconds, on_change=breaker_changed)
    executor = BoundedExecutor(settings.dependency_workers)
    clients = AwsClients(
        settings.region,
        botocore_config(
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_attempts=settings.max_attempts,
            max_pool_connections=settings.dependency_workers,
        ),
        max_age=settings.credential_max_age,
        min_interval=settings.credential_min_interval,
        on_rebuild=lambda generation, reason: log.event("clients_rebuilt", generation=generation, reason=reason),
    )
    dependency = RecommendationDependency(
        clients=clients,
        table=settings.table,
        flag_parameter=settings.flag_parameter,
        breaker=breaker,
        executor=executor,
        flag_ttl=settings.flag_cache,
        budget_seconds=settings.dependency_budget,
        log=log,
    )
    health = HealthCheck(
        dependency,
        executor,
        cache_seconds=settings.healthcheck_cache,
        deadline_seconds=settings.healthcheck_deadline,
    )
    app = RecommendationService(
        dependency=dependency, health=health, instance=instance, budget_seconds=settings.dependency_budget
    )
    try:
        inherited = None if settings.listen_fd is None else socket.socket(fileno=settings.listen_fd)
        server = WebServer(
            (settings.host, settings.port),
            app,
            log=log,
            instance_id=instance.instance_id,
            workers=settings.workers,
            max_pending=settings.max_pending,
            idle_timeout=settings.idle_timeout,
            listen_socket=inherited,
        )
    except OSError as error:
        log.event("bind_failed", level="error", host=settings.host, port=settings.port, error=str(error))
        return 1
    # Warm up before taking traffic: the first call of a fresh client loads models and opens the
    # connection, which on a busy host can eat most of a request's budget. One deep check (bounded
    # by its deadline, success not required) does it, fills the flag cache and logs what it found.
    warmup = health.check()
    log.event("warmed_up", healthy=warmup.healthy, kind=warmup.kind, reason=warmup.reason)
    clients.start()
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="accept", daemon=True)
    serving.start()
    log.event(
        "started",
        version=__version__,
        host=settings.host,
        port=server.port,
        region=settings.region,
        table=settings.table,
        flag_parameter=settings.flag_parameter,
        on_aws=instance.on_aws,
    )
    while not stop.wait(0.1):
        if settings.supervisor_pid is not None and os.getppid() != settings.supervisor_pid:
            log.event("supervisor_gone", level="error", supervisor_pid=settings.supervisor_pid)
            break  # SIGKILLed or crashed: a worker must not outlive it (nobody would stop it)
    log.event("draining", in_flight=server.in_flight(), drain_seconds=settings.drain_seconds)
    server.shutdown()  # no more accepts
    server.socket.close()  # refuse new connections now, not after the drain
    drained = server.drain(settings.drain_seconds)
    server.server_close()
    clients.stop()
    executor.shutdown()
    log.event("stopped", drained=drained, in_flight=server.in_flight())
    log.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, install SIGTERM/SIGINT handlers, run (or supervise workers that run)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    settings = parse_args(arguments)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if settings.listen_fd is None and settings.process_count > 1:
        from .supervisor import supervise

        return supervise(settings, arguments, stop)
    return run(settings, stop)


if __name__ == "__main__":
    code = main()
    # Requests are drained and the log is closed. What may remain are pool threads blocked on a
    # dependency call nobody waits for; interpreter shutdown would join them (up to botocore's read
    # timeout x attempts), so leave now instead.
    sys.stdout.flush()
    os._exit(code)
