"""Invoke a Lambda function deployed in moto the way Lambda would: its published code, its environment, a fresh process.

moto creates functions but runs them only inside Docker, which we do not have. The deploy rehearsal still
wants the *deployed* function to act on the *deployed* resources:

1. :func:`load_deployed_function` reads the function's configuration from moto (handler, environment) and
   fetches the code CloudFormation gave it (the asset zip in the bootstrap bucket, named by the template's
   ``Code.S3Bucket``/``Code.S3Key``) from moto's S3 — the published artifact, not the tree;
2. :func:`invoke` runs ``module.function(event, context)`` in a new interpreter (a cold start each time) with
   the function's environment plus ``AWS_ENDPOINT_URL`` and throwaway credentials, so every SDK call goes to
   moto, and returns what the handler returned, or raises :class:`InvocationError` with its stderr.

Layers are not unpacked: the only layer we use is Powertools, installed in this venv at the pinned version
the Scaling stack names (moto's published copy of it is that same package; see ``moto_fixes``).
``overrides`` replaces environment variables for the rehearsal (e.g. a shorter drain); the caller reports them.

Run as a module it is the child side: ``python -m opex_cdk.local.lambda_runner CODE_DIR module.function``,
the event on stdin, the result as JSON on stdout.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DeployedFunction", "InvocationError", "invoke", "load_deployed_function"]


class InvocationError(RuntimeError):
    """The handler raised, or its process could not run; the message carries the handler's stderr tail."""


@dataclass(frozen=True)
class LocalContext:
    """The parts of the Lambda context object our handlers (and Powertools) read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str
    started: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_seconds - time.time()) * 1000))


@dataclass(frozen=True)
class DeployedFunction:
    """A function as moto holds it, with its published code unpacked in ``code_dir``."""

    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    memory_mb: int
    timeout_seconds: int
    code_dir: Path


def load_deployed_function(
    cloudformation: Any, functions: Any, s3: Any, *, stack_name: str, logical_id: str, code_dir: Path
) -> DeployedFunction:
    """Read the function ``logical_id`` of ``stack_name`` from moto and unpack its code asset into ``code_dir``.

    The code is the zip named by the template's ``Code.S3Bucket``/``Code.S3Key``, fetched from moto's S3: what
    CloudFormation gave the function, not the source tree.
    """
    name = next(
        summary["PhysicalResourceId"]
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name)
        for summary in page["StackResourceSummaries"]
        if summary.get("LogicalResourceId") == logical_id
    )
    configuration = functions.get_function_configuration(FunctionName=name)
    template = cloudformation.get_template(StackName=stack_name)["TemplateBody"]
    if isinstance(template, str):
        template = json.loads(template)
    code = template["Resources"][logical_id]["Properties"]["Code"]
    body = s3.get_object(Bucket=_resolve(code["S3Bucket"], cloudformation, stack_name), Key=code["S3Key"])["Body"]
    with zipfile.ZipFile(io.BytesIO(body.read())) as archive:
        archive.extractall(code_dir)
    return DeployedFunction(
        name=name,
        arn=configuration["FunctionArn"],
        handler=configuration["Handler"],
        environment=dict((configuration.get("Environment") or {}).get("Variables", {})),
        memory_mb=int(configuration.get("MemorySize", 128)),
        timeout_seconds=int(configuration.get("Timeout", 3)),
        code_dir=code_dir,
    )


def invoke(
    function: DeployedFunction,
    event: Mapping[str, Any],
    *,
    endpoint_url: str,
    region: str,
    overrides: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Run ``function``'s handler on ``event`` in a fresh interpreter (a cold start); what it returned.

    The environment is the function's, with ``overrides`` applied, plus ``AWS_ENDPOINT_URL`` (moto) and
    throwaway credentials; nothing of this process's ``AWS_*`` reaches it.

    Raises:
        InvocationError: the handler raised or its process failed (message: the tail of its stderr).
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    child_env.update(function.environment)
    child_env.update(overrides or {})
    child_env.update(
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=region,
        AWS_REGION=region,
        AWS_LAMBDA_FUNCTION_NAME=function.name,
    )
    context = {
        "function_name": function.name,
        "invoked_function_arn": function.arn,
        "memory_limit_in_mb": function.memory_mb,
        "timeout_seconds": function.timeout_seconds,
    }
    completed = subprocess.run(
        [sys.executable, "-m", "opex_cdk.local.lambda_runner", str(function.code_dir), function.handler],
        input=json.dumps({"event": event, "context": context}),
        capture_output=True,
        text=True,
        env=child_env,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise InvocationError(f"{function.name} {function.handler} failed: {completed.stderr.strip()[-800:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _resolve(value: Any, cloudformation: Any, stack_name: str) -> str:
    """A template value CDK writes for the asset bucket: a string, or ``Fn::Sub`` of pseudo parameters."""
    if isinstance(value, str):
        return value
    text = value["Fn::Sub"]
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    _, _, region, account, _ = stack["StackId"].split(":", 4)
    return text.replace("${AWS::AccountId}", account).replace("${AWS::Region}", region)


def _child(code_dir: str, target: str) -> None:
    """Import ``target`` from ``code_dir`` and call it on the event from stdin, as Lambda's runtime does."""
    request = json.loads(sys.stdin.read())
    sys.path.insert(0, code_dir)
    module_name, _, attribute = target.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    context = LocalContext(aws_request_id=str(uuid.uuid4()), started=time.time(), **request["context"])
    result = handler(request["event"], context)
    sys.stdout.write("\n" + json.dumps(result, default=str) + "\n")


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
