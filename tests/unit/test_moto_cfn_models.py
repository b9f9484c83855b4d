"""opex_cdk.local.moto_cfn_models: CloudFormation models moto lacks, backed by moto's own service backends.

Each test creates a small stack through moto's CloudFormation in-process, compares its outputs (``Ref`` and
``Fn::GetAtt``) with what the service's own API reports, checks the template's properties reached the
backend, and that deleting the stack deletes the resource.
"""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from opex_cdk.local import moto_cfn_models
from opex_cdk.local.moto_fixes import apply

REGION = "us-east-2"
ACCOUNT = "123456789012"  # moto's default account
STACK = "opex-test"


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    apply()
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


def deploy(client, resources: dict[str, Any], outputs: dict[str, Any], name: str = STACK) -> dict[str, str]:
    cfn = client("cloudformation")
    template = {
        "Resources": resources,
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    got = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    assert set(got) == set(outputs), got
    return got


def delete(client, name: str = STACK) -> None:
    cfn = client("cloudformation")
    cfn.delete_stack(StackName=name)
    assert not [s for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]


def generated(logical_id: str) -> re.Pattern[str]:
    """A name CloudFormation generates: stack name, logical id, random suffix."""
    return re.compile(rf"^{STACK}-{logical_id}-[A-Z0-9]{{12}}$")


TOPIC = {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "alerts"}}}
TOPIC_ARN = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"


# --------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------


def test_register_is_idempotent_and_moto_maps_every_declared_type_to_our_model() -> None:
    from moto.cloudformation.parsing import get_model_map

    moto_cfn_models.register()
    moto_cfn_models.register()
    model_map = get_model_map()
    assert {model_map[t].__module__ for t in moto_cfn_models.CLOUDFORMATION_TYPES} == {moto_cfn_models.__name__}
    assert "AWS::CloudTrail::Trail" in moto_cfn_models.CLOUDFORMATION_TYPES
    # Left out on purpose (see the module docstring): they stay reported as skipped.
    assert {"AWS::S3::BucketPolicy", "AWS::Lambda::EventInvokeConfig"}.isdisjoint(model_map)


def test_deploy_reports_the_fixed_servers_types() -> None:
    from opex_cdk.local.deploy import moto_blockers, moto_supported_types

    supported = moto_supported_types()
    assert moto_cfn_models.CLOUDFORMATION_TYPES <= supported
    template = {
        "Resources": {"Trail": {"Type": "AWS::CloudTrail::Trail"}, "P": {"Type": "AWS::S3::BucketPolicy"}},
        "Outputs": {"A": {"Value": {"Fn::GetAtt": ["Trail", "Arn"]}}, "B": {"Value": {"Fn::GetAtt": ["P", "X"]}}},
    }
    assert moto_blockers(template, supported) == [
        "Fn::GetAtt P.X of AWS::S3::BucketPolicy, a type moto does not implement"
    ]


# --------------------------------------------------------------------------------------------------
# CloudWatch
# --------------------------------------------------------------------------------------------------


