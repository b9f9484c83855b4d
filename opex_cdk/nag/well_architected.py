"""`WellArchitectedChecks`: rules of our own that judge whether a workload survives its dependencies.

cdk-nag's packs check security and compliance one resource at a time. These rules look at how
resources relate: the alarm that watches a Lambda's errors, the subscriber of a topic, the target group
behind an Auto Scaling group. Each rule id is ``WA-REL-n`` (Reliability) or ``WA-OPS-n`` (Operational
Excellence) and is acknowledged like any other nag rule::

    from opex_cdk.nag import acknowledge
    acknowledge(topic, "WA-OPS-2", "Subscribers are added by the on-call tool after deployment.")

How it runs: a CDK policy-validation plugin (``IPolicyValidationPlugin``) written in Python that reads
the synthesized templates, not a jsii subclass of cdk-nag's ``NagPack``. We tried the subclass first:
it works for per-resource rules, but jsii cannot hand an L1's unresolved properties to Python (lazy
tokens are serialized by value and break when sent back to be resolved), and these rules need resolved
properties *across stacks* (a topic's subscriber or a Lambda's alarm often lives in another stack,
referenced through ``Fn::GetStackOutput``). The templates have exactly that, and reading them costs no
round trip to Node. Acknowledgments are honoured the way cdk-nag honours them: an
``aws:cdk:acknowledged-rules`` entry on the resource's construct or an ancestor (read from the stack's
metadata in the assembly). Like cdk-nag packs, :meth:`WellArchitectedChecks.validate_scope` checks a
construct tree directly (it synthesizes the app first if that has not happened).

"Production" (rules WA-REL-5, WA-REL-6) comes from the ``production`` argument, else from the context
of the scope the pack is created for (``environments[env].production`` as in cdk.json), else false.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
    Stage,
)
from constructs import IConstruct

from opex_cdk.nag.cloud_assembly import StackTemplate, read_assembly, read_templates

PACK_NAME = "WA"
#: Metadata type that marks an Auto Scaling group as protected against fleet-wide recycling (WA-REL-4).
FLEET_SAFE_METADATA = "opex:wa:fleet-safe-guard"

#: Worst-case seconds from a target turning bad to the load balancer taking it out (WA-REL-3).
MAX_DETECTION_SECONDS = 30
#: Longest deregistration delay that keeps deployments and replacements quick (WA-OPS-5).
MAX_DEREGISTRATION_DELAY_SECONDS = 60
#: Deletion policies that keep the data when the resource leaves the template.
KEEPING_POLICIES = ("Retain", "Snapshot", "RetainExceptOnCreate")

STATEFUL_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable", "AWS::S3::Bucket", "AWS::Logs::LogGroup")


def mark_fleet_safe(construct: IConstruct, guard: str) -> None:
    """Declare that ``construct`` (an Auto Scaling group or a parent of one) has a fleet-safe guard.

    An ASG with the ELB health-check type replaces every instance the load balancer calls unhealthy;
    behind a deep health check, one failing shared dependency then recycles the whole fleet (rule
    WA-REL-4). ``guard`` names what prevents that, e.g. the healer that stops when most targets fail.
    """
    if not guard or len(guard.strip()) < 20:
        raise ValueError(f"mark_fleet_safe on {construct.node.path}: say what the guard is (at least 20 characters)")
    construct.node.add_metadata(FLEET_SAFE_METADATA, guard)


# --------------------------------------------------------------------------------------------------
# The app model: every resource of every stack, with cross-stack references followed
# --------------------------------------------------------------------------------------------------


@dataclass
class Resource:
    """One CloudFormation resource as the rules see it."""

    stack: str
    logical_id: str
    path: str
    type: str
    props: dict[str, Any]
    deletion_policy: str | None = None
    update_replace_policy: str | None = None
    fleet_safe_guard: str | None = None


@dataclass
class AppModel:
    """The resources of an app by (stack name, logical id), its outputs and exports, and which stacks are production."""

    stacks: dict[str, StackTemplate] = field(default_factory=dict)
    production_by_stack: dict[str, bool] = field(default_factory=dict)
    by_id: dict[tuple[str, str], Resource] = field(default_factory=dict)
    outputs: dict[tuple[str, str], Any] = field(default_factory=dict)
    exports: dict[str, tuple[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_stacks(cls, stacks: list[StackTemplate], production: bool = False) -> AppModel:
        model = cls()
        for st in stacks:
            model.stacks[st.name] = st
            model.production_by_stack[st.name] = production
            for logical_id, body in st.resources.items():
                path = st.construct_path(logical_id)
                guard = None
                if body.get("Type") == "AWS::AutoScaling::AutoScalingGroup":
                    guards = st.markers(path, FLEET_SAFE_METADATA)
                    guard = str(guards[0]) if guards else None
                model.by_id[(st.name, logical_id)] = Resource(
                    stack=st.name,
                    logical_id=logical_id,
                    path=path,
                    type=str(body.get("Type")),
                    props=body.get("Properties") or {},
                    deletion_policy=body.get("DeletionPolicy"),
                    update_replace_policy=body.get("UpdateReplacePolicy"),
                    fleet_safe_guard=guard,
                )
            for name, output in (st.template.get("Outputs") or {}).items():
                model.outputs[(st.name, name)] = output.get("Value")
                export = (output.get("Export") or {}).get("Name")
                if isinstance(export, str):
                    model.exports[export] = (st.name, output.get("Value"))
        return model

    def of_type(self, *types: str) -> Iterator[Resource]:
        return (r for r in self.by_id.values() if r.type in types)

    def targets(self, value: Any, stack: str) -> set[tuple[str, str]]:
        """Every (stack, logical id) that ``value`` (as written in ``stack``) references, across stacks."""
        found: set[tuple[str, str]] = set()
        self._collect(value, stack, found, 0)
        return found

    def references(self, value: Any, stack: str, target: Resource) -> bool:
        return (target.stack, target.logical_id) in self.targets(value, stack)

    def resolve_one(self, value: Any, stack: str, cfn_type: str) -> Resource | None:
        """The first resource of ``cfn_type`` that ``value`` references, if any."""
        for key in self.targets(value, stack):
            if key in self.by_id and self.by_id[key].type == cfn_type:
                return self.by_id[key]
        return None

    def _collect(self, value: Any, stack: str, found: set[tuple[str, str]], depth: int) -> None:
        if depth > 20:
            return
        if isinstance(value, list):
            for item in value:
                self._collect(item, stack, found, depth + 1)
            return
        if not isinstance(value, dict):
            return
        if isinstance(value.get("Ref"), str):
            found.add((stack, value["Ref"]))
            return
        get_att = value.get("Fn::GetAtt")
        if isinstance(get_att, list) and get_att and isinstance(get_att[0], str):
            found.add((stack, get_att[0]))
            return
        if isinstance(get_att, str):
            found.add((stack, get_att.split(".")[0]))
            return
        stack_output = value.get("Fn::GetStackOutput")
        if isinstance(stack_output, dict):
            key = (str(stack_output.get("StackName")), str(stack_output.get("OutputName")))
            if key in self.outputs:
                self._collect(self.outputs[key], key[0], found, depth + 1)
            return
        imported = value.get("Fn::ImportValue")
        if isinstance(imported, str) and imported in self.exports:
            producer, exported = self.exports[imported]
            self._collect(exported, producer, found, depth + 1)
            return
        for item in value.values():
            self._collect(item, stack, found, depth + 1)


# --------------------------------------------------------------------------------------------------
# The rules. Each takes (resource, model) and returns True when compliant; None = not applicable.
# --------------------------------------------------------------------------------------------------

RuleFn = Callable[[Resource, AppModel], bool | None]


@dataclass(frozen=True)
class Rule:
    """A Well-Architected rule: id suffix (``REL-1``), the resource types it judges, what and why."""

    suffix: str
    types: tuple[str, ...]
    info: str
    explanation: str
    check: RuleFn

    @property
    def rule_id(self) -> str:
        return f"{PACK_NAME}-{self.suffix}"


def _int(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
        raise ValueError(f"expected a number, got {value!r} (an unresolved token?)")
    return int(value)


def _attributes(resource: Resource, key: str) -> dict[str, Any]:
    return {a.get("Key"): a.get("Value") for a in resource.props.get(key) or [] if isinstance(a, dict)}


def _subnet_zones(resource: Resource, model: AppModel, subnets: Any) -> set[str]:
    if not isinstance(subnets, list):
        raise ValueError(f"{resource.path}: VPCZoneIdentifier is not a list of subnets: {subnets!r}")
    zones: set[str] = set()
    for i, subnet in enumerate(subnets):
        targets = [model.by_id[t] for t in model.targets(subnet, resource.stack) if t in model.by_id]
        zone = next((t.props.get("AvailabilityZone") for t in targets if t.type == "AWS::EC2::Subnet"), None)
        # A subnet we cannot see (imported by id) counts as its own AZ: one subnet per AZ is the norm.
        zones.add(zone if isinstance(zone, str) else f"subnet#{i}:{subnet!r}")
    return zones


def asg_spans_azs(r: Resource, model: AppModel) -> bool:
    zones = r.props.get("AvailabilityZones")
    az_count = len(set(map(str, zones))) if isinstance(zones, list) else 0
    if "VPCZoneIdentifier" in r.props:
        az_count = len(_subnet_zones(r, model, r.props["VPCZoneIdentifier"]))
    return az_count >= 2 and _int(r.props.get("MinSize"), 0) >= az_count


def _health_check(tg: Resource) -> tuple[str, str | None, bool]:
    """(protocol, path, enabled) of a target group's health check, with AWS's defaults."""
    protocol = str(tg.props.get("HealthCheckProtocol") or tg.props.get("Protocol") or "HTTP").upper()
    path = tg.props.get("HealthCheckPath")
    if path is None and protocol in ("HTTP", "HTTPS"):
        path = "/"
    return protocol, path, tg.props.get("HealthCheckEnabled") is not False


def _is_lambda_target(tg: Resource) -> bool:
    return str(tg.props.get("TargetType", "instance")).lower() == "lambda"


def target_group_deep_check(r: Resource, model: AppModel) -> bool | None:
    if _is_lambda_target(r):
        return None
    protocol, path, enabled = _health_check(r)
    return enabled and protocol in ("HTTP", "HTTPS") and isinstance(path, str) and path not in ("", "/")


def target_group_detects_fast(r: Resource, model: AppModel) -> bool | None:
    if _is_lambda_target(r):
        return None
    protocol, _, _ = _health_check(r)
    interval = _int(r.props.get("HealthCheckIntervalSeconds"), 30)
    timeout = _int(r.props.get("HealthCheckTimeoutSeconds"), 5 if protocol in ("HTTP", "HTTPS") else 10)
    unhealthy = _int(r.props.get("UnhealthyThresholdCount"), 2)
    return unhealthy * interval + timeout <= MAX_DETECTION_SECONDS


def asg_not_fleet_recycled(r: Resource, model: AppModel) -> bool | None:
    if str(r.props.get("HealthCheckType", "EC2")).upper() != "ELB":
        return None
    groups = r.props.get("TargetGroupARNs") or []
    if not groups:
        return None
    found = [model.by_id[t] for t in model.targets(groups, r.stack) if t in model.by_id]
    # A target group we cannot see is assumed deep: WA-REL-2 demands that of every one we can.
    deep = not found or any(target_group_deep_check(tg, model) for tg in found)
    return not deep or r.fleet_safe_guard is not None


def nat_per_az_in_production(r: Resource, model: AppModel) -> bool | None:
    if not model.production_by_stack.get(r.stack, False):
        return None
    subnets = [s for s in model.of_type("AWS::EC2::Subnet") if model.references(s.props.get("VpcId"), s.stack, r)]
    if not subnets:
        return None
    subnet_ids = {(s.stack, s.logical_id) for s in subnets}
    nats = [
        n for n in model.of_type("AWS::EC2::NatGateway") if model.targets(n.props.get("SubnetId"), n.stack) & subnet_ids
    ]
    if not nats:
        return None  # no egress through NAT at all: nothing to be zonal about
    zones = {s.props.get("AvailabilityZone") for s in subnets}
    nat_zones = {
        model.by_id[t].props.get("AvailabilityZone")
        for n in nats
        for t in model.targets(n.props.get("SubnetId"), n.stack)
        if t in model.by_id
    }
    return zones <= nat_zones


def stateful_removal_policy(r: Resource, model: AppModel) -> bool:
    if r.deletion_policy is None or r.update_replace_policy is None:
        return False
    if model.production_by_stack.get(r.stack, False):
        return r.deletion_policy in KEEPING_POLICIES and r.update_replace_policy in KEEPING_POLICIES
    return True


def stateful_retention(r: Resource, model: AppModel) -> bool:
    if r.type == "AWS::Logs::LogGroup":
        return r.props.get("RetentionInDays") is not None
    if r.type == "AWS::S3::Bucket":
        rules = (r.props.get("LifecycleConfiguration") or {}).get("Rules") or []
        expiring = (
            "ExpirationInDays",
            "ExpirationDate",
            "NoncurrentVersionExpiration",
            "NoncurrentVersionExpirationInDays",
            "Transitions",
            "NoncurrentVersionTransitions",
            "Transition",
        )
        return any(rule.get("Status", "Enabled") == "Enabled" and any(k in rule for k in expiring) for rule in rules)
    # DynamoDB: point-in-time recovery is the table's retention of its own history.
    pitr = r.props.get("PointInTimeRecoverySpecification") or {}
    if r.type == "AWS::DynamoDB::GlobalTable":
        replicas = r.props.get("Replicas") or []
        return bool(replicas) and all(
            (rep.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled") is True
            for rep in replicas
        )
    return pitr.get("PointInTimeRecoveryEnabled") is True


def _serves_custom_resource(fn: Resource, model: AppModel) -> bool:
    """CloudFormation calls a custom resource's handler synchronously; its failure fails the stack operation."""
    return any(
        model.references(c.props.get("ServiceToken"), c.stack, fn)
        for c in model.by_id.values()
        if c.type.startswith("Custom::") or c.type == "AWS::CloudFormation::CustomResource"
    )


