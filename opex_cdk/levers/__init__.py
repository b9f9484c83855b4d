"""Operator levers for a real account: flip the flag, swap one instance's role, run an experiment.

    python -m opex_cdk.levers --env dev flag off
    python -m opex_cdk.levers --env dev fault-role swap --instance-id i-0123456789abcdef0
    python -m opex_cdk.levers --env dev experiment start dependency-off --follow

Every resource is found through the CloudFormation outputs of the environment's Resilience stack, so
the levers never guess names. boto3 honours ``AWS_ENDPOINT_URL`` (tests point it at moto).
"""

from opex_cdk.levers.core import LeverError, Levers

__all__ = ["LeverError", "Levers"]