def test_alarm_named_and_generated(aws) -> None:
    named = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": "opex-test-errors-Critical",
            "AlarmDescription": "Errors. Runbook: x",
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "Dimensions": [{"Name": "FunctionName", "Value": "healer"}],
            "Period": 300,
            "Statistic": "Sum",
            "Threshold": 1,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": "Topic"}],
            "OKActions": [{"Ref": "Topic"}],
            "Tags": [{"Key": "Project", "Value": "opex-cdk"}],
        },
    }
    math = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 5,
            "Threshold": 5,
            "Metrics": [
                {"Id": "expr_1", "Expression": "100 * errors / requests", "Label": "Rate", "ReturnData": True},
                {
                    "Id": "errors",
                    "MetricStat": {
                        "Metric": {
                            "MetricName": "HTTPCode_Target_5XX_Count",
                            "Namespace": "AWS/ApplicationELB",
                            "Dimensions": [{"Name": "LoadBalancer", "Value": "app/x/1"}],
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                },
            ],
        },
    }
    out = deploy(
        aws,
        {**TOPIC, "Named": named, "Rate": math},
        {
            "NamedRef": {"Ref": "Named"},
            "NamedArn": {"Fn::GetAtt": ["Named", "Arn"]},
            "RateRef": {"Ref": "Rate"},
            "RateArn": {"Fn::GetAtt": ["Rate", "Arn"]},
        },
    )
    cloudwatch = aws("cloudwatch")
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert out["NamedRef"] == "opex-test-errors-Critical"
    alarm = alarms[out["NamedRef"]]
    assert (
        out["NamedArn"] == alarm["AlarmArn"] == f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:opex-test-errors-Critical"
    )
    assert alarm["Threshold"] == 1.0 and alarm["EvaluationPeriods"] == 3 and alarm["DatapointsToAlarm"] == 2
    assert (alarm["MetricName"], alarm["Namespace"], alarm["Statistic"], alarm["Period"]) == (
        "Errors",
        "AWS/Lambda",
        "Sum",
        300,
    )
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": "healer"}]
    assert alarm["AlarmActions"] == alarm["OKActions"] == [TOPIC_ARN]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["TreatMissingData"] == "notBreaching" and alarm["AlarmDescription"] == "Errors. Runbook: x"
    tags = cloudwatch.list_tags_for_resource(ResourceARN=alarm["AlarmArn"])["Tags"]
    assert tags == [{"Key": "Project", "Value": "opex-cdk"}]

    assert generated("Rate").match(out["RateRef"]), out["RateRef"]
    rate = alarms[out["RateRef"]]
    assert out["RateArn"] == rate["AlarmArn"]
    assert [m["Id"] for m in rate["Metrics"]] == ["expr_1", "errors"]
    assert rate["Metrics"][0]["Expression"] == "100 * errors / requests"
    assert rate["Metrics"][1]["MetricStat"]["Metric"]["MetricName"] == "HTTPCode_Target_5XX_Count"
    assert rate["Metrics"][1]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "LoadBalancer", "Value": "app/x/1"}]

    delete(aws)
    assert cloudwatch.describe_alarms()["MetricAlarms"] == []


def test_alarm_refuses_a_name_that_exists(aws) -> None:
    aws("cloudwatch").put_metric_alarm(
        AlarmName="taken",
        ComparisonOperator="GreaterThanThreshold",
        EvaluationPeriods=1,
        MetricName="Errors",
        Namespace="AWS/Lambda",
        Period=60,
        Statistic="Sum",
        Threshold=0,
    )
    alarm = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": "taken",
            "ComparisonOperator": "LessThanThreshold",
            "EvaluationPeriods": 1,
            "MetricName": "Other",
            "Namespace": "X",
            "Period": 60,
            "Statistic": "Sum",
            "Threshold": 7,
        },
    }
    with pytest.raises(ClientError, match="an alarm named taken already exists"):
        aws("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps({"Resources": {"A": alarm}}))
    assert aws("cloudwatch").describe_alarms(AlarmNames=["taken"])["MetricAlarms"][0]["Threshold"] == 0.0


def test_composite_alarm(aws) -> None:
    child = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": "child",
            "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 1,
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "Period": 60,
            "Statistic": "Sum",
            "Threshold": 0,
        },
    }
    composite = {
        "Type": "AWS::CloudWatch::CompositeAlarm",
        "Properties": {
            "AlarmName": "service-Impaired-Critical",
            "AlarmDescription": "Users are affected",
            "AlarmRule": {"Fn::Join": ["", ['ALARM("', {"Fn::GetAtt": ["Child", "Arn"]}, '")']]},
            "AlarmActions": [{"Ref": "Topic"}],
            "Tags": [{"Key": "Owner", "Value": "platform-team"}],
        },
    }
    out = deploy(
        aws,
        {**TOPIC, "Child": child, "Impaired": composite},
        {"Ref": {"Ref": "Impaired"}, "Arn": {"Fn::GetAtt": ["Impaired", "Arn"]}},
    )
    described = aws("cloudwatch").describe_alarms(AlarmNames=["service-Impaired-Critical"])
    assert described["MetricAlarms"] == []
    (alarm,) = described["CompositeAlarms"]
    assert out["Ref"] == alarm["AlarmName"] == "service-Impaired-Critical"
    assert out["Arn"] == alarm["AlarmArn"]
    assert alarm["AlarmRule"] == f'ALARM("arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:child")'
    assert alarm["AlarmActions"] == [TOPIC_ARN] and alarm["AlarmDescription"] == "Users are affected"
    delete(aws)
    assert aws("cloudwatch").describe_alarms()["CompositeAlarms"] == []


