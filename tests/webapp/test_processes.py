"""``--processes N``: a supervisor binds the port once and runs N workers on it.

Real processes on 127.0.0.1 against the session's moto server: both workers serve, SIGTERM drains
every process, a killed worker is restarted, a killed supervisor takes its workers with it, a port in
use is still exit 1; plus the command-line checks and the restart limit (with fake workers).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from opex_cdk.local import MotoServer
from tests.webapp.conftest import SpawnWebapp
from tests.webapp.support import FaultProxy, Reply, WebappProcess, request, wait_until
from webapp import supervisor as supervisor_module
from webapp.app import Response, json_response
from webapp.config import MAX_PROCESSES, Settings, parse_args
from webapp.metrics import JsonLog
from webapp.server import WebServer

pytestmark = pytest.mark.xdist_group("webapp-processes")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie may wait for a lazy PID 1)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def refused(port: int) -> bool:
    """True when nothing listens on the port any more."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # raced the last listener's close (handshake reset): ask again
    return False


def worker_pids(service: WebappProcess) -> list[int]:
    return [int(pid) for pid in service.events("supervisor_started")[0]["workers"]]


def wait_workers_started(service: WebappProcess, count: int = 2, timeout: float = 30.0) -> WebappProcess:
    """The supervisor's ``started`` comes at bind time; wait for each worker's own ``started`` too."""
    service.wait_started(timeout)
    wait_until(lambda: len([e for e in service.events("started") if "worker" in e]) >= count, timeout)
    return service


@pytest.fixture(scope="module")
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto.endpoint_url)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def services(moto: MotoServer, proxy: FaultProxy, spawn: SpawnWebapp) -> dict[str, WebappProcess]:
    """Started together (start-up is mostly imports), each waited for by the test that uses it."""
    two = ("--processes", "2")
    return {
        "pair": spawn("pair", moto.endpoint_url, *two, wait=False),
        "drain": spawn(
            "drain", proxy.endpoint_url, *two, "--dependency-budget", "1.0", "--idle-timeout", "2", wait=False
        ),
        "orphans": spawn("orphans", moto.endpoint_url, *two, wait=False),
    }


def test_both_workers_serve_the_shared_port(services: dict[str, WebappProcess]) -> None:
    service = wait_workers_started(services["pair"])
    started = service.events("started")
    assert started[0]["processes"] == 2 and "worker" not in started[0]  # the supervisor's, at bind time
    assert {e["port"] for e in started} == {service.port}

    def fresh(_: int) -> Reply:
        return service.get("/")  # a new connection each time: the kernel picks a worker per connection

    with ThreadPoolExecutor(4) as pool:
        for _ in range(10):
            replies = list(pool.map(fresh, range(20)))
            assert all(r.status == 200 for r in replies), [r.status for r in replies]
            served = {line["worker"] for line in service.events("request")}
            if served == {0, 1}:
                break
    assert served == {0, 1}
    page = service.get("/")
    assert page.status == 200 and page.headers["x-recommendation-source"] == "dependency"
    assert service.get("/healthcheck").status == 200
    supervisor_started = service.events("supervisor_started")[0]
    assert supervisor_started["port"] == service.port and len(supervisor_started["workers"]) == 2


def test_sigterm_drains_every_worker_then_the_supervisor_exits_0(
    proxy: FaultProxy, services: dict[str, WebappProcess]
) -> None:
    service = wait_workers_started(services["drain"])
    pids = worker_pids(service)
    assert service.get("/").status == 200
    proxy.set("delay", targets=("DynamoDB_",), delay=0.7)
    replies: list[Reply] = []
    # Holds one worker's drain open (request line sent, headers never finished) until --idle-timeout:
    # long enough to see new connections refused while the processes drain.
    hog = socket.create_connection(("127.0.0.1", service.port))
    try:
        hog.sendall(b"GET / HTTP/1.1\r\n")
        in_flight = threading.Thread(target=lambda: replies.append(service.get("/")))
        in_flight.start()
        time.sleep(0.25)
        service.signal(signal.SIGTERM)
        wait_until(lambda: refused(service.port), 1.5)  # no new work once draining
        in_flight.join(5)
    finally:
        proxy.set("pass")
        hog.close()
    assert replies and replies[0].status == 200
    assert replies[0].headers["x-recommendation-source"] == "dependency"  # finished, not cut off
    assert service.process.wait(timeout=15) == 0
    assert not any(alive(pid) for pid in pids)
    assert refused(service.port)
    assert {e["worker"] for e in service.events("stopped")} == {0, 1}
    stopped = service.events("supervisor_stopped")
    assert stopped and stopped[0]["exit_code"] == 0 and stopped[0]["killed"] == []
    assert not service.events("worker_exited")  # exits while stopping are not failures


