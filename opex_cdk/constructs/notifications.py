"""`NotificationTopics`: where alarms go — two topics for people, one for automation."""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from opex_cdk.constructs.keys import log_group_key

#: Same rule as the config's `alarm_emails` check: the construct is imported by other projects too.
EMAIL_PATTERN = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")

#: Protocols whose delivery failures SNS can log (email cannot be logged: its failures show up in the
#: topic's NumberOfNotificationsFailed metric, which the ServiceAlarms construct alarms on).
LOGGED_PROTOCOLS = (sns.LoggingProtocol.LAMBDA, sns.LoggingProtocol.SQS, sns.LoggingProtocol.HTTP)


class NotificationTopics(Construct):
    """Three KMS-encrypted SNS topics: ``critical`` and ``warning`` for people, ``scaling`` for automation.

    * Encryption: one rotating customer key (``key``) whose policy lets CloudWatch alarms and the Auto
      Scaling service-linked role (ASG launch/terminate notifications) publish to the encrypted topics.
      Other publishers (Lambda roles) get access through ``topic.grant_publish``, which grants the key too.
    * Topic policies deny any publish or subscribe that is not over TLS, and allow CloudWatch alarms of
      this account to publish (a topic policy replaces SNS's default one, so this must be explicit).
    * Delivery failures to Lambda, SQS and HTTP(S) subscribers are logged to a KMS-encrypted log group
      per topic (``sns/<region>/<account>/<topic>/Failure``, the name SNS writes to), created here so it
      has retention and encryption.
    * Every address in ``emails`` is subscribed to ``critical`` and ``warning``; an invalid address
      raises ``ValueError`` (a synth error, never a subscription that silently never confirms).

    Attributes: ``critical``, ``warning``, ``scaling`` (sns.Topic), ``topics`` (name -> topic),
    ``key`` (kms.IKey), ``failure_log_groups`` (topic name -> logs.LogGroup), ``feedback_role``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        prefix: str,
        emails: Sequence[str] = (),
        failure_log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        key_props: kms.KeyProps | None = None,
        existing_key: kms.IKey | None = None,
    ) -> None:
        """Create the topics.

        :param prefix: environment prefix; topics are named ``{prefix}-critical|warning|scaling``.
        :param emails: addresses subscribed to ``critical`` and ``warning``. Default: none (then give the
            people topics another subscriber, e.g. a chat or paging integration).
        :param failure_log_retention: retention of the delivery-failure log groups. Default: 90 days.
        :param removal_policy: of the key and the log groups. Default: RETAIN.
        :param key_props: overrides of the ``kms.Key`` defaults (rotation on).
        :param existing_key: encrypt with this key instead (not with ``key_props``); its policy must
            already let ``cloudwatch.amazonaws.com`` use it.
        """
        super().__init__(scope, id_)
        if key_props is not None and existing_key is not None:
            raise ValueError("Either provide key_props or existing_key, but not both.")
        for i, email in enumerate(emails):
            if not EMAIL_PATTERN.match(email):
                raise ValueError(f"emails[{i}]: '{email}' is not a valid email address")
        stack = Stack.of(self)

        if existing_key is not None:
            self.key: kms.IKey = existing_key
        else:
            overrides = dict(key_props._values) if key_props is not None else {}
            key = kms.Key(
                self,
                "Key",
                **{
                    "description": f"Encrypts the {prefix} notification topics",
                    "enable_key_rotation": True,
                    "removal_policy": removal_policy,
                    **overrides,
                },
            )
            _allow_publishers(key, stack)
            self.key = key

        self.failure_log_groups: dict[str, logs.LogGroup] = {}
        log_key = log_group_key(self, "FailureLogKey", removal_policy=removal_policy)
        names = {"critical": f"{prefix}-critical", "warning": f"{prefix}-warning", "scaling": f"{prefix}-scaling"}
        for role_name, topic_name in names.items():
            self.failure_log_groups[role_name] = logs.LogGroup(
                self,
                f"{role_name.title()}FailureLogs",
                log_group_name=f"sns/{stack.region}/{stack.account}/{topic_name}/Failure",
                retention=failure_log_retention,
                encryption_key=log_key,
                removal_policy=removal_policy,
            )
        self.feedback_role = _feedback_role(self, list(self.failure_log_groups.values()))
        immutable_role = self.feedback_role.without_policy_updates()

        self.topics: dict[str, sns.Topic] = {}
        displays = {
            "critical": "Critical: page the on-call engineer",
            "warning": "Warning: look during working hours",
            "scaling": "Scaling signals for the cell scaler",
        }
        for role_name, topic_name in names.items():
            topic = sns.Topic(
                self,
                role_name.title(),
                topic_name=topic_name,
                display_name=displays[role_name],
                master_key=self.key,
                enforce_ssl=True,
                logging_configs=[
                    sns.LoggingConfig(protocol=protocol, failure_feedback_role=immutable_role)
                    for protocol in LOGGED_PROTOCOLS
                ],
            )
            topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="AllowCloudWatchAlarmsOfThisAccount",
                    principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                    actions=["sns:Publish"],
                    resources=[topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": stack.account},
                        "ArnLike": {
                            "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
                        },
                    },
                )
            )
            self.topics[role_name] = topic
        self.critical = self.topics["critical"]
        self.warning = self.topics["warning"]
        self.scaling = self.topics["scaling"]
        for email in emails:
            for topic in (self.critical, self.warning):
                topic.add_subscription(subscriptions.EmailSubscription(email))


def _allow_publishers(key: kms.Key, stack: Stack) -> None:
    """Let the AWS services that publish to the topics use the key (SNS encrypts on their behalf)."""
    use = ["kms:Decrypt", "kms:GenerateDataKey*"]
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowCloudWatchAlarms",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=use,
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
        )
    )
    # The ASG's notifications are published by the Auto Scaling service-linked role. Named through a
    # condition rather than as the principal: KMS rejects a policy naming a role that does not exist
    # yet, and the role appears only when the account's first Auto Scaling group is created.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AllowAutoScalingNotifications",
            principals=[iam.AnyPrincipal()],
            actions=use,
            resources=["*"],
            conditions={
                "StringEquals": {"kms:CallerAccount": stack.account},
                "StringLike": {"kms:ViaService": f"sns.{stack.region}.amazonaws.com"},
                "ArnEquals": {
                    "aws:PrincipalArn": f"arn:{stack.partition}:iam::{stack.account}:role/aws-service-role/"
                    "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
                },
            },
        )
    )


def _feedback_role(scope: Construct, log_groups: list[logs.LogGroup]) -> iam.Role:
    """The role SNS assumes to log delivery failures, limited to the topics' failure log groups.

    A customer-managed policy (no inline policy, NIST 800-53 AC-6); topics get the role immutable.
    """
    role = iam.Role(
        scope,
        "DeliveryFeedbackRole",
        assumed_by=iam.ServicePrincipal("sns.amazonaws.com"),
        description="Lets SNS log failed deliveries of the notification topics",
    )
    iam.ManagedPolicy(
        scope,
        "DeliveryFeedbackPolicy",
        roles=[role],
        statements=[
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:PutMetricFilter",
                    "logs:PutRetentionPolicy",
                ],
                resources=[group.log_group_arn for group in log_groups],
            )
        ],
    )
    return role
