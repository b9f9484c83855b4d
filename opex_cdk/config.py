"""Typed, validated configuration of one deployment environment.

Environments live in `cdk.json` under the context key ``environments``; ``-c env=NAME`` picks one
(default ``dev``). :func:`load_environment` turns the raw context into frozen dataclasses and checks
every value *before* a construct exists, so a mistake stops synth with one line that names the field,
the value and what is allowed (:class:`ConfigError`), never with a traceback from deep inside CDK.

Unknown keys are errors too: a typo such as ``nat_gatways`` would otherwise be ignored silently and
the default would win without anyone noticing.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from opex_cdk import seed_data

DEFAULT_ENVIRONMENT = "dev"

#: Packs `nag_packs` may name; the mapping to cdk-nag classes lives in `opex_cdk.nag.packs`.
KNOWN_NAG_PACKS = ("AwsSolutions", "NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321", "WellArchitected")
DEFAULT_NAG_PACKS = ("AwsSolutions", "NIST.800.53.R5", "WellArchitected")

# AWS limits that bound the target group's health check (Elastic Load Balancing quotas).
HEALTH_CHECK_INTERVAL_RANGE = (5, 300)
HEALTH_CHECK_TIMEOUT_RANGE = (2, 120)
HEALTH_CHECK_THRESHOLD_RANGE = (2, 10)
DEREGISTRATION_DELAY_RANGE = (0, 3600)
# VPC CIDR blocks may be /16 to /28; every subnet must be at least /28.
VPC_PREFIX_RANGE = (16, 28)
SMALLEST_SUBNET_PREFIX = 28
SUBNET_TIERS = ("public", "private", "isolated")
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
_ARN = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,32}$")


class ConfigError(ValueError):
    """A configuration value is wrong. The message is one line: field, value, what is allowed."""


# --------------------------------------------------------------------------------------------------
# The configuration model
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkConfig:
    """The VPC: CIDR, AZs, NAT gateways, flow logs and endpoints."""

    cidr: str = "10.0.0.0/16"
    az_count: int = 3
    nat_gateways: int = 3
    flow_log_retention_days: int = 90
    interface_endpoints: bool = True

    @property
    def subnet_prefix(self) -> int:
        """Prefix length of every subnet: the CIDR split evenly over the tiers of every AZ.

        One spare slot per AZ is left (4 slots, 3 tiers) so a fourth tier can be added later
        without renumbering the existing subnets.
        """
        slots = (len(SUBNET_TIERS) + 1) * self.az_count
        return ipaddress.ip_network(self.cidr).prefixlen + math.ceil(math.log2(slots))


@dataclass(frozen=True)
class DataConfig:
    """The dependency: the DynamoDB table and the SSM flag (the emergency lever)."""

    table_name: str = seed_data.TABLE_NAME
    flag_parameter_name: str = seed_data.FLAG_PARAMETER_NAME


@dataclass(frozen=True)
class HealthCheckConfig:
    """Target-group health check. Defaults take a bad instance out in 2 x 5 s = 10 s."""

    path: str = "/healthcheck"
    interval_seconds: int = 5
    timeout_seconds: int = 2
    healthy_threshold: int = 2
    unhealthy_threshold: int = 2

    @property
    def detection_seconds(self) -> int:
        """Worst-case time from a target turning bad to the load balancer taking it out."""
        return self.unhealthy_threshold * self.interval_seconds + self.timeout_seconds


@dataclass(frozen=True)
class AppTierConfig:
    """The app tier ("cell"): ALB + Auto Scaling group running the service."""

    instance_type: str = "t3.micro"
    min_capacity: int = 3
    desired_capacity: int = 3
    max_capacity: int = 6
    service_port: int = 8080
    deregistration_delay_seconds: int = 10
    health_check_grace_seconds: int = 120
    certificate_arn: str | None = None
    web_acl_arn: str | None = None
    target_requests_per_instance_per_minute: int = 300
    target_cpu_percent: int = 60
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)


@dataclass(frozen=True)
class ObservabilityConfig:
    """Alarm thresholds that differ between environments."""

    runaway_scaling_calls_per_5_minutes: int = 20
    p99_latency_seconds: float = 1.0
    elb_5xx_per_minute: int = 10
    target_5xx_rate_percent: float = 5.0
    fallback_rate_warning_percent: float = 5.0
    fallback_rate_critical_percent: float = 50.0
    dependency_error_rate_percent: float = 5.0
    cpu_high_percent: float = 80.0
    dynamodb_latency_ms: float = 50.0
    scale_out_requests_per_target_per_minute: int = 600
    scale_in_requests_per_target_per_minute: int = 60
    audit_log_retention_days: int = 365


@dataclass(frozen=True)
class ScalingConfig:
    """Cell-based scaling driven by the scaler Lambda."""

    min_cells: int = 1
    max_cells: int = 3
    cooldown_seconds: int = 300
    record_name: str = "app.opex.internal"
    hosted_zone_id: str | None = None
    cell_weight: int = 100
    record_ttl_seconds: int = 60


@dataclass(frozen=True)
class ResilienceConfig:
    """Fault injection and the fleet-safe healer."""

    max_unhealthy_share: float = 0.5
    max_replacements_per_window: int = 2
    replacement_window_minutes: int = 30
    experiment_duration_minutes: int = 5


@dataclass(frozen=True)
class PipelineConfig:
    """Optional CDK Pipelines delivery (off by default: synth needs no connection)."""

    enabled: bool = False
    connection_arn: str | None = None
    repository: str | None = None
    branch: str = "main"
    #: S3 source instead of a connection: the bucket and the zip's key (a versioned bucket).
    source_bucket: str | None = None
    source_object_key: str = "source.zip"
    #: Environments the pipeline deploys, in order; a production one gets a manual approval first.
    stages: tuple[str, ...] = ("dev", "prod")


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything one environment (``dev``, ``prod``, ...) needs; built by :func:`load_environment`."""

    name: str
    account: str
    region: str
    prefix: str
    production: bool = False
    alarm_emails: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    nag_packs: tuple[str, ...] = DEFAULT_NAG_PACKS
    network: NetworkConfig = field(default_factory=NetworkConfig)
    data: DataConfig = field(default_factory=DataConfig)
    app_tier: AppTierConfig = field(default_factory=AppTierConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    resilience: ResilienceConfig = field(default_factory=ResilienceConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)


# --------------------------------------------------------------------------------------------------
# Loading: raw context -> dataclasses, with every check naming its field
# --------------------------------------------------------------------------------------------------

_NESTED = {
    "network": NetworkConfig,
    "data": DataConfig,
    "app_tier": AppTierConfig,
    "health_check": HealthCheckConfig,
    "observability": ObservabilityConfig,
    "scaling": ScalingConfig,
    "resilience": ResilienceConfig,
    "pipeline": PipelineConfig,
}


def availability_zones_context_key(account: str, region: str) -> str:
    """The context key under which `cdk.context.json` holds a region's AZ lookup."""
    return f"availability-zones:account={account}:region={region}"


def load_environment(context: Mapping[str, Any], env_name: str | None = None) -> EnvironmentConfig:
    """Build and validate the configuration of ``env_name`` (default: context ``env``, then ``dev``).

    ``context`` is the CDK app context (cdk.json + cdk.context.json + ``-c`` values). The AZ lookup
    of the environment's account/region, when committed, bounds ``network.az_count``.
    Raises :class:`ConfigError` with a one-line message on the first bad value.
    """
    name = env_name or context.get("env") or DEFAULT_ENVIRONMENT
    environments = context.get("environments")
    if not isinstance(environments, Mapping) or not environments:
        raise ConfigError("context 'environments' is missing or empty; define at least one environment in cdk.json")
    if name not in environments:
        raise ConfigError(f"env: unknown environment '{name}'; allowed: {', '.join(sorted(environments))}")
    raw = environments[name]
    if not isinstance(raw, Mapping):
        raise ConfigError(f"environments.{name}: expected an object, got {type(raw).__name__}")
    config = _build(EnvironmentConfig, {"name": name, **raw}, f"environments.{name}")
    zones = context.get(availability_zones_context_key(config.account, config.region))
    _validate(config, zones if isinstance(zones, list) else None)
    return config


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    """Instantiate ``cls`` from ``raw``, refusing unknown keys and values of the wrong type."""
    allowed = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown setting; allowed: {', '.join(sorted(allowed))}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{where}.{key}"
        if key in _NESTED:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected an object, got {value!r}")
            values[key] = _build(_NESTED[key], value, path)
        else:
            values[key] = _coerce(path, value, allowed[key])
    missing = [f.name for f in fields(cls) if f.name not in values and _has_no_default(f)]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: required setting is missing")
    return cls(**values)


def _has_no_default(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def _coerce(path: str, value: Any, f: Any) -> Any:
    """Check a scalar or list value against the field's declared type."""
    declared = str(f.type)
    if declared.startswith("tuple"):
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise ConfigError(f"{path}: expected a list of strings, got {value!r}")
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{path}: expected a list of strings, got {value!r}")
        return tuple(value)
    if declared.startswith("Mapping"):
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{path}: expected an object of string values, got {value!r}")
        return dict(value)
    if declared == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if declared == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected a whole number, got {value!r}")
        return value
    if declared == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if declared.startswith("str"):
        if value is None and "None" in declared:
            return None
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: expected a non-empty string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported value {value!r}")  # pragma: no cover - model types only


def _in_range(path: str, value: float, low: float, high: float, unit: str = "") -> None:
    if not low <= value <= high:
        raise ConfigError(f"{path}: {value}{unit} is out of range; allowed: {low} to {high}{unit}")


def _validate(c: EnvironmentConfig, region_zones: list[str] | None) -> None:
    """Cross-field and range checks. Every message starts with the field's path."""
    where = f"environments.{c.name}"
    if not _ACCOUNT.match(c.account):
        raise ConfigError(f"{where}.account: '{c.account}' is not an AWS account id; expected 12 digits")
    if not _REGION.match(c.region):
        raise ConfigError(f"{where}.region: '{c.region}' is not an AWS region name; expected e.g. us-east-2")
    if not _PREFIX.match(c.prefix):
        raise ConfigError(
            f"{where}.prefix: '{c.prefix}' is not allowed; expected 2-31 characters of a-z, 0-9 and '-', "
            "starting with a letter"
        )
    for i, email in enumerate(c.alarm_emails):
        if not _EMAIL.match(email):
            raise ConfigError(f"{where}.alarm_emails[{i}]: '{email}' is not a valid email address")
    for i, pack in enumerate(c.nag_packs):
        if pack not in KNOWN_NAG_PACKS:
            raise ConfigError(
                f"{where}.nag_packs[{i}]: unknown nag pack '{pack}'; allowed: {', '.join(KNOWN_NAG_PACKS)}"
            )
    _validate_network(c.network, f"{where}.network", region_zones, c.region)
    _validate_app_tier(c.app_tier, c.network, f"{where}.app_tier")
    _validate_rest(c, where)


def _validate_network(n: NetworkConfig, where: str, region_zones: list[str] | None, region: str) -> None:
    try:
        network = ipaddress.ip_network(n.cidr, strict=True)
    except ValueError:
        raise ConfigError(
            f"{where}.cidr: '{n.cidr}' is not a valid IPv4 network CIDR; expected e.g. 10.0.0.0/16"
        ) from None
    if network.version != 4:
        raise ConfigError(f"{where}.cidr: '{n.cidr}' is not IPv4; expected e.g. 10.0.0.0/16")
    _in_range(f"{where}.cidr prefix", network.prefixlen, *VPC_PREFIX_RANGE)
    if n.az_count < 2:
        raise ConfigError(f"{where}.az_count: {n.az_count} is too few; allowed: at least 2 (multi-AZ)")
    if region_zones is not None and n.az_count > len(region_zones):
        raise ConfigError(
            f"{where}.az_count: {n.az_count} is more than {region} has; allowed: 2 to {len(region_zones)}"
        )
    if n.subnet_prefix > SMALLEST_SUBNET_PREFIX:
        raise ConfigError(
            f"{where}.cidr: '{n.cidr}' is too small for {len(SUBNET_TIERS)} subnet tiers in {n.az_count} AZs "
            f"(each subnet would be /{n.subnet_prefix}); allowed: a network of /"
            f"{SMALLEST_SUBNET_PREFIX - (n.subnet_prefix - network.prefixlen)} or larger"
        )
    if not 0 <= n.nat_gateways <= n.az_count:
        raise ConfigError(
            f"{where}.nat_gateways: {n.nat_gateways} is not allowed; allowed: 0 to az_count ({n.az_count})"
        )
    if n.flow_log_retention_days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"{where}.flow_log_retention_days: {n.flow_log_retention_days} is not a CloudWatch Logs "
            f"retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )


def _validate_app_tier(a: AppTierConfig, n: NetworkConfig, where: str) -> None:
    if not _INSTANCE_TYPE.match(a.instance_type):
        raise ConfigError(f"{where}.instance_type: '{a.instance_type}' is not an EC2 instance type; e.g. t3.micro")
    if a.min_capacity < n.az_count:
        raise ConfigError(
            f"{where}.min_capacity: {a.min_capacity} leaves an AZ without an instance; "
            f"allowed: at least az_count ({n.az_count})"
        )
    if not a.min_capacity <= a.desired_capacity <= a.max_capacity:
        raise ConfigError(
            f"{where}.desired_capacity: {a.desired_capacity} is not allowed; allowed: min_capacity "
            f"({a.min_capacity}) <= desired_capacity <= max_capacity ({a.max_capacity})"
        )
    _in_range(f"{where}.service_port", a.service_port, 1024, 65535)
    _in_range(f"{where}.deregistration_delay_seconds", a.deregistration_delay_seconds, *DEREGISTRATION_DELAY_RANGE)
    _in_range(f"{where}.health_check_grace_seconds", a.health_check_grace_seconds, 0, 7200)
    _in_range(
        f"{where}.target_requests_per_instance_per_minute", a.target_requests_per_instance_per_minute, 1, 1_000_000
    )
    _in_range(f"{where}.target_cpu_percent", a.target_cpu_percent, 1, 100, "%")
    for key in ("certificate_arn", "web_acl_arn"):
        value = getattr(a, key)
        if value is not None and not _ARN.match(value):
            raise ConfigError(f"{where}.{key}: '{value}' is not an ARN; expected arn:aws:...")
    h, hw = a.health_check, f"{where}.health_check"
    if not h.path.startswith("/") or h.path == "/":
        raise ConfigError(
            f"{hw}.path: '{h.path}' is not allowed; expected an application path such as /healthcheck "
            "(a check of / only proves the process answers)"
        )
    _in_range(f"{hw}.interval_seconds", h.interval_seconds, *HEALTH_CHECK_INTERVAL_RANGE)
    _in_range(f"{hw}.timeout_seconds", h.timeout_seconds, *HEALTH_CHECK_TIMEOUT_RANGE)
    if h.timeout_seconds >= h.interval_seconds:
        raise ConfigError(
            f"{hw}.timeout_seconds: {h.timeout_seconds} is not allowed; allowed: less than interval_seconds "
            f"({h.interval_seconds})"
        )
    _in_range(f"{hw}.healthy_threshold", h.healthy_threshold, *HEALTH_CHECK_THRESHOLD_RANGE)
    _in_range(f"{hw}.unhealthy_threshold", h.unhealthy_threshold, *HEALTH_CHECK_THRESHOLD_RANGE)


def _validate_rest(c: EnvironmentConfig, where: str) -> None:
    o, s, r, p = c.observability, c.scaling, c.resilience, c.pipeline
    _in_range(
        f"{where}.observability.runaway_scaling_calls_per_5_minutes", o.runaway_scaling_calls_per_5_minutes, 1, 10000
    )
    _in_range(f"{where}.observability.p99_latency_seconds", o.p99_latency_seconds, 0.01, 60)
    _validate_observability(o, f"{where}.observability")
    if not 1 <= s.min_cells <= s.max_cells:
        raise ConfigError(
            f"{where}.scaling.max_cells: {s.max_cells} is not allowed; allowed: 1 <= min_cells ({s.min_cells}) "
            "<= max_cells"
        )
    _in_range(f"{where}.scaling.max_cells", s.max_cells, 1, 10)
    _in_range(f"{where}.scaling.cooldown_seconds", s.cooldown_seconds, 0, 86400)
    _in_range(f"{where}.scaling.cell_weight", s.cell_weight, 0, 255)
    _in_range(f"{where}.scaling.record_ttl_seconds", s.record_ttl_seconds, 0, 86400)
    if not _DNS_NAME.match(s.record_name):
        raise ConfigError(f"{where}.scaling.record_name: '{s.record_name}' is not a DNS name; e.g. app.example.com")
    if s.hosted_zone_id is not None and not _HOSTED_ZONE_ID.match(s.hosted_zone_id):
        raise ConfigError(
            f"{where}.scaling.hosted_zone_id: '{s.hosted_zone_id}' is not a Route 53 hosted zone id; e.g. Z0123456789AB"
        )
    if s.hosted_zone_id is None and s.record_name.count(".") < 2:
        # Without a zone id the scaler creates a private zone for the record's parent domain.
        raise ConfigError(
            f"{where}.scaling.record_name: '{s.record_name}' has no parent domain for the private zone; "
            "allowed: at least three labels (e.g. app.opex.internal) or set scaling.hosted_zone_id"
        )
    if not 0 < r.max_unhealthy_share <= 0.5:
        # The healer acts only on a minority; above half the fleet the cause is shared (see lambda/healer).
        raise ConfigError(
            f"{where}.resilience.max_unhealthy_share: {r.max_unhealthy_share} is not allowed; "
            "allowed: greater than 0 and at most 0.5 (a minority)"
        )
    # The healer keeps its rate-limit ledger in an Auto Scaling group tag (256 characters): 20 entries fit.
    _in_range(f"{where}.resilience.max_replacements_per_window", r.max_replacements_per_window, 1, 20)
    _in_range(f"{where}.resilience.replacement_window_minutes", r.replacement_window_minutes, 1, 1440)
    _in_range(f"{where}.resilience.experiment_duration_minutes", r.experiment_duration_minutes, 1, 720)
    if p.enabled and p.source_bucket is None and not (p.connection_arn and p.repository):
        raise ConfigError(
            f"{where}.pipeline.connection_arn: the pipeline is enabled but connection_arn and repository "
            "are not both set; allowed: both (a CodeStar connection) or source_bucket (an S3 source)"
        )
    if p.source_bucket is not None and (p.connection_arn or p.repository):
        raise ConfigError(
            f"{where}.pipeline.source_bucket: '{p.source_bucket}' is set together with connection_arn/repository; "
            "allowed: one source, either source_bucket or connection_arn + repository"
        )
    if p.connection_arn is not None and not re.match(
        r"^arn:aws[a-z-]*:(codestar-connections|codeconnections):", p.connection_arn
    ):
        raise ConfigError(
            f"{where}.pipeline.connection_arn: '{p.connection_arn}' is not a connection ARN; "
            "expected arn:aws:codeconnections:REGION:ACCOUNT:connection/ID"
        )
    if p.enabled and not p.stages:
        raise ConfigError(
            f'{where}.pipeline.stages: empty; allowed: one or more environment names, e.g. ["dev", "prod"]'
        )


def _validate_observability(o: ObservabilityConfig, where: str) -> None:
    _in_range(f"{where}.elb_5xx_per_minute", o.elb_5xx_per_minute, 1, 100000)
    for key in (
        "target_5xx_rate_percent",
        "fallback_rate_warning_percent",
        "fallback_rate_critical_percent",
        "dependency_error_rate_percent",
        "cpu_high_percent",
    ):
        _in_range(f"{where}.{key}", getattr(o, key), 0.1, 100, "%")
    if o.fallback_rate_warning_percent >= o.fallback_rate_critical_percent:
        raise ConfigError(
            f"{where}.fallback_rate_warning_percent: {o.fallback_rate_warning_percent} is not allowed; "
            f"allowed: less than fallback_rate_critical_percent ({o.fallback_rate_critical_percent})"
        )
    _in_range(f"{where}.dynamodb_latency_ms", o.dynamodb_latency_ms, 1, 60000)
    _in_range(f"{where}.scale_out_requests_per_target_per_minute", o.scale_out_requests_per_target_per_minute, 1, 10**6)
    if not 0 <= o.scale_in_requests_per_target_per_minute < o.scale_out_requests_per_target_per_minute:
        raise ConfigError(
            f"{where}.scale_in_requests_per_target_per_minute: {o.scale_in_requests_per_target_per_minute} is not "
            f"allowed; allowed: 0 <= it < scale_out_requests_per_target_per_minute "
            f"({o.scale_out_requests_per_target_per_minute})"
        )
    if o.audit_log_retention_days not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"{where}.audit_log_retention_days: {o.audit_log_retention_days} is not a CloudWatch Logs "
            f"retention; allowed: {', '.join(map(str, LOG_RETENTION_DAYS))}"
        )
