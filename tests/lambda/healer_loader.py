"""Load lambda/healer/*.py under unique module names (another handler may also have an `index` or a
`decision` module), binding the handler's ``from decision import ...`` to the healer's own module."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from opex_cdk.assets import lambda_code_dir

_CODE = lambda_code_dir("healer")


def _load(file_name: str, module_name: str) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, _CODE / file_name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def load_decision() -> ModuleType:
    """lambda/healer/decision.py as ``opex_healer_decision``."""
    return _load("decision.py", "opex_healer_decision")


def load_handler() -> ModuleType:
    """lambda/healer/index.py as ``opex_healer_index`` (its ``decision`` import bound to the healer's)."""
    decision = load_decision()
    saved = sys.modules.get("decision")
    sys.modules["decision"] = decision
    try:
        return _load("index.py", "opex_healer_index")
    finally:
        if saved is None:
            sys.modules.pop("decision", None)
        else:
            sys.modules["decision"] = saved
