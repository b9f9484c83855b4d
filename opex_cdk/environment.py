"""Build every stack of one environment into an App (or a Stage): the app's composition root.

`app.py` and the tests call :func:`build_environment`; stacks get their dependencies here (the VPC
object, the table, the topics), never by looking each other up.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Environment, Stage, Tags

from opex_cdk.config import EnvironmentConfig
from opex_cdk.nag import apply_nag_packs
from opex_cdk.stacks import NetworkStack


@dataclass
class EnvironmentStacks:
    """The stacks of one environment, by role."""

    network: NetworkStack

    def all(self) -> list:
        """Every stack, in deployment order."""
        return [self.network]


def build_environment(stage: Stage, config: EnvironmentConfig, *, with_nag: bool = True) -> EnvironmentStacks:
    """Create the environment's stacks in ``stage``, tag them, and register its nag packs on ``stage``."""
    env = Environment(account=config.account, region=config.region)
    network = NetworkStack(stage, f"{config.prefix}-network", config=config, env=env)
    stacks = EnvironmentStacks(network=network)
    for key, value in config.tags.items():
        Tags.of(stage).add(key, value)
    if with_nag:
        apply_nag_packs(stage, config.nag_packs)
    return stacks
