"""Deployable units: each stack composes constructs, wires grants and outputs, nothing else."""

from opex_cdk.stacks.network import NetworkStack

__all__ = ["NetworkStack"]
