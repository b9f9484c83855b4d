"""The short profile end to end: real processes, real HAProxy, the synthesized dev settings.

Runs ``python -m gameday`` as a user would (its exit code is part of the contract), then checks the
expectations from report.json and that no process it started is left behind. ~90 s: the health check
(5 s interval, thresholds 2) sets the pace of every phase.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The game day runs on its own xdist worker (it mostly waits on health checks) beside the synth tests.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gameday")]


@pytest.fixture(autouse=True)
def _haproxy_installed() -> None:
    """`make test` installs HAProxy (Makefile target `haproxy`); without it the game day cannot run."""
    assert shutil.which("haproxy"), "haproxy is not installed: run `make haproxy` (or `make test`, which does)"


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def _run_dir(stdout: str) -> str:
    match = re.search(r"process logs in (\S+)", stdout)
    assert match, stdout[:500]
    return match.group(1)


def test_short_profile_meets_every_expectation(dev_assembly_without_nag: Path, tmp_path: Path) -> None:
    cdk_out = str(dev_assembly_without_nag)
    out = tmp_path / "report"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "gameday", "--profile", "short", "--cdk-out", cdk_out, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    wall = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    settings = report["settings"]
    # The settings are the synthesized target group's, not a copy.
    assert settings["stack"] == "opex-dev-app"
    assert (settings["path"], settings["interval_seconds"]) == ("/healthcheck", 5)
    bound = settings["unhealthy_threshold"] * settings["interval_seconds"] + settings["timeout_seconds"]
    assert settings["detection_bound_seconds"] == bound

    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == [
        "baseline", "dependency-off", "restore-flag", "single-server-fault",
        "healer-replaces", "dependency-blackholed", "restore-network",
    ]  # fmt: skip
    for phase in report["phases"]:
        assert phase["requests"] > 0
        assert phase["status_5xx"] == 0 and phase["unanswered"] == 0, phase
        assert phase["success_share"] == 1.0, phase
    # Degraded, not down: the fleet-wide faults are served from the fallback, spread over every instance.
    assert phases["dependency-off"]["fallback_share"] > 0.5
    assert phases["dependency-blackholed"]["fallback_share"] > 0.5
    assert len(phases["baseline"]["instances"]) == 3 and phases["baseline"]["fallback_share"] == 0
    assert "i-local-a-2" in phases["dependency-blackholed"]["instances"]  # the replacement serves
    timings = report["timings"]
    assert 0 < timings["mttd_s"] <= bound
    assert 0 < timings["fail_open_flag_s"] <= bound
    assert 0 < timings["fail_open_blackhole_s"] <= bound
    assert timings["mttr_s"] is not None and timings["mttr_s"] > timings["time_to_replacement_s"] > timings["mttd_s"]
    terminated = [e["instance"] for e in report["events"] if e["event"] == "instance_terminated"]
    assert terminated == ["i-local-a-1"]
    assert report["passed"] and all(e["ok"] for e in report["expectations"])
    assert (out / "timeline.png").stat().st_size > 10_000
    assert "| single-server-fault |" in (out / "report.md").read_text()
    assert wall < 150
    # Nothing left behind: no process mentions the run's directory (service logs, haproxy.cfg, moto log).
    assert _processes_mentioning(_run_dir(run.stdout)) == []


def test_ctrl_c_stops_every_process(dev_assembly_without_nag: Path, tmp_path: Path) -> None:
    cdk_out = str(dev_assembly_without_nag)
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "gameday", "--profile", "short", "--cdk-out", cdk_out, "--out", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if line.startswith("phase baseline"):
            break
    run_dir = _run_dir("".join(lines))
    assert _processes_mentioning(run_dir), "the game day should be running"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "every process it started has been stopped" in stderr
    assert _processes_mentioning(run_dir) == []
