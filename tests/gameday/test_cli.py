"""Clear failures before anything starts: no HAProxy, a busy port, bad arguments, no cdk.out."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import gameday.haproxy as haproxy_module
from gameday.__main__ import main
from gameday.harness import GamedayError, check_port_free
from gameday.scenario import PHASE_NAMES, SHORT


def _cdk_out(root: Path) -> Path:
    template = {
        "Resources": {
            "Tg": {
                "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
                "Properties": {"HealthCheckPath": "/healthcheck", "HealthCheckIntervalSeconds": 5},
            }
        }
    }
    (root / "app.template.json").write_text(json.dumps(template))
    manifest = {
        "artifacts": {"app": {"type": "aws:cloudformation:stack", "properties": {"templateFile": "app.template.json"}}}
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_missing_haproxy_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(haproxy_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(haproxy_module, "FALLBACK_PATHS", ())
    assert main(["--cdk-out", str(_cdk_out(tmp_path)), "--out", str(tmp_path / "r")]) == 2
    assert "haproxy not found on PATH: install it with `make haproxy`" in capsys.readouterr().err


def test_busy_port_is_named_before_anything_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(GamedayError, match=f"port {port} on 127.0.0.1 is busy"):
            check_port_free(port)
        if haproxy_module.shutil.which("haproxy") or any(Path(p).is_file() for p in haproxy_module.FALLBACK_PATHS):
            assert main(["--cdk-out", str(_cdk_out(tmp_path)), "--port", str(port)]) == 2
            assert f"port {port} on 127.0.0.1 is busy" in capsys.readouterr().err


def test_missing_cdk_out_says_to_synthesize(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--cdk-out", str(tmp_path / "nowhere")]) == 2
    assert "make synth" in capsys.readouterr().err


def test_phase_lengths_are_configurable_and_checked() -> None:
    profile = SHORT.with_min_seconds({"baseline": 20})
    assert profile.phases[0].min_seconds == 20 and [p.name for p in profile.phases] == list(PHASE_NAMES)
    with pytest.raises(ValueError, match="phase 'lunch' is not allowed; allowed: baseline"):
        SHORT.with_min_seconds({"lunch": 1})
    with pytest.raises(SystemExit):
        main(["--phase-seconds", "baseline"])
