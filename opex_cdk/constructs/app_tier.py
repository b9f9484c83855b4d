"""`MultiAzAppTier`: load balancer, deep-health-checked target group and Auto Scaling group over every AZ."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from opex_cdk.assets import webapp_dir
from opex_cdk.config import (
    DEREGISTRATION_DELAY_RANGE,
    HEALTH_CHECK_INTERVAL_RANGE,
    HEALTH_CHECK_THRESHOLD_RANGE,
    HEALTH_CHECK_TIMEOUT_RANGE,
    HealthCheckConfig,
)
from opex_cdk.constructs.keys import log_group_key
from opex_cdk.constructs.user_data import (
    HOST_METRICS_NAMESPACE,
    ServiceInstall,
    install_commands,
    prepare_commands,
)
from opex_cdk.nag import acknowledge

_ALL_PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")
_SSM_CORE = "AmazonSSMManagedInstanceCore"


class MultiAzAppTier(Construct):
    """The app tier ("cell"): an internet-facing ALB in front of an Auto Scaling group over every AZ.

    - **Load balancer** in the public subnets of every AZ; access logs to an SSE-S3, SSL-only,
      versioned bucket whose objects expire; invalid header fields dropped; deletion protection
      (``deletion_protection``); HTTPS (TLS 1.2+/1.3 policy) with HTTP -> HTTPS redirect when
      ``certificate_arn`` is given, plain HTTP otherwise; a WAF web ACL when ``web_acl_arn`` is given.
    - **Target group** with the deep health check (``/healthcheck``: flag + DynamoDB test item).
      The defaults (interval 5 s, timeout 2 s, 2 failures) take a bad instance out of rotation in
      about 10-12 s, against about 45 s in the workshop. When every target fails, the ALB fails open.
    - **Auto Scaling group** in the private subnets of every AZ, at least one instance per AZ, from a
      launch template: Amazon Linux 2023, IMDSv2 only, encrypted gp3 root volume, no public IP,
      detailed monitoring. Target tracking on requests per target and on CPU. A launch-template
      change rolls the fleet one instance at a time, each new instance signalling CloudFormation only
      once the service answers.

      The group uses the **EC2 health-check type** (with a grace period), deliberately not ELB: with a
      deep health check, an ELB type would make the group terminate *every* instance when the shared
      dependency fails (all fail the check at once), turning a dependency outage into a fleet
      outage. Replacing one bad instance among healthy ones is the job of the fleet-safe healer
      (a later construct), which acts only when the unhealthy share is a minority.
    - **Service**: ``webapp/`` is shipped as an S3 asset; user data (see
      :mod:`opex_cdk.constructs.user_data`) installs it into a venv and runs it under systemd as an
      unprivileged user; the CloudWatch agent ships its log file and EMF metrics (log groups
      ``service_log_group`` / ``metrics_log_group``) and memory/disk use.
    - **Roles**: ``instance_role`` may ``dynamodb:GetItem`` on the one table, ``ssm:GetParameter`` on
      the one flag, read the asset, write its two log groups, plus SSM managed-instance access.
      ``fault_role`` is identical without DynamoDB access (the workshop's role swap); each has an
      instance profile (``instance_profile`` / ``fault_instance_profile``) so levers can swap them.

    Nothing is given a physical name, so the construct can be instantiated again as another cell
    (``cell_id`` is tagged on every resource as ``opex:cell``).

    ``existing_load_balancer`` / ``existing_target_group`` / ``existing_auto_scaling_group`` adopt
    resources you own (the construct then creates no access-log bucket / target group / group and
    attaches no scaling policies to an adopted group); ``*_props`` override our defaults instead.

    Attributes: ``load_balancer``, ``listener`` (serving traffic), ``redirect_listener`` (or None),
    ``target_group``, ``auto_scaling_group``, ``launch_template``, ``instance_role``, ``fault_role``,
    ``instance_profile``, ``fault_instance_profile``, ``access_log_bucket``,
    ``load_balancer_security_group``, ``instance_security_group``, ``service_log_group``,
    ``metrics_log_group``, ``webapp_asset``, ``site_url``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        vpc: ec2.IVpc,
        table: dynamodb.ITable,
        flag_parameter: ssm.IStringParameter,
        cell_id: str = "base",
        instance_type: str = "t3.micro",
        min_capacity: int = 3,
        desired_capacity: int | None = None,
        max_capacity: int = 6,
        service_port: int = 8080,
        health_check: HealthCheckConfig | None = None,
        deregistration_delay: Duration | None = None,
        health_check_grace: Duration | None = None,
        target_requests_per_instance_per_minute: int = 300,
        target_cpu_percent: int = 60,
        certificate_arn: str | None = None,
        web_acl_arn: str | None = None,
        deletion_protection: bool = True,
        access_log_expiration: Duration | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        root_volume_gib: int = 16,
        notification_topic: sns.ITopic | None = None,
        load_balancer_props: elbv2.ApplicationLoadBalancerProps | None = None,
        existing_load_balancer: elbv2.ApplicationLoadBalancer | None = None,
        target_group_props: elbv2.ApplicationTargetGroupProps | None = None,
        existing_target_group: elbv2.ApplicationTargetGroup | None = None,
        auto_scaling_group_props: autoscaling.AutoScalingGroupProps | None = None,
        existing_auto_scaling_group: autoscaling.AutoScalingGroup | None = None,
    ) -> None:
        """Create the tier.

        :param vpc: the VPC; the ALB goes into its public subnets, instances into its private ones.
        :param table: the dependency's table (the instance role may GetItem on it).
        :param flag_parameter: the emergency-lever parameter (the instance role may GetParameter on it).
        :param cell_id: tag value ``opex:cell`` identifying this copy of the tier. Default: ``base``.
        :param instance_type: EC2 instance type. Default: ``t3.micro``.
        :param min_capacity: instances at least; at least one per AZ. Default: 3.
        :param desired_capacity: instances to start with; left unset when equal to ``min_capacity``
            so a deployment never shrinks a fleet that scaled out. Default: ``min_capacity``.
        :param max_capacity: instances at most. Default: 6.
        :param service_port: port the service listens on and the target group sends to. Default: 8080.
        :param health_check: the target group's health check. Default: ``HealthCheckConfig()``
            (``/healthcheck``, 5 s interval, 2 s timeout, 2/2 thresholds).
        :param deregistration_delay: connection draining on deregistration, 0-3600 s. Default: 10 s.
        :param health_check_grace: EC2 health-check grace period after launch. Default: 120 s.
        :param target_requests_per_instance_per_minute: target-tracking goal for ALB requests per
            target. Default: 300.
        :param target_cpu_percent: target-tracking goal for average CPU, 1-100. Default: 60.
        :param certificate_arn: ACM certificate: HTTPS on 443 + redirect from 80. Default: plain HTTP on 80.
        :param web_acl_arn: WAFv2 web ACL (REGIONAL) to associate. Default: none.
        :param deletion_protection: the ALB's deletion protection. Default: True.
        :param access_log_expiration: how long ALB access logs are kept. Default: 90 days.
        :param log_retention: retention of the service and EMF log groups. Default: 90 days.
        :param removal_policy: of the log groups and their key. Default: RETAIN. (The access-log
            bucket is always retained: it is audit evidence; its objects expire.)
        :param root_volume_gib: size of the encrypted gp3 root volume. Default: 16.
        :param notification_topic: ASG launch/terminate/error notifications go here. Default: none.
        :param load_balancer_props: overrides of the ALB defaults (not with ``existing_load_balancer``).
        :param existing_load_balancer: use this ALB; listeners are added to it.
        :param target_group_props: overrides of the target group defaults (not with ``existing_target_group``).
        :param existing_target_group: register the group's instances in this target group.
        :param auto_scaling_group_props: overrides of the ASG defaults (not with ``existing_auto_scaling_group``).
        :param existing_auto_scaling_group: use this group (with its own launch template and roles).
        """
        super().__init__(scope, id_)
        _exclusive(load_balancer_props, existing_load_balancer, "load_balancer")
        _exclusive(target_group_props, existing_target_group, "target_group")
        _exclusive(auto_scaling_group_props, existing_auto_scaling_group, "auto_scaling_group")
        health = health_check or HealthCheckConfig()
        deregistration_delay = deregistration_delay or Duration.seconds(10)
        health_check_grace = health_check_grace or Duration.seconds(120)
        _validate(
            health=health,
            deregistration_delay_seconds=deregistration_delay.to_seconds(),
            min_capacity=min_capacity,
            desired_capacity=min_capacity if desired_capacity is None else desired_capacity,
            max_capacity=max_capacity,
            service_port=service_port,
            target_cpu_percent=target_cpu_percent,
            target_requests=target_requests_per_instance_per_minute,
        )
        azs = len(vpc.availability_zones)
        if min_capacity < azs:
            raise ValueError(
                f"min_capacity: {min_capacity} leaves an AZ without an instance; allowed: at least the VPC's "
                f"AZ count ({azs})"
            )
        stack = Stack.of(self)
        Tags.of(self).add("opex:cell", cell_id)
        self.cell_id = cell_id
        self.service_port = service_port
        self.health_check = health

        # ---- Security groups: internet -> ALB -> instances (service port only) --------------------------
        self.load_balancer_security_group: ec2.SecurityGroup | None = None
        if existing_load_balancer is None:
            self.load_balancer_security_group = ec2.SecurityGroup(
                self,
                "LoadBalancerSecurityGroup",
                vpc=vpc,
                description=f"Internet-facing load balancer of cell {cell_id}",
                allow_all_outbound=False,
            )
            for pack in ("AwsSolutions",):
                acknowledge(
                    self.load_balancer_security_group,
                    f"{pack}-EC23",
                    "The internet-facing load balancer is the public entry point: it must accept HTTP(S) "
                    "from anywhere, on the listener ports only; it reaches instances on the service port only.",
                )
        self.instance_security_group = ec2.SecurityGroup(
            self,
            "InstanceSecurityGroup",
            vpc=vpc,
            description=f"App instances of cell {cell_id}: service port from the load balancer only",
            allow_all_outbound=False,
        )
        # Out: HTTPS only (AWS APIs via endpoints, OS repositories via the S3 endpoint, PyPI via NAT).
        self.instance_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs, OS repositories and PyPI"
        )

        # ---- Load balancer + access logs ------------------------------------------------------------------
        self.access_log_bucket: s3.Bucket | None = None
        if existing_load_balancer is not None:
            self.load_balancer: elbv2.ApplicationLoadBalancer = existing_load_balancer
        else:
            self.access_log_bucket = self._access_log_bucket(access_log_expiration or Duration.days(90))
            lb_defaults: dict[str, Any] = {
                "vpc": vpc,
                "internet_facing": True,
                "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
                "security_group": self.load_balancer_security_group,
                "drop_invalid_header_fields": True,
                "deletion_protection": deletion_protection,
            }
            overrides = dict(load_balancer_props._values) if load_balancer_props is not None else {}
            self.load_balancer = elbv2.ApplicationLoadBalancer(self, "LoadBalancer", **{**lb_defaults, **overrides})
            self.load_balancer.log_access_logs(self.access_log_bucket)
            self._acknowledge_load_balancer(
                deletion_protection=bool(overrides.get("deletion_protection", deletion_protection)),
                waf=web_acl_arn is not None,
            )
        if web_acl_arn is not None:
            wafv2.CfnWebACLAssociation(
                self, "WebAclAssociation", resource_arn=self.load_balancer.load_balancer_arn, web_acl_arn=web_acl_arn
            )

        # ---- Target group with the deep health check ------------------------------------------------------
        if existing_target_group is not None:
            self.target_group: elbv2.ApplicationTargetGroup = existing_target_group
        else:
            tg_defaults: dict[str, Any] = {
                "vpc": vpc,
                "port": service_port,
                "protocol": elbv2.ApplicationProtocol.HTTP,
                "target_type": elbv2.TargetType.INSTANCE,
                "deregistration_delay": deregistration_delay,
                "health_check": elbv2.HealthCheck(
                    path=health.path,
                    protocol=elbv2.Protocol.HTTP,
                    port="traffic-port",
                    interval=Duration.seconds(health.interval_seconds),
                    timeout=Duration.seconds(health.timeout_seconds),
                    healthy_threshold_count=health.healthy_threshold,
                    unhealthy_threshold_count=health.unhealthy_threshold,
                    healthy_http_codes="200",
                ),
            }
            overrides = dict(target_group_props._values) if target_group_props is not None else {}
            self.target_group = elbv2.ApplicationTargetGroup(self, "TargetGroup", **{**tg_defaults, **overrides})

        # ---- Listeners -------------------------------------------------------------------------------------
        self.redirect_listener: elbv2.ApplicationListener | None = None
        if certificate_arn is not None:
            self.listener = self.load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                default_target_groups=[self.target_group],
                open=True,
            )
            self.redirect_listener = self.load_balancer.add_redirect(source_port=80, target_port=443)
            scheme = "https"
        else:
            self.listener = self.load_balancer.add_listener(
                "Http",
                port=80,
                protocol=elbv2.ApplicationProtocol.HTTP,
                default_target_groups=[self.target_group],
                open=True,
            )
            for pack in _ALL_PACKS:
                for rule in ("ALBHttpToHttpsRedirection", "ELBv2ACMCertificateRequired"):
                    acknowledge(
                        self.listener,
                        f"{pack}-{rule}",
                        "No certificate is configured for this environment (app_tier.certificate_arn), so the "
                        "listener is plain HTTP; the page carries no credentials or personal data. Setting "
                        "a certificate switches to HTTPS with an HTTP->HTTPS redirect.",
                    )
            scheme = "http"
        self.site_url = f"{scheme}://{self.load_balancer.load_balancer_dns_name}"

        # ---- Logs, code, roles ---------------------------------------------------------------------------
        log_key = log_group_key(self, "LogKey", removal_policy=removal_policy)
        self.service_log_group = logs.LogGroup(
            self, "ServiceLogs", retention=log_retention, encryption_key=log_key, removal_policy=removal_policy
        )
        self.metrics_log_group = logs.LogGroup(
            self, "MetricsLogs", retention=log_retention, encryption_key=log_key, removal_policy=removal_policy
        )
        self.webapp_asset = s3_assets.Asset(
            self, "WebappAsset", path=str(webapp_dir()), exclude=["__pycache__", "*.pyc", "tests"]
        )
        self.instance_role, self.fault_role = self._roles(table, flag_parameter)
        # Profiles hold the roles immutable: CDK's own grants (e.g. the ASG's cloudformation:SignalResource)
        # would otherwise add inline policies; the managed policies above already carry them.
        self.instance_profile = iam.InstanceProfile(
            self, "InstanceProfile", role=self.instance_role.without_policy_updates()
        )
        self.fault_instance_profile = iam.InstanceProfile(
            self, "FaultInstanceProfile", role=self.fault_role.without_policy_updates()
        )

        # ---- Launch template + Auto Scaling group ---------------------------------------------------------
        self.launch_template: ec2.LaunchTemplate | None = None
        if existing_auto_scaling_group is not None:
            self.auto_scaling_group: autoscaling.AutoScalingGroup = existing_auto_scaling_group
        else:
            install = ServiceInstall(
                region=stack.region,
                table_name=table.table_name,
                flag_parameter_name=flag_parameter.parameter_name,
                service_port=service_port,
                log_group_name=self.service_log_group.log_group_name,
                metrics_log_group_name=self.metrics_log_group.log_group_name,
            )
            user_data = ec2.UserData.for_linux()
            user_data.add_commands(*prepare_commands(install))
            user_data.add_s3_download_command(
                bucket=self.webapp_asset.bucket,
                bucket_key=self.webapp_asset.s3_object_key,
                local_file=install.archive_path,
                region=stack.region,
            )
            user_data.add_commands(*install_commands(install))
            self.launch_template = ec2.LaunchTemplate(
                self,
                "LaunchTemplate",
                machine_image=ec2.MachineImage.latest_amazon_linux2023(),
                instance_type=ec2.InstanceType(instance_type),
                instance_profile=self.instance_profile,
                security_group=self.instance_security_group,
                user_data=user_data,
                require_imdsv2=True,
                http_put_response_hop_limit=1,
                detailed_monitoring=True,
                associate_public_ip_address=False,
                block_devices=[
                    ec2.BlockDevice(
                        device_name="/dev/xvda",
                        volume=ec2.BlockDeviceVolume.ebs(
                            root_volume_gib,
                            volume_type=ec2.EbsDeviceVolumeType.GP3,
                            encrypted=True,
                            delete_on_termination=True,
                        ),
                    )
                ],
            )
            signal_timeout = Duration.minutes(15)
            asg_defaults: dict[str, Any] = {
                "vpc": vpc,
                "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                "launch_template": self.launch_template,
                "min_capacity": min_capacity,
                "max_capacity": max_capacity,
                "health_checks": autoscaling.HealthChecks.ec2(grace_period=health_check_grace),
                "default_instance_warmup": health_check_grace,
                "group_metrics": [autoscaling.GroupMetrics.all()],
                "signals": autoscaling.Signals.wait_for_min_capacity(timeout=signal_timeout),
                "update_policy": autoscaling.UpdatePolicy.rolling_update(
                    max_batch_size=1,
                    # Keep the whole fleet serving while new instances come up (CloudFormation adds first).
                    min_instances_in_service=min(min_capacity, max_capacity - 1),
                    pause_time=signal_timeout,
                    wait_on_resource_signals=True,
                ),
            }
            if desired_capacity is not None and desired_capacity != min_capacity:
                asg_defaults["desired_capacity"] = desired_capacity
            if notification_topic is not None:
                asg_defaults["notifications"] = [autoscaling.NotificationConfiguration(topic=notification_topic)]
            overrides = dict(auto_scaling_group_props._values) if auto_scaling_group_props is not None else {}
            asg = autoscaling.AutoScalingGroup(self, "AutoScalingGroup", **{**asg_defaults, **overrides})
            self.auto_scaling_group = asg
            # The instance signals only once its service answers (the trap runs on exit of the script).
            user_data.add_signal_on_exit_command(asg)
            self._acknowledge_auto_scaling_group(asg, notifications=notification_topic is not None)
        self.target_group.add_target(self.auto_scaling_group)
        if existing_auto_scaling_group is None:
            self.auto_scaling_group.scale_on_request_count(
                "RequestsPerTarget", target_requests_per_minute=target_requests_per_instance_per_minute
            )
            self.auto_scaling_group.scale_on_cpu_utilization("Cpu", target_utilization_percent=target_cpu_percent)

    # ------------------------------------------------------------------------------------------------------

    def _access_log_bucket(self, expiration: Duration) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            # ALB access logs can only be written with SSE-S3 (Elastic Load Balancing does not support SSE-KMS).
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=expiration,
                    noncurrent_version_expiration=Duration.days(7),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This bucket receives the load balancer's access logs; logging access to the log bucket "
            "would need yet another log bucket. Reads of it are recorded by CloudTrail.",
        )
        for pack in _ALL_PACKS:
            acknowledge(
                bucket,
                f"{pack}-S3BucketLoggingEnabled",
                "This bucket receives the load balancer's access logs; logging access to the log bucket "
                "would need yet another log bucket. Reads of it are recorded by CloudTrail.",
            )
            acknowledge(
                bucket,
                f"{pack}-S3BucketReplicationEnabled",
                "Access logs are diagnostic data with a 90-day life; losing a region's logs loses no "
                "customer data, so cross-region replication would add cost and no resilience.",
            )
            acknowledge(
                bucket,
                f"{pack}-S3DefaultEncryptionKMS",
                "Elastic Load Balancing writes access logs only to buckets encrypted with SSE-S3; "
                "SSE-KMS would stop log delivery. The objects are still encrypted at rest (AES-256).",
            )
        return bucket

    def _acknowledge_load_balancer(self, *, deletion_protection: bool, waf: bool) -> None:
        lb = self.load_balancer
        if not deletion_protection:
            for pack in ("NIST.800.53.R5",):
                acknowledge(
                    lb,
                    f"{pack}-ELBDeletionProtectionEnabled",
                    "Deletion protection is off by configuration (non-production cells are torn down "
                    "and rebuilt); production turns it on.",
                )
        if not waf:
            for pack in ("NIST.800.53.R5", "PCI.DSS.321"):
                acknowledge(
                    lb,
                    f"{pack}-ALBWAFEnabled",
                    "No web ACL is configured for this environment (app_tier.web_acl_arn); the service "
                    "answers GET only, bounds pending connections and sheds load itself. Setting a web ACL "
                    "associates it.",
                )

    def _acknowledge_auto_scaling_group(self, asg: autoscaling.AutoScalingGroup, *, notifications: bool) -> None:
        reason = (
            "EC2 health-check type on purpose: with the deep health check, ELB type would terminate every "
            "instance when the shared dependency fails, turning a dependency outage into a fleet outage. "
            "The ALB still routes around a bad instance; the fleet-safe healer replaces a minority."
        )
        for pack in _ALL_PACKS:
            acknowledge(asg, f"{pack}-AutoScalingGroupELBHealthCheckRequired", reason)
        if not notifications:
            acknowledge(
                asg,
                "AwsSolutions-AS3",
                "No notification topic was given to this cell; scaling activity still reaches CloudWatch "
                "(group metrics) and CloudTrail. Passing notification_topic wires every event type.",
            )

    def _roles(self, table: dynamodb.ITable, flag_parameter: ssm.IStringParameter) -> tuple[iam.Role, iam.Role]:
        """The instance role and the fault role: identical but for DynamoDB access.

        Customer-managed policies only (no inline ones): a shared base policy on both roles and the
        DynamoDB read policy on the instance role alone.
        """
        instance_role = iam.Role(
            self,
            "InstanceRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="App instances: read the recommendation table and the flag, ship logs and metrics",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(_SSM_CORE)],
        )
        fault_role = iam.Role(
            self,
            "FaultRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="The instance role without DynamoDB access: swapped onto one instance to inject a fault",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(_SSM_CORE)],
        )
        asset = self.webapp_asset
        base = iam.ManagedPolicy(
            self,
            "InstancePolicy",
            roles=[instance_role, fault_role],
            statements=[
                iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[flag_parameter.parameter_arn]),
                # Boot signals success or failure to this stack's rolling update.
                iam.PolicyStatement(actions=["cloudformation:SignalResource"], resources=[Stack.of(self).stack_id]),
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[asset.bucket.arn_for_objects(asset.s3_object_key)],
                ),
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[self.service_log_group.log_group_arn, self.metrics_log_group.log_group_arn],
                ),
                # PutMetricData has no resource-level permissions; the namespace condition scopes it.
                iam.PolicyStatement(
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringEquals": {"cloudwatch:namespace": HOST_METRICS_NAMESPACE}},
                ),
                # The agent resolves the AutoScalingGroupName dimension and volume ids (no resource-level form).
                iam.PolicyStatement(actions=["ec2:DescribeTags", "ec2:DescribeVolumes"], resources=["*"]),
            ],
        )
        acknowledge(
            base,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData (limited to the agent's namespace by condition), ec2:DescribeTags "
            "and ec2:DescribeVolumes support no resource-level permissions; every other statement names "
            "its one resource.",
        )
        iam.ManagedPolicy(
            self,
            "DependencyReadPolicy",
            roles=[instance_role],
            statements=[iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[table.table_arn])],
        )
        for role in (instance_role, fault_role):
            acknowledge(
                role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{_SSM_CORE}]",
                "AWS-maintained policy for Systems Manager (Session Manager, Run Command, FIS SSM actions): "
                "its APIs accept no resource scoping and AWS updates it with the agent.",
            )
        return instance_role, fault_role


