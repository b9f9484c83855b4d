"""Operator levers (`python -m opex_cdk.levers`) against moto: CloudFormation outputs, SSM, EC2, FIS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from opex_cdk.levers.__main__ import main
from opex_cdk.levers.core import EXPERIMENT_NAMES, LeverError, Levers
from opex_cdk.levers.outputs import experiment_output_key

REGION = "us-east-2"
STACK = "opex-dev-resilience"


@pytest.fixture(scope="module")
def _aws() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.setenv(key, "testing")
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            yield


class World:
    """A deployed environment as the levers see it: the stack's outputs point at real moto resources."""

    def __init__(self, stack_name: str) -> None:
        c = lambda s: boto3.client(s, region_name=REGION)  # noqa: E731
        self.ssm, self.ec2, self.autoscaling, self.iam = c("ssm"), c("ec2"), c("autoscaling"), c("iam")
        self.ssm.put_parameter(Name=f"{stack_name}-flag", Value="true", Type="String", Overwrite=True)
        for name in ("normal", "fault"):
            role = self.iam.create_role(RoleName=f"{stack_name}-{name}", AssumeRolePolicyDocument="{}")["Role"]
            self.iam.create_instance_profile(InstanceProfileName=f"{stack_name}-{name}")
            self.iam.add_role_to_instance_profile(InstanceProfileName=f"{stack_name}-{name}", RoleName=role["RoleName"])
        vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}a")
        self.ec2.create_launch_template(
            LaunchTemplateName=f"{stack_name}-lt", LaunchTemplateData={"ImageId": "ami-12c6146b"}
        )
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=f"{stack_name}-asg", LaunchTemplate={"LaunchTemplateName": f"{stack_name}-lt"},
            MinSize=1, MaxSize=2, DesiredCapacity=1, VPCZoneIdentifier=subnet["Subnet"]["SubnetId"],
        )  # fmt: skip
        self.member = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[f"{stack_name}-asg"])[
            "AutoScalingGroups"
        ][0]["Instances"][0]["InstanceId"]
        self.ec2.associate_iam_instance_profile(
            IamInstanceProfile={"Name": f"{stack_name}-normal"}, InstanceId=self.member
        )
        self.stranger = self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0][
            "InstanceId"
        ]
        fis = c("fis")
        template_id = fis.create_experiment_template(
            clientToken=stack_name, description="d", roleArn="arn:aws:iam::123456789012:role/fis",
            stopConditions=[{"source": "none"}],
            actions={"Wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}},
        )["experimentTemplate"]["id"]  # fmt: skip
        outputs = {
            "FlagParameterName": f"{stack_name}-flag",
            "AutoScalingGroupName": f"{stack_name}-asg",
            "InstanceProfileName": f"{stack_name}-normal",
            "FaultInstanceProfileName": f"{stack_name}-fault",
            experiment_output_key("dependency-off"): template_id,
        }
        body = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {k: {"Value": v} for k, v in outputs.items()},
        }
        c("cloudformation").create_stack(StackName=stack_name, TemplateBody=json.dumps(body))
        self.levers = Levers(stack_name, REGION)


_count = iter(range(1000))


@pytest.fixture()
def world(_aws: None) -> World:
    return World(f"{STACK}-{next(_count)}")


def run(world: World, *argv: str, capsys: Any) -> tuple[int, str, str]:
    code = main(list(argv), levers=world.levers)
    out, err = capsys.readouterr()
    return code, out, err


def test_flag_off_and_on(world: World, capsys) -> None:
    code, out, _ = run(world, "flag", "off", capsys=capsys)
    assert code == 0 and out.strip().endswith("true -> false")
    assert world.ssm.get_parameter(Name=world.levers.output("FlagParameterName"))["Parameter"]["Value"] == "false"
    code, out, _ = run(world, "flag", "on", capsys=capsys)
    assert code == 0 and out.strip().endswith("false -> true")


def _profile_of(world: World, instance_id: str) -> str:
    (association,) = world.ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    return association["IamInstanceProfile"]["Arn"].rsplit("/", 1)[1]


