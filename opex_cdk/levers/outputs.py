"""The Resilience stack's output keys: the contract between the stack and the levers (no CDK import,
so the command line starts fast)."""

from __future__ import annotations

OUTPUT_FLAG = "FlagParameterName"
OUTPUT_ASG = "AutoScalingGroupName"
OUTPUT_PROFILE = "InstanceProfileName"
OUTPUT_FAULT_PROFILE = "FaultInstanceProfileName"
OUTPUT_TARGET_GROUP = "TargetGroupArn"
OUTPUT_HEALER = "HealerFunctionName"


def experiment_output_key(name: str) -> str:
    """Output key of an experiment template id, e.g. ``ExperimentDependencyOff``."""
    return "Experiment" + "".join(part.title() for part in name.split("-"))