def test_a_killed_worker_is_restarted_and_the_service_keeps_answering(services: dict[str, WebappProcess]) -> None:
    service = wait_workers_started(services["pair"])
    victim = worker_pids(service)[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: service.events("worker_restarted"), 5)
    exited = service.events("worker_exited")
    assert exited[0]["pid"] == victim and exited[0]["exit_code"] == -signal.SIGKILL and exited[0]["level"] == "error"
    restarted = service.events("worker_restarted")[0]
    assert restarted["worker"] == exited[0]["worker"] and restarted["previous_pid"] == victim
    for _ in range(10):  # the other worker answers while the new one starts
        assert service.get("/").status == 200
    wait_until(lambda: len([e for e in service.events("started") if "worker" in e]) >= 3, 20)
    assert alive(restarted["pid"])
    assert service.get("/healthcheck").status == 200


def test_workers_do_not_outlive_a_killed_supervisor(services: dict[str, WebappProcess]) -> None:
    service = wait_workers_started(services["orphans"])
    pids = worker_pids(service)
    try:
        service.signal(signal.SIGKILL)
        service.process.wait(timeout=5)
        took = wait_until(lambda: not any(alive(pid) for pid in pids), 3)
        assert took < 2.5
        assert len(service.events("supervisor_gone")) == 2
        assert {e["worker"] for e in service.events("stopped")} == {0, 1}  # drained, not killed
        assert refused(service.port)
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_port_in_use_is_still_exit_1(
    moto: MotoServer, services: dict[str, WebappProcess], spawn: SpawnWebapp
) -> None:
    first = services["pair"].wait_started()
    second = spawn("second", moto.endpoint_url, "--port", str(first.port), "--processes", "2", wait=False)
    assert second.process.wait(timeout=20) == 1
    failed = second.events("bind_failed")
    assert failed and failed[0]["port"] == first.port
    assert not second.events("supervisor_started")  # no worker was spawned
    assert first.get("/healthcheck").status == 200


# ------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("value", [str(MAX_PROCESSES + 1), "-1"])
def test_processes_out_of_range_is_a_one_line_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["--processes", value])
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == ["python -m webapp: error: processes must be in 0-64 (0: one per CPU)"]


def test_processes_default_is_one_per_cpu() -> None:
    assert parse_args([]).processes == 0
    assert parse_args(["--processes", "0"]).process_count == max(1, os.cpu_count() or 1)
    assert parse_args(["--processes", "3"]).process_count == 3


def test_worker_flags_are_internal(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--listen-fd", "3"])  # alone, and without --processes 1
    assert "internal" in capsys.readouterr().err
    worker = parse_args(["--processes", "1", "--listen-fd", "3", "--worker-index", "0", "--supervisor-pid", "1"])
    assert (worker.listen_fd, worker.worker_index, worker.supervisor_pid) == (3, 0, 1)


def test_servers_sharing_a_socket_never_block_in_accept() -> None:
    """Two servers on one listening socket (as two workers): the one that loses the race for a
    connection must not sit in accept(), or its shutdown() would hang until the next connection."""

    class App:
        def handle(self, path: str) -> Response:
            return json_response(200, {"path": path})

    listener = supervisor_module.bind("127.0.0.1", 0)
    servers = [
        WebServer(("127.0.0.1", 0), App(), log=JsonLog(io.StringIO()), instance_id="i-x", listen_socket=sock)  # type: ignore[arg-type]
        for sock in (listener, listener.dup())
    ]
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True) for s in servers]
    try:
        for thread in threads:
            thread.start()
        assert {s.port for s in servers} == {listener.getsockname()[1]}
        for _ in range(60):  # each connection wakes both; sooner or later one loses the race
            assert request(servers[0].port, "/x", timeout=5).status == 200
    finally:
        stopping = [threading.Thread(target=s.shutdown, daemon=True) for s in servers]
        for thread in stopping:
            thread.start()
        for thread in stopping + threads:
            thread.join(3)
        hung = [thread.name for thread in stopping + threads if thread.is_alive()]
        for server in servers:
            server.server_close()
    assert not hung


