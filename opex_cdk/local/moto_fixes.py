"""A moto server with the fixes the deploy rehearsal needs, and nothing that fakes AWS behaviour.

moto 5.2.5 has a bug that stops CloudFormation from creating any stack with a tagged KMS key:
``AWS::KMS::Key`` passes the template's tags (``Key``/``Value``, as CloudFormation writes them) to the
KMS backend, which expects the KMS API's ``TagKey``/``TagValue`` and fails with ``KeyError: 'TagKey'``
(HTTP 500, and the half-created stack is left ``CREATE_IN_PROGRESS``). Our stacks tag every resource,
so every KMS key hits it. :func:`apply` converts the tags before moto's own code runs; the template
and everything else are untouched.

A second bug stops stack deletion: CloudFormation detaches a role's managed policies when it deletes an
``AWS::IAM::Role``; moto's delete does not, so ``DeleteRole`` fails ("must detach all policies first") and
the stack cannot be deleted. :func:`apply` detaches them first, as CloudFormation does.

A third: ``AWS::SSM::Parameter`` ``Tags`` are a map in CloudFormation, moto iterates them as a list
(``TypeError``, HTTP 500). Converted the same way as the KMS tags.

ELBv2 ``Fn::GetAtt`` attributes moto declares but raises for (``LoadBalancerFullName``,
``CanonicalHostedZoneID``, ``TargetGroupFullName``): one such output makes moto drop every output of
the stack. Derived from moto's own resources (see :func:`_elbv2_attributes`).

And one missing feature: ``Fn::GetStackOutput`` (what CDK writes for cross-stack references when
``@aws-cdk/core:defaultCrossStackReferences`` is ``weak``, as in our cdk.json) is not implemented by moto, so
the dict reaches the resource unresolved and creation crashes. :func:`apply` resolves it the way CloudFormation
does: the named output of the named stack (same account, the given region), an error when there is none.

Run as ``python -m opex_cdk.local.moto_fixes -H 127.0.0.1 -p PORT`` (the arguments of ``moto_server``);
:func:`start_fixed_moto_server` does that on a free port and returns an
:class:`opex_cdk.local.moto_server.MotoServer`.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from opex_cdk.local.moto_server import MotoServer, MotoServerError, free_port

__all__ = ["apply", "start_fixed_moto_server"]


def _kms_tags(tags: Any) -> Any:
    """CloudFormation tags (``Key``/``Value``) as the KMS API writes them (``TagKey``/``TagValue``)."""
    if not isinstance(tags, list):
        return tags
    return [
        {"TagKey": t["Key"], "TagValue": t.get("Value", "")} if isinstance(t, dict) and "Key" in t else t for t in tags
    ]


def _ssm_tags(tags: Any) -> Any:
    """``AWS::SSM::Parameter`` tags are a map in CloudFormation; moto's backend wants a ``Key``/``Value`` list."""
    if isinstance(tags, dict):
        return [{"Key": k, "Value": v} for k, v in tags.items()]
    return tags


def _convert_tags_on_create(model: Any, convert: Any) -> None:
    """Wrap ``model.create_from_cloudformation_json`` so the template's ``Tags`` reach moto converted."""
    original = model.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):  # type: ignore[no-untyped-def]
        properties = cloudformation_json.get("Properties", {})
        if "Tags" in properties:
            properties = {**properties, "Tags": convert(properties["Tags"])}
            cloudformation_json = {**cloudformation_json, "Properties": properties}
        return original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)

    model.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)


_applied = False


def apply() -> None:
    """Patch moto in this process (idempotent)."""
    global _applied
    if _applied:
        return
    from moto.kms.models import Key
    from moto.ssm.models import Parameter

    _convert_tags_on_create(Key, _kms_tags)
    _convert_tags_on_create(Parameter, _ssm_tags)
    _detach_policies_on_role_delete()
    _resolve_get_stack_output()
    _elbv2_attributes()
    _applied = True


