"""WellArchitectedChecks: every rule has a compliant and a non-compliant test named after its id.

Each test builds a tiny app of raw CloudFormation resources (cheap: no L2 defaults in the way, the
template says exactly what the rule judges) and asks the pack for findings.
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import App, CfnDeletionPolicy, CfnOutput, CfnResource, Fn, Stack, Validations
from aws_cdk import aws_sqs as sqs

from opex_cdk.nag import acknowledge, nag_packs_for
from opex_cdk.nag.well_architected import (
    FLEET_SAFE_METADATA,
    RULES,
    WellArchitectedChecks,
    evaluate_assembly,
    find_rule,
    mark_fleet_safe,
    rule_ids,
)

SUBNETS = ("a", "b", "c")


def _app() -> tuple[App, Stack]:
    app = App()
    return app, Stack(app, "S")


def _res(stack: Stack, id_: str, type_: str, props: dict[str, Any] | None = None, keep: bool = False) -> CfnResource:
    resource = CfnResource(stack, id_, type=type_, properties=props or {})
    resource.override_logical_id(id_)
    if keep:
        resource.cfn_options.deletion_policy = CfnDeletionPolicy.RETAIN
        resource.cfn_options.update_replace_policy = CfnDeletionPolicy.RETAIN
    return resource


def _findings(stack: Stack, rule: str, *, production: bool = False) -> list[str]:
    pack = WellArchitectedChecks(production=production)
    return [f.logical_id for f in pack.findings(stack) if f.rule_id == rule and f.acknowledged is None]


def _vpc(stack: Stack, zones: tuple[str, ...] = SUBNETS, nat_zones: tuple[str, ...] = ()) -> None:
    _res(stack, "Vpc", "AWS::EC2::VPC", {"CidrBlock": "10.0.0.0/16"})
    for z in zones:
        _res(stack, f"Subnet{z}", "AWS::EC2::Subnet", {"VpcId": {"Ref": "Vpc"}, "AvailabilityZone": f"us-east-2{z}"})
    for z in nat_zones:
        _res(stack, f"Nat{z}", "AWS::EC2::NatGateway", {"SubnetId": {"Ref": f"Subnet{z}"}})


def _asg(stack: Stack, min_size: str = "3", zones: tuple[str, ...] = SUBNETS, **extra: Any) -> CfnResource:
    props = {"MinSize": min_size, "MaxSize": "6", "VPCZoneIdentifier": [{"Ref": f"Subnet{z}"} for z in zones]}
    return _res(stack, "Asg", "AWS::AutoScaling::AutoScalingGroup", {**props, **extra})


def _tg(stack: Stack, **props: Any) -> None:
    good = {
        "Protocol": "HTTP",
        "Port": 8080,
        "HealthCheckPath": "/healthcheck",
        "HealthCheckIntervalSeconds": 5,
        "HealthCheckTimeoutSeconds": 2,
        "UnhealthyThresholdCount": 2,
        "TargetGroupAttributes": [{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}],
    }
    _res(stack, "Tg", "AWS::ElasticLoadBalancingV2::TargetGroup", {**good, **props})


def _function(stack: Stack, **props: Any) -> None:
    base = {"Runtime": "python3.12", "Handler": "index.handler", "Role": "arn:aws:iam::111111111111:role/r"}
    _res(stack, "Fn", "AWS::Lambda::Function", {**base, **props})


# -- WA-REL-1: ASG over >= 2 AZs, minimum >= one per AZ ------------------------------------------------


def test_wa_rel_1_compliant() -> None:
    _, stack = _app()
    _vpc(stack)
    _asg(stack)
    assert _findings(stack, "WA-REL-1") == []


@pytest.mark.parametrize(("min_size", "zones"), [("2", SUBNETS), ("3", ("a",))])
def test_wa_rel_1_non_compliant(min_size: str, zones: tuple[str, ...]) -> None:
    _, stack = _app()
    _vpc(stack)
    _asg(stack, min_size, zones)
    assert _findings(stack, "WA-REL-1") == ["Asg"]


# -- WA-REL-2: deep health check ---------------------------------------------------------------------


def test_wa_rel_2_compliant() -> None:
    _, stack = _app()
    _tg(stack)
    assert _findings(stack, "WA-REL-2") == []


@pytest.mark.parametrize(
    "props",
    [
        {"HealthCheckPath": "/"},
        {"HealthCheckPath": None},
        {"HealthCheckProtocol": "TCP"},
        {"HealthCheckEnabled": False},
    ],
    ids=["root-path", "default-path", "tcp-only", "disabled"],
)
def test_wa_rel_2_non_compliant(props: dict[str, Any]) -> None:
    _, stack = _app()
    _tg(stack, **props)
    assert _findings(stack, "WA-REL-2") == ["Tg"]


# -- WA-REL-3: detection <= 30 s ----------------------------------------------------------------------


def test_wa_rel_3_compliant() -> None:
    _, stack = _app()
    _tg(stack, HealthCheckIntervalSeconds=10, UnhealthyThresholdCount=2, HealthCheckTimeoutSeconds=5)  # 25 s
    assert _findings(stack, "WA-REL-3") == []


def test_wa_rel_3_non_compliant() -> None:
    """The workshop's settings: 3 x 15 s + 3 s = 48 s."""
    _, stack = _app()
    _tg(stack, HealthCheckIntervalSeconds=15, UnhealthyThresholdCount=3, HealthCheckTimeoutSeconds=3)
    assert _findings(stack, "WA-REL-3") == ["Tg"]


