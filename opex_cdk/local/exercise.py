"""What the rehearsal does with the deployed environment: drive the scaler, flip the dependency flag.

Each exercise returns ``(name, detail, passed)`` with ``passed`` ``None`` when it could not run (its code or
its stack is not in this tree yet): reported as NOT RUN, never as a pass.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opex_cdk.config import EnvironmentConfig
from opex_cdk.local.seed import local_client
from opex_cdk.project_context import PROJECT_ROOT

Result = tuple[str, str, bool | None]


def run_exercises(
    config: EnvironmentConfig,
    endpoint_url: str,
    assembly: Path,
    env: Mapping[str, str],
    *,
    not_rehearsed: set[str] | frozenset[str] = frozenset(),
) -> list[Result]:
    """Every exercise, in order; one failing does not stop the next.

    An exercise that fails because it needs a stack moto could not create (``not_rehearsed``) is reported
    NOT RUN with that reason, not as a pass and not as a failure of the code under test.
    """
    results = [
        _guarded("scaler: scale out, then in", lambda: exercise_scaler(config, endpoint_url, assembly, env)),
        _guarded("levers: dependency flag off, then on", lambda: exercise_levers(config, endpoint_url, env)),
    ]
    return [
        (name, f"{detail} (a stack it needs was not rehearsed)", None)
        if passed is False and any(f"'{stack}'" in detail or f" {stack} " in detail for stack in not_rehearsed)
        else (name, detail, passed)
        for name, detail, passed in results
    ]


def _guarded(name: str, run: Any) -> Result:
    try:
        detail, passed = run()
    except Exception as error:  # noqa: BLE001 - an exercise failing is a finding, reported with its cause
        return name, f"{type(error).__name__}: {error}", False
    return name, detail, passed


def exercise_levers(config: EnvironmentConfig, endpoint_url: str, env: Mapping[str, str]) -> tuple[str, bool | None]:
    """``python -m opex_cdk.levers flag off|on --env NAME`` against the deployed flag parameter."""
    if importlib.util.find_spec("opex_cdk.levers") is None:
        return "opex_cdk.levers is not in this tree yet", None
    ssm = local_client("ssm", endpoint_url, config.region)
    name = config.data.flag_parameter_name
    try:
        before = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return f"parameter {name} was not deployed (no Data stack in this environment?)", False
    seen = []
    for value, word in (("false", "off"), ("true", "on")):
        completed = subprocess.run(
            [sys.executable, "-m", "opex_cdk.levers", "--env", config.name, "flag", word],
            cwd=PROJECT_ROOT,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if completed.returncode != 0:
            return f"levers flag {word} exited {completed.returncode}: {completed.stderr.strip()[-300:]}", False
        now = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        seen.append(now)
        if now != value:
            return f"after 'flag {word}' {name} is {now!r}, expected {value!r}", False
    return f"{name}: {before} -> {seen[0]} -> {seen[1]} (read back from SSM after each call)", True


#: Logical id of the scaler function in the Scaling stack (pinned by tests/unit/test_scaling_stack.py).
SCALER_LOGICAL_PREFIX = "ScalerFunction"
#: What the rehearsal shortens, and why: it must not wait out a 300 s cooldown and a 70 s drain.
SCALER_OVERRIDES = {"COOLDOWN_SECONDS": "0", "DRAIN_SECONDS": "0"}


def exercise_scaler(
    config: EnvironmentConfig, endpoint_url: str, assembly: Path, env: Mapping[str, str]
) -> tuple[str, bool | None]:
    """Drive the *deployed* scaler through a whole scale-out and scale-in against the deployed resources.

    The function's published code and environment run in a fresh process (:mod:`opex_cdk.local.lambda_runner`;
    moto cannot run Lambdas without Docker), with ``SCALER_OVERRIDES`` (no cooldown, no drain wait). Steps,
    each checked through the AWS APIs of moto, not through the handler's answer alone:

    1. the scale-out alarm's SNS notification -> a cell stack ``{prefix}-2`` is CREATE_COMPLETE (created from the
       cell template asset in the bootstrap bucket);
    2. the CloudFormation status-change event -> a weighted alias record for it in the hosted zone, aimed at the
       cell's load balancer;
    3. the scale-in alarm's notification -> the record's weight is 0 (draining);
    4. the next reconcile -> the record is gone and the stack deleted;
    5. every step was told on the Warning topic (an SQS queue subscribed for the rehearsal reads them).
    """
    index = PROJECT_ROOT / "lambda" / "scaler" / "index.py"
    if not index.exists():
        return "lambda/scaler/index.py is not in this tree yet", None
    from opex_cdk.local.lambda_runner import invoke, load_deployed_function

    cloudformation = local_client("cloudformation", endpoint_url, config.region)
    route53 = local_client("route53", endpoint_url, config.region)
    stack = f"{config.prefix}-scaling"
    try:
        resources = [
            summary
            for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack)
            for summary in page["StackResourceSummaries"]
        ]
    except Exception as error:  # noqa: BLE001 - reported as "not deployed", with moto's words
        return f"stack '{stack}' is not deployed: {error}", False
    logical_id = next(
        (
            r["LogicalResourceId"]
            for r in resources
            if r.get("ResourceType") == "AWS::Lambda::Function"
            and r.get("LogicalResourceId", "").startswith(SCALER_LOGICAL_PREFIX)
        ),
        None,
    )
    if logical_id is None:
        return f"stack '{stack}' has no {SCALER_LOGICAL_PREFIX}* function", False
    steps: list[str] = []

    with tempfile.TemporaryDirectory(prefix="scaler-code-") as code:
        function = load_deployed_function(
            cloudformation,
            local_client("lambda", endpoint_url, config.region),
            local_client("s3", endpoint_url, config.region),
            stack_name=stack,
            logical_id=logical_id,
            code_dir=Path(code),
        )
        variables = function.environment
        observer = _subscribe_observer(endpoint_url, config.region, variables["TOPIC_ARN"])

        def invoke_scaler(event: dict[str, Any]) -> dict[str, Any]:
            return invoke(function, event, endpoint_url=endpoint_url, region=config.region, overrides=SCALER_OVERRIDES)

        cell = f"{variables['CELL_STACK_PREFIX']}-2"
        result = invoke_scaler(_alarm_notification(variables["SCALE_OUT_ALARM"], variables["TOPIC_ARN"]))
        status = _stack_status(cloudformation, cell)
        if result.get("action") != "create" or status != "CREATE_COMPLETE":
            return f"scale-out alarm: handler returned {result}, {cell} is {status}", False
        steps.append(f"scale-out alarm -> {cell} {status}")

        invoke_scaler(_stack_event(cell))
        record = _cell_record(route53, variables, cell)
        outputs = _outputs(cloudformation, cell)
        if record is None:
            return f"after the stack event no weighted record for {cell} in {variables['RECORD_NAME']}", False
        target = record.get("AliasTarget", {}).get("DNSName", "").rstrip(".").lower()
        if target != outputs.get("LoadBalancerDnsName", "").rstrip(".").lower() or record["Weight"] == 0:
            return f"record for {cell} is {record}, expected weight > 0 aimed at {outputs}", False
        steps.append(f"stack event -> record {record['SetIdentifier']} weight {record['Weight']} -> {target}")

        result = invoke_scaler(_alarm_notification(variables["SCALE_IN_ALARM"], variables["TOPIC_ARN"]))
        record = _cell_record(route53, variables, cell)
        if result.get("action") != "drain" or record is None or record["Weight"] != 0:
            return f"scale-in alarm: handler returned {result}, record now {record}", False
        steps.append(f"scale-in alarm -> {cell} draining (weight 0)")

        invoke_scaler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
        status, record = _stack_status(cloudformation, cell), _cell_record(route53, variables, cell)
        if record is not None or status not in ("DELETE_COMPLETE", "DELETE_IN_PROGRESS", "gone"):
            return f"after the drain: record {record}, {cell} is {status}", False
        steps.append(f"reconcile -> record removed, {cell} {status}")

    subjects = _received_subjects(observer)
    wanted = ("scale-out", "scale-in")
    if not all(any(w in subject for subject in subjects) for w in wanted):
        return f"{'; '.join(steps)}; but the Warning topic carried only {subjects}", False
    steps.append(f"{len(subjects)} notifications on the Warning topic")
    overrides = ", ".join(f"{k}={v}" for k, v in SCALER_OVERRIDES.items())
    return f"{'; '.join(steps)} (deployed code and environment, {overrides} for the rehearsal)", True


def _alarm_notification(alarm_name: str, topic_arn: str) -> dict[str, Any]:
    """The SNS event Lambda receives when CloudWatch publishes an alarm's change to ALARM."""
    now = datetime.now(UTC)
    message = {
        "AlarmName": alarm_name,
        "NewStateValue": "ALARM",
        "OldStateValue": "OK",
        "NewStateReason": "deploy rehearsal",
        "StateChangeTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000",
    }
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "Sns": {"TopicArn": topic_arn, "Subject": f'ALARM: "{alarm_name}"', "Message": json.dumps(message)},
            }
        ]
    }


