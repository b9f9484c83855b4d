"""Fixtures for the service's tests: one seeded moto server per session (per xdist worker), and a
factory that starts ``python -m webapp`` processes and always stops them.

The moto server holds several independent dependencies side by side (different table and flag
names) so each service process gets its own fault without tests changing shared state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opex_cdk.local import MotoServer, seed_dependency, set_flag, start_moto_server
from tests.webapp.support import REGION, WebappProcess, base_env

DISABLED_FLAG = "FlagDisabled"
INVALID_FLAG = "FlagInvalid"
FLIP_FLAG = "FlagFlip"
MISSING_FLAG = "FlagThatDoesNotExist"
MISSING_TABLE = "TableThatDoesNotExist"
MALFORMED_TABLE = "MalformedRecommendations"
MALFORMED_FLAG = "FlagForMalformedTable"


def malformed_items() -> list[dict[str, Any]]:
    """A table whose every user item is wrong in a different way, and whose health item is wrong."""
    key = {"ServiceAPI": {"S": "getRecommendation"}}
    return [
        {**key, "UserID": {"N": "1"}, "UserName": {"S": "Alice"}, "Result": {"N": "42"}},  # wrong type
        {**key, "UserID": {"N": "2"}, "Result": {"S": "Mad Men"}},  # no UserName
        {**key, "UserID": {"N": "3"}, "UserName": {"S": "Carol"}, "Result": {"S": "   "}},  # blank
        # UserID 4 missing altogether
        {**key, "UserID": {"N": "0"}, "UserName": {"S": "test"}, "Result": {"S": "broken"}},
    ]


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto server with the healthy dependency and every variant the fault tests need."""
    with start_moto_server() as server:
        seed_dependency(server.endpoint_url, REGION)
        seed_dependency(server.endpoint_url, REGION, MALFORMED_TABLE, MALFORMED_FLAG, items=malformed_items())
        set_flag(server.endpoint_url, REGION, "false", flag_name=DISABLED_FLAG)
        set_flag(server.endpoint_url, REGION, "true", flag_name=FLIP_FLAG)
        # Stored without the AllowedPattern: the only way a value other than true/false can exist.
        set_flag(server.endpoint_url, REGION, "maybe", flag_name=INVALID_FLAG, allowed_pattern=None)
        yield server


SpawnWebapp = Callable[..., WebappProcess]


@pytest.fixture(scope="module")
def spawn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnWebapp]:
    """Start service processes (all stopped at the end of the module).

    ``spawn(name, endpoint_url, *args, env=None, wait=True, instance_id=...)``.
    """
    started: list[WebappProcess] = []
    directory = tmp_path_factory.mktemp("webapp")

    def _spawn(
        name: str,
        endpoint_url: str | None,
        *args: str,
        env: dict[str, str] | None = None,
        wait: bool = True,
        **kwargs: Any,
    ) -> WebappProcess:
        process = WebappProcess(Path(directory) / f"{name}.log", args, env=base_env(endpoint_url, env), **kwargs)
        started.append(process)
        return process.wait_started() if wait else process

    yield _spawn
    for process in started:  # SIGTERM all first: they drain in parallel
        if process.process.poll() is None:
            process.process.terminate()
    for process in started:
        process.stop()
