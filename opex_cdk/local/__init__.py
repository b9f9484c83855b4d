"""Local stand-ins for AWS: a moto server process and the seeding of the service's dependency.

Used by the webapp tests, the benchmark, the local game day and the deploy rehearsal, so nothing here
knows about any one of them:

- :func:`start_moto_server` / :class:`MotoServer` run ``moto_server`` on 127.0.0.1 on a free port.
- :func:`seed_dependency` creates the DynamoDB table and the SSM flag the service reads, from
  :mod:`opex_cdk.seed_data`; :func:`set_flag` flips the flag (the workshop's "emergency lever").

Names are imported on first use, so ``python -m opex_cdk.local.seed`` runs cleanly and importing the
moto helper does not import boto3.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opex_cdk.local.moto_server import MotoServer, MotoServerError, start_moto_server
    from opex_cdk.local.seed import seed_dependency, set_flag

__all__ = ["MotoServer", "MotoServerError", "seed_dependency", "set_flag", "start_moto_server"]

_HOMES = {
    "MotoServer": "opex_cdk.local.moto_server",
    "MotoServerError": "opex_cdk.local.moto_server",
    "start_moto_server": "opex_cdk.local.moto_server",
    "seed_dependency": "opex_cdk.local.seed",
    "set_flag": "opex_cdk.local.seed",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