# --------------------------------------------------------------------------- restart policy (fakes)


class FakeWorker:
    """Stands in for a worker's ``Popen``: the first ``crashing`` ones exit at once with code 3."""

    serial = itertools.count()
    crashing = 0

    def __init__(self, command: list[str], **kwargs: Any) -> None:
        self.command = command
        self.kwargs = kwargs
        self.pid = 10_000 + next(FakeWorker.serial)
        self.returncode: int | None = 3 if self.pid - 10_000 < FakeWorker.crashing else None

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            self.returncode = -signum

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


@pytest.fixture
def fake_supervisor(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[supervisor_module.Supervisor, io.StringIO]]:
    monkeypatch.setattr(supervisor_module.subprocess, "Popen", FakeWorker)
    FakeWorker.serial = itertools.count()
    listener = supervisor_module.bind("127.0.0.1", 0)
    stream = io.StringIO()
    settings = Settings(host="127.0.0.1", port=0, processes=2, drain_seconds=0.0)
    try:
        yield supervisor_module.Supervisor(settings, ["--port", "0"], JsonLog(stream), listener), stream
    finally:
        listener.close()


def _events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    return [r for r in map(json.loads, stream.getvalue().splitlines()) if r["event"] == name]


def test_a_crash_loop_stops_everything_with_exit_1(
    fake_supervisor: tuple[supervisor_module.Supervisor, io.StringIO],
) -> None:
    supervisor, stream = fake_supervisor
    FakeWorker.crashing = 1_000  # every worker exits at once
    supervisor.start()
    worker = supervisor.workers[1].process
    fd = str(supervisor.listener.fileno())
    assert worker.command[3:] == [  # type: ignore[attr-defined]
        *("--port", "0", "--processes", "1", "--listen-fd", fd),
        *("--worker-index", "1", "--supervisor-pid", str(os.getpid())),
    ]
    assert worker.kwargs["pass_fds"] == (supervisor.listener.fileno(),)  # type: ignore[attr-defined]
    assert supervisor.watch(threading.Event()) == 1
    assert len(_events(stream, "worker_restarted")) == supervisor_module.MAX_RESTARTS
    assert len(_events(stream, "worker_exited")) == supervisor_module.MAX_RESTARTS + 1
    assert _events(stream, "supervisor_stopping")[0]["reason"] == "restart_limit"
    assert _events(stream, "supervisor_stopped")[0]["exit_code"] == 1


def test_restarts_spread_over_time_are_not_a_crash_loop(
    fake_supervisor: tuple[supervisor_module.Supervisor, io.StringIO],
) -> None:
    supervisor, stream = fake_supervisor
    FakeWorker.crashing = 2 + 2 * supervisor_module.MAX_RESTARTS  # each crashes once, after the first two
    ticks = itertools.count(step=supervisor_module.RESTART_WINDOW_SECONDS / 3)
    supervisor._clock = lambda: float(next(ticks))
    stop = threading.Event()
    codes: list[int] = []
    supervisor.start()
    watching = threading.Thread(target=lambda: codes.append(supervisor.watch(stop)))
    watching.start()
    try:
        wait_until(lambda: len(_events(stream, "worker_restarted")) >= 2 * supervisor_module.MAX_RESTARTS, 5)
    finally:
        stop.set()
        watching.join(5)
    assert codes == [0]
    assert _events(stream, "supervisor_stopped")[0]["exit_code"] == 0
