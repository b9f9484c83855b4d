"""Which cdk-nag packs run, and how they are attached.

Packs are CDK policy-validation plugins (cdk-nag v3): registered on the App or on a Stage, they run
during synthesis and any unacknowledged finding fails it. With aws-cdk-lib 2.275 a plugin on the App
also checks the stacks of nested Stages; `build_environment` still registers the environment's own
packs on its Stage (CDK Pipelines), so a stage gets the packs of its environment (prod: HIPAA and
PCI as well) wherever it is nested. tests/unit/test_pipeline.py proves a finding inside a Stage fails synth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cdk_nag
from aws_cdk import IPolicyValidationPlugin, Stage, Validations
from constructs import IConstruct

from opex_cdk.nag.well_architected import WellArchitectedChecks

#: Pack name (as written in cdk.json `nag_packs`) -> factory of the pack.
_PACK_FACTORIES: dict[str, Callable[[IConstruct], IPolicyValidationPlugin]] = {
    "AwsSolutions": lambda scope: cdk_nag.AwsSolutionsChecks(scope),
    "NIST.800.53.R5": lambda scope: cdk_nag.NIST80053R5Checks(scope),
    "HIPAA.Security": lambda scope: cdk_nag.HIPAASecurityChecks(scope),
    "PCI.DSS.321": lambda scope: cdk_nag.PCIDSS321Checks(scope),
    # Ours (rule ids WA-REL-n / WA-OPS-n): reliability and operations, which no cdk-nag pack checks.
    "WellArchitected": lambda scope: WellArchitectedChecks(scope),
}


def nag_packs_for(scope: IConstruct, names: Iterable[str]) -> list[IPolicyValidationPlugin]:
    """Instantiate the named packs (names as validated by `opex_cdk.config`)."""
    packs = []
    for name in names:
        if name not in _PACK_FACTORIES:
            raise ValueError(f"unknown nag pack '{name}'; allowed: {', '.join(_PACK_FACTORIES)}")
        packs.append(_PACK_FACTORIES[name](scope))
    return packs


def apply_nag_packs(stage: Stage, names: Iterable[str]) -> list[IPolicyValidationPlugin]:
    """Register the named packs on ``stage`` (an App is a Stage); return them for direct use in tests."""
    packs = nag_packs_for(stage, names)
    Validations.of(stage).add_plugins(*packs)
    return packs
