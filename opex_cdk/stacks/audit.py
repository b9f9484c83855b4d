"""The Audit stack: the CloudTrail trail, its bucket, and the security alarms on it (stateful)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_sns as sns
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs.audit import AuditTrail
from opex_cdk.constructs.log_retention import log_retention


class AuditStack(Stack):
    """Holds one `AuditTrail`. Stateful: termination protection and RETAIN of bucket, key and logs in production."""

    def __init__(
        self, scope: Construct, id_: str, *, config: EnvironmentConfig, alarm_topic: sns.ITopic, **kwargs: Any
    ) -> None:
        super().__init__(
            scope,
            id_,
            description=f"opex-cdk {config.name}: CloudTrail (multi-region, validated, KMS) and security alarms",
            termination_protection=config.production,
            **kwargs,
        )
        o = config.observability
        self.audit = AuditTrail(
            self,
            "Audit",
            prefix=config.prefix,
            alarm_topic=alarm_topic,
            runaway_scaling_calls_per_5_minutes=o.runaway_scaling_calls_per_5_minutes,
            log_retention=log_retention(o.audit_log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if config.production else RemovalPolicy.DESTROY,
        )
        self.trail = self.audit.trail
        CfnOutput(self, "TrailArn", value=self.trail.trail_arn, description="The audit trail")
        CfnOutput(self, "TrailBucket", value=self.audit.bucket.bucket_name, description="Where log files land")
