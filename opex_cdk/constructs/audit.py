"""`AuditTrail`: who did what, kept tamper-evident, with alarms on the calls that matter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from opex_cdk.constructs.alarms import RUNBOOKS, AlarmEntry
from opex_cdk.constructs.keys import log_group_key
from opex_cdk.nag import acknowledge

_NO_MATCH_NO_DATA = "notBreaching: a metric filter publishes only when a log event matches; no data means no match"


@dataclass(frozen=True)
class AuditRule:
    """One metric filter over the trail's log group and the Critical alarm on it."""

    metric_name: str
    pattern: str
    summary: str
    threshold: int = 0


def audit_rules(runaway_scaling_calls_per_5_minutes: int) -> tuple[AuditRule, ...]:
    """The filters (CIS AWS Foundations benchmark, section "Monitoring", plus runaway scaling)."""
    return (
        AuditRule(
            "UnauthorizedApiCalls",
            '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }',
            "API calls denied for lack of permission",
        ),
        AuditRule(
            "ConsoleSignInWithoutMfa",
            '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && '
            '($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }',
            "Successful console sign-in of an IAM user without MFA",
        ),
        AuditRule(
            "RootUsage",
            '{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && '
            '$.eventType != "AwsServiceEvent" }',
            "Any use of the root user",
        ),
        AuditRule(
            "IamPolicyChanges",
            "{ ($.eventName = DeleteGroupPolicy) || ($.eventName = DeleteRolePolicy) || "
            "($.eventName = DeleteUserPolicy) || ($.eventName = PutGroupPolicy) || ($.eventName = PutRolePolicy) || "
            "($.eventName = PutUserPolicy) || ($.eventName = CreatePolicy) || ($.eventName = DeletePolicy) || "
            "($.eventName = CreatePolicyVersion) || ($.eventName = DeletePolicyVersion) || "
            "($.eventName = AttachRolePolicy) || ($.eventName = DetachRolePolicy) || "
            "($.eventName = AttachUserPolicy) || ($.eventName = DetachUserPolicy) || "
            "($.eventName = AttachGroupPolicy) || ($.eventName = DetachGroupPolicy) }",
            "IAM policy created, changed, attached or detached",
        ),
        AuditRule(
            "CloudTrailChanges",
            "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || "
            "($.eventName = StartLogging) || ($.eventName = StopLogging) }",
            "A trail was created, changed, stopped or deleted",
        ),
        AuditRule(
            "SecurityGroupChanges",
            "{ ($.eventName = AuthorizeSecurityGroupIngress) || ($.eventName = AuthorizeSecurityGroupEgress) || "
            "($.eventName = RevokeSecurityGroupIngress) || ($.eventName = RevokeSecurityGroupEgress) || "
            "($.eventName = CreateSecurityGroup) || ($.eventName = DeleteSecurityGroup) }",
            "A security group or one of its rules changed",
        ),
        AuditRule(
            "RunawayScaling",
            "{ ($.eventName = CreateStack) || ($.eventName = RunInstances) || ($.eventName = SetDesiredCapacity) }",
            f"CreateStack + RunInstances + SetDesiredCapacity calls above {runaway_scaling_calls_per_5_minutes} "
            "per 5 minutes (scaling out of control)",
            threshold=runaway_scaling_calls_per_5_minutes,
        ),
    )


