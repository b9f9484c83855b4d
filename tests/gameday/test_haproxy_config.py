"""The HAProxy config is rendered from the template with the synthesized settings, and HAProxy accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gameday.haproxy import Slot, parse_stat_csv, render_config
from gameday.settings import HealthCheckSettings

SETTINGS = HealthCheckSettings("/healthcheck", 5, 2, 2, 3, 10, "opex-dev-app")
SLOTS = [Slot("a", 8001), Slot("b", 8002), Slot("c", 8003)]


def test_health_check_settings_come_from_the_target_group(tmp_path: Path) -> None:
    config = render_config(SETTINGS, SLOTS, frontend_port=9000, stats_socket=tmp_path / "s.sock")
    assert "option httpchk GET /healthcheck" in config
    assert "timeout check 2s" in config
    assert "default-server inter 5s fastinter 5s downinter 5s fall 3 rise 2" in config
    assert "bind 127.0.0.1:9000" in config
    assert f"stats socket {tmp_path / 's.sock'} mode 600 level admin" in config
    assert "opex-dev-app" in config
    assert "$" not in config  # every placeholder substituted


def test_every_instance_is_a_checked_server_and_an_unchecked_fail_open_backup(tmp_path: Path) -> None:
    config = render_config(SETTINGS, SLOTS, frontend_port=9000, stats_socket=tmp_path / "s.sock")
    for slot in SLOTS:
        assert f"server {slot.name} 127.0.0.1:{slot.port} check" in config
        assert f"server {slot.name}-failopen 127.0.0.1:{slot.port} backup" in config
    assert "option allbackups" in config
    assert not any(line.strip().startswith("bind") and "0.0.0.0" in line for line in config.splitlines())


def test_a_custom_template_is_used(tmp_path: Path) -> None:
    text = render_config(
        SETTINGS, SLOTS[:1], frontend_port=1, stats_socket="s", template="$path $interval $timeout $servers"
    )
    assert text.startswith("/healthcheck 5 2     server a 127.0.0.1:8001 check")


@pytest.mark.parametrize(
    ("slots", "message"),
    [([], "empty is not allowed"), ([Slot("a", 1), Slot("a", 2)], "unique"), ([Slot("a b", 1)], "unique")],
)
def test_bad_slots_are_rejected(slots: list[Slot], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render_config(SETTINGS, slots, frontend_port=1, stats_socket="s")


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (make haproxy)")
def test_haproxy_accepts_the_rendered_config(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(render_config(SETTINGS, SLOTS, frontend_port=9000, stats_socket=tmp_path / "s.sock"))
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_stat_csv_is_parsed() -> None:
    rows = parse_stat_csv("# pxname,svname,status,check_status,\ntargets,a,UP,L7OK,\ntargets,b,DOWN,L7STS,\n")
    assert [(r["svname"], r["status"], r["check_status"]) for r in rows] == [
        ("a", "UP", "L7OK"),
        ("b", "DOWN", "L7STS"),
    ]
