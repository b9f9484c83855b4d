"""The keep-alive moto server the benchmark runs against: connections reused, moto's answers unchanged,
stopped for good, and moto's module list computed once."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from opex_cdk.local import MotoServer, seed_dependency
from opex_cdk.local import moto_server as moto_server_module
from opex_cdk.local.keepalive_moto import cache_moto_module_list, start_keepalive_moto_server
from opex_cdk.local.seed import local_client
from opex_cdk.seed_data import FLAG_PARAMETER_NAME, TABLE_NAME, seed_items
from tests.webapp.support import REGION

pytestmark = pytest.mark.xdist_group("webapp-local")


@pytest.fixture(scope="module")
def keepalive() -> Iterator[MotoServer]:
    with start_keepalive_moto_server() as server:
        seed_dependency(server.endpoint_url, REGION)
        yield server


def _get_item_request(user_id: int) -> tuple[str, dict[str, str]]:
    """A DynamoDB GetItem as botocore sends it (moto routes on the credential scope; it checks no signature)."""
    body = json.dumps(
        {"TableName": TABLE_NAME, "Key": {"ServiceAPI": {"S": "getRecommendation"}, "UserID": {"N": str(user_id)}}}
    )
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=testing/20240101/{REGION}/dynamodb/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }
    return body, headers


def test_two_get_items_share_one_tcp_connection(keepalive: MotoServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", keepalive.port, timeout=10)
    try:
        names = []
        sockets = []
        for user_id in (1, 2):
            body, headers = _get_item_request(user_id)
            connection.request("POST", "/", body=body, headers=headers)
            response = connection.getresponse()
            item = json.loads(response.read())["Item"]
            assert response.status == 200
            assert not response.will_close  # no "Connection: close" (werkzeug's dev server sends it every time)
            names.append(item["UserName"]["S"])
            sockets.append((connection.sock, connection.sock.getsockname()))
        assert sockets[0] == sockets[1]  # the same socket object, same local port: one TCP connection
        assert names == [next(i["UserName"]["S"] for i in seed_items() if i["UserID"]["N"] == str(u)) for u in (1, 2)]
    finally:
        connection.close()


def test_answers_dynamodb_and_ssm_like_moto(keepalive: MotoServer) -> None:
    dynamodb = local_client("dynamodb", keepalive.endpoint_url, REGION)
    for expected in seed_items():
        key = {"ServiceAPI": expected["ServiceAPI"], "UserID": expected["UserID"]}
        assert dynamodb.get_item(TableName=TABLE_NAME, Key=key)["Item"] == expected
    ssm = local_client("ssm", keepalive.endpoint_url, REGION)
    assert ssm.get_parameter(Name=FLAG_PARAMETER_NAME)["Parameter"]["Value"] == "true"
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.get_item(TableName="NoSuchTable", Key={"ServiceAPI": {"S": "x"}, "UserID": {"N": "1"}})


def test_request_details_reach_moto_as_moto_server_delivers_them(keepalive: MotoServer) -> None:
    """What waitress alone would change (values checked against ``moto_server`` with moto 5.2.5):
    underscored ``x-amz-meta-*`` headers dropped, response header names capitalized (boto3 returns
    S3 metadata keys as spelled), no ``RAW_URI`` (an encoded ``/`` in an S3 key decoded)."""
    s3 = boto3.client(
        "s3",
        endpoint_url=keepalive.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.create_bucket(Bucket="keepalive-fidelity")
    s3.put_object(Bucket="keepalive-fidelity", Key="a%2Fb", Body=b"x", Metadata={"my_key": "1", "other-key": "2"})
    assert s3.head_object(Bucket="keepalive-fidelity", Key="a%2Fb")["Metadata"] == {"my_key": "1", "other-key": "2"}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="keepalive-fidelity")["Contents"]] == ["a%2Fb"]


def test_stop_ends_the_process_cleanly_with_a_keepalive_connection_open() -> None:
    server = start_keepalive_moto_server()
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        idle.request("GET", "/moto-api/data.json")
        idle.getresponse().read()  # the connection stays open, idle, in the server's event loop
        started = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - started
    finally:
        idle.close()
        server.stop()
    assert server.process.returncode == 0  # SIGTERM handled (not killed after the 5 s grace)
    assert stopped_in < 3
    assert server not in moto_server_module._RUNNING
    with pytest.raises(ProcessLookupError):
        os.kill(server.process.pid, 0)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of the closed connection may remain
        sock.bind(("127.0.0.1", server.port))
        sock.listen(1)  # raises EADDRINUSE if anything still listened on it


def test_module_list_is_computed_once_and_equals_motos(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.backends as backends

    monkeypatch.setattr(backends, "list_of_moto_modules", backends.list_of_moto_modules)  # restored afterwards
    uncached = backends.list_of_moto_modules
    cached = cache_moto_module_list()
    assert list(cached) == list(uncached()) and "dynamodb" in cached and "ssm" in cached
    assert backends.list_of_moto_modules.__wrapped__ is uncached  # type: ignore[attr-defined]
    assert cache_moto_module_list() is cached  # idempotent: not wrapped twice

    def no_listing(path: str) -> list[str]:
        raise AssertionError(f"listed {path} again")

    monkeypatch.setattr(os, "listdir", no_listing)
    assert tuple(backends.list_of_moto_modules()) == cached
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    assert DomainDispatcherApplication(create_backend_app).get_backend_for_host("dynamodb") == "dynamodb"
