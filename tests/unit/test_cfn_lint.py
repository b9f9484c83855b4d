"""cfn-lint over every template of the synthesized dev and prod assemblies: no errors (warnings allowed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ENVIRONMENTS


def _cfn_lint() -> str:
    beside_python = Path(sys.executable).with_name("cfn-lint")
    found = str(beside_python) if beside_python.exists() else shutil.which("cfn-lint")
    assert found, "cfn-lint is not installed (it is in requirements.lock)"
    return found


def cfn_lint_errors(templates: list[str]) -> list[str]:
    """cfn-lint's errors (not warnings) over ``templates``, one line each; one invocation for all of them,
    because cfn-lint's start-up (its schemas) dominates its run time."""
    result = subprocess.run(
        [_cfn_lint(), "--format", "json", *templates], capture_output=True, text=True, timeout=300, check=False
    )
    # Exit code bits: 2 errors, 4 warnings, 8 informational; anything else means cfn-lint itself failed.
    assert result.returncode & ~(2 | 4 | 8) == 0, result.stderr
    findings = json.loads(result.stdout or "[]")
    return [f"{f['Filename']}: {f['Rule']['Id']} {f['Message']}" for f in findings if f["Level"] == "Error"]


def test_cfn_lint_reports_no_errors(synthesized) -> None:
    templates = sorted(
        str(Path(synthesized[env].assembly.directory) / stack.template_file)
        for env in ENVIRONMENTS
        for stack in synthesized[env].assembly.stacks
    )
    assert len(templates) >= 2 * 3  # at least network, data and app per environment
    assert cfn_lint_errors(templates) == []
