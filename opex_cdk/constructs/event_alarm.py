"""An alarm on "it happened at least once": the shape of every automation-failure alarm."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from constructs import Construct


def event_alarm(
    scope: Construct,
    id_: str,
    *,
    alarm_name: str,
    description: str,
    metric: cloudwatch.IMetric,
    topic: sns.ITopic,
    notify_ok: bool = False,
) -> cloudwatch.Alarm:
    """Alarm when ``metric`` is >= 1 in one period (a Lambda error, a message in a dead-letter queue).

    Missing data is not breaching: these metrics are only published when the event happens, so no data
    means none happened. ``notify_ok``: also send the return to OK to ``topic``. Default: False.
    """
    alarm = cloudwatch.Alarm(
        scope,
        id_,
        alarm_name=alarm_name,
        alarm_description=description,
        metric=metric,
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
    )
    action = cw_actions.SnsAction(topic)
    alarm.add_alarm_action(action)
    if notify_ok:
        alarm.add_ok_action(action)
    return alarm