def test_composite_alarm_refuses_what_moto_cannot_hold(aws) -> None:
    composite = {
        "Type": "AWS::CloudWatch::CompositeAlarm",
        "Properties": {"AlarmRule": "ALARM(a)", "ActionsSuppressor": "other"},
    }
    with pytest.raises(ClientError, match="cannot represent ActionsSuppressor"):
        aws("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps({"Resources": {"C": composite}}))
    assert aws("cloudwatch").describe_alarms()["CompositeAlarms"] == []


# --------------------------------------------------------------------------------------------------
# CloudTrail
# --------------------------------------------------------------------------------------------------


def test_trail(aws) -> None:
    trail = {
        "Type": "AWS::CloudTrail::Trail",
        "Properties": {
            "TrailName": "opex-test-trail",
            "S3BucketName": {"Ref": "Bucket"},
            "S3KeyPrefix": "trail",
            "SnsTopicName": {"Fn::GetAtt": ["Topic", "TopicName"]},
            "IsLogging": True,
            "IsMultiRegionTrail": True,
            "IncludeGlobalServiceEvents": True,
            "EnableLogFileValidation": True,
            "KMSKeyId": "arn:aws:kms:us-east-2:123456789012:key/abc",
            "EventSelectors": [{"IncludeManagementEvents": True, "ReadWriteType": "All"}],
            "Tags": [{"Key": "Project", "Value": "opex-cdk"}],
        },
    }
    out = deploy(
        aws,
        {**TOPIC, "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "trail-bucket"}}, "T": trail},
        {"Ref": {"Ref": "T"}, "Arn": {"Fn::GetAtt": ["T", "Arn"]}, "Topic": {"Fn::GetAtt": ["T", "SnsTopicArn"]}},
    )
    cloudtrail = aws("cloudtrail")
    (described,) = cloudtrail.describe_trails()["trailList"]
    assert out["Ref"] == described["Name"] == "opex-test-trail"
    assert out["Arn"] == described["TrailARN"] == f"arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/opex-test-trail"
    assert out["Topic"] == described["SnsTopicARN"] == TOPIC_ARN
    assert described["S3BucketName"] == "trail-bucket" and described["S3KeyPrefix"] == "trail"
    assert described["IsMultiRegionTrail"] and described["LogFileValidationEnabled"]
    assert described["KmsKeyId"] == "arn:aws:kms:us-east-2:123456789012:key/abc"
    assert cloudtrail.get_trail_status(Name="opex-test-trail")["IsLogging"] is True
    selectors = cloudtrail.get_event_selectors(TrailName="opex-test-trail")["EventSelectors"]
    assert selectors == [{"IncludeManagementEvents": True, "ReadWriteType": "All"}]
    tags = cloudtrail.list_tags(ResourceIdList=[out["Arn"]])["ResourceTagList"][0]["TagsList"]
    assert tags == [{"Key": "Project", "Value": "opex-cdk"}]
    delete(aws)
    assert cloudtrail.describe_trails()["trailList"] == []


def test_trail_needs_its_bucket_as_cloudtrail_does(aws) -> None:
    trail = {"Type": "AWS::CloudTrail::Trail", "Properties": {"S3BucketName": "no-such-bucket", "IsLogging": False}}
    with pytest.raises(ClientError, match="no-such-bucket does not exist"):
        aws("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps({"Resources": {"T": trail}}))
    assert aws("cloudtrail").describe_trails()["trailList"] == []


# --------------------------------------------------------------------------------------------------
# FIS
# --------------------------------------------------------------------------------------------------


def test_fis_experiment_template(aws) -> None:
    role_arn = aws("iam").create_role(RoleName="fis", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    template = {
        "Type": "AWS::FIS::ExperimentTemplate",
        "Properties": {
            "Description": "Dependency off",
            "RoleArn": role_arn,
            "Actions": {
                "FlagOff": {
                    "ActionId": "aws:ssm:start-automation-execution",
                    "Parameters": {
                        "documentArn": "arn:aws:ssm:us-east-2:123456789012:document/x",
                        "maxDuration": "PT10M",
                    },
                },
                "Stress": {
                    "ActionId": "aws:ssm:send-command",
                    "Targets": {"Instances": "Fleet"},
                    "StartAfter": ["FlagOff"],
                },
            },
            "Targets": {
                "Fleet": {
                    "ResourceType": "aws:ec2:instance",
                    "ResourceTags": {"aws:autoscaling:groupName": "asg"},
                    "Filters": [{"Path": "State.Name", "Values": ["running"]}],
                    "SelectionMode": "COUNT(1)",
                }
            },
            "StopConditions": [{"Source": "aws:cloudwatch:alarm", "Value": "arn:aws:cloudwatch:us-east-2:1:alarm:x"}],
            "ExperimentOptions": {"AccountTargeting": "single-account", "EmptyTargetResolutionMode": "fail"},
            "Tags": {"Name": "opex-dev-dependency-off"},
        },
    }
    out = deploy(aws, {"E": template}, {"Ref": {"Ref": "E"}, "Id": {"Fn::GetAtt": ["E", "Id"]}})
    fis = aws("fis")
    got = fis.get_experiment_template(id=out["Id"])["experimentTemplate"]
    assert out["Ref"] == out["Id"] == got["id"]
    assert got["description"] == "Dependency off" and got["roleArn"] == role_arn
    assert got["actions"]["FlagOff"]["parameters"]["maxDuration"] == "PT10M"
    assert got["actions"]["Stress"]["targets"] == {"Instances": "Fleet"}
    assert got["actions"]["Stress"]["startAfter"] == ["FlagOff"]
    assert got["targets"]["Fleet"] == {
        "resourceType": "aws:ec2:instance",
        "resourceTags": {"aws:autoscaling:groupName": "asg"},
        "filters": [{"path": "State.Name", "values": ["running"]}],
        "selectionMode": "COUNT(1)",
    }
    assert got["stopConditions"] == [
        {"source": "aws:cloudwatch:alarm", "value": "arn:aws:cloudwatch:us-east-2:1:alarm:x"}
    ]
    assert got["experimentOptions"] == {"accountTargeting": "single-account", "emptyTargetResolutionMode": "fail"}
    assert got["tags"] == {"Name": "opex-dev-dependency-off"}
    delete(aws)
    assert fis.list_experiment_templates()["experimentTemplates"] == []


# --------------------------------------------------------------------------------------------------
# CloudWatch Logs
# --------------------------------------------------------------------------------------------------


def test_metric_filter_named_and_generated(aws) -> None:
    def metric_filter(**extra: Any) -> dict[str, Any]:
        return {
            "Type": "AWS::Logs::MetricFilter",
            "Properties": {
                "LogGroupName": {"Ref": "Group"},
                "FilterPattern": '{ ($.errorCode = "AccessDenied*") }',
                "MetricTransformations": [
                    {
                        "MetricName": "UnauthorizedApiCalls",
                        "MetricNamespace": "OpexCdk/Audit",
                        "MetricValue": "1",
                        "DefaultValue": 0,
                        "Dimensions": [{"Key": "Trail", "Value": "$.recipientAccountId"}],
                    }
                ],
                **extra,
            },
        }

    out = deploy(
        aws,
        {
            "Group": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/opex/trail"}},
            "Unauthorized": metric_filter(),
            "Named": metric_filter(FilterName="named-filter"),
        },
        {"Generated": {"Ref": "Unauthorized"}, "Named": {"Ref": "Named"}},
    )
    logs = aws("logs")
    filters = {f["filterName"]: f for f in logs.describe_metric_filters(logGroupName="/opex/trail")["metricFilters"]}
    assert generated("Unauthorized").match(out["Generated"]), out["Generated"]
    assert set(filters) == {out["Generated"], "named-filter"} and out["Named"] == "named-filter"
    described = filters[out["Generated"]]
    assert described["filterPattern"] == '{ ($.errorCode = "AccessDenied*") }'
    assert described["metricTransformations"] == [
        {
            "metricName": "UnauthorizedApiCalls",
            "metricNamespace": "OpexCdk/Audit",
            "metricValue": "1",
            "defaultValue": 0.0,
            "dimensions": {"Trail": "$.recipientAccountId"},
        }
    ]
    delete(aws)
    assert logs.describe_metric_filters()["metricFilters"] == []


# --------------------------------------------------------------------------------------------------
# SNS and SQS
# --------------------------------------------------------------------------------------------------


def test_subscription(aws) -> None:
    queue_url = aws("sqs").create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = aws("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    resources = {
        **TOPIC,
        "Email": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {"TopicArn": {"Ref": "Topic"}, "Protocol": "email", "Endpoint": "oncall@example.com"},
        },
        "Queue": {
            "Type": "AWS::SNS::Subscription",
            "Properties": {
                "TopicArn": {"Ref": "Topic"},
                "Protocol": "sqs",
                "Endpoint": f"arn:aws:sqs:{REGION}:{ACCOUNT}:target",
                "RawMessageDelivery": True,
                "FilterPolicy": {"severity": ["critical"]},
                "RedrivePolicy": {"deadLetterTargetArn": dlq_arn},
            },
        },
    }
    out = deploy(
        aws,
        resources,
        {"EmailRef": {"Ref": "Email"}, "QueueRef": {"Ref": "Queue"}, "QueueArn": {"Fn::GetAtt": ["Queue", "Arn"]}},
    )
    sns = aws("sns")
    subscriptions = {s["Protocol"]: s for s in sns.list_subscriptions_by_topic(TopicArn=TOPIC_ARN)["Subscriptions"]}
    assert set(subscriptions) == {"email", "sqs"}
    assert out["EmailRef"] == subscriptions["email"]["SubscriptionArn"]
    assert subscriptions["email"]["Endpoint"] == "oncall@example.com"
    assert out["QueueRef"] == out["QueueArn"] == subscriptions["sqs"]["SubscriptionArn"]
    assert out["QueueRef"].startswith(TOPIC_ARN + ":")
    attributes = sns.get_subscription_attributes(SubscriptionArn=out["QueueArn"])["Attributes"]
    assert attributes["RawMessageDelivery"] == "true"
    assert json.loads(attributes["FilterPolicy"]) == {"severity": ["critical"]}
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn}
    delete(aws)
    assert sns.list_subscriptions()["Subscriptions"] == []


POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish"}],
}


def test_topic_policy_is_set_and_the_default_restored_on_delete(aws) -> None:
    sns = aws("sns")
    arn = sns.create_topic(Name="kept")["TopicArn"]
    default = json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])
    policy = {"Type": "AWS::SNS::TopicPolicy", "Properties": {"Topics": [arn], "PolicyDocument": POLICY}}
    out = deploy(aws, {"Policy": policy}, {"Ref": {"Ref": "Policy"}, "Id": {"Fn::GetAtt": ["Policy", "Id"]}})
    assert generated("Policy").match(out["Ref"]) and out["Id"] == out["Ref"]
    assert json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"]) == POLICY
    delete(aws)
    assert json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"]) == default != POLICY


