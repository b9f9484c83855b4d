"""`FleetSafeHealer`: replaces a minority of unhealthy instances, never the fleet (lambda/healer)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from opex_cdk.assets import lambda_code_dir
from opex_cdk.constructs.event_alarm import event_alarm
from opex_cdk.constructs.keys import log_group_key
from opex_cdk.nag import acknowledge

RUNBOOK = "docs/runbooks/healer.md"
#: The newest Python runtime aws-cdk-lib 2.275 knows (AwsSolutions-L1 wants the latest).
RUNTIME = lambda_.Runtime.PYTHON_3_14


class FleetSafeHealer(Construct):
    """A Lambda that marks a *minority* of unhealthy targets ``Unhealthy`` in their Auto Scaling group.

    Triggered by ``trigger_alarm`` entering ALARM (EventBridge) and every ``schedule`` as a backstop.
    The decision (``lambda/healer/decision.py``) refuses fleet-wide and zonal failures, caps
    replacements per window and is notified on every action and refusal (Critical for fleet-wide and
    zonal, Warning otherwise). The function runs in the VPC, with reserved concurrency 1 (one writer of
    the rate-limit ledger), a KMS-encrypted dead-letter queue for events it could not process, and
    alarms on errors and on the dead-letter queue. Its role may write only to the one Auto Scaling group.

    Attributes: ``function``, ``role``, ``dead_letter_queue``, ``log_group``, ``error_alarm``,
    ``dead_letter_alarm``, ``alarm_rule``, ``schedule_rule``, ``security_group``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name_prefix: str,
        vpc: ec2.IVpc,
        target_group: elbv2.ITargetGroup,
        auto_scaling_group: autoscaling.IAutoScalingGroup,
        trigger_alarm: cloudwatch.IAlarm,
        critical_topic: sns.ITopic,
        warning_topic: sns.ITopic | None = None,
        topic_key: kms.IKey | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        max_unhealthy_share: float = 0.5,
        max_replacements_per_window: int = 2,
        replacement_window: Duration | None = None,
        schedule: Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        """Create the healer.

        :param name_prefix: prefix of alarm names (``{prefix}-healer-errors-Critical``).
        :param vpc: where the function runs.
        :param target_group: whose target health is read.
        :param auto_scaling_group: where instances are marked Unhealthy (the only resource it writes).
        :param trigger_alarm: the UnHealthyHostCount alarm that invokes the healer.
        :param critical_topic: fleet-wide/zonal refusals, errors and the dead-letter alarm go here.
        :param warning_topic: replacements and rate-limit refusals. Default: ``critical_topic``.
        :param topic_key: the KMS key of the topics, if encrypted. Default: none (unencrypted topics).
        :param vpc_subnets: the function's subnets. Default: the ``App`` subnet group.
        :param max_unhealthy_share: act only below this share, 0 < share <= 0.5. Default: 0.5.
        :param max_replacements_per_window: cap per window, 1-20. Default: 2.
        :param replacement_window: the rate-limit window. Default: 30 minutes.
        :param schedule: the backstop schedule. Default: every 5 minutes.
        :param log_retention: of the function's log group. Default: 90 days.
        :param removal_policy: of the log group, its key and the queue key. Default: RETAIN.
        """
        super().__init__(scope, id_)
        if not 0 < max_unhealthy_share <= 0.5:
            raise ValueError(
                f"max_unhealthy_share: {max_unhealthy_share} is not allowed; allowed: greater than 0 and at most 0.5"
            )
        if not 1 <= max_replacements_per_window <= 20:
            # The ledger is an Auto Scaling group tag (256 characters): 20 timestamps fit.
            raise ValueError(
                f"max_replacements_per_window: {max_replacements_per_window} is not allowed; allowed: 1 to 20"
            )
        replacement_window = replacement_window or Duration.minutes(30)
        schedule = schedule or Duration.minutes(5)
        warning_topic = warning_topic or critical_topic
        stack = Stack.of(self)

        self.log_key = log_group_key(self, "LogKey", removal_policy=removal_policy)
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, encryption_key=self.log_key, removal_policy=removal_policy
        )
        self.queue_key = kms.Key(
            self,
            "QueueKey",
            description="Encrypts the healer's dead-letter queue",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        # EventBridge writes undeliverable events to the queue: it needs the key too.
        self.queue_key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.queue_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Healer Lambda: HTTPS out to AWS APIs only, nothing in",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS service APIs")

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="The fleet-safe healer: reads target health, marks instances of one group Unhealthy",
        )
        publish_keys = [topic_key.key_arn] if topic_key is not None else []
        statements = [
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            ),
            _write_statement(stack, auto_scaling_group),
            iam.PolicyStatement(
                sid="ReadHealth",
                actions=[
                    "elasticloadbalancing:DescribeTargetHealth",
                    "autoscaling:DescribeAutoScalingGroups",
                    "ec2:DescribeNetworkInterfaces",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="VpcNetworkInterfaces",
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="Notify",
                actions=["sns:Publish"],
                resources=sorted({critical_topic.topic_arn, warning_topic.topic_arn}, key=str),
            ),
            iam.PolicyStatement(
                sid="DeadLetter",
                actions=["sqs:SendMessage"],
                resources=[self.dead_letter_queue.queue_arn],
            ),
            iam.PolicyStatement(
                sid="EncryptMessages",
                actions=["kms:GenerateDataKey*", "kms:Decrypt"],
                resources=[self.queue_key.key_arn, *publish_keys],
            ),
        ]
        self.policy = iam.ManagedPolicy(self, "Policy", roles=[self.role], statements=statements)
        acknowledge(
            self.policy,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "kms:GenerateDataKey* covers the GenerateDataKey variants SQS and SNS use for envelope encryption; "
            "the statement is limited to the dead-letter queue's key and the topics' key.",
        )
        acknowledge(
            self.policy,
            "AwsSolutions-IAM5[Resource::*]",
            "DescribeTargetHealth, DescribeAutoScalingGroups and the Lambda VPC network-interface calls support no "
            "resource-level permissions; the only writes (SetInstanceHealth, CreateOrUpdateTags) are limited by "
            "condition to the one Auto Scaling group (its CloudFormation stack-name and logical-id tags).",
        )

        self.function = lambda_.Function(
            self,
            "Function",
            description="Fleet-safe healer: replaces a minority of unhealthy instances, never the fleet",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            code=lambda_.Code.from_asset(str(lambda_code_dir("healer"))),
            handler="index.handler",
            timeout=Duration.seconds(60),
            memory_size=256,
            reserved_concurrent_executions=1,
            role=self.role.without_policy_updates(),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=2,
            vpc=vpc,
            vpc_subnets=vpc_subnets or ec2.SubnetSelection(subnet_group_name="App"),
            security_groups=[self.security_group],
            environment={
                "TARGET_GROUP_ARN": target_group.target_group_arn,
                "AUTO_SCALING_GROUP_NAME": auto_scaling_group.auto_scaling_group_name,
                "CRITICAL_TOPIC_ARN": critical_topic.topic_arn,
                "WARNING_TOPIC_ARN": warning_topic.topic_arn,
                "MAX_UNHEALTHY_SHARE": str(max_unhealthy_share),
                "MAX_REPLACEMENTS_PER_WINDOW": str(max_replacements_per_window),
                "REPLACEMENT_WINDOW_MINUTES": str(int(replacement_window.to_minutes())),
            },
        )
        self.function.node.add_dependency(self.policy)

        target = targets.LambdaFunction(
            self.function, dead_letter_queue=self.dead_letter_queue, retry_attempts=2, max_event_age=Duration.hours(1)
        )
        self.alarm_rule = events.Rule(
            self,
            "AlarmRule",
            description="Run the healer when the unhealthy-hosts alarm fires",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=["CloudWatch Alarm State Change"],
                resources=[trigger_alarm.alarm_arn],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[target],
        )
        self.schedule_rule = events.Rule(
            self,
            "ScheduleRule",
            description="Run the healer periodically as a backstop to the alarm",
            schedule=events.Schedule.rate(schedule),
            targets=[target],
        )

        self.error_alarm = event_alarm(
            self,
            "ErrorAlarm",
            alarm_name=f"{name_prefix}-healer-errors-Critical",
            description=f"The fleet-safe healer failed: unhealthy instances may not be replaced. Runbook: {RUNBOOK}",
            metric=self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
            topic=critical_topic,
            notify_ok=True,
        )
        self.dead_letter_alarm = event_alarm(
            self,
            "DeadLetterAlarm",
            alarm_name=f"{name_prefix}-healer-dlq-Critical",
            description=f"A healer trigger was not processed (dead-letter queue not empty). Runbook: {RUNBOOK}",
            metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            topic=critical_topic,
            notify_ok=True,
        )


