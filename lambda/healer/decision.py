"""The fleet-safe healer's decision: which unhealthy instances may be replaced, as a pure function.

No AWS SDK here: the Lambda handler (`index.py`) and the local game day both call
:func:`decide` with plain data. The rules, from the Builders' Library lesson "automation must stop
traffic to one bad server but keep serving if the whole fleet looks unhealthy":

1. Only targets reported ``unhealthy`` that the Auto Scaling group still has in service are candidates;
   a healthy instance is never replaced (so the last healthy instance of an AZ is never replaced).
2. If the unhealthy share of the fleet reaches ``max_unhealthy_share`` (default 0.5), the cause is
   shared (a dependency, the flag, the network): replace nothing, report ``fleet_wide``. The load
   balancer fails open and every instance keeps serving the fallback; recycling would only add cold
   starts to an outage.
3. An AZ in which every target is unhealthy while it has at least ``min_zonal_targets`` targets (default
   2) looks like a zonal impairment: a replacement would launch into the same AZ and fail the same way.
   Its instances are left alone and the AZ is reported in ``zonal_azs``. (With one instance per AZ a
   single bad instance cannot be told apart from a bad AZ, so it is treated as a single bad instance.)
4. At most ``max_replacements_per_window - recent_replacements`` instances are replaced; the rest are
   reported in ``deferred``.

The same input always gives the same answer: duplicates are merged (one unhealthy report never
outweighs a healthy one for the same instance) and every tuple in the result is sorted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_MAX_UNHEALTHY_SHARE = 0.5
#: The healer may never act on a majority, whatever the configuration says.
MAX_SHARE_LIMIT = 0.5
DEFAULT_MIN_ZONAL_TARGETS = 2


@dataclass(frozen=True)
class TargetState:
    """One registered target as the healer sees it.

    ``healthy``: the target group reports it ``healthy``. ``replaceable``: it is ``unhealthy`` in the
    target group *and* the Auto Scaling group still has it ``InService`` and ``Healthy`` (not already
    being replaced). A target that is neither (``initial``, ``draining``, already marked) counts in the
    fleet's size and health but is never acted on.
    """

    instance_id: str
    az: str
    healthy: bool
    replaceable: bool = True


@dataclass(frozen=True)
class Decision:
    """What to do. ``replace`` is empty whenever ``refusal_reason`` explains why nothing (more) is done."""

    replace: tuple[str, ...] = ()
    refusal_reason: str | None = None
    fleet_wide: bool = False
    zonal_azs: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    unhealthy: tuple[str, ...] = field(default=())
    total: int = 0

    @property
    def acted(self) -> bool:
        """True when at least one instance is to be replaced."""
        return bool(self.replace)


def merge_duplicates(targets: Iterable[TargetState]) -> list[TargetState]:
    """One state per instance, sorted by id. Conflicting reports resolve to the safe side:
    healthy if any report says healthy, replaceable only if every report says so."""
    merged: dict[str, TargetState] = {}
    for t in targets:
        seen = merged.get(t.instance_id)
        if seen is None:
            merged[t.instance_id] = t
            continue
        healthy = seen.healthy or t.healthy
        merged[t.instance_id] = TargetState(
            instance_id=t.instance_id,
            az=min(seen.az, t.az),
            healthy=healthy,
            replaceable=seen.replaceable and t.replaceable and not healthy,
        )
    return [merged[k] for k in sorted(merged)]


def decide(
    targets: Iterable[TargetState],
    *,
    max_unhealthy_share: float = DEFAULT_MAX_UNHEALTHY_SHARE,
    recent_replacements: int = 0,
    max_replacements_per_window: int = 2,
    min_zonal_targets: int = DEFAULT_MIN_ZONAL_TARGETS,
) -> Decision:
    """Decide which instances to replace. Pure, deterministic, idempotent under duplicated input.

    :param targets: every registered target (duplicates allowed).
    :param max_unhealthy_share: act only while unhealthy/total is below this (0 < share <= 0.5).
        Default: 0.5 (a minority).
    :param recent_replacements: replacements already made in the current window.
    :param max_replacements_per_window: the cap per window (at least 1). Default: 2.
    :param min_zonal_targets: an AZ with at least this many targets, all unhealthy, is treated as a
        zonal impairment (at least 2). Default: 2.
    :raises ValueError: on an argument outside its allowed range (names it and what is allowed).
    """
    if not 0 < max_unhealthy_share <= MAX_SHARE_LIMIT:
        raise ValueError(
            f"max_unhealthy_share: {max_unhealthy_share} is not allowed; allowed: greater than 0 and at most "
            f"{MAX_SHARE_LIMIT} (a minority)"
        )
    if max_replacements_per_window < 1:
        raise ValueError(f"max_replacements_per_window: {max_replacements_per_window} is not allowed; allowed: >= 1")
    if recent_replacements < 0:
        raise ValueError(f"recent_replacements: {recent_replacements} is not allowed; allowed: >= 0")
    if min_zonal_targets < 2:
        raise ValueError(f"min_zonal_targets: {min_zonal_targets} is not allowed; allowed: >= 2")

    fleet = merge_duplicates(targets)
    total = len(fleet)
    if total == 0:
        return Decision(refusal_reason="no registered targets: nothing to judge")
    unhealthy = tuple(t.instance_id for t in fleet if not t.healthy)
    if not unhealthy:
        return Decision(total=total)
    share = len(unhealthy) / total
    if share >= max_unhealthy_share:
        return Decision(
            refusal_reason=(
                f"fleet-wide: {len(unhealthy)} of {total} targets unhealthy ({share:.0%} >= "
                f"{max_unhealthy_share:.0%}); a shared dependency is the likely cause, the load balancer "
                "fails open, replacing instances would not help"
            ),
            fleet_wide=True,
            unhealthy=unhealthy,
            total=total,
        )

    by_az: dict[str, list[TargetState]] = {}
    for t in fleet:
        by_az.setdefault(t.az, []).append(t)
    zonal = tuple(
        sorted(az for az, ts in by_az.items() if len(ts) >= min_zonal_targets and not any(t.healthy for t in ts))
    )
    candidates = [t.instance_id for t in fleet if not t.healthy and t.replaceable and t.az not in zonal]
    budget = max(0, max_replacements_per_window - recent_replacements)
    replace, deferred = tuple(candidates[:budget]), tuple(candidates[budget:])

    reasons = []
    if zonal:
        reasons.append(
            f"zonal: every target in {', '.join(zonal)} is unhealthy; replacements would launch into the same "
            "AZ, so its instances are left to the load balancer (consider a zonal shift)"
        )
    if deferred:
        reasons.append(
            f"rate limit: {recent_replacements} replacement(s) already in this window, cap "
            f"{max_replacements_per_window}; deferred {', '.join(deferred)}"
        )
    return Decision(
        replace=replace,
        refusal_reason="; ".join(reasons) or None,
        zonal_azs=zonal,
        deferred=deferred,
        unhealthy=unhealthy,
        total=total,
    )