def test_fault_role_swap_and_restore(world: World, capsys) -> None:
    code, out, _ = run(world, "fault-role", "swap", "--instance-id", world.member, capsys=capsys)
    assert code == 0 and out.strip().endswith("-fault")
    assert _profile_of(world, world.member).endswith("-fault")
    code, _, _ = run(world, "fault-role", "restore", "--instance-id", world.member, capsys=capsys)
    assert code == 0 and _profile_of(world, world.member).endswith("-normal")


def test_fault_role_refuses_an_instance_outside_the_group(world: World, capsys) -> None:
    code, _, err = run(world, "fault-role", "swap", "--instance-id", world.stranger, capsys=capsys)
    assert code == 1 and err.startswith(f"error: instance '{world.stranger}' is not in the Auto Scaling group")
    assert len(err.strip().splitlines()) == 1


def test_experiment_start_and_follow(world: World, capsys) -> None:
    code, out, _ = run(world, "experiment", "start", "dependency-off", capsys=capsys)
    assert code == 0 and out.startswith("started dependency-off: ")
    experiment_id = out.split(": ")[1].strip()
    printed = []
    status = world.levers.follow(
        experiment_id, on_change=lambda s, r: printed.append(s), poll_seconds=1, sleep=lambda _: None, timeout_seconds=5
    )
    assert status == "completed" and printed[-1] == "completed"


def test_follow_gives_up_with_a_clear_error(world: World) -> None:
    class Stuck:
        def get_experiment(self, id: str) -> dict:
            return {"experiment": {"state": {"status": "running", "reason": "Experiment is running."}}}

    levers = Levers("s", REGION, client_factory=lambda _: Stuck())
    seen = []
    with pytest.raises(LeverError, match="experiment EXP1 still 'running' after 3 s"):
        levers.follow("EXP1", on_change=lambda s, r: seen.append((s, r)), poll_seconds=1, sleep=lambda _: None,
                      timeout_seconds=3)  # fmt: skip
    assert seen == [("running", "Experiment is running.")]  # reported once, not on every poll


def test_experiment_list_shows_the_outputs(world: World, capsys) -> None:
    code, out, _ = run(world, "experiment", "list", capsys=capsys)
    assert code == 0 and out.split()[0] == "dependency-off"


def test_missing_experiment_output_is_named(world: World, capsys) -> None:
    code, _, err = run(world, "experiment", "start", "lose-az", capsys=capsys)
    assert code == 1 and f"has no output '{experiment_output_key('lose-az')}'" in err


def test_missing_stack_is_one_line(_aws: None, capsys) -> None:
    code = main(["flag", "off"], levers=Levers("opex-nope-resilience", REGION))
    _, err = capsys.readouterr()
    assert (
        code == 1
        and err
        == f"error: stack 'opex-nope-resilience' not found in {REGION}; deploy it first (cdk deploy --all -c env=...)\n"
    )


def test_flag_needs_only_the_data_stack(_aws: None, capsys) -> None:
    """The emergency lever must work when only the flag exists (no Resilience stack deployed)."""
    import boto3

    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="DataOnlyFlag", Value="true", Type="String", Overwrite=True)
    levers = Levers("opex-nope-resilience", REGION, flag_parameter_name="DataOnlyFlag")
    assert main(["flag", "off"], levers=levers) == 0
    assert capsys.readouterr().out.strip() == "DataOnlyFlag: true -> false"
    assert ssm.get_parameter(Name="DataOnlyFlag")["Parameter"]["Value"] == "false"


def test_unknown_experiment_name_is_refused() -> None:
    with pytest.raises(LeverError, match="unknown experiment 'nope'; allowed: dependency-off"):
        Levers("s", REGION, client_factory=lambda s: None).start_experiment("nope")


def test_names_match_the_construct() -> None:
    from opex_cdk.constructs.fault_injection import EXPERIMENTS

    assert tuple(EXPERIMENTS) == EXPERIMENT_NAMES