def _elbv2_attributes() -> None:
    """``Fn::GetAtt`` attributes of ALBs and target groups that moto declares but does not return.

    Each value is derived from moto's own resource, as AWS derives it: ``LoadBalancerFullName`` is the ARN
    after ``loadbalancer/``, ``TargetGroupFullName`` the ARN's last field, ``CanonicalHostedZoneID`` what
    moto's DescribeLoadBalancers reports. Without them moto drops *every* output of the stack silently.
    """
    from moto.elbv2.models import FakeLoadBalancer, FakeTargetGroup

    lb_get = FakeLoadBalancer.get_cfn_attribute

    def lb_attribute(self: Any, attribute_name: str) -> Any:
        if attribute_name == "LoadBalancerFullName":
            return self.arn.split(":loadbalancer/", 1)[1]
        if attribute_name == "CanonicalHostedZoneID":
            return self.canonical_hosted_zone_id
        if attribute_name == "SecurityGroups":
            return list(self.security_groups)
        return lb_get(self, attribute_name)

    FakeLoadBalancer.get_cfn_attribute = lb_attribute  # type: ignore[method-assign]
    tg_attributes = {
        "TargetGroupFullName": lambda tg: tg.arn.rsplit(":", 1)[1],
        "TargetGroupName": lambda tg: tg.name,
        "TargetGroupArn": lambda tg: tg.arn,
        "LoadBalancerArns": lambda tg: list(tg.load_balancer_arns),
    }
    FakeTargetGroup.has_cfn_attr = classmethod(lambda cls, attr: attr in tg_attributes)  # type: ignore[method-assign]

    def tg_attribute(self: Any, attribute_name: str) -> Any:
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        if attribute_name not in tg_attributes:
            raise UnformattedGetAttTemplateException()
        return tg_attributes[attribute_name](self)

    FakeTargetGroup.get_cfn_attribute = tg_attribute  # type: ignore[method-assign]


def _resolve_get_stack_output() -> None:
    from moto.cloudformation import parsing
    from moto.cloudformation.exceptions import ValidationError

    original = parsing.clean_json

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if isinstance(resource_json, dict) and "Fn::GetStackOutput" in resource_json:
            from moto.cloudformation.models import cloudformation_backends

            spec = original(resource_json["Fn::GetStackOutput"], resources_map)
            region = spec.get("Region") or resources_map._region_name
            backend = cloudformation_backends[resources_map._account_id][region]
            for stack in list(backend.stacks.values()):
                if stack.name == spec["StackName"] and not stack.status.startswith("DELETE"):
                    for output in stack.outputs or []:
                        if output["OutputKey"] == spec["OutputName"]:
                            return output["OutputValue"]
            raise ValidationError(
                message=f"Fn::GetStackOutput: stack {spec['StackName']} in {region} has no output {spec['OutputName']}"
            )
        return original(resource_json, resources_map)

    parsing.clean_json = clean_json


def _detach_policies_on_role_delete() -> None:
    from moto.iam.models import Role, get_partition, iam_backends

    original = Role.delete_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):  # type: ignore[no-untyped-def]
        backend = iam_backends[account_id][get_partition(region_name)]
        role = next((r for r in backend.roles.values() if r.name == resource_name), None)
        if role is not None:
            for policy_arn in list(role.managed_policies):
                backend.detach_role_policy(policy_arn, resource_name)
        return original(cls, resource_name, cloudformation_json, account_id, region_name)

    Role.delete_from_cloudformation_json = classmethod(delete_from_cloudformation_json)  # type: ignore[assignment]


def start_fixed_moto_server(
    *,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    log_path: str | None = None,
    startup_timeout: float = 20.0,
) -> MotoServer:
    """Start ``python -m opex_cdk.local.moto_fixes`` on a free port of ``host`` and wait until it answers.

    Args:
        host: address to bind. Default: ``127.0.0.1``.
        env: the child's full environment (e.g. with ``MOTO_ACCOUNT_ID``). Default: inherit.
        log_path: file for the server's output. Default: discarded.
        startup_timeout: seconds to wait for the first answer. Default: 20.

    Raises:
        MotoServerError: the server did not answer in time or exited.
    """
    port = free_port(host)
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed by MotoServer.stop()
    process = subprocess.Popen(
        [sys.executable, "-m", "opex_cdk.local.moto_fixes", "-H", host, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log if log else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
    )
    server = MotoServer(process, host, port, log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise MotoServerError(f"moto server exited with code {process.returncode} before it answered")
            try:
                with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/data.json", timeout=1.0) as response:
                    response.read()
                return server
            except OSError as error:
                if time.monotonic() > deadline:
                    raise MotoServerError(f"moto server at {server.endpoint_url} not ready: {error}") from None
            time.sleep(0.05)
    except BaseException:
        server.stop()
        raise


def main() -> None:
    """``moto_server`` with :func:`apply` applied first."""
    apply()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
