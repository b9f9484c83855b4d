"""The cell template: one more copy of the app tier, as a standalone CloudFormation template.

The scaler creates cell stacks from a template *file*, outside CDK, so the template must stand alone:
its only parameter is ``CellId``. Everything else a cell needs is either known at synth (AZs, VPC CIDR,
table and flag names, the app-tier settings: baked in as literals) or published by the Scaling stack as
SSM parameters (VPC and subnet ids, which only exist after the Network stack deployed) and read through
``{{resolve:ssm:...}}`` dynamic references (no template parameters).

:func:`synthesize_cell_template` builds :class:`CellStack` in an inner App (same feature flags, same nag
packs: synth fails on a finding) and returns the template file, which the Scaling stack publishes as an
S3 asset. The webapp the instances download is an asset *of the inner app*; the outer app publishes the
very same object because the App stack's `MultiAzAppTier` stages the same source with the same options
(same content hash -> same key in the bootstrap bucket). A test pins that equality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import (
    App,
    CfnDynamicReference,
    CfnDynamicReferenceService,
    CfnOutput,
    CfnParameter,
    DefaultStackSynthesizer,
    Environment,
    RemovalPolicy,
    Stack,
    Tags,
)
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.constructs.app_tier import MultiAzAppTier
from opex_cdk.nag import acknowledge, apply_nag_packs
from opex_cdk.stacks.app import app_tier_settings

#: The template's only parameter, and the outputs the scaler reads (lambda/scaler/index.py pins the same names).
CELL_ID_PARAMETER = "CellId"
OUTPUT_DNS_NAME = "LoadBalancerDnsName"
OUTPUT_HOSTED_ZONE_ID = "LoadBalancerHostedZoneId"
CELL_TEMPLATE_STACK_NAME = "Cell"


def cell_parameter_prefix(config: EnvironmentConfig) -> str:
    """Where the Scaling stack publishes the shared ids a cell reads, e.g. ``/opex-dev/cell``."""
    return f"/{config.prefix}/cell"


class CellSharedParameters(Construct):
    """SSM parameters with the shared network ids a cell template resolves at deploy time.

    ``{prefix}/vpc-id``, ``{prefix}/public-subnet-{i}``, ``{prefix}/app-subnet-{i}`` and their
    ``...-route-table-{i}`` (one per AZ, in the order of the VPC's AZs). Attribute: ``parameters`` (name -> parameter).
    """

    def __init__(self, scope: Construct, id_: str, *, vpc: ec2.IVpc, parameter_prefix: str) -> None:
        """:param vpc: the shared VPC. :param parameter_prefix: path prefix of the parameters."""
        super().__init__(scope, id_)
        values = {"vpc-id": vpc.vpc_id}
        for i, subnet in enumerate(vpc.public_subnets):
            values[f"public-subnet-{i}"] = subnet.subnet_id
            values[f"public-route-table-{i}"] = subnet.route_table.route_table_id
        for i, subnet in enumerate(vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets):
            values[f"app-subnet-{i}"] = subnet.subnet_id
            values[f"app-route-table-{i}"] = subnet.route_table.route_table_id
        self.parameters = {
            name: ssm.StringParameter(
                self,
                name,
                parameter_name=f"{parameter_prefix}/{name}",
                string_value=value,
                description="Shared id read by cell stacks (created by the cell scaler)",
            )
            for name, value in values.items()
        }


def _resolve(name: str) -> str:
    return CfnDynamicReference(CfnDynamicReferenceService.SSM, name).to_string()


class CellStack(Stack):
    """One extra cell: a `MultiAzAppTier` over the shared VPC, table and flag; ``CellId`` is its only parameter.

    Cells are disposable: no deletion protection, log groups destroyed with the stack (the ALB access-log
    bucket is retained by the construct, as audit evidence). Outputs ``LoadBalancerDnsName`` and
    ``LoadBalancerHostedZoneId`` (the scaler's alias target) and ``SiteUrl``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        availability_zones: list[str],
        parameter_prefix: str,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("description", f"opex-cdk {config.name}: an extra app-tier cell (created by the scaler)")
        super().__init__(scope, id_, **kwargs)
        cell_id = CfnParameter(
            self,
            CELL_ID_PARAMETER,
            type="String",
            allowed_pattern="^[0-9]{1,2}$",
            description="Number of the cell (2..10); the base cell is 1",
        )
        azs = list(availability_zones)
        vpc = ec2.Vpc.from_vpc_attributes(
            self,
            "SharedVpc",
            vpc_id=_resolve(f"{parameter_prefix}/vpc-id"),
            availability_zones=azs,
            vpc_cidr_block=config.network.cidr,
            public_subnet_ids=[_resolve(f"{parameter_prefix}/public-subnet-{i}") for i in range(len(azs))],
            public_subnet_route_table_ids=[
                _resolve(f"{parameter_prefix}/public-route-table-{i}") for i in range(len(azs))
            ],
            private_subnet_ids=[_resolve(f"{parameter_prefix}/app-subnet-{i}") for i in range(len(azs))],
            private_subnet_route_table_ids=[
                _resolve(f"{parameter_prefix}/app-route-table-{i}") for i in range(len(azs))
            ],
        )
        table = dynamodb.Table.from_table_name(self, "Table", config.data.table_name)
        flag = ssm.StringParameter.from_string_parameter_attributes(
            self, "Flag", parameter_name=config.data.flag_parameter_name, force_dynamic_reference=True
        )
        self.app_tier = MultiAzAppTier(
            self,
            "AppTier",
            vpc=vpc,
            table=table,
            flag_parameter=flag,
            # A literal here: the construct writes cell_id into security-group descriptions, which nag cannot
            # evaluate when they hold a Ref (and a description change would replace the group). The
            # per-cell value is applied as the opex:cell tag below, with a priority that wins.
            cell_id="scaled",
            **app_tier_settings(config.app_tier),
            deletion_protection=False,  # the scaler deletes cells
            removal_policy=RemovalPolicy.DESTROY,
        )
        Tags.of(self.app_tier).add("opex:cell", cell_id.value_as_string, priority=200)
        lb = self.app_tier.load_balancer
        # MultiAzAppTier acknowledges NIST's rule when protection is off; HIPAA raises the same finding.
        acknowledge(
            lb,
            "HIPAA.Security-ELBDeletionProtectionEnabled",
            "Extra cells are disposable capacity that the scaler deletes when load falls; deletion protection "
            "would make every scale-in fail. The base cell (App stack) keeps protection on in production.",
        )
        CfnOutput(self, OUTPUT_DNS_NAME, value=lb.load_balancer_dns_name, description="Alias target of the cell")
        CfnOutput(
            self, OUTPUT_HOSTED_ZONE_ID, value=lb.load_balancer_canonical_hosted_zone_id, description="ALB's zone"
        )
        CfnOutput(self, "SiteUrl", value=self.app_tier.site_url, description="The cell's own URL")


def synthesize_cell_template(
    config: EnvironmentConfig,
    *,
    availability_zones: list[str],
    parameter_prefix: str,
    outdir: Path,
    context: dict[str, Any] | None = None,
    with_nag: bool = True,
) -> Path:
    """Synthesize :class:`CellStack` in its own App (nag included) and return the template file's path.

    ``context``: the outer app's feature flags, so the cell is built exactly like the base cell.
    ``with_nag``: run the environment's nag packs on the cell (default); off only where the outer app
    is built without nag too (tests that need the templates, not the verdict).
    The bootstrap-version rule is left out: the template is deployed by the scaler, not by the CDK CLI.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    app = App(outdir=str(outdir), context=context or {})
    stack = CellStack(
        app,
        CELL_TEMPLATE_STACK_NAME,
        config=config,
        availability_zones=availability_zones,
        parameter_prefix=parameter_prefix,
        env=Environment(account=config.account, region=config.region),
        synthesizer=DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
    )
    if with_nag:
        apply_nag_packs(app, config.nag_packs)
    assembly = app.synth()
    return Path(assembly.get_stack_by_name(stack.stack_name).template_full_path)
