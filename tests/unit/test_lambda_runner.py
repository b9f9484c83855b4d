"""The local Lambda runner the deploy rehearsal drives the deployed scaler with (no moto needed here)."""

from __future__ import annotations

import pytest

from opex_cdk.local.lambda_runner import DeployedFunction, InvocationError, invoke

HANDLER = """
import os

def handler(event, context):
    print("a log line on stdout, as Powertools writes them")
    if event.get("fail"):
        raise RuntimeError("handler failed on purpose")
    return {
        "event": event,
        "setting": os.environ["SETTING"],
        "endpoint": os.environ["AWS_ENDPOINT_URL"],
        "leaked": os.environ.get("AWS_PROFILE"),
        "function": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
"""


@pytest.fixture
def function(tmp_path) -> DeployedFunction:
    (tmp_path / "index.py").write_text(HANDLER)
    return DeployedFunction(
        name="opex-dev-scaling-Scaler",
        arn="arn:aws:lambda:us-east-2:111111111111:function:opex-dev-scaling-Scaler",
        handler="index.handler",
        environment={"SETTING": "deployed", "OTHER": "kept"},
        memory_mb=256,
        timeout_seconds=30,
        code_dir=tmp_path,
    )


def test_runs_the_handler_with_its_environment_and_overrides(function, monkeypatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "a-developers-real-profile")
    result = invoke(
        function, {"n": 1}, endpoint_url="http://127.0.0.1:1", region="us-east-2", overrides={"SETTING": "override"}
    )
    assert result["event"] == {"n": 1}
    assert result["setting"] == "override"
    assert result["endpoint"] == "http://127.0.0.1:1"
    assert result["leaked"] is None  # nothing of this process's AWS_* reaches the function
    assert result["function"] == "opex-dev-scaling-Scaler"
    assert 0 < result["remaining_ms"] <= 30_000


def test_a_raising_handler_is_an_invocation_error_with_its_message(function) -> None:
    with pytest.raises(InvocationError, match="handler failed on purpose"):
        invoke(function, {"fail": True}, endpoint_url="http://127.0.0.1:1", region="us-east-2")