def _stack_event(stack_name: str) -> dict[str, Any]:
    """The EventBridge event CloudFormation sends when a stack's status changes."""
    return {
        "source": "aws.cloudformation",
        "detail-type": "CloudFormation Stack Status Change",
        "detail": {"stack-id": stack_name, "status-details": {"status": "CREATE_COMPLETE"}},
    }


def _stack_status(cloudformation: Any, name: str) -> str:
    try:
        return str(cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"])
    except Exception as error:  # noqa: BLE001 - moto answers "does not exist" for a deleted stack
        if "does not exist" in str(error):
            return "gone"
        raise


def _outputs(cloudformation: Any, name: str) -> dict[str, str]:
    outputs = cloudformation.describe_stacks(StackName=name)["Stacks"][0].get("Outputs", [])
    return {o["OutputKey"]: o["OutputValue"] for o in outputs}


def _cell_record(route53: Any, variables: Mapping[str, str], cell: str) -> dict[str, Any] | None:
    name = variables["RECORD_NAME"].rstrip(".") + "."
    records = route53.list_resource_record_sets(HostedZoneId=variables["HOSTED_ZONE_ID"])["ResourceRecordSets"]
    return next((r for r in records if r["Name"] == name and r.get("SetIdentifier") == cell), None)


def _subscribe_observer(endpoint_url: str, region: str, topic_arn: str) -> tuple[Any, str]:
    """An SQS queue subscribed to ``topic_arn`` (raw delivery), to read what the scaler told engineers."""
    sqs, sns = local_client("sqs", endpoint_url, region), local_client("sns", endpoint_url, region)
    queue_url = sqs.create_queue(QueueName="deploy-rehearsal-observer")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
    return sqs, queue_url


def _received_subjects(observer: tuple[Any, str]) -> list[str]:
    sqs, queue_url = observer
    subjects: list[str] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return subjects
        for message in messages:
            subjects.append(str(json.loads(message["Body"]).get("Subject", "")))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
