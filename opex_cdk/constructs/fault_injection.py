"""`FaultInjection`: AWS FIS experiment templates for the chaos lab, each stopped by the on-call alarm.

Action ids, target resource types and parameters follow the AWS FIS actions reference
(https://docs.aws.amazon.com/fis/latest/userguide/fis-actions-reference.html) and the FIS SSM
documents page (https://docs.aws.amazon.com/fis/latest/userguide/actions-ssm-agent.html).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_fis as fis
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from opex_cdk.nag import acknowledge

#: The FIS actions these templates use (ids as listed in the FIS actions reference).
ACTION_START_AUTOMATION = "aws:ssm:start-automation-execution"
ACTION_SEND_COMMAND = "aws:ssm:send-command"
ACTION_DISRUPT_CONNECTIVITY = "aws:network:disrupt-connectivity"
ACTION_ASG_ICE = "aws:ec2:asg-insufficient-instance-capacity-error"

#: AWS-owned SSM documents for aws:ssm:send-command.
KILL_PROCESS_DOCUMENT = "AWSFIS-Run-Kill-Process"
CPU_STRESS_DOCUMENT = "AWSFIS-Run-CPU-Stress"


@dataclass(frozen=True)
class Experiment:
    """What an experiment is for: shown in the template's description and in docs/experiments/."""

    name: str
    title: str
    hypothesis: str
    watch: str

    def description(self) -> str:
        """The template description (FIS allows 512 characters)."""
        return f"{self.title}. Hypothesis: {self.hypothesis} Watch: {self.watch}"[:512]


EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment(
            "dependency-off",
            "Dependency off: RecommendationServiceEnabled=false for N minutes, then true",
            "every instance fails its deep check, the load balancer fails open and keeps serving the static "
            "fallback (HTTP 200); the healer replaces nothing and pages Critical.",
            "ELB 5xx stays 0; HealthyHostCount 0; healer Critical 'fleet-wide'; personalized pages return.",
        ),
        Experiment(
            "single-server-fault",
            "Single-server fault: one instance gets the no-DynamoDB instance profile, then it is restored",
            "that instance fails its deep check and leaves rotation within the detection time; the others keep "
            "serving personalized pages; the healer replaces only that instance.",
            "UnHealthyHostCount 1; healer Warning 'replacing 1'; no 5xx; a replacement becomes healthy.",
        ),
        Experiment(
            "kill-process",
            "Kill the service process on one instance (SIGKILL)",
            "systemd restarts the service within seconds; at most that instance leaves rotation briefly; no "
            "customer-visible errors.",
            "ELB 5xx ~0; UnHealthyHostCount back to 0 within a minute; no healer replacement needed.",
        ),
        Experiment(
            "cpu-stress",
            "CPU stress on a share of the instances",
            "latency rises on the stressed instances but health checks pass and no request fails; the "
            "service-impaired alarm stays OK.",
            "TargetResponseTime p99, CPUUtilization; HealthyHostCount unchanged.",
        ),
        Experiment(
            "dynamodb-blackhole-az",
            "Network black-hole to DynamoDB from one AZ's app subnet",
            "instances in that AZ fail their deep check and leave rotation; the other AZs serve personalized "
            "pages; the healer treats it as zonal (or replaces within its rate limit), never fleet-wide.",
            "UnHealthyHostCount = instances in the AZ; zonal alarm; no 5xx; healer notifications.",
        ),
        Experiment(
            "lose-az",
            "Lose an AZ: all traffic to one AZ's subnets dropped and Auto Scaling launches there fail (ICE)",
            "the load balancer routes around the AZ, the remaining AZs carry the load without 5xx, and Auto "
            "Scaling launches replacement capacity in the healthy AZs.",
            "HealthyHostCount per AZ; ELB 5xx; Auto Scaling activity history shows ICE then launches elsewhere.",
        ),
    )
}


