"""The Observability stack: the service's alarms and its dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs.alarms import AlarmThresholds, ServiceAlarms
from opex_cdk.constructs.dashboard import ServiceDashboard
from opex_cdk.constructs.notifications import NotificationTopics


def thresholds_from(config: EnvironmentConfig) -> AlarmThresholds:
    """The environment's alarm thresholds (config `observability`; the rest keep their defaults)."""
    # Every threshold the config names flows through by name, so a field added to both cannot be forgotten here.
    o = config.observability
    return AlarmThresholds(**{f.name: getattr(o, f.name) for f in fields(AlarmThresholds) if hasattr(o, f.name)})


class ObservabilityStack(Stack):
    """Holds `ServiceAlarms` and the `ServiceDashboard` drawn from them.

    Attributes for other stacks: ``alarms`` (the ServiceAlarms), ``service_impaired`` (FIS stop
    condition), ``unhealthy_hosts`` (the healer's trigger), ``scale_out`` / ``scale_in`` and
    ``scale_out_alarm_name`` / ``scale_in_alarm_name`` (the scaler's signals), ``dashboard``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        topics: NotificationTopics,
        load_balancer: elbv2.IApplicationLoadBalancer,
        target_group: elbv2.IApplicationTargetGroup,
        auto_scaling_group: autoscaling.IAutoScalingGroup,
        table: dynamodb.ITable,
        availability_zones: Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, id_, description=f"opex-cdk {config.name}: alarms (named, routed, with runbooks) and dashboard",
            **kwargs,
        )  # fmt: skip
        a = config.app_tier
        self.alarms = ServiceAlarms(
            self,
            "Alarms",
            prefix=config.prefix,
            topics=topics,
            load_balancer=load_balancer,
            target_group=target_group,
            auto_scaling_group=auto_scaling_group,
            table=table,
            availability_zones=availability_zones,
            max_instances=a.max_capacity,
            # min_capacity is validated >= az_count: spread evenly, each AZ holds at least this many.
            min_healthy_per_az=a.min_capacity // len(availability_zones),
            thresholds=thresholds_from(config),
        )
        self.service_impaired = self.alarms.service_impaired
        self.unhealthy_hosts = self.alarms.unhealthy_hosts
        self.scale_out = self.alarms.scale_out
        self.scale_in = self.alarms.scale_in
        self.scale_out_alarm_name = self.alarms.scale_out_alarm_name
        self.scale_in_alarm_name = self.alarms.scale_in_alarm_name
        self.dashboard = ServiceDashboard(self, "Dashboard", alarms=self.alarms).dashboard
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name, description="The service dashboard")
        CfnOutput(self, "ServiceImpairedAlarm", value=self.service_impaired.alarm_name, description="The on-call page")
