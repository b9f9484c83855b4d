"""`CellScaler`: scaling alarms in, cell stacks out, Route 53 weights kept true, engineers told."""

from __future__ import annotations

import jsii
from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from opex_cdk.assets import lambda_code_dir
from opex_cdk.constructs.event_alarm import event_alarm
from opex_cdk.constructs.keys import log_group_key
from opex_cdk.nag import acknowledge

#: Public SSM parameter holding the Powertools layer ARN for this runtime/architecture, pinned to the
#: Powertools version the tests run with (requirements.lock), so what is tested is what runs.
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/arm64/python3.14/{POWERTOOLS_VERSION}"
#: Extra cells are numbered 2..10 (the handler's MAX_CELL_SLOTS); the base cell is 1.
MAX_CELLS = 10
BASE_SET_IDENTIFIER = "base"
_PACKS_WITH_LAMBDA_VPC_RULE = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
_PACKS_WITH_BACKUP_RULE = ("NIST.800.53.R5", "HIPAA.Security")

# What CloudFormation needs to create and delete one cell (MultiAzAppTier): ALB + listeners + target group,
# ASG + launch template + security groups, instance roles/profiles, log groups + key, access-log bucket,
# scaling policies, notifications. Enumerated (no service wildcards); resources are scoped where the
# service allows it (see _cell_execution_role).
_CELL_ACTIONS = [
    "autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup", "autoscaling:DeleteAutoScalingGroup",
    "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeScalingActivities",
    "autoscaling:PutScalingPolicy", "autoscaling:DeletePolicy", "autoscaling:DescribePolicies",
    "autoscaling:PutNotificationConfiguration", "autoscaling:DeleteNotificationConfiguration",
    "autoscaling:DescribeNotificationConfigurations", "autoscaling:CreateOrUpdateTags", "autoscaling:DeleteTags",
    "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:DeleteLaunchTemplate",
    "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions", "ec2:RunInstances", "ec2:CreateTags",
    "ec2:DeleteTags", "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup", "ec2:DescribeSecurityGroups",
    "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
    "ec2:RevokeSecurityGroupEgress", "ec2:DescribeSubnets", "ec2:DescribeVpcs", "ec2:DescribeImages",
    "ec2:DescribeInstances", "ec2:DescribeAccountAttributes", "ec2:DescribeAvailabilityZones",
    "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer",
    "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
    "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:DeleteListener", "elasticloadbalancing:ModifyListener", "elasticloadbalancing:AddTags",
    "elasticloadbalancing:RemoveTags", "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeTargetGroupAttributes",
    "elasticloadbalancing:SetWebAcl", "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL",
    "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:TagRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
    "iam:GetRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:CreatePolicy", "iam:DeletePolicy",
    "iam:GetPolicy", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:ListPolicyVersions",
    "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
    "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:PassRole",
    "logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy", "logs:AssociateKmsKey",
    "logs:DescribeLogGroups", "logs:TagResource",
    "kms:CreateKey", "kms:DescribeKey", "kms:PutKeyPolicy", "kms:EnableKeyRotation", "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus", "kms:ScheduleKeyDeletion", "kms:TagResource", "kms:CreateGrant",
    "s3:CreateBucket", "s3:DeleteBucket", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:GetBucketPolicy",
    "s3:PutEncryptionConfiguration", "s3:PutBucketVersioning", "s3:PutLifecycleConfiguration",
    "s3:PutBucketPublicAccessBlock", "s3:PutBucketOwnershipControls", "s3:PutBucketTagging",
    "ssm:GetParameters", "ssm:GetParameter",
    "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms",
    "sns:Publish", "sns:GetTopicAttributes",
]  # fmt: skip