class FaultInjection(Construct):
    """Six AWS FIS experiment templates (see ``EXPERIMENTS``), their SSM Automation documents and roles.

    Every template stops when any of ``stop_condition_alarms`` goes to ALARM (pass the on-call
    composite). The FIS role may only do what these templates need, on these resources: start and stop
    the two Automation documents, run the two AWS FIS command documents on instances of the one Auto
    Scaling group, swap network ACLs that FIS creates and tags, and inject capacity errors for the one
    Auto Scaling group. The Automation role may only write the one flag parameter and swap the instance
    profile of instances of the one group between its two profiles. Both documents restore on
    cancellation (FIS cancels them when a stop condition fires).

    Attributes: ``experiments`` (name -> ``CfnExperimentTemplate``), ``documents`` (name ->
    ``CfnDocument``), ``role`` (the FIS role), ``automation_role``, ``target_availability_zone``.
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        name_prefix: str,
        stop_condition_alarms: Sequence[cloudwatch.IAlarm],
        flag_parameter: ssm.IStringParameter,
        auto_scaling_group: autoscaling.IAutoScalingGroup,
        instance_role: iam.IRole,
        instance_profile: iam.IInstanceProfile,
        fault_role: iam.IRole,
        fault_instance_profile: iam.IInstanceProfile,
        app_subnets: Sequence[ec2.ISubnet],
        zone_subnets: Sequence[ec2.ISubnet] | None = None,
        target_availability_zone: str | None = None,
        duration: Duration | None = None,
        service_process_name: str = "python3.11",
        cpu_stress_percent: int = 50,
        healthy_flag_value: str = "true",
    ) -> None:
        """Create the experiments.

        :param name_prefix: prefix of document names and the templates' Name tags (e.g. ``opex-dev``).
        :param stop_condition_alarms: alarms that stop every experiment (at least one).
        :param flag_parameter: the ``RecommendationServiceEnabled`` parameter (experiment 1).
        :param auto_scaling_group: the app tier's group (experiments 2-4 and 6).
        :param instance_role: the instances' normal role (restored in experiment 2).
        :param instance_profile: the instances' normal profile (restored in experiment 2).
        :param fault_role: the role without DynamoDB access (experiment 2).
        :param fault_instance_profile: the profile of ``fault_role`` (experiment 2).
        :param app_subnets: the app tier's subnets, one per AZ (experiment 5 uses the target AZ's).
        :param zone_subnets: every subnet experiment 6 cuts off in the target AZ. Default: ``app_subnets``.
        :param target_availability_zone: the AZ of experiments 5 and 6. Default: the first app subnet's AZ.
        :param duration: how long each fault lasts. Default: 5 minutes.
        :param service_process_name: the process experiment 3 kills. Default: ``python3.11`` (the service).
        :param cpu_stress_percent: share of instances experiment 4 stresses, 1-100. Default: 50.
        :param healthy_flag_value: the value experiment 1 restores. Default: ``true``.
        """
        super().__init__(scope, id_)
        if not stop_condition_alarms:
            raise ValueError("stop_condition_alarms: at least one alarm is required; every experiment needs a stop")
        if not app_subnets:
            raise ValueError("app_subnets: at least one subnet is required")
        if not 1 <= cpu_stress_percent <= 100:
            raise ValueError(f"cpu_stress_percent: {cpu_stress_percent} is not allowed; allowed: 1 to 100")
        duration = duration or Duration.minutes(5)
        minutes = int(duration.to_minutes())
        if not 1 <= minutes <= 720:
            raise ValueError(f"duration: {minutes} minutes is not allowed; allowed: 1 to 720 minutes")
        zones = sorted({s.availability_zone for s in app_subnets})
        az = target_availability_zone or app_subnets[0].availability_zone
        if az not in zones:
            raise ValueError(f"target_availability_zone: '{az}' has no app subnet; allowed: {', '.join(zones)}")
        self.target_availability_zone = az
        stack = Stack.of(self)
        arn = _Arns(stack)
        nag_ec2, nag_ssm = _nag_arn_prefix(stack, "ec2"), _nag_arn_prefix(stack, "ssm")
        iso = f"PT{minutes}M"
        asg_name = auto_scaling_group.auto_scaling_group_name
        kill_doc = f"arn:{stack.partition}:ssm:{stack.region}::document/{KILL_PROCESS_DOCUMENT}"
        stress_doc = f"arn:{stack.partition}:ssm:{stack.region}::document/{CPU_STRESS_DOCUMENT}"

        # --- the Automation documents (FIS has no action for these faults) ---------------------------
        self.automation_role = iam.Role(
            self,
            "AutomationRole",
            assumed_by=iam.ServicePrincipal("ssm.amazonaws.com"),
            description="Lets the fault-injection Automation documents flip the flag and swap instance profiles",
        )
        automation_policy = iam.ManagedPolicy(
            self,
            "AutomationPolicy",
            roles=[self.automation_role],
            statements=[
                iam.PolicyStatement(
                    sid="FlipTheFlag",
                    actions=["ssm:PutParameter", "ssm:GetParameter"],
                    resources=[flag_parameter.parameter_arn],
                ),
                iam.PolicyStatement(
                    sid="SwapProfilesOfTheGroupsInstances",
                    actions=["ec2:ReplaceIamInstanceProfileAssociation"],
                    resources=[arn.ec2("instance/*")],
                    conditions={"StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": asg_name}},
                ),
                iam.PolicyStatement(
                    sid="PassOnlyTheTwoInstanceRoles",
                    actions=["iam:PassRole"],
                    resources=[instance_role.role_arn, fault_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="FindTheInstanceAndItsAssociation",
                    actions=["ec2:DescribeIamInstanceProfileAssociations", "autoscaling:DescribeAutoScalingGroups"],
                    resources=["*"],
                ),
            ],
        )
        for rule in ("AwsSolutions-IAM5[Resource::*]",):
            acknowledge(
                automation_policy,
                rule,
                "Describe calls (ec2:DescribeIamInstanceProfileAssociations, autoscaling:DescribeAutoScalingGroups) "
                "support no resource-level permissions; they only read.",
            )
        acknowledge(
            automation_policy,
            f"AwsSolutions-IAM5[Resource::{nag_ec2}:instance/*]",
            "Instance ids change with every replacement; the statement is limited to instances tagged with the "
            "one Auto Scaling group's name.",
        )
        doc_flag = f"{name_prefix}-fis-dependency-off"
        doc_swap = f"{name_prefix}-fis-swap-instance-profile"
        self.documents: dict[str, ssm.CfnDocument] = {
            "dependency-off": ssm.CfnDocument(
                self,
                "DependencyOffDocument",
                name=doc_flag,
                document_type="Automation",
                document_format="JSON",
                update_method="NewVersion",
                content=flag_document(self.automation_role.role_arn, flag_parameter.parameter_name, healthy_flag_value),
            ),
            "single-server-fault": ssm.CfnDocument(
                self,
                "SwapProfileDocument",
                name=doc_swap,
                document_type="Automation",
                document_format="JSON",
                update_method="NewVersion",
                content=swap_document(
                    self.automation_role.role_arn,
                    instance_profile.instance_profile_name,
                    fault_instance_profile.instance_profile_name,
                ),
            ),
        }

        # --- the FIS role ----------------------------------------------------------------------------
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "fis.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description="The role AWS FIS assumes to run the chaos-lab experiments",
        )
        asg_arn = auto_scaling_group.auto_scaling_group_arn
        fis_policy = iam.ManagedPolicy(
            self,
            "RolePolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="RunTheTwoAutomationDocuments",
                    actions=["ssm:StartAutomationExecution"],
                    resources=[
                        arn.ssm(f"automation-definition/{doc_flag}:*"),
                        arn.ssm(f"automation-definition/{doc_swap}:*"),
                    ],
                ),
                iam.PolicyStatement(
                    sid="FollowAndStopAutomation",
                    actions=["ssm:GetAutomationExecution", "ssm:StopAutomationExecution"],
                    resources=[arn.ssm("automation-execution/*")],
                ),
                iam.PolicyStatement(
                    sid="PassTheAutomationRole",
                    actions=["iam:PassRole"],
                    resources=[self.automation_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="RunFisCommandDocuments",
                    actions=["ssm:SendCommand"],
                    resources=[
                        kill_doc,
                        stress_doc,
                    ],
                ),
                iam.PolicyStatement(
                    sid="OnInstancesOfTheGroupOnly",
                    actions=["ssm:SendCommand"],
                    resources=[arn.ec2("instance/*")],
                    conditions={"StringEquals": {"ssm:resourceTag/aws:autoscaling:groupName": asg_name}},
                ),
                iam.PolicyStatement(
                    sid="NetworkAclsFisCreates",
                    actions=["ec2:CreateNetworkAcl"],
                    resources=[arn.ec2("network-acl/*")],
                    conditions={"StringEquals": {"aws:RequestTag/managedByFIS": "true"}},
                ),
                iam.PolicyStatement(
                    sid="InTheseVpcs",
                    actions=["ec2:CreateNetworkAcl"],
                    resources=[arn.ec2("vpc/*")],
                ),
                iam.PolicyStatement(
                    sid="TagOnCreate",
                    actions=["ec2:CreateTags"],
                    resources=[arn.ec2("network-acl/*")],
                    conditions={"StringEquals": {"ec2:CreateAction": "CreateNetworkAcl"}},
                ),
                iam.PolicyStatement(
                    sid="EditAndDeleteOnlyFisAcls",
                    actions=["ec2:CreateNetworkAclEntry", "ec2:DeleteNetworkAcl"],
                    resources=[arn.ec2("network-acl/*")],
                    conditions={"StringEquals": {"ec2:ResourceTag/managedByFIS": "true"}},
                ),
                iam.PolicyStatement(
                    sid="SwapAclOfTargetSubnets",
                    actions=["ec2:ReplaceNetworkAclAssociation"],
                    resources=[arn.ec2("subnet/*"), arn.ec2("network-acl/*")],
                ),
                iam.PolicyStatement(
                    sid="InjectCapacityErrorsForTheGroupOnly",
                    actions=["ec2:InjectApiError"],
                    resources=["*"],
                    conditions={
                        "ForAnyValue:StringEquals": {"ec2:FisActionId": [ACTION_ASG_ICE]},
                        "StringEquals": {"ec2:FisTargetArns": [asg_arn]},
                    },
                ),
                iam.PolicyStatement(
                    sid="ReadOnlyLookups",
                    actions=[
                        "ec2:DescribeInstances",
                        "ec2:DescribeSubnets",
                        "ec2:DescribeVpcs",
                        "ec2:DescribeNetworkAcls",
                        "ec2:DescribeManagedPrefixLists",
                        "ec2:GetManagedPrefixListEntries",
                        "autoscaling:DescribeAutoScalingGroups",
                        "ssm:ListCommands",
                        "ssm:CancelCommand",
                    ],
                    resources=["*"],
                ),
            ],
        )
        acknowledge(
            fis_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "Only read-only lookups FIS needs to resolve targets (Describe*/List*, no resource-level support), "
            "ssm:CancelCommand to stop its own commands, and ec2:InjectApiError limited by condition to the one "
            "action id and the one Auto Scaling group.",
        )
        for suffix in ("instance/*", "network-acl/*", "vpc/*", "subnet/*"):
            acknowledge(
                fis_policy,
                f"AwsSolutions-IAM5[Resource::{nag_ec2}:{suffix}]",
                "FIS creates and targets these at run time (new ACLs, the group's current instances); every "
                "write is conditioned on the managedByFIS tag or the Auto Scaling group's tag where EC2 supports it.",
            )
        for doc in (doc_flag, doc_swap):
            acknowledge(
                fis_policy,
                f"AwsSolutions-IAM5[Resource::{nag_ssm}:automation-definition/{doc}:*]",
                "Any version of this one document: the document is updated in place (NewVersion) by deploys.",
            )
        acknowledge(
            fis_policy,
            f"AwsSolutions-IAM5[Resource::{nag_ssm}:automation-execution/*]",
            "Execution ids are created at run time; FIS only follows and stops the executions it started.",
        )

        # --- the experiment templates ---------------------------------------------------------------
        stop_conditions = [
            fis.CfnExperimentTemplate.ExperimentTemplateStopConditionProperty(
                source="aws:cloudwatch:alarm", value=alarm.alarm_arn
            )
            for alarm in stop_condition_alarms
        ]
        group_instances = fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
            resource_type="aws:ec2:instance",
            resource_tags={"aws:autoscaling:groupName": asg_name},
            filters=[
                fis.CfnExperimentTemplate.ExperimentTemplateTargetFilterProperty(path="State.Name", values=["running"])
            ],
            selection_mode="COUNT(1)",
        )
        zone_ids = [s.subnet_id for s in app_subnets if s.availability_zone == az]
        zone_all = [s.subnet_id for s in (zone_subnets or app_subnets) if s.availability_zone == az]

        def subnets_target(ids: list[str]) -> fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty:
            return fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                resource_type="aws:ec2:subnet",
                resource_arns=[arn.ec2(f"subnet/{i}") for i in ids],
                selection_mode="ALL",
            )

        def action(action_id: str, parameters: dict[str, str], targets: dict[str, str] | None = None, **kw):
            return fis.CfnExperimentTemplate.ExperimentTemplateActionProperty(
                action_id=action_id, parameters=parameters, targets=targets, **kw
            )

        definitions: dict[str, tuple[dict, dict]] = {
            "dependency-off": (
                {},
                {
                    "FlagOff": action(
                        ACTION_START_AUTOMATION,
                        {
                            "documentArn": arn.ssm(f"document/{doc_flag}"),
                            "documentParameters": json.dumps({"DurationMinutes": str(minutes)}),
                            "maxDuration": f"PT{minutes + 5}M",
                        },
                    )
                },
            ),
            "single-server-fault": (
                {},
                {
                    "SwapProfile": action(
                        ACTION_START_AUTOMATION,
                        {
                            "documentArn": arn.ssm(f"document/{doc_swap}"),
                            "documentParameters": stack.to_json_string(
                                {"AutoScalingGroupName": asg_name, "DurationMinutes": str(minutes)}
                            ),
                            "maxDuration": f"PT{minutes + 5}M",
                        },
                    )
                },
            ),
            "kill-process": (
                {"OneInstance": group_instances},
                {
                    "KillService": action(
                        ACTION_SEND_COMMAND,
                        {
                            "documentArn": kill_doc,
                            "documentParameters": json.dumps(
                                {"ProcessName": service_process_name, "Signal": "SIGKILL"}
                            ),
                            "duration": "PT2M",
                        },
                        {"Instances": "OneInstance"},
                    )
                },
            ),
            "cpu-stress": (
                {
                    "ShareOfInstances": fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                        resource_type="aws:ec2:instance",
                        resource_tags={"aws:autoscaling:groupName": asg_name},
                        filters=group_instances.filters,
                        selection_mode=f"PERCENT({cpu_stress_percent})",
                    )
                },
                {
                    "StressCpu": action(
                        ACTION_SEND_COMMAND,
                        {
                            "documentArn": stress_doc,
                            "documentParameters": json.dumps(
                                {"DurationSeconds": str(minutes * 60), "InstallDependencies": "True"}
                            ),
                            "duration": iso,
                        },
                        {"Instances": "ShareOfInstances"},
                    )
                },
            ),
            "dynamodb-blackhole-az": (
                {"AppSubnetOfOneAz": subnets_target(zone_ids)},
                {
                    "BlackholeDynamoDb": action(
                        ACTION_DISRUPT_CONNECTIVITY,
                        {"duration": iso, "scope": "dynamodb"},
                        {"Subnets": "AppSubnetOfOneAz"},
                    )
                },
            ),
            "lose-az": (
                {
                    "SubnetsOfOneAz": subnets_target(zone_all),
                    "TheGroup": fis.CfnExperimentTemplate.ExperimentTemplateTargetProperty(
                        resource_type="aws:ec2:autoscaling-group",
                        resource_arns=[asg_arn],
                        selection_mode="ALL",
                    ),
                },
                {
                    "CutOffTheAz": action(
                        ACTION_DISRUPT_CONNECTIVITY,
                        {"duration": iso, "scope": "all"},
                        {"Subnets": "SubnetsOfOneAz"},
                    ),
                    "NoCapacityInTheAz": action(
                        ACTION_ASG_ICE,
                        {"duration": iso, "availabilityZoneIdentifiers": az, "percentage": "100"},
                        {"AutoScalingGroups": "TheGroup"},
                    ),
                },
            ),
        }
        self.experiments: dict[str, fis.CfnExperimentTemplate] = {}
        for name, (targets, actions) in definitions.items():
            meta = EXPERIMENTS[name]
            self.experiments[name] = fis.CfnExperimentTemplate(
                self,
                "".join(part.title() for part in name.split("-")) + "Experiment",
                description=meta.description(),
                role_arn=self.role.role_arn,
                stop_conditions=stop_conditions,
                targets=targets,
                actions=actions,
                tags={"Name": f"{name_prefix}-{name}", "opex:experiment": name},
                experiment_options=fis.CfnExperimentTemplate.ExperimentTemplateExperimentOptionsProperty(
                    account_targeting="single-account", empty_target_resolution_mode="fail"
                ),
            )


def _nag_arn_prefix(stack: Stack, service: str) -> str:
    """How cdk-nag spells ``arn:<partition>:<service>:<region>:<account>`` in a granular IAM5 finding id."""
    partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    return f"arn:{partition}:{service}:{region}:{account}"


class _Arns:
    """ARNs in this stack's partition, region and account."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    def ec2(self, resource: str) -> str:
        s = self._stack
        return f"arn:{s.partition}:ec2:{s.region}:{s.account}:{resource}"

    def ssm(self, resource: str) -> str:
        s = self._stack
        return f"arn:{s.partition}:ssm:{s.region}:{s.account}:{resource}"


