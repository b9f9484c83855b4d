"""Run a moto server as a child process on 127.0.0.1, on a free port, and never leave it behind.

Example::

    with start_moto_server() as moto:
        boto3.client("dynamodb", endpoint_url=moto.endpoint_url, region_name="us-east-2", ...)

A process (not moto's in-process mock) is what process-level tests need: the service under test is
another process that reaches "AWS" over HTTP through ``AWS_ENDPOINT_URL``, exactly as on EC2.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from opex_cdk.local.processes import stop_process

__all__ = ["MotoServer", "MotoServerError", "free_port", "start_moto_process", "start_moto_server"]

#: Servers started by this process and not yet stopped: stopped at interpreter exit as a last resort.
_RUNNING: set[MotoServer] = set()
_RUNNING_LOCK = threading.Lock()


class MotoServerError(RuntimeError):
    """The moto server did not start (or died before it answered)."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the caller must tolerate a lost race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _moto_command(host: str, port: int) -> list[str]:
    """The venv's ``moto_server`` console script when present, else ``python -m moto.server``."""
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", host, "-p", str(port)]
    on_path = shutil.which("moto_server")
    if on_path:
        return [on_path, "-H", host, "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


class MotoServer:
    """A running moto server child process.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``, for boto3's ``endpoint_url`` or ``AWS_ENDPOINT_URL``.
        host: the address it listens on.
        port: its TCP port.
        process: the :class:`subprocess.Popen` handle.

    Use it as a context manager, or call :meth:`stop` (idempotent). Servers still running when the
    interpreter exits are stopped by an ``atexit`` hook, also when the process was started elsewhere
    and only wrapped here (``MotoServer(process, host, port, log)``).
    """

    def __init__(self, process: subprocess.Popen[bytes], host: str, port: int, log: IO[bytes] | None) -> None:
        self.process = process
        self.host = host
        self.port = port
        self.endpoint_url = f"http://{host}:{port}"
        self._log = log
        self._stop_lock = threading.Lock()
        with _RUNNING_LOCK:  # whoever started the process, it is stopped at interpreter exit at the latest
            _RUNNING.add(self)

    def __repr__(self) -> str:
        return f"MotoServer(endpoint_url={self.endpoint_url!r}, pid={self.process.pid})"

    def __enter__(self) -> MotoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self.process.poll() is None

    def reset(self) -> None:
        """Forget every resource moto holds (``POST /moto-api/reset``), keeping the process."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: SIGTERM, wait up to ``timeout`` s, then SIGKILL and wait. Idempotent."""
        with self._stop_lock:
            stop_process(self.process, timeout)
            if self._log is not None:
                self._log.close()
                self._log = None
        with _RUNNING_LOCK:
            _RUNNING.discard(self)


def _wait_until_ready(process: subprocess.Popen[bytes], endpoint_url: str, timeout: float) -> None:
    """Poll moto's own API until it answers, failing fast if the process exits."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise MotoServerError(f"moto server exited with code {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/data.json", timeout=1.0) as response:
                response.read()
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            last_error = error
        time.sleep(0.05)
    raise MotoServerError(f"moto server at {endpoint_url} not ready after {timeout} s: {last_error}")


def start_moto_server(
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    startup_timeout: float = 20.0,
    attempts: int = 3,
) -> MotoServer:
    """Start a moto server and return once it answers HTTP.

    Args:
        host: address to bind. Default: ``127.0.0.1`` (never expose moto beyond the machine).
        port: TCP port. Default: a free port (retried up to ``attempts`` times if another process
            takes it between the check and the bind).
        env: extra environment for the server, e.g. ``{"INITIAL_NO_AUTH_ACTION_COUNT": "3"}`` to make
            moto enforce IAM after three calls. Default: none.
        log_path: file that receives the server's stdout/stderr (werkzeug logs every request).
            Default: discarded, because an unread pipe would eventually block the server.
        startup_timeout: seconds to wait for the first answer. Default: 20.
        attempts: start attempts when the port is chosen here. Default: 3.

    Raises:
        MotoServerError: the server did not answer in time or exited.
    """
    return start_moto_process(
        _moto_command,
        host=host,
        port=port,
        env=env,
        log_path=log_path,
        startup_timeout=startup_timeout,
        attempts=attempts,
    )


def start_moto_process(
    command: Callable[[str, int], Sequence[str]],
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    startup_timeout: float = 20.0,
    attempts: int = 3,
) -> MotoServer:
    """Start ``command(host, port)``, a process serving moto's HTTP API, and return once it answers.

    What :func:`start_moto_server` does for ``moto_server``, for any command line that serves moto
    (e.g. :mod:`opex_cdk.local.keepalive_moto`): free port, readiness wait on ``/moto-api/data.json``,
    and the process stopped (never orphaned) when it does not answer. Arguments as there.
    """
    child_env = {**os.environ, **(env or {})}
    last_error: MotoServerError | None = None
    for _ in range(attempts if port is None else 1):
        chosen = port if port is not None else free_port(host)
        log = open(log_path, "ab") if log_path is not None else None  # closed by MotoServer.stop()
        process = subprocess.Popen(
            list(command(host, chosen)),
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
            env=child_env,
        )
        server = MotoServer(process, host, chosen, log)
        try:
            _wait_until_ready(process, server.endpoint_url, startup_timeout)
        except MotoServerError as error:
            server.stop()
            last_error = error
            continue
        except BaseException:
            # KeyboardInterrupt while waiting must not leave the child behind either.
            server.stop()
            raise
        return server
    assert last_error is not None
    raise last_error


@atexit.register
def _stop_all() -> None:
    """Last-resort cleanup so an interrupted run never leaves moto servers behind."""
    with _RUNNING_LOCK:
        servers = list(_RUNNING)
    for server in servers:
        server.stop()