def test_queue_policy_is_set_and_removed_on_delete(aws) -> None:
    sqs = aws("sqs")
    url = sqs.create_queue(QueueName="kept")["QueueUrl"]
    policy = {"Type": "AWS::SQS::QueuePolicy", "Properties": {"Queues": [url], "PolicyDocument": POLICY}}
    out = deploy(aws, {"Policy": policy}, {"Ref": {"Ref": "Policy"}, "Id": {"Fn::GetAtt": ["Policy", "Id"]}})
    assert generated("Policy").match(out["Ref"]) and out["Id"] == out["Ref"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {})
    assert json.loads(attributes["Policy"]) == POLICY
    delete(aws)
    assert not sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")


# --------------------------------------------------------------------------------------------------
# Auto Scaling and EC2
# --------------------------------------------------------------------------------------------------


def test_scaling_policy(aws) -> None:
    autoscaling = aws("autoscaling")
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg", LaunchConfigurationName="lc", MinSize=0, MaxSize=2, AvailabilityZones=["us-east-2a"]
    )
    policy = {
        "Type": "AWS::AutoScaling::ScalingPolicy",
        "Properties": {
            "AutoScalingGroupName": "asg",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingConfiguration": {
                "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
                "TargetValue": 55,
            },
        },
    }
    out = deploy(
        aws,
        {"Cpu": policy},
        {"Ref": {"Ref": "Cpu"}, "Arn": {"Fn::GetAtt": ["Cpu", "Arn"]}, "Name": {"Fn::GetAtt": ["Cpu", "PolicyName"]}},
    )
    (described,) = autoscaling.describe_policies(AutoScalingGroupName="asg")["ScalingPolicies"]
    assert out["Ref"] == out["Arn"] == described["PolicyARN"]
    assert out["Name"] == described["PolicyName"] and generated("Cpu").match(out["Name"])
    assert described["PolicyType"] == "TargetTrackingScaling"
    configuration = described["TargetTrackingConfiguration"]
    assert configuration["TargetValue"] == 55.0
    assert configuration["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ASGAverageCPUUtilization"
    delete(aws)
    assert autoscaling.describe_policies()["ScalingPolicies"] == []


def test_security_group_egress(aws) -> None:
    ec2 = aws("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    source = ec2.create_security_group(GroupName="lb", Description="lb", VpcId=vpc)["GroupId"]
    target = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    doomed = ec2.create_security_group(GroupName="doomed", Description="doomed", VpcId=vpc)["GroupId"]
    egress = {
        "Type": "AWS::EC2::SecurityGroupEgress",
        "Properties": {
            "GroupId": source,
            "IpProtocol": "tcp",
            "FromPort": 8080,
            "ToPort": 8080,
            "DestinationSecurityGroupId": target,
            "Description": "Load balancer to target",
        },
    }
    to_cidr = {
        "Type": "AWS::EC2::SecurityGroupEgress",
        "Properties": {"GroupId": doomed, "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.0.0.0/8"},
    }
    out = deploy(
        aws,
        {"Egress": egress, "ToCidr": to_cidr},
        {"Ref": {"Ref": "Egress"}, "Id": {"Fn::GetAtt": ["Egress", "Id"]}, "CidrId": {"Ref": "ToCidr"}},
    )

    def egress_rules(group: str) -> list[dict[str, Any]]:
        rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])
        return [r for r in rules["SecurityGroupRules"] if r["IsEgress"] and r["SecurityGroupRuleId"] in out.values()]

    (rule,) = egress_rules(source)
    assert out["Ref"] == out["Id"] == rule["SecurityGroupRuleId"] and out["Id"].startswith("sgr-")
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 8080, 8080)
    assert rule["ReferencedGroupInfo"]["GroupId"] == target
    assert [r["CidrIpv4"] for r in egress_rules(doomed)] == ["10.0.0.0/8"]
    # moto deletes a stack's resources in no particular order: a rule may go with its group first.
    ec2.delete_security_group(GroupId=doomed)
    delete(aws)
    assert egress_rules(source) == []
