"""Customer-managed KMS keys shared by the constructs."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


def log_group_key(scope: Construct, id_: str, *, removal_policy: RemovalPolicy = RemovalPolicy.RETAIN) -> kms.Key:
    """A rotating customer key that CloudWatch Logs in this region may use for log groups here."""
    stack = Stack.of(scope)
    key = kms.Key(
        scope,
        id_,
        description=f"Encrypts log groups of {stack.stack_name}",
        enable_key_rotation=True,
        removal_policy=removal_policy,
    )
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],
            conditions={
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": f"arn:{stack.partition}:logs:{stack.region}:"
                    f"{stack.account}:log-group:*"
                }
            },
        )
    )
    return key
