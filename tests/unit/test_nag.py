"""Nag at synth time: every stack is clean under its environment's packs, and no acknowledgment is stale."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from opex_cdk.nag import acknowledge, acknowledgments_in, nag_packs_for
from opex_cdk.nag.acknowledgments import RECORD_ONLY_CONTEXT
from tests.conftest import ENVIRONMENTS, build_app


def _pack_of(rule_id: str) -> str:
    """The pack a rule id belongs to: `AwsSolutions-IAM5[...]` -> AwsSolutions, `WA-REL-3` -> WellArchitected."""
    prefix = rule_id.split("-")[0]
    return "WellArchitected" if prefix == "WA" else prefix


def _violations(report) -> list[tuple[str, str]]:
    return [(v.rule_name, r.construct_path) for v in report.violations for r in v.violating_resources]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_stack_is_nag_clean(synthesized, env: str) -> None:
    """Synth already fails on a finding; this names the stack and rule when one appears."""
    e = synthesized[env]
    for stack in e.stacks.all():
        for pack in nag_packs_for(e.app, e.config.nag_packs):
            assert _violations(pack.validate_scope(stack)) == [], f"{stack.stack_name}: {pack.name}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_stale_acknowledgments(env: str) -> None:
    """Each acknowledgment must still hide a live finding on its construct (or a child of it).

    The app is built with acknowledgments recorded but not applied, so the packs report what they
    would hide. An acknowledgment for a pack this environment does not run is checked in the
    environment that runs it (prod runs every pack; see test_every_pack_runs_somewhere).
    """
    app, config, _ = build_app(env, extra_context={RECORD_ONLY_CONTEXT: "true"}, with_nag=False)
    findings = [f for pack in nag_packs_for(app, config.nag_packs) for f in _violations(pack.validate_scope(app))]
    acknowledged = [a for a in acknowledgments_in(app) if _pack_of(a.rule_id) in config.nag_packs]
    assert acknowledged, "expected at least the public-route acknowledgments"
    stale = [
        a
        for a in acknowledged
        if not any(rule == a.rule_id and path.startswith(a.construct_path) for rule, path in findings)
    ]
    assert stale == []


def test_every_pack_runs_somewhere() -> None:
    """So that every acknowledgment, whatever its pack, is checked for staleness by some environment."""
    from opex_cdk.config import KNOWN_NAG_PACKS, load_environment
    from opex_cdk.project_context import load_project_context

    context = load_project_context()
    running = {p for env in ENVIRONMENTS for p in load_environment(context, env).nag_packs}
    assert running == set(KNOWN_NAG_PACKS)


def test_acknowledge_demands_a_reason() -> None:
    queue = sqs.Queue(Stack(App(), "S"), "Q")
    with pytest.raises(ValueError, match="needs a reason that says why it is safe"):
        acknowledge(queue, "AwsSolutions-SQS3", "ok")


def test_acknowledge_demands_a_rule_id() -> None:
    queue = sqs.Queue(Stack(App(), "S"), "Q")
    with pytest.raises(ValueError, match="is not a nag rule id"):
        acknowledge(queue, "no dead-letter queue", "this queue is itself a dead-letter queue for tests")


def test_acknowledgment_hides_only_its_finding() -> None:
    app = App()
    stack = Stack(app, "S")
    queue = sqs.Queue(stack, "Q", enforce_ssl=True)
    pack = nag_packs_for(app, ["AwsSolutions"])[0]
    assert ("AwsSolutions-SQS3", "S/Q/Resource") in _violations(pack.validate_scope(stack))
    acknowledge(queue, "AwsSolutions-SQS3", "This queue is itself a dead-letter queue; it needs none.")
    assert ("AwsSolutions-SQS3", "S/Q/Resource") not in _violations(pack.validate_scope(stack))
    assert [a.rule_id for a in acknowledgments_in(app)] == ["AwsSolutions-SQS3"]


def test_unacknowledged_finding_fails_synth(tmp_path) -> None:
    from opex_cdk.nag import apply_nag_packs

    app = App(outdir=str(tmp_path))
    sqs.Queue(Stack(app, "S"), "Q")
    apply_nag_packs(app, ["AwsSolutions"])
    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed: .*AwsSolutions-SQS3"):
        app.synth()
