"""`ServiceDashboard`: the CloudWatch dashboard, drawn from the same objects the alarms are made of."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from opex_cdk.constructs.alarms import ServiceAlarms

_WIDTH, _HEIGHT = 8, 6


class ServiceDashboard(Construct):
    """One dashboard per environment, built from a `ServiceAlarms`: its metrics are the alarms' metrics
    and every alarm threshold is drawn as an annotation, so a graph and its alarm cannot drift apart.

    Rows: request rate, errors by class, latency; healthy hosts per AZ, fallback share, dependency
    errors; then the state of every alarm.

    Attributes: ``dashboard`` (cloudwatch.Dashboard).
    """

    def __init__(self, scope: Construct, id_: str, *, alarms: ServiceAlarms, dashboard_name: str | None = None) -> None:
        """Create the dashboard.

        :param alarms: the alarms (and metrics) to draw.
        :param dashboard_name: name of the dashboard. Default: ``{prefix}-service``.
        """
        super().__init__(scope, id_)
        m = alarms.metrics

        def graph(
            title: str, left: list[cloudwatch.IMetric], annotations: tuple[cloudwatch.Alarm, ...] = ()
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title,
                left=left,
                left_annotations=[a.to_annotation() for a in annotations],
                width=_WIDTH,
                height=_HEIGHT,
            )

        # The per-AZ alarms' own metrics; one threshold line is enough (every AZ has the same minimum).
        healthy = [alarm.metric.with_(label=zone) for zone, alarm in alarms.healthy_hosts_by_az.items()]
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name or f"{alarms.prefix}-service",
            widgets=[
                [
                    graph(
                        "Request rate (per minute)",
                        [m["AlbRequests"].with_(label="ALB requests"), m["Requests"].with_(label="Service requests")],
                    ),
                    graph(
                        "Errors by class",
                        [
                            m["Elb5xx"].with_(label="ELB 5xx"),
                            m["Target5xx"].with_(label="Target 5xx"),
                            m["Target4xx"].with_(label="Target 4xx"),
                            m["Status5xx"].with_(label="Service 5xx"),
                            m["Status4xx"].with_(label="Service 4xx"),
                        ],
                        (alarms.elb_5xx,),
                    ),
                    graph(
                        "Latency p99 (s at the ALB)",
                        [m["TargetResponseTimeP99"].with_(label="Target response time p99")],
                        (alarms.p99_latency,),
                    ),
                ],
                [
                    graph("Healthy hosts per AZ", healthy, (next(iter(alarms.healthy_hosts_by_az.values())),)),
                    graph(
                        "Fallback share (% of requests)",
                        [m["FallbackRate"]],
                        (alarms.fallback_rate_warning, alarms.fallback_rate_critical),
                    ),
                    graph(
                        "Dependency errors",
                        [m["DependencyErrorRate"], m["DynamoDbThrottles"]],
                        (alarms.dependency_error_rate,),
                    ),
                ],
                [
                    cloudwatch.AlarmStatusWidget(
                        title="Every alarm",
                        alarms=[e.alarm for e in alarms.entries],
                        width=3 * _WIDTH,
                        height=_HEIGHT,
                    )
                ],
            ],
        )