# -- WA-REL-4: the fleet-recycle trap ------------------------------------------------------------------


def test_wa_rel_4_compliant() -> None:
    """EC2 health-check type, or ELB with a declared fleet-safe guard."""
    _, stack = _app()
    _vpc(stack)
    _tg(stack)
    _asg(stack, HealthCheckType="EC2", TargetGroupARNs=[{"Ref": "Tg"}])
    assert _findings(stack, "WA-REL-4") == []
    _, guarded = _app()
    _vpc(guarded)
    _tg(guarded)
    asg = _asg(guarded, HealthCheckType="ELB", TargetGroupARNs=[{"Ref": "Tg"}])
    mark_fleet_safe(asg, "FleetSafeHealer stops replacing when most targets fail")
    assert _findings(guarded, "WA-REL-4") == []


def test_wa_rel_4_non_compliant() -> None:
    _, stack = _app()
    _vpc(stack)
    _tg(stack)
    _asg(stack, HealthCheckType="ELB", TargetGroupARNs=[{"Ref": "Tg"}])
    assert _findings(stack, "WA-REL-4") == ["Asg"]


def test_mark_fleet_safe_demands_a_guard() -> None:
    _, stack = _app()
    with pytest.raises(ValueError, match="say what the guard is"):
        mark_fleet_safe(_res(stack, "Asg", "AWS::AutoScaling::AutoScalingGroup"), "yes")
    assert FLEET_SAFE_METADATA.startswith("opex:")


# -- WA-REL-5: NAT gateway per AZ in production ------------------------------------------------------------


def test_wa_rel_5_compliant() -> None:
    _, stack = _app()
    _vpc(stack, nat_zones=SUBNETS)
    assert _findings(stack, "WA-REL-5", production=True) == []
    _, dev = _app()
    _vpc(dev, nat_zones=("a",))
    assert _findings(dev, "WA-REL-5", production=False) == [], "one NAT gateway is a deliberate dev saving"


def test_wa_rel_5_non_compliant() -> None:
    _, stack = _app()
    _vpc(stack, nat_zones=("a",))
    assert _findings(stack, "WA-REL-5", production=True) == ["Vpc"]


# -- WA-REL-6 / WA-REL-7: stateful resources: removal policy and retention ---------------------------------


def test_wa_rel_6_compliant() -> None:
    _, stack = _app()
    _res(stack, "Logs", "AWS::Logs::LogGroup", {"RetentionInDays": 90}, keep=True)
    assert _findings(stack, "WA-REL-6", production=True) == []


def test_wa_rel_6_non_compliant() -> None:
    _, stack = _app()
    _res(stack, "Implicit", "AWS::DynamoDB::Table", {})  # no DeletionPolicy: CloudFormation deletes it
    deleting = _res(stack, "Deleting", "AWS::S3::Bucket", {})
    deleting.cfn_options.deletion_policy = CfnDeletionPolicy.DELETE
    deleting.cfn_options.update_replace_policy = CfnDeletionPolicy.DELETE
    assert _findings(stack, "WA-REL-6", production=True) == ["Implicit", "Deleting"]
    assert _findings(stack, "WA-REL-6", production=False) == ["Implicit"], "outside production DELETE is a choice"


