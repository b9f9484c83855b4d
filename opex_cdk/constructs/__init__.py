"""Reusable L3 constructs: the library other projects import.

from opex_cdk.constructs import WellArchitectedVpc
"""

from opex_cdk.constructs.alarms import AlarmThresholds, ServiceAlarms
from opex_cdk.constructs.app_tier import MultiAzAppTier
from opex_cdk.constructs.audit import AuditTrail
from opex_cdk.constructs.dashboard import ServiceDashboard
from opex_cdk.constructs.dependency import RecommendationDependency
from opex_cdk.constructs.fault_injection import FaultInjection
from opex_cdk.constructs.healer import FleetSafeHealer
from opex_cdk.constructs.network import WellArchitectedVpc
from opex_cdk.constructs.notifications import NotificationTopics
from opex_cdk.constructs.scaler import CellScaler

__all__ = [
    "AlarmThresholds",
    "AuditTrail",
    "FaultInjection",
    "FleetSafeHealer",
    "CellScaler",
    "MultiAzAppTier",
    "NotificationTopics",
    "RecommendationDependency",
    "ServiceAlarms",
    "ServiceDashboard",
    "WellArchitectedVpc",
]