class CellScaler(Construct):
    """Cell-based scaling: an SNS-triggered Lambda creates and deletes cell stacks and keeps Route 53 true.

    A *cell* is one copy of the app tier (ALB + ASG) over the shared network and data, deployed as its own
    CloudFormation stack ``{cell_stack_prefix}-{n}`` from ``cell_template`` (its only parameter: ``CellId``).
    Route 53 weighted alias records (health evaluated) named ``record_name`` spread traffic over the cells:
    the base cell's record is created here (``base_load_balancer``), extra cells' records by the function.

    - **Function** (``function``): Python 3.14 on arm64, Powertools layer, reserved concurrency 1 (one operation
      in flight), subscribed to ``scaling_topic``. Scale-out alarm in ALARM -> CreateStack of the next cell;
      scale-in alarm in ALARM -> the newest extra cell's weight to 0, deleted once ``drain`` has passed.
      A CloudFormation status-change rule (``status_rule``) and a one-minute schedule (``reconcile_rule``)
      invoke it to add completed cells to DNS, delete drained or failed cells, and remove stale records.
    - **Guard rails**: ``min_cells`` / ``max_cells`` (the base cell counts), ``cooldown``, idempotency on
      (alarm name, state-change time) in ``state_table`` (DynamoDB, on demand, PITR, TTL).
    - **Nothing lost**: malformed messages are copied to ``dead_letter_queue`` and reported; failed
      invocations land there after 2 retries; SNS and EventBridge delivery failures too. Alarms
      ``dead_letter_alarm`` and ``errors_alarm`` notify ``notification_topic``, as does every decision.
    - **Least privilege** (``role``, a customer-managed policy, no inline policy, no wildcard actions):
      CloudFormation only on stacks named ``{cell_stack_prefix}-*`` and only with the cell execution role and the
      cell template; Route 53 changes only of A records named ``record_name`` in the one zone; ``iam:PassRole``
      only for ``cell_execution_role``, only to CloudFormation.

    Attributes: ``function``, ``role``, ``log_group``, ``dead_letter_queue``, ``state_table``, ``hosted_zone``,
    ``base_record`` (or None), ``cell_execution_role``, ``status_rule``, ``reconcile_rule``, ``dead_letter_alarm``,
    ``errors_alarm``, ``drain``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        scaling_topic: sns.ITopic,
        notification_topic: sns.ITopic,
        scale_out_alarm_name: str,
        scale_in_alarm_name: str,
        cell_template: s3_assets.Asset,
        cell_stack_prefix: str,
        record_name: str,
        hosted_zone: route53.IHostedZone | None = None,
        vpc: ec2.IVpc | None = None,
        base_load_balancer: elbv2.ILoadBalancerV2 | None = None,
        min_cells: int = 1,
        max_cells: int = 3,
        cooldown: Duration | None = None,
        cell_weight: int = 100,
        record_ttl: Duration | None = None,
        deregistration_delay: Duration | None = None,
        alarm_name_prefix: str | None = None,
        powertools_layer_arn: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        existing_cell_execution_role: iam.IRole | None = None,
    ) -> None:
        """Create the scaler.

        :param scaling_topic: the topic the scale-out / scale-in alarms publish to.
        :param notification_topic: every decision, refusal and failure is published here (Warning).
        :param scale_out_alarm_name: name of the alarm that asks for one more cell.
        :param scale_in_alarm_name: name of the alarm that asks for one cell less.
        :param cell_template: the cell's CloudFormation template as an S3 asset (parameter ``CellId`` only;
            outputs ``LoadBalancerDnsName`` and ``LoadBalancerHostedZoneId``).
        :param cell_stack_prefix: cell stacks are named ``{prefix}-{n}``; the function may touch no other stack.
        :param record_name: the weighted record set, e.g. ``app.opex.internal``.
        :param hosted_zone: the zone of ``record_name``. Default: a new private zone for the parent domain of
            ``record_name`` in ``vpc``.
        :param vpc: the VPC the private zone is associated with (required when ``hosted_zone`` is None).
        :param base_load_balancer: the base cell's ALB, given the first weighted record. Default: no base record.
        :param min_cells: cells at least, base included (scale-in stops there). Default: 1.
        :param max_cells: cells at most, base included, up to 10. Default: 3.
        :param cooldown: minimum time between two operations. Default: 300 s.
        :param cell_weight: Route 53 weight of every serving cell, 0-255. Default: 100.
        :param record_ttl: how long resolvers may cache the answer (alias records to an ALB answer with 60 s).
            Default: 60 s.
        :param deregistration_delay: the cell target group's draining time. Default: 10 s.
            A cell is deleted ``record_ttl + deregistration_delay`` after its weight went to 0.
        :param alarm_name_prefix: prefix of the scaler's own alarm names. Default: the stack name.
        :param powertools_layer_arn: the Powertools layer. Default: resolved at deploy time from the public
            SSM parameter ``POWERTOOLS_LAYER_PARAMETER`` (arm64, Python 3.14, Powertools 3.37.0).
        :param log_retention: of the function's KMS-encrypted log group. Default: 1 year.
        :param removal_policy: of the log group, its key and the state table. Default: RETAIN.
        :param existing_cell_execution_role: the role CloudFormation uses for cell stacks. Default: a role
            (trusting only CloudFormation) with the actions one cell needs.
        """
        super().__init__(scope, id_)
        cooldown = cooldown if cooldown is not None else Duration.seconds(300)
        record_ttl = record_ttl if record_ttl is not None else Duration.seconds(60)
        deregistration_delay = deregistration_delay if deregistration_delay is not None else Duration.seconds(10)
        _validate(
            min_cells=min_cells,
            max_cells=max_cells,
            cell_weight=cell_weight,
            cell_stack_prefix=cell_stack_prefix,
            record_name=record_name,
            has_zone=hosted_zone is not None,
            has_vpc=vpc is not None,
        )
        stack = Stack.of(self)
        record_name = record_name.rstrip(".").lower()
        self.drain = Duration.seconds(record_ttl.to_seconds() + deregistration_delay.to_seconds())

        if hosted_zone is None:
            assert vpc is not None
            hosted_zone = route53.PrivateHostedZone(
                self, "HostedZone", zone_name=record_name.split(".", 1)[1], vpc=vpc, comment="Cells of the app tier"
            )
        self.hosted_zone: route53.IHostedZone = hosted_zone
        self.base_record: route53.ARecord | None = None
        if base_load_balancer is not None:
            self.base_record = route53.ARecord(
                self,
                "BaseCellRecord",
                zone=hosted_zone,
                record_name=f"{record_name}.",
                target=route53.RecordTarget.from_alias(
                    route53_targets.LoadBalancerTarget(base_load_balancer, _EvaluateTargetHealth())
                ),
                weight=cell_weight,
                set_identifier=BASE_SET_IDENTIFIER,
                comment="The base cell (the App stack); extra cells are added by the scaler",
            )

        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.state_table = dynamodb.Table(
            self,
            "StateTable",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expiration",
            removal_policy=removal_policy,
        )
        for pack in _PACKS_WITH_BACKUP_RULE:
            acknowledge(
                self.state_table,
                f"{pack}-DynamoDBInBackupPlan",
                "Scaler bookkeeping only (idempotency keys that expire, cooldown time, draining cells): "
                "CloudFormation and Route 53 are the source of truth and the table can be rebuilt empty; PITR "
                "is on for the 35-day window.",
            )

        self.cell_execution_role: iam.IRole = existing_cell_execution_role or _cell_execution_role(
            self, cell_stack_prefix, cell_template
        )

        key = log_group_key(self, "LogKey", removal_policy=removal_policy)
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, encryption_key=key, removal_policy=removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The cell scaler: cell stacks, their Route 53 records, its state, notifications",
        )
        cell_stacks = f"arn:{Aws.PARTITION}:cloudformation:{Aws.REGION}:{Aws.ACCOUNT_ID}:stack/{cell_stack_prefix}-*/*"
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"{self.log_group.log_group_arn}:log-stream:*"],
            ),
            iam.PolicyStatement(
                sid="CreateAndDeleteCellStacksWithTheCellRole",
                actions=["cloudformation:CreateStack", "cloudformation:DeleteStack", "cloudformation:TagResource"],
                resources=[cell_stacks],
                conditions={"StringEquals": {"cloudformation:RoleArn": self.cell_execution_role.role_arn}},
            ),
            iam.PolicyStatement(
                sid="DescribeCellStacks", actions=["cloudformation:DescribeStacks"], resources=[cell_stacks]
            ),
            iam.PolicyStatement(
                sid="PassTheCellRoleToCloudFormation",
                actions=["iam:PassRole"],
                resources=[self.cell_execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "cloudformation.amazonaws.com"}},
            ),
            iam.PolicyStatement(
                sid="ReadTheCellTemplate",
                actions=["s3:GetObject"],
                resources=[cell_template.bucket.arn_for_objects(cell_template.s3_object_key)],
            ),
            iam.PolicyStatement(
                sid="ChangeOnlyTheCellRecordSet",
                actions=["route53:ChangeResourceRecordSets"],
                resources=[hosted_zone.hosted_zone_arn],
                conditions={
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [record_name],
                        "route53:ChangeResourceRecordSetsRecordTypes": ["A"],
                        "route53:ChangeResourceRecordSetsActions": ["UPSERT", "DELETE"],
                    }
                },
            ),
            iam.PolicyStatement(
                sid="ListTheZone", actions=["route53:ListResourceRecordSets"], resources=[hosted_zone.hosted_zone_arn]
            ),
            iam.PolicyStatement(
                sid="StateAndIdempotency",
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[self.state_table.table_arn],
            ),
            iam.PolicyStatement(
                sid="RecordRejectedMessages", actions=["sqs:SendMessage"], resources=[self.dead_letter_queue.queue_arn]
            ),
            iam.PolicyStatement(sid="Notify", actions=["sns:Publish"], resources=[notification_topic.topic_arn]),
        ]
        topic_key = getattr(notification_topic, "master_key", None)
        if topic_key is not None:
            statements.append(
                iam.PolicyStatement(
                    sid="NotifyEncryptedTopic",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[topic_key.key_arn],
                )
            )
        # A customer-managed policy and an immutable role (no inline policy may be added by the L2s):
        # every permission the function has is in this one document.
        self.policy = iam.ManagedPolicy(self, "Policy", roles=[self.role], statements=statements)
        acknowledge(
            self.policy,
            f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(self.log_group.node.default_child)}.Arn>:log-stream:*]",
            "Log stream names are generated by Lambda at run time; the wildcard is limited to streams of the "
            "function's own log group.",
        )
        acknowledge(
            self.policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:<AWS::AccountId>:stack/"
            f"{cell_stack_prefix}-*/*]",
            "Cell stacks are created at run time (their names end with the cell number and their ARNs with a "
            "stack id CloudFormation generates); the wildcard is limited to stacks named with the cell prefix, "
            "and creating or deleting them additionally requires the one cell execution role.",
        )

        self.function = lambda_.Function(
            self,
            "Function",
            description="Cell scaler: alarms in, cell stacks out, Route 53 weights, notifications",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            # Bytecode left by local runs would change the asset hash between machines.
            code=lambda_.Code.from_asset(str(lambda_code_dir("scaler")), exclude=["__pycache__", "*.pyc"]),
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    self,
                    "Powertools",
                    powertools_layer_arn
                    or ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_LAYER_PARAMETER),
                )
            ],
            role=self.role.without_policy_updates(),
            memory_size=256,
            timeout=Duration.seconds(60),
            reserved_concurrent_executions=1,
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            dead_letter_queue=self.dead_letter_queue,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            environment={
                "CELL_STACK_PREFIX": cell_stack_prefix,
                "TEMPLATE_URL": cell_template.http_url,
                "EXECUTION_ROLE_ARN": self.cell_execution_role.role_arn,
                "SCALE_OUT_ALARM": scale_out_alarm_name,
                "SCALE_IN_ALARM": scale_in_alarm_name,
                "MIN_CELLS": str(min_cells),
                "MAX_CELLS": str(max_cells),
                "COOLDOWN_SECONDS": str(int(cooldown.to_seconds())),
                "HOSTED_ZONE_ID": hosted_zone.hosted_zone_id,
                "RECORD_NAME": record_name,
                "CELL_WEIGHT": str(cell_weight),
                "DRAIN_SECONDS": str(int(self.drain.to_seconds())),
                "STATE_TABLE": self.state_table.table_name,
                "TOPIC_ARN": notification_topic.topic_arn,
                "DLQ_URL": self.dead_letter_queue.queue_url,
                "POWERTOOLS_SERVICE_NAME": "cell-scaler",
                "POWERTOOLS_METRICS_NAMESPACE": "OpexCdk/Scaler",
            },
        )
        self.function.node.add_dependency(self.policy)
        for pack in _PACKS_WITH_LAMBDA_VPC_RULE:
            acknowledge(
                self.function,
                f"{pack}-LambdaInsideVPC",
                "The scaler serves no traffic and reaches no VPC resource: it calls only AWS control-plane APIs "
                "(CloudFormation, Route 53, SNS, SQS, DynamoDB) over TLS with IAM. Inside the VPC it would need "
                "ENI permissions on every resource and a path to each API, for no isolation gained.",
            )

        scaling_topic.add_subscription(
            subscriptions.LambdaSubscription(self.function, dead_letter_queue=self.dead_letter_queue)
        )
        target = targets.LambdaFunction(self.function, dead_letter_queue=self.dead_letter_queue, retry_attempts=2)
        self.status_rule = events.Rule(
            self,
            "CellStatusRule",
            description="Cell stack status changes -> the scaler reconciles Route 53 and cleans up failed cells",
            event_pattern=events.EventPattern(
                source=["aws.cloudformation"],
                detail_type=["CloudFormation Stack Status Change"],
                resources=events.Match.prefix(
                    f"arn:{Aws.PARTITION}:cloudformation:{Aws.REGION}:{Aws.ACCOUNT_ID}:stack/{cell_stack_prefix}-"
                ),
            ),
            targets=[target],
        )
        self.reconcile_rule = events.Rule(
            self,
            "ReconcileSchedule",
            description="Every minute: the scaler deletes drained cells and repairs missed Route 53 updates",
            schedule=events.Schedule.rate(Duration.minutes(1)),
            targets=[target],
        )

        name_prefix = alarm_name_prefix or stack.stack_name
        self.dead_letter_alarm = event_alarm(
            self,
            "DeadLetterAlarm",
            alarm_name=f"{name_prefix}-scaler-DeadLetters-Warning",
            description="The cell scaler dead-lettered a message or an invocation. Runbook: docs/runbooks/scaler.md",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            topic=notification_topic,
        )
        self.errors_alarm = event_alarm(
            self,
            "ErrorsAlarm",
            alarm_name=f"{name_prefix}-scaler-Errors-Warning",
            description="The cell scaler failed (CloudFormation, Route 53 or throttling); it retries twice, "
            "then dead-letters. Runbook: docs/runbooks/scaler.md",
            metric=self.function.metric_errors(period=Duration.minutes(1), statistic="Sum"),
            topic=notification_topic,
        )


@jsii.implements(route53_targets.IAliasRecordTargetProps)
class _EvaluateTargetHealth:
    """Alias-target props with target health evaluated (a jsii interface, hence a class)."""

    @property
    def evaluate_target_health(self) -> bool:
        return True


def _cell_execution_role(scope: Construct, cell_stack_prefix: str, cell_template: s3_assets.Asset) -> iam.Role:
    """The role CloudFormation assumes for cell stacks: trusted only by CloudFormation, only from this account.

    The actions are enumerated (what one MultiAzAppTier needs). Resources stay ``*`` because the cell's
    resources get generated names and ids at creation; what bounds the role is who can use it: only
    CloudFormation can assume it, only the scaler may pass it, and only for stacks named with the cell prefix.
    IAM writes are limited to roles, policies and instance profiles named after cell stacks.
    """
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        "CellExecutionRole",
        assumed_by=iam.ServicePrincipal(
            "cloudformation.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
        ),
        description=f"CloudFormation creates and deletes cell stacks {cell_stack_prefix}-* with this role",
    )
    iam_prefix = f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}"
    iam_actions = [a for a in _CELL_ACTIONS if a.startswith("iam:")]
    policy = iam.ManagedPolicy(
        scope,
        "CellExecutionPolicy",
        roles=[role],
        statements=[
            iam.PolicyStatement(
                sid="CellResources", actions=[a for a in _CELL_ACTIONS if not a.startswith("iam:")], resources=["*"]
            ),
            iam.PolicyStatement(
                sid="CellIamResources",
                actions=iam_actions,
                resources=[
                    f"{iam_prefix}:role/{cell_stack_prefix}-*",
                    f"{iam_prefix}:policy/{cell_stack_prefix}-*",
                    f"{iam_prefix}:instance-profile/{cell_stack_prefix}-*",
                ],
            ),
            iam.PolicyStatement(
                sid="ReadTheCellTemplate",
                actions=["s3:GetObject"],
                resources=[cell_template.bucket.arn_for_objects(cell_template.s3_object_key)],
            ),
        ],
    )
    for kind in ("role", "policy", "instance-profile"):
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iam::<AWS::AccountId>:{kind}/{cell_stack_prefix}-*]",
            f"The cell's IAM {kind}s get names generated from the cell stack's name at creation; the wildcard is "
            "limited to names that start with the cell stack prefix.",
        )
    acknowledge(
        policy,
        "AwsSolutions-IAM5[Resource::*]",
        "CloudFormation creates the cell's ALB, ASG, launch template, security groups, log groups and bucket "
        "with generated names, so their ARNs are unknown beforehand. The actions are enumerated; only "
        "CloudFormation can assume the role and only the scaler may pass it, for cell stacks only.",
    )
    return role


def _validate(
    *,
    min_cells: int,
    max_cells: int,
    cell_weight: int,
    cell_stack_prefix: str,
    record_name: str,
    has_zone: bool,
    has_vpc: bool,
) -> None:
    if not 1 <= min_cells <= max_cells <= MAX_CELLS:
        raise ValueError(
            f"min_cells/max_cells: {min_cells}/{max_cells} not allowed; allowed: 1 <= min_cells <= max_cells <= "
            f"{MAX_CELLS}"
        )
    if not 0 <= cell_weight <= 255:
        raise ValueError(f"cell_weight: {cell_weight} is out of range; allowed: 0 to 255")
    if not cell_stack_prefix or len(cell_stack_prefix) > 100 or not cell_stack_prefix[0].isalpha():
        raise ValueError(
            f"cell_stack_prefix: {cell_stack_prefix!r} is not allowed; expected a stack name prefix starting with "
            "a letter, at most 100 characters"
        )
    if record_name.count(".") < 2 and not has_zone:
        raise ValueError(
            f"record_name: {record_name!r} has no parent domain for a private zone; e.g. app.opex.internal, "
            "or pass hosted_zone"
        )
    if not has_zone and not has_vpc:
        raise ValueError("vpc: required when hosted_zone is not given (a private zone is created in it)")
