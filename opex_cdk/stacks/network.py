"""The Network stack: the VPC every environment's other stacks sit in."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs import WellArchitectedVpc
from opex_cdk.constructs.log_retention import log_retention


class NetworkStack(Stack):
    """Holds one `WellArchitectedVpc`. Termination protection and RETAIN in production."""

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(
            scope,
            id_,
            description=f"opex-cdk {config.name}: multi-AZ VPC, flow logs, endpoints",
            termination_protection=config.production,
            **kwargs,
        )
        n = config.network
        self.network = WellArchitectedVpc(
            self,
            "Network",
            cidr=n.cidr,
            az_count=n.az_count,
            subnet_prefix=n.subnet_prefix,
            nat_gateways=n.nat_gateways,
            flow_log_retention=log_retention(n.flow_log_retention_days),
            interface_endpoints=n.interface_endpoints,
            removal_policy=RemovalPolicy.RETAIN if config.production else RemovalPolicy.DESTROY,
        )
        self.vpc = self.network.vpc
        CfnOutput(self, "VpcId", value=self.vpc.vpc_id, description="The workload VPC")
