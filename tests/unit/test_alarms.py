"""ServiceAlarms, the dashboard and the alarm catalog: each alarm's metric, threshold, period and action."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2

from opex_cdk.config import ConfigError, load_environment
from opex_cdk.constructs import AlarmThresholds, NotificationTopics, ServiceAlarms
from opex_cdk.observability_catalog import CATALOG_PATH, entries_of, render
from opex_cdk.project_context import load_project_context
from tests.conftest import ENVIRONMENTS

ROOT = Path(__file__).resolve().parents[2]
ONE_MEGABYTE = 1024 * 1024

# name suffix -> (metric names it reads, threshold, period s, evaluation periods, datapoints, topic, missing data)
EXPECTED: dict[str, tuple[set[str], float, int, int, int, str, str]] = {
    "alb-Elb5xx-Critical": ({"HTTPCode_ELB_5XX_Count"}, 10, 60, 3, 2, "Critical", "notBreaching"),
    "alb-Target5xxRate-Critical": (
        {"HTTPCode_Target_5XX_Count", "RequestCount"}, 5, 60, 5, 3, "Critical", "notBreaching"
    ),
    "alb-TargetResponseTimeP99-Warning": ({"TargetResponseTime"}, 1, 60, 5, 3, "Warning", "notBreaching"),
    "alb-RejectedConnections-Warning": ({"RejectedConnectionCount"}, 0, 60, 1, 1, "Warning", "notBreaching"),
    "alb-UnhealthyHosts-Warning": ({"UnHealthyHostCount"}, 0, 60, 2, 2, "Warning", "notBreaching"),
    "alb-HealthyHostsUsEast2A-Critical": ({"HealthyHostCount"}, 1, 60, 3, 3, "Critical", "breaching"),
    "alb-ZonalUnhealthyUsEast2C-Warning": ({"UnHealthyHostCount"}, 1, 60, 3, 3, "Warning", "notBreaching"),
    "app-FallbackRate-Warning": ({"FallbackServed", "PageRequests"}, 5, 60, 5, 3, "Warning", "notBreaching"),
    "app-FallbackRate-Critical": ({"FallbackServed", "PageRequests"}, 50, 60, 3, 3, "Critical", "notBreaching"),
    "app-DependencyErrorRate-Warning": ({"DependencyErrors", "Requests"}, 5, 60, 5, 3, "Warning", "notBreaching"),
    "asg-CpuHigh-Warning": ({"CPUUtilization"}, 80, 300, 3, 3, "Warning", "notBreaching"),
    "asg-StatusCheckFailed-Warning": ({"StatusCheckFailed"}, 0, 60, 2, 2, "Warning", "notBreaching"),
    "asg-InServiceBelowDesired-Critical": (
        {"GroupDesiredCapacity", "GroupInServiceInstances"}, 0, 60, 10, 10, "Critical", "breaching"
    ),
    "ddb-Throttles-Warning": ({"ReadThrottleEvents", "WriteThrottleEvents"}, 0, 60, 3, 2, "Warning", "notBreaching"),
    "ddb-SystemErrors-Warning": ({"SystemErrors"}, 0, 60, 3, 2, "Warning", "notBreaching"),
    "ddb-GetItemLatency-Warning": ({"SuccessfulRequestLatency"}, 50, 60, 5, 5, "Warning", "notBreaching"),
    "cell-ScaleOut-Warning": (
        {"RequestCountPerTarget", "CPUUtilization", "GroupInServiceInstances"}, 1, 300, 3, 3, "Scaling", "notBreaching"
    ),
    "cell-ScaleIn-Warning": ({"RequestCountPerTarget", "CPUUtilization"}, 1, 300, 6, 6, "Scaling", "notBreaching"),
    "sns-CriticalDeliveryFailed-Warning": ({"NumberOfNotificationsFailed"}, 0, 300, 1, 1, "Warning", "notBreaching"),
    "sns-WarningDeliveryFailed-Critical": ({"NumberOfNotificationsFailed"}, 0, 300, 1, 1, "Critical", "notBreaching"),
}  # fmt: skip


def _alarms_by_name(template_json: dict[str, Any], kind: str = "AWS::CloudWatch::Alarm") -> dict[str, dict]:
    return {
        r["Properties"]["AlarmName"]: r["Properties"] for r in template_json["Resources"].values() if r["Type"] == kind
    }


def _metric_names(props: dict[str, Any]) -> set[str]:
    if "MetricName" in props:
        return {props["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}


def _periods(props: dict[str, Any]) -> set[int]:
    if "Period" in props:
        return {props["Period"]}
    return {m["MetricStat"]["Period"] for m in props["Metrics"] if "MetricStat" in m}


def _topic(action: Any) -> str:
    """Which notification topic a cross-stack action reference points at."""
    found = re.findall(r"Topics(Critical|Warning|Scaling)", json.dumps(action))
    assert len(set(found)) == 1, action
    return found[0]


@pytest.fixture(scope="module")
def dev_alarms(synthesized) -> dict[str, dict]:
    e = synthesized["dev"]
    return _alarms_by_name(e.template_json(e.stacks.observability))


@pytest.mark.parametrize("suffix", sorted(EXPECTED))
def test_alarm_metric_threshold_period_and_action(dev_alarms, suffix: str) -> None:
    metrics, threshold, period, evaluations, datapoints, topic, missing = EXPECTED[suffix]
    props = dev_alarms[f"opex-dev-{suffix}"]
    assert _metric_names(props) == metrics
    assert props["Threshold"] == threshold
    assert _periods(props) == {period}
    assert (props["EvaluationPeriods"], props["DatapointsToAlarm"]) == (evaluations, datapoints)
    assert [_topic(a) for a in props["AlarmActions"]] == [topic]
    assert props["TreatMissingData"] == missing
    # The on-call engineer hears about recovery from Critical alarms only.
    assert [_topic(a) for a in props.get("OKActions", [])] == ([topic] if suffix.endswith("Critical") else [])


def test_request_rate_anomaly_uses_a_band_and_treats_silence_as_breaching(dev_alarms) -> None:
    props = dev_alarms["opex-dev-app-RequestRateAnomaly-Warning"]
    assert props["ComparisonOperator"] == "LessThanLowerOrGreaterThanUpperThreshold"
    assert props["ThresholdMetricId"] == "expr_1"
    assert any(m.get("Expression") == "ANOMALY_DETECTION_BAND(m0, 3)" for m in props["Metrics"])
    assert props["TreatMissingData"] == "breaching"
    assert [_topic(a) for a in props["AlarmActions"]] == ["Warning"]


def test_zonal_alarm_needs_impact_and_outlier(dev_alarms) -> None:
    props = dev_alarms["opex-dev-alb-ZonalUnhealthyUsEast2B-Warning"]
    expression = next(m["Expression"] for m in props["Metrics"] if "Expression" in m)
    assert expression == "IF(az > 0 AND az / all >= 0.7, 1, 0)"
    zones = {
        d["Value"]
        for m in props["Metrics"]
        if "MetricStat" in m
        for d in m["MetricStat"]["Metric"]["Dimensions"]
        if d["Name"] == "AvailabilityZone"
    }
    assert zones == {"us-east-2b"}  # the fleet-wide series has no AZ dimension


def test_scale_signals_use_config_thresholds_and_expose_their_names(synthesized, dev_alarms) -> None:
    o = synthesized["dev"].stacks.observability
    assert o.scale_out_alarm_name == "opex-dev-cell-ScaleOut-Warning"
    assert o.scale_in_alarm_name == "opex-dev-cell-ScaleIn-Warning"
    out = next(m["Expression"] for m in dev_alarms[o.scale_out_alarm_name]["Metrics"] if "Expression" in m)
    assert out == "IF(FILL(rpt, 0) > 3000 OR (cpu > 80.0 AND n >= 6), 1, 0)"  # 600/min x 5 min; max 6
    assert o.unhealthy_hosts is o.alarms.alarms["opex-dev-alb-UnhealthyHosts-Warning"]


def test_service_impaired_composite_pages_on_user_impact(synthesized) -> None:
    e = synthesized["dev"]
    composite = _alarms_by_name(e.template_json(e.stacks.observability), "AWS::CloudWatch::CompositeAlarm")
    props = composite["opex-dev-service-Impaired-Critical"]
    rule = json.dumps(props["AlarmRule"])
    for child in ("AlbElb5xxCritical", "AlbTarget5xxRateCritical", "AppFallbackRateCritical"):
        assert f'"Alarms{child}' in rule  # logical ids of the child alarms
    assert "FallbackRateWarning" not in rule  # a few users on the fallback is not a page
    assert rule.count("HealthyHosts") == 3  # every AZ below its minimum, not just one
    assert [_topic(a) for a in props["AlarmActions"]] == ["Critical"]
    assert e.stacks.observability.service_impaired.alarm_name is not None


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_alarm_has_an_action_a_pattern_name_and_a_runbook_file(synthesized, env: str) -> None:
    """Every alarm of every stack (ours and the other layers'), not only the ones ServiceAlarms made."""
    e = synthesized[env]
    problems, names = [], set()
    for stack in e.stacks.all():
        for r in e.template_json(stack)["Resources"].values():
            if r["Type"] not in ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"):
                continue
            props = r["Properties"]
            name = props.get("AlarmName", "")
            names.add(name)
            if not props.get("AlarmActions"):
                problems.append(f"{name}: no alarm action")
            if not re.fullmatch(rf"{e.config.prefix}-[a-z0-9]+-[A-Za-z0-9]+-(Warning|Critical)", name):
                problems.append(
                    f"{name or stack.stack_name}: name is not {{prefix}}-{{component}}-{{metric}}-{{severity}}"
                )
            runbook = re.search(r"Runbook: (docs/runbooks/[a-z0-9-]+\.md)", props.get("AlarmDescription", ""))
            if not runbook:
                problems.append(f"{name}: description names no runbook in docs/runbooks/")
            elif not (ROOT / runbook.group(1)).is_file():
                problems.append(f"{name}: runbook {runbook.group(1)} does not exist")
    assert problems == []
    assert {entry.name for entry in entries_of(e.stacks)} <= names


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_observability_template_stays_well_under_the_limit(synthesized, env: str) -> None:
    e = synthesized[env]
    size = len(json.dumps(e.template_json(e.stacks.observability)))
    assert size < ONE_MEGABYTE / 5, f"{size} bytes"


def test_dashboard_is_drawn_from_the_alarms(synthesized) -> None:
    e = synthesized["dev"]
    boards = [
        r["Properties"] for r in e.template_json(e.stacks.observability)["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]  # fmt: skip
    assert len(boards) == 1 and boards[0]["DashboardName"] == "opex-dev-service"
    body = json.dumps(boards[0]["DashboardBody"])
    for title in ("Request rate", "Errors by class", "Latency p99", "Healthy hosts per AZ", "Fallback share",
                  "Dependency errors", "Every alarm"):  # fmt: skip
        assert title in body
    for zone in ("us-east-2a", "us-east-2b", "us-east-2c"):
        assert zone in body
    # Thresholds are drawn from the alarm objects (fallback warning and critical lines).
    assert '\\"value\\":5' in body and '\\"value\\":50' in body


def test_alarm_catalog_is_generated_from_code(synthesized) -> None:
    """docs/alarms.md must equal `python -m opex_cdk.observability_catalog` (regenerate with --write)."""
    expected = render(entries_of(synthesized["dev"].stacks), env_name="dev")
    assert CATALOG_PATH.read_text() == expected


# ------------------------------------------------------------------------------------------ construct level


@pytest.fixture(scope="module")
def cell() -> dict[str, Any]:
    """A tiny stack with an ALB + ASG + table, and a topics stack (built, never synthesized)."""
    app = App(context=load_project_context())
    env = Environment(account="111111111111", region="us-east-2")
    infra = Stack(app, "Infra", env=env)
    public = ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PUBLIC)
    vpc = ec2.Vpc(infra, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[public])
    lb = elbv2.ApplicationLoadBalancer(infra, "Lb", vpc=vpc)
    asg = autoscaling.AutoScalingGroup(
        infra, "Asg", vpc=vpc, instance_type=ec2.InstanceType("t3.micro"),
        machine_image=ec2.MachineImage.generic_linux({"us-east-2": "ami-12345678"}),
    )  # fmt: skip
    tg = lb.add_listener("L", port=80).add_targets("T", port=8080, targets=[asg])
    table = dynamodb.TableV2(
        infra, "Table", partition_key=dynamodb.Attribute(name="k", type=dynamodb.AttributeType.STRING)
    )
    topics = NotificationTopics(Stack(app, "Topics", env=env), "Topics", prefix="lib", emails=["a@example.com"])
    props = dict(topics=topics, load_balancer=lb, target_group=tg, auto_scaling_group=asg, table=table, max_instances=4)
    return {"app": app, "env": env, "props": props}


def test_thresholds_prop_reaches_the_alarms(cell) -> None:
    stack = Stack(cell["app"], "Custom", env=cell["env"])
    alarms = ServiceAlarms(
        stack, "Alarms", prefix="lib", availability_zones=["us-east-2a", "us-east-2b"], min_healthy_per_az=2,
        thresholds=AlarmThresholds(elb_5xx_per_minute=3, fallback_rate_critical_percent=90), **cell["props"],
    )  # fmt: skip
    by_name = {e.name: e for e in alarms.entries}
    assert by_name["lib-alb-Elb5xx-Critical"].condition == "> 3"
    assert by_name["lib-app-FallbackRate-Critical"].condition == "> 90"
    assert by_name["lib-alb-HealthyHostsUsEast2B-Critical"].condition == "< 2"
    assert sorted(alarms.healthy_hosts_by_az) == ["us-east-2a", "us-east-2b"]
    assert alarms.scale_in_alarm_name == "lib-cell-ScaleIn-Warning"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"availability_zones": []}, "availability_zones must be literal AZ names"),
        ({"availability_zones": ["us-east-2a", "${Token[TOKEN.1]}"]}, "availability_zones must be literal"),
        ({"min_healthy_per_az": 0}, "min_healthy_per_az: 0 is not allowed"),
        ({"max_instances": 0}, "max_instances: 0 is not allowed"),
    ],
)
def test_bad_props_are_named(cell, override: dict[str, Any], message: str) -> None:
    props = {**cell["props"], "availability_zones": ["us-east-2a"], **override}
    with pytest.raises(ValueError, match=re.escape(message)):
        ServiceAlarms(Stack(cell["app"], f"Bad{abs(hash(message))}", env=cell["env"]), "A", prefix="lib", **props)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("fallback_rate_warning_percent", 60, "fallback_rate_warning_percent: 60.0 is not allowed; allowed: less than"),
        ("cpu_high_percent", 0, "cpu_high_percent: 0.0% is out of range; allowed: 0.1 to 100%"),
        ("scale_in_requests_per_target_per_minute", 700, "scale_in_requests_per_target_per_minute: 700 is not"),
        ("audit_log_retention_days", 42, "audit_log_retention_days: 42 is not a CloudWatch Logs retention"),
        ("elb_5xx_per_minute", 0, "elb_5xx_per_minute: 0 is out of range; allowed: 1 to 100000"),
    ],
)
def test_bad_observability_config_names_field_value_and_allowed(path: str, value: Any, expected: str) -> None:
    context = copy.deepcopy(load_project_context())
    context["environments"]["dev"].setdefault("observability", {})[path] = value
    with pytest.raises(ConfigError, match=re.escape(f"environments.dev.observability.{expected}")):
        load_environment(context, "dev")
