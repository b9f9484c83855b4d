"""The health-check settings of the synthesized target group, read from ``cdk.out`` (never duplicated).

The stack is found through ``manifest.json`` (nested assemblies of CDK Stages included), not by file
name: the app stack is whichever stack template holds exactly one
``AWS::ElasticLoadBalancingV2::TargetGroup``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_GROUP_TYPE = "AWS::ElasticLoadBalancingV2::TargetGroup"

# CloudFormation's defaults for an HTTP target group when a property is left out of the template.
_CFN_DEFAULTS = {
    "HealthCheckPath": "/",
    "HealthCheckIntervalSeconds": 30,
    "HealthCheckTimeoutSeconds": 5,
    "HealthyThresholdCount": 5,
    "UnhealthyThresholdCount": 2,
}
_DEFAULT_DEREGISTRATION_DELAY = 300


class SettingsError(ValueError):
    """cdk.out holds no usable target group; the message says what was looked for and where."""


@dataclass(frozen=True)
class HealthCheckSettings:
    """What the load balancer does with a target, as synthesized.

    Attributes:
        path: health-check path, e.g. ``/healthcheck``.
        interval_seconds: seconds between checks of one target.
        timeout_seconds: a check without an answer in this time fails.
        healthy_threshold: consecutive passes that bring a target into rotation.
        unhealthy_threshold: consecutive failures that take it out.
        deregistration_delay_seconds: draining time of a deregistered target.
        stack_name: the stack the settings came from (for the report).
    """

    path: str
    interval_seconds: int
    timeout_seconds: int
    healthy_threshold: int
    unhealthy_threshold: int
    deregistration_delay_seconds: int
    stack_name: str = ""

    @property
    def detection_bound_seconds(self) -> float:
        """Worst case from a target turning bad to leaving rotation: threshold x interval + timeout."""
        return self.unhealthy_threshold * self.interval_seconds + self.timeout_seconds

    @property
    def admission_seconds(self) -> float:
        """Worst case for a good target to (re)enter rotation: healthy threshold x interval."""
        return self.healthy_threshold * self.interval_seconds


def _stack_templates(assembly: Path) -> list[tuple[str, Path]]:
    """(stack name, template path) of every stack in the assembly at ``assembly``, nested ones included."""
    manifest_path = assembly / "manifest.json"
    if not manifest_path.is_file():
        raise SettingsError(f"{assembly}: no manifest.json; expected a cdk.out directory (run `make synth`)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    found: list[tuple[str, Path]] = []
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        kind = artifact.get("type")
        props = artifact.get("properties") or {}
        if kind == "aws:cloudformation:stack" and props.get("templateFile"):
            found.append((props.get("stackName", artifact_id), assembly / props["templateFile"]))
        elif kind == "cdk:cloud-assembly" and props.get("directoryName"):
            found.extend(_stack_templates(assembly / props["directoryName"]))
    return found


def _number(value: Any, name: str, stack: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise SettingsError(f"{stack}: target group {name} is {value!r}; expected a literal whole number")
    return int(value)


def settings_from_template(template: dict[str, Any], stack_name: str = "") -> HealthCheckSettings:
    """The settings of the only target group in ``template``.

    Raises:
        SettingsError: none or several target groups, or a setting that is not a literal value.
    """
    groups = [r for r in (template.get("Resources") or {}).values() if r.get("Type") == TARGET_GROUP_TYPE]
    if len(groups) != 1:
        raise SettingsError(f"{stack_name or 'template'}: {len(groups)} target groups; expected exactly one")
    props = {**_CFN_DEFAULTS, **(groups[0].get("Properties") or {})}
    path = props["HealthCheckPath"]
    if not isinstance(path, str) or not path.startswith("/"):
        raise SettingsError(
            f"{stack_name}: target group HealthCheckPath is {path!r}; expected a path like /healthcheck"
        )
    delay: Any = _DEFAULT_DEREGISTRATION_DELAY
    for attribute in props.get("TargetGroupAttributes") or []:
        if attribute.get("Key") == "deregistration_delay.timeout_seconds":
            delay = attribute.get("Value")
    return HealthCheckSettings(
        path=path,
        interval_seconds=_number(props["HealthCheckIntervalSeconds"], "HealthCheckIntervalSeconds", stack_name),
        timeout_seconds=_number(props["HealthCheckTimeoutSeconds"], "HealthCheckTimeoutSeconds", stack_name),
        healthy_threshold=_number(props["HealthyThresholdCount"], "HealthyThresholdCount", stack_name),
        unhealthy_threshold=_number(props["UnhealthyThresholdCount"], "UnhealthyThresholdCount", stack_name),
        deregistration_delay_seconds=_number(delay, "deregistration_delay.timeout_seconds", stack_name),
        stack_name=stack_name,
    )


def load_health_check_settings(cdk_out: str | Path) -> HealthCheckSettings:
    """Find the app stack in the cloud assembly at ``cdk_out`` and read its target group's settings.

    Raises:
        SettingsError: no manifest, or not exactly one stack with a target group.
    """
    assembly = Path(cdk_out)
    candidates = []
    for stack_name, template_path in _stack_templates(assembly):
        template = json.loads(template_path.read_text(encoding="utf-8"))
        if any(r.get("Type") == TARGET_GROUP_TYPE for r in (template.get("Resources") or {}).values()):
            candidates.append((stack_name, template))
    if len(candidates) != 1:
        names = ", ".join(name for name, _ in candidates) or "none"
        raise SettingsError(
            f"{assembly}: {len(candidates)} stacks with a target group ({names}); expected exactly one app stack "
            "(synthesize one environment: `make synth ENV=dev`)"
        )
    return settings_from_template(candidates[0][1], candidates[0][0])
