"""The app as users run it: every environment synthesizes, one template per stack."""

from __future__ import annotations

import pytest

from tests.conftest import ENVIRONMENTS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_synthesizes_one_template_per_stack(synthesized, env: str) -> None:
    e = synthesized[env]
    names = sorted(s.stack_name for s in e.assembly.stacks)
    assert names == sorted(s.stack_name for s in e.stacks.all())
    for stack in e.stacks.all():
        assert stack.account == e.config.account and stack.region == e.config.region


def test_tags_from_config_reach_resources(synthesized) -> None:
    e = synthesized["prod"]
    vpc = e.template(e.stacks.network).find_resources("AWS::EC2::VPC")
    tags = {t["Key"]: t["Value"] for t in next(iter(vpc.values()))["Properties"]["Tags"]}
    assert tags["Environment"] == "prod" and tags["Project"] == "opex-cdk"
