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

And one public parameter: AWS publishes the Powertools layer's ARN as an SSM parameter in every region
(``/aws/service/powertools/python/...``); moto does not, so our Scaling stack could not be created. For the
Powertools version installed here (and no other), :func:`apply` publishes the installed package as that
layer in the reading account and answers the parameter with its ARN (see
:func:`_publish_powertools_layer_parameters`).

Dynamic references ``{{resolve:ssm:NAME[:VERSION]}}`` (the cell template reads the network's subnet ids this
way) are passed through verbatim by moto; :func:`apply` resolves them from moto's SSM as CloudFormation does.

Resource types moto's CloudFormation has no model for (CloudWatch alarms, CloudTrail, FIS, metric filters,
SNS subscriptions, ...): :func:`apply` registers :mod:`opex_cdk.local.moto_cfn_models`, models backed by moto's
own service backends (see there for the types, and the two left out).

Run as ``python -m opex_cdk.local.moto_fixes -H 127.0.0.1 -p PORT`` (the arguments of ``moto_server``);
:func:`start_fixed_moto_server` does that on a free port and returns an
:class:`opex_cdk.local.moto_server.MotoServer`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

from opex_cdk.local.moto_server import MotoServer, start_moto_process

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
    _publish_powertools_layer_parameters()
    from opex_cdk.local import moto_cfn_models

    moto_cfn_models.register()
    _delete_route_tables_and_vpc_endpoints()
    _applied = True


def _delete_route_tables_and_vpc_endpoints() -> None:
    """Give moto's ``AWS::EC2::RouteTable`` and ``AWS::EC2::VPCEndpoint`` models the delete CloudFormation does.

    moto's models for both have none, so deleting a stack leaves them behind and the VPC's deletion then fails
    ("has dependencies"): the Network stack could never be destroyed. Each delete goes through moto's own
    EC2 API implementation (``DeleteRouteTable`` refuses a table still associated, as EC2 does).
    """
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.vpcs import VPCEndPoint

    def delete_route_table(self: Any, account_id: str, region_name: str) -> None:
        ec2_backends[account_id][region_name].delete_route_table(self.id)

    def delete_vpc_endpoint(self: Any, account_id: str, region_name: str) -> None:
        backend = ec2_backends[account_id][region_name]
        # moto deletes a stack's resources in no dependency order: a route table may already be gone, and its
        # routes to this gateway endpoint with it (the end state CloudFormation reaches deleting in order).
        self.route_table_ids = [table for table in self.route_table_ids or [] if table in backend.route_tables]
        backend.delete_vpc_endpoints([self.id])

    RouteTable.delete = delete_route_table  # type: ignore[attr-defined]
    VPCEndPoint.delete = delete_vpc_endpoint  # type: ignore[attr-defined]


#: ``/aws/service/powertools/python/{architecture}/{python version}/{powertools version}``, as AWS publishes it.
_POWERTOOLS_PARAMETER = re.compile(
    r"/aws/service/powertools/python/(?P<architecture>arm64|x86_64)/(?P<python>python3\.\d+)/(?P<version>[0-9.]+)"
)


def _publish_powertools_layer_parameters() -> None:
    """The public SSM parameter naming the Powertools layer, for the Powertools version installed here.

    AWS publishes ``/aws/service/powertools/python/{arch}/{python}/{version}`` in every region, its value the
    ARN of the Powertools layer (account 017000801446). moto holds no such parameter, so CloudFormation cannot
    resolve a template that reads it (our Scaling stack does). When a stack reads it for the Powertools
    version installed in this venv, the parameter is added the way moto adds its own public parameters (on
    first read), pointing at a layer published into the reading account: moto resolves a function's layers by
    name in the function's own account, so a layer under AWS's account id would be "not found". The layer's
    content is the installed ``aws_lambda_powertools`` package under ``python/``, as in the real layer. Any
    other version stays missing, so a stale pin still fails the rehearsal.
    """
    from moto.core.utils import utcnow
    from moto.ssm.models import Parameter, ParameterDict

    original = ParameterDict._check_loading_status

    def check_loading_status(self: Any, key: str) -> None:
        original(self, key)
        match = _POWERTOOLS_PARAMETER.fullmatch(str(key or ""))
        if not match or dict.__contains__(self, key) or match["version"] != _installed_powertools_version():
            return
        layer_arn = _publish_powertools_layer(self.account_id, self.region_name, match["architecture"], match["python"])
        dict.__setitem__(
            self,
            key,
            [
                Parameter(
                    account_id=self.account_id,
                    name=key,
                    value=layer_arn,
                    parameter_type="String",
                    description=f"Powertools (Python) {match['version']} layer, published by the rehearsal",
                    allowed_pattern=None,
                    keyid=None,
                    last_modified_date=utcnow(),
                    version=1,
                    data_type="text",
                )
            ],
        )

    ParameterDict._check_loading_status = check_loading_status  # type: ignore[method-assign]


