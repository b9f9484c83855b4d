"""``--processes N`` (N > 1): one listening socket, N worker processes serving it.

Why: the service is one Python process, and a Python process runs Python code on one core at a time
(the GIL). On a 2-vCPU instance a single process cannot take the instance past ~50 % CPU, so the
Auto Scaling group's CPU target tracking (55-60 %) would never scale out on the service's own load.

How:

- The supervisor binds the port once (``--port 0``: a free one, logged in ``started`` like a single
  process does), listens, and spawns the workers: ``python -m webapp <the same arguments>
  --processes 1 --listen-fd FD --worker-index I --supervisor-pid PID`` with only that socket passed
  (spawned, never forked: nothing of the parent's state is copied). Every worker accepts on the
  shared socket; the kernel hands each connection to one of them.
- The supervisor serves nothing and builds no AWS client. It logs its own JSON events to the same
  stream (``supervisor_started``, ``worker_exited``, ``worker_restarted``, ``supervisor_stopping``,
  ``supervisor_stopped``); workers add ``worker`` (their index) to every line.
- A worker that exits while the supervisor is not stopping is restarted, at most
  :data:`MAX_RESTARTS` times per :data:`RESTART_WINDOW_SECONDS`; beyond that the supervisor stops
  everything and exits 1, and systemd (``Restart=always``) restarts the unit.
- SIGTERM/SIGINT: forwarded as SIGTERM to every worker (which drains on its own, like a single
  process), the supervisor closes its copy of the socket (so once the workers have closed theirs,
  new connections are refused), waits up to ``drain_seconds`` + :data:`STOP_MARGIN_SECONDS`, SIGKILLs
  what is left, exits 0.
- A worker whose supervisor is gone (SIGKILLed) drains and exits by itself: its main loop watches
  ``os.getppid()``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from . import __version__
from .config import Settings
from .metadata import resolve_instance_info
from .metrics import AppendFile, JsonLog
from .server import WebServer

#: Restarts allowed within :data:`RESTART_WINDOW_SECONDS` before the supervisor gives up (exit 1).
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
#: Beyond ``drain_seconds``: time for a drained worker to close its clients and exit.
STOP_MARGIN_SECONDS = 3.0
_POLL_SECONDS = 0.1


@dataclass
class Worker:
    """One worker process and its slot."""

    index: int
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return int(self.process.pid)


class Supervisor:
    """Spawns, watches, restarts and stops the workers of one shared listening socket.

    Args:
        settings: the parsed command line (``process_count`` > 1).
        arguments: the command line as given, repeated to every worker.
        log: the JSON log (the same stream as the workers').
        listener: the bound, listening socket.
        clock: monotonic clock in seconds (restart window).
    """

    def __init__(
        self,
        settings: Settings,
        arguments: Sequence[str],
        log: JsonLog,
        listener: socket.socket,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.arguments = list(arguments)
        self.log = log
        self.listener = listener
        self._clock = clock
        self.workers: dict[int, Worker] = {}
        self._restarts: deque[float] = deque()
        self._env = _worker_env()

    def command(self, index: int) -> list[str]:
        """A worker's command line: ours, plus the worker flags (the last occurrence wins in argparse)."""
        return [
            sys.executable,
            "-m",
            "webapp",
            *self.arguments,
            "--processes",
            "1",
            "--listen-fd",
            str(self.listener.fileno()),
            "--worker-index",
            str(index),
            "--supervisor-pid",
            str(os.getpid()),
        ]

    def spawn(self, index: int) -> Worker:
        process = subprocess.Popen(
            self.command(index),
            pass_fds=(self.listener.fileno(),),
            stdin=subprocess.DEVNULL,
            env=self._env,
        )
        worker = self.workers[index] = Worker(index, process)
        return worker

    def start(self) -> None:
        for index in range(self.settings.process_count):
            self.spawn(index)
        self.log.event(
            "supervisor_started",
            port=self.listener.getsockname()[1],
            pid=os.getpid(),
            workers=[worker.pid for worker in self.workers.values()],
        )

    def watch(self, stop: threading.Event) -> int:
        """Restart workers that exit until ``stop`` is set; then stop them all. Returns the exit code."""
        while not stop.wait(_POLL_SECONDS):
            for worker in list(self.workers.values()):
                code = worker.process.poll()
                if code is None:
                    continue
                self.log.event("worker_exited", level="error", worker=worker.index, pid=worker.pid, exit_code=code)
                now = self._clock()
                while self._restarts and now - self._restarts[0] > RESTART_WINDOW_SECONDS:
                    self._restarts.popleft()
                if len(self._restarts) >= MAX_RESTARTS:
                    return self.stop(
                        reason="restart_limit",
                        exit_code=1,
                        detail=f"more than {MAX_RESTARTS} restarts within {RESTART_WINDOW_SECONDS:g} s",
                    )
                self._restarts.append(now)
                replacement = self.spawn(worker.index)
                self.log.event(
                    "worker_restarted",
                    level="warning",
                    worker=worker.index,
                    pid=replacement.pid,
                    previous_pid=worker.pid,
                    restarts_in_window=len(self._restarts),
                )
        return self.stop(reason="signal", exit_code=0)

    def stop(self, *, reason: str, exit_code: int, detail: str | None = None) -> int:
        """SIGTERM every worker, close the socket, wait for the drain, SIGKILL stragglers."""
        live = [worker for worker in self.workers.values() if worker.process.poll() is None]
        extra = {"detail": detail} if detail else {}
        self.log.event(
            "supervisor_stopping",
            level="error" if exit_code else "info",
            reason=reason,
            workers=[worker.pid for worker in live],
            **extra,
        )
        for worker in live:
            _signal(worker.process, signal.SIGTERM)
        # Each worker closes its copy when it starts draining; with ours closed too, the kernel
        # refuses new connections instead of queueing them for nobody.
        self.listener.close()
        deadline = self._clock() + self.settings.drain_seconds + STOP_MARGIN_SECONDS
        killed = []
        for worker in live:
            try:
                worker.process.wait(timeout=max(0.0, deadline - self._clock()))
            except subprocess.TimeoutExpired:
                _signal(worker.process, signal.SIGKILL)
                worker.process.wait()
                killed.append(worker.pid)
        self.log.event(
            "supervisor_stopped",
            level="error" if exit_code else "info",
            exit_code=exit_code,
            killed=killed,
            workers=[
                {"worker": worker.index, "pid": worker.pid, "exit_code": worker.process.returncode}
                for worker in self.workers.values()
            ],
        )
        return exit_code


def supervise(settings: Settings, arguments: Sequence[str], stop: threading.Event) -> int:
    """Bind, spawn ``settings.process_count`` workers, watch them until ``stop``; return the exit code."""
    stream: IO[str] = AppendFile(settings.log_file) if settings.log_file else sys.stdout
    instance = resolve_instance_info(settings.instance_id, settings.availability_zone, timeout=settings.imds_timeout)
    log = JsonLog(stream, static={"instance": instance.instance_id, "az": instance.availability_zone})
    try:
        listener = bind(settings.host, settings.port)
    except OSError as error:
        log.event("bind_failed", level="error", host=settings.host, port=settings.port, error=str(error))
        log.close()
        return 1
    port = listener.getsockname()[1]
    # The same event a single process logs (tests, the game day and operators read the port from
    # it). Connections made before a worker is ready wait in the listen queue.
    log.event(
        "started",
        version=__version__,
        host=settings.host,
        port=port,
        region=settings.region,
        table=settings.table,
        flag_parameter=settings.flag_parameter,
        on_aws=instance.on_aws,
        processes=settings.process_count,
        pid=os.getpid(),
    )
    supervisor = Supervisor(settings, arguments, log, listener)
    try:
        supervisor.start()
        code = supervisor.watch(stop)
    except BaseException:
        supervisor.stop(reason="supervisor_error", exit_code=1)
        raise
    finally:
        listener.close()
    log.close()
    return code


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound like :class:`webapp.server.WebServer` binds its own."""
    listener = socket.socket(WebServer.address_family, WebServer.socket_type)
    try:
        if WebServer.allow_reuse_address:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(WebServer.request_queue_size)
    except OSError:
        listener.close()
        raise
    return listener


def _worker_env() -> dict[str, str]:
    """Our environment, with the directory this ``webapp`` package came from first on the path."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _signal(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        process.send_signal(signum)
    except ProcessLookupError:
        pass  # already gone
