"""The reusable local helpers: the moto server process (started, answered, never orphaned) and the
seeding of the dependency (the shapes the Data stack deploys, idempotent)."""

from __future__ import annotations

import socket

import pytest

from opex_cdk.local import MotoServer, MotoServerError, seed_dependency, set_flag, start_moto_server
from opex_cdk.local import moto_server as moto_server_module
from opex_cdk.local.seed import local_client
from opex_cdk.seed_data import FLAG_ALLOWED_PATTERN, seed_items
from tests.webapp.support import REGION

pytestmark = pytest.mark.xdist_group("webapp-local")


def test_moto_server_answers_on_loopback_and_stops_for_good() -> None:
    with start_moto_server() as server:
        assert server.endpoint_url.startswith("http://127.0.0.1:") and server.running
        tables = local_client("dynamodb", server.endpoint_url, REGION).list_tables()["TableNames"]
        assert isinstance(tables, list)
        assert server in moto_server_module._RUNNING
        process = server.process
    assert process.poll() is not None  # terminated and reaped
    assert server not in moto_server_module._RUNNING
    server.stop()  # idempotent


def test_moto_server_that_cannot_start_leaves_nothing_behind() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        before = set(moto_server_module._RUNNING)
        with pytest.raises(MotoServerError):
            start_moto_server(port=taken.getsockname()[1], startup_timeout=10)
        assert set(moto_server_module._RUNNING) == before
    finally:
        taken.close()


def test_seed_creates_the_data_stack_shapes_and_is_idempotent(moto: MotoServer) -> None:
    for _ in range(2):
        seed_dependency(moto.endpoint_url, REGION, "SeedShapeTable", "SeedShapeFlag")
    dynamodb = local_client("dynamodb", moto.endpoint_url, REGION)
    table = dynamodb.describe_table(TableName="SeedShapeTable")["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("ServiceAPI", "HASH"),
        ("UserID", "RANGE"),
    }
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        ("ServiceAPI", "S"),
        ("UserID", "N"),
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    items = dynamodb.scan(TableName="SeedShapeTable")["Items"]
    key = lambda item: int(item["UserID"]["N"])  # noqa: E731
    assert sorted(items, key=key) == sorted(seed_items(), key=key)
    ssm = local_client("ssm", moto.endpoint_url, REGION)
    assert ssm.get_parameter(Name="SeedShapeFlag")["Parameter"]["Value"] == "true"
    described = ssm.describe_parameters(Filters=[{"Key": "Name", "Values": ["SeedShapeFlag"]}])["Parameters"]
    assert described[0]["Type"] == "String" and described[0]["AllowedPattern"] == FLAG_ALLOWED_PATTERN


def test_set_flag_flips_the_lever_and_keeps_the_pattern(moto: MotoServer) -> None:
    ssm = local_client("ssm", moto.endpoint_url, REGION)
    for value in ("false", "true", "false"):
        set_flag(moto.endpoint_url, REGION, value, flag_name="SeedFlipFlag")
        assert ssm.get_parameter(Name="SeedFlipFlag")["Parameter"]["Value"] == value
    described = ssm.describe_parameters(Filters=[{"Key": "Name", "Values": ["SeedFlipFlag"]}])["Parameters"]
    assert described[0]["AllowedPattern"] == FLAG_ALLOWED_PATTERN
    # Without the pattern (tests only) any value can be stored: the service must treat it as disabled.
    set_flag(moto.endpoint_url, REGION, "maybe", flag_name="SeedFreeFlag", allowed_pattern=None)
    assert ssm.get_parameter(Name="SeedFreeFlag")["Parameter"]["Value"] == "maybe"