def flag_document(role_arn: str, parameter_name: str, healthy_value: str) -> dict:
    """Automation (schema 0.3): set the flag to ``false``, wait, restore; cancellation also restores."""
    restore = {
        "name": "RestoreFlag",
        "action": "aws:executeAwsApi",
        "isEnd": True,
        "inputs": {
            "Service": "ssm",
            "Api": "PutParameter",
            "Name": parameter_name,
            "Value": "{{ RestoreValue }}",
            "Type": "String",
            "Overwrite": True,
        },
    }
    return {
        "schemaVersion": "0.3",
        "description": "Fault injection: switch the recommendation dependency off for DurationMinutes, then on.",
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {
            "AutomationAssumeRole": {"type": "String", "default": role_arn, "description": "Role the steps run as"},
            "DurationMinutes": {"type": "String", "default": "5", "allowedPattern": "^[1-9][0-9]{0,2}$"},
            "RestoreValue": {"type": "String", "default": healthy_value, "allowedPattern": "^(true|false)$"},
        },
        "mainSteps": [
            {
                "name": "FlagOff",
                "action": "aws:executeAwsApi",
                "onFailure": "step:RestoreFlag",
                "onCancel": "step:RestoreFlag",
                "inputs": {
                    "Service": "ssm",
                    "Api": "PutParameter",
                    "Name": parameter_name,
                    "Value": "false",
                    "Type": "String",
                    "Overwrite": True,
                },
            },
            {
                "name": "Wait",
                "action": "aws:sleep",
                "onFailure": "step:RestoreFlag",
                "onCancel": "step:RestoreFlag",
                "inputs": {"Duration": "PT{{ DurationMinutes }}M"},
            },
            restore,
        ],
    }


