"""RecommendationDependency and the Data stack: table, seed items, flag (dev and prod as synthesized)."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Match, Template

from opex_cdk import seed_data
from opex_cdk.constructs import RecommendationDependency

TABLE_LOGICAL_ID = "DependencyTableD5441BFA"


def _data(synthesized, env: str) -> Template:
    e = synthesized[env]
    return e.template(e.stacks.data)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_table_key_billing_pitr_encryption(synthesized, env: str) -> None:
    _data(synthesized, env).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": "RecommendationService",
            "KeySchema": [
                {"AttributeName": "ServiceAPI", "KeyType": "HASH"},
                {"AttributeName": "UserID", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [
                    {"AttributeName": "ServiceAPI", "AttributeType": "S"},
                    {"AttributeName": "UserID", "AttributeType": "N"},
                ]
            ),
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_table_is_protected_and_retained_in_prod_only(synthesized) -> None:
    prod = _data(synthesized, "prod").find_resources("AWS::DynamoDB::Table")[TABLE_LOGICAL_ID]
    dev = _data(synthesized, "dev").find_resources("AWS::DynamoDB::Table")[TABLE_LOGICAL_ID]
    assert prod["Properties"]["DeletionProtectionEnabled"] is True
    assert prod["DeletionPolicy"] == "Retain" and prod["UpdateReplacePolicy"] == "Retain"
    assert dev["Properties"]["DeletionProtectionEnabled"] is False
    assert dev["DeletionPolicy"] == "Delete"
    assert synthesized["prod"].stacks.data.termination_protection is True
    assert synthesized["dev"].stacks.data.termination_protection is False


def test_table_logical_id_is_pinned(synthesized) -> None:
    """Renaming the construct path would replace the table: its data, PITR history and name."""
    for env in ("dev", "prod"):
        resources = synthesized[env].template_json(synthesized[env].stacks.data)["Resources"]
        assert resources[TABLE_LOGICAL_ID]["Type"] == "AWS::DynamoDB::Table"


def test_seed_writes_all_five_items_in_one_idempotent_call(synthesized) -> None:
    resources = _data(synthesized, "dev").find_resources("Custom::SeedItems")
    assert len(resources) == 1
    props = next(iter(resources.values()))["Properties"]
    create = json.loads("".join(p if isinstance(p, str) else "TABLE" for p in props["Create"]["Fn::Join"][1]))
    update = json.loads("".join(p if isinstance(p, str) else "TABLE" for p in props["Update"]["Fn::Join"][1]))
    assert create == update  # the same overwrite on every deployment
    assert create["service"] == "DynamoDB" and create["action"] == "batchWriteItem"
    assert create["physicalResourceId"] == {"id": "seed-items"}
    requests = create["parameters"]["RequestItems"]["TABLE"]
    items = [r["PutRequest"]["Item"] for r in requests]
    assert items == seed_data.seed_items()
    health = next(i for i in items if i["UserID"] == {"N": "0"})
    assert health["UserName"] == {"S": "test"} and health["Result"] == {"S": "test"}
    assert sorted(int(i["UserID"]["N"]) for i in items) == [0, 1, 2, 3, 4]


def test_seed_role_may_only_batch_write_this_table(synthesized) -> None:
    template = _data(synthesized, "dev")
    template.resource_count_is("AWS::IAM::Policy", 0)
    template.resource_count_is("AWS::Lambda::Function", 1)  # CDK's AwsCustomResource singleton, nothing of ours
    template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": "dynamodb:BatchWriteItem",
                            "Effect": "Allow",
                            "Resource": {"Fn::GetAtt": [TABLE_LOGICAL_ID, "Arn"]},
                        }
                    ]
                )
            }
        },
    )


def test_flag_parameter_is_the_emergency_lever(synthesized) -> None:
    _data(synthesized, "dev").has_resource_properties(
        "AWS::SSM::Parameter",
        {
            "Name": "RecommendationServiceEnabled",
            "Type": "String",
            "Value": "true",
            "AllowedPattern": "^(true|false)$",
        },
    )


def test_data_stack_exposes_and_outputs_table_and_flag(synthesized) -> None:
    data = synthesized["dev"].stacks.data
    assert data.table is data.dependency.table and data.flag_parameter is data.dependency.flag_parameter
    outputs = _data(synthesized, "dev").find_outputs("*")
    assert outputs["TableName"]["Value"] == {"Ref": TABLE_LOGICAL_ID}
    assert "FlagName" in outputs


def test_table_props_and_existing_table_are_exclusive() -> None:
    stack = Stack(App(), "S")
    existing = dynamodb.Table.from_table_name(stack, "Theirs", "t")
    with pytest.raises(ValueError, match="Either provide table_props or existing_table, but not both."):
        RecommendationDependency(
            stack, "D", existing_table=existing, table_props=dynamodb.TableProps(partition_key=_key("x"))
        )


def test_table_props_override_defaults_but_not_the_key() -> None:
    stack = Stack(App(), "S")
    RecommendationDependency(
        stack,
        "D",
        retain=False,
        table_props=dynamodb.TableProps(
            partition_key=_key("Other"), table_class=dynamodb.TableClass.STANDARD_INFREQUENT_ACCESS
        ),
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableClass": "STANDARD_INFREQUENT_ACCESS",
            "KeySchema": [
                {"AttributeName": "ServiceAPI", "KeyType": "HASH"},
                {"AttributeName": "UserID", "KeyType": "RANGE"},
            ],
        },
    )


def _key(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
