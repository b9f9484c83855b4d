"""The healer's decision (lambda/healer/decision.py): examples, then properties (hypothesis)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

# tests/lambda is shared and not a package ("lambda" is a keyword): load our helper by path.
_spec = importlib.util.spec_from_file_location("opex_healer_loader", Path(__file__).with_name("healer_loader.py"))
_loader = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loader)
d = _loader.load_decision()
T = d.TargetState


def fleet(*states: tuple[str, str, bool]) -> list:
    return [T(i, az, healthy) for i, az, healthy in states]


HEALTHY_3 = fleet(("i-a", "az-a", True), ("i-b", "az-b", True), ("i-c", "az-c", True))


def test_all_healthy_does_nothing_and_says_nothing() -> None:
    decision = d.decide(HEALTHY_3)
    assert decision == d.Decision(total=3)
    assert not decision.acted and decision.refusal_reason is None


def test_one_bad_instance_of_three_is_replaced() -> None:
    """The workshop's step 5/6: one instance with the no-DynamoDB role, one instance per AZ."""
    decision = d.decide(fleet(("i-a", "az-a", False), ("i-b", "az-b", True), ("i-c", "az-c", True)))
    assert decision.replace == ("i-a",)
    assert decision.refusal_reason is None and not decision.fleet_wide


def test_fleet_wide_failure_replaces_nothing() -> None:
    """The workshop's step 7: flag off, every instance fails the deep check."""
    decision = d.decide([T(t.instance_id, t.az, False) for t in HEALTHY_3])
    assert decision.replace == () and decision.fleet_wide
    assert decision.refusal_reason.startswith("fleet-wide: 3 of 3 targets unhealthy")


def test_exactly_half_is_fleet_wide() -> None:
    decision = d.decide(fleet(("i-a", "a", False), ("i-b", "b", False), ("i-c", "c", True), ("i-d", "a", True)))
    assert decision.fleet_wide and decision.replace == ()


def test_az_wide_failure_is_zonal_and_left_alone() -> None:
    """Two instances in az-a both unhealthy, four healthy elsewhere: a replacement would land in az-a too."""
    targets = fleet(
        ("i-a1", "az-a", False), ("i-a2", "az-a", False),
        ("i-b1", "az-b", True), ("i-b2", "az-b", True), ("i-c1", "az-c", True), ("i-c2", "az-c", True),
    )  # fmt: skip
    decision = d.decide(targets)
    assert decision.zonal_azs == ("az-a",) and decision.replace == ()
    assert "zonal" in decision.refusal_reason and not decision.fleet_wide


def test_isolated_failure_is_still_replaced_beside_a_zonal_one() -> None:
    targets = fleet(
        ("i-a1", "az-a", False), ("i-a2", "az-a", False), ("i-b1", "az-b", False), ("i-b2", "az-b", True),
        ("i-c1", "az-c", True), ("i-c2", "az-c", True), ("i-c3", "az-c", True),
    )  # fmt: skip
    decision = d.decide(targets)
    assert decision.zonal_azs == ("az-a",) and decision.replace == ("i-b1",)


def test_rate_limit_defers_the_rest() -> None:
    targets = [T(f"i-{n}", f"az-{n % 3}", n >= 3) for n in range(8)]  # i-0, i-1, i-2 unhealthy of 8
    decision = d.decide(targets, recent_replacements=1, max_replacements_per_window=2)
    assert decision.replace == ("i-0",) and decision.deferred == ("i-1", "i-2")
    assert "rate limit: 1 replacement(s) already in this window, cap 2" in decision.refusal_reason


def test_exhausted_budget_replaces_nothing() -> None:
    decision = d.decide(fleet(("i-a", "a", False), ("i-b", "b", True), ("i-c", "c", True)), recent_replacements=2)
    assert decision.replace == () and decision.deferred == ("i-a",) and decision.refusal_reason


def test_target_already_being_replaced_is_not_marked_again() -> None:
    targets = [T("i-a", "a", False, replaceable=False), T("i-b", "b", True), T("i-c", "c", True)]
    decision = d.decide(targets)
    assert decision.replace == () and decision.unhealthy == ("i-a",) and decision.refusal_reason is None


def test_conflicting_duplicates_resolve_to_healthy() -> None:
    targets = [T("i-a", "a", False), T("i-a", "a", True), T("i-b", "b", True), T("i-c", "c", True)]
    assert d.decide(targets) == d.Decision(total=3)


def test_no_targets_is_a_refusal() -> None:
    assert d.decide([]).refusal_reason == "no registered targets: nothing to judge"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_unhealthy_share": 0.6}, "max_unhealthy_share: 0.6 is not allowed; allowed: greater than 0 and at most"),
        ({"max_unhealthy_share": 0}, "max_unhealthy_share: 0 is not allowed"),
        ({"max_replacements_per_window": 0}, "max_replacements_per_window: 0 is not allowed; allowed: >= 1"),
        ({"recent_replacements": -1}, "recent_replacements: -1 is not allowed"),
        ({"min_zonal_targets": 1}, "min_zonal_targets: 1 is not allowed"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        d.decide(HEALTHY_3, **kwargs)


def test_decision_module_needs_no_aws() -> None:
    """The local game day imports it without AWS libraries."""
    assert "boto" not in (_loader.lambda_code_dir("healer") / "decision.py").read_text()


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------

targets_strategy = st.lists(
    st.builds(
        T,
        instance_id=st.sampled_from([f"i-{n:02d}" for n in range(12)]),
        az=st.sampled_from(["az-a", "az-b", "az-c"]),
        healthy=st.booleans(),
        replaceable=st.booleans(),
    ),
    max_size=20,
)
share_strategy = st.sampled_from([0.1, 0.25, 0.34, 0.5])
limits = st.tuples(st.integers(0, 5), st.integers(1, 5))


@settings(max_examples=150, deadline=None)
@given(targets_strategy, share_strategy, limits)
def test_never_replaces_a_majority_nor_a_healthy_instance(targets, share, limit) -> None:
    recent, cap = limit
    decision = d.decide(targets, max_unhealthy_share=share, recent_replacements=recent, max_replacements_per_window=cap)
    merged = {t.instance_id: t for t in d.merge_duplicates(targets)}
    assert len(decision.replace) * 2 < max(len(merged), 1)  # never a majority (nor half)
    assert all(not merged[i].healthy and merged[i].replaceable for i in decision.replace)
    assert len(decision.replace) <= max(0, cap - recent)
    # never the last healthy instance of an AZ: healthy counts per AZ are untouched by the replacements
    for az in {t.az for t in merged.values()}:
        healthy_before = sum(1 for t in merged.values() if t.az == az and t.healthy)
        healthy_after = sum(
            1 for t in merged.values() if t.az == az and t.healthy and t.instance_id not in decision.replace
        )
        assert healthy_after == healthy_before
    if decision.fleet_wide:
        assert decision.replace == ()


@settings(max_examples=100, deadline=None)
@given(targets_strategy, st.randoms(use_true_random=False))
def test_same_answer_on_duplicated_and_reordered_input(targets, rnd: random.Random) -> None:
    doubled = targets + targets
    rnd.shuffle(doubled)
    assert d.decide(doubled) == d.decide(targets)


@settings(max_examples=100, deadline=None)
@given(targets_strategy)
def test_every_unhealthy_candidate_is_either_replaced_deferred_or_explained(targets) -> None:
    decision = d.decide(targets, max_replacements_per_window=1)
    if decision.deferred or decision.zonal_azs or decision.fleet_wide:
        assert decision.refusal_reason
