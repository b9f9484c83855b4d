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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep every test that needs the synthesized environments on one xdist worker."""
    for item in items:
        if "synthesized" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.synth)
            item.add_marker(pytest.mark.xdist_group(SYNTH_GROUP))
