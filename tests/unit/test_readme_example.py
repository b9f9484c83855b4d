"""The README's "Using the constructs in another project" example runs as written and arrives nag-clean."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_import_example_synthesizes_nag_clean(tmp_path: Path, monkeypatch) -> None:
    section = README.read_text().split("## Using the constructs in another project", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    # Same code, but the App writes into a temporary folder (and would raise on any nag finding).
    code = code.replace("app = App()", f"app = App(outdir={str(tmp_path)!r})")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "Mine.template.json").exists()
    assert namespace["tier"].load_balancer is not None
