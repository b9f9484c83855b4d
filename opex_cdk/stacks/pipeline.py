"""The Pipeline stack (optional): CDK Pipelines delivering the environments to the real accounts.

Source (a CodeStar/CodeConnections connection to GitHub, or a zip in S3) -> synth (``make test`` then
``make synth``: the whole suite and nag gate every change) -> self-mutation -> one :class:`DeliveryStage` per
``pipeline.stages`` entry (dev, then prod), each followed by a smoke test of its site; a production stage waits
for a manual approval first.

Nag inside every Stage: :func:`opex_cdk.environment.build_environment` registers the environment's packs on
the Stage itself, so prod's stacks get prod's packs whatever environment the pipeline stack belongs to.
(Measured with aws-cdk-lib 2.275: a plugin registered on the App *also* runs over nested Stage stacks, so the
pipeline environment's own packs check every Stage too; keep the pipeline in the environment with the fewest
packs, dev, or its packs would be applied to dev's stacks as well.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jsii
from aws_cdk import Aspects, CfnOutput, Duration, Environment, IAspect, RemovalPolicy, Stack, Stage, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from opex_cdk.config import EnvironmentConfig
from opex_cdk.nag import acknowledge

#: The smoke test: the page and the deep health check must each answer 200 (retried while the ALB warms up).
_CURL = 'code=$(curl -sS -o /dev/null -w "%{http_code}" --retry 10 --retry-all-errors --retry-delay 10'
SMOKE_TEST_COMMANDS = tuple(
    f'{_CURL} "${{SITE_URL%/}}{path}"); echo "GET {path} -> $code"; test "$code" = 200'
    for path in ("/", "/healthcheck")
)


class DeliveryStage(Stage):
    """One environment as a deployable unit of the pipeline: every stack of ``build_environment``.

    Attributes:
        stacks: the environment's stacks (:class:`opex_cdk.environment.EnvironmentStacks`).
        site_url: the App stack's ``SiteUrl`` output, for the smoke test.
    """

    def __init__(self, scope: Construct, id_: str, *, config: EnvironmentConfig, **kwargs: Any) -> None:
        super().__init__(scope, id_, env=Environment(account=config.account, region=config.region), **kwargs)
        from opex_cdk.environment import build_environment  # environment imports the stacks package

        self.config = config
        self.stacks = build_environment(self, config)
        site_url = self.stacks.app.node.try_find_child("SiteUrl")
        if not isinstance(site_url, CfnOutput):
            raise ValueError(f"stage {id_}: the App stack has no SiteUrl output for the smoke test")
        self.site_url: CfnOutput = site_url


class PipelineStack(Stack):
    """A self-mutating CDK pipeline for ``stage_configs`` (from ``config.pipeline``).

    Attributes:
        pipeline: the :class:`aws_cdk.pipelines.CodePipeline`.
        artifact_bucket: the artifact bucket (KMS-encrypted, versioned, SSL only, access-logged).
        stages: the :class:`DeliveryStage` per environment, in delivery order.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        config: EnvironmentConfig,
        stage_configs: Sequence[EnvironmentConfig],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            id_,
            description=f"opex-cdk {config.name}: delivery pipeline ({' -> '.join(c.name for c in stage_configs)})",
            **kwargs,
        )
        if not stage_configs:
            raise ValueError("PipelineStack needs at least one stage configuration")
        key = kms.Key(
            self,
            "ArtifactKey",
            description="Pipeline artifacts",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.artifact_access_logs = access_logs = s3.Bucket(
            self,
            "ArtifactAccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            # Access logs are evidence for a year, then go.
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.artifact_bucket = s3.Bucket(
            self,
            "Artifacts",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            enforce_ssl=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="artifacts/",
            # Artifacts are rebuilt from source on every run; keep a quarter for investigations, old versions a month.
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(90), noncurrent_version_expiration=Duration.days(30))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        cross_account = any(c.account != config.account for c in stage_configs)
        synth = pipelines.ShellStep(
            "Synth",
            input=_source(self, config),
            # The suite (with nag) gates every change, then the app is synthesized exactly as `make synth` does.
            commands=["make test", f"make synth ENV={config.name}"],
            primary_output_directory="cdk.out",
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=f"{config.prefix}-delivery",
            synth=synth,
            self_mutation=True,
            cross_account_keys=cross_account,
            artifact_bucket=self.artifact_bucket,
            use_change_sets=True,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(
                    build_image=codebuild.LinuxBuildImage.STANDARD_7_0,
                    compute_type=codebuild.ComputeType.MEDIUM,
                    privileged=False,
                ),
                timeout=Duration.minutes(45),
            ),
        )
        self.stages: list[DeliveryStage] = []
        for stage_config in stage_configs:
            stage = DeliveryStage(self, _stage_id(stage_config), config=stage_config)
            pre = [pipelines.ManualApprovalStep(f"Approve{_stage_id(stage_config)}")] if stage_config.production else []
            smoke = pipelines.ShellStep(
                "SmokeTest",
                env_from_cfn_outputs={"SITE_URL": stage.site_url},
                commands=list(SMOKE_TEST_COMMANDS),
            )
            self.pipeline.add_stage(stage, pre=pre, post=[smoke])
            self.stages.append(stage)
        # The roles and projects exist only once the pipeline is built; acknowledge on them afterwards.
        self.pipeline.build_pipeline()
        _acknowledge_pipeline_findings(self, config)
        Aspects.of(self).add(JoinToSub())


@jsii.implements(IAspect)
class JoinToSub:
    """Rewrites CDK Pipelines' ``Fn::Join`` with an empty delimiter into the equivalent ``Fn::Sub``.

    CDK Pipelines writes each deploy action's role ARN as ``Fn::Join ["", ["arn:", Ref Partition, ...]]``,
    which cfn-lint reports as error E3703 ("prefer Fn::Sub"). Same value, so the template is unchanged in
    meaning; joins whose parts are not plain strings and ``Ref``s are left as they are.
    """

    def visit(self, node: Any) -> None:
        if not isinstance(node, codepipeline.CfnPipeline):
            return
        # Resolved L1 values keep the L1's camelCase structure; ``configuration`` is free-form JSON whose
        # keys are CloudFormation's own, so each rewrite is a narrow override at its CloudFormation path.
        for i, stage in enumerate(Stack.of(node).resolve(node.stages) or []):
            for j, action in enumerate(stage.get("actions") or []):
                path = f"Stages.{i}.Actions.{j}"
                for key, value in (action.get("configuration") or {}).items():
                    if _join_to_sub(value) != value:
                        node.add_property_override(f"{path}.Configuration.{key}", _join_to_sub(value))
                if "roleArn" in action and _join_to_sub(action["roleArn"]) != action["roleArn"]:
                    node.add_property_override(f"{path}.RoleArn", _join_to_sub(action["roleArn"]))


def _join_to_sub(value: Any) -> Any:
    """``value`` with every ``{"Fn::Join": ["", [str | {"Ref": name}, ...]]}`` turned into ``Fn::Sub``."""
    if isinstance(value, list):
        return [_join_to_sub(v) for v in value]
    if not isinstance(value, dict):
        return value
    join = value.get("Fn::Join")
    if len(value) == 1 and isinstance(join, list) and len(join) == 2 and join[0] == "":
        parts = join[1]
        if all(isinstance(p, str) or (isinstance(p, dict) and set(p) == {"Ref"}) for p in parts):
            return {
                "Fn::Sub": "".join(
                    p.replace("${", "${!") if isinstance(p, str) else "${" + p["Ref"] + "}" for p in parts
                )
            }
    return {k: _join_to_sub(v) for k, v in value.items()}


def _stage_id(config: EnvironmentConfig) -> str:
    return config.name[:1].upper() + config.name[1:]


def _source(scope: Construct, config: EnvironmentConfig) -> pipelines.CodePipelineSource:
    """The configured source: an S3 zip when ``source_bucket`` is set, else the connection (GitHub)."""
    p = config.pipeline
    if p.source_bucket is not None:
        # Imported, not created: the (versioned) source bucket belongs to whoever uploads the zip.
        bucket = s3.Bucket.from_bucket_name(scope, "SourceBucket", p.source_bucket)
        return pipelines.CodePipelineSource.s3(bucket, p.source_object_key)
    if not (p.connection_arn and p.repository):  # config validation makes this unreachable; fail clearly anyway
        raise ValueError("pipeline: set connection_arn + repository, or source_bucket")
    return pipelines.CodePipelineSource.connection(p.repository, p.branch, connection_arn=p.connection_arn)


#: Grants CDK Pipelines writes on this pipeline's own artifact bucket and key (``grantReadWrite``):
#: action families and object keys inside that one bucket and that one key, nothing else.
_ARTIFACT_GRANTS = (
    "Action::s3:GetBucket*",
    "Action::s3:GetObject*",
    "Action::s3:List*",
    "Action::s3:Abort*",
    "Action::s3:DeleteObject*",
    "Action::kms:GenerateDataKey*",
    "Action::kms:ReEncrypt*",
)


def _acknowledge_pipeline_findings(stack: PipelineStack, config: EnvironmentConfig) -> None:
    """What CDK Pipelines generates and no prop changes; each acknowledgment says why it is safe.

    Fixed by props instead: our own artifact bucket (KMS with rotation, versioned, SSL only, access logs),
    ``enable_key_rotation``, non-privileged CodeBuild.
    """
    pipeline = stack.pipeline
    artifacts = stack.get_logical_id(stack.artifact_bucket.node.default_child)  # type: ignore[arg-type]
    for finding in (*_ARTIFACT_GRANTS, f"Resource::<{artifacts}.Arn>/*"):
        acknowledge(
            pipeline,
            f"AwsSolutions-IAM5[{finding}]",
            "CDK Pipelines grants its stage roles read/write on this pipeline's own artifact bucket and KMS key "
            "only; the wildcards are object keys and action families inside that single bucket and key.",
        )
    account, region = stack.account, stack.region
    assets = pipeline.node.try_find_child("Assets")
    for project in pipeline.node.find_all():
        # Asset-publishing projects share one role, acknowledged below for all of them at once.
        if isinstance(project, codebuild.CfnProject) and not (
            assets and project.node.path.startswith(assets.node.path)
        ):
            name = stack.get_logical_id(project)
            for finding in (
                f"Resource::arn:aws:logs:{region}:{account}:log-group:/aws/codebuild/<{name}>:*",
                f"Resource::arn:aws:codebuild:{region}:{account}:report-group/<{name}>-*",
            ):
                acknowledge(
                    pipeline,
                    f"AwsSolutions-IAM5[{finding}]",
                    "A CodeBuild project may write the log streams of its own log group and its own report "
                    "groups; the wildcard is the stream / report suffix CodeBuild generates per build.",
                )
    if assets is not None:
        for finding in (
            f"Resource::arn:aws:logs:{region}:{account}:log-group:/aws/codebuild/*",
            f"Resource::arn:aws:codebuild:{region}:{account}:report-group/*",
            "Resource::*",
        ):
            acknowledge(
                assets,
                f"AwsSolutions-IAM5[{finding}]",
                "The asset-publishing role CDK Pipelines creates: logs/reports of its own generated CodeBuild "
                "projects, and sts:AssumeRole of the bootstrap file-publishing roles, whose names it cannot know.",
            )
    mutation = pipeline.node.try_find_child("UpdatePipeline")
    if mutation is not None:
        for finding in (f"Resource::arn:*:iam::{account}:role/*", "Resource::*"):
            acknowledge(
                mutation,
                f"AwsSolutions-IAM5[{finding}]",
                "Self-mutation assumes only roles tagged aws-cdk:bootstrap-role (condition on the statement) and "
                "reads stack status (cloudformation:DescribeStacks has no resource-level scoping for its use).",
            )
    acknowledge(
        pipeline,
        "NIST.800.53.R5-IAMNoInlinePolicy",
        "CDK Pipelines attaches its generated grants as each role's default policy; the roles belong to the "
        "pipeline alone and are created and deleted with it, so a managed policy would add no control.",
    )
    for bucket in (stack.artifact_bucket, stack.artifact_access_logs):
        acknowledge(
            bucket,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Pipeline artifacts and their access logs are rebuilt from source on every run; a replica would "
            "hold nothing that cannot be regenerated.",
        )
    acknowledge(
        stack.artifact_access_logs,
        "NIST.800.53.R5-S3DefaultEncryptionKMS",
        "S3 server access logging delivers only to buckets encrypted with SSE-S3 (SSE-KMS targets are not "
        "supported), so this log bucket uses S3-managed keys.",
    )
    for pack in ("HIPAA.Security", "PCI.DSS.321"):
        if pack in config.nag_packs:  # prod's extra packs raise the same findings under their own ids
            acknowledge(
                pipeline,
                f"{pack}-IAMNoInlinePolicy",
                "CDK Pipelines attaches its generated grants as each role's default policy; the roles belong "
                "to the pipeline alone and are created and deleted with it.",
            )
