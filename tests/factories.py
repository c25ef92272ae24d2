"""Builders of valid test data, overridable field by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from service.actions import Action, Decision, Plan
from service.events import ReturnEvent

CUSTOMER_ID = 555567088


def event_dict(**overrides: Any) -> dict[str, Any]:
    """A valid FULL return that earned a loyalty earn, a cart earn and two coupons."""
    data: dict[str, Any] = {
        "event_id": "evt-test-0001",
        "occurred_at": "2026-11-20T10:15:00Z",
        "return_type": "FULL",
        "source": {"channel": "POS", "store_code": "STORE-7", "till_code": "TILL-3"},
        "order": {
            "order_id": "ORD-1001",
            "transaction_id": "TX-1001",
            "ordered_at": "2026-11-10T09:00:00Z",
            "currency": "EUR",
        },
        "customer": {
            "id": CUSTOMER_ID,
            "mobile": "11223569865",
            "registration_source": "INSTORE",
        },
        "amounts": {"before": "120.00", "after": "0"},
        "earned": {
            "loyalty_promotions": [
                {
                    "program_id": 2714,
                    "promotion_id": 202090,
                    "promotion_type": "DIRECT_EARN",
                    "earn_ids": [957],
                }
            ],
            "cart_promotions": [
                {
                    "promotion_id": "69117663b1cfc114606fd7fb",
                    "earn_ids": ["6911eaf1f57b486147effac2"],
                    "mode": "DISCOUNT",
                }
            ],
            "coupons": [{"series_id": 415446, "codes": ["3138309782", "3636820421"]}],
        },
    }
    data.update(overrides)
    return data


def event_bytes(**overrides: Any) -> bytes:
    """The wire form of :func:`event_dict`."""
    return json.dumps(event_dict(**overrides)).encode()


def event(**overrides: Any) -> ReturnEvent:
    """A validated :class:`ReturnEvent`."""
    return ReturnEvent.model_validate(event_dict(**overrides))


def plan_of(*actions: Action) -> Plan:
    """A take-back plan of these actions for the default event."""
    return Plan(
        event_id="evt-test-0001",
        decision=Decision.TAKE_BACK,
        summary="test",
        decided_at=datetime(2026, 11, 24, tzinfo=UTC),
        policy_version="test",
        actions=list(actions),
    )


def why(action_id: str) -> dict[str, str]:
    """The id and reason fields every action needs."""
    return {"action_id": action_id, "reason_code": "full_return", "reason": "full return"}
