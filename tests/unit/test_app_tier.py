"""MultiAzAppTier, its user data and the App stack (dev and prod as synthesized, plus small construct stacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from aws_cdk.assertions import Match, Template

from opex_cdk.assets import webapp_dir
from opex_cdk.config import ConfigError, HealthCheckConfig, load_environment
from opex_cdk.constructs import MultiAzAppTier
from opex_cdk.constructs.user_data import (
    EMF_ENDPOINT,
    ServiceInstall,
    cloudwatch_agent_config,
    install_commands,
    prepare_commands,
    systemd_unit,
)
from opex_cdk.project_context import load_project_context

CERT = "arn:aws:acm:us-east-2:111111111111:certificate/abc"
WEB_ACL = "arn:aws:wafv2:us-east-2:111111111111:regional/webacl/acl/123"


def _app(synthesized, env: str = "dev") -> Template:
    e = synthesized[env]
    return e.template(e.stacks.app)


def _user_data(template: Template) -> str:
    """The launch template's user data with every CloudFormation token shown as <TOKEN>."""
    lt = next(iter(template.find_resources("AWS::EC2::LaunchTemplate").values()))
    parts = lt["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Join"][1]
    return "".join(p if isinstance(p, str) else "<TOKEN>" for p in parts)


# ---- Load balancer -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "protected"), [("dev", "false"), ("prod", "true")])
def test_load_balancer_in_three_public_subnets_with_logs_and_header_hygiene(synthesized, env, protected) -> None:
    template = _app(synthesized, env)
    lb = next(iter(template.find_resources("AWS::ElasticLoadBalancingV2::LoadBalancer").values()))["Properties"]
    assert lb["Scheme"] == "internet-facing" and lb["Type"] == "application"
    assert len(lb["Subnets"]) == 3 and all("PublicSubnet" in json.dumps(s) for s in lb["Subnets"])
    attributes = {a["Key"]: a["Value"] for a in lb["LoadBalancerAttributes"]}
    assert attributes["deletion_protection.enabled"] == protected
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"


def test_access_log_bucket_encrypted_ssl_only_expiring(synthesized) -> None:
    template = _app(synthesized)
    template.has_resource(
        "AWS::S3::Bucket",
        {
            "DeletionPolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "LifecycleConfiguration": {
                        "Rules": [Match.object_like({"ExpirationInDays": 90, "Status": "Enabled"})]
                    },
                    "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True}),
                }
            ),
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )


def test_plain_http_listener_without_certificate(synthesized) -> None:
    template = _app(synthesized)
    template.resource_count_is("AWS::ElasticLoadBalancingV2::Listener", 1)
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Port": 80, "Protocol": "HTTP", "DefaultActions": [Match.object_like({"Type": "forward"})]},
    )
    template.resource_count_is("AWS::WAFv2::WebACLAssociation", 0)


# ---- Target group --------------------------------------------------------------------------------------------


def test_target_group_deep_health_check_timings(synthesized) -> None:
    _app(synthesized).has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Port": 8080,
            "Protocol": "HTTP",
            "TargetType": "instance",
            "HealthCheckPath": "/healthcheck",
            "HealthCheckIntervalSeconds": 5,
            "HealthCheckTimeoutSeconds": 2,
            "HealthyThresholdCount": 2,
            "UnhealthyThresholdCount": 2,
            "Matcher": {"HttpCode": "200"},
            "TargetGroupAttributes": Match.array_with([{"Key": "deregistration_delay.timeout_seconds", "Value": "10"}]),
        },
    )
    health = synthesized["dev"].config.app_tier.health_check
    assert health.detection_seconds == 12  # 2 x 5 s + 2 s, against ~45 s in the workshop


# ---- Auto Scaling group + launch template -------------------------------------------------------------------


def test_asg_over_three_private_subnets_with_ec2_health_checks_and_rolling_updates(synthesized) -> None:
    template = _app(synthesized)
    asg = next(iter(template.find_resources("AWS::AutoScaling::AutoScalingGroup").values()))
    props = asg["Properties"]
    assert (props["MinSize"], props["MaxSize"]) == ("3", "6")
    assert "DesiredCapacity" not in props  # desired == min: a deploy never shrinks a scaled-out fleet
    assert props["HealthCheckType"] == "EC2" and props["HealthCheckGracePeriod"] == 120
    assert len(props["VPCZoneIdentifier"]) == 3 and all(
        "AppSubnet" in json.dumps(s) for s in props["VPCZoneIdentifier"]
    )
    assert len(props["TargetGroupARNs"]) == 1
    rolling = asg["UpdatePolicy"]["AutoScalingRollingUpdate"]
    assert rolling["MaxBatchSize"] == 1 and rolling["MinInstancesInService"] == 3
    assert rolling["WaitOnResourceSignals"] is True
    assert asg["CreationPolicy"]["ResourceSignal"]["Count"] == 3


