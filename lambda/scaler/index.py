"""Cell scaler: CloudWatch alarms in (via SNS), cell stacks out, Route 53 weights kept true, engineers told.

A *cell* is one copy of the app tier (ALB + ASG) deployed as its own CloudFormation stack
``{CELL_STACK_PREFIX}-{n}`` (n = 2..10; the base cell is the CDK-deployed App stack and is never touched).
Route 53 spreads traffic over cells with weighted alias records (one per cell, ``SetIdentifier`` = stack name,
target health evaluated).

Three kinds of event reach :func:`handler`:

* **SNS alarm notification** (the Scaling topic). Scale-out alarm in ALARM -> ``CreateStack`` of the next cell and
  return (creation takes minutes). Scale-in alarm in ALARM -> the newest extra cell's weight is set to 0 and the
  cell is marked draining. OK / INSUFFICIENT_DATA -> no-op. Deduplicated on (alarm name, state-change time)
  with Powertools idempotency. Guard rails: min/max cells, cooldown, one operation in flight.
* **EventBridge** (CloudFormation stack-status change of a cell, or the one-minute schedule) -> :func:`reconcile`:
  a completed cell gets its weighted record; a failed cell loses any record and is deleted; a drained cell
  (drain bound passed) loses its record, then its stack.
* **Anything else** (not JSON, not an alarm, an unknown alarm name) is malformed: it changes nothing, is copied
  to the dead-letter queue with the reason, reported to the Warning topic, and *not* raised (a retry cannot fix it).

AWS errors (CloudFormation, Route 53, throttling after the SDK's own retries) are reported and re-raised: the
asynchronous invocation is retried a bounded number of times and then lands in the same dead-letter queue.

Configuration comes from environment variables set by the ``CellScaler`` construct (see :class:`Settings`).
boto3 is imported on first use, not at import: init stays small and tests can start moto first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = Logger(service="cell-scaler")
metrics = Metrics(namespace="OpexCdk/Scaler", service="cell-scaler")

#: Extra cells are numbered 2..MAX_CELL_SLOTS (config caps max_cells at 10; the base cell is number 1).
MAX_CELL_SLOTS = 10
#: Outputs every cell template must declare (the CellStack does; a test pins the names on both sides).
OUTPUT_DNS_NAME = "LoadBalancerDnsName"
OUTPUT_HOSTED_ZONE_ID = "LoadBalancerHostedZoneId"
#: Tag that marks a stack as created by this scaler.
CELL_TAG = "opex:cell-scaler"
STATE_ITEM_ID = "scaler#state"
SERVING = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"})
FAILED = frozenset({"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "ROLLBACK_IN_PROGRESS"})
STUCK = frozenset({"DELETE_FAILED", "UPDATE_ROLLBACK_FAILED"})
ALARM_FIELDS = ("AlarmName", "NewStateValue", "StateChangeTime")


class MalformedEvent(ValueError):
    """The event cannot be acted on and a retry would not change that."""


# --------------------------------------------------------------------------------------------------
# Settings and clients
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The scaler's configuration, from the environment the construct sets."""

    cell_stack_prefix: str
    template_url: str
    execution_role_arn: str
    scale_out_alarm: str
    scale_in_alarm: str
    min_cells: int
    max_cells: int
    cooldown_seconds: int
    hosted_zone_id: str
    record_name: str
    cell_weight: int
    drain_seconds: int
    state_table: str
    topic_arn: str
    dlq_url: str

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str] = os.environ) -> Settings:
        """Read every setting; a missing or non-numeric one raises naming the variable."""
        names = {f: f.upper() for f in cls.__dataclass_fields__}
        missing = [v for v in names.values() if not env.get(v)]
        if missing:
            raise RuntimeError(f"scaler misconfigured: environment variable(s) {', '.join(missing)} not set")
        values: dict[str, Any] = {}
        for attr, var in names.items():
            raw = env[var]
            if cls.__dataclass_fields__[attr].type == "int":
                try:
                    values[attr] = int(raw)
                except ValueError:
                    raise RuntimeError(f"scaler misconfigured: {var}={raw!r} is not a whole number") from None
            else:
                values[attr] = raw
        return cls(**values)


@dataclass
class Aws:
    """The clients, created once per process with explicit timeouts and bounded retries."""

    cloudformation: Any
    route53: Any
    sns: Any
    sqs: Any
    dynamodb: Any


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def aws() -> Aws:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 4})
    return Aws(*(boto3.client(name, config=config) for name in ("cloudformation", "route53", "sns", "sqs", "dynamodb")))


