"""The App stack: one cell of the app tier (ALB + ASG running the service) in the shared VPC."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from opex_cdk.config import AppTierConfig, EnvironmentConfig
from opex_cdk.constructs import MultiAzAppTier


def app_tier_settings(a: AppTierConfig) -> dict[str, Any]:
    """`MultiAzAppTier` props from ``config.app_tier``: one mapping for the base cell and every scaled cell,
    so a cell the scaler adds runs exactly like the base one."""
    return {
        "instance_type": a.instance_type,
        "min_capacity": a.min_capacity,
        "desired_capacity": a.desired_capacity,
        "max_capacity": a.max_capacity,
        "service_port": a.service_port,
        "health_check": a.health_check,
        "deregistration_delay": Duration.seconds(a.deregistration_delay_seconds),
        "health_check_grace": Duration.seconds(a.health_check_grace_seconds),
        "target_requests_per_instance_per_minute": a.target_requests_per_instance_per_minute,
        "target_cpu_percent": a.target_cpu_percent,
        "certificate_arn": a.certificate_arn,
        "web_acl_arn": a.web_acl_arn,
    }


class AppStack(Stack):
    """Holds one `MultiAzAppTier` built from ``config.app_tier``; the unit the scaler clones as a cell.

    Outputs: ``SiteUrl``, ``TableName``, ``FlagName``, ``FaultRoleName``, ``FaultInstanceProfileName``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        table: dynamodb.ITable,
        flag_parameter: ssm.IStringParameter,
        notification_topic: sns.ITopic | None = None,
        cell_id: str = "base",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault(
            "description", f"opex-cdk {config.name}: app tier cell '{cell_id}' (ALB + Auto Scaling group)"
        )
        super().__init__(scope, id_, **kwargs)
        self.app_tier = MultiAzAppTier(
            self,
            "AppTier",
            vpc=vpc,
            table=table,
            flag_parameter=flag_parameter,
            cell_id=cell_id,
            **app_tier_settings(config.app_tier),
            deletion_protection=config.production,
            removal_policy=RemovalPolicy.RETAIN if config.production else RemovalPolicy.DESTROY,
            notification_topic=notification_topic,
        )
        tier = self.app_tier
        CfnOutput(self, "SiteUrl", value=tier.site_url, description="The page, through the load balancer")
        CfnOutput(self, "TableName", value=table.table_name, description="The dependency's table")
        CfnOutput(self, "FlagName", value=flag_parameter.parameter_name, description="The emergency-lever parameter")
        CfnOutput(
            self, "FaultRoleName", value=tier.fault_role.role_name, description="Instance role without DynamoDB access"
        )
        CfnOutput(
            self,
            "FaultInstanceProfileName",
            value=tier.fault_instance_profile.instance_profile_name,
            description="Instance profile of the fault role (swap it onto one instance to inject the fault)",
        )
