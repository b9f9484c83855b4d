"""The delivery pipeline (CDK Pipelines): structure, nag inside every Stage, no stale acknowledgment.

The pipeline is built from a pipeline-enabled copy of cdk.json's context (cdk.json itself keeps it off, so
`make synth` needs no connection). Building it builds both environments as Stages, so the module builds it
once and synthesizes it once (nag included: synth raises on any finding, in the pipeline stack and in every
Stage); every test reads that result.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, Stage
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from opex_cdk.config import ConfigError, load_environment
from opex_cdk.environment import build_pipeline
from opex_cdk.nag import acknowledgments_in, apply_nag_packs, nag_packs_for
from opex_cdk.nag.acknowledgments import RECORD_ONLY_CONTEXT
from opex_cdk.project_context import load_project_context
from opex_cdk.stacks.pipeline import SMOKE_TEST_COMMANDS

pytestmark = pytest.mark.xdist_group("pipeline")

CONNECTION = "arn:aws:codeconnections:us-east-2:111111111111:connection/0f4e2c1a-1111-2222-3333-444455556666"
REPOSITORY = "example-org/opex-cdk"


def _context(pipeline: dict[str, Any], env: str = "dev") -> dict[str, Any]:
    context = copy.deepcopy(load_project_context())
    context["environments"][env]["pipeline"] = pipeline
    return context


ENABLED = {"enabled": True, "connection_arn": CONNECTION, "repository": REPOSITORY, "branch": "release"}


@pytest.fixture(scope="module")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Template]:
    context = _context(ENABLED)
    app = App(context=context, outdir=str(tmp_path_factory.mktemp("pipeline")))
    stack = build_pipeline(app, load_environment(context, "dev"), context)
    app.synth()  # nag on the pipeline stack (App plugins) and inside each Stage (Stage plugins)
    return stack, Template.from_stack(stack)


def _stages(template: Template) -> list[dict[str, Any]]:
    (pipeline,) = template.find_resources("AWS::CodePipeline::Pipeline").values()
    return pipeline["Properties"]["Stages"]


def test_stages_run_source_synth_mutate_dev_prod(delivery) -> None:
    _, template = delivery
    assert [s["Name"] for s in _stages(template)] == ["Source", "Build", "UpdatePipeline", "Assets", "Dev", "Prod"]


def test_manual_approval_gates_prod_only(delivery) -> None:
    _, template = delivery
    stages = {s["Name"]: s["Actions"] for s in _stages(template)}
    first_prod = min(stages["Prod"], key=lambda a: a["RunOrder"])
    assert first_prod["ActionTypeId"]["Provider"] == "Manual"
    assert all(a["RunOrder"] > first_prod["RunOrder"] for a in stages["Prod"] if a is not first_prod)
    assert not [a for a in stages["Dev"] if a["ActionTypeId"]["Provider"] == "Manual"]


def test_every_stage_ends_with_a_smoke_test_of_its_site_url(delivery) -> None:
    stack, template = delivery
    for stage in _stages(template)[-2:]:
        last = max(stage["Actions"], key=lambda a: a["RunOrder"])
        assert last["Name"] == "SmokeTest" and last["ActionTypeId"]["Provider"] == "CodeBuild"
        # SITE_URL comes from the stage's App stack output, through the CloudFormation action's namespace.
        assert "SiteUrl" in str(last["Configuration"]["EnvironmentVariables"])
    smoke_specs = [
        p["Properties"]["Source"]["BuildSpec"]
        for p in template.find_resources("AWS::CodeBuild::Project").values()
        if "/healthcheck" in p["Properties"]["Source"]["BuildSpec"]
    ]
    assert len(smoke_specs) == 2  # one smoke-test project per stage
    assert all('test \\"$code\\" = 200' in spec for spec in smoke_specs), smoke_specs[0]
    assert len(SMOKE_TEST_COMMANDS) == 2
    assert [s.stacks.app.stack_name for s in stack.stages] == ["opex-dev-app", "opex-prod-app"]


def test_source_is_the_configured_connection_and_branch(delivery) -> None:
    _, template = delivery
    (action,) = _stages(template)[0]["Actions"]
    assert action["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    configuration = action["Configuration"]
    assert (configuration["ConnectionArn"], configuration["FullRepositoryId"], configuration["BranchName"]) == (
        CONNECTION,
        REPOSITORY,
        "release",
    )


def test_synth_step_runs_the_tests_before_synth(delivery) -> None:
    _, template = delivery
    specs = [
        p["Properties"]["Source"]["BuildSpec"]
        for p in template.find_resources("AWS::CodeBuild::Project").values()
        if "make test" in p["Properties"]["Source"]["BuildSpec"]
    ]
    assert len(specs) == 1
    assert specs[0].index('"make test"') < specs[0].index('"make synth ENV=dev"')


def test_artifacts_are_kms_encrypted_in_our_bucket_and_builds_unprivileged(delivery) -> None:
    stack, template = delivery
    bucket_id = stack.get_logical_id(stack.artifact_bucket.node.default_child)
    template.has_resource_properties(
        "AWS::CodePipeline::Pipeline",
        {"ArtifactStore": Match.object_like({"Location": {"Ref": bucket_id}, "EncryptionKey": Match.any_value()})},
    )
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    for project in template.find_resources("AWS::CodeBuild::Project").values():
        assert project["Properties"]["Environment"]["PrivilegedMode"] is False


def test_pipeline_template_passes_cfn_lint(delivery) -> None:
    """CDK Pipelines writes role ARNs as Fn::Join with an empty delimiter (cfn-lint E3703); JoinToSub fixes it."""
    from tests.unit.test_cfn_lint import cfn_lint_errors

    stack, _ = delivery
    assert cfn_lint_errors([str(Path(Stage.of(stack).outdir) / stack.template_file)]) == []


def test_join_to_sub_keeps_the_value() -> None:
    from opex_cdk.stacks.pipeline import _join_to_sub

    join = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::1:role/${x}"]]}
    assert _join_to_sub(join) == {"Fn::Sub": "arn:${AWS::Partition}:iam::1:role/${!x}"}
    untouched = {"Fn::Join": ["", ["a", {"Fn::GetAtt": ["R", "Arn"]}]]}
    assert _join_to_sub(untouched) == untouched
    assert _join_to_sub({"Fn::Join": [",", ["a", "b"]]}) == {"Fn::Join": [",", ["a", "b"]]}


def test_non_compliant_resource_inside_a_stage_fails_synth(tmp_path) -> None:
    """The packs build_environment registers on a Stage (as DeliveryStage does) run when the App synthesizes."""
    app = App(outdir=str(tmp_path))
    stage = Stage(app, "Dev")
    sqs.Queue(Stack(stage, "S"), "Q")  # no DLQ: AwsSolutions-SQS3
    apply_nag_packs(stage, ["AwsSolutions"])  # on the Stage only, nothing on the App
    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed: .*AwsSolutions-SQS3"):
        app.synth()


def test_each_stage_carries_its_own_environment(delivery) -> None:
    """Each DeliveryStage is built from its environment's config, so prod's stacks get prod's packs."""
    stack, _ = delivery
    dev, prod = (s.config for s in stack.stages)
    assert (dev.name, prod.name) == ("dev", "prod")
    assert {"HIPAA.Security", "PCI.DSS.321"} <= set(prod.nag_packs) - set(dev.nag_packs)
    assert [s.account for s in stack.stages] == [dev.account, prod.account]