def reset() -> None:
    """Forget cached settings and clients (tests start a fresh moto world per test)."""
    settings.cache_clear()
    aws.cache_clear()
    _idempotency.cache_clear()


# --------------------------------------------------------------------------------------------------
# Pure part: parsing and deciding
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One extra cell as CloudFormation reports it."""

    number: int
    stack_name: str
    status: str
    created: datetime
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def in_progress(self) -> bool:
        return self.status.endswith("_IN_PROGRESS") and self.status not in FAILED

    @property
    def alias_target(self) -> dict[str, Any] | None:
        if OUTPUT_DNS_NAME not in self.outputs or OUTPUT_HOSTED_ZONE_ID not in self.outputs:
            return None
        return {
            "HostedZoneId": self.outputs[OUTPUT_HOSTED_ZONE_ID],
            "DNSName": self.outputs[OUTPUT_DNS_NAME],
            "EvaluateTargetHealth": True,
        }


@dataclass
class State:
    """What CloudFormation cannot tell: when the last operation started and which cells are draining."""

    last_operation_at: float = 0.0
    draining: dict[str, float] = field(default_factory=dict)  # stack name -> time its deletion may start
    reported: list[str] = field(default_factory=list)  # "stack:status" already reported as stuck


@dataclass(frozen=True)
class Decision:
    """What to do about one alarm: ``create``, ``drain`` or ``refuse``, and why."""

    action: str
    reason: str
    cell_number: int | None = None


def parse_alarm(message: str) -> dict[str, Any]:
    """The CloudWatch alarm carried by an SNS message; raises :class:`MalformedEvent` saying what is wrong."""
    try:
        alarm = json.loads(message)
    except (TypeError, ValueError):
        raise MalformedEvent(f"SNS message is not JSON: {str(message)[:200]!r}") from None
    if not isinstance(alarm, dict):
        raise MalformedEvent(f"SNS message is JSON but not an object: {type(alarm).__name__}")
    missing = [k for k in ALARM_FIELDS if not isinstance(alarm.get(k), str) or not alarm.get(k)]
    if missing:
        raise MalformedEvent(f"not a CloudWatch alarm notification: missing {', '.join(missing)}")
    return alarm


def direction_of(alarm: dict[str, Any], s: Settings) -> str:
    """``out`` or ``in``; an alarm of another name is malformed for this scaler."""
    name = alarm["AlarmName"]
    if name == s.scale_out_alarm:
        return "out"
    if name == s.scale_in_alarm:
        return "in"
    raise MalformedEvent(
        f"unknown alarm name {name!r}; this scaler acts on {s.scale_out_alarm!r} and {s.scale_in_alarm!r}"
    )


def decide(direction: str, cells: list[Cell], state: State, now: float, s: Settings) -> Decision:
    """The guard rails, in order: one operation in flight, caps (base cell counts as one), cooldown."""
    busy = [c for c in cells if c.in_progress]
    if busy:
        return Decision("refuse", f"operation in flight: {busy[0].stack_name} is {busy[0].status}")
    if state.draining:
        return Decision("refuse", f"operation in flight: {', '.join(sorted(state.draining))} draining")
    total = 1 + len(cells)
    since = now - state.last_operation_at
    if since < s.cooldown_seconds:
        return Decision("refuse", f"cooldown: last operation {int(since)} s ago, cooldown {s.cooldown_seconds} s")
    if direction == "out":
        if total >= s.max_cells:
            return Decision("refuse", f"at max_cells: {total} cell(s) of at most {s.max_cells}")
        taken = {c.number for c in cells}
        number = next(n for n in range(2, MAX_CELL_SLOTS + 1) if n not in taken)
        return Decision("create", f"{total} -> {total + 1} cells", number)
    if total <= s.min_cells:
        return Decision("refuse", f"at min_cells: {total} cell(s) of at least {s.min_cells} (base cell is kept)")
    serving = [c for c in cells if c.status in SERVING]
    if not serving:
        return Decision("refuse", "no serving extra cell to remove (only the base cell serves)")
    newest = max(serving, key=lambda c: c.created)
    return Decision("drain", f"{total} -> {total - 1} cells; newest extra cell goes", newest.number)


# --------------------------------------------------------------------------------------------------
# AWS adapters
# --------------------------------------------------------------------------------------------------


def stack_name(s: Settings, number: int) -> str:
    return f"{s.cell_stack_prefix}-{number}"


def list_cells(s: Settings) -> list[Cell]:
    """Every extra cell stack that exists. Described by name (no account-wide listing: least privilege)."""
    cfn = aws().cloudformation
    cells = []
    for number in range(2, MAX_CELL_SLOTS + 1):
        name = stack_name(s, number)
        try:
            stacks = cfn.describe_stacks(StackName=name)["Stacks"]
        except cfn.exceptions.ClientError as error:
            if "does not exist" in str(error):
                continue
            raise
        for st in stacks:
            if st["StackStatus"] == "DELETE_COMPLETE":
                continue
            outputs = {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs", [])}
            cells.append(Cell(number, name, st["StackStatus"], st["CreationTime"], outputs))
    return cells


def load_state(s: Settings) -> State:
    item = aws().dynamodb.get_item(TableName=s.state_table, Key={"id": {"S": STATE_ITEM_ID}}, ConsistentRead=True)
    if "Item" not in item:
        return State()
    raw = json.loads(item["Item"]["state"]["S"])
    return State(float(raw.get("last_operation_at", 0)), dict(raw.get("draining", {})), list(raw.get("reported", [])))


def save_state(s: Settings, state: State) -> None:
    body = {"last_operation_at": state.last_operation_at, "draining": state.draining, "reported": state.reported}
    aws().dynamodb.put_item(
        TableName=s.state_table, Item={"id": {"S": STATE_ITEM_ID}, "state": {"S": json.dumps(body)}}
    )


def cell_records(s: Settings) -> dict[str, dict[str, Any]]:
    """The weighted records of extra cells (by SetIdentifier = stack name); the base record is not ours."""
    r53 = aws().route53
    name = s.record_name.rstrip(".") + "."
    found: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"HostedZoneId": s.hosted_zone_id, "StartRecordName": name, "StartRecordType": "A"}
    while True:
        page = r53.list_resource_record_sets(**kwargs)
        for record in page["ResourceRecordSets"]:
            if record["Name"] != name:
                return found
            ident = record.get("SetIdentifier", "")
            if record["Type"] == "A" and ident.startswith(f"{s.cell_stack_prefix}-"):
                found[ident] = record
        if not page.get("IsTruncated"):
            return found
        kwargs.update(StartRecordName=page["NextRecordName"], StartRecordType=page["NextRecordType"])
        if "NextRecordIdentifier" in page:
            kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]


def change_record(s: Settings, action: str, record: dict[str, Any]) -> None:
    aws().route53.change_resource_record_sets(
        HostedZoneId=s.hosted_zone_id,
        ChangeBatch={
            "Comment": f"cell scaler: {action} {record['SetIdentifier']}",
            "Changes": [{"Action": action, "ResourceRecordSet": record}],
        },
    )


def weighted_record(s: Settings, cell: Cell, weight: int) -> dict[str, Any]:
    target = cell.alias_target
    if target is None:
        raise RuntimeError(f"{cell.stack_name} has no {OUTPUT_DNS_NAME}/{OUTPUT_HOSTED_ZONE_ID} outputs")
    return {
        "Name": s.record_name.rstrip(".") + ".",
        "Type": "A",
        "SetIdentifier": cell.stack_name,
        "Weight": weight,
        "AliasTarget": target,
    }


def notify(s: Settings, subject: str, detail: dict[str, Any]) -> None:
    """Tell the engineers (Warning topic). A failure to notify is logged and counted, never fatal on its own."""
    try:
        aws().sns.publish(
            TopicArn=s.topic_arn, Subject=f"[cell scaler] {subject}"[:100], Message=json.dumps(detail, indent=2)
        )
    except Exception:  # noqa: BLE001 - the operation already happened; losing the mail must not undo it
        logger.exception("notification failed", extra={"subject": subject})
        metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=1)


def record_rejected(s: Settings, reason: str, event: Any) -> dict[str, Any]:
    """Copy a message that cannot be acted on to the DLQ with the reason, report it, and do not retry it."""
    logger.warning("message rejected", extra={"reason": reason})
    metrics.add_metric(name="RejectedMessages", unit=MetricUnit.Count, value=1)
    # Raises on failure on purpose: then the invocation fails and Lambda's own DLQ keeps the message.
    aws().sqs.send_message(
        QueueUrl=s.dlq_url,
        MessageBody=json.dumps({"reason": reason, "event": event}, default=str),
        MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
    )
    notify(s, "message rejected", {"reason": reason, "recorded_in": s.dlq_url})
    return {"action": "rejected", "reason": reason}


# --------------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------------


def handle_alarm(alarm: dict[str, Any]) -> dict[str, Any]:
    """Act on one alarm in ALARM state (called through the idempotency wrapper)."""
    s = settings()
    direction = direction_of(alarm, s)
    now = time.time()
    cells, state = list_cells(s), load_state(s)
    decision = decide(direction, cells, state, now, s)
    context = {
        "alarm": alarm["AlarmName"],
        "state_change_time": alarm["StateChangeTime"],
        "alarm_reason": alarm.get("NewStateReason", ""),
        "cells_before": 1 + len(cells),
    }
    metrics.add_metric(name=f"Decision_{decision.action}", unit=MetricUnit.Count, value=1)
    if decision.action == "refuse":
        logger.info("scale-%s refused", direction, extra={"reason": decision.reason, **context})
        notify(
            s,
            f"scale-{direction} refused: {decision.reason}",
            {"decision": "refuse", "reason": decision.reason, **context},
        )
        return {"action": "refuse", "reason": decision.reason}
    assert decision.cell_number is not None
    name = stack_name(s, decision.cell_number)
    if decision.action == "create":
        try:
            aws().cloudformation.create_stack(
                StackName=name,
                TemplateURL=s.template_url,
                Parameters=[{"ParameterKey": "CellId", "ParameterValue": str(decision.cell_number)}],
                RoleARN=s.execution_role_arn,
                Capabilities=["CAPABILITY_IAM"],
                OnFailure="ROLLBACK",
                Tags=[
                    {"Key": CELL_TAG, "Value": s.cell_stack_prefix},
                    {"Key": "opex:cell-id", "Value": str(decision.cell_number)},
                ],
            )
        except Exception as error:
            notify(s, f"scale-out FAILED: CreateStack {name}", {"decision": "create", "error": str(error), **context})
            raise
        state.last_operation_at = now
        save_state(s, state)
        notify(
            s,
            f"scale-out: creating {name}",
            {"decision": "create", "stack": name, "reason": decision.reason, **context},
        )
        return {"action": "create", "stack": name, "reason": decision.reason}
    # drain: weight 0 first; the stack is deleted by reconcile once the drain bound has passed.
    cell = next(c for c in cells if c.number == decision.cell_number)
    try:
        change_record(s, "UPSERT", weighted_record(s, cell, 0))
    except Exception as error:
        notify(s, f"scale-in FAILED: could not drain {name}", {"decision": "drain", "error": str(error), **context})
        raise
    state.last_operation_at = now
    state.draining[name] = now + s.drain_seconds
    save_state(s, state)
    notify(
        s,
        f"scale-in: draining {name}",
        {
            "decision": "drain",
            "stack": name,
            "reason": decision.reason,
            "delete_after_seconds": s.drain_seconds,
            **context,
        },
    )
    return {"action": "drain", "stack": name, "reason": decision.reason}


def reconcile(now: float | None = None) -> dict[str, Any]:
    """Bring Route 53 in line with the cell stacks; delete failed and drained cells. Safe to run any time.

    Order matters for "no record points at a dead cell": a record is removed *before* its stack is deleted,
    and added only once the stack is complete. Every AWS error is reported; if any occurred the invocation
    fails at the end (after the other cells were handled) so it is retried and, at worst, dead-lettered.
    """
    s = settings()
    now = time.time() if now is None else now
    cells, state, records = list_cells(s), load_state(s), cell_records(s)
    done: list[str] = []
    errors: list[str] = []

    def attempt(what: str, subject: str, step: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        try:
            step(*args, **kwargs)
            return True
        except Exception as error:  # noqa: BLE001 - reported and re-raised after the loop
            logger.exception("reconcile step failed", extra={"step": what})
            errors.append(f"{what}: {error}")
            notify(s, subject, {"step": what, "error": str(error)})
            return False

    live = {c.stack_name for c in cells}
    for cell in cells:
        name, record = cell.stack_name, records.get(cell.stack_name)
        if cell.status in FAILED:
            if record and not attempt(
                f"remove record of failed {name}",
                f"{name} failed; DNS cleanup FAILED",
                change_record,
                s,
                "DELETE",
                record,
            ):
                continue
            if cell.status != "ROLLBACK_IN_PROGRESS" and attempt(
                f"delete failed {name}",
                f"{name} failed; delete FAILED",
                aws().cloudformation.delete_stack,
                StackName=name,
            ):
                state.draining.pop(name, None)
                done.append(f"deleted failed {name} ({cell.status})")
                notify(
                    s,
                    f"{name} failed ({cell.status}); removed from DNS, deleting",
                    {"stack": name, "status": cell.status},
                )
        elif cell.status in STUCK:
            key = f"{name}:{cell.status}"
            if key not in state.reported:
                state.reported.append(key)
                notify(
                    s,
                    f"{name} is {cell.status}: needs an engineer",
                    {"stack": name, "status": cell.status, "in_dns": bool(record)},
                )
        elif cell.status in SERVING and name in state.draining:
            if now < state.draining[name]:
                continue
            if record and not attempt(
                f"remove record of drained {name}",
                f"scale-in: DNS removal of {name} FAILED",
                change_record,
                s,
                "DELETE",
                record,
            ):
                continue
            if attempt(
                f"delete drained {name}",
                f"scale-in: delete of {name} FAILED",
                aws().cloudformation.delete_stack,
                StackName=name,
            ):
                del state.draining[name]
                done.append(f"deleted drained {name}")
                notify(s, f"scale-in: deleting {name}", {"stack": name, "drained_seconds": s.drain_seconds})
        elif cell.status in SERVING and record is None:
            try:
                new = weighted_record(s, cell, s.cell_weight)
            except RuntimeError as error:
                errors.append(str(error))
                notify(s, f"{name} is up but NOT in DNS", {"stack": name, "error": str(error)})
                continue
            if attempt(
                f"add record of {name}",
                f"{name} is up but NOT in DNS (Route 53 error)",
                change_record,
                s,
                "UPSERT",
                new,
            ):
                done.append(f"added {name} to DNS (weight {s.cell_weight})")
                notify(
                    s,
                    f"scale-out: {name} in service",
                    {"stack": name, "weight": s.cell_weight, "record": s.record_name},
                )
    for ident, record in records.items():
        if ident not in live and attempt(
            f"remove record of missing {ident}",
            f"DNS cleanup of {ident} FAILED",
            change_record,
            s,
            "DELETE",
            record,
        ):
            done.append(f"removed record of missing {ident}")
            notify(s, f"removed DNS record of missing cell {ident}", {"set_identifier": ident})
    for name in [n for n in state.draining if n not in live]:
        del state.draining[name]
    state.reported = [k for k in state.reported if k.split(":")[0] in live]
    save_state(s, state)
    for _ in done:
        metrics.add_metric(name="ReconcileActions", unit=MetricUnit.Count, value=1)
    logger.info("reconciled", extra={"done": done, "errors": errors})
    if errors:
        raise RuntimeError(f"reconcile: {len(errors)} step(s) failed: {'; '.join(errors)}")
    return {"action": "reconcile", "done": done}


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


@cache
def _idempotency() -> tuple[Any, Any]:
    """``handle_alarm`` wrapped by Powertools idempotency, keyed on (alarm name, state-change time), and its config.

    The key is the alarm's state change, not the SNS message id: SNS redeliveries and Lambda retries of the same
    state change carry the same (name, time) and act once; a later state change of the same alarm is a new event.
    """
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    store = DynamoDBPersistenceLayer(table_name=settings().state_table, boto3_client=aws().dynamodb)
    config = IdempotencyConfig(
        event_key_jmespath="[AlarmName, StateChangeTime]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=7 * 24 * 3600,  # longer than SNS and Lambda keep retrying a delivery
    )
    wrapped = idempotent_function(data_keyword_argument="alarm", persistence_store=store, config=config)(handle_alarm)
    return wrapped, config


def route(event: Any, context: Any = None) -> dict[str, Any]:
    """Dispatch one invocation; see the module docstring for the kinds of event."""
    s = settings()
    if isinstance(event, dict) and event.get("source") in ("aws.events", "aws.cloudformation"):
        return reconcile()
    records = event.get("Records") if isinstance(event, dict) else None
    if (
        not isinstance(records, list)
        or len(records) != 1
        or not isinstance(records[0], dict)
        or "Sns" not in records[0]
    ):
        return record_rejected(s, "not an SNS notification with exactly one record, nor an EventBridge event", event)
    message = records[0]["Sns"].get("Message")
    try:
        alarm = parse_alarm(message)
        direction_of(alarm, s)
    except MalformedEvent as error:
        return record_rejected(s, str(error), event)
    if alarm["NewStateValue"] != "ALARM":
        logger.info("alarm not in ALARM: no-op", extra={"alarm": alarm["AlarmName"], "state": alarm["NewStateValue"]})
        metrics.add_metric(name="IgnoredMessages", unit=MetricUnit.Count, value=1)
        return {"action": "none", "reason": f"{alarm['AlarmName']} is {alarm['NewStateValue']}"}
    wrapped, config = _idempotency()
    if context is not None:
        config.register_lambda_context(context)  # an in-progress record expires with this invocation
    return wrapped(alarm=alarm)


@metrics.log_metrics
@logger.inject_lambda_context(log_event=False)
def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: SNS alarm notifications and EventBridge reconcile triggers."""
    result = route(event, context)
    logger.info("done", extra={"result": result})
    return result