def lambda_failure_destination(r: Resource, model: AppModel) -> bool | None:
    if _serves_custom_resource(r, model):
        return None
    if (r.props.get("DeadLetterConfig") or {}).get("TargetArn"):
        return True
    for config in model.of_type("AWS::Lambda::EventInvokeConfig"):
        on_failure = ((config.props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        if on_failure and model.references(config.props.get("FunctionName"), config.stack, r):
            return True
    for mapping in model.of_type("AWS::Lambda::EventSourceMapping"):
        if not model.references(mapping.props.get("FunctionName"), mapping.stack, r):
            continue
        if ((mapping.props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"):
            return True
        sources = [
            model.by_id[t]
            for t in model.targets(mapping.props.get("EventSourceArn"), mapping.stack)
            if t in model.by_id
        ]
        if any(q.type == "AWS::SQS::Queue" and q.props.get("RedrivePolicy") for q in sources):
            return True
    return False


def lambda_explicit_limits(r: Resource, model: AppModel) -> bool | None:
    if _serves_custom_resource(r, model):
        return None
    return r.props.get("Timeout") is not None and r.props.get("MemorySize") is not None


def _alarm_metrics(alarm: Resource) -> Iterator[dict[str, Any]]:
    if alarm.props.get("MetricName"):
        yield alarm.props
    for query in alarm.props.get("Metrics") or []:
        metric = ((query or {}).get("MetricStat") or {}).get("Metric")
        if metric:
            yield metric


def lambda_error_alarm(r: Resource, model: AppModel) -> bool | None:
    if _serves_custom_resource(r, model):
        return None
    for alarm in model.of_type("AWS::CloudWatch::Alarm"):
        for metric in _alarm_metrics(alarm):
            if metric.get("Namespace") != "AWS/Lambda" or metric.get("MetricName") != "Errors":
                continue
            dims = [d.get("Value") for d in metric.get("Dimensions") or [] if d.get("Name") == "FunctionName"]
            if any(model.references(d, alarm.stack, r) for d in dims):
                return True
    return False


def alarm_has_action(r: Resource, model: AppModel) -> bool:
    if r.props.get("ActionsEnabled") is False:
        return False
    if any(r.props.get(k) for k in ("AlarmActions", "OKActions", "InsufficientDataActions")):
        return True
    # Its action is someone else's: a composite alarm that rolls it up, or an experiment it stops.
    for composite in model.of_type("AWS::CloudWatch::CompositeAlarm"):
        if model.references(composite.props.get("AlarmRule"), composite.stack, r):
            return True
    for template in model.of_type("AWS::FIS::ExperimentTemplate"):
        if model.references(template.props.get("StopConditions"), template.stack, r):
            return True
    return False


def topic_has_subscriber(r: Resource, model: AppModel) -> bool:
    if r.props.get("Subscription"):
        return True
    return any(
        model.references(sub.props.get("TopicArn"), sub.stack, r) for sub in model.of_type("AWS::SNS::Subscription")
    )


def alb_access_logs(r: Resource, model: AppModel) -> bool | None:
    if str(r.props.get("Type", "application")).lower() != "application":
        return None
    return str(_attributes(r, "LoadBalancerAttributes").get("access_logs.s3.enabled")).lower() == "true"


def deregistration_delay(r: Resource, model: AppModel) -> bool | None:
    if _is_lambda_target(r):
        return None
    delay = _int(_attributes(r, "TargetGroupAttributes").get("deregistration_delay.timeout_seconds"), 300)
    return delay <= MAX_DEREGISTRATION_DELAY_SECONDS


_ASG = ("AWS::AutoScaling::AutoScalingGroup",)
_TG = ("AWS::ElasticLoadBalancingV2::TargetGroup",)
_FN = ("AWS::Lambda::Function",)

RULES: tuple[Rule, ...] = (
    Rule(
        "REL-1",
        _ASG,
        "The Auto Scaling group spans fewer than 2 AZs, or its minimum leaves an AZ without an instance.",
        "An AZ outage must leave capacity in the other AZs: subnets in at least 2 AZs and MinSize >= the "
        "number of AZs, so the floor keeps one instance per AZ.",
        asg_spans_azs,
    ),
    Rule(
        "REL-2",
        _TG,
        "The target group's health check is shallow: path '/', TCP only, or disabled.",
        "A check of '/' or a TCP connect only proves the process listens. Point it at an application path "
        "(a deep check such as /healthcheck that exercises the dependencies) so a broken instance leaves "
        "rotation (workshop steps 4-5).",
        target_group_deep_check,
    ),
    Rule(
        "REL-3",
        _TG,
        f"The target group takes more than {MAX_DETECTION_SECONDS} s to detect a bad target.",
        "UnhealthyThresholdCount x HealthCheckIntervalSeconds + HealthCheckTimeoutSeconds is how long a "
        f"bad target keeps receiving traffic; keep it <= {MAX_DETECTION_SECONDS} s (AWS defaults take ~65 s).",
        target_group_detects_fast,
    ),
    Rule(
        "REL-4",
        _ASG,
        "The Auto Scaling group uses the ELB health-check type behind a deep health check without a "
        "fleet-safe guard (the fleet-recycle trap).",
        "When a shared dependency fails, a deep check fails on every instance; with HealthCheckType ELB the "
        "group then terminates the whole fleet. Use the EC2 type plus a healer that replaces only a "
        "minority, or mark the group with opex_cdk.nag.well_architected.mark_fleet_safe(...) naming the guard.",
        asg_not_fleet_recycled,
    ),
    Rule(
        "REL-5",
        ("AWS::EC2::VPC",),
        "A production VPC does not have a NAT gateway in every AZ it has subnets in.",
        "With one NAT gateway, an outage of its AZ cuts egress for every AZ. Production runs one per AZ.",
        nat_per_az_in_production,
    ),
    Rule(
        "REL-6",
        STATEFUL_TYPES,
        "The stateful resource has no deliberate removal policy (DeletionPolicy and UpdateReplacePolicy), "
        "or in production one that deletes its data.",
        "Tables, buckets and log groups hold data that a stack update or deletion must not lose by "
        "accident. Set the removal policy explicitly; production keeps the data (Retain or Snapshot).",
        stateful_removal_policy,
    ),
    Rule(
        "REL-7",
        STATEFUL_TYPES,
        "The stateful resource has no retention: log group without RetentionInDays, bucket without a "
        "lifecycle rule, table without point-in-time recovery.",
        "Retention is a decision: how long logs and objects are kept, and how far back a table can be "
        "restored after a bad write.",
        stateful_retention,
    ),
    Rule(
        "REL-8",
        _FN,
        "The Lambda function has no failure destination or dead-letter queue.",
        "An asynchronous invocation that keeps failing is dropped after its retries unless it goes to a "
        "DLQ or an on-failure destination (or, for an SQS source, the queue's redrive policy). Handlers "
        "never drop a message silently.",
        lambda_failure_destination,
    ),
    Rule(
        "REL-9",
        _FN,
        "The Lambda function does not set its timeout and memory size explicitly.",
        "The defaults (3 s, 128 MB) are rarely what the code needs; a deliberate timeout is shorter than "
        "whatever calls it and longer than its dependencies' timeouts.",
        lambda_explicit_limits,
    ),
    Rule(
        "OPS-1",
        ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"),
        "The alarm has no action (and no composite alarm or experiment uses it).",
        "An alarm that notifies no one and triggers nothing is a graph. Route it to an SNS topic (people "
        "or automation), roll it into a composite alarm, or use it as an experiment's stop condition.",
        alarm_has_action,
    ),
    Rule(
        "OPS-2",
        ("AWS::SNS::Topic",),
        "The SNS topic has no subscriber.",
        "A notification published to a topic with no subscription reaches no one.",
        topic_has_subscriber,
    ),
    Rule(
        "OPS-3",
        _FN,
        "The Lambda function has no alarm on its Errors metric.",
        "Errors of a function nobody watches are found by customers. Alarm on AWS/Lambda Errors with the "
        "FunctionName dimension.",
        lambda_error_alarm,
    ),
    Rule(
        "OPS-4",
        ("AWS::ElasticLoadBalancingV2::LoadBalancer",),
        "The Application Load Balancer does not write access logs.",
        "Access logs are the per-request record (target, status, latency) an incident review needs.",
        alb_access_logs,
    ),
    Rule(
        "OPS-5",
        _TG,
        f"The target group's deregistration delay is over {MAX_DEREGISTRATION_DELAY_SECONDS} s (the default is 300 s).",
        "Every replacement and deployment waits for draining; requests to this service finish in well "
        "under a minute, so a long delay only slows recovery.",
        deregistration_delay,
    ),
)

RULES_BY_TYPE: dict[str, tuple[Rule, ...]] = {}
for _rule in RULES:
    for _type in _rule.types:
        RULES_BY_TYPE[_type] = (*RULES_BY_TYPE.get(_type, ()), _rule)


def rule_ids() -> list[str]:
    """Every rule id of the pack, in order."""
    return [rule.rule_id for rule in RULES]


# --------------------------------------------------------------------------------------------------
# The pack
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One rule broken by one resource, or acknowledged (``acknowledged`` holds the reason)."""

    rule_id: str
    stack: str
    logical_id: str
    construct_path: str
    template_path: str
    info: str
    acknowledged: str | None = None


def _error_message(error: Exception) -> str:
    return f"Rule could not be evaluated ({error}); the property is probably an unresolved intrinsic function."


def evaluate_model(model: AppModel, *, under: str = "") -> list[Finding]:
    """Every finding of every rule over ``model`` (optionally only construct paths under ``under``)."""
    findings: list[Finding] = []
    prefix = under.strip("/")
    for resource in model.by_id.values():
        if prefix and not (resource.path == prefix or resource.path.startswith(prefix + "/")):
            continue
        for rule in RULES_BY_TYPE.get(resource.type, ()):
            try:
                ok, info = rule.check(resource, model), rule.info
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                ok, info = False, _error_message(error)
            if ok is None or ok:
                continue
            stack = model.stacks[resource.stack]
            findings.append(
                Finding(
                    rule_id=rule.rule_id,
                    stack=resource.stack,
                    logical_id=resource.logical_id,
                    construct_path=resource.path,
                    template_path=str(stack.template_path),
                    info=info,
                    acknowledged=stack.acknowledgment(resource.path, rule.rule_id),
                )
            )
    return findings


def evaluate_assembly(directory: str | Path, *, production: bool = False) -> list[Finding]:
    """Findings over a synthesized cloud assembly directory (``cdk.out``): what the ORR evaluator uses."""
    return evaluate_model(AppModel.from_stacks(read_assembly(directory), production))


def _production_from_context(scope: IConstruct | None) -> bool:
    if scope is None:
        return False
    environments = scope.node.try_get_context("environments")
    env = scope.node.try_get_context("env")
    if isinstance(environments, dict) and isinstance(environments.get(env), dict):
        return environments[env].get("production") is True
    return False


@jsii.implements(IPolicyValidationPlugin)
class WellArchitectedChecks:
    """Reliability and Operational Excellence rules (``WA-REL-n``, ``WA-OPS-n``) no cdk-nag pack has.

    Register like a cdk-nag pack: ``Validations.of(app).add_plugins(WellArchitectedChecks(app))``.

    ``scope``: the app or stage the pack is created for; only its context is read (see ``production``).
    ``production``: whether the checked environment is production (rules WA-REL-5 and WA-REL-6).
    Default: the context's ``environments[env].production`` (cdk.json), false when absent.
    """

    def __init__(self, scope: IConstruct | None = None, *, production: bool | None = None) -> None:
        self._production = production if production is not None else _production_from_context(scope)

    @property
    def name(self) -> str:
        return "WellArchitected"

    @property
    def version(self) -> str | None:
        return "1.0.0"

    @property
    def rule_ids(self) -> list[str]:
        return rule_ids()

    @property
    def production(self) -> bool:
        return self._production

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        """Entry point of CDK's validation framework: judge the templates it hands over."""
        model = AppModel.from_stacks(read_templates(context.template_paths), self._production)
        return self._report(evaluate_model(model))

    def validate_scope(self, scope: IConstruct) -> PolicyValidationPluginReport:
        """Check the constructs under ``scope`` directly (as cdk-nag packs allow, for tests).

        The rules read templates, so the app is synthesized first when it has not been (a second
        call returns CDK's cached assembly). Relations are followed across the whole app.
        """
        root = scope.node.root
        if not isinstance(root, Stage):
            raise ValueError(f"validate_scope: {scope.node.path or 'the root'} is not inside an App or Stage")
        assembly = root.synth()
        model = AppModel.from_stacks(read_assembly(assembly.directory), self._production)
        return self._report(evaluate_model(model, under=scope.node.path))

    def findings(self, scope: IConstruct) -> list[Finding]:
        """Like :meth:`validate_scope`, as :class:`Finding` objects (acknowledged ones included)."""
        root = scope.node.root
        assembly = root.synth()  # type: ignore[attr-defined]
        model = AppModel.from_stacks(read_assembly(assembly.directory), self._production)
        return evaluate_model(model, under=scope.node.path)

    @staticmethod
    def _report(findings: list[Finding]) -> PolicyValidationPluginReport:
        grouped: dict[tuple[str, str], list[Finding]] = {}
        for finding in findings:
            if finding.acknowledged is None:
                grouped.setdefault((finding.rule_id, finding.info), []).append(finding)
        violations = [
            PolicyViolation(
                rule_name=rule_id,
                description=info,
                fix=find_rule(rule_id).explanation,
                severity="error",
                violating_resources=[
                    PolicyViolatingResource(
                        construct_path=f.construct_path,
                        resource_logical_id=f.logical_id,
                        template_path=f.template_path,
                        locations=["Properties"],
                    )
                    for f in items
                ],
            )
            for (rule_id, info), items in grouped.items()
        ]
        return PolicyValidationPluginReport(success=not violations, violations=violations)


def find_rule(rule_id: str) -> Rule:
    """The rule named ``rule_id`` (``WA-REL-1``); ValueError naming the known ids otherwise."""
    for rule in RULES:
        if rule.rule_id == rule_id:
            return rule
    raise ValueError(f"unknown Well-Architected rule '{rule_id}'; known: {', '.join(rule_ids())}")


_RULE_ID = re.compile(r"^WA-(REL|OPS)-\d+$")


def is_well_architected_rule(rule_id: str) -> bool:
    """Whether ``rule_id`` (possibly granular, ``WA-REL-1[...]``) is one of this pack's."""
    return bool(_RULE_ID.match(rule_id.split("[", 1)[0]))
