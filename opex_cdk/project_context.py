"""The app context as the CDK CLI would assemble it, for runs without the CLI.

`cdk synth` hands the app cdk.json's context and cdk.context.json's lookups. `python app.py`, the
tests and the ORR tool run without the CLI, so they read the same two files here; the CLI's values
(including ``-c`` flags) still win because the App gives CLI context precedence over props.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def load_project_context(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """cdk.json ``context`` merged with cdk.context.json (committed lookups)."""
    context: dict[str, Any] = {}
    cdk_json = root / "cdk.json"
    if cdk_json.exists():
        context.update(json.loads(cdk_json.read_text()).get("context", {}))
    lookups = root / "cdk.context.json"
    if lookups.exists():
        context.update(json.loads(lookups.read_text()))
    return context