def test_pipeline_acknowledgments_are_live() -> None:
    """Each acknowledgment on the pipeline hides a live finding (prod: every pack runs on the pipeline stack)."""
    context = _context({**ENABLED, "stages": ["prod"]}, env="prod")
    context[RECORD_ONLY_CONTEXT] = "true"
    app = App(context=context)
    config = load_environment(context, "prod")
    stack = build_pipeline(app, config, context, with_nag=False)
    findings = [
        (v.rule_name, r.construct_path)
        for pack in nag_packs_for(app, config.nag_packs)
        for v in pack.validate_scope(stack).violations
        for r in v.violating_resources
    ]
    acknowledged = [a for a in acknowledgments_in(stack) if "/Prod/" not in a.construct_path]
    assert len(acknowledged) >= 10
    stale = [
        a
        for a in acknowledged
        if not any(rule == a.rule_id and path.startswith(a.construct_path) for rule, path in findings)
    ]
    assert stale == [], [(a.construct_path, a.rule_id) for a in stale]


@pytest.mark.parametrize(
    ("pipeline", "expected"),
    [
        ({"enabled": True}, "pipeline.connection_arn: the pipeline is enabled but connection_arn and repository"),
        ({"enabled": True, "connection_arn": "arn:aws:s3:::bucket", "repository": "a/b"}, "is not a connection ARN"),
        (
            {"enabled": True, "source_bucket": "src", "connection_arn": CONNECTION, "repository": "a/b"},
            "pipeline.source_bucket: 'src' is set together with connection_arn/repository",
        ),
        ({**ENABLED, "stages": []}, "pipeline.stages: empty"),
    ],
)
def test_bad_pipeline_config_names_the_field(pipeline: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_environment(_context(pipeline), "dev")


def test_unknown_stage_environment_is_a_config_error() -> None:
    context = _context({**ENABLED, "stages": ["dev", "staging"]})
    with pytest.raises(ConfigError, match=r"pipeline.stages\[1\]: env: unknown environment 'staging'"):
        build_pipeline(App(context=context), load_environment(context, "dev"), context)


def test_s3_source_is_an_alternative_to_the_connection() -> None:
    from aws_cdk import pipelines

    from opex_cdk.stacks.pipeline import _source

    context = _context({"enabled": True, "source_bucket": "opex-source", "source_object_key": "main.zip"})
    stack = Stack(App(), "S")
    source = _source(stack, load_environment(context, "dev"))
    assert isinstance(source, pipelines.CodePipelineSource) and source.to_string().startswith("S3Source(")
    assert stack.node.find_child("SourceBucket").bucket_name == "opex-source"
