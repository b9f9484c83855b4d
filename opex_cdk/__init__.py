"""opex-cdk: a multi-AZ workload built the Well-Architected way, and the proof that it is."""

__version__ = "0.1.0"
