"""Run the game day: start everything, drive the phases, let the healer act, stop everything, measure.

Processes: a moto server (seeded like the Data stack), three service processes behind fault proxies,
HAProxy. Every one of them is stopped on normal exit, on an exception, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import importlib.util
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

from opex_cdk.assets import lambda_code_dir
from opex_cdk.local.moto_server import MotoServer, free_port, start_moto_server
from opex_cdk.local.seed import seed_dependency, set_flag
from opex_cdk.seed_data import FLAG_PARAMETER_NAME, TABLE_NAME

from .fleet import Fleet
from .haproxy import Haproxy, ServerHealth, Slot, render_config
from .load import LoadGenerator, RequestRecord
from .scenario import GOALS, Profile
from .settings import HealthCheckSettings

SLOTS = ("a", "b", "c")
REGION = "us-east-2"
SAMPLE_SECONDS = 0.1


class GamedayError(RuntimeError):
    """The game day could not run (missing tool, busy port, a process that would not start)."""


def load_healer_decision() -> ModuleType:
    """``lambda/healer/decision.py``, imported by file path (the Lambda's code is not a package)."""
    if "gameday_healer_decision" in sys.modules:
        return sys.modules["gameday_healer_decision"]
    path = lambda_code_dir("healer") / "decision.py"
    spec = importlib.util.spec_from_file_location("gameday_healer_decision", path)
    if spec is None or spec.loader is None:
        raise GamedayError(f"cannot load the healer's decision function from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def check_port_free(port: int) -> None:
    """Raise a clear error when ``port`` on 127.0.0.1 is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise GamedayError(
                f"port {port} on 127.0.0.1 is busy ({error.strerror}); choose another with --port or stop what uses it"
            ) from None


@dataclass
class Sample:
    """HAProxy's view at one moment: status per slot, healthy count, instances taking traffic."""

    t: float
    status: dict[str, str]
    healthy: int
    in_rotation: int
    fail_open: bool
    checks_passed: int = 0  # servers whose last check passed (L7OK)


@dataclass
class RunResult:
    """Everything measured; :mod:`gameday.report` turns it into numbers and a picture."""

    settings: HealthCheckSettings
    profile: Profile
    phases: list[dict[str, Any]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    healer_hold_seconds: float = 0.0
    wall_seconds: float = 0.0


class _Interrupted(BaseException):
    """SIGTERM, turned into an exception so the clean-up in ``finally`` runs."""


class Harness:
    """One game-day run.

    Args:
        settings: the synthesized health-check settings.
        profile: phase lengths and request rate.
        run_dir: where configs and process logs go.
        port: HAProxy's listening port. Default: a free one.
        healer_hold_seconds: how long an unchanged unhealthy set must persist before the healer is asked,
            like the alarm that invokes it. Default: unhealthy threshold x interval, long enough for a
            shared fault to reach every target before the healer judges the fleet.
        log: progress lines. Default: print.
    """

    def __init__(
        self,
        settings: HealthCheckSettings,
        profile: Profile,
        run_dir: Path,
        *,
        port: int | None = None,
        healer_hold_seconds: float | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.run_dir = run_dir
        self.port = port
        self.log = log
        hold = settings.unhealthy_threshold * settings.interval_seconds
        self.result = RunResult(
            settings, profile, healer_hold_seconds=hold if healer_hold_seconds is None else healer_hold_seconds
        )
        self.decision = load_healer_decision()
        self.moto: MotoServer | None = None
        self.fleet: Fleet | None = None
        self.haproxy: Haproxy | None = None
        self.load: LoadGenerator | None = None
        self._zero = 0.0
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        self._replacing: set[str] = set()
        # Launched, not yet healthy since registration (slot -> registration time): never acted on.
        self._initial: dict[str, float] = {}
        # The ASG: replacements run on one long-lived thread, because a child's "die with parent" signal
        # (PR_SET_PDEATHSIG) fires when the thread that started it exits.
        self._asg_queue: queue.Queue[str | None] = queue.Queue()
        self._asg = threading.Thread(target=self._asg_loop, name="asg", daemon=True)
        self._replacements = 0
        self._unhealthy_set: tuple[str, ...] = ()
        self._unhealthy_since = 0.0
        self._acted_on: tuple[str, ...] = ()
        self._lock = threading.Lock()

    # ---- public ------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Start, run every phase, stop. Always stops what it started, whatever happens."""
        previous = signal.getsignal(signal.SIGTERM)
        in_main = threading.current_thread() is threading.main_thread()

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            raise _Interrupted()

        if in_main:
            signal.signal(signal.SIGTERM, on_sigterm)
        started = time.monotonic()
        try:
            self._start()
            for plan in self.profile.phases:
                self._run_phase(plan.name, plan.min_seconds, plan.after_goal_seconds)
        except _Interrupted:
            raise KeyboardInterrupt("SIGTERM") from None
        finally:
            self._stop()
            if in_main:
                signal.signal(signal.SIGTERM, previous)
            self.result.wall_seconds = time.monotonic() - started
        return self.result

    # ---- start / stop ------------------------------------------------------------------------

    def _start(self) -> None:
        if self.port is not None:
            check_port_free(self.port)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log("starting moto (AWS APIs on 127.0.0.1) and seeding the table and the flag")
        self.moto = start_moto_server(log_path=self.run_dir / "moto.log")
        seed_dependency(self.moto.endpoint_url, REGION)
        self.fleet = Fleet(
            self.moto.endpoint_url,
            self.run_dir,
            REGION,
            TABLE_NAME,
            FLAG_PARAMETER_NAME,
            drain_seconds=float(self.settings.deregistration_delay_seconds),
        )
        self.log("starting three service processes, one per 'AZ', each behind its own fault proxy")
        for slot in SLOTS:
            self.fleet.start_instance(slot)
        port = self.port if self.port is not None else free_port()
        config = render_config(
            self.settings,
            [Slot(name, self.fleet.slots[name].port) for name in SLOTS],
            frontend_port=port,
            stats_socket=self.run_dir / "haproxy.sock",
        )
        self.haproxy = Haproxy.start(config, self.run_dir, self.run_dir / "haproxy.sock")
        self.port = port
        self.log(
            f"haproxy on 127.0.0.1:{port}: GET {self.settings.path} every {self.settings.interval_seconds} s, "
            f"timeout {self.settings.timeout_seconds} s, fall {self.settings.unhealthy_threshold}, "
            f"rise {self.settings.healthy_threshold} (from {self.settings.stack_name})"
        )
        self._zero = time.monotonic()
        self._sampler = threading.Thread(target=self._sample_loop, name="sampler", daemon=True)
        self._sampler.start()
        self._asg.start()
        self.load = LoadGenerator(port, self.profile.rate, self._zero).start()

    def _stop(self) -> None:
        steps: list[tuple[str, Callable[[], Any]]] = []
        if self.load is not None:
            steps.append(("load", lambda: self.result.requests.extend(self.load.stop())))  # type: ignore[union-attr]
        steps.append(("sampler", self._stop_sampler))  # no new decisions
        steps.append(("asg", self._stop_asg))  # let a replacement in progress finish, so it is stopped below
        if self.haproxy is not None:
            steps.append(("haproxy", self.haproxy.stop))
        if self.fleet is not None:
            steps.append(("fleet", self.fleet.stop_all))
        if self.moto is not None:
            steps.append(("moto", self.moto.stop))
        for name, step in steps:
            try:
                step()
            except Exception as error:  # noqa: BLE001 - keep stopping the rest
                self.log(f"warning: stopping {name} failed: {error}")
        self.load, self.haproxy, self.moto = None, None, None

    def _stop_asg(self) -> None:
        if self._asg.is_alive():
            self._asg_queue.put(None)
            self._asg.join(timeout=30)

    def _stop_sampler(self) -> None:
        self._stop_sampling.set()
        if self._sampler is not None:
            self._sampler.join(timeout=5)

    # ---- phases ------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self._zero

    def event(self, kind: str, **fields: Any) -> None:
        record = {"t": round(self.now(), 3), "event": kind, **fields}
        with self._lock:
            self.result.events.append(record)
        self.log(f"  t={record['t']:7.2f}s {kind} " + " ".join(f"{k}={v}" for k, v in fields.items()))

    def _act(self, name: str) -> None:
        assert self.moto is not None and self.fleet is not None
        if name == "dependency-off":
            set_flag(self.moto.endpoint_url, REGION, "false")
            self.event("fault", what="flag RecommendationServiceEnabled=false", scope="fleet")
        elif name == "restore-flag":
            set_flag(self.moto.endpoint_url, REGION, "true")
            self.event("restore", what="flag RecommendationServiceEnabled=true", scope="fleet")
        elif name == "single-server-fault":
            self.fleet.set_fault("access-denied", ["a"])
            self.event("fault", what="access denied (swapped role)", scope=self.fleet.slots["a"].instance_id)
        elif name == "dependency-blackholed":
            self.fleet.set_fault("blackhole")
            self.event("fault", what="dependency black-holed", scope="fleet")
        elif name == "restore-network":
            self.fleet.set_fault("pass")
            self.event("restore", what="dependency reachable", scope="fleet")

    def _goal_met(self, goal: str, since: float) -> bool:
        samples = self._samples_since(since)
        if not samples:
            return False
        last = samples[-1]
        if goal == "all-healthy":
            return last.healthy == len(SLOTS)
        if goal == "all-checked":
            # HAProxy starts a server UP with its health counter at the threshold, so the first failed check
            # would take it out at once; after one passed check it needs the full unhealthy threshold.
            return last.healthy == len(SLOTS) and last.checks_passed == len(SLOTS)
        if goal == "fail-open":
            return any(s.fail_open for s in samples)
        if goal == "faulted-out":
            return any(not s.status.get("a", "").startswith("UP") for s in samples)
        if goal == "replaced-healthy":
            return self._replacements >= 1 and not self._replacing and last.healthy == len(SLOTS)
        raise ValueError(f"goal {goal!r} unknown")

    def _run_phase(self, name: str, min_seconds: float, after_goal: float) -> None:
        start = self.now()
        self.log(f"phase {name}")
        self._act(name)
        goal = GOALS[name]
        max_seconds = max(min_seconds, self._goal_bound(goal)) + after_goal + 10
        goal_at: float | None = None
        while True:
            elapsed = self.now() - start
            if goal_at is None and self._goal_met(goal, start):
                goal_at = self.now()
            if goal_at is not None and elapsed >= min_seconds and self.now() - goal_at >= after_goal:
                break
            if elapsed >= max_seconds:
                self.event("goal_missed", phase=name, goal=goal, waited=round(elapsed, 1))
                break
            time.sleep(0.05)
        self.result.phases.append(
            {
                "name": name,
                "start": round(start, 3),
                "end": round(self.now(), 3),
                "goal": goal,
                "goal_at": None if goal_at is None else round(goal_at, 3),
            }
        )

    def _goal_bound(self, goal: str) -> float:
        s = self.settings
        if goal == "replaced-healthy":
            return self.result.healer_hold_seconds + s.deregistration_delay_seconds + s.admission_seconds + 10
        if goal in ("all-healthy", "all-checked"):
            return s.admission_seconds + s.interval_seconds + s.timeout_seconds
        return s.detection_bound_seconds

    # ---- sampling and the healer -------------------------------------------------------------

    def _samples_since(self, since: float) -> list[Sample]:
        with self._lock:
            return [s for s in self.result.samples if s.t >= since]

    def _sample_loop(self) -> None:
        while not self._stop_sampling.wait(SAMPLE_SECONDS):
            taken = self.now()
            try:
                health = self.haproxy.health() if self.haproxy is not None else []
            except OSError:
                continue  # haproxy is stopping
            status = {h.name: h.status for h in health}
            healthy = sum(1 for h in health if h.healthy)
            serving = sum(1 for h in health if not h.status.startswith("MAINT"))
            fail_open = healthy == 0 and serving > 0
            passed = sum(1 for h in health if h.check_status == "L7OK")
            sample = Sample(round(taken, 3), status, healthy, healthy if healthy else serving, fail_open, passed)
            with self._lock:
                self.result.samples.append(sample)
            self._heal(health, taken)

    def _heal(self, health: list[ServerHealth], taken: float) -> None:
        """The local healer: ask the Lambda's decision function once the unhealthy set has held steady."""
        if self.fleet is None or self._replacing:
            return
        for h in health:
            if h.healthy and h.name in self._initial and taken > self._initial[h.name]:
                del self._initial[h.name]
        unhealthy = tuple(sorted(h.name for h in health if not h.healthy))
        if unhealthy != self._unhealthy_set:
            self._unhealthy_set, self._unhealthy_since = unhealthy, self.now()
            return
        if not unhealthy or unhealthy == self._acted_on:
            return
        if self.now() - self._unhealthy_since < self.result.healer_hold_seconds:
            return
        self._acted_on = unhealthy
        targets = []
        for h in health:
            service = self.fleet.slots.get(h.name)
            if service is None:
                continue
            targets.append(
                self.decision.TargetState(
                    instance_id=service.instance_id,
                    az=service.az,
                    healthy=h.healthy,
                    replaceable=(not h.healthy) and h.status.startswith("DOWN") and h.name not in self._initial,
                )
            )
        decision = self.decision.decide(targets, recent_replacements=self._replacements)
        self.event(
            "healer_decision",
            replace=list(decision.replace),
            fleet_wide=decision.fleet_wide,
            reason=decision.refusal_reason or "",
        )
        by_instance = {s.instance_id: slot for slot, s in self.fleet.slots.items()}
        for instance_id in decision.replace:
            slot = by_instance[instance_id]
            self._replacing.add(slot)
            self._asg_queue.put(slot)

    def _asg_loop(self) -> None:
        while (slot := self._asg_queue.get()) is not None:
            self._replace(slot)

    def _replace(self, slot: str) -> None:
        """What the ASG does with an instance marked unhealthy: terminate it, launch a fresh one."""
        assert self.fleet is not None and self.haproxy is not None
        try:
            old = self.fleet.slots[slot].instance_id
            self.haproxy.drain_slot(slot)
            self.fleet.retire(slot)
            self.event("instance_terminated", instance=old)
            new = self.fleet.start_instance(slot)
            self._initial[slot] = float("inf")
            self.haproxy.move_slot(slot, new.port)
            self._initial[slot] = self.now()
            self._replacements += 1
            self.event("instance_launched", instance=new.instance_id, port=new.port)
        except Exception as error:  # noqa: BLE001 - reported; the run's expectations then fail
            self.event("replacement_failed", slot=slot, error=str(error)[:300])
        finally:
            self._unhealthy_since = self.now()
            self._replacing.discard(slot)
            self._acted_on = ()
