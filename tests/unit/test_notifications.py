"""NotificationTopics: encrypted, SSL-only, subscribed, failures logged; the topics reach their consumers."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Environment, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match

from opex_cdk.constructs import NotificationTopics
from tests.conftest import ENVIRONMENTS


def test_topics_are_kms_encrypted_with_the_customer_key(synthesized) -> None:
    e = synthesized["prod"]
    t = e.template(e.stacks.notifications)
    t.resource_count_is("AWS::SNS::Topic", 3)
    for name in ("critical", "warning", "scaling"):
        t.has_resource_properties(
            "AWS::SNS::Topic",
            {
                "TopicName": f"opex-prod-{name}",
                "KmsMasterKeyId": {"Fn::GetAtt": [Match.string_like_regexp("^TopicsKey"), "Arn"]},
            },
        )
    key = t.find_resources(
        "AWS::KMS::Key", {"Properties": {"Description": Match.string_like_regexp("notification topics")}}
    )
    (props,) = [r for r in key.values()]
    statements = {s.get("Sid"): s for s in props["Properties"]["KeyPolicy"]["Statement"]}
    assert statements["AllowCloudWatchAlarms"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert "AWSServiceRoleForAutoScaling" in json.dumps(statements["AllowAutoScalingNotifications"]["Condition"])
    assert props["DeletionPolicy"] == "Retain"  # production keeps the key


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_topic_policies_deny_plain_http_and_admit_cloudwatch(synthesized, env: str) -> None:
    e = synthesized[env]
    policies = e.template(e.stacks.notifications).find_resources("AWS::SNS::TopicPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        deny = [s for s in statements if s["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert any(s.get("Sid") == "AllowCloudWatchAlarmsOfThisAccount" for s in statements)


def test_emails_from_config_subscribe_to_people_topics_only(synthesized) -> None:
    e = synthesized["prod"]
    subs = e.template(e.stacks.notifications).find_resources("AWS::SNS::Subscription")
    pairs = sorted((json.dumps(s["Properties"]["TopicArn"]), s["Properties"]["Endpoint"]) for s in subs.values())
    assert len(pairs) == 2 * len(e.config.alarm_emails) == 4
    assert all("Scaling" not in topic for topic, _ in pairs)
    assert {endpoint for _, endpoint in pairs} == set(e.config.alarm_emails)


def test_delivery_failures_are_logged_to_encrypted_groups(synthesized) -> None:
    e = synthesized["dev"]
    t = e.template(e.stacks.notifications)
    t.has_resource_properties(
        "AWS::SNS::Topic",
        {
            "TopicName": "opex-dev-scaling",
            "DeliveryStatusLogging": Match.array_with(
                [{"Protocol": "lambda", "FailureFeedbackRoleArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}]
            ),
        },
    )
    t.has_resource_properties(
        "AWS::Logs::LogGroup",
        {"LogGroupName": "sns/us-east-2/111111111111/opex-dev-scaling/Failure", "KmsKeyId": Match.any_value()},
    )
    # The feedback role carries a managed policy, not an inline one (NIST 800-53 AC-6).
    t.resource_count_is("AWS::IAM::Policy", 0)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_topic_has_a_subscription_or_a_subscriber(synthesized, env: str) -> None:
    """People topics: email subscriptions. Scaling: the scaler's subscription (scaling stack), when it exists."""
    e = synthesized[env]
    topics = e.stacks.notifications.topics
    # Same token string wherever the subscription lives: cross-stack references resolve only at synth.
    subscribed = {node.topic_arn for node in e.app.node.find_all() if isinstance(node, sns.CfnSubscription)}
    assert topics.critical.topic_arn in subscribed and topics.warning.topic_arn in subscribed
    if getattr(e.stacks, "scaling", None) is None:
        pytest.skip("the scaling stack (the Scaling topic's subscriber) is not wired into this environment yet")
    assert topics.scaling.topic_arn in subscribed


def test_asg_notifications_go_to_warning(synthesized) -> None:
    e = synthesized["dev"]
    asg = e.template(e.stacks.app).find_resources("AWS::AutoScaling::AutoScalingGroup")
    (config,) = next(iter(asg.values()))["Properties"]["NotificationConfigurations"]
    assert "TopicsWarning" in json.dumps(config["TopicARN"])
    assert set(config["NotificationTypes"]) == {
        f"autoscaling:EC2_INSTANCE_{kind}" for kind in ("LAUNCH", "LAUNCH_ERROR", "TERMINATE", "TERMINATE_ERROR")
    }


def _stack() -> Stack:
    return Stack(App(), "S", env=Environment(account="111111111111", region="us-east-2"))


def test_invalid_email_is_a_synth_error() -> None:
    with pytest.raises(ValueError, match=r"emails\[1\]: 'not-an-email' is not a valid email address"):
        NotificationTopics(_stack(), "T", prefix="p", emails=["ok@example.com", "not-an-email"])


def test_key_props_and_existing_key_are_exclusive() -> None:
    stack = _stack()
    key = kms.Key(stack, "K")
    with pytest.raises(ValueError, match="Either provide key_props or existing_key, but not both."):
        NotificationTopics(stack, "T", prefix="p", key_props=kms.KeyProps(), existing_key=key)


def test_existing_key_is_used_as_is() -> None:
    stack = _stack()
    key = kms.Key(stack, "K")
    topics = NotificationTopics(stack, "T", prefix="p", existing_key=key)
    assert topics.key is key
    assert isinstance(topics.scaling, sns.Topic) and set(topics.topics) == {"critical", "warning", "scaling"}
