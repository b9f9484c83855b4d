"""Resilience stack: FIS experiment templates, their SSM documents and roles, the fleet-safe healer."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk.assertions import Match

from opex_cdk.constructs.fault_injection import EXPERIMENTS
from opex_cdk.levers.outputs import experiment_output_key

# Action ids and the target resource type + target key each takes, as listed in the AWS FIS actions
# reference: https://docs.aws.amazon.com/fis/latest/userguide/fis-actions-reference.html
# (aws:ssm:start-automation-execution takes no targets).
FIS_ACTIONS = {
    "aws:ssm:start-automation-execution": None,
    "aws:ssm:send-command": ("Instances", "aws:ec2:instance"),
    "aws:network:disrupt-connectivity": ("Subnets", "aws:ec2:subnet"),
    "aws:ec2:asg-insufficient-instance-capacity-error": ("AutoScalingGroups", "aws:ec2:autoscaling-group"),
    "aws:ec2:stop-instances": ("Instances", "aws:ec2:instance"),
    "aws:ec2:terminate-instances": ("Instances", "aws:ec2:instance"),
    "aws:fis:wait": None,
}
DISRUPT_SCOPES = {"all", "availability-zone", "dynamodb", "prefix-list", "s3", "vpc"}
FIS_SSM_DOCUMENTS = {"AWSFIS-Run-Kill-Process", "AWSFIS-Run-CPU-Stress"}


def _resources(template_json: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template_json["Resources"].items() if v["Type"] == type_}


@pytest.fixture(scope="module")
def dev(synthesized):
    e = synthesized["dev"]
    return e.template_json(e.stacks.resilience), e


def test_six_experiments_each_stopped_by_the_on_call_alarm(dev) -> None:
    template, e = dev
    experiments = _resources(template, "AWS::FIS::ExperimentTemplate")
    assert sorted(v["Properties"]["Tags"]["opex:experiment"] for v in experiments.values()) == sorted(EXPERIMENTS)
    for exp in experiments.values():
        stops = exp["Properties"]["StopConditions"]
        assert stops and all(s["Source"] == "aws:cloudwatch:alarm" for s in stops)
        # the on-call composite of the observability stack (a cross-stack reference to its ARN)
        assert "ServiceImpaired" in json.dumps(stops) and "observability" in json.dumps(stops)
        assert "Hypothesis:" in exp["Properties"]["Description"] and len(exp["Properties"]["Description"]) <= 512


def test_actions_are_real_fis_actions_with_matching_targets(dev) -> None:
    template, _ = dev
    seen = set()
    for exp in _resources(template, "AWS::FIS::ExperimentTemplate").values():
        props = exp["Properties"]
        for action in props["Actions"].values():
            action_id = action["ActionId"]
            assert action_id in FIS_ACTIONS, action_id
            seen.add(action_id)
            expected = FIS_ACTIONS[action_id]
            if expected is None:
                assert not action.get("Targets")
                continue
            key, resource_type = expected
            ((target_key, target_name),) = action["Targets"].items()
            assert target_key == key and props["Targets"][target_name]["ResourceType"] == resource_type
            if action_id == "aws:network:disrupt-connectivity":
                assert action["Parameters"]["scope"] in DISRUPT_SCOPES
            if action_id == "aws:ssm:send-command":
                assert (
                    json.dumps(action["Parameters"]["documentArn"]).split("document/")[1].split('"')[0]
                    in FIS_SSM_DOCUMENTS
                )
    assert seen == {
        "aws:ssm:start-automation-execution",
        "aws:ssm:send-command",
        "aws:network:disrupt-connectivity",
        "aws:ec2:asg-insufficient-instance-capacity-error",
    }


def test_zonal_experiments_target_one_az(dev) -> None:
    template, e = dev
    experiments = {v["Properties"]["Tags"]["opex:experiment"]: v["Properties"] for v in
                   _resources(template, "AWS::FIS::ExperimentTemplate").values()}  # fmt: skip
    blackhole = experiments["dynamodb-blackhole-az"]
    assert blackhole["Actions"]["BlackholeDynamoDb"]["Parameters"]["scope"] == "dynamodb"
    assert len(blackhole["Targets"]["AppSubnetOfOneAz"]["ResourceArns"]) == 1
    lose = experiments["lose-az"]
    az = e.stacks.resilience.fault_injection.target_availability_zone
    assert lose["Actions"]["NoCapacityInTheAz"]["Parameters"]["availabilityZoneIdentifiers"] == az
    # every tier's subnet in that AZ: public, app, data
    assert len(lose["Targets"]["SubnetsOfOneAz"]["ResourceArns"]) == 3


def test_automation_documents_restore_on_cancel(dev) -> None:
    template, _ = dev
    docs = _resources(template, "AWS::SSM::Document")
    assert len(docs) == 2
    for doc in docs.values():
        content = doc["Properties"]["Content"]
        assert doc["Properties"]["DocumentType"] == "Automation" and content["schemaVersion"] == "0.3"
        steps = {s["name"]: s for s in content["mainSteps"]}
        restore = next(name for name in steps if name.startswith("Restore"))
        assert steps["Wait"]["onCancel"] == f"step:{restore}" and steps["Wait"]["onFailure"] == f"step:{restore}"
        assert content["mainSteps"][-1]["name"] == restore


def test_fis_role_is_scoped(dev) -> None:
    template, e = dev
    t = e.template(e.stacks.resilience)
    t.has_resource_properties(
        "AWS::IAM::Role",
        {"AssumeRolePolicyDocument": {"Statement": [Match.object_like({"Principal": {"Service": "fis.amazonaws.com"},
                                                                       "Condition": Match.any_value()})]}},
    )  # fmt: skip
    policies = _resources(template, "AWS::IAM::ManagedPolicy")
    statements = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    by_sid = {s["Sid"]: s for s in statements if "Sid" in s}
    assert by_sid["InjectCapacityErrorsForTheGroupOnly"]["Condition"]["ForAnyValue:StringEquals"] == {
        "ec2:FisActionId": ["aws:ec2:asg-insufficient-instance-capacity-error"]
    }
    assert "ssm:resourceTag/aws:autoscaling:groupName" in json.dumps(by_sid["OnInstancesOfTheGroupOnly"])
    assert by_sid["EditAndDeleteOnlyFisAcls"]["Condition"] == {"StringEquals": {"ec2:ResourceTag/managedByFIS": "true"}}
    assert "ec2.amazonaws.com" in json.dumps(by_sid["PassOnlyTheTwoInstanceRoles"]["Condition"])
    writes = by_sid["MarkInstancesOfTheOneGroup"]
    assert set(writes["Condition"]["StringEquals"]) == {
        "autoscaling:ResourceTag/aws:cloudformation:stack-name",
        "autoscaling:ResourceTag/aws:cloudformation:logical-id",
    }
    # nothing writes with a bare "*" except under a condition
    for s in statements:
        if s["Resource"] == "*" and not s.get("Condition"):
            assert all(a.split(":")[1].startswith(("Describe", "Get", "List", "CancelCommand", "Create", "Delete",
                                                   "Assign", "Unassign")) for a in _actions(s)), s  # fmt: skip


def _actions(statement: dict) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def test_healer_function_follows_the_lambda_rules(dev) -> None:
    _, e = dev
    t = e.template(e.stacks.resilience)
    t.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Architectures": ["arm64"],
            "Timeout": 60,
            "MemorySize": 256,
            "ReservedConcurrentExecutions": 1,
            "DeadLetterConfig": {"TargetArn": Match.any_value()},
            "VpcConfig": Match.any_value(),
            "Environment": {"Variables": Match.object_like({"MAX_UNHEALTHY_SHARE": "0.5"})},
        },
    )
    t.has_resource_properties("AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2})
    t.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": "opex-dev-healer-errors-Critical"})
    t.has_resource_properties("AWS::CloudWatch::Alarm", {"AlarmName": "opex-dev-healer-dlq-Critical"})
    t.has_resource_properties(
        "AWS::Events::Rule",
        {"EventPattern": Match.object_like({"detail-type": ["CloudWatch Alarm State Change"],
                                            "detail": {"state": {"value": ["ALARM"]}}})},
    )  # fmt: skip
    t.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(5 minutes)"})


def test_outputs_name_what_the_levers_need(dev) -> None:
    template, _ = dev
    outputs = set(template["Outputs"])
    expected = {"FlagParameterName", "AutoScalingGroupName", "InstanceProfileName", "FaultInstanceProfileName",
                "TargetGroupArn", "HealerFunctionName", *(experiment_output_key(n) for n in EXPERIMENTS)}  # fmt: skip
    assert expected <= outputs


def test_every_experiment_has_a_document() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "docs" / "experiments"
    for name in EXPERIMENTS:
        text = (root / f"{name}.md").read_text()
        assert "Hypothesis" in text and "What good looks like" in text, name


def _tiny(**overrides):
    from aws_cdk import aws_autoscaling as autoscaling
    from aws_cdk import aws_cloudwatch as cw
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_ssm as ssm

    from opex_cdk.constructs.fault_injection import FaultInjection

    stack = Stack(App(), "S")
    app_tier = ec2.SubnetConfiguration(name="App", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    vpc = ec2.Vpc(stack, "V", max_azs=2, nat_gateways=0, subnet_configuration=[app_tier])
    asg = autoscaling.AutoScalingGroup(stack, "A", vpc=vpc, instance_type=ec2.InstanceType("t3.micro"),
                                       machine_image=ec2.MachineImage.latest_amazon_linux2023())  # fmt: skip
    role = iam.Role(stack, "R", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    props = dict(
        name_prefix="t",
        stop_condition_alarms=[
            cw.Alarm(stack, "Al", metric=cw.Metric(namespace="N", metric_name="M"), threshold=1, evaluation_periods=1)
        ],  # fmt: skip
        flag_parameter=ssm.StringParameter(stack, "F", string_value="true"),
        auto_scaling_group=asg,
        instance_role=role,
        instance_profile=iam.InstanceProfile(stack, "P", role=role),
        fault_role=role,
        fault_instance_profile=iam.InstanceProfile(stack, "FP", role=role),
        app_subnets=vpc.isolated_subnets,
    )
    props.update(overrides)
    return FaultInjection(stack, "Fi", **props)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stop_condition_alarms": []}, "stop_condition_alarms: at least one alarm is required"),
        ({"cpu_stress_percent": 0}, "cpu_stress_percent: 0 is not allowed; allowed: 1 to 100"),
        ({"target_availability_zone": "mars-1a"}, "target_availability_zone: 'mars-1a' has no app subnet"),
    ],
)
def test_fault_injection_rejects_bad_props(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _tiny(**overrides)