def test_wa_rel_7_compliant() -> None:
    _, stack = _app()
    _res(stack, "Logs", "AWS::Logs::LogGroup", {"RetentionInDays": 90}, keep=True)
    _res(
        stack,
        "Table",
        "AWS::DynamoDB::Table",
        {"PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}},
    )
    _res(
        stack,
        "Bucket",
        "AWS::S3::Bucket",
        {"LifecycleConfiguration": {"Rules": [{"Status": "Enabled", "ExpirationInDays": 90}]}},
    )
    assert _findings(stack, "WA-REL-7") == []


def test_wa_rel_7_non_compliant() -> None:
    _, stack = _app()
    _res(stack, "Logs", "AWS::Logs::LogGroup", {}, keep=True)
    _res(stack, "Table", "AWS::DynamoDB::Table", {})
    _res(stack, "Bucket", "AWS::S3::Bucket", {})
    assert _findings(stack, "WA-REL-7") == ["Logs", "Table", "Bucket"]


# -- WA-REL-8 / WA-REL-9 / WA-OPS-3: Lambda ------------------------------------------------------------


def test_wa_rel_8_compliant() -> None:
    _, stack = _app()
    _function(stack)
    _res(stack, "Dlq", "AWS::SQS::Queue")
    _res(
        stack,
        "Invoke",
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": "Fn"},
            "Qualifier": "$LATEST",
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}},
        },
    )
    assert _findings(stack, "WA-REL-8") == []


def test_wa_rel_8_non_compliant() -> None:
    _, stack = _app()
    _function(stack)
    assert _findings(stack, "WA-REL-8") == ["Fn"]


def test_wa_rel_8_exempts_custom_resource_handlers() -> None:
    """CloudFormation invokes a custom resource's handler synchronously: a failure fails the deployment."""
    _, stack = _app()
    _function(stack)
    _res(stack, "Seed", "Custom::Seed", {"ServiceToken": {"Fn::GetAtt": ["Fn", "Arn"]}})
    assert _findings(stack, "WA-REL-8") == [] and _findings(stack, "WA-OPS-3") == []


def test_wa_rel_9_compliant() -> None:
    _, stack = _app()
    _function(stack, Timeout=10, MemorySize=256)
    assert _findings(stack, "WA-REL-9") == []


def test_wa_rel_9_non_compliant() -> None:
    _, stack = _app()
    _function(stack, Timeout=10)
    assert _findings(stack, "WA-REL-9") == ["Fn"]


def _errors_alarm(stack: Stack, function_ref: Any, metric: str = "Errors") -> None:
    _res(
        stack,
        "FnErrors",
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/Lambda",
            "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": function_ref}],
            "AlarmActions": ["arn:aws:sns:us-east-2:111111111111:t"],
        },
    )


def test_wa_ops_3_compliant() -> None:
    """The alarm may live in another stack: the reference is followed through the stack output."""
    app, stack = _app()
    _function(stack)
    other = Stack(app, "Observability")
    CfnOutput(stack, "FnName", value=Fn.ref("Fn"), export_name="S-FnName")
    _errors_alarm(other, Fn.import_value("S-FnName"))
    assert _findings(stack, "WA-OPS-3") == []


def test_wa_ops_3_non_compliant() -> None:
    _, stack = _app()
    _function(stack)
    _errors_alarm(stack, {"Ref": "Fn"}, metric="Throttles")
    assert _findings(stack, "WA-OPS-3") == ["Fn"]


# -- WA-OPS-1 / WA-OPS-2: alarms act, topics reach someone ------------------------------------------------


def test_wa_ops_1_compliant() -> None:
    _, stack = _app()
    _res(stack, "Topic", "AWS::SNS::Topic")
    _res(stack, "Routed", "AWS::CloudWatch::Alarm", {"AlarmActions": [{"Ref": "Topic"}]})
    _res(stack, "Child", "AWS::CloudWatch::Alarm", {})
    _res(
        stack,
        "Rollup",
        "AWS::CloudWatch::CompositeAlarm",
        {
            "AlarmRule": {"Fn::Join": ["", ['ALARM("', {"Fn::GetAtt": ["Child", "Arn"]}, '")']]},
            "AlarmActions": [{"Ref": "Topic"}],
        },
    )
    assert _findings(stack, "WA-OPS-1") == []


def test_wa_ops_1_non_compliant() -> None:
    _, stack = _app()
    _res(stack, "Silent", "AWS::CloudWatch::Alarm", {})
    _res(stack, "Disabled", "AWS::CloudWatch::Alarm", {"ActionsEnabled": False, "AlarmActions": ["arn:aws:sns:x"]})
    assert _findings(stack, "WA-OPS-1") == ["Silent", "Disabled"]


def test_wa_ops_2_compliant() -> None:
    _, stack = _app()
    _res(stack, "Topic", "AWS::SNS::Topic")
    _res(
        stack,
        "Sub",
        "AWS::SNS::Subscription",
        {"TopicArn": {"Ref": "Topic"}, "Protocol": "email", "Endpoint": "a@b.co"},
    )
    assert _findings(stack, "WA-OPS-2") == []


def test_wa_ops_2_non_compliant() -> None:
    _, stack = _app()
    _res(stack, "Topic", "AWS::SNS::Topic")
    _res(stack, "Other", "AWS::SNS::Topic")
    _res(
        stack,
        "Sub",
        "AWS::SNS::Subscription",
        {"TopicArn": {"Ref": "Other"}, "Protocol": "email", "Endpoint": "a@b.co"},
    )
    assert _findings(stack, "WA-OPS-2") == ["Topic"]