def swap_document(role_arn: str, instance_profile_name: str, fault_profile_name: str) -> dict:
    """Automation (schema 0.3): give the group's first in-service instance the fault profile, wait,
    restore the normal profile; cancellation after the swap also restores."""
    return {
        "schemaVersion": "0.3",
        "description": "Fault injection: one instance of the group gets the instance profile without DynamoDB "
        "access for DurationMinutes, then its own profile back.",
        "assumeRole": "{{ AutomationAssumeRole }}",
        "parameters": {
            "AutomationAssumeRole": {"type": "String", "default": role_arn, "description": "Role the steps run as"},
            "AutoScalingGroupName": {"type": "String", "description": "The group whose first instance is faulted"},
            "DurationMinutes": {"type": "String", "default": "5", "allowedPattern": "^[1-9][0-9]{0,2}$"},
            "FaultInstanceProfileName": {"type": "String", "default": fault_profile_name},
            "InstanceProfileName": {"type": "String", "default": instance_profile_name},
        },
        "mainSteps": [
            {
                "name": "PickInstance",
                "action": "aws:executeAwsApi",
                "onFailure": "Abort",
                "inputs": {
                    "Service": "autoscaling",
                    "Api": "DescribeAutoScalingGroups",
                    "AutoScalingGroupNames": ["{{ AutoScalingGroupName }}"],
                },
                "outputs": [
                    {
                        "Name": "InstanceId",
                        "Selector": "$.AutoScalingGroups[0].Instances[0].InstanceId",
                        "Type": "String",
                    }
                ],
            },
            {
                "name": "FindAssociation",
                "action": "aws:executeAwsApi",
                "onFailure": "Abort",
                "inputs": {
                    "Service": "ec2",
                    "Api": "DescribeIamInstanceProfileAssociations",
                    "Filters": [
                        {"Name": "instance-id", "Values": ["{{ PickInstance.InstanceId }}"]},
                        {"Name": "state", "Values": ["associated"]},
                    ],
                },
                "outputs": [
                    {
                        "Name": "AssociationId",
                        "Selector": "$.IamInstanceProfileAssociations[0].AssociationId",
                        "Type": "String",
                    }
                ],
            },
            {
                "name": "SwapToFaultProfile",
                "action": "aws:executeAwsApi",
                "onFailure": "Abort",
                "inputs": {
                    "Service": "ec2",
                    "Api": "ReplaceIamInstanceProfileAssociation",
                    "AssociationId": "{{ FindAssociation.AssociationId }}",
                    "IamInstanceProfile": {"Name": "{{ FaultInstanceProfileName }}"},
                },
                "outputs": [
                    {
                        "Name": "AssociationId",
                        "Selector": "$.IamInstanceProfileAssociation.AssociationId",
                        "Type": "String",
                    }
                ],
            },
            {
                "name": "Wait",
                "action": "aws:sleep",
                "onFailure": "step:RestoreProfile",
                "onCancel": "step:RestoreProfile",
                "inputs": {"Duration": "PT{{ DurationMinutes }}M"},
            },
            {
                "name": "RestoreProfile",
                "action": "aws:executeAwsApi",
                "isEnd": True,
                "inputs": {
                    "Service": "ec2",
                    "Api": "ReplaceIamInstanceProfileAssociation",
                    "AssociationId": "{{ SwapToFaultProfile.AssociationId }}",
                    "IamInstanceProfile": {"Name": "{{ InstanceProfileName }}"},
                },
            },
        ],
    }
