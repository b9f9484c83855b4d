"""The logical ids of stateful resources are pinned: a changed id means CloudFormation replaces the resource.

A table, bucket or log group whose logical id changes (a construct renamed or moved) is created anew
and the old one deleted or orphaned - its data with it. The app-tier and observability tests pin some
ids of their own; this is the global snapshot, per environment and stack.

To change an id deliberately (after planning the data migration), regenerate the snapshot and commit it:

    PATH=$PWD/.venv/node-bin:$PATH .venv/bin/python -m tests.unit.test_stateful_logical_ids
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from opex_cdk.nag.well_architected import STATEFUL_TYPES
from tests.conftest import ENVIRONMENTS

SNAPSHOT = Path(__file__).with_name("stateful_logical_ids.json")
REGENERATE = "python -m tests.unit.test_stateful_logical_ids"


def stateful_ids(assembly: Any) -> dict[str, dict[str, str]]:
    """{stack name: {logical id: type}} of every stateful resource in a synthesized assembly."""
    snapshot: dict[str, dict[str, str]] = {}
    for stack in assembly.stacks_recursively:
        resources = stack.template.get("Resources") or {}
        ids = {lid: body["Type"] for lid, body in sorted(resources.items()) if body.get("Type") in STATEFUL_TYPES}
        if ids:
            snapshot[stack.stack_name] = ids
    return snapshot


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_stateful_logical_ids_are_stable(synthesized, env: str) -> None:
    pinned = json.loads(SNAPSHOT.read_text())[env]
    current = stateful_ids(synthesized[env].assembly)
    removed = {f"{s}/{lid}" for s, ids in pinned.items() for lid in ids} - {
        f"{s}/{lid}" for s, ids in current.items() for lid in ids
    }
    assert not removed, (
        f"{env}: stateful resources changed logical id or disappeared (CloudFormation would replace them "
        f"and their data): {sorted(removed)}. If this is deliberate, regenerate with `{REGENERATE}`."
    )
    assert current == pinned, f"{env}: new stateful resources; pin them with `{REGENERATE}` and commit the file."


def _regenerate() -> None:
    from tests.conftest import build_app

    snapshot = {}
    for env in ENVIRONMENTS:
        app, _, _ = build_app(env)
        snapshot[env] = stateful_ids(app.synth())
    SNAPSHOT.write_text(json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
    print(f"wrote {SNAPSHOT}")


if __name__ == "__main__":
    _regenerate()
