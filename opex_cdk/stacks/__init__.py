"""Deployable units: each stack composes constructs, wires grants and outputs, nothing else."""

from opex_cdk.stacks.app import AppStack
from opex_cdk.stacks.audit import AuditStack
from opex_cdk.stacks.data import DataStack
from opex_cdk.stacks.network import NetworkStack
from opex_cdk.stacks.notifications import NotificationsStack
from opex_cdk.stacks.observability import ObservabilityStack
from opex_cdk.stacks.pipeline import DeliveryStage, PipelineStack
from opex_cdk.stacks.resilience import ResilienceStack
from opex_cdk.stacks.scaling import ScalingStack

__all__ = [
    "AppStack",
    "AuditStack",
    "DataStack",
    "DeliveryStage",
    "NetworkStack",
    "NotificationsStack",
    "ObservabilityStack",
    "PipelineStack",
    "ResilienceStack",
    "ScalingStack",
]
