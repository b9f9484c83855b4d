"""The local fleet: one ``webapp`` process per "AZ", each behind its own fault proxy, and the ASG-like
replacement of an instance (deregister, stop with drain, start a fresh one with good credentials,
register it at its new address).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from opex_cdk.assets import webapp_dir
from opex_cdk.local.processes import stop_process

from .fault_proxy import FaultProxy

_PR_SET_PDEATHSIG = 1


class FleetError(RuntimeError):
    """A service process did not start."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the harness dies without cleaning up (kill -9), so no orphans."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the harness's own cleanup still stops the child


def child_preexec() -> Callable[[], None] | None:
    """``preexec_fn`` for children of the harness (None where prctl does not exist)."""
    return _die_with_parent if sys.platform.startswith("linux") else None


@dataclass
class ServiceProcess:
    """One ``python -m webapp`` process: an "instance"."""

    instance_id: str
    az: str
    proxy: FaultProxy
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (the service drains), then SIGKILL if it will not go. Idempotent."""
        stop_process(self.process, timeout)

    def events(self, name: str) -> list[dict]:
        if not self.log_path.exists():
            return []
        found = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                found.append(record)
        return found


@dataclass
class Fleet:
    """Three (or more) slots, each running one :class:`ServiceProcess`.

    Args:
        moto_url: the moto server every proxy forwards to.
        run_dir: where logs go.
        region, table, flag_parameter: what the service reads.
        drain_seconds: the service's drain on SIGTERM (the target group's deregistration delay).
    """

    moto_url: str
    run_dir: Path
    region: str
    table: str
    flag_parameter: str
    drain_seconds: float
    slots: dict[str, ServiceProcess] = field(default_factory=dict)
    generation: dict[str, int] = field(default_factory=dict)
    retired: list[ServiceProcess] = field(default_factory=list)

    def start_instance(self, slot: str, *, timeout: float = 30.0) -> ServiceProcess:
        """Start a fresh instance for ``slot`` behind a new, healthy proxy; wait until it listens."""
        self.generation[slot] = self.generation.get(slot, 0) + 1
        instance_id = f"i-local-{slot}-{self.generation[slot]}"
        az = f"local-{slot}"
        proxy = FaultProxy(self.moto_url, name=instance_id)
        log_path = self.run_dir / f"{instance_id}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ENDPOINT_URL": proxy.endpoint_url,
                "AWS_EC2_METADATA_DISABLED": "true",
                "PYTHONPATH": str(webapp_dir().parent),
                "PYTHONUNBUFFERED": "1",
            }
        )
        command = [
            sys.executable, "-m", "webapp", "--host", "127.0.0.1", "--port", "0",
            "--region", self.region, "--table", self.table, "--flag-parameter", self.flag_parameter,
            "--instance-id", instance_id, "--availability-zone", az,
            "--log-file", str(log_path), "--drain-seconds", str(self.drain_seconds),
            "--processes", "1",  # one process per simulated instance: 3+ instances share 2 cores here
        ]  # fmt: skip
        with open(self.run_dir / f"{instance_id}.stderr", "wb") as stderr:
            process = subprocess.Popen(
                command,
                cwd=webapp_dir().parent,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                preexec_fn=child_preexec(),  # noqa: PLW1509 - only prctl, no locks taken
            )
        service = ServiceProcess(instance_id, az, proxy, process, log_path)
        self.slots[slot] = service
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = service.events("started")
            if started:
                service.port = int(started[0]["port"])
                return service
            if process.poll() is not None:
                stderr_text = (self.run_dir / f"{instance_id}.stderr").read_text(errors="replace")
                raise FleetError(f"{instance_id} exited with {process.returncode}: {stderr_text[-500:]}")
            time.sleep(0.02)
        raise FleetError(f"{instance_id} did not start within {timeout} s (log: {log_path})")

    def retire(self, slot: str) -> ServiceProcess:
        """Stop the slot's instance (drain first) and close its proxy; it stays listed in ``retired``."""
        service = self.slots.pop(slot)
        service.stop(timeout=self.drain_seconds + 5)
        service.proxy.close()
        self.retired.append(service)
        return service

    def set_fault(self, fault: str, slots: list[str] | None = None, **kwargs: float) -> None:
        """Apply ``fault`` to the proxies of ``slots`` (default: every current instance)."""
        for name in slots if slots is not None else list(self.slots):
            self.slots[name].proxy.set_fault(fault, **kwargs)

    def stop_all(self) -> None:
        """Stop every instance and proxy. Idempotent; used on exit, Ctrl-C and failure."""
        for slot in list(self.slots):
            try:
                self.retire(slot)
            except Exception:  # keep stopping the others  # noqa: BLE001
                pass
