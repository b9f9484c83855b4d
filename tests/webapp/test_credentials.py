"""The workshop's per-instance fault: the instance role is swapped (steps 4-5), then repaired.

Simulated for real: a moto server that enforces IAM (``INITIAL_NO_AUTH_ACTION_COUNT``), two IAM
identities standing for the two roles (one may read the table, one may not), and the service reading
its credentials from a shared credentials file that the test rewrites, as IMDS starts serving the
new role's credentials after ``aws ec2 replace-iam-instance-profile-association``. moto checks every
SigV4 signature against its IAM and evaluates the policies, so AccessDenied is moto's real answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opex_cdk.local import MotoServer, seed_dependency, start_moto_server
from opex_cdk.local.seed import local_client
from tests.webapp.conftest import SpawnWebapp
from tests.webapp.support import REGION, WebappProcess, wait_until

pytestmark = pytest.mark.xdist_group("webapp-credentials")


@dataclass
class Keys:
    access_key_id: str
    secret_access_key: str


@dataclass
class IamMoto:
    server: MotoServer
    app_role: Keys  # may read the flag and the table
    no_dynamodb_role: Keys  # the workshop's swapped role: flag yes, table no


def _policy(*actions: str) -> str:
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}
    )


def _identity(iam: object, name: str, *actions: str) -> Keys:
    iam.create_user(UserName=name)  # type: ignore[attr-defined]
    iam.put_user_policy(UserName=name, PolicyName="access", PolicyDocument=_policy(*actions))  # type: ignore[attr-defined]
    key = iam.create_access_key(UserName=name)["AccessKey"]  # type: ignore[attr-defined]
    return Keys(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="module")
def iam_moto() -> Iterator[IamMoto]:
    # The first 3 calls are free (to create an administrator); every later call is authenticated.
    with start_moto_server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"}) as server:
        admin = _identity(local_client("iam", server.endpoint_url, REGION), "admin", "*")
        credentials = {"aws_access_key_id": admin.access_key_id, "aws_secret_access_key": admin.secret_access_key}
        seed_dependency(server.endpoint_url, REGION, **credentials)
        iam = local_client("iam", server.endpoint_url, REGION, **credentials)
        yield IamMoto(
            server,
            app_role=_identity(iam, "app-role", "ssm:GetParameter", "dynamodb:GetItem"),
            no_dynamodb_role=_identity(iam, "no-dynamodb-role", "ssm:GetParameter"),
        )


def write_credentials(path: Path, keys: Keys) -> None:
    """Replace the file atomically: a reader never sees half a file."""
    staging = path.with_suffix(".tmp")
    staging.write_text(
        f"[default]\naws_access_key_id = {keys.access_key_id}\naws_secret_access_key = {keys.secret_access_key}\n"
    )
    os.replace(staging, path)


@pytest.fixture(scope="module")
def credentials_file(tmp_path_factory: pytest.TempPathFactory, iam_moto: IamMoto) -> Path:
    path = tmp_path_factory.mktemp("credentials") / "credentials"
    write_credentials(path, iam_moto.no_dynamodb_role)  # start as the broken instance
    return path


@pytest.fixture(scope="module")
def service(iam_moto: IamMoto, credentials_file: Path, spawn: SpawnWebapp) -> WebappProcess:
    return spawn(
        "credentials",
        iam_moto.server.endpoint_url,
        "--credential-max-age",
        "2",
        "--credential-min-interval",
        "0.5",
        "--breaker-open-seconds",
        "0.5",
        "--healthcheck-cache",
        "0.2",
        env={
            "AWS_ACCESS_KEY_ID": None,  # type: ignore[dict-item]
            "AWS_SECRET_ACCESS_KEY": None,  # type: ignore[dict-item]
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials_file),
            "AWS_CONFIG_FILE": str(credentials_file.with_name("no-config")),
        },
    )


def test_step4_5_swapped_role_serves_the_fallback_and_fails_the_deep_check(
    service: WebappProcess, iam_moto: IamMoto, credentials_file: Path
) -> None:
    write_credentials(credentials_file, iam_moto.no_dynamodb_role)
    wait_until(lambda: service.get("/healthcheck").status == 503, 10)
    page = service.get("/")
    assert page.status == 200 and page.headers["x-recommendation-source"] == "fallback"
    assert "dependency access_denied: AccessDenied" in page.text
    health = service.get("/healthcheck")
    assert health.status == 503 and health.json()["kind"] == "access_denied"
    assert health.elapsed < 1.0
    # The auth error asked for fresh credentials (which, here, are still the restricted ones).
    wait_until(lambda: any(e["reason"] == "auth_error" for e in service.events("clients_rebuilt")), 3)


def test_repaired_role_takes_effect_at_once_through_the_auth_error_refresh(
    service: WebappProcess, iam_moto: IamMoto, credentials_file: Path
) -> None:
    write_credentials(credentials_file, iam_moto.no_dynamodb_role)
    wait_until(lambda: service.get("/").headers["x-recommendation-source"] == "fallback", 10)
    write_credentials(credentials_file, iam_moto.app_role)
    took = wait_until(lambda: service.get("/").headers["x-recommendation-source"] == "dependency", 10)
    assert took < 3.0  # rebuild at most every 0.5 s on auth errors + 0.5 s breaker; 60 s is the promise
    wait_until(lambda: service.get("/healthcheck").status == 200, 2)


def test_role_swapped_away_takes_effect_through_the_periodic_rebuild(
    service: WebappProcess, iam_moto: IamMoto, credentials_file: Path
) -> None:
    write_credentials(credentials_file, iam_moto.app_role)
    wait_until(lambda: service.get("/healthcheck").status == 200, 10)
    write_credentials(credentials_file, iam_moto.no_dynamodb_role)
    # The old credentials stay valid (as an old role session does): only a rebuild picks up the swap.
    took = wait_until(lambda: service.get("/healthcheck").status == 503, 10)
    assert took < 4.0  # --credential-max-age 2 here; 45 s by default, so within the 60 s promise
    assert any(e["reason"] == "max_age" for e in service.events("clients_rebuilt"))
    assert service.get("/").headers["x-recommendation-source"] == "fallback"
