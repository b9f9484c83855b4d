"""Fleet-safe healer: replaces a minority of unhealthy instances, never the fleet.

Invoked by EventBridge when the target group's UnHealthyHostCount alarm enters ALARM, and on a schedule
as a backstop. Each run reads the target group's health and the Auto Scaling group, asks the pure
:func:`decision.decide` what to do, records the replacements in the rate-limit ledger, marks those
instances ``Unhealthy`` in the Auto Scaling group (which replaces them), and notifies every action and
every refusal. Failures raise: Lambda retries the asynchronous event and then sends it to the
dead-letter queue, so no trigger is dropped silently.

Rate-limit ledger: a tag on the Auto Scaling group (``opex:healer:replacements``) holding the epoch
seconds of recent replacements. It is written *before* instances are marked, so a crash in between
over-counts (the safe side); reserved concurrency 1 makes the healer the only writer.

Environment: TARGET_GROUP_ARN, AUTO_SCALING_GROUP_NAME, CRITICAL_TOPIC_ARN, WARNING_TOPIC_ARN,
MAX_UNHEALTHY_SHARE, MAX_REPLACEMENTS_PER_WINDOW, REPLACEMENT_WINDOW_MINUTES.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from decision import Decision, TargetState, decide  # decision.py sits next to this file in the bundle

LEDGER_TAG = "opex:healer:replacements"
_TAG_VALUE_LIMIT = 256

logger = logging.getLogger("healer")
logger.setLevel(logging.INFO)


@dataclass(frozen=True)
class Settings:
    """What the healer acts on and its limits, from the function's environment."""

    target_group_arn: str
    auto_scaling_group_name: str
    critical_topic_arn: str
    warning_topic_arn: str
    max_unhealthy_share: float = 0.5
    max_replacements_per_window: int = 2
    replacement_window_minutes: int = 30

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read and check the environment; a missing or bad value raises naming the variable."""
        env = dict(os.environ if env is None else env)
        missing = [
            k
            for k in ("TARGET_GROUP_ARN", "AUTO_SCALING_GROUP_NAME", "CRITICAL_TOPIC_ARN", "WARNING_TOPIC_ARN")
            if not env.get(k)
        ]
        if missing:
            raise ValueError(f"environment variable {missing[0]} is missing; the healer needs it to act")
        try:
            return cls(
                target_group_arn=env["TARGET_GROUP_ARN"],
                auto_scaling_group_name=env["AUTO_SCALING_GROUP_NAME"],
                critical_topic_arn=env["CRITICAL_TOPIC_ARN"],
                warning_topic_arn=env["WARNING_TOPIC_ARN"],
                max_unhealthy_share=float(env.get("MAX_UNHEALTHY_SHARE", "0.5")),
                max_replacements_per_window=int(env.get("MAX_REPLACEMENTS_PER_WINDOW", "2")),
                replacement_window_minutes=int(env.get("REPLACEMENT_WINDOW_MINUTES", "30")),
            )
        except ValueError as error:
            raise ValueError(f"healer environment: {error}; expected numbers for the limits") from None


_CLIENTS: dict[str, Any] = {}


def _client(name: str) -> Any:
    """One client per service per process, with explicit timeouts and standard retries."""
    if name not in _CLIENTS:
        import boto3
        from botocore.config import Config

        _CLIENTS[name] = boto3.client(
            name, config=Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
        )
    return _CLIENTS[name]


def read_ledger(tags: list[dict[str, Any]], *, now: float, window_seconds: int) -> list[int]:
    """Epoch seconds of the replacements still inside the window (malformed entries are ignored)."""
    raw = next((t.get("Value", "") for t in tags if t.get("Key") == LEDGER_TAG), "")
    stamps = []
    for part in raw.split():
        if part.isdigit() and now - int(part) < window_seconds:
            stamps.append(int(part))
    return sorted(stamps)


def write_ledger(stamps: list[int]) -> str:
    """The tag value for ``stamps``, newest kept when it would exceed the tag length limit."""
    value = " ".join(str(s) for s in sorted(stamps))
    while len(value) > _TAG_VALUE_LIMIT:
        value = value.split(" ", 1)[1]
    return value


def fleet_state(target_group_arn: str, asg: dict[str, Any]) -> list[TargetState]:
    """Join the target group's health with the Auto Scaling group's view of each instance."""
    members = {i["InstanceId"]: i for i in asg.get("Instances", [])}
    response = _client("elbv2").describe_target_health(TargetGroupArn=target_group_arn)
    targets = []
    for desc in response.get("TargetHealthDescriptions", []):
        instance_id = desc["Target"]["Id"]
        state = desc.get("TargetHealth", {}).get("State", "")
        member = members.get(instance_id)
        in_service = (
            member is not None
            and member.get("LifecycleState") == "InService"
            and member.get("HealthStatus") == "Healthy"
        )
        targets.append(
            TargetState(
                instance_id=instance_id,
                az=(member or {}).get("AvailabilityZone") or desc["Target"].get("AvailabilityZone") or "unknown",
                healthy=state == "healthy",
                replaceable=state == "unhealthy" and in_service,
            )
        )
    return targets


def heal(settings: Settings, *, trigger: str, now: float | None = None) -> dict[str, Any]:
    """One healing pass: read, decide, record, act, notify. Returns what was decided and done."""
    now = time.time() if now is None else now
    autoscaling = _client("autoscaling")
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[settings.auto_scaling_group_name])
    if not groups.get("AutoScalingGroups"):
        raise LookupError(f"Auto Scaling group '{settings.auto_scaling_group_name}' not found")
    asg = groups["AutoScalingGroups"][0]
    window = settings.replacement_window_minutes * 60
    ledger = read_ledger(asg.get("Tags", []), now=now, window_seconds=window)
    decision = decide(
        fleet_state(settings.target_group_arn, asg),
        max_unhealthy_share=settings.max_unhealthy_share,
        recent_replacements=len(ledger),
        max_replacements_per_window=settings.max_replacements_per_window,
    )
    if decision.replace:
        # Record first: a crash after this line over-counts, never under-counts.
        autoscaling.create_or_update_tags(
            Tags=[
                {
                    "ResourceId": settings.auto_scaling_group_name,
                    "ResourceType": "auto-scaling-group",
                    "Key": LEDGER_TAG,
                    "Value": write_ledger(ledger + [int(now)] * len(decision.replace)),
                    "PropagateAtLaunch": False,
                }
            ]
        )
        for instance_id in decision.replace:
            # Respect the grace period: a freshly launched replacement is never marked while it boots.
            autoscaling.set_instance_health(
                InstanceId=instance_id, HealthStatus="Unhealthy", ShouldRespectGracePeriod=True
            )
    notified = notify(settings, decision, trigger=trigger)
    result = {"trigger": trigger, "decision": _as_dict(decision), "recent_replacements": len(ledger), **notified}
    logger.info(json.dumps({"message": "healer decision", **result}))
    return result


def notify(settings: Settings, decision: Decision, *, trigger: str) -> dict[str, Any]:
    """Publish the action or refusal: Critical for fleet-wide/zonal, Warning for replacements/rate limit."""
    if not decision.replace and not decision.refusal_reason:
        return {"notified": None}
    critical = decision.fleet_wide or bool(decision.zonal_azs)
    topic = settings.critical_topic_arn if critical else settings.warning_topic_arn
    if decision.fleet_wide:
        subject = "Healer: fleet-wide failure, replacing nothing"
    elif decision.zonal_azs:
        subject = f"Healer: zonal failure in {', '.join(decision.zonal_azs)}"
    elif decision.replace:
        subject = f"Healer: replacing {len(decision.replace)} instance(s)"
    else:
        subject = "Healer: replacement refused"
    body = {
        "auto_scaling_group": settings.auto_scaling_group_name,
        "target_group": settings.target_group_arn,
        "trigger": trigger,
        **_as_dict(decision),
        "runbook": "docs/runbooks/healer.md",
    }
    _client("sns").publish(TopicArn=topic, Subject=subject[:100], Message=json.dumps(body, indent=2))
    return {"notified": "critical" if critical else "warning", "subject": subject}


def _as_dict(decision: Decision) -> dict[str, Any]:
    data = asdict(decision)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def describe_trigger(event: Any) -> str:
    """'alarm', 'schedule' or 'manual' from the EventBridge event (or a hand-made test event)."""
    if not isinstance(event, dict):
        return "manual"
    if event.get("detail-type") == "CloudWatch Alarm State Change":
        return "alarm"
    if event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "manual"


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: one healing pass for the configured target group and Auto Scaling group."""
    return heal(Settings.from_env(), trigger=describe_trigger(event))
