"""Build every stack of one environment into an App (or a Stage): the app's composition root.

`app.py` and the tests call :func:`build_environment`; stacks get their dependencies here (the VPC
object, the table, the topics), never by looking each other up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Environment, Stage, Tags

from opex_cdk.config import ConfigError, EnvironmentConfig, load_environment
from opex_cdk.nag import apply_nag_packs
from opex_cdk.stacks import AppStack, AuditStack, DataStack, NetworkStack, NotificationsStack, ObservabilityStack
from opex_cdk.stacks.resilience import ResilienceStack
from opex_cdk.stacks.scaling import ScalingStack


@dataclass
class EnvironmentStacks:
    """The stacks of one environment, by role."""

    network: NetworkStack
    data: DataStack
    notifications: NotificationsStack
    app: AppStack
    observability: ObservabilityStack
    audit: AuditStack
    scaling: ScalingStack
    resilience: ResilienceStack

    def all(self) -> list:
        """Every stack, in deployment order."""
        return [
            self.network,
            self.data,
            self.notifications,
            self.app,
            self.observability,
            self.audit,
            self.scaling,
            self.resilience,
        ]


def build_environment(stage: Stage, config: EnvironmentConfig, *, with_nag: bool = True) -> EnvironmentStacks:
    """Create the environment's stacks in ``stage``, tag them, and register its nag packs on ``stage``.

    Stack names are set explicitly so a pipeline Stage deploys the same stacks as ``cdk deploy`` does
    (inside a Stage CDK would otherwise prefix them with the Stage's name).
    """
    env = Environment(account=config.account, region=config.region)

    def unit(stack_class: type, role: str, **props: Any) -> Any:
        name = f"{config.prefix}-{role}"
        return stack_class(stage, name, config=config, env=env, stack_name=name, **props)

    network = unit(NetworkStack, "network")
    data = unit(DataStack, "data")
    notifications = unit(NotificationsStack, "notifications")
    app = unit(
        AppStack,
        "app",
        vpc=network.vpc,
        table=data.table,
        flag_parameter=data.flag_parameter,
        notification_topic=notifications.topics.warning,
    )
    tier = app.app_tier
    observability = unit(
        ObservabilityStack,
        "observability",
        topics=notifications.topics,
        load_balancer=tier.load_balancer,
        target_group=tier.target_group,
        auto_scaling_group=tier.auto_scaling_group,
        table=data.table,
        availability_zones=network.vpc.availability_zones[: config.network.az_count],
    )
    audit = unit(AuditStack, "audit", alarm_topic=notifications.topics.critical)
    scaling = unit(
        ScalingStack,
        "scaling",
        vpc=network.vpc,
        scaling_topic=notifications.topics.scaling,
        notification_topic=notifications.topics.warning,
        scale_out_alarm_name=observability.scale_out_alarm_name,
        scale_in_alarm_name=observability.scale_in_alarm_name,
        base_load_balancer=tier.load_balancer,
        cell_nag=with_nag,
    )
    resilience = unit(
        ResilienceStack,
        "resilience",
        vpc=network.vpc,
        app_tier=tier,
        flag_parameter=data.flag_parameter,
        topics=notifications.topics,
        stop_condition_alarm=observability.service_impaired,
        unhealthy_hosts_alarm=observability.unhealthy_hosts,
    )
    stacks = EnvironmentStacks(
        network=network,
        data=data,
        notifications=notifications,
        app=app,
        observability=observability,
        audit=audit,
        scaling=scaling,
        resilience=resilience,
    )
    for key, value in config.tags.items():
        Tags.of(stage).add(key, value)
    if with_nag:
        apply_nag_packs(stage, config.nag_packs)
    return stacks


def build_pipeline(app: Stage, config: EnvironmentConfig, context: Mapping[str, Any], *, with_nag: bool = True) -> Any:
    """Build the delivery pipeline (``config.pipeline.enabled``) instead of the plain stacks.

    Each ``pipeline.stages`` entry is loaded from ``context`` and becomes a Stage holding the stacks of
    :func:`build_environment` (which registers that environment's nag packs on the Stage). The pipeline stack
    itself is checked by ``config``'s packs, registered on ``app``.
    """
    from opex_cdk.stacks.pipeline import PipelineStack

    stage_configs = []
    for i, name in enumerate(config.pipeline.stages):
        try:
            stage_configs.append(load_environment(context, name))
        except ConfigError as error:
            raise ConfigError(f"environments.{config.name}.pipeline.stages[{i}]: {error}") from None
    stack = PipelineStack(
        app,
        f"{config.prefix}-pipeline",
        config=config,
        stage_configs=stage_configs,
        env=Environment(account=config.account, region=config.region),
    )
    for key, value in config.tags.items():
        Tags.of(stack).add(key, value)
    if with_nag:
        apply_nag_packs(app, config.nag_packs)
    return stack
