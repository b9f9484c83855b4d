"""The moto fixes the deploy rehearsal relies on: SSM dynamic references and the public Powertools parameter.

In-process moto with :func:`opex_cdk.local.moto_fixes.apply` (the same patches the rehearsal's server runs).
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from opex_cdk.constructs.scaler import POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_VERSION
from opex_cdk.local import moto_fixes

REGION = "us-east-2"


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    moto_fixes.apply()
    with mock_aws():
        yield


def _create(template: dict, name: str = "s") -> str:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    return cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]


def test_ssm_dynamic_references_resolve_latest_and_pinned_versions(aws) -> None:
    ssm = boto3.client("ssm", region_name=REGION)
    ssm.put_parameter(Name="/opex-dev/cell/queue", Value="first", Type="String")
    ssm.put_parameter(Name="/opex-dev/cell/queue", Value="second", Type="String", Overwrite=True)
    template = {
        "Resources": {
            "Latest": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": "{{resolve:ssm:/opex-dev/cell/queue}}-x"},
            },
            "Pinned": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": "{{resolve:ssm:/opex-dev/cell/queue:1}}"},
            },
        },
        "Outputs": {"Name": {"Value": {"Fn::GetAtt": ["Latest", "QueueName"]}}},
    }
    assert _create(template) == "CREATE_COMPLETE"
    urls = boto3.client("sqs", region_name=REGION).list_queues()["QueueUrls"]
    assert sorted(url.rsplit("/", 1)[1] for url in urls) == ["first", "second-x"]


def test_a_missing_dynamic_reference_fails_naming_the_parameter(aws) -> None:
    template = {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "{{resolve:ssm:/nope}}"}}}}
    with pytest.raises(Exception, match="SSM parameter /nope does not exist"):
        _create(template)


def test_powertools_parameter_names_a_layer_built_from_the_installed_package(aws) -> None:
    value = boto3.client("ssm", region_name=REGION).get_parameter(Name=POWERTOOLS_LAYER_PARAMETER)["Parameter"]["Value"]
    assert value.endswith(":layer:AWSLambdaPowertoolsPythonV3-python314-arm64:1")
    name, version = value.split(":layer:")[1].rsplit(":", 1)
    layer = boto3.client("lambda", region_name=REGION).get_layer_version(LayerName=name, VersionNumber=int(version))
    assert layer["CompatibleRuntimes"] == ["python3.14"] and layer["CompatibleArchitectures"] == ["arm64"]
    assert layer["Content"]["CodeSize"] > 1_000_000  # the real package, not a placeholder


def test_only_the_installed_powertools_version_is_published(aws) -> None:
    other = POWERTOOLS_LAYER_PARAMETER.replace(POWERTOOLS_VERSION, "3.0.0")
    ssm = boto3.client("ssm", region_name=REGION)
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name=other)


def test_a_function_using_the_published_layer_can_be_created_by_cloudformation(aws) -> None:
    template = {
        "Parameters": {"Layer": {"Type": "AWS::SSM::Parameter::Value<String>", "Default": POWERTOOLS_LAYER_PARAMETER}},
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "lambda.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                },
            },
            "Fn": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Runtime": "python3.14",
                    "Handler": "index.handler",
                    "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    "Code": {"ZipFile": "def handler(event, context):\n    return 1\n"},
                    "Layers": [{"Ref": "Layer"}],
                },
            },
        },
    }
    assert _create(template) == "CREATE_COMPLETE"


def test_a_vpc_with_route_tables_and_a_gateway_endpoint_can_be_deleted(aws) -> None:
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.0.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.0.0.0/24"}},
            "Table": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
            "Association": {
                "Type": "AWS::EC2::SubnetRouteTableAssociation",
                "Properties": {"SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "Table"}},
            },
            "S3": {
                "Type": "AWS::EC2::VPCEndpoint",
                "Properties": {
                    "VpcId": {"Ref": "Vpc"},
                    "ServiceName": f"com.amazonaws.{REGION}.s3",
                    "VpcEndpointType": "Gateway",
                    "RouteTableIds": [{"Ref": "Table"}],
                },
            },
        }
    }
    assert _create(template, "network") == "CREATE_COMPLETE"
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc_ids = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
    assert len(vpc_ids) == 1
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName="network")
    assert [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")] == []
    assert ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": vpc_ids}])["RouteTables"] == []
