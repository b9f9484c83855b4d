"""The healer handler (lambda/healer/index.py) against moto: ELBv2 + Auto Scaling + SNS.

moto runs no health checks, so a test says which targets are ``unhealthy`` by wrapping moto's
target-health lookup; everything else (the ASG, its instances across three AZs, the target group
registrations, SetInstanceHealth, tags, SNS) is moto's.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

_spec = importlib.util.spec_from_file_location("opex_healer_loader", Path(__file__).with_name("healer_loader.py"))
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
index = _loader.load_handler()

REGION = "us-east-2"
AZS = ("us-east-2a", "us-east-2b", "us-east-2c")


class Fleet:
    """A moto world: an ASG of ``per_az`` instances in each of three AZs, registered in one target group.

    moto's ASG launches every instance into its first subnet, so instances are launched per subnet and
    attached (the ASG then registers them with its target group, as AWS does)."""

    _count = 0

    def __init__(self, per_az: int, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.elbv2 import models as elbv2_models

        Fleet._count += 1
        self.asg = f"opex-test-asg-{Fleet._count}"
        self.unhealthy: set[str] = set()
        original = elbv2_models.FakeTargetGroup.health_for
        unhealthy = self.unhealthy

        def health_for(group: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
            status = original(group, target, ec2_backend)
            if target["Id"] in unhealthy and status.status == "healthy":
                status.status, status.reason = "unhealthy", "Target.ResponseCodeMismatch"
            return status

        monkeypatch.setattr(elbv2_models.FakeTargetGroup, "health_for", health_for)
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
            for n, az in enumerate(AZS)
        ]
        elbv2 = boto3.client("elbv2", region_name=REGION)
        self.target_group_arn = elbv2.create_target_group(
            Name=f"opex-test-tg-{Fleet._count}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="instance"
        )["TargetGroups"][0]["TargetGroupArn"]
        template = f"opex-test-lt-{Fleet._count}"
        ec2.create_launch_template(
            LaunchTemplateName=template, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"}
        )
        self.autoscaling = boto3.client("autoscaling", region_name=REGION)
        self.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=self.asg,
            LaunchTemplate={"LaunchTemplateName": template},
            MinSize=0,
            MaxSize=per_az * 6,
            DesiredCapacity=0,
            VPCZoneIdentifier=",".join(subnets),
            TargetGroupARNs=[self.target_group_arn],
            HealthCheckType="ELB",
        )
        launched = [
            i["InstanceId"]
            for subnet in subnets
            for i in ec2.run_instances(ImageId="ami-12c6146b", MinCount=per_az, MaxCount=per_az, SubnetId=subnet)[
                "Instances"
            ]
        ]
        self.autoscaling.attach_instances(AutoScalingGroupName=self.asg, InstanceIds=launched)
        sns = boto3.client("sns", region_name=REGION)
        self.critical = sns.create_topic(Name=f"critical-{Fleet._count}")["TopicArn"]
        self.warning = sns.create_topic(Name=f"warning-{Fleet._count}")["TopicArn"]
        self.settings = index.Settings(
            target_group_arn=self.target_group_arn,
            auto_scaling_group_name=self.asg,
            critical_topic_arn=self.critical,
            warning_topic_arn=self.warning,
            max_unhealthy_share=0.5,
            max_replacements_per_window=2,
            replacement_window_minutes=30,
        )

    def group(self) -> dict[str, Any]:
        return self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[self.asg])["AutoScalingGroups"][0]

    def instances(self) -> list[dict[str, Any]]:
        return sorted(self.group()["Instances"], key=lambda i: (i["AvailabilityZone"], i["InstanceId"]))

    def in_az(self, az: str) -> list[str]:
        return [i["InstanceId"] for i in self.instances() if i["AvailabilityZone"] == az]

    def marked_unhealthy(self) -> list[str]:
        return sorted(i["InstanceId"] for i in self.instances() if i["HealthStatus"] == "Unhealthy")

    def messages(self, topic_arn: str) -> list[tuple[str, dict[str, Any]]]:
        from moto.sns.models import sns_backends

        sent = sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[topic_arn].sent_notifications
        return [(subject, json.loads(message)) for _, message, subject, _, _ in sent]

    def ledger(self) -> str:
        return next((t["Value"] for t in self.group()["Tags"] if t["Key"] == index.LEDGER_TAG), "")

    def set_ledger(self, value: str) -> None:
        self.autoscaling.create_or_update_tags(
            Tags=[{"ResourceId": self.asg, "ResourceType": "auto-scaling-group", "Key": index.LEDGER_TAG,
                   "Value": value, "PropagateAtLaunch": False}]
        )  # fmt: skip


@pytest.fixture(scope="module")
def _aws() -> Iterator[None]:
    """One moto world per module (resetting moto costs more than the tests); each test builds its own fleet."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            mp.setenv(key, "testing")
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        index._CLIENTS.clear()
        with mock_aws():
            yield
        index._CLIENTS.clear()


