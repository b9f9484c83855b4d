"""Create the service's dependency (DynamoDB table + SSM flag) in moto, from :mod:`opex_cdk.seed_data`.

The same shapes the Data stack deploys: table key ``ServiceAPI`` (S, hash) + ``UserID`` (N, range),
on-demand billing; flag a String parameter restricted to ``^(true|false)$``.

Also runnable::

    python -m opex_cdk.local.seed --endpoint-url http://127.0.0.1:5000 --region us-east-2
"""

from __future__ import annotations

import argparse
from typing import Any

import boto3
from botocore.config import Config

from opex_cdk.seed_data import FLAG_ALLOWED_PATTERN, FLAG_PARAMETER_NAME, TABLE_NAME, seed_items

__all__ = ["local_client", "seed_dependency", "set_flag"]

#: moto accepts any credentials unless told to enforce IAM; these keep boto3 from looking for real ones.
LOCAL_ACCESS_KEY_ID = "testing"
LOCAL_SECRET_ACCESS_KEY = "testing"

_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"mode": "standard", "max_attempts": 3})


def local_client(
    service: str,
    endpoint_url: str,
    region: str,
    *,
    aws_access_key_id: str = LOCAL_ACCESS_KEY_ID,
    aws_secret_access_key: str = LOCAL_SECRET_ACCESS_KEY,
) -> Any:
    """A boto3 client for ``service`` at ``endpoint_url`` with explicit credentials.

    Explicit credentials, so a developer's real profile is never picked up and sent to moto (nor a
    call to moto ever mistaken for one to AWS).
    """
    session = boto3.session.Session(
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        region_name=region,
    )
    return session.client(service, endpoint_url=endpoint_url, config=_CLIENT_CONFIG)


def seed_dependency(
    endpoint_url: str,
    region: str,
    table_name: str = TABLE_NAME,
    flag_name: str = FLAG_PARAMETER_NAME,
    flag_value: str = "true",
    *,
    items: list[dict[str, dict[str, str]]] | None = None,
    aws_access_key_id: str = LOCAL_ACCESS_KEY_ID,
    aws_secret_access_key: str = LOCAL_SECRET_ACCESS_KEY,
) -> None:
    """Create the table, write its items and create the flag parameter. Safe to call again.

    Args:
        endpoint_url: the moto server (or any AWS-compatible endpoint).
        region: AWS region name, e.g. ``us-east-2``.
        table_name: DynamoDB table. Default: ``RecommendationService``.
        flag_name: SSM parameter. Default: ``RecommendationServiceEnabled``.
        flag_value: the flag's value; must match ``^(true|false)$``. Default: ``"true"``.
        items: items to write instead of :func:`opex_cdk.seed_data.seed_items` (tests use this to
            seed malformed data). Default: the seed items.
        aws_access_key_id: access key to sign with. Default: ``testing``.
        aws_secret_access_key: secret key to sign with. Default: ``testing``.
    """
    credentials = {"aws_access_key_id": aws_access_key_id, "aws_secret_access_key": aws_secret_access_key}
    dynamodb = local_client("dynamodb", endpoint_url, region, **credentials)
    try:
        dynamodb.create_table(
            TableName=table_name,
            KeySchema=[
                {"AttributeName": "ServiceAPI", "KeyType": "HASH"},
                {"AttributeName": "UserID", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "ServiceAPI", "AttributeType": "S"},
                {"AttributeName": "UserID", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        pass  # already there: re-seeding is idempotent
    dynamodb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
    for item in seed_items() if items is None else items:
        dynamodb.put_item(TableName=table_name, Item=item)
    set_flag(endpoint_url, region, flag_value, flag_name=flag_name, **credentials)


def set_flag(
    endpoint_url: str,
    region: str,
    value: str,
    *,
    flag_name: str = FLAG_PARAMETER_NAME,
    allowed_pattern: str | None = FLAG_ALLOWED_PATTERN,
    aws_access_key_id: str = LOCAL_ACCESS_KEY_ID,
    aws_secret_access_key: str = LOCAL_SECRET_ACCESS_KEY,
) -> None:
    """Create or overwrite the flag parameter (String) with ``value``.

    Args:
        endpoint_url: the moto server.
        region: AWS region name.
        value: new value, normally ``"true"`` or ``"false"``.
        flag_name: SSM parameter. Default: ``RecommendationServiceEnabled``.
        allowed_pattern: the parameter's AllowedPattern; ``None`` creates it without one, which is
            how tests store a value the service must treat as invalid. Default: ``^(true|false)$``.
        aws_access_key_id: access key to sign with. Default: ``testing``.
        aws_secret_access_key: secret key to sign with. Default: ``testing``.
    """
    ssm = local_client(
        "ssm",
        endpoint_url,
        region,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
    )
    request: dict[str, Any] = {"Name": flag_name, "Value": value, "Type": "String", "Overwrite": True}
    if allowed_pattern is not None:
        request["AllowedPattern"] = allowed_pattern
    ssm.put_parameter(**request)


def main(argv: list[str] | None = None) -> None:
    """Command line: seed a running moto server."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint-url", required=True, help="e.g. http://127.0.0.1:5000")
    parser.add_argument("--region", default="us-east-2")
    parser.add_argument("--table", default=TABLE_NAME)
    parser.add_argument("--flag-parameter", default=FLAG_PARAMETER_NAME)
    parser.add_argument("--flag-value", default="true", choices=["true", "false"])
    args = parser.parse_args(argv)
    seed_dependency(args.endpoint_url, args.region, args.table, args.flag_parameter, args.flag_value)
    print(f"seeded table {args.table} and parameter {args.flag_parameter}={args.flag_value}")


if __name__ == "__main__":
    main()
