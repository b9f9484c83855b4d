"""What the levers do, over boto3 clients (one class, no argument parsing: see ``__main__``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from opex_cdk.levers.outputs import (
    OUTPUT_ASG,
    OUTPUT_FAULT_PROFILE,
    OUTPUT_FLAG,
    OUTPUT_PROFILE,
    experiment_output_key,
)

#: Experiment names, in the order of docs/experiments (kept in sync with FaultInjection.EXPERIMENTS by a test).
EXPERIMENT_NAMES = (
    "dependency-off",
    "single-server-fault",
    "kill-process",
    "cpu-stress",
    "dynamodb-blackhole-az",
    "lose-az",
)
FINAL_STATES = ("completed", "stopped", "failed", "cancelled")


class LeverError(RuntimeError):
    """Something the operator must fix (missing stack, output, instance...). The message is one line."""


class Levers:
    """The levers of one deployed environment: its Resilience stack ``stack_name`` in ``region``."""

    def __init__(
        self,
        stack_name: str,
        region: str,
        *,
        flag_parameter_name: str | None = None,
        client_factory: Callable[[str], Any] | None = None,
    ) -> None:
        # The flag's name is configuration (cdk.json), so the emergency lever works with only the Data
        # stack deployed; without it, the name comes from the Resilience stack's outputs.
        self.flag_parameter_name = flag_parameter_name
        self.stack_name = stack_name
        self.region = region
        self._factory = client_factory or self._default_client
        self._outputs: dict[str, str] | None = None

    def _default_client(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})
        return boto3.client(service, region_name=self.region, config=config)

    def client(self, service: str) -> Any:
        return self._factory(service)

    # --- discovery -------------------------------------------------------------------------------
    def outputs(self) -> dict[str, str]:
        """The stack's outputs; LeverError when the stack does not exist."""
        if self._outputs is None:
            from botocore.exceptions import ClientError

            try:
                stacks = self.client("cloudformation").describe_stacks(StackName=self.stack_name)["Stacks"]
            except ClientError as error:
                if "does not exist" in str(error):
                    raise LeverError(
                        f"stack '{self.stack_name}' not found in {self.region}; deploy it first "
                        "(cdk deploy --all -c env=...)"
                    ) from None
                raise
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        return self._outputs

    def output(self, key: str) -> str:
        outputs = self.outputs()
        if key not in outputs:
            raise LeverError(
                f"stack '{self.stack_name}' has no output '{key}'; it is older than these levers, redeploy it"
            )
        return outputs[key]

    # --- the flag --------------------------------------------------------------------------------
    def set_flag(self, enabled: bool) -> tuple[str, str, str]:
        """Set the dependency flag; returns (name, old value, new value)."""
        from botocore.exceptions import ClientError

        name = self.flag_parameter_name or self.output(OUTPUT_FLAG)
        ssm = self.client("ssm")
        try:
            old = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as error:
            if "ParameterNotFound" in str(error):
                raise LeverError(f"parameter '{name}' not found; is the data stack deployed?") from None
            raise
        new = "true" if enabled else "false"
        ssm.put_parameter(Name=name, Value=new, Overwrite=True)
        return name, old, new

    # --- one instance's role -----------------------------------------------------------------------
    def swap_profile(self, instance_id: str, *, fault: bool) -> tuple[str, str]:
        """Give ``instance_id`` the fault profile (``fault=True``) or its normal one; returns (old, new) ARNs/names."""
        group = self.output(OUTPUT_ASG)
        profile = self.output(OUTPUT_FAULT_PROFILE if fault else OUTPUT_PROFILE)
        members = self.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
        groups = {i["AutoScalingGroupName"] for i in members.get("AutoScalingInstances", [])}
        if group not in groups:
            raise LeverError(
                f"instance '{instance_id}' is not in the Auto Scaling group '{group}'; pick one of its instances"
            )
        ec2 = self.client("ec2")
        associations = ec2.describe_iam_instance_profile_associations(
            Filters=[{"Name": "instance-id", "Values": [instance_id]}, {"Name": "state", "Values": ["associated"]}]
        )["IamInstanceProfileAssociations"]
        if not associations:
            raise LeverError(f"instance '{instance_id}' has no instance profile associated; nothing to swap")
        association = associations[0]
        old = association["IamInstanceProfile"]["Arn"]
        ec2.replace_iam_instance_profile_association(
            AssociationId=association["AssociationId"], IamInstanceProfile={"Name": profile}
        )
        return old, profile

    # --- experiments -------------------------------------------------------------------------------
    def experiment_templates(self) -> dict[str, str]:
        """Experiment name -> template id, for every experiment the stack outputs."""
        outputs = self.outputs()
        return {n: outputs[experiment_output_key(n)] for n in EXPERIMENT_NAMES if experiment_output_key(n) in outputs}

    def start_experiment(self, name: str) -> str:
        """Start experiment ``name``; returns the experiment id."""
        if name not in EXPERIMENT_NAMES:
            raise LeverError(f"unknown experiment '{name}'; allowed: {', '.join(EXPERIMENT_NAMES)}")
        template_id = self.output(experiment_output_key(name))
        response = self.client("fis").start_experiment(
            experimentTemplateId=template_id, clientToken=str(uuid.uuid4()), tags={"StartedBy": "opex-levers"}
        )
        return response["experiment"]["id"]

    def follow(
        self,
        experiment_id: str,
        *,
        on_change: Callable[[str, str], None],
        poll_seconds: float = 5.0,
        timeout_seconds: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> str:
        """Poll the experiment until it ends; call ``on_change(status, reason)`` on every change."""
        fis = self.client("fis")
        last = None
        waited = 0.0
        while True:
            state = fis.get_experiment(id=experiment_id)["experiment"]["state"]
            status, reason = state.get("status", "?"), state.get("reason", "")
            if (status, reason) != last:
                on_change(status, reason)
                last = (status, reason)
            if status in FINAL_STATES:
                return status
            if waited >= timeout_seconds:
                raise LeverError(f"experiment {experiment_id} still '{status}' after {int(timeout_seconds)} s")
            sleep(poll_seconds)
            waited += poll_seconds
