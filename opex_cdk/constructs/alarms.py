"""`ServiceAlarms`: every alarm of the service, named and routed deliberately, each naming its runbook."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Token
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from constructs import Construct

from opex_cdk.constructs.notifications import NotificationTopics

#: The service's embedded-metric-format contract (see webapp/metrics.py).
SERVICE_NAMESPACE = "OpexCdk/RecommendationService"
SERVICE_DIMENSIONS = {"Service": "RecommendationService"}

#: Alarm family -> runbook (relative to the repository root). Every alarm description names one.
RUNBOOKS = {
    "load-balancer": "docs/runbooks/load-balancer.md",
    "target-health": "docs/runbooks/target-health.md",
    "application": "docs/runbooks/application.md",
    "capacity": "docs/runbooks/capacity.md",
    "dynamodb": "docs/runbooks/dynamodb.md",
    "scaling": "docs/runbooks/scaling.md",
    "service-impaired": "docs/runbooks/service-impaired.md",
    "notifications": "docs/runbooks/notifications.md",
    "audit": "docs/runbooks/audit.md",
}

SEVERITIES = ("Warning", "Critical")
ALARM_NAME = re.compile(r"^[a-z][a-z0-9-]+-[a-z0-9]+-[A-Za-z0-9]+-(Warning|Critical)$")

# Why each treat-missing-data choice was made; the catalog prints these next to the alarm.
NO_DATA_IS_HEALTHY = "notBreaching: the metric is only published when the event happens, so no data means none"
NO_TRAFFIC_NO_RATE = "notBreaching: no requests means no rate to judge; silence is caught by the anomaly alarm"
AUTOMATION_NEEDS_EVIDENCE = "notBreaching: automation acts on this alarm, and must never act on an absence of data"
SILENCE_IS_BAD = "breaching: health checks alone keep this metric flowing, so no data means nothing reports"
CAPACITY_UNKNOWN = "breaching: no data means the hosts or group metrics are gone; either way capacity is unknown"


@dataclass(frozen=True)
class AlarmThresholds:
    """Thresholds of `ServiceAlarms`; every field documents its default."""

    #: ELB-generated 5xx per minute (the load balancer had no target to give the request to). Default: 10.
    elb_5xx_per_minute: int = 10
    #: Target 5xx as a share of requests, percent. Default: 5.
    target_5xx_rate_percent: float = 5.0
    #: p99 target response time, seconds. Default: 1.0.
    p99_latency_seconds: float = 1.0
    #: Fallback-served share of requests that warns, percent. Default: 5.
    fallback_rate_warning_percent: float = 5.0
    #: Fallback-served share that pages, percent. Default: 50.
    fallback_rate_critical_percent: float = 50.0
    #: Dependency errors as a share of requests, percent. Default: 5.
    dependency_error_rate_percent: float = 5.0
    #: Average CPU of the group, percent. Default: 80.
    cpu_high_percent: float = 80.0
    #: Average DynamoDB GetItem latency, milliseconds. Default: 50.
    dynamodb_latency_ms: float = 50.0
    #: Requests per target per minute above which a cell is added. Default: 600.
    scale_out_requests_per_target_per_minute: int = 600
    #: Requests per target per minute below which (with low CPU) a cell is removed. Default: 60.
    scale_in_requests_per_target_per_minute: int = 60
    #: CPU below which a cell counts as idle for scale-in, percent. Default: 30.
    scale_in_cpu_percent: float = 30.0
    #: Share of all unhealthy targets that must sit in one AZ to call it the outlier. Default: 0.7.
    zonal_outlier_share: float = 0.7


@dataclass(frozen=True)
class AlarmEntry:
    """One alarm as the catalog (docs/alarms.md) and the dashboard see it."""

    alarm: cloudwatch.AlarmBase
    name: str
    component: str
    severity: str
    topic: str
    runbook: str
    metric: str
    condition: str
    evaluation: str
    missing_data: str


class ServiceAlarms(Construct):
    """The service's alarms: load balancer, targets, application (EMF), EC2/ASG, DynamoDB, scaling, SNS.

    Names follow ``{prefix}-{component}-{metric}-{Warning|Critical}``; Critical alarms go to the
    ``critical`` topic (alarm and OK), Warning alarms to ``warning``; the two scaling signals go to
    ``scaling``, where the scaler recognises them by name (``scale_out_alarm_name``,
    ``scale_in_alarm_name``). Each description names its runbook in ``docs/runbooks/``. Zonal alarms
    combine impact AND outlier (this AZ has unhealthy targets AND holds most of the fleet's unhealthy
    targets), so a shared-dependency failure does not look like an AZ failure. ``service_impaired`` is a
    composite for the on-call page and the fault-injection stop condition.

    The ASG must collect group metrics (``GroupInServiceInstances``, ``GroupDesiredCapacity``) for the
    capacity alarms; without them those alarms go to ALARM (missing data is breaching there on purpose).

    Attributes: ``entries`` (list of `AlarmEntry`, in creation order), ``alarms`` (name -> alarm),
    ``service_impaired`` (cloudwatch.CompositeAlarm), ``unhealthy_hosts`` (the healer's trigger),
    ``scale_out`` / ``scale_in`` and their names, ``healthy_hosts_by_az`` / ``zonal_unhealthy_by_az``
    (AZ -> alarm), ``metrics`` (name -> metric, for the dashboard).
    """

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        prefix: str,
        topics: NotificationTopics,
        load_balancer: elbv2.IApplicationLoadBalancer,
        target_group: elbv2.IApplicationTargetGroup,
        auto_scaling_group: autoscaling.IAutoScalingGroup,
        table: dynamodb.ITable,
        availability_zones: Sequence[str],
        max_instances: int,
        min_healthy_per_az: int = 1,
        thresholds: AlarmThresholds | None = None,
    ) -> None:
        """Create the alarms.

        :param prefix: environment prefix, the first part of every alarm name.
        :param topics: where alarms go (critical, warning, scaling).
        :param load_balancer: the cell's ALB.
        :param target_group: the target group behind it (attached to the load balancer).
        :param auto_scaling_group: the instances.
        :param table: the dependency's DynamoDB table.
        :param availability_zones: the AZs the targets run in (literal names, e.g. ``us-east-2a``).
        :param max_instances: the group's maximum size: CPU high there means the cell is full.
        :param min_healthy_per_az: healthy targets each AZ must keep. Default: 1.
        :param thresholds: alarm thresholds. Default: `AlarmThresholds()`.
        """
        super().__init__(scope, id_)
        zones = list(availability_zones)
        if not zones or any(Token.is_unresolved(z) or not re.match(r"^[a-z0-9-]+$", z) for z in zones):
            raise ValueError(f"availability_zones must be literal AZ names such as us-east-2a, got {zones!r}")
        if min_healthy_per_az < 1:
            raise ValueError(f"min_healthy_per_az: {min_healthy_per_az} is not allowed; allowed: at least 1")
        if max_instances < 1:
            raise ValueError(f"max_instances: {max_instances} is not allowed; allowed: at least 1")
        t = thresholds or AlarmThresholds()
        self.prefix = prefix
        self.topics = topics
        self.thresholds = t
        self.entries: list[AlarmEntry] = []
        self.alarms: dict[str, cloudwatch.AlarmBase] = {}
        self.metrics: dict[str, cloudwatch.IMetric] = {}
        one_minute, five_minutes = Duration.minutes(1), Duration.minutes(5)

        # ---------------------------------------------------------------- load balancer
        lb, tg = load_balancer, target_group
        # Metrics are built from the load balancer's and target group's *full name* attributes rather than
        # the L2 `metrics` helpers, which split the ARN with intrinsics that cfn-lint cannot type-check once
        # they cross a stack boundary.
        self._lb_dims = {"LoadBalancer": lb.load_balancer_full_name}
        self._tg_dims = {**self._lb_dims, "TargetGroup": tg.target_group_full_name}
        elb_5xx = self._elb_metric("HTTPCode_ELB_5XX_Count", "Sum", target_group=False)
        requests = self._elb_metric("RequestCount", "Sum")
        target_5xx = self._elb_metric("HTTPCode_Target_5XX_Count", "Sum")
        p99 = self._elb_metric("TargetResponseTime", "p99")
        self.metrics.update(
            {
                "AlbRequests": requests,
                "Elb5xx": elb_5xx,
                "Target5xx": target_5xx,
                "Target4xx": self._elb_metric("HTTPCode_Target_4XX_Count", "Sum"),
                "TargetResponseTimeP99": p99,
            }
        )
        self.elb_5xx = self._alarm(
            "alb", "Elb5xx", "Critical", elb_5xx, t.elb_5xx_per_minute, ">", 3, 2, "load-balancer",
            "ALB-generated 5xx (HTTPCode_ELB_5XX_Count, Sum): requests that reached no working target",
            NO_DATA_IS_HEALTHY, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        target_5xx_rate = cloudwatch.MathExpression(
            expression="100 * FILL(t5xx, 0) / requests",
            using_metrics={"t5xx": target_5xx, "requests": requests},
            label="Target 5xx (% of requests)",
            period=one_minute,
        )
        self.target_5xx_rate = self._alarm(
            "alb", "Target5xxRate", "Critical", target_5xx_rate, t.target_5xx_rate_percent, ">", 5, 3,
            "load-balancer", "100 x HTTPCode_Target_5XX_Count / RequestCount (%): the service itself failed",
            NO_TRAFFIC_NO_RATE, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        self.p99_latency = self._alarm(
            "alb", "TargetResponseTimeP99", "Warning", p99, t.p99_latency_seconds, ">", 5, 3, "load-balancer",
            "TargetResponseTime p99 (seconds)", NO_TRAFFIC_NO_RATE, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        self.rejected_connections = self._alarm(
            "alb", "RejectedConnections", "Warning",
            self._elb_metric("RejectedConnectionCount", "Sum", target_group=False),
            0, ">", 1, 1, "load-balancer", "RejectedConnectionCount (Sum): the load balancer hit its connection limit",
            NO_DATA_IS_HEALTHY, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip

        # ---------------------------------------------------------------- target health
        unhealthy = self._elb_metric("UnHealthyHostCount", "Maximum")
        self.metrics["UnhealthyHosts"] = unhealthy
        self.unhealthy_hosts = self._alarm(
            "alb", "UnhealthyHosts", "Warning", unhealthy, 0, ">", 2, 2, "target-health",
            "UnHealthyHostCount (Maximum): a target fails the deep health check; the healer acts on this alarm",
            AUTOMATION_NEEDS_EVIDENCE, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        self.healthy_hosts_by_az: dict[str, cloudwatch.Alarm] = {}
        self.zonal_unhealthy_by_az: dict[str, cloudwatch.Alarm] = {}
        for zone in zones:
            tag = "".join(part.title() for part in zone.split("-"))
            healthy_az = self._elb_metric("HealthyHostCount", "Minimum", zone=zone)
            unhealthy_az = self._elb_metric("UnHealthyHostCount", "Maximum", zone=zone)
            self.metrics[f"HealthyHosts{tag}"] = healthy_az
            self.healthy_hosts_by_az[zone] = self._alarm(
                "alb", f"HealthyHosts{tag}", "Critical", healthy_az, min_healthy_per_az, "<", 3, 3, "target-health",
                f"HealthyHostCount in {zone} (Minimum): the AZ is below its minimum of healthy targets",
                CAPACITY_UNKNOWN, cloudwatch.TreatMissingData.BREACHING,
            )  # fmt: skip
            # Impact AND outlier in one expression: this AZ has unhealthy targets, and it holds most of
            # the fleet's unhealthy targets. A dependency failure makes every AZ unhealthy alike: no outlier.
            zonal = cloudwatch.MathExpression(
                expression=f"IF(az > 0 AND az / all >= {t.zonal_outlier_share}, 1, 0)",
                using_metrics={"az": unhealthy_az, "all": unhealthy},
                label=f"{zone} is the unhealthy outlier (1 = yes)",
                period=one_minute,
            )
            self.zonal_unhealthy_by_az[zone] = self._alarm(
                "alb", f"ZonalUnhealthy{tag}", "Warning", zonal, 1, ">=", 3, 3, "target-health",
                f"UnHealthyHostCount in {zone} > 0 AND >= {t.zonal_outlier_share:.0%} of all unhealthy targets",
                AUTOMATION_NEEDS_EVIDENCE, cloudwatch.TreatMissingData.NOT_BREACHING,
            )  # fmt: skip

        # ---------------------------------------------------------------- application (EMF)
        def service(name: str, statistic: str = "Sum", period: Duration = one_minute) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=SERVICE_NAMESPACE,
                metric_name=name,
                dimensions_map=SERVICE_DIMENSIONS,
                statistic=statistic,
                period=period,
            )

        app_requests = service("Requests")
        page_requests = service("PageRequests")
        for name in (
            "Requests", "PageRequests", "FallbackServed", "DependencyErrors", "Status2xx", "Status4xx", "Status5xx",
        ):  # fmt: skip
            self.metrics[name] = service(name)
        self.metrics["LatencyP99"] = service("Latency", "p99")
        fallback_rate = cloudwatch.MathExpression(
            # Over page requests only: health checks never serve a fallback and would dilute the share.
            expression="100 * FILL(fallback, 0) / pages",
            using_metrics={"fallback": service("FallbackServed"), "pages": page_requests},
            label="Fallback served (% of page requests)",
            period=one_minute,
        )
        self.metrics["FallbackRate"] = fallback_rate
        self.fallback_rate_warning = self._alarm(
            "app", "FallbackRate", "Warning", fallback_rate, t.fallback_rate_warning_percent, ">", 5, 3,
            "application", "100 x FallbackServed / PageRequests (%): some users get the static recommendation",
            NO_TRAFFIC_NO_RATE, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        self.fallback_rate_critical = self._alarm(
            "app", "FallbackRate", "Critical", fallback_rate, t.fallback_rate_critical_percent, ">", 3, 3,
            "application", "100 x FallbackServed / PageRequests (%): the dependency is failing for users",
            NO_TRAFFIC_NO_RATE, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        dependency_rate = cloudwatch.MathExpression(
            expression="100 * FILL(errors, 0) / requests",
            using_metrics={"errors": service("DependencyErrors"), "requests": app_requests},
            label="Dependency errors (% of requests)",
            period=one_minute,
        )
        self.metrics["DependencyErrorRate"] = dependency_rate
        self.dependency_error_rate = self._alarm(
            "app", "DependencyErrorRate", "Warning", dependency_rate, t.dependency_error_rate_percent, ">", 5, 3,
            "application", "100 x DependencyErrors / Requests (%)",
            NO_TRAFFIC_NO_RATE, cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        self.request_anomaly = self._anomaly_alarm(service("Requests", period=five_minutes))

        # ---------------------------------------------------------------- EC2 / Auto Scaling
        group = {"AutoScalingGroupName": auto_scaling_group.auto_scaling_group_name}
        cpu = cloudwatch.Metric(
            namespace="AWS/EC2", metric_name="CPUUtilization", dimensions_map=group, statistic="Average",
            period=five_minutes,
        )  # fmt: skip
        self.metrics["Cpu"] = cpu
        self.cpu_high = self._alarm(
            "asg", "CpuHigh", "Warning", cpu, t.cpu_high_percent, ">", 3, 3, "capacity",
            "CPUUtilization of the group (Average; 5-minute basic monitoring)",
            "notBreaching: no instances means no CPU to judge; the in-service alarm covers missing hosts",
            cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        status = cloudwatch.Metric(
            namespace="AWS/EC2", metric_name="StatusCheckFailed", dimensions_map=group, statistic="Maximum",
            period=one_minute,
        )  # fmt: skip
        self.status_check_failed = self._alarm(
            "asg", "StatusCheckFailed", "Warning", status, 0, ">", 2, 2, "capacity",
            "StatusCheckFailed of any instance in the group (Maximum)",
            NO_DATA_IS_HEALTHY.replace("only published when the event happens", "absent only without instances"),
            cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        in_service = cloudwatch.Metric(
            namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances", dimensions_map=group,
            statistic="Minimum", period=one_minute,
        )  # fmt: skip
        desired = cloudwatch.Metric(
            namespace="AWS/AutoScaling", metric_name="GroupDesiredCapacity", dimensions_map=group,
            statistic="Maximum", period=one_minute,
        )  # fmt: skip
        self.metrics["InService"] = in_service
        self.metrics["Desired"] = desired
        shortfall = cloudwatch.MathExpression(
            expression="desired - inservice",
            using_metrics={"desired": desired, "inservice": in_service},
            label="Desired minus in-service instances",
            period=one_minute,
        )
        # A replacement takes 4-5 minutes (workshop figure): 10 minutes short is a stuck replacement.
        self.in_service_below_desired = self._alarm(
            "asg", "InServiceBelowDesired", "Critical", shortfall, 0, ">", 10, 10, "capacity",
            "GroupDesiredCapacity - GroupInServiceInstances (needs group metrics collection)",
            CAPACITY_UNKNOWN, cloudwatch.TreatMissingData.BREACHING,
        )  # fmt: skip

        # ---------------------------------------------------------------- DynamoDB
        table_dims = {"TableName": table.table_name}
        throttles = cloudwatch.MathExpression(
            expression="FILL(reads, 0) + FILL(writes, 0)",
            using_metrics={
                "reads": table.metric("ReadThrottleEvents", statistic="Sum", period=one_minute),
                "writes": table.metric("WriteThrottleEvents", statistic="Sum", period=one_minute),
            },
            label="Throttle events (read + write)",
            period=one_minute,
        )
        self.metrics["DynamoDbThrottles"] = throttles
        self.dynamodb_throttles = self._alarm(
            "ddb", "Throttles", "Warning", throttles, 0, ">", 3, 2, "dynamodb",
            "ReadThrottleEvents + WriteThrottleEvents (Sum)", NO_DATA_IS_HEALTHY,
            cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        system_errors = cloudwatch.Metric(
            namespace="AWS/DynamoDB", metric_name="SystemErrors", dimensions_map={**table_dims, "Operation": "GetItem"},
            statistic="Sum", period=one_minute,
        )  # fmt: skip
        self.dynamodb_system_errors = self._alarm(
            "ddb", "SystemErrors", "Warning", system_errors, 0, ">", 3, 2, "dynamodb",
            "SystemErrors of GetItem (Sum): DynamoDB itself failed requests", NO_DATA_IS_HEALTHY,
            cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip
        latency = cloudwatch.Metric(
            namespace="AWS/DynamoDB", metric_name="SuccessfulRequestLatency",
            dimensions_map={**table_dims, "Operation": "GetItem"}, statistic="Average", period=one_minute,
        )  # fmt: skip
        self.metrics["DynamoDbLatency"] = latency
        self.dynamodb_latency = self._alarm(
            "ddb", "GetItemLatency", "Warning", latency, t.dynamodb_latency_ms, ">", 5, 5, "dynamodb",
            "SuccessfulRequestLatency of GetItem (Average, ms)", NO_TRAFFIC_NO_RATE,
            cloudwatch.TreatMissingData.NOT_BREACHING,
        )  # fmt: skip

        # ---------------------------------------------------------------- scaling signals (-> scaling topic)
        per_target = self._elb_metric("RequestCountPerTarget", "Sum", period=five_minutes)
        in_service_5m = cloudwatch.Metric(
            namespace="AWS/AutoScaling", metric_name="GroupInServiceInstances", dimensions_map=group,
            statistic="Maximum", period=five_minutes,
        )  # fmt: skip
        self.metrics["RequestsPerTarget"] = per_target
        out_threshold = t.scale_out_requests_per_target_per_minute * 5
        scale_out = cloudwatch.MathExpression(
            expression=f"IF(FILL(rpt, 0) > {out_threshold} OR "
            f"(cpu > {t.cpu_high_percent} AND n >= {max_instances}), 1, 0)",
            using_metrics={"rpt": per_target, "cpu": cpu, "n": in_service_5m},
            label="Cell is full (1 = yes)",
            period=five_minutes,
        )
        self.scale_out = self._alarm(
            "cell", "ScaleOut", "Warning", scale_out, 1, ">=", 3, 3, "scaling",
            f"RequestCountPerTarget > {t.scale_out_requests_per_target_per_minute}/min OR (CPU > "
            f"{t.cpu_high_percent:g}% AND in-service >= max {max_instances}), 15 minutes",
            AUTOMATION_NEEDS_EVIDENCE, cloudwatch.TreatMissingData.NOT_BREACHING, topic="scaling",
        )  # fmt: skip
        in_threshold = t.scale_in_requests_per_target_per_minute * 5
        scale_in = cloudwatch.MathExpression(
            expression=f"IF(FILL(rpt, 0) < {in_threshold} AND cpu < {t.scale_in_cpu_percent}, 1, 0)",
            using_metrics={"rpt": per_target, "cpu": cpu},
            label="Cell is idle (1 = yes)",
            period=five_minutes,
        )
        self.scale_in = self._alarm(
            "cell", "ScaleIn", "Warning", scale_in, 1, ">=", 6, 6, "scaling",
            f"RequestCountPerTarget < {t.scale_in_requests_per_target_per_minute}/min AND CPU < "
            f"{t.scale_in_cpu_percent:g}%, 30 minutes",
            "notBreaching: scaling in is the risky direction; no CPU data (no instances) must not remove a cell",
            cloudwatch.TreatMissingData.NOT_BREACHING, topic="scaling",
        )  # fmt: skip
        self.scale_out_alarm_name = self.entries[-2].name
        self.scale_in_alarm_name = self.entries[-1].name

        # ---------------------------------------------------------------- notification delivery
        # A topic's failures are reported on another people topic: reporting them on itself may fail too.
        for source, severity, target in (("critical", "Warning", "warning"), ("warning", "Critical", "critical"),
                                         ("scaling", "Warning", "warning")):  # fmt: skip
            failed = topics.topics[source].metric_number_of_notifications_failed(period=five_minutes, statistic="Sum")
            self._alarm(
                "sns", f"{source.title()}DeliveryFailed", severity, failed, 0, ">", 1, 1, "notifications",
                f"NumberOfNotificationsFailed of the {source} topic (Sum)", NO_DATA_IS_HEALTHY,
                cloudwatch.TreatMissingData.NOT_BREACHING, topic=target,
            )  # fmt: skip

        # ---------------------------------------------------------------- service impaired (composite)
        impaired_rule = cloudwatch.AlarmRule.any_of(
            cloudwatch.AlarmRule.from_alarm(self.elb_5xx, cloudwatch.AlarmState.ALARM),
            cloudwatch.AlarmRule.from_alarm(self.target_5xx_rate, cloudwatch.AlarmState.ALARM),
            cloudwatch.AlarmRule.from_alarm(self.fallback_rate_critical, cloudwatch.AlarmState.ALARM),
            cloudwatch.AlarmRule.all_of(
                *(
                    cloudwatch.AlarmRule.from_alarm(a, cloudwatch.AlarmState.ALARM)
                    for a in self.healthy_hosts_by_az.values()
                )
            ),
        )
        name = f"{prefix}-service-Impaired-Critical"
        self.service_impaired = cloudwatch.CompositeAlarm(
            self,
            "ServiceImpaired",
            composite_alarm_name=name,
            alarm_rule=impaired_rule,
            alarm_description=f"Users are affected: ELB 5xx, target 5xx, fallback served to most users, or no AZ "
            f"has healthy targets. Runbook: {RUNBOOKS['service-impaired']}",
        )
        self._route(self.service_impaired, "Critical", "critical")
        self._record(
            self.service_impaired, name, "service", "Critical", "critical", "service-impaired",
            "Composite: Elb5xx OR Target5xxRate OR FallbackRate-Critical OR (HealthyHosts below minimum in every AZ)",
            "any child in ALARM", "children's periods",
            "n/a: a composite follows its children's states (each child's choice is listed)",
        )  # fmt: skip

    # ------------------------------------------------------------------------------------------ helpers

    def _alarm(
        self,
        component: str,
        metric_name: str,
        severity: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        comparison: str,
        evaluation_periods: int,
        datapoints: int,
        family: str,
        summary: str,
        missing_reason: str,
        missing: cloudwatch.TreatMissingData,
        *,
        topic: str | None = None,
    ) -> cloudwatch.Alarm:
        """Create, route and record one metric alarm. ``topic`` defaults to the severity's topic."""
        operators = {
            ">": cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ">=": cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            "<": cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        }
        name = f"{self.prefix}-{component}-{metric_name}-{severity}"
        alarm = cloudwatch.Alarm(
            self,
            f"{component.title()}{metric_name}{severity}",
            alarm_name=name,
            alarm_description=f"{summary}. Runbook: {RUNBOOKS[family]}",
            metric=metric,
            threshold=threshold,
            comparison_operator=operators[comparison],
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints,
            treat_missing_data=missing,
        )
        destination = topic or severity.lower()
        self._route(alarm, severity, destination)
        config = metric.to_metric_config()
        if config.metric_stat is not None:
            seconds = int(config.metric_stat.period.to_seconds())
        else:  # a math expression's period is a plain number of seconds
            seconds = int(config.math_expression.period)  # type: ignore[union-attr]
        self._record(
            alarm, name, component, severity, destination, family, summary, f"{comparison} {threshold:g}",
            f"{datapoints} of {evaluation_periods} x {seconds} s", missing_reason,
        )  # fmt: skip
        return alarm

    def _anomaly_alarm(self, metric: cloudwatch.Metric) -> cloudwatch.AnomalyDetectionAlarm:
        name = f"{self.prefix}-app-RequestRateAnomaly-Warning"
        alarm = cloudwatch.AnomalyDetectionAlarm(
            self,
            "AppRequestRateAnomalyWarning",
            alarm_name=name,
            alarm_description="Requests (Sum per 5 minutes) outside the anomaly band of 3 standard deviations. "
            f"Runbook: {RUNBOOKS['application']}",
            metric=metric,
            std_devs=3,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_LOWER_OR_GREATER_THAN_UPPER_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        self._route(alarm, "Warning", "warning")
        self._record(
            alarm, name, "app", "Warning", "warning", "application",
            "Requests (Sum): traffic far above or below normal",
            "outside band of 3 std devs", "3 of 3 x 300 s", SILENCE_IS_BAD,
        )  # fmt: skip
        return alarm

    def _route(self, alarm: cloudwatch.AlarmBase, severity: str, topic: str) -> None:
        action = actions.SnsAction(self.topics.topics[topic])
        alarm.add_alarm_action(action)
        if severity == "Critical":
            alarm.add_ok_action(action)  # the on-call engineer learns that it recovered

    def _record(
        self,
        alarm: cloudwatch.AlarmBase,
        name: str,
        component: str,
        severity: str,
        topic: str,
        family: str,
        summary: str,
        condition: str,
        evaluation: str,
        missing_data: str,
    ) -> None:
        if severity not in SEVERITIES or not ALARM_NAME.match(name):
            raise ValueError(f"alarm name '{name}' does not follow {{prefix}}-{{component}}-{{metric}}-{{severity}}")
        if name in self.alarms:
            raise ValueError(f"alarm name '{name}' is used twice")
        entry = AlarmEntry(alarm, name, component, severity, topic, RUNBOOKS[family], summary, condition,
                           evaluation, missing_data)  # fmt: skip
        self.entries.append(entry)
        self.alarms[name] = alarm

    def _elb_metric(
        self,
        name: str,
        statistic: str,
        *,
        target_group: bool = True,
        zone: str | None = None,
        period: Duration | None = None,
    ) -> cloudwatch.Metric:
        """An AWS/ApplicationELB metric of the load balancer, or of the target group (optionally in one AZ)."""
        dimensions = dict(self._tg_dims if target_group else self._lb_dims)
        if zone is not None:
            dimensions["AvailabilityZone"] = zone
        return cloudwatch.Metric(
            namespace="AWS/ApplicationELB",
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period or Duration.minutes(1),
        )