def _installed_powertools_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("aws-lambda-powertools")
    except Exception:  # noqa: BLE001 - not installed: nothing to publish
        return None


def _publish_powertools_layer(account_id: str, region: str, architecture: str, python: str) -> str:
    """Publish the installed Powertools package as ``AWSLambdaPowertoolsPythonV3-{python}-{arch}``; its ARN."""
    import base64
    import io
    import zipfile
    from pathlib import Path

    import aws_lambda_powertools
    from moto.awslambda.models import lambda_backends

    package = Path(aws_lambda_powertools.__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # stored: zipping 7 MB costs no time
        for path in sorted(package.rglob("*.py")) + sorted(package.rglob("*.typed")):
            archive.write(path, f"python/{path.relative_to(package.parent).as_posix()}")
    layer = lambda_backends[account_id][region].publish_layer_version(
        {
            "LayerName": f"AWSLambdaPowertoolsPythonV3-{python.replace('.', '')}-{architecture}",
            "Content": {"ZipFile": base64.b64encode(buffer.getvalue()).decode()},
            "CompatibleRuntimes": [python],
            "CompatibleArchitectures": [architecture],
            "Description": "Powertools for AWS Lambda (Python), the version installed for the rehearsal",
        }
    )
    return str(layer.arn)


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
        if isinstance(resource_json, str) and "{{resolve:ssm:" in resource_json:
            return _resolve_ssm_references(resource_json, resources_map._account_id, resources_map._region_name)
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


#: CloudFormation's dynamic reference to a plain SSM parameter: ``{{resolve:ssm:name}}`` or ``...:name:version}}``.
_SSM_REFERENCE = re.compile(r"\{\{resolve:ssm:([A-Za-z0-9_.\-/]+?)(?::(\d+))?\}\}")


def _resolve_ssm_references(text: str, account_id: str, region: str) -> str:
    """Replace each ``{{resolve:ssm:...}}`` in ``text`` with the parameter's value, as CloudFormation does.

    moto passes the reference through verbatim (a subnet id of ``{{resolve:ssm:/x}}`` then fails far from the
    cause). A missing parameter or version is an error naming it, as in CloudFormation.
    """
    from moto.cloudformation.exceptions import ValidationError
    from moto.ssm.models import ssm_backends

    backend = ssm_backends[account_id][region]

    def value(match: re.Match[str]) -> str:
        name, version = match[1], match[2]
        history = backend._parameters.get(name) or []
        chosen = [p for p in history if version is None or str(p.version) == version]
        if not chosen:
            wanted = f"{name} version {version}" if version else name
            raise ValidationError(message=f"dynamic reference {match[0]}: SSM parameter {wanted} does not exist")
        return str(chosen[-1].value)

    return _SSM_REFERENCE.sub(value, text)


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
        env: variables added to this process's environment for the child (e.g. ``MOTO_ACCOUNT_ID``).
        log_path: file for the server's output. Default: discarded.
        startup_timeout: seconds to wait for the first answer. Default: 20.

    Raises:
        MotoServerError: the server did not answer in time or exited.
    """
    return start_moto_process(
        lambda bind, port: [sys.executable, "-m", "opex_cdk.local.moto_fixes", "-H", bind, "-p", str(port)],
        host=host,
        env=env,
        log_path=log_path,
        startup_timeout=startup_timeout,
    )


def main() -> None:
    """``moto_server`` with :func:`apply` applied first."""
    apply()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
