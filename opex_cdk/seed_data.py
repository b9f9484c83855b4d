"""The dependency's data, defined once.

The Data stack writes these items at deploy time; the local game day, the deploy rehearsal and the
tests seed moto from the same definitions, so "what the table holds" is never written twice.
Values follow the workshop (reference/lab-health-checks.md): key `ServiceAPI` (S) = `getRecommendation`
plus `UserID` (N); users 1-4 carry a name and a TV show; UserID 0 is the health-check item.
"""

from __future__ import annotations

from typing import Final

TABLE_NAME: Final = "RecommendationService"
FLAG_PARAMETER_NAME: Final = "RecommendationServiceEnabled"
FLAG_ALLOWED_PATTERN: Final = "^(true|false)$"
SERVICE_API: Final = "getRecommendation"
HEALTH_CHECK_USER_ID: Final = 0
HEALTH_CHECK_VALUE: Final = "test"

#: (UserID, UserName, Result) for the users the page recommends to.
USERS: Final[tuple[tuple[int, str, str], ...]] = (
    (1, "Alice", "The Expanse"),
    (2, "Bob", "Mad Men"),
    (3, "Carol", "Breaking Bad"),
    (4, "Dave", "The Office"),
)


def seed_items() -> list[dict[str, dict[str, str]]]:
    """Every item the table is seeded with, in DynamoDB's attribute-value JSON (users, then health)."""
    rows = [*USERS, (HEALTH_CHECK_USER_ID, HEALTH_CHECK_VALUE, HEALTH_CHECK_VALUE)]
    return [
        {
            "ServiceAPI": {"S": SERVICE_API},
            "UserID": {"N": str(user_id)},
            "UserName": {"S": name},
            "Result": {"S": result},
        }
        for user_id, name, result in rows
    ]