@pytest.fixture()
def world(_aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    return lambda per_az: Fleet(per_az, monkeypatch)


def test_single_bad_instance_is_marked_and_notified(world) -> None:
    fleet = world(1)
    bad = fleet.in_az(AZS[0])[0]
    fleet.unhealthy.add(bad)
    result = index.heal(fleet.settings, trigger="alarm", now=1_000_000)
    assert result["decision"]["replace"] == [bad]
    assert fleet.marked_unhealthy() == [bad]
    assert fleet.ledger() == "1000000"
    ((subject, body),) = fleet.messages(fleet.warning)
    assert subject == "Healer: replacing 1 instance(s)" and body["replace"] == [bad] and body["trigger"] == "alarm"
    assert fleet.messages(fleet.critical) == []


def test_fleet_wide_failure_recycles_nothing_and_pages(world) -> None:
    fleet = world(1)
    fleet.unhealthy.update(i["InstanceId"] for i in fleet.instances())
    result = index.heal(fleet.settings, trigger="alarm", now=1_000_000)
    assert result["decision"]["fleet_wide"] and result["decision"]["replace"] == []
    assert fleet.marked_unhealthy() == [] and fleet.ledger() == ""
    ((subject, body),) = fleet.messages(fleet.critical)
    assert subject == "Healer: fleet-wide failure, replacing nothing"
    assert body["refusal_reason"].startswith("fleet-wide: 3 of 3 targets unhealthy")


def test_az_wide_failure_is_left_to_the_load_balancer(world) -> None:
    fleet = world(2)  # two instances per AZ
    fleet.unhealthy.update(fleet.in_az(AZS[1]))
    result = index.heal(fleet.settings, trigger="alarm", now=1_000_000)
    assert result["decision"]["zonal_azs"] == [AZS[1]] and result["decision"]["replace"] == []
    assert fleet.marked_unhealthy() == []
    ((subject, _),) = fleet.messages(fleet.critical)
    assert subject == f"Healer: zonal failure in {AZS[1]}"


def test_duplicate_trigger_does_not_replace_twice(world) -> None:
    """The alarm and the schedule can fire together: the second pass sees the instance already marked."""
    fleet = world(1)
    bad = fleet.in_az(AZS[2])[0]
    fleet.unhealthy.add(bad)
    first = index.heal(fleet.settings, trigger="alarm", now=1_000_000)
    second = index.heal(fleet.settings, trigger="schedule", now=1_000_010)
    assert first["decision"]["replace"] == [bad] and second["decision"]["replace"] == []
    assert second["decision"]["refusal_reason"] is None and second["notified"] is None
    assert fleet.ledger() == "1000000"  # one replacement recorded, not two
    assert len(fleet.messages(fleet.warning)) == 1


def test_rate_limit_throttles_and_says_so(world) -> None:
    fleet = world(3)
    already = [str(1_000_000 - 60), str(1_000_000 - 120)]  # two replacements in the last window
    fleet.set_ledger(" ".join(already))
    bad = fleet.in_az(AZS[0])[0]
    fleet.unhealthy.add(bad)
    result = index.heal(fleet.settings, trigger="schedule", now=1_000_000)
    assert result["decision"]["replace"] == [] and result["decision"]["deferred"] == [bad]
    assert fleet.marked_unhealthy() == []
    ((subject, body),) = fleet.messages(fleet.warning)
    assert subject == "Healer: replacement refused" and body["refusal_reason"].startswith("rate limit")


def test_window_expiry_frees_the_budget(world) -> None:
    fleet = world(3)
    fleet.set_ledger("100 200")
    bad = fleet.in_az(AZS[0])[0]
    fleet.unhealthy.add(bad)
    result = index.heal(fleet.settings, trigger="schedule", now=1_000_000)
    assert result["decision"]["replace"] == [bad] and result["recent_replacements"] == 0
    assert fleet.ledger() == "1000000"  # expired entries dropped


def test_handler_reads_its_environment(world, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = world(1)
    for key, value in {
        "TARGET_GROUP_ARN": fleet.target_group_arn,
        "AUTO_SCALING_GROUP_NAME": fleet.asg,
        "CRITICAL_TOPIC_ARN": fleet.critical,
        "WARNING_TOPIC_ARN": fleet.warning,
    }.items():
        monkeypatch.setenv(key, value)
    result = index.handler({"detail-type": "Scheduled Event"}, None)
    assert result["trigger"] == "schedule" and result["decision"]["total"] == 3 and result["notified"] is None


def test_missing_environment_is_named() -> None:
    with pytest.raises(ValueError, match="environment variable TARGET_GROUP_ARN is missing"):
        index.Settings.from_env({})


def test_missing_group_raises(world) -> None:
    fleet = world(1)
    settings = index.Settings(**{**fleet.settings.__dict__, "auto_scaling_group_name": "nope"})
    with pytest.raises(LookupError, match="Auto Scaling group 'nope' not found"):
        index.heal(settings, trigger="manual")


def test_ledger_keeps_within_the_tag_limit() -> None:
    value = index.write_ledger([1_700_000_000 + n for n in range(40)])
    assert len(value) <= 256 and value.endswith("1700000039")
