"""The Notifications stack: the SNS topics alarms and automation publish to.

It deploys before the app stack, because the app tier sends its ASG notifications to ``warning``.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs.notifications import NotificationTopics


class NotificationsStack(Stack):
    """Holds one `NotificationTopics` (critical, warning, scaling). RETAIN of key and logs in production."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            id_,
            description=f"opex-cdk {config.name}: SNS topics for people (critical, warning) and automation (scaling)",
            termination_protection=config.production,
            **kwargs,
        )
        self.topics = NotificationTopics(
            self,
            "Topics",
            prefix=config.prefix,
            emails=config.alarm_emails,
            removal_policy=RemovalPolicy.RETAIN if config.production else RemovalPolicy.DESTROY,
        )
        for name, topic in self.topics.topics.items():
            CfnOutput(self, f"{name.title()}TopicArn", value=topic.topic_arn, description=f"The {name} topic")
