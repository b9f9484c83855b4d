"""Reusable L3 constructs: the library other projects import.

    from opex_cdk.constructs import WellArchitectedVpc
"""

from opex_cdk.constructs.network import WellArchitectedVpc

__all__ = ["WellArchitectedVpc"]
