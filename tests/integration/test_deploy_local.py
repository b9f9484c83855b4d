"""`make deploy-local` in the suite: the real CDK CLI deploys the synthesized dev environment into moto.

Deploys the dev assembly synthesized without nag (`dev_assembly_without_nag`: the templates are the same,
and the `synthesized` tests prove them nag-clean), so it runs on its own xdist worker and pays only for the
moto server, `cdk bootstrap`, `cdk deploy`, verification, exercises and `cdk destroy`.
Deselect with ``-m "not deploy_local"``.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest

from opex_cdk.local.deploy import RehearsalError, moto_blockers, moto_supported_types, rehearse, stacks_in_order

pytestmark = [pytest.mark.deploy_local, pytest.mark.slow, pytest.mark.xdist_group("deploy_local")]

#: Why moto may be unable to create a whole stack: each reason is machine-made by the rehearsal.
_BLOCKER = re.compile(
    r"^(Fn::GetAtt \S+ of \S+, a type moto does not implement"
    r"|template parameter \S+ reads SSM parameter \S+, which moto does not hold"
    r"|depends on \S+, which moto cannot create)$"
)
#: Every stack of the dev environment must really deploy and verify in moto (moto_fixes + moto_cfn_models).
CORE = ("network", "data", "notifications", "app", "audit", "observability", "scaling", "resilience")


@pytest.fixture(scope="session")
def rehearsal(dev_assembly_without_nag: Path, tmp_path_factory):
    assembly = dev_assembly_without_nag
    return rehearse(env_name="dev", assembly_dir=assembly, workdir=tmp_path_factory.mktemp("deploy-local")), assembly


def test_every_stack_is_accounted_for_in_dependency_order(rehearsal) -> None:
    report, assembly = rehearsal
    assert [s.name for s in report.stacks] == [s.name for s in stacks_in_order(assembly)]
    assert not report.errors, report.render()


def test_core_stacks_really_deploy_and_match_their_templates(rehearsal) -> None:
    report, _ = rehearsal
    by_name = {s.name: s for s in report.stacks}
    for role in CORE:
        stack = by_name[f"opex-dev-{role}"]
        assert stack.status == "CREATE_COMPLETE" and stack.ok, "\n".join(stack.lines())
        # Every template resource is either created by moto or counted as a type moto does not implement.
        assert stack.created + stack.unsupported == stack.expected
        assert not set(stack.unsupported) & moto_supported_types()
    assert by_name["opex-dev-app"].outputs["SiteUrl"].startswith("http")


def test_rehearsed_stacks_pass_and_the_rest_name_a_moto_limitation(rehearsal) -> None:
    report, _ = rehearsal
    for stack in report.stacks:
        if stack.not_rehearsable:
            assert all(_BLOCKER.match(reason) for reason in stack.not_rehearsable), stack.not_rehearsable
        else:
            assert stack.ok, "\n".join(stack.lines())
            assert stack.created + stack.unsupported == stack.expected


def test_custom_resources_are_reported_as_not_run(rehearsal) -> None:
    report, _ = rehearsal
    network = next(s for s in report.stacks if s.name == "opex-dev-network")
    assert any("RestrictDefaultSecurityGroup" in c for c in network.custom_answered)
    assert "handler NOT run" in report.render()


def test_exercises_never_pass_silently(rehearsal) -> None:
    report, _ = rehearsal
    assert [name for name, _, _ in report.exercises] == [
        "scaler: scale out, then in",
        "levers: dependency flag off, then on",
    ]
    assert all(passed is not False for _, _, passed in report.exercises), report.render()
    # Both must really run and pass: the lever needs only the Data stack; the scaler needs the Scaling stack
    # (moto_fixes publishes the Powertools parameter and resolves the cell template's {{resolve:ssm:...}}).
    outcomes = {name: passed for name, _, passed in report.exercises}
    assert outcomes == {"scaler: scale out, then in": True, "levers: dependency flag off, then on": True}


def test_scaler_exercise_saw_every_step_through_the_apis(rehearsal) -> None:
    report, _ = rehearsal
    detail = next(detail for name, detail, _ in report.exercises if name.startswith("scaler"))
    for step in (
        "scale-out alarm -> opex-dev-cell-2 CREATE_COMPLETE",
        "record opex-dev-cell-2 weight 100 -> opex-dev-cell-2-",  # aimed at the cell's own load balancer
        "scale-in alarm -> opex-dev-cell-2 draining (weight 0)",
        "reconcile -> record removed, opex-dev-cell-2",
        "notifications on the Warning topic",
        "COOLDOWN_SECONDS=0, DRAIN_SECONDS=0 for the rehearsal",  # what the rehearsal shortens is said
    ):
        assert step in detail, detail


def test_server_is_stopped_and_port_freed(rehearsal) -> None:
    report, _ = rehearsal
    assert report.server_pid and report.endpoint_url
    with pytest.raises(ProcessLookupError):
        os.kill(report.server_pid, 0)
    port = int(report.endpoint_url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    assert report.teardown == ["cdk destroy: every stack deleted"], report.teardown


def test_blockers_are_found_in_templates() -> None:
    supported = frozenset({"AWS::SNS::Topic"})
    template = {
        "Resources": {"Trail": {"Type": "AWS::CloudTrail::Trail"}, "T": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"A": {"Value": {"Fn::GetAtt": ["Trail", "Arn"]}}, "B": {"Value": {"Fn::GetAtt": "T.TopicName"}}},
    }
    assert moto_blockers(template, supported) == [
        "Fn::GetAtt Trail.Arn of AWS::CloudTrail::Trail, a type moto does not implement"
    ]


def test_dependency_cycle_is_refused(tmp_path) -> None:
    artifacts = {
        name: {
            "type": "aws:cloudformation:stack",
            "properties": {"templateFile": f"{name}.json"},
            "dependencies": [dep],
        }
        for name, dep in (("a", "b"), ("b", "a"))
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"artifacts": artifacts}))
    with pytest.raises(RehearsalError, match="dependency cycle"):
        stacks_in_order(tmp_path)
