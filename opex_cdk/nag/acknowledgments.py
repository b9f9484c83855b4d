"""The one helper through which a nag finding may be acknowledged.

An acknowledgment is an exception, not a switch: it names the construct (the narrowest scope that
carries the finding), the rule id (granular for IAM4/IAM5, e.g. ``AwsSolutions-IAM5[Resource::*]``)
and a reason that says why it is safe. It travels with the construct that makes it, so a construct
imported by another project arrives nag-clean.

Every acknowledgment is also recorded on the construct (metadata ``opex:nag:acknowledgment``) so the
test suite can prove each one still matches a live finding: see :func:`acknowledgments_in`. Building
an app with the context flag ``opex:nag:record-only`` set to ``true`` records without acknowledging,
which is how that test sees the findings the acknowledgments would hide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

RECORD_METADATA = "opex:nag:acknowledgment"
RECORD_ONLY_CONTEXT = "opex:nag:record-only"
_MIN_REASON_LENGTH = 20
# Pack-Rule (AwsSolutions-IAM5), granular (AwsSolutions-IAM5[Resource::*]) or ours (WA-REL-3).
_RULE_ID = re.compile(r"^[A-Za-z0-9.]+(-[A-Za-z0-9.]+)+(\[.+\])?$")


@dataclass(frozen=True)
class Acknowledged:
    """One acknowledgment as recorded: where, which rule, and why."""

    construct_path: str
    rule_id: str
    reason: str


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge the finding ``rule_id`` on ``construct`` (and its children), saying why it is safe.

    Raises ``ValueError`` when the rule id is not of the form ``Pack-Rule`` or ``Pack-Rule[finding]``,
    or when the reason is missing or too short to say anything.
    """
    if not _RULE_ID.match(rule_id):
        raise ValueError(
            f"rule_id '{rule_id}' is not a nag rule id; expected e.g. AwsSolutions-IAM4 or "
            "AwsSolutions-IAM5[Resource::*]"
        )
    if not reason or len(reason.strip()) < _MIN_REASON_LENGTH:
        raise ValueError(
            f"acknowledging {rule_id} on {construct.node.path} needs a reason that says why it is safe "
            f"(at least {_MIN_REASON_LENGTH} characters)"
        )
    construct.node.add_metadata(RECORD_METADATA, {"rule_id": rule_id, "reason": reason})
    if str(construct.node.try_get_context(RECORD_ONLY_CONTEXT)).lower() != "true":
        Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledgments_in(scope: IConstruct) -> list[Acknowledged]:
    """Every acknowledgment made through :func:`acknowledge` under ``scope``, in tree order."""
    found: list[Acknowledged] = []
    for node in scope.node.find_all():
        for entry in node.node.metadata:
            if entry.type == RECORD_METADATA:
                found.append(Acknowledged(node.node.path, entry.data["rule_id"], entry.data["reason"]))
    return found