def test_launch_template_hardening(synthesized) -> None:
    _app(synthesized).has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": Match.object_like(
                {
                    "InstanceType": "t3.micro",
                    "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
                    "Monitoring": {"Enabled": True},
                    "BlockDeviceMappings": [
                        {
                            "DeviceName": "/dev/xvda",
                            "Ebs": Match.object_like({"Encrypted": True, "VolumeType": "gp3"}),
                        }
                    ],
                    "NetworkInterfaces": [Match.object_like({"AssociatePublicIpAddress": False})],
                    "ImageId": {"Ref": Match.string_like_regexp("al2023")},
                }
            )
        },
    )


def test_target_tracking_on_requests_and_cpu(synthesized) -> None:
    """Targets come from config: dev sets CPU to 55 %, requests keep the default 300 per instance."""
    template = _app(synthesized)
    template.has_resource_properties(
        "AWS::AutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": Match.object_like(
                        {"PredefinedMetricType": "ALBRequestCountPerTarget"}
                    ),
                    "TargetValue": 300,
                }
            ),
        },
    )
    template.has_resource_properties(
        "AWS::AutoScaling::ScalingPolicy",
        {
            "TargetTrackingConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"},
                    "TargetValue": 55,
                }
            )
        },
    )


def test_security_groups_chain_internet_to_alb_to_service_port(synthesized) -> None:
    template = _app(synthesized)
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("Internet-facing"),
            "SecurityGroupIngress": [Match.object_like({"CidrIp": "0.0.0.0/0", "FromPort": 80, "ToPort": 80})],
        },
    )
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress", {"FromPort": 8080, "ToPort": 8080, "IpProtocol": "tcp"}
    )
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("App instances"),
            "SecurityGroupEgress": [Match.object_like({"CidrIp": "0.0.0.0/0", "FromPort": 443, "ToPort": 443})],
        },
    )


# ---- Roles -----------------------------------------------------------------------------------------------------


def test_instance_role_least_privilege_and_fault_role_without_dynamodb(synthesized) -> None:
    template = _app(synthesized)
    template.resource_count_is("AWS::IAM::Policy", 0)  # no inline policies at all
    template.resource_count_is("AWS::IAM::InstanceProfile", 2)
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    by_id = {k: v["Properties"] for k, v in policies.items()}
    read = next(p for k, p in by_id.items() if k.startswith("AppTierDependencyReadPolicy"))
    base = next(p for k, p in by_id.items() if k.startswith("AppTierInstancePolicy"))
    assert [s["Action"] for s in read["PolicyDocument"]["Statement"]] == ["dynamodb:GetItem"]
    assert len(read["Roles"]) == 1
    assert "InstanceRole" in json.dumps(read["Roles"]) and "FaultRole" not in json.dumps(read["Roles"])
    assert "InstanceRole" in json.dumps(base["Roles"]) and "FaultRole" in json.dumps(base["Roles"])
    actions = {a for s in base["PolicyDocument"]["Statement"] for a in _list(s["Action"])}
    assert "ssm:GetParameter" in actions and not any(a.startswith("dynamodb:") for a in actions)
    assert not any(a.endswith(":*") for a in actions)
    ssm_statement = next(s for s in base["PolicyDocument"]["Statement"] if s["Action"] == "ssm:GetParameter")
    assert "*" not in json.dumps(ssm_statement["Resource"])
    for role in template.find_resources("AWS::IAM::Role").values():
        assert "AmazonSSMManagedInstanceCore" in json.dumps(role["Properties"]["ManagedPolicyArns"])


def _list(value) -> list:
    return value if isinstance(value, list) else [value]


# ---- Service delivery: asset + user data ----------------------------------------------------------------------


