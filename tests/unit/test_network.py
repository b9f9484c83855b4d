"""WellArchitectedVpc and the Network stack, from the synthesized dev and prod environments."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk.assertions import Match, Template

from opex_cdk.constructs import WellArchitectedVpc


def _network(synthesized, env: str) -> Template:
    e = synthesized[env]
    return e.template(e.stacks.network)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_three_tiers_in_each_of_three_azs(synthesized, env: str) -> None:
    template = _network(synthesized, env)
    template.resource_count_is("AWS::EC2::Subnet", 9)
    subnets = template.find_resources("AWS::EC2::Subnet")
    tiers = {}
    for resource in subnets.values():
        props = resource["Properties"]
        tier = next(t["Value"] for t in props["Tags"] if t["Key"] == "aws-cdk:subnet-name")
        tiers.setdefault(tier, set()).add(props["AvailabilityZone"])
        assert props["CidrBlock"].endswith("/20")
        assert props["MapPublicIpOnLaunch"] is False
    assert tiers == {t: {"us-east-2a", "us-east-2b", "us-east-2c"} for t in ("Public", "App", "Data")}


def test_nat_gateways_follow_config(synthesized) -> None:
    _network(synthesized, "dev").resource_count_is("AWS::EC2::NatGateway", 1)
    _network(synthesized, "prod").resource_count_is("AWS::EC2::NatGateway", 3)


def test_flow_log_all_traffic_to_encrypted_group_with_retention(synthesized) -> None:
    for env, days in (("dev", 90), ("prod", 365)):
        template = _network(synthesized, env)
        template.has_resource_properties(
            "AWS::EC2::FlowLog",
            {"TrafficType": "ALL", "ResourceType": "VPC", "LogDestinationType": "cloud-watch-logs"},
        )
        template.has_resource_properties(
            "AWS::Logs::LogGroup", {"RetentionInDays": days, "KmsKeyId": Match.any_value()}
        )
        template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_flow_log_role_has_no_inline_policy(synthesized) -> None:
    template = _network(synthesized, "dev")
    template.resource_count_is("AWS::IAM::Policy", 0)
    template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {"PolicyDocument": {"Statement": [Match.object_like({"Action": Match.array_with(["logs:PutLogEvents"])})]}},
    )


def test_gateway_endpoints_for_s3_and_dynamodb(synthesized) -> None:
    template = _network(synthesized, "dev")
    endpoints = template.find_resources("AWS::EC2::VPCEndpoint", {"Properties": {"VpcEndpointType": "Gateway"}})
    services = sorted(str(e["Properties"]["ServiceName"]) for e in endpoints.values())
    assert len(services) == 2
    assert any("dynamodb" in s for s in services) and any("s3" in s for s in services)


def test_interface_endpoints_behind_one_https_only_group(synthesized) -> None:
    template = _network(synthesized, "dev")
    interface = template.find_resources("AWS::EC2::VPCEndpoint", {"Properties": {"VpcEndpointType": "Interface"}})
    names = sorted(str(e["Properties"]["ServiceName"]) for e in interface.values())
    assert len(names) == 5
    for service in ("ssm'", "ssmmessages", "ec2messages", "logs", "monitoring"):
        assert any(service.strip("'") in n for n in names), service
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": "HTTPS from inside the VPC to the interface endpoints",
            "SecurityGroupIngress": [Match.object_like({"CidrIp": "10.0.0.0/16", "FromPort": 443, "ToPort": 443})],
        },
    )


def test_default_security_group_is_restricted(synthesized) -> None:
    _network(synthesized, "dev").has_resource("Custom::VpcRestrictDefaultSG", {})


def test_prod_network_is_termination_protected_and_retained(synthesized) -> None:
    assert synthesized["prod"].stacks.network.termination_protection is True
    assert synthesized["dev"].stacks.network.termination_protection is False
    _network(synthesized, "prod").has_resource("AWS::Logs::LogGroup", {"DeletionPolicy": "Retain"})


def test_stateful_logical_ids_are_pinned(synthesized) -> None:
    """Renaming these would replace the VPC (and everything in it) or lose the flow-log history."""
    resources = synthesized["dev"].template_json(synthesized["dev"].stacks.network)["Resources"]
    assert resources["NetworkVpc7FB7348F"]["Type"] == "AWS::EC2::VPC"
    assert resources["NetworkFlowLogGroup4F8CEEEF"]["Type"] == "AWS::Logs::LogGroup"


def test_existing_vpc_is_adopted_without_new_resources() -> None:
    stack = Stack(App(), "Adopt")
    existing = ec2.Vpc(stack, "Theirs", max_azs=2, restrict_default_security_group=False)
    before = len(stack.node.find_all())
    network = WellArchitectedVpc(stack, "Network", existing_vpc=existing)
    assert network.vpc is existing
    assert network.flow_log is None and network.interface_endpoints == {}
    assert len(stack.node.find_all()) == before + 1  # only the construct itself


def test_vpc_props_and_existing_vpc_are_exclusive() -> None:
    stack = Stack(App(), "Both")
    existing = ec2.Vpc(stack, "Theirs", max_azs=2)
    with pytest.raises(ValueError, match="Either provide vpc_props or existing_vpc, but not both."):
        WellArchitectedVpc(stack, "Network", existing_vpc=existing, vpc_props=ec2.VpcProps(max_azs=2))


def test_vpc_props_override_defaults() -> None:
    stack = Stack(App(), "Override", env={"account": "111111111111", "region": "us-east-2"})
    WellArchitectedVpc(stack, "Network", interface_endpoints=False, vpc_props=ec2.VpcProps(nat_gateways=0))
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::Subnet", 9)
