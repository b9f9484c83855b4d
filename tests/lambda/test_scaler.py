"""The cell scaler handler (lambda/scaler/index.py) against moto: every path of issue 6, no AWS.

Each test gets a fresh moto world: the cell template in S3, the Warning topic (captured through an SQS
subscription), the dead-letter queue, the state/idempotency table and the hosted zone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.cloudformation.models import cloudformation_backends

from opex_cdk.assets import lambda_code_dir

REGION = "us-east-2"
ACCOUNT = "123456789012"
RECORD = "app.opex.internal"
OUT, IN = "opex-test-scaling-ScaleOut", "opex-test-scaling-ScaleIn"

# A stand-in cell template: moto does not run an ALB, so the outputs the scaler reads are computed.
CELL_TEMPLATE = {
    "Parameters": {"CellId": {"Type": "String"}},
    "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
    "Outputs": {
        "LoadBalancerDnsName": {"Value": {"Fn::Sub": "cell-${CellId}.us-east-2.elb.amazonaws.com"}},
        "LoadBalancerHostedZoneId": {"Value": "Z3AADJGX6KTTL2"},
    },
}


def _load_scaler() -> ModuleType:
    name = "opex_scaler_index"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, lambda_code_dir("scaler") / "index.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


scaler = _load_scaler()


@dataclass
class Context:
    function_name: str = "opex-test-scaler"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:opex-test-scaler"
    aws_request_id: str = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class World:
    zone_id: str
    mail_queue: str
    dlq: str
    env: dict[str, str]
    prefix: str

    def invoke(self, event: Any) -> dict[str, Any]:
        return scaler.handler(event, Context())

    def mails(self) -> list[str]:
        sqs = boto3.client("sqs", region_name=REGION)
        out = []
        while True:
            got = sqs.receive_message(QueueUrl=self.mail_queue, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return out
            for m in got:
                out.append(json.loads(m["Body"])["Subject"])
                sqs.delete_message(QueueUrl=self.mail_queue, ReceiptHandle=m["ReceiptHandle"])

    def dead_letters(self) -> list[dict[str, Any]]:
        sqs = boto3.client("sqs", region_name=REGION)
        got = sqs.receive_message(QueueUrl=self.dlq, MaxNumberOfMessages=10).get("Messages", [])
        for m in got:
            sqs.delete_message(QueueUrl=self.dlq, ReceiptHandle=m["ReceiptHandle"])
        return [json.loads(m["Body"]) for m in got]

    def stacks(self) -> dict[str, str]:
        cfn = boto3.client("cloudformation", region_name=REGION)
        return {
            s["StackName"]: s["StackStatus"]
            for s in cfn.describe_stacks()["Stacks"]
            if s["StackStatus"] != "DELETE_COMPLETE" and s["StackName"].startswith(f"{self.prefix}-")
        }

    def records(self) -> dict[str, dict[str, Any]]:
        r53 = boto3.client("route53", region_name=REGION)
        sets = r53.list_resource_record_sets(HostedZoneId=self.zone_id)["ResourceRecordSets"]
        return {
            r["SetIdentifier"]: r
            for r in sets
            if r["Type"] == "A" and r.get("SetIdentifier", "").startswith(f"{self.prefix}-")
        }

    def set_status(self, stack_name: str, status: str) -> None:
        backend = cloudformation_backends[ACCOUNT][REGION]
        next(s for s in backend.stacks.values() if s.name == stack_name).status = status


def alarm_event(name: str = OUT, state: str = "ALARM", when: str = "2026-11-21T10:00:00.000+0000") -> dict:
    message = {
        "AlarmName": name,
        "NewStateValue": state,
        "OldStateValue": "OK",
        "NewStateReason": "Threshold Crossed: 1 datapoint [80.0] was greater than the threshold (70.0).",
        "StateChangeTime": when,
    }
    return sns_event(json.dumps(message))


def sns_event(message: str) -> dict:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m-1", "Message": message}}]}


RECONCILE = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_LAMBDA_FUNCTION_NAME": "opex-test-scaler",
    "POWERTOOLS_METRICS_DISABLED": "true",  # no EMF noise on stdout in tests
}


@pytest.fixture(scope="module")
def moto_world():
    """One moto world per module (creating it costs about a second): bucket, topic, queues, table, zone."""
    with mock.patch.dict("os.environ", _ENV), mock_aws():
        os.environ.pop("AWS_ENDPOINT_URL", None)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="assets", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="assets", Key="cell.template.json", Body=json.dumps(CELL_TEMPLATE).encode())
        sqs = boto3.client("sqs", region_name=REGION)
        mail_queue = sqs.create_queue(QueueName="mail")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="scaler-dlq")["QueueUrl"]
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="warning")["TopicArn"]
        mail_arn = sqs.get_queue_attributes(QueueUrl=mail_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=mail_arn)
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName="scaler-state",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        zone_id = (
            boto3.client("route53", region_name=REGION)
            .create_hosted_zone(Name="opex.internal", CallerReference="z")["HostedZone"]["Id"]
            .split("/")[-1]
        )
        env = {
            "TEMPLATE_URL": f"https://assets.s3.{REGION}.amazonaws.com/cell.template.json",
            "EXECUTION_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/cell-execution",
            "SCALE_OUT_ALARM": OUT,
            "SCALE_IN_ALARM": IN,
            "MIN_CELLS": "1",
            "MAX_CELLS": "3",
            "COOLDOWN_SECONDS": "0",
            "HOSTED_ZONE_ID": zone_id,
            "RECORD_NAME": RECORD,
            "CELL_WEIGHT": "100",
            "DRAIN_SECONDS": "0",
            "STATE_TABLE": "scaler-state",
            "TOPIC_ARN": topic,
            "DLQ_URL": dlq,
        }
        scaler.reset()
        yield World(zone_id, mail_queue, dlq, env, "")
        scaler.reset()


_COUNTER = iter(range(1, 10_000))


@pytest.fixture
def world(moto_world: World, monkeypatch: pytest.MonkeyPatch):
    """A clean slate in the shared moto world: own cell prefix, empty queues and table, fresh settings."""
    prefix = f"opex-t{next(_COUNTER)}-cell"
    for key, value in {**moto_world.env, "CELL_STACK_PREFIX": prefix}.items():
        monkeypatch.setenv(key, value)
    sqs = boto3.client("sqs", region_name=REGION)
    for queue in (moto_world.mail_queue, moto_world.dlq):  # drained, not purged (purge: once a minute)
        while got := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            for message in got:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    ddb = boto3.client("dynamodb", region_name=REGION)
    for item in ddb.scan(TableName="scaler-state", ProjectionExpression="id")["Items"]:
        ddb.delete_item(TableName="scaler-state", Key={"id": item["id"]})
    scaler.settings.cache_clear()
    scaler._idempotency.cache_clear()
    yield World(moto_world.zone_id, moto_world.mail_queue, moto_world.dlq, moto_world.env, prefix)


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    scaler.settings.cache_clear()
    scaler._idempotency.cache_clear()


def test_scale_out_creates_the_next_cell_then_adds_its_weighted_record(world: World) -> None:
    result = world.invoke(alarm_event())
    assert result["action"] == "create" and result["stack"] == f"{world.prefix}-2"
    assert world.stacks() == {f"{world.prefix}-2": "CREATE_COMPLETE"}
    cfn = boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName=f"{world.prefix}-2")["Stacks"][0]
    assert cfn["Parameters"] == [{"ParameterKey": "CellId", "ParameterValue": "2"}]
    assert {"Key": "opex:cell-scaler", "Value": world.prefix} in cfn["Tags"]
    assert world.records() == {}  # DNS only once the stack is complete: the next trigger
    assert world.mails() == [f"[cell scaler] scale-out: creating {world.prefix}-2"]

    assert world.invoke(RECONCILE)["done"] == [f"added {world.prefix}-2 to DNS (weight 100)"]
    record = world.records()[f"{world.prefix}-2"]
    assert record["Weight"] == 100 and record["Name"] == f"{RECORD}."
    assert record["AliasTarget"]["EvaluateTargetHealth"] is True
    assert record["AliasTarget"]["DNSName"].startswith("cell-2.us-east-2.elb.amazonaws.com")
    assert world.mails() == [f"[cell scaler] scale-out: {world.prefix}-2 in service"]
    assert world.invoke(RECONCILE)["done"] == []  # converged: nothing more to do


def test_scale_in_sets_weight_zero_waits_out_the_drain_then_deletes(world: World, monkeypatch) -> None:
    world.invoke(alarm_event())
    world.invoke(RECONCILE)
    configure(monkeypatch, DRAIN_SECONDS="120")
    result = world.invoke(alarm_event(IN, when="2026-11-21T10:10:00.000+0000"))
    assert result == {"action": "drain", "stack": f"{world.prefix}-2", "reason": "2 -> 1 cells; newest extra cell goes"}
    assert world.records()[f"{world.prefix}-2"]["Weight"] == 0
    assert world.stacks() == {f"{world.prefix}-2": "CREATE_COMPLETE"}  # still serving in-flight connections

    assert world.invoke(RECONCILE)["done"] == []  # inside the drain bound: nothing deleted
    assert f"{world.prefix}-2" in world.stacks()
    import time

    assert scaler.reconcile(now=time.time() + 121)["done"] == [f"deleted drained {world.prefix}-2"]
    assert world.records() == {}
    assert world.stacks() == {}
    assert f"[cell scaler] scale-in: deleting {world.prefix}-2" in world.mails()


def test_scale_in_removes_the_newest_extra_cell_and_never_the_base(world: World) -> None:
    world.invoke(alarm_event(when="t1"))
    world.invoke(alarm_event(when="t2"))
    world.invoke(RECONCILE)
    assert set(world.stacks()) == {f"{world.prefix}-2", f"{world.prefix}-3"}
    assert world.invoke(alarm_event(IN, when="t3"))["stack"] == f"{world.prefix}-3"
    world.invoke(RECONCILE)
    assert world.invoke(alarm_event(IN, when="t4"))["stack"] == f"{world.prefix}-2"
    world.invoke(RECONCILE)
    refused = world.invoke(alarm_event(IN, when="t5"))
    assert refused["action"] == "refuse" and "at min_cells" in refused["reason"]
    assert world.stacks() == {} and world.records() == {}


def test_duplicate_delivery_acts_once(world: World) -> None:
    first = world.invoke(alarm_event())
    second = world.invoke(alarm_event())  # SNS delivered the same notification again
    assert first == second
    assert list(world.stacks()) == [f"{world.prefix}-2"]
    assert world.mails() == [f"[cell scaler] scale-out: creating {world.prefix}-2"]
    # A new state change of the same alarm is a new event, not a duplicate.
    assert world.invoke(alarm_event(when="2026-11-21T11:00:00.000+0000"))["stack"] == f"{world.prefix}-3"


def test_cooldown_refuses_and_reports(world: World, monkeypatch) -> None:
    configure(monkeypatch, COOLDOWN_SECONDS="300")
    world.invoke(alarm_event(when="t1"))
    world.mails()
    refused = world.invoke(alarm_event(when="t2"))
    assert refused["action"] == "refuse" and refused["reason"].startswith("cooldown: last operation 0 s ago")
    assert list(world.stacks()) == [f"{world.prefix}-2"]
    assert world.mails()[0].startswith("[cell scaler] scale-out refused: cooldown")


def test_max_cells_cap_holds(world: World, monkeypatch) -> None:
    configure(monkeypatch, MAX_CELLS="2")
    world.invoke(alarm_event(when="t1"))
    refused = world.invoke(alarm_event(when="t2"))
    assert refused == {"action": "refuse", "reason": "at max_cells: 2 cell(s) of at most 2"}
    assert list(world.stacks()) == [f"{world.prefix}-2"]


def test_one_operation_in_flight(world: World) -> None:
    world.invoke(alarm_event(when="t1"))
    world.set_status(f"{world.prefix}-2", "CREATE_IN_PROGRESS")
    refused = world.invoke(alarm_event(when="t2"))
    assert refused["reason"] == f"operation in flight: {world.prefix}-2 is CREATE_IN_PROGRESS"
    assert list(world.stacks()) == [f"{world.prefix}-2"]


def test_draining_cell_blocks_the_next_operation(world: World, monkeypatch) -> None:
    world.invoke(alarm_event(when="t1"))
    world.invoke(RECONCILE)
    configure(monkeypatch, DRAIN_SECONDS="600")
    world.invoke(alarm_event(IN, when="t2"))
    refused = world.invoke(alarm_event(OUT, when="t3"))
    assert refused["reason"] == f"operation in flight: {world.prefix}-2 draining"


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (sns_event("this is not json"), "SNS message is not JSON"),
        (sns_event(json.dumps({"hello": "world"})), "not a CloudWatch alarm notification: missing AlarmName"),
        (sns_event(json.dumps(["a"])), "SNS message is JSON but not an object"),
        (alarm_event("someone-elses-alarm"), "unknown alarm name 'someone-elses-alarm'"),
        ({"what": "ever"}, "not an SNS notification with exactly one record"),
    ],
    ids=["not-json", "not-an-alarm", "json-array", "unknown-alarm", "not-sns"],
)
def test_malformed_messages_change_nothing_are_recorded_and_reported(world: World, event, reason) -> None:
    result = world.invoke(event)  # returns: a retry could not fix it, so no retry loop
    assert result["action"] == "rejected" and result["reason"].startswith(reason)
    assert world.stacks() == {} and world.records() == {}
    [dead] = world.dead_letters()
    assert dead["reason"].startswith(reason) and dead["event"] == event
    assert world.mails() == ["[cell scaler] message rejected"]


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_ok_and_insufficient_data_are_no_ops(world: World, state: str) -> None:
    for name in (OUT, IN):
        assert world.invoke(alarm_event(name, state=state)) == {"action": "none", "reason": f"{name} is {state}"}
    assert world.stacks() == {} and world.records() == {} and world.dead_letters() == [] and world.mails() == []


def test_create_stack_error_is_reported_raised_and_retryable(world: World) -> None:
    cfn = scaler.aws().cloudformation
    error = ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "CreateStack")
    with mock.patch.object(cfn, "create_stack", side_effect=error), pytest.raises(ClientError):
        world.invoke(alarm_event())
    assert world.stacks() == {} and world.records() == {}
    assert world.mails() == [f"[cell scaler] scale-out FAILED: CreateStack {world.prefix}-2"]
    # Lambda retries the same delivery: the idempotency record of the failed attempt is gone, so it acts.
    assert world.invoke(alarm_event())["action"] == "create"


@pytest.mark.parametrize("status", ["ROLLBACK_COMPLETE", "CREATE_FAILED"])
def test_failed_cell_gets_no_record_and_is_deleted(world: World, status: str) -> None:
    world.invoke(alarm_event())
    world.set_status(f"{world.prefix}-2", status)
    world.mails()
    assert world.invoke(RECONCILE)["done"] == [f"deleted failed {world.prefix}-2 ({status})"]
    assert world.records() == {}
    assert world.stacks() == {}
    assert world.mails() == [f"[cell scaler] {world.prefix}-2 failed ({status}); removed from DNS, deleting"]


def test_record_of_a_cell_that_died_later_is_removed_first(world: World) -> None:
    world.invoke(alarm_event())
    world.invoke(RECONCILE)
    assert f"{world.prefix}-2" in world.records()
    world.set_status(f"{world.prefix}-2", "ROLLBACK_FAILED")
    cfn = scaler.aws().cloudformation
    error = ClientError({"Error": {"Code": "ValidationError", "Message": "boom"}}, "DeleteStack")
    with mock.patch.object(cfn, "delete_stack", side_effect=error), pytest.raises(RuntimeError, match="boom"):
        world.invoke(RECONCILE)
    assert world.records() == {}  # even though deleting the stack failed, DNS no longer points at it
    assert f"[cell scaler] {world.prefix}-2 failed; delete FAILED" in world.mails()


def test_record_of_a_vanished_cell_is_removed(world: World) -> None:
    world.invoke(alarm_event())
    world.invoke(RECONCILE)
    boto3.client("cloudformation", region_name=REGION).delete_stack(StackName=f"{world.prefix}-2")  # by hand
    assert world.invoke(RECONCILE)["done"] == [f"removed record of missing {world.prefix}-2"]
    assert world.records() == {}


def test_route53_error_leaves_no_orphan_cell_unreported(world: World) -> None:
    world.invoke(alarm_event())
    world.mails()
    r53 = scaler.aws().route53
    error = ClientError({"Error": {"Code": "PriorRequestNotComplete", "Message": "busy"}}, "ChangeResourceRecordSets")
    with mock.patch.object(r53, "change_resource_record_sets", side_effect=error):
        with pytest.raises(RuntimeError, match="add record of .*-2: .*busy"):
            world.invoke(RECONCILE)  # fails -> retried, then dead-lettered
    assert world.mails() == [f"[cell scaler] {world.prefix}-2 is up but NOT in DNS (Route 53 error)"]
    assert world.stacks() == {f"{world.prefix}-2": "CREATE_COMPLETE"}
    assert world.invoke(RECONCILE)["done"] == [f"added {world.prefix}-2 to DNS (weight 100)"]  # the next trigger heals


def test_route53_error_while_draining_keeps_the_cell(world: World) -> None:
    world.invoke(alarm_event(when="t1"))
    world.invoke(RECONCILE)
    world.mails()
    r53 = scaler.aws().route53
    error = ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "ChangeResourceRecordSets")
    with mock.patch.object(r53, "change_resource_record_sets", side_effect=error), pytest.raises(ClientError):
        world.invoke(alarm_event(IN, when="t2"))
    assert world.stacks() == {f"{world.prefix}-2": "CREATE_COMPLETE"}
    assert world.records()[f"{world.prefix}-2"]["Weight"] == 100
    assert world.mails() == [f"[cell scaler] scale-in FAILED: could not drain {world.prefix}-2"]


def test_stuck_cell_is_reported_once(world: World) -> None:
    world.invoke(alarm_event())
    world.set_status(f"{world.prefix}-2", "DELETE_FAILED")
    world.mails()
    world.invoke(RECONCILE)
    world.invoke(RECONCILE)
    assert world.mails() == [f"[cell scaler] {world.prefix}-2 is DELETE_FAILED: needs an engineer"]


def test_cloudformation_status_event_triggers_reconcile(world: World) -> None:
    world.invoke(alarm_event())
    event = {
        "source": "aws.cloudformation",
        "detail-type": "CloudFormation Stack Status Change",
        "detail": {"stack-id": "x", "status-details": {"status": "CREATE_COMPLETE"}},
    }
    assert world.invoke(event)["done"] == [f"added {world.prefix}-2 to DNS (weight 100)"]


def test_missing_setting_is_named() -> None:
    with pytest.raises(RuntimeError, match="environment variable.*CELL_STACK_PREFIX"):
        scaler.Settings.from_env({})
    env = {v.upper(): "x" for v in scaler.Settings.__dataclass_fields__}
    with pytest.raises(RuntimeError, match=r"MIN_CELLS='x' is not a whole number"):
        scaler.Settings.from_env(env)