def test_user_data_installs_and_starts_the_service(synthesized) -> None:
    script = _user_data(_app(synthesized))
    assert script.startswith("#!/bin/bash")
    assert "trap exitTrap EXIT" in script and "/opt/aws/bin/cfn-signal" in script
    assert "aws s3 cp 's3://" in script and "/opt/recommendation/webapp.zip" in script
    assert "python3.11 -m venv /opt/recommendation/venv" in script
    assert "ExecStart=/opt/recommendation/venv/bin/python -m webapp --host 0.0.0.0 --port 8080" in script
    assert "--table <TOKEN> --flag-parameter <TOKEN>" in script
    assert "User=recommendation" in script and "Restart=always" in script and "KillSignal=SIGTERM" in script
    assert "amazon-cloudwatch-agent-ctl -a fetch-config" in script
    assert script.index("systemctl enable --now recommendation.service") > script.index("-m venv")
    assert script.rstrip().endswith("exit 1")  # no answer on the port -> failure signal


def test_asset_contains_the_webapp_package(synthesized) -> None:
    e = synthesized["dev"]
    asset = e.stacks.app.app_tier.webapp_asset
    staged = Path(e.assembly.directory) / f"asset.{asset.asset_hash}"
    assert (staged / "__main__.py").is_file() and (staged / "server.py").is_file()
    shipped = {p.name for p in staged.iterdir()}
    source = {p.name for p in webapp_dir().glob("*.py")}
    assert source <= shipped and "__pycache__" not in shipped
    assert f"{asset.asset_hash}.zip" in _user_data(_app(synthesized))


def test_systemd_unit_non_root_restart_sigterm() -> None:
    unit = systemd_unit(_install(8080))
    assert "User=recommendation" in unit and "Restart=always" in unit and "KillSignal=SIGTERM" in unit
    assert "--log-file /var/log/recommendation/service.log" in unit and f"--emf-endpoint {EMF_ENDPOINT}" in unit
    assert "CAP_NET_BIND_SERVICE" not in unit
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in systemd_unit(_install(80))


def test_agent_ships_log_file_emf_memory_and_disk() -> None:
    config = cloudwatch_agent_config(_install(8080))
    assert config["logs"]["metrics_collected"] == {"emf": {}}
    collected = config["logs"]["logs_collected"]["files"]["collect_list"]
    assert collected == [
        {
            "file_path": "/var/log/recommendation/service.log",
            "log_group_name": "svc",
            "log_stream_name": "{instance_id}",
        }
    ]
    metrics = config["metrics"]["metrics_collected"]
    assert metrics["mem"]["measurement"] == ["mem_used_percent"] and metrics["disk"]["resources"] == ["/"]


def test_boot_script_pins_boto3_and_fails_when_the_service_never_answers() -> None:
    install = _install(8080)
    prepare, rest = prepare_commands(install), install_commands(install)
    assert prepare[0] == "set -euo pipefail"
    assert any(c.startswith("dnf install -y python3.11") for c in prepare)
    pip = next(c for c in rest if "pip install" in c)
    assert "boto3==" in pip
    assert rest[-1] == "exit 1" and "exit 0" in rest[-3]


def _install(port: int) -> ServiceInstall:
    return ServiceInstall(
        region="us-east-2",
        table_name="T",
        flag_parameter_name="F",
        service_port=port,
        log_group_name="svc",
        metrics_log_group_name="emf",
    )


# ---- App stack outputs ------------------------------------------------------------------------------------------


def test_app_stack_outputs(synthesized) -> None:
    outputs = _app(synthesized).find_outputs("*")
    for name in ("SiteUrl", "TableName", "FlagName", "FaultRoleName", "FaultInstanceProfileName"):
        assert name in outputs, name
    assert outputs["SiteUrl"]["Value"]["Fn::Join"][1][0] == "http://"
    tier = synthesized["dev"].stacks.app.app_tier
    assert tier.fault_role is not tier.instance_role
    assert tier.fault_instance_profile is not tier.instance_profile


# ---- Construct-level variants (small stacks) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def https_tier() -> tuple[MultiAzAppTier, Template]:
    stack, kwargs = _stack()
    topic = sns.Topic(stack, "Topic")
    tier = MultiAzAppTier(
        stack,
        "Tier",
        **kwargs,
        certificate_arn=CERT,
        web_acl_arn=WEB_ACL,
        notification_topic=topic,
        desired_capacity=4,
        cell_id="cell-2",
    )
    return tier, Template.from_stack(stack)


