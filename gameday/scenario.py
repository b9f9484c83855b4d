"""The workshop's steps as timed phases, and the two profiles (short for CI, full for a rehearsal).

Each phase applies its action at its start, then runs until its goal is observed (e.g. "fail-open") and
at least ``min_seconds`` have passed, but never longer than ``max_seconds`` (a goal not reached by then
is reported as a failed expectation, not waited for forever).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

PHASE_NAMES = (
    "baseline",
    "dependency-off",
    "restore-flag",
    "single-server-fault",
    "healer-replaces",
    "dependency-blackholed",
    "restore-network",
)

#: The goal each phase waits for (see :class:`gameday.harness.Harness`).
GOALS = {
    "baseline": "all-checked",
    "dependency-off": "fail-open",
    "restore-flag": "all-healthy",
    "single-server-fault": "faulted-out",
    "healer-replaces": "replaced-healthy",
    "dependency-blackholed": "fail-open",
    "restore-network": "all-healthy",
}


@dataclass(frozen=True)
class PhasePlan:
    """How long one phase runs: ``min_seconds`` at least, ``after_goal_seconds`` past its goal."""

    name: str
    min_seconds: float
    after_goal_seconds: float


@dataclass(frozen=True)
class Profile:
    """Phase lengths plus the request rate."""

    name: str
    phases: tuple[PhasePlan, ...]
    rate: float

    def with_min_seconds(self, overrides: dict[str, float]) -> Profile:
        """A copy with some phases' ``min_seconds`` changed; unknown names raise naming the allowed ones."""
        unknown = sorted(set(overrides) - set(PHASE_NAMES))
        if unknown:
            raise ValueError(f"phase {unknown[0]!r} is not allowed; allowed: {', '.join(PHASE_NAMES)}")
        for name, seconds in overrides.items():
            if not 0 <= seconds <= 600:
                raise ValueError(f"phase {name}: {seconds} s is not allowed; allowed: 0-600 s")
        return replace(
            self,
            phases=tuple(replace(p, min_seconds=overrides.get(p.name, p.min_seconds)) for p in self.phases),
        )


def _profile(name: str, rate: float, min_seconds: float, after_goal: float) -> Profile:
    return Profile(name, tuple(PhasePlan(n, min_seconds, after_goal) for n in PHASE_NAMES), rate)


#: CI: every phase as short as the health-check physics allows (goal + 1 s).
SHORT = _profile("short", rate=25, min_seconds=2, after_goal=1)
#: Rehearsal: at least 30 s per phase, so each state is seen for a while.
FULL = _profile("full", rate=30, min_seconds=30, after_goal=5)
PROFILES = {"short": SHORT, "full": FULL}