def _exclusive(props: object, existing: object, name: str) -> None:
    if props is not None and existing is not None:
        raise ValueError(f"Either provide {name}_props or existing_{name}, but not both.")


def _within(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is out of range; allowed: {low} to {high}")


def _validate(
    *,
    health: HealthCheckConfig,
    deregistration_delay_seconds: float,
    min_capacity: int,
    desired_capacity: int,
    max_capacity: int,
    service_port: int,
    target_cpu_percent: int,
    target_requests: int,
) -> None:
    """AWS's limits (and the tier's own rules), checked before any resource exists."""
    _within("health_check.interval_seconds", health.interval_seconds, *HEALTH_CHECK_INTERVAL_RANGE)
    _within("health_check.timeout_seconds", health.timeout_seconds, *HEALTH_CHECK_TIMEOUT_RANGE)
    if health.timeout_seconds >= health.interval_seconds:
        raise ValueError(
            f"health_check.timeout_seconds: {health.timeout_seconds} is not allowed; allowed: less than "
            f"interval_seconds ({health.interval_seconds})"
        )
    _within("health_check.healthy_threshold", health.healthy_threshold, *HEALTH_CHECK_THRESHOLD_RANGE)
    _within("health_check.unhealthy_threshold", health.unhealthy_threshold, *HEALTH_CHECK_THRESHOLD_RANGE)
    if not health.path.startswith("/"):
        raise ValueError(f"health_check.path: '{health.path}' is not allowed; expected a path such as /healthcheck")
    _within("deregistration_delay", deregistration_delay_seconds, *DEREGISTRATION_DELAY_RANGE)
    if not 1 <= min_capacity <= desired_capacity <= max_capacity:
        raise ValueError(
            f"capacity: min {min_capacity}, desired {desired_capacity}, max {max_capacity} is not allowed; "
            "allowed: 1 <= min <= desired <= max"
        )
    if max_capacity < 2:
        raise ValueError(f"max_capacity: {max_capacity} is not allowed; allowed: at least 2 (rolling updates)")
    _within("service_port", service_port, 1, 65535)
    _within("target_cpu_percent", target_cpu_percent, 1, 100)
    _within("target_requests_per_instance_per_minute", target_requests, 1, 1_000_000)
