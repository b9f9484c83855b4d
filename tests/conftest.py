"""Shared fixtures. The expensive one, `synthesized`, builds and synthesizes every environment once
per test session (and, under xdist, on one worker only: tests that use it share one xdist group)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# jsii talks to a node process; make sure it is the venv's Node 24 when tests run outside make.
_NODE_BIN = Path(__file__).resolve().parent.parent / ".venv" / "node-bin"
if _NODE_BIN.is_dir() and str(_NODE_BIN) not in os.environ.get("PATH", ""):
    os.environ["PATH"] = f"{_NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

SYNTH_GROUP = "synth"
#: xdist groups that run long, scheduled first in this order (see pytest_collection_modifyitems).
SCHEDULE_FIRST = ("gameday", SYNTH_GROUP, "deploy_local")
ENVIRONMENTS = ("dev", "prod")


@dataclass
class SynthesizedEnvironment:
    """One environment built the way `app.py` builds it, nag packs included, synthesized once."""

    name: str
    app: Any
    config: Any
    stacks: Any
    assembly: Any

    def template_json(self, stack: Any) -> dict[str, Any]:
        return self.assembly.get_stack_by_name(stack.stack_name).template

    def template(self, stack: Any) -> Any:
        from aws_cdk.assertions import Template

        return Template.from_json(self.template_json(stack))


def build_app(
    env_name: str,
    *,
    extra_context: dict[str, Any] | None = None,
    with_nag: bool = True,
    outdir: str | None = None,
):
    """Build (not synthesize) an environment's App exactly as app.py does; returns (app, config, stacks)."""
    from aws_cdk import App

    from opex_cdk.config import load_environment
    from opex_cdk.environment import build_environment
    from opex_cdk.project_context import load_project_context

    context = {**load_project_context(), "env": env_name, **(extra_context or {})}
    app = App(context=context, outdir=outdir)
    config = load_environment(context)
    stacks = build_environment(app, config, with_nag=with_nag)
    return app, config, stacks


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SynthesizedEnvironment]]:
    """dev and prod, each built and synthesized (nag included: synth fails on any finding)."""
    built: dict[str, SynthesizedEnvironment] = {}
    for name in ENVIRONMENTS:
        app, config, stacks = build_app(name, outdir=str(tmp_path_factory.mktemp(f"cdk-{name}")))
        built[name] = SynthesizedEnvironment(name, app, config, stacks, app.synth())
    yield built


@pytest.fixture(scope="session")
def dev_assembly_without_nag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dev cloud assembly (a cdk.out folder) synthesized without the nag packs, in ~2 s.

    For process-level tests (game day, deploy rehearsal) that read or deploy the templates: nag does
    not change a template, and the `synthesized` fixture already proves these templates nag-clean. Not
    sharing that fixture lets those long tests run on another xdist worker, beside the synth tests.
    """
    app, _, _ = build_app("dev", with_nag=False, outdir=str(tmp_path_factory.mktemp("cdk-dev-plain")))
    return Path(app.synth().directory)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Schedule for xdist (`--dist loadgroup`): every test that needs the synthesized environments on one
    worker, and each other module's tests together (its module-scoped servers start once, not per worker).

    pytest-xdist 3.8 marks a test's group by renaming ``item._nodeid`` (as ``<id>@<group>``), but
    pytest 9 reads a node's id from ``item._id``, so xdist's own grouping is ignored and every worker
    would synthesize the environments and start its own servers. We rename ``_id`` ourselves; this does
    nothing once xdist's renaming takes effect (the id already carries ``@``).
    """
    for item in items:
        if "synthesized" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.synth)
            item.add_marker(pytest.mark.xdist_group(SYNTH_GROUP))
        elif item.get_closest_marker("xdist_group") is None:
            # The game day's quick tests join its group: a worker with more than two tests pending gets
            # no more work queued behind the ~80 s short profile (xdist's refill heuristic).
            in_gameday = "tests/gameday/" in item.nodeid
            group = "gameday" if in_gameday else (item.module.__name__ if item.module else item.nodeid)
            item.add_marker(pytest.mark.xdist_group(group))
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import NodeId

    # Long groups first, in this order (the Makefile passes --no-loadscope-reorder, so xdist hands
    # groups out in collection order): the game day (~80 s, mostly waiting on health checks) starts at
    # once on one worker while the other synthesizes, instead of starting after everything else.
    def _rank(item: pytest.Item) -> int:
        names = {m.args[0] for m in item.iter_markers("xdist_group") if m.args}
        return next((i for i, group in enumerate(SCHEDULE_FIRST) if group in names), len(SCHEDULE_FIRST))

    items.sort(key=_rank)  # stable: collection order within each rank

    for item in items:
        groups = sorted(
            {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        )
        if groups and "@" not in item.nodeid:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")
