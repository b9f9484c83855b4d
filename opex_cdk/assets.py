"""Where the code our constructs deploy lives: Lambda handlers and the service.

From a source checkout they are `lambda/<name>/` and `webapp/` at the project root; from an
installed wheel, `opex_cdk/_assets/...` (see setup.py). Constructs call these functions instead of
building paths, so both work.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = _PACKAGE_DIR.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"asset folder not found; looked in: {', '.join(map(str, candidates))}")


def lambda_code_dir(name: str) -> Path:
    """The folder holding ``index.py`` of the Lambda handler ``name`` (e.g. ``scaler``)."""
    return _first_existing(_SOURCE_ROOT / "lambda" / name, _PACKAGE_DIR / "_assets" / "lambda" / name)


def webapp_dir() -> Path:
    """The folder of the `webapp` package shipped to the instances."""
    return _first_existing(_SOURCE_ROOT / "webapp", _PACKAGE_DIR / "_assets" / "webapp")
