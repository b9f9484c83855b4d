"""Config validation: every bad value stops with one line naming the field, the value and what is allowed."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opex_cdk.config import KNOWN_NAG_PACKS, LOG_RETENTION_DAYS, ConfigError, load_environment
from opex_cdk.project_context import load_project_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def context() -> dict[str, Any]:
    return copy.deepcopy(load_project_context())


def _with(context: dict[str, Any], env: str, path: str, value: Any) -> dict[str, Any]:
    node = context["environments"][env]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return context


def test_committed_environments_load(context: dict[str, Any]) -> None:
    dev = load_environment(context, "dev")
    prod = load_environment(context, "prod")
    assert dev.network.nat_gateways == 1 and prod.network.nat_gateways == prod.network.az_count == 3
    assert prod.production and not dev.production
    assert dev.network.subnet_prefix == 20
    assert dev.app_tier.health_check.detection_seconds == 12


def test_default_environment_is_dev(context: dict[str, Any]) -> None:
    context.pop("env", None)
    assert load_environment(context).name == "dev"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("network.cidr", "10.0.0.0/33", "network.cidr: '10.0.0.0/33' is not a valid IPv4 network CIDR"),
        ("network.cidr", "banana", "network.cidr: 'banana' is not a valid IPv4 network CIDR"),
        ("network.cidr", "10.0.0.1/16", "is not a valid IPv4 network CIDR"),
        ("network.cidr", "10.0.0.0/26", "network.cidr: '10.0.0.0/26' is too small for 3 subnet tiers in 3 AZs"),
        ("network.az_count", 1, "network.az_count: 1 is too few; allowed: at least 2"),
        ("network.az_count", 4, "network.az_count: 4 is more than us-east-2 has; allowed: 2 to 3"),
        ("network.nat_gateways", 4, "network.nat_gateways: 4 is not allowed; allowed: 0 to az_count (3)"),
        ("network.flow_log_retention_days", 42, "network.flow_log_retention_days: 42 is not a CloudWatch Logs"),
        ("alarm_emails", ["ops@example.com", "not-an-email"], "alarm_emails[1]: 'not-an-email' is not a valid email"),
        ("nag_packs", ["AwsSolutions", "Made.Up"], "nag_packs[1]: unknown nag pack 'Made.Up'; allowed: AwsSolutions"),
        ("network.nat_gatways", 1, "network.nat_gatways: unknown setting; allowed:"),
        ("network.az_count", "3", "network.az_count: expected a whole number, got '3'"),
        ("account", "12345", "account: '12345' is not an AWS account id"),
        ("app_tier.health_check.interval_seconds", 4, "interval_seconds: 4 is out of range; allowed: 5 to 300"),
        ("app_tier.health_check.timeout_seconds", 5, "timeout_seconds: 5 is not allowed; allowed: less than"),
        ("app_tier.health_check.unhealthy_threshold", 11, "unhealthy_threshold: 11 is out of range; allowed: 2 to 10"),
        ("app_tier.health_check.path", "/", "health_check.path: '/' is not allowed"),
        ("app_tier.min_capacity", 2, "min_capacity: 2 leaves an AZ without an instance"),
        ("app_tier.desired_capacity", 9, "desired_capacity: 9 is not allowed"),
        ("app_tier.deregistration_delay_seconds", 4000, "deregistration_delay_seconds: 4000 is out of range"),
        ("app_tier.certificate_arn", "not-an-arn", "certificate_arn: 'not-an-arn' is not an ARN"),
        ("scaling.record_name", "not a name", "scaling.record_name: 'not a name' is not a DNS name"),
        ("scaling.hosted_zone_id", "zone-1", "scaling.hosted_zone_id: 'zone-1' is not a Route 53 hosted zone id"),
        ("scaling.record_name", "app.internal", "scaling.record_name: 'app.internal' has no parent domain"),
        ("resilience.max_unhealthy_share", 1.5, "max_unhealthy_share: 1.5 is not allowed"),
    ],
)
def test_bad_value_names_field_value_and_allowed(context: dict[str, Any], path: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_environment(_with(context, "dev", path, value), "dev")
    message = str(raised.value)
    assert expected in message
    assert message.startswith("environments.dev.")
    assert "\n" not in message


def test_unknown_environment_lists_the_known_ones(context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^env: unknown environment 'stage'; allowed: dev, prod$"):
        load_environment(context, "stage")


def test_az_count_is_only_bounded_by_a_committed_lookup(context: dict[str, Any]) -> None:
    _with(context, "dev", "account", "333333333333")  # no AZ lookup committed for this account
    _with(context, "dev", "network.az_count", 4)
    _with(context, "dev", "app_tier.min_capacity", 4)
    _with(context, "dev", "app_tier.desired_capacity", 4)
    assert load_environment(context, "dev").network.az_count == 4


def test_known_nag_packs_match_the_wiring() -> None:
    from opex_cdk.nag.packs import _PACK_FACTORIES

    assert set(KNOWN_NAG_PACKS) == set(_PACK_FACTORIES)


def test_retention_days_match_the_cdk_enum() -> None:
    from opex_cdk.constructs.log_retention import SUPPORTED_DAYS

    assert tuple(LOG_RETENTION_DAYS) == SUPPORTED_DAYS


def test_app_py_stops_with_one_line_and_exit_2() -> None:
    """The app itself, given `-c env=stage` the way the CLI passes it, prints one line and exits 2."""
    expected = "opex-cdk: configuration error: env: unknown environment 'stage'; allowed: dev, prod"
    env = {"CDK_CONTEXT_JSON": '{"env": "stage"}', "PATH": os.environ["PATH"]}
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert result.stderr.strip() == expected
    assert "Traceback" not in result.stderr