# -- WA-OPS-4 / WA-OPS-5: load balancer --------------------------------------------------------------------


def test_wa_ops_4_compliant() -> None:
    _, stack = _app()
    attrs = [{"Key": "access_logs.s3.enabled", "Value": "true"}, {"Key": "access_logs.s3.bucket", "Value": "logs"}]
    _res(stack, "Alb", "AWS::ElasticLoadBalancingV2::LoadBalancer", {"LoadBalancerAttributes": attrs})
    assert _findings(stack, "WA-OPS-4") == []


def test_wa_ops_4_non_compliant() -> None:
    _, stack = _app()
    _res(stack, "Alb", "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Type": "application"})
    assert _findings(stack, "WA-OPS-4") == ["Alb"]


def test_wa_ops_5_compliant() -> None:
    _, stack = _app()
    _tg(stack)
    assert _findings(stack, "WA-OPS-5") == []


def test_wa_ops_5_non_compliant() -> None:
    """No attribute means CloudFormation's default: 300 s."""
    _, stack = _app()
    _tg(stack, TargetGroupAttributes=[])
    assert _findings(stack, "WA-OPS-5") == ["Tg"]


# -- the pack as a whole ------------------------------------------------------------------------------------


def test_every_rule_has_its_tests() -> None:
    names = set(globals())
    for rule_id in rule_ids():
        stem = "test_" + rule_id.lower().replace("-", "_")
        assert {f"{stem}_compliant", f"{stem}_non_compliant"} <= names, rule_id
    assert [r.rule_id for r in RULES] == rule_ids() and len(set(rule_ids())) == len(RULES)
    with pytest.raises(ValueError, match="unknown Well-Architected rule 'WA-REL-99'; known: WA-REL-1"):
        find_rule("WA-REL-99")


def test_acknowledgment_hides_only_its_finding() -> None:
    """Same helper, same semantics as for cdk-nag's packs: the rule on this construct, nothing else."""
    _, stack = _app()
    quiet = _res(stack, "Quiet", "AWS::SNS::Topic")
    _res(stack, "Loud", "AWS::SNS::Topic")
    acknowledge(quiet, "WA-OPS-2", "Subscribed by the on-call tool after deployment (tested elsewhere).")
    assert _findings(stack, "WA-OPS-2") == ["Loud"]
    report = WellArchitectedChecks().validate_scope(stack)
    assert [(v.rule_name, [r.construct_path for r in v.violating_resources]) for v in report.violations] == [
        ("WA-OPS-2", ["S/Loud"])
    ]


def test_unacknowledged_finding_fails_synth(tmp_path) -> None:
    from opex_cdk.nag import apply_nag_packs

    app = App(outdir=str(tmp_path))
    stack = Stack(app, "S")
    _res(stack, "Topic", "AWS::SNS::Topic")
    apply_nag_packs(app, ["WellArchitected"])
    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed: .*WA-OPS-2"):
        app.synth()


def test_acknowledged_finding_passes_synth(tmp_path) -> None:
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "S")
    topic = _res(stack, "Topic", "AWS::SNS::Topic")
    acknowledge(topic, "WA-OPS-2", "Subscribed by the on-call tool after deployment (tested elsewhere).")
    Validations.of(app).add_plugins(*nag_packs_for(app, ["WellArchitected"]))
    app.synth()
    assert [f.acknowledged for f in evaluate_assembly(tmp_path)] == [
        "Subscribed by the on-call tool after deployment (tested elsewhere)."
    ]


def test_production_comes_from_the_context() -> None:
    context = {"env": "live", "environments": {"live": {"production": True}, "dev": {"production": False}}}
    assert WellArchitectedChecks(App(context=context)).production is True
    assert WellArchitectedChecks(App(context={**context, "env": "dev"})).production is False
    assert WellArchitectedChecks(App()).production is False


def test_l2_defaults_are_judged() -> None:
    """A plain sqs.Queue is not stateful for us; an L2 with CloudFormation defaults would be."""
    _, stack = _app()
    sqs.Queue(stack, "Q")
    assert WellArchitectedChecks().findings(stack) == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_app_is_clean(synthesized, env: str) -> None:
    """Synth already fails on a finding; this one names them, and proves the pack runs in every env."""
    e = synthesized[env]
    assert "WellArchitected" in e.config.nag_packs
    pack = WellArchitectedChecks(e.app)
    assert pack.production is e.config.production
    assert [(f.rule_id, f.construct_path) for f in pack.findings(e.app) if f.acknowledged is None] == []