def _write_statement(stack: Stack, group: autoscaling.IAutoScalingGroup) -> iam.PolicyStatement:
    """The healer's only writes, limited to the one group.

    Auto Scaling group ARNs carry a UUID that is unknown at synth, so a group created by CloudFormation
    is matched by the tags CloudFormation puts on it (its stack and logical id). An imported group is
    matched by an ARN with a wildcard UUID (acknowledge that finding where you import it).
    """
    actions = ["autoscaling:SetInstanceHealth", "autoscaling:CreateOrUpdateTags"]
    cfn = group.node.default_child if isinstance(group, autoscaling.AutoScalingGroup) else None
    if isinstance(cfn, autoscaling.CfnAutoScalingGroup):
        owner = Stack.of(cfn)
        return iam.PolicyStatement(
            sid="MarkInstancesOfTheOneGroup",
            actions=actions,
            resources=["*"],
            conditions={
                "StringEquals": {
                    "autoscaling:ResourceTag/aws:cloudformation:stack-name": owner.stack_name,
                    "autoscaling:ResourceTag/aws:cloudformation:logical-id": owner.get_logical_id(cfn),
                }
            },
        )
    return iam.PolicyStatement(
        sid="MarkInstancesOfTheOneGroup",
        actions=actions,
        resources=[
            f"arn:{stack.partition}:autoscaling:{stack.region}:{stack.account}:autoScalingGroup:*:"
            f"autoScalingGroupName/{group.auto_scaling_group_name}"
        ],
    )