class AuditTrail(Construct):
    """A multi-region CloudTrail trail with log-file validation, KMS encryption, an SSL-only S3 bucket with
    server access logs, delivery to CloudWatch Logs, and Critical alarms on metric filters over it:
    unauthorized API calls, console sign-in without MFA, root usage, IAM policy changes, trail changes,
    security-group changes, and runaway scaling (CreateStack / RunInstances / SetDesiredCapacity).

    Alarms are named ``{prefix}-audit-{Rule}-Critical`` and go to ``alarm_topic`` (alarm and OK).

    Attributes: ``trail``, ``bucket``, ``access_log_bucket``, ``key``, ``log_group``, ``logs_role``,
    ``metric_filters`` / ``alarms`` (rule -> object), ``entries`` (list of `AlarmEntry`).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        prefix: str,
        alarm_topic: sns.ITopic,
        runaway_scaling_calls_per_5_minutes: int = 20,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        bucket_props: s3.BucketProps | None = None,
        existing_bucket: s3.IBucket | None = None,
    ) -> None:
        """Create the trail.

        :param prefix: environment prefix: trail ``{prefix}-trail``, alarm names, metric namespace.
        :param alarm_topic: where the Critical audit alarms go.
        :param runaway_scaling_calls_per_5_minutes: the bound of the runaway-scaling alarm. Default: 20.
        :param log_retention: retention of the trail's log group. Default: one year.
        :param removal_policy: of the key, the log group and the buckets. Default: RETAIN.
        :param bucket_props: overrides of the trail bucket's defaults (KMS, SSL-only, versioned, logged).
        :param existing_bucket: deliver to this bucket instead (not with ``bucket_props``); its policy must
            admit CloudTrail, and its access logging is then yours (``access_log_bucket`` is None).
        """
        super().__init__(scope, id_)
        if bucket_props is not None and existing_bucket is not None:
            raise ValueError("Either provide bucket_props or existing_bucket, but not both.")
        if runaway_scaling_calls_per_5_minutes < 1:
            raise ValueError(
                f"runaway_scaling_calls_per_5_minutes: {runaway_scaling_calls_per_5_minutes} is not allowed; "
                "allowed: at least 1"
            )
        stack = Stack.of(self)
        trail_name = f"{prefix}-trail"
        trail_arn = f"arn:{stack.partition}:cloudtrail:{stack.region}:{stack.account}:trail/{trail_name}"

        self.key = kms.Key(
            self,
            "Key",
            description=f"Encrypts the {trail_name} log files",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudTrailToEncrypt",
                principals=[iam.ServicePrincipal("cloudtrail.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:DescribeKey"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceArn": trail_arn},
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:{stack.partition}:cloudtrail:*:"
                        f"{stack.account}:trail/*"
                    },
                },
            )
        )

        self.access_log_bucket: s3.Bucket | None = None
        if existing_bucket is not None:
            self.bucket: s3.IBucket = existing_bucket
        else:
            # Server access logs can only be delivered to an SSE-S3 bucket (not SSE-KMS).
            self.access_log_bucket = s3.Bucket(
                self,
                "AccessLogs",
                encryption=s3.BucketEncryption.S3_MANAGED,
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                enforce_ssl=True,
                versioned=True,
                object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90))],
                removal_policy=removal_policy,
            )
            _acknowledge_access_log_bucket(self.access_log_bucket)
            defaults: dict[str, Any] = {
                "encryption": s3.BucketEncryption.KMS,
                "encryption_key": self.key,
                "bucket_key_enabled": True,
                "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
                "enforce_ssl": True,
                "versioned": True,
                "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
                "server_access_logs_bucket": self.access_log_bucket,
                "server_access_logs_prefix": "trail-bucket/",
                "lifecycle_rules": [s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90))],
                "removal_policy": removal_policy,
            }
            overrides = dict(bucket_props._values) if bucket_props is not None else {}
            bucket = s3.Bucket(self, "Bucket", **{**defaults, **overrides})
            _acknowledge_trail_bucket(bucket)
            self.bucket = bucket

        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=log_retention,
            encryption_key=log_group_key(self, "LogKey", removal_policy=removal_policy),
            removal_policy=removal_policy,
        )
        self.logs_role = iam.Role(
            self,
            "LogsRole",
            assumed_by=iam.ServicePrincipal("cloudtrail.amazonaws.com"),
            description=f"Lets CloudTrail deliver {trail_name} to CloudWatch Logs",
        )
        logs_policy = iam.ManagedPolicy(
            self,
            "LogsPolicy",
            roles=[self.logs_role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                )
            ],
        )
        self.trail = cloudtrail.Trail(
            self,
            "Trail",
            trail_name=trail_name,
            bucket=self.bucket,
            encryption_key=self.key,
            enable_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            management_events=cloudtrail.ReadWriteType.ALL,
            # CloudWatch Logs delivery is wired below with our own role: the L2 would create one with an
            # inline policy (NIST 800-53 AC-6 asks for managed policies).
            send_to_cloud_watch_logs=False,
        )
        cfn_trail: cloudtrail.CfnTrail = self.trail.node.default_child  # type: ignore[assignment]
        cfn_trail.cloud_watch_logs_log_group_arn = self.log_group.log_group_arn
        cfn_trail.cloud_watch_logs_role_arn = self.logs_role.role_arn
        cfn_trail.node.add_dependency(logs_policy)

        namespace = f"OpexCdk/Audit/{prefix}"
        self.metric_filters: dict[str, logs.MetricFilter] = {}
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.entries: list[AlarmEntry] = []
        action = actions.SnsAction(alarm_topic)
        for rule in audit_rules(runaway_scaling_calls_per_5_minutes):
            metric_filter = logs.MetricFilter(
                self,
                f"{rule.metric_name}Filter",
                log_group=self.log_group,
                filter_pattern=logs.FilterPattern.literal(rule.pattern),
                metric_namespace=namespace,
                metric_name=rule.metric_name,
                metric_value="1",
            )
            name = f"{prefix}-audit-{rule.metric_name}-Critical"
            alarm = cloudwatch.Alarm(
                self,
                f"{rule.metric_name}Alarm",
                alarm_name=name,
                alarm_description=f"{rule.summary}. Runbook: {RUNBOOKS['audit']}",
                metric=metric_filter.metric(statistic="Sum", period=Duration.minutes(5)),
                threshold=rule.threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.metric_filters[rule.metric_name] = metric_filter
            self.alarms[rule.metric_name] = alarm
            self.entries.append(
                AlarmEntry(
                    alarm,
                    name,
                    "audit",
                    "Critical",
                    "critical",
                    RUNBOOKS["audit"],
                    f"CloudTrail metric filter: {rule.summary}",
                    f"> {rule.threshold}",
                    "1 of 1 x 300 s",
                    _NO_MATCH_NO_DATA,
                )  # fmt: skip
            )


def _acknowledge_access_log_bucket(bucket: s3.Bucket) -> None:
    """Findings on the bucket that receives the trail bucket's server access logs."""
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        acknowledge(
            bucket,
            f"{pack}-S3DefaultEncryptionKMS",
            "S3 server access logs can only be delivered to a bucket encrypted with SSE-S3, not SSE-KMS.",
        )
        acknowledge(
            bucket,
            f"{pack}-S3BucketReplicationEnabled",
            "Access logs of the trail bucket are diagnostic; the trail's own log files carry CloudTrail "
            "digests, and a cross-region replica of these logs would add cost without a recovery need.",
        )


def _acknowledge_trail_bucket(bucket: s3.Bucket) -> None:
    """Findings on the trail bucket."""
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        acknowledge(
            bucket,
            f"{pack}-S3BucketReplicationEnabled",
            "The bucket is versioned and RETAINed in production and CloudTrail digest files make tampering "
            "evident; a replica in a second region is left to an organization trail, not this workload.",
        )
