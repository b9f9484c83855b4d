"""Health-check settings come from the synthesized target group, found through manifest.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gameday.settings import SettingsError, load_health_check_settings, settings_from_template


def _target_group(**props: object) -> dict:
    return {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": props}


APP_TEMPLATE = {
    "Resources": {
        "Tg": _target_group(
            HealthCheckPath="/healthcheck",
            HealthCheckIntervalSeconds=5,
            HealthCheckTimeoutSeconds=2,
            HealthyThresholdCount=2,
            UnhealthyThresholdCount=3,
            TargetGroupAttributes=[{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}],
        ),
        "Other": {"Type": "AWS::SNS::Topic"},
    }
}


def _assembly(root: Path, stacks: dict[str, dict], nested: str | None = None) -> Path:
    """A minimal cloud assembly: manifest.json + templates (optionally inside a nested Stage assembly)."""
    where = root / nested if nested else root
    where.mkdir(parents=True, exist_ok=True)
    artifacts = {}
    for name, template in stacks.items():
        (where / f"{name}.template.json").write_text(json.dumps(template))
        artifacts[name] = {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{name}.template.json", "stackName": name},
        }
    (where / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    if nested:
        outer = {"artifacts": {"stage": {"type": "cdk:cloud-assembly", "properties": {"directoryName": nested}}}}
        (root / "manifest.json").write_text(json.dumps(outer))
    return root


def test_reads_the_app_stack_found_through_the_manifest(tmp_path: Path) -> None:
    # The file name says nothing about which stack is the app: the target group does.
    cdk_out = _assembly(tmp_path, {"x-network": {"Resources": {}}, "some-name": APP_TEMPLATE})
    settings = load_health_check_settings(cdk_out)
    assert (settings.path, settings.interval_seconds, settings.timeout_seconds) == ("/healthcheck", 5, 2)
    assert (settings.healthy_threshold, settings.unhealthy_threshold) == (2, 3)
    assert settings.deregistration_delay_seconds == 10
    assert settings.stack_name == "some-name"
    assert settings.detection_bound_seconds == 3 * 5 + 2
    assert settings.admission_seconds == 10


def test_nested_stage_assemblies_are_searched(tmp_path: Path) -> None:
    cdk_out = _assembly(tmp_path, {"prod-app": APP_TEMPLATE}, nested="assembly-prod")
    assert load_health_check_settings(cdk_out).stack_name == "prod-app"


def test_missing_properties_take_cloudformation_defaults() -> None:
    settings = settings_from_template({"Resources": {"Tg": _target_group(HealthCheckPath="/health")}}, "s")
    assert (settings.interval_seconds, settings.timeout_seconds, settings.healthy_threshold) == (30, 5, 5)
    assert (settings.unhealthy_threshold, settings.deregistration_delay_seconds) == (2, 300)


def test_no_manifest_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no manifest.json.*make synth"):
        load_health_check_settings(tmp_path)


def test_no_or_several_app_stacks_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="0 stacks with a target group"):
        load_health_check_settings(_assembly(tmp_path / "none", {"a": {"Resources": {}}}))
    with pytest.raises(SettingsError, match=r"2 stacks with a target group \(a, b\)"):
        load_health_check_settings(_assembly(tmp_path / "two", {"a": APP_TEMPLATE, "b": APP_TEMPLATE}))


def test_a_token_instead_of_a_number_is_rejected() -> None:
    template = {"Resources": {"Tg": _target_group(HealthCheckIntervalSeconds={"Ref": "Interval"})}}
    with pytest.raises(SettingsError, match="HealthCheckIntervalSeconds is .*literal whole number"):
        settings_from_template(template, "s")
