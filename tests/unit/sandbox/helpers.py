"""Request builders and a hand-moved clock for the sandbox tests."""

from __future__ import annotations

from typing import Any


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def loyalty_body(
    action: str,
    customers: list[dict[str, Any]],
    *,
    promotion: dict[str, Any] | None = None,
    identifier_name: str = "id",
    entity_type: str = "CUSTOMER",
) -> dict[str, Any]:
    """A loyalty bulk request; defaults to program 2714, promotion 202779."""
    return {
        "type": entity_type,
        "bulkAction": action,
        "promotionDetails": promotion or {"programId": 2714, "promotionId": "202779"},
        "identifierName": identifier_name,
        "customers": customers,
    }


def tom(**extra: Any) -> dict[str, Any]:
    """Customer 555567088 by id, as the loyalty pages send it."""
    return {"identifierValue": "555567088", "source": "INSTORE", **extra}


def huck(**extra: Any) -> dict[str, Any]:
    """Customer 555567089 by id (enrolled in 202779, no earns)."""
    return {"identifierValue": "555567089", "source": "INSTORE", **extra}
