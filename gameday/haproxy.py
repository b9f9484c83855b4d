"""HAProxy as the local ALB: config rendered from a template with the synthesized settings, the process,
and its runtime API (health per server, moving a slot to a replacement instance).

Fail-open: each instance is listed twice in one backend, once as a checked server and once as an
unchecked ``backup``. HAProxy uses backups only when no checked server is up, which is what the ALB does
when every target is unhealthy. One backend, so there is no window in which a request finds no server.
"""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from opex_cdk.local.processes import stop_process

from .settings import HealthCheckSettings

TEMPLATE_PATH = Path(__file__).with_name("haproxy.cfg.tmpl")
BACKEND = "targets"
FAILOPEN_SUFFIX = "-failopen"
#: Where the Debian package puts the binary when /usr/sbin is not on a non-root PATH.
FALLBACK_PATHS = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")


class HaproxyError(RuntimeError):
    """HAProxy is missing, rejected its config, or did not start."""


@dataclass(frozen=True)
class Slot:
    """One target: a stable server name (the "AZ") and the port its current instance listens on."""

    name: str
    port: int


@dataclass(frozen=True)
class ServerHealth:
    """One checked server as HAProxy sees it: ``status`` is ``UP``, ``DOWN``, ``MAINT``, ``UP 1/2`` ..."""

    name: str
    status: str
    check_status: str

    @property
    def healthy(self) -> bool:
        """In rotation by its health checks (``UP``, including ``UP n/m`` while it is going down)."""
        return self.status.startswith("UP")


def render_config(
    settings: HealthCheckSettings,
    slots: Sequence[Slot],
    *,
    frontend_port: int,
    stats_socket: str | Path,
    template: str | None = None,
) -> str:
    """The HAProxy configuration for ``slots`` behind ``frontend_port`` (``template``: the default file)."""
    if not slots:
        raise ValueError("slots: empty is not allowed; expected at least one target")
    names = [slot.name for slot in slots]
    if len(set(names)) != len(names) or not all(n.replace("-", "").isalnum() for n in names):
        raise ValueError(f"slots: names {names} are not allowed; expected unique letters, digits or '-'")
    lines = [f"    server {s.name} 127.0.0.1:{s.port} check" for s in slots]
    lines += [f"    server {s.name}{FAILOPEN_SUFFIX} 127.0.0.1:{s.port} backup" for s in slots]
    text = Template(template if template is not None else TEMPLATE_PATH.read_text(encoding="utf-8"))
    return text.substitute(
        stack_name=settings.stack_name or "unknown stack",
        stats_socket=str(stats_socket),
        frontend_port=frontend_port,
        path=settings.path,
        interval=settings.interval_seconds,
        timeout=settings.timeout_seconds,
        healthy=settings.healthy_threshold,
        unhealthy=settings.unhealthy_threshold,
        servers="\n".join(lines),
    )


def haproxy_binary() -> str:
    """Path of the ``haproxy`` executable, or a clear error saying how to install it."""
    found = shutil.which("haproxy") or next((p for p in FALLBACK_PATHS if Path(p).is_file()), None)
    if found is None:
        raise HaproxyError(
            "haproxy not found on PATH: install it with `make haproxy` (apt-get install haproxy) and run again"
        )
    return found


def parse_stat_csv(text: str) -> list[dict[str, str]]:
    """Rows of ``show stat`` (the header line starts with ``# ``)."""
    return list(csv.DictReader(io.StringIO(text.removeprefix("# "))))


class Haproxy:
    """A running HAProxy (foreground child process) with its admin socket.

    Use :meth:`start`; :meth:`stop` is idempotent.
    """

    def __init__(self, config_path: Path, stats_socket: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.stats_socket = stats_socket
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, config: str, run_dir: Path, stats_socket: Path, *, timeout: float = 10.0) -> Haproxy:
        """Write ``config`` to ``run_dir``, check it, start HAProxy and wait for its socket."""
        binary = haproxy_binary()
        config_path = run_dir / "haproxy.cfg"
        config_path.write_text(config, encoding="utf-8")
        check = subprocess.run([binary, "-c", "-q", "-f", str(config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise HaproxyError(f"haproxy rejected {config_path}: {(check.stderr or check.stdout).strip()[:500]}")
        proxy = cls(config_path, stats_socket, run_dir / "haproxy.log")
        with open(proxy.log_path, "wb") as log:
            proxy.process = subprocess.Popen(
                [binary, "-db", "-f", str(config_path)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proxy.process.poll() is not None:
                output = proxy.log_path.read_text(errors="replace").strip()
                raise HaproxyError(f"haproxy exited with {proxy.process.returncode}: {output[-500:]}")
            try:
                proxy.command("show info")
                return proxy
            except OSError:
                time.sleep(0.05)
        proxy.stop()
        raise HaproxyError(f"haproxy did not open {stats_socket} within {timeout} s")

    def command(self, line: str, timeout: float = 2.0) -> str:
        """Send one runtime-API command and return the answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def health(self) -> list[ServerHealth]:
        """The checked servers (backups left out), in config order."""
        rows = parse_stat_csv(self.command("show stat -1 4 -1"))
        return [
            ServerHealth(row["svname"], row["status"], row.get("check_status", ""))
            for row in rows
            if row["pxname"] == BACKEND and not row["svname"].endswith(FAILOPEN_SUFFIX)
        ]

    def move_slot(self, name: str, port: int) -> None:
        """Deregister the slot's instance and register a new one at ``port`` (both the checked and the
        fail-open entry). The checked server re-enters rotation only after ``rise`` passing checks."""
        for server in (name, name + FAILOPEN_SUFFIX):
            self._expect_ok(f"set server {BACKEND}/{server} state maint")
            self._expect_ok(f"set server {BACKEND}/{server} addr 127.0.0.1 port {port}")
        for server in (name, name + FAILOPEN_SUFFIX):
            self._expect_ok(f"set server {BACKEND}/{server} state ready")
        # Leaving maintenance HAProxy marks the server UP at once; a new ALB target starts unhealthy
        # ("initial") until it passes the healthy threshold, so force it down and let the checks raise it.
        self._expect_ok(f"set server {BACKEND}/{name} health down")

    def drain_slot(self, name: str) -> None:
        """Take the slot out of rotation (deregistration) before its instance is stopped."""
        for server in (name, name + FAILOPEN_SUFFIX):
            self._expect_ok(f"set server {BACKEND}/{server} state maint")

    def _expect_ok(self, line: str) -> None:
        answer = self.command(line).strip()
        # Success is an empty answer or an informational one ("IP changed from ...", "no need to change").
        if answer and not any(word in answer for word in ("changed", "no need", "updated")):
            raise HaproxyError(f"haproxy refused {line!r}: {answer}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop HAProxy (SIGTERM, then SIGKILL). Idempotent."""
        if self.process is not None:
            stop_process(self.process, timeout)