def test_certificate_gives_https_and_a_redirect(https_tier) -> None:
    tier, template = https_tier
    assert tier.redirect_listener is not None
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {"Port": 443, "Protocol": "HTTPS", "Certificates": [{"CertificateArn": CERT}], "SslPolicy": Match.any_value()},
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [
                Match.object_like({"Type": "redirect", "RedirectConfig": Match.object_like({"Protocol": "HTTPS"})})
            ],
        },
    )
    template.has_resource_properties("AWS::WAFv2::WebACLAssociation", {"WebACLArn": WEB_ACL})
    assert "https://" in json.dumps(Stack.of(tier).resolve(tier.site_url))


def test_notifications_desired_capacity_and_cell_tag(https_tier) -> None:
    _, template = https_tier
    template.has_resource_properties(
        "AWS::AutoScaling::AutoScalingGroup",
        {
            "DesiredCapacity": "4",
            "NotificationConfigurations": [Match.object_like({"TopicARN": {"Ref": Match.any_value()}})],
            "Tags": Match.array_with([{"Key": "opex:cell", "Value": "cell-2", "PropagateAtLaunch": True}]),
        },
    )


@pytest.mark.parametrize("name", ["load_balancer", "target_group", "auto_scaling_group"])
def test_props_and_existing_are_exclusive(name: str) -> None:
    stack, kwargs = _stack()
    existing = {
        "load_balancer": lambda: elbv2.ApplicationLoadBalancer(stack, "Lb", vpc=kwargs["vpc"]),
        "target_group": lambda: elbv2.ApplicationTargetGroup(stack, "Tg", vpc=kwargs["vpc"], port=80),
        "auto_scaling_group": lambda: autoscaling.AutoScalingGroup(
            stack,
            "Asg",
            vpc=kwargs["vpc"],
            instance_type=ec2.InstanceType("t3.micro"),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(),
        ),
    }[name]()
    props = {
        "load_balancer": elbv2.ApplicationLoadBalancerProps(vpc=kwargs["vpc"]),
        "target_group": elbv2.ApplicationTargetGroupProps(port=80),
        "auto_scaling_group": autoscaling.AutoScalingGroupProps(vpc=kwargs["vpc"]),
    }[name]
    with pytest.raises(ValueError, match=f"Either provide {name}_props or existing_{name}, but not both."):
        MultiAzAppTier(stack, "Tier", **kwargs, **{f"{name}_props": props, f"existing_{name}": existing})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"health_check": HealthCheckConfig(interval_seconds=4)}, r"health_check.interval_seconds: 4 .* 5 to 300"),
        ({"health_check": HealthCheckConfig(timeout_seconds=5)}, "less than interval_seconds"),
        ({"health_check": HealthCheckConfig(unhealthy_threshold=11)}, r"unhealthy_threshold: 11 .* 2 to 10"),
        (
            {"deregistration_delay": Duration.seconds(3601)},
            r"deregistration_delay: 3601 is out of range; allowed: 0 to 3600",
        ),
        ({"min_capacity": 2}, "leaves an AZ without an instance"),
        ({"min_capacity": 4, "max_capacity": 3}, "min <= desired <= max"),
        ({"target_cpu_percent": 0}, "target_cpu_percent"),
    ],
)
def test_invalid_settings_are_refused_before_any_resource(overrides: dict, message: str) -> None:
    stack, kwargs = _stack()
    with pytest.raises(ValueError, match=message):
        MultiAzAppTier(stack, "Tier", **{**kwargs, **overrides})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("target_cpu_percent", 0, r"app_tier.target_cpu_percent: 0% is out of range"),
        ("target_requests_per_instance_per_minute", 0, r"target_requests_per_instance_per_minute: 0 is out of range"),
    ],
)
def test_config_scaling_targets_are_validated(key: str, value: int, message: str) -> None:
    context = load_project_context()
    context["environments"]["dev"] = {**context["environments"]["dev"]}
    context["environments"]["dev"]["app_tier"] = {**context["environments"]["dev"]["app_tier"], key: value}
    with pytest.raises(ConfigError, match=message):
        load_environment(context, "dev")


def _stack() -> tuple[Stack, dict]:
    # The project's context: its feature flags and the committed AZ lookup (3 AZs in us-east-2).
    stack = Stack(App(context=load_project_context()), "Cell", env={"account": "111111111111", "region": "us-east-2"})
    vpc = ec2.Vpc(stack, "Vpc", max_azs=3, nat_gateways=1, restrict_default_security_group=False)
    table = dynamodb.Table.from_table_name(stack, "Table", "RecommendationService")
    flag = ssm.StringParameter.from_string_parameter_name(stack, "Flag", "RecommendationServiceEnabled")
    return stack, {"vpc": vpc, "table": table, "flag_parameter": flag}
