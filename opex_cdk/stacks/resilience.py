"""The Resilience stack: FIS experiments that prove the design, and the healer that keeps it honest."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs.app_tier import MultiAzAppTier
from opex_cdk.constructs.fault_injection import FaultInjection
from opex_cdk.constructs.healer import FleetSafeHealer
from opex_cdk.constructs.log_retention import log_retention
from opex_cdk.constructs.network import APP_TIER
from opex_cdk.constructs.notifications import NotificationTopics
from opex_cdk.levers.outputs import (
    OUTPUT_ASG,
    OUTPUT_FAULT_PROFILE,
    OUTPUT_FLAG,
    OUTPUT_HEALER,
    OUTPUT_PROFILE,
    OUTPUT_TARGET_GROUP,
    experiment_output_key,
)


class ResilienceStack(Stack):
    """Holds `FaultInjection` (six FIS templates stopped by the on-call composite alarm) and
    `FleetSafeHealer` (triggered by the unhealthy-hosts alarm). Outputs name everything the operator
    levers need, so they never guess resource names."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        app_tier: MultiAzAppTier,
        flag_parameter: ssm.IStringParameter,
        topics: NotificationTopics,
        stop_condition_alarm: cloudwatch.IAlarm,
        unhealthy_hosts_alarm: cloudwatch.IAlarm,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("description", f"opex-cdk {config.name}: FIS experiments and the fleet-safe healer")
        super().__init__(scope, id_, **kwargs)
        r = config.resilience
        app_subnets = vpc.select_subnets(subnet_group_name=APP_TIER).subnets
        zone_subnets = [s for group in (vpc.public_subnets, vpc.private_subnets, vpc.isolated_subnets) for s in group]
        self.fault_injection = FaultInjection(
            self,
            "FaultInjection",
            name_prefix=config.prefix,
            stop_condition_alarms=[stop_condition_alarm],
            flag_parameter=flag_parameter,
            auto_scaling_group=app_tier.auto_scaling_group,
            instance_role=app_tier.instance_role,
            instance_profile=app_tier.instance_profile,
            fault_role=app_tier.fault_role,
            fault_instance_profile=app_tier.fault_instance_profile,
            app_subnets=app_subnets,
            zone_subnets=zone_subnets,
            duration=Duration.minutes(r.experiment_duration_minutes),
        )
        self.healer = FleetSafeHealer(
            self,
            "Healer",
            name_prefix=config.prefix,
            vpc=vpc,
            target_group=app_tier.target_group,
            auto_scaling_group=app_tier.auto_scaling_group,
            trigger_alarm=unhealthy_hosts_alarm,
            critical_topic=topics.critical,
            warning_topic=topics.warning,
            topic_key=topics.key,
            max_unhealthy_share=r.max_unhealthy_share,
            max_replacements_per_window=r.max_replacements_per_window,
            replacement_window=Duration.minutes(r.replacement_window_minutes),
            log_retention=log_retention(config.network.flow_log_retention_days),
            removal_policy=RemovalPolicy.RETAIN if config.production else RemovalPolicy.DESTROY,
        )
        outputs = {
            OUTPUT_FLAG: (flag_parameter.parameter_name, "The dependency flag (emergency lever)"),
            OUTPUT_ASG: (app_tier.auto_scaling_group.auto_scaling_group_name, "The app tier's Auto Scaling group"),
            OUTPUT_PROFILE: (app_tier.instance_profile.instance_profile_name, "The instances' normal profile"),
            OUTPUT_FAULT_PROFILE: (
                app_tier.fault_instance_profile.instance_profile_name,
                "The profile without DynamoDB access (single-server fault)",
            ),
            OUTPUT_TARGET_GROUP: (app_tier.target_group.target_group_arn, "The app tier's target group"),
            OUTPUT_HEALER: (self.healer.function.function_name, "The fleet-safe healer function"),
        }
        for name, template in self.fault_injection.experiments.items():
            outputs[experiment_output_key(name)] = (template.attr_id, f"FIS experiment template: {name}")
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)
