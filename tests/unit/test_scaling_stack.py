"""CellScaler and the Scaling stack: the synthesized dev/prod environments, plus a tiny stack for the props."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from opex_cdk.assets import lambda_code_dir
from opex_cdk.constructs import CellScaler
from opex_cdk.constructs import scaler as scaler_construct
from opex_cdk.stacks import cell


def _scaling(synthesized, env: str = "dev") -> Template:
    e = synthesized[env]
    return e.template(e.stacks.scaling)


def _handler_module():
    """lambda/scaler/index.py under a unique name (another handler may also be called ``index``)."""
    name = "opex_scaler_index"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, lambda_code_dir("scaler") / "index.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_handler_and_template_agree_on_names() -> None:
    """The handler reads outputs and numbers cells exactly as the cell template and the construct define them."""
    handler = _handler_module()
    assert (handler.OUTPUT_DNS_NAME, handler.OUTPUT_HOSTED_ZONE_ID) == (
        cell.OUTPUT_DNS_NAME,
        cell.OUTPUT_HOSTED_ZONE_ID,
    )
    assert handler.MAX_CELL_SLOTS == scaler_construct.MAX_CELLS == 10


def _function(template: Template) -> dict:
    found = template.find_resources("AWS::Lambda::Function", {"Properties": {"Handler": "index.handler"}})
    [props] = [f["Properties"] for f in found.values()]
    return props


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_function_shape_and_environment(synthesized, env: str) -> None:
    e = synthesized[env]
    props = _function(_scaling(synthesized, env))
    assert props["Runtime"] == "python3.14" and props["Architectures"] == ["arm64"]
    assert props["ReservedConcurrentExecutions"] == 1
    assert "DeadLetterConfig" in props
    variables = props["Environment"]["Variables"]
    handler = _handler_module()
    assert {k.upper() for k in handler.Settings.__dataclass_fields__} <= set(variables)
    assert variables["SCALE_OUT_ALARM"] == e.stacks.observability.scale_out_alarm_name
    assert variables["SCALE_IN_ALARM"] == e.stacks.observability.scale_in_alarm_name
    s = e.config.scaling
    assert variables["MAX_CELLS"] == str(s.max_cells) and variables["MIN_CELLS"] == str(s.min_cells)
    assert variables["COOLDOWN_SECONDS"] == str(s.cooldown_seconds)
    assert variables["CELL_STACK_PREFIX"] == f"{e.config.prefix}-cell"
    drain = s.record_ttl_seconds + e.config.app_tier.deregistration_delay_seconds
    assert variables["DRAIN_SECONDS"] == str(drain)
    template_json = e.template_json(e.stacks.scaling)
    [layer] = props["Layers"]
    assert template_json["Parameters"][layer["Ref"]]["Default"] == scaler_construct.POWERTOOLS_LAYER_PARAMETER


def test_async_retries_are_bounded(synthesized) -> None:
    _scaling(synthesized).has_resource_properties(
        "AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 6 * 3600}
    )


def test_subscribed_to_scaling_topic_with_redrive(synthesized) -> None:
    _scaling(synthesized).has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "lambda", "RedrivePolicy": Match.any_value()}
    )


def test_reconcile_triggers(synthesized) -> None:
    template = _scaling(synthesized)
    template.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 minute)"})
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": Match.object_like(
                {"source": ["aws.cloudformation"], "detail-type": ["CloudFormation Stack Status Change"]}
            )
        },
    )


def _statements(template: Template) -> list[dict]:
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    policies.update(template.find_resources("AWS::IAM::Policy"))
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_least_privilege(synthesized) -> None:
    template = _scaling(synthesized)
    statements = _statements(template)
    actions = [a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert all("*" not in a for a in actions), "no wildcard actions"
    by_sid = {s.get("Sid"): s for s in statements}
    cfn = by_sid["CreateAndDeleteCellStacksWithTheCellRole"]
    assert "stack/opex-dev-cell-*/*" in json.dumps(cfn["Resource"])
    assert "cloudformation:RoleArn" in cfn["Condition"]["StringEquals"]
    r53 = by_sid["ChangeOnlyTheCellRecordSet"]["Condition"]["ForAllValues:StringEquals"]
    assert r53["route53:ChangeResourceRecordSetsNormalizedRecordNames"] == ["app.opex.internal"]
    assert r53["route53:ChangeResourceRecordSetsRecordTypes"] == ["A"]
    pass_role = by_sid["PassTheCellRoleToCloudFormation"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}}
    assert "CellExecutionRole" in json.dumps(pass_role["Resource"])
    template.resource_count_is("AWS::IAM::Policy", 0)  # customer-managed policies only


def test_dead_letter_and_error_alarms_notify_warning(synthesized) -> None:
    template = _scaling(synthesized)
    for name in ("opex-dev-scaler-DeadLetters-Warning", "opex-dev-scaler-Errors-Warning"):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": name,
                "AlarmActions": Match.any_value(),
                "AlarmDescription": Match.string_like_regexp("Runbook"),
            },
        )


def test_weighted_base_record_in_private_zone(synthesized) -> None:
    template = _scaling(synthesized)
    template.has_resource_properties("AWS::Route53::HostedZone", {"Name": "opex.internal.", "VPCs": Match.any_value()})
    template.has_resource_properties(
        "AWS::Route53::RecordSet",
        {
            "Name": "app.opex.internal.",
            "Type": "A",
            "SetIdentifier": "base",
            "Weight": 100,
            "AliasTarget": Match.object_like({"EvaluateTargetHealth": True}),
        },
    )


def test_state_table_on_demand_with_pitr_and_ttl(synthesized) -> None:
    _scaling(synthesized).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
        },
    )


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_cell_template_stands_alone(synthesized, env: str) -> None:
    """CellId is the only parameter without a default; ids come from parameters the Scaling stack publishes."""
    e = synthesized[env]
    asset_dir = Path(e.assembly.directory)
    [template_file] = list(asset_dir.glob(f"{e.stacks.scaling.stack_name}.cell-template/Cell.template.json"))
    cell_template = json.loads(template_file.read_text())
    params = cell_template["Parameters"]
    assert [name for name, p in params.items() if "Default" not in p] == [cell.CELL_ID_PARAMETER]
    assert set(cell_template["Outputs"]) >= {cell.OUTPUT_DNS_NAME, cell.OUTPUT_HOSTED_ZONE_ID}
    text = template_file.read_text()
    referenced = set(re.findall(r"\{\{resolve:ssm:([^}]+)\}\}", text))
    published = {
        r["Properties"]["Name"] for r in e.template(e.stacks.scaling).find_resources("AWS::SSM::Parameter").values()
    }
    assert referenced and referenced <= published | {e.config.data.flag_parameter_name}
    lb = [r for r in cell_template["Resources"].values() if r["Type"] == "AWS::ElasticLoadBalancingV2::LoadBalancer"]
    attrs = {a["Key"]: a["Value"] for a in lb[0]["Properties"]["LoadBalancerAttributes"]}
    assert attrs["deletion_protection.enabled"] == "false"  # the scaler must be able to delete a cell

    # A scaled cell runs like the base cell: same health check and the same scaling targets.
    def shape(template: dict) -> tuple:
        resources = template["Resources"].values()
        [group] = [r for r in resources if r["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"]
        tracking = sorted(
            json.dumps(r["Properties"]["TargetTrackingConfiguration"].get("TargetValue"))
            for r in resources
            if r["Type"] == "AWS::AutoScaling::ScalingPolicy"
        )
        health = {k: v for k, v in group["Properties"].items() if k.startswith("HealthCheck") or "Threshold" in k}
        return health, tracking

    assert shape(cell_template) == shape(e.template_json(e.stacks.app))


def test_cell_webapp_asset_is_published_by_the_app_stack(synthesized) -> None:
    """The cell template's webapp object is the App stack's asset (same content hash, same key)."""
    e = synthesized["dev"]
    directory = Path(e.assembly.directory)
    cell_text = (directory / f"{e.stacks.scaling.stack_name}.cell-template" / "Cell.template.json").read_text()
    cell_keys = set(re.findall(r"([0-9a-f]{64})\.zip", cell_text))
    app_assets = json.loads((directory / f"{e.stacks.app.stack_name}.assets.json").read_text())["files"]
    assert cell_keys and cell_keys <= set(app_assets)


# ---- construct props, on a tiny stack -------------------------------------------------------------


def _tiny(**overrides):
    stack = Stack(App(), "Tiny")
    props = dict(
        scaling_topic=sns.Topic(stack, "Scaling"),
        notification_topic=sns.Topic(stack, "Warning"),
        scale_out_alarm_name="out",
        scale_in_alarm_name="in",
        cell_template=s3_assets.Asset(stack, "Template", path=str(lambda_code_dir("scaler") / "index.py")),
        cell_stack_prefix="tiny-cell",
        record_name="app.tiny.internal",
        vpc=ec2.Vpc.from_vpc_attributes(
            stack, "Vpc", vpc_id="vpc-0123456789abcdef0", availability_zones=["us-east-2a"]
        ),
    )
    props.update(overrides)
    return stack, props


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"min_cells": 3, "max_cells": 2}, "min_cells/max_cells: 3/2 not allowed"),
        ({"max_cells": 11}, "max_cells <= 10"),
        ({"cell_weight": 256}, "cell_weight: 256 is out of range"),
        ({"vpc": None}, "vpc: required when hosted_zone is not given"),
        ({"record_name": "app.internal", "vpc": None}, "has no parent domain"),
    ],
)
def test_bad_props_are_named(overrides, message: str) -> None:
    stack, props = _tiny(**overrides)
    with pytest.raises(ValueError, match=re.escape(message)):
        CellScaler(stack, "Scaler", **props)


def test_existing_zone_and_role_are_used_not_created() -> None:
    stack, props = _tiny()
    zone = route53.HostedZone.from_hosted_zone_attributes(
        stack, "Zone", hosted_zone_id="Z123", zone_name="tiny.internal"
    )
    role = iam.Role.from_role_arn(stack, "CellRole", "arn:aws:iam::111111111111:role/cell", mutable=False)
    scaler = CellScaler(stack, "Scaler", hosted_zone=zone, existing_cell_execution_role=role, **props)
    assert scaler.hosted_zone is zone and scaler.cell_execution_role is role and scaler.base_record is None
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Route53::HostedZone", 0)
    template.resource_count_is("AWS::Route53::RecordSet", 0)
    assert not any("CellExecution" in k for k in template.to_json()["Resources"])
    env = _function(template)["Environment"]["Variables"]
    assert env["HOSTED_ZONE_ID"] == "Z123" and env["EXECUTION_ROLE_ARN"] == "arn:aws:iam::111111111111:role/cell"


def test_cell_templates_pass_cfn_lint(synthesized) -> None:
    """The cell template is not a stack of the assembly, so the assembly-wide cfn-lint test does not see it."""
    import shutil
    import subprocess

    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    found = str(cfn_lint) if cfn_lint.exists() else shutil.which("cfn-lint")
    assert found, "cfn-lint is not installed (it is in requirements.lock)"
    files = [
        str(Path(e.assembly.directory) / f"{e.stacks.scaling.stack_name}.cell-template" / "Cell.template.json")
        for e in synthesized.values()
    ]
    result = subprocess.run([found, "--format", "json", *files], capture_output=True, text=True, timeout=300)
    assert result.returncode & ~(2 | 4 | 8) == 0, result.stderr
    errors = [f for f in json.loads(result.stdout or "[]") if f["Level"] == "Error"]
    assert errors == []


def test_cell_acknowledgments_are_not_stale() -> None:
    """The cell app is not part of the outer assembly, so test_nag does not see it: the same check here, in prod
    (which runs every pack)."""
    from aws_cdk import Environment

    from opex_cdk.config import load_environment
    from opex_cdk.nag import acknowledgments_in, nag_packs_for
    from opex_cdk.nag.acknowledgments import RECORD_ONLY_CONTEXT
    from opex_cdk.project_context import load_project_context

    context = {**load_project_context(), RECORD_ONLY_CONTEXT: "true"}
    config = load_environment(context, "prod")
    app = App(context=context)
    cell.CellStack(
        app,
        "Cell",
        config=config,
        availability_zones=["us-east-2a", "us-east-2b", "us-east-2c"],
        parameter_prefix="/opex-prod/cell",
        env=Environment(account=config.account, region=config.region),
    )
    findings = [
        (v.rule_name, r.construct_path)
        for pack in nag_packs_for(app, config.nag_packs)
        for v in pack.validate_scope(app).violations
        for r in v.violating_resources
    ]
    acknowledged = acknowledgments_in(app)
    assert any(a.rule_id == "HIPAA.Security-ELBDeletionProtectionEnabled" for a in acknowledged)
    stale = [a for a in acknowledged if not any(r == a.rule_id and p.startswith(a.construct_path) for r, p in findings)]
    assert stale == []
