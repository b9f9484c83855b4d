"""AuditTrail: a validated multi-region trail, a locked-down bucket, and Critical alarms on the filters."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match

from opex_cdk.constructs import AuditTrail
from tests.conftest import ENVIRONMENTS

RULES = (
    "UnauthorizedApiCalls", "ConsoleSignInWithoutMfa", "RootUsage", "IamPolicyChanges", "CloudTrailChanges",
    "SecurityGroupChanges", "RunawayScaling",
)  # fmt: skip


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_trail_is_multi_region_validated_encrypted_and_delivered_to_logs(synthesized, env: str) -> None:
    e = synthesized[env]
    e.template(e.stacks.audit).has_resource_properties(
        "AWS::CloudTrail::Trail",
        {
            "TrailName": f"{e.config.prefix}-trail",
            "IsMultiRegionTrail": True,
            "EnableLogFileValidation": True,
            "IncludeGlobalServiceEvents": True,
            "KMSKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^AuditKey"), "Arn"]},
            "CloudWatchLogsLogGroupArn": {"Fn::GetAtt": [Match.string_like_regexp("^AuditLogGroup"), "Arn"]},
            "CloudWatchLogsRoleArn": {"Fn::GetAtt": [Match.string_like_regexp("^AuditLogsRole"), "Arn"]},
        },
    )


def test_bucket_is_ssl_only_logged_and_kms_encrypted(synthesized) -> None:
    e = synthesized["dev"]
    t = e.template(e.stacks.audit)
    t.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LoggingConfiguration": {"DestinationBucketName": {"Ref": Match.string_like_regexp("^AuditAccessLogs")}},
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    Match.object_like({"ServerSideEncryptionByDefault": Match.object_like({"SSEAlgorithm": "aws:kms"})})
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
        },
    )
    policies = t.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    t.resource_count_is("AWS::IAM::Policy", 0)  # CloudTrail's logs role has a managed policy only


def test_stateful_in_production_only(synthesized) -> None:
    prod, dev = synthesized["prod"], synthesized["dev"]
    assert prod.stacks.audit.termination_protection and not dev.stacks.audit.termination_protection
    for e, policy in ((prod, "Retain"), (dev, "Delete")):
        buckets = e.template(e.stacks.audit).find_resources("AWS::S3::Bucket")
        assert {b["DeletionPolicy"] for b in buckets.values()} == {policy}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_metric_filters_feed_critical_alarms(synthesized, env: str) -> None:
    e = synthesized[env]
    template = e.template_json(e.stacks.audit)
    filters = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Logs::MetricFilter"]
    assert sorted(f["MetricTransformations"][0]["MetricName"] for f in filters) == sorted(RULES)
    alarms = {
        r["Properties"]["AlarmName"]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert sorted(alarms) == sorted(f"{e.config.prefix}-audit-{rule}-Critical" for rule in RULES)
    for rule in RULES:
        props = alarms[f"{e.config.prefix}-audit-{rule}-Critical"]
        assert props["MetricName"] == rule and props["Namespace"] == f"OpexCdk/Audit/{e.config.prefix}"
        assert (props["Period"], props["Statistic"], props["EvaluationPeriods"]) == (300, "Sum", 1)
        expected = e.config.observability.runaway_scaling_calls_per_5_minutes if rule == "RunawayScaling" else 0
        assert props["Threshold"] == expected
        assert "TopicsCritical" in json.dumps(props["AlarmActions"]) and props["TreatMissingData"] == "notBreaching"


def test_filter_patterns_catch_what_they_name(synthesized) -> None:
    e = synthesized["dev"]
    patterns = {
        f["MetricTransformations"][0]["MetricName"]: f["FilterPattern"]
        for f in (
            r["Properties"] for r in e.template_json(e.stacks.audit)["Resources"].values()
            if r["Type"] == "AWS::Logs::MetricFilter"
        )
    }  # fmt: skip
    assert 'MFAUsed != "Yes"' in patterns["ConsoleSignInWithoutMfa"]
    assert '$.userIdentity.type = "Root"' in patterns["RootUsage"]
    for call in ("CreateStack", "RunInstances", "SetDesiredCapacity"):
        assert f"$.eventName = {call}" in patterns["RunawayScaling"]
    assert "StopLogging" in patterns["CloudTrailChanges"]
    assert "AuthorizeSecurityGroupIngress" in patterns["SecurityGroupChanges"]


def _stack() -> Stack:
    return Stack(App(), "S", env=Environment(account="111111111111", region="us-east-2"))


def test_bucket_props_and_existing_bucket_are_exclusive() -> None:
    stack = _stack()
    with pytest.raises(ValueError, match="Either provide bucket_props or existing_bucket, but not both."):
        AuditTrail(
            stack, "A", prefix="p", alarm_topic=sns.Topic(stack, "T"), bucket_props=s3.BucketProps(),
            existing_bucket=s3.Bucket(stack, "B"),
        )  # fmt: skip


def test_runaway_bound_must_be_positive() -> None:
    stack = _stack()
    with pytest.raises(ValueError, match="runaway_scaling_calls_per_5_minutes: 0 is not allowed"):
        AuditTrail(stack, "A", prefix="p", alarm_topic=sns.Topic(stack, "T"), runaway_scaling_calls_per_5_minutes=0)
