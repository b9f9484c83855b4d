"""The Scaling stack: the cell scaler, the weighted record set over cells, the cell template it deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, Stage
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs.scaler import CellScaler
from opex_cdk.project_context import load_project_context
from opex_cdk.stacks.cell import CellSharedParameters, cell_parameter_prefix, synthesize_cell_template


class ScalingStack(Stack):
    """Holds a `CellScaler` fed by the scale-out / scale-in alarms, and the cell template as an S3 asset.

    The template is synthesized from :class:`opex_cdk.stacks.cell.CellStack` while this stack is built
    (see :mod:`opex_cdk.stacks.cell`), with the shared network ids published here as SSM parameters.
    Outputs: ``RecordName``, ``HostedZoneId``, ``ScalerFunctionName``, ``DeadLetterQueueUrl``, ``CellTemplateUrl``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        scaling_topic: sns.ITopic,
        notification_topic: sns.ITopic,
        scale_out_alarm_name: str,
        scale_in_alarm_name: str,
        base_load_balancer: elbv2.ILoadBalancerV2 | None = None,
        cell_nag: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("description", f"opex-cdk {config.name}: cell scaler, weighted records over cells")
        # The scaler's state table (cooldown, draining cells, idempotency keys) is stateful: protect it in prod.
        kwargs.setdefault("termination_protection", config.production)
        super().__init__(scope, id_, **kwargs)
        s = config.scaling
        prefix = cell_parameter_prefix(config)
        self.shared_parameters = CellSharedParameters(self, "CellShared", vpc=vpc, parameter_prefix=prefix)
        template_file = synthesize_cell_template(
            config,
            availability_zones=list(vpc.availability_zones[: config.network.az_count]),
            parameter_prefix=prefix,
            outdir=Path(Stage.of(self).outdir) / f"{self.stack_name}.cell-template",
            context=load_project_context(),
            with_nag=cell_nag,
        )
        self.cell_template = s3_assets.Asset(self, "CellTemplate", path=str(template_file))
        hosted_zone = None
        if s.hosted_zone_id:
            hosted_zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "HostedZone", hosted_zone_id=s.hosted_zone_id, zone_name=s.record_name.split(".", 1)[1]
            )
        self.scaler = CellScaler(
            self,
            "Scaler",
            scaling_topic=scaling_topic,
            notification_topic=notification_topic,
            scale_out_alarm_name=scale_out_alarm_name,
            scale_in_alarm_name=scale_in_alarm_name,
            cell_template=self.cell_template,
            cell_stack_prefix=f"{config.prefix}-cell",
            record_name=s.record_name,
            hosted_zone=hosted_zone,
            vpc=vpc,
            base_load_balancer=base_load_balancer,
            min_cells=s.min_cells,
            max_cells=s.max_cells,
            cooldown=Duration.seconds(s.cooldown_seconds),
            cell_weight=s.cell_weight,
            record_ttl=Duration.seconds(s.record_ttl_seconds),
            deregistration_delay=Duration.seconds(config.app_tier.deregistration_delay_seconds),
            alarm_name_prefix=config.prefix,
            removal_policy=RemovalPolicy.RETAIN if config.production else RemovalPolicy.DESTROY,
        )
        sc = self.scaler
        CfnOutput(self, "RecordName", value=s.record_name, description="Weighted record set over the cells")
        CfnOutput(self, "HostedZoneId", value=sc.hosted_zone.hosted_zone_id, description="Zone of the record set")
        CfnOutput(self, "ScalerFunctionName", value=sc.function.function_name, description="The cell scaler")
        CfnOutput(self, "DeadLetterQueueUrl", value=sc.dead_letter_queue.queue_url, description="Scaler DLQ")
        CfnOutput(self, "CellTemplateUrl", value=self.cell_template.http_url, description="The cell template")
