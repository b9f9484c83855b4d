"""`WellArchitectedVpc`: the multi-AZ network every other layer sits in."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from opex_cdk.constructs.keys import log_group_key
from opex_cdk.nag import acknowledge

#: Subnet group names, one per tier. Other constructs select subnets by these names.
PUBLIC_TIER = "Public"
APP_TIER = "App"
DATA_TIER = "Data"

#: Interface endpoints the app tier needs to be managed and observed without the internet.
DEFAULT_INTERFACE_ENDPOINTS = {
    "Ssm": ec2.InterfaceVpcEndpointAwsService.SSM,
    "SsmMessages": ec2.InterfaceVpcEndpointAwsService.SSM_MESSAGES,
    "Ec2Messages": ec2.InterfaceVpcEndpointAwsService.EC2_MESSAGES,
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
}


class WellArchitectedVpc(Construct):
    """A VPC over several AZs with three subnet tiers, flow logs and private paths to AWS services.

    Tiers (one subnet per AZ each): ``Public`` for the load balancer and NAT gateways (no public IPs
    assigned on launch), ``App`` private with egress for the instances, ``Data`` isolated. Every
    subnet gets the same size, derived from the CIDR (see ``subnet_prefix``). S3 and DynamoDB are
    reached through gateway endpoints, so the dependency's traffic never crosses a NAT gateway (the
    workshop sent it through NAT); SSM, Logs and Monitoring through interface endpoints. Flow logs
    (ALL traffic) go to a KMS-encrypted log group. The default security group is stripped of rules.

    Pass ``existing_vpc`` to adopt a VPC you already run: the construct then creates nothing and only
    exposes it as ``vpc`` (its flow logs and endpoints stay yours to manage).

    Attributes: ``vpc``, ``flow_log`` / ``flow_log_group`` / ``flow_log_key`` (None with an existing
    VPC), ``gateway_endpoints`` and ``interface_endpoints`` (name -> endpoint).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        cidr: str = "10.0.0.0/16",
        az_count: int = 3,
        subnet_prefix: int = 20,
        nat_gateways: int | None = None,
        flow_log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS,
        interface_endpoints: bool = True,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        vpc_props: ec2.VpcProps | None = None,
        existing_vpc: ec2.IVpc | None = None,
    ) -> None:
        """Create the network.

        :param cidr: IPv4 CIDR of the VPC. Default: ``10.0.0.0/16``.
        :param az_count: number of AZs (at least 2). Default: 3.
        :param subnet_prefix: prefix length of every subnet. Default: 20 (``/16`` split in 16).
        :param nat_gateways: NAT gateways; one per AZ keeps egress zonal. Default: one per AZ.
        :param flow_log_retention: retention of the flow-log group. Default: 90 days.
        :param interface_endpoints: create the SSM/Logs/Monitoring interface endpoints. Default: True.
        :param removal_policy: of the flow-log group and its key. Default: RETAIN.
        :param vpc_props: overrides of the ``ec2.Vpc`` defaults (applied over ours).
        :param existing_vpc: adopt this VPC instead of creating one (not with ``vpc_props``).
        """
        super().__init__(scope, id_)
        if vpc_props is not None and existing_vpc is not None:
            raise ValueError("Either provide vpc_props or existing_vpc, but not both.")
        self.flow_log: ec2.FlowLog | None = None
        self.flow_log_role: iam.Role | None = None
        self.flow_log_group: logs.LogGroup | None = None
        self.flow_log_key: kms.Key | None = None
        self.gateway_endpoints: dict[str, ec2.GatewayVpcEndpoint] = {}
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        if existing_vpc is not None:
            self.vpc: ec2.IVpc = existing_vpc
            return

        defaults: dict[str, Any] = {
            "ip_addresses": ec2.IpAddresses.cidr(cidr),
            "max_azs": az_count,
            "nat_gateways": az_count if nat_gateways is None else nat_gateways,
            "restrict_default_security_group": True,
            "subnet_configuration": [
                ec2.SubnetConfiguration(
                    name=PUBLIC_TIER,
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=subnet_prefix,
                    # Only the ALB and NAT gateways live here; nothing should get a public IP by accident.
                    map_public_ip_on_launch=False,
                ),
                ec2.SubnetConfiguration(
                    name=APP_TIER, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=subnet_prefix
                ),
                ec2.SubnetConfiguration(
                    name=DATA_TIER, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=subnet_prefix
                ),
            ],
        }
        overrides = dict(vpc_props._values) if vpc_props is not None else {}
        vpc = ec2.Vpc(self, "Vpc", **{**defaults, **overrides})
        self.vpc = vpc

        self.flow_log_key = log_group_key(self, "FlowLogKey", removal_policy=removal_policy)
        self.flow_log_group = logs.LogGroup(
            self,
            "FlowLogGroup",
            retention=flow_log_retention,
            encryption_key=self.flow_log_key,
            removal_policy=removal_policy,
        )
        self.flow_log_role = _flow_log_role(self, self.flow_log_group)
        self.flow_log = ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(vpc),
            traffic_type=ec2.FlowLogTrafficType.ALL,
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                self.flow_log_group, self.flow_log_role.without_policy_updates()
            ),
        )

        private = [ec2.SubnetSelection(subnet_group_name=APP_TIER), ec2.SubnetSelection(subnet_group_name=DATA_TIER)]
        self.gateway_endpoints = {
            "S3": vpc.add_gateway_endpoint("S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=private),
            "DynamoDb": vpc.add_gateway_endpoint(
                "DynamoDbEndpoint", service=ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets=private
            ),
        }
        self.endpoint_security_group: ec2.SecurityGroup | None = None
        if interface_endpoints:
            # One group for all endpoints, HTTPS from the VPC's own (literal) CIDR only.
            self.endpoint_security_group = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=vpc,
                description="HTTPS from inside the VPC to the interface endpoints",
                allow_all_outbound=False,
            )
            self.endpoint_security_group.add_ingress_rule(
                ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC to AWS service endpoints"
            )
            for name, service in DEFAULT_INTERFACE_ENDPOINTS.items():
                self.interface_endpoints[name] = vpc.add_interface_endpoint(
                    f"{name}Endpoint",
                    service=service,
                    subnets=ec2.SubnetSelection(subnet_group_name=APP_TIER),
                    private_dns_enabled=True,
                    security_groups=[self.endpoint_security_group],
                    open=False,
                )

        for subnet in vpc.public_subnets:
            for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
                acknowledge(
                    subnet,
                    f"{pack}-VPCNoUnrestrictedRouteToIGW",
                    "Public tier by design: it holds only the internet-facing load balancer and the NAT "
                    "gateways, which need the default route to the internet gateway. Instances and data "
                    "live in the App and Data tiers, which have no route to the internet gateway.",
                )


def _flow_log_role(scope: Construct, log_group: logs.LogGroup) -> iam.Role:
    """The role VPC Flow Logs assumes, with a customer-managed policy scoped to the one log group.

    A managed policy rather than the role's inline default policy (NIST 800-53 AC-6: no inline
    policies); the FlowLog gets the role immutable so it cannot add an inline policy of its own.
    """
    role = iam.Role(
        scope,
        "FlowLogRole",
        assumed_by=iam.ServicePrincipal("vpc-flow-logs.amazonaws.com"),
        description="Lets VPC Flow Logs write to the flow-log group",
    )
    iam.ManagedPolicy(
        scope,
        "FlowLogWritePolicy",
        roles=[role],
        statements=[
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[log_group.log_group_arn],
            )
        ],
    )
    return role
