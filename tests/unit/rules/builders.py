"""Small builders for rules tests: a valid event or policy with only what a test cares about."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.actions import (
    Action,
    DeactivateCartPromotion,
    Plan,
    Report,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.events import ReturnEvent
from service.ledger import LedgerEntry, entry_of
from service.outcome import ActionResult, ActionStatus, ItemResult
from service.rules import Policy, plan

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

TOM: dict[str, Any] = {
    "id": 555567088,
    "mobile": "11223569865",
    "email": "tom.sawyer@example.com",
    "external_id": "000003873472",
    "registration_source": "INSTORE",
}

EI = {
    "program_id": 2714,
    "promotion_id": 202779,
    "promotion_type": "ISSUE_AND_EARN",
    "earn_ids": [974, 975],
    "issual_id": "847",
}
DIRECT = {
    "program_id": 2714,
    "promotion_id": 202090,
    "promotion_type": "DIRECT_EARN",
    "earn_ids": [957],
}
CART = {"promotion_id": "69117663b1cfc114606fd7fb", "earn_ids": ["6911eaf1f57b486147effac0"]}
VOUCHER = {
    "promotion_id": "69058646b1cfc114606f7bbe",
    "mode": "PAYMENT_VOUCHER",
    "earn_ids": ["68f869d94a314550c4b46047", "68f869d94a314550c4b46048"],
}
POS_PROMO = {
    "promotion_id": "68f9f2904a314550c4b46dc0",
    "mode": "POS",
    "earn_ids": ["68f9f2904a314550c4b46dc1"],
}
CODE_PROMO = {
    "promotion_id": "6905a1c2b1cfc114606f0c0d",
    "mode": "CODE",
    "earn_ids": ["6905a1c2b1cfc114606f0c0e"],
}
COUPONS = {"series_id": 415446, "codes": ["3138309782", "3636820421"]}
GENERIC = {"series_id": 415500, "codes": ["sale-hf-0001", "sale-bt-0002"]}

LINES = [
    {"line_id": "1", "sku": "SHOE", "quantity": "2", "amount": "60"},
    {"line_id": "2", "sku": "SOCK", "quantity": "1", "amount": "40"},
]


def spend(minimum: str, sku: str | None = None) -> dict[str, Any]:
    """A SPEND threshold."""
    return {"kind": "SPEND", "minimum": minimum, **({"sku": sku} if sku else {})}


def quantity(minimum: str, sku: str | None = None) -> dict[str, Any]:
    """A QUANTITY threshold."""
    return {"kind": "QUANTITY", "minimum": minimum, **({"sku": sku} if sku else {})}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``base`` with some keys changed."""
    return {**base, **changes}


def event(return_type: str = "FULL", **fields: Any) -> ReturnEvent:
    """A valid event of ``return_type``: a 100 EUR order of two lines, by default all returned."""
    body: dict[str, Any] = {
        "event_id": "evt-1",
        "occurred_at": "2026-11-20T10:00:00+00:00",
        "return_type": return_type,
        "source": {"channel": "POS", "store_code": "S1", "till_code": "T1"},
        "order": {
            "order_id": "ORD-1",
            "transaction_id": "TX-1",
            "ordered_at": "2026-11-10T10:00:00+00:00",
            "currency": "EUR",
        },
        "customer": TOM,
        "amounts": {"before": "100", "after": "0"},
        "order_lines": LINES,
        "returned_lines": [
            {"line_id": "1", "quantity": "2", "amount": "60"},
            {"line_id": "2", "quantity": "1", "amount": "40"},
        ],
    }
    body.update(fields)
    return ReturnEvent.model_validate(body)


def partial(after: str, returned: list[dict[str, Any]] | None = None, **fields: Any) -> ReturnEvent:
    """A LINE_ITEM return keeping ``after`` (by default one SHOE comes back)."""
    return event(
        "LINE_ITEM",
        amounts={"before": "100", "after": after},
        returned_lines=returned or [{"line_id": "1", "quantity": "1", "amount": "30"}],
        **fields,
    )


def policy(**fields: Any) -> Policy:
    """A policy: defaults plus ``fields``."""
    return Policy.model_validate({"version": "test-1", **fields})


def shape(plan: Plan) -> list[tuple[str, str, str]]:
    """The plan as (kind, action id or report item, reason code), in order."""
    return [
        (f"report/{a.report_kind}", a.item, a.reason_code)
        if isinstance(a, Report)
        else (a.kind, a.action_id, a.reason_code)
        for a in plan.actions
    ]


def ledger_of(
    returned: ReturnEvent,
    rules: Policy | None = None,
    statuses: dict[str, tuple[ActionStatus, int | None]] | None = None,
) -> LedgerEntry:
    """The ledger entry of ``returned`` as if every call revoked its items.

    ``statuses`` overrides an item's (status, Capillary code) by its item name as the
    client names it: ``loyalty_earn:974``, ``enrolment``, ``cart_earn:<id>``, ``coupon:<code>``.
    """
    rules = rules or policy()
    statuses = statuses or {}
    taken = plan(returned, rules, NOW)
    results = []
    for action in taken.actions:
        if isinstance(action, Report):
            results.append(
                ActionResult(
                    action_id=action.action_id,
                    kind=action.kind,
                    reason_code=action.reason_code,
                    reason=action.reason,
                    status=ActionStatus.SKIPPED,
                    report_kind=str(action.report_kind),
                )
            )
            continue
        items = []
        for name in _item_names(action):
            status, code = statuses.get(name, (ActionStatus.REVOKED, None))
            items.append(ItemResult(item=name, status=status, code=code))
        results.append(
            ActionResult(
                action_id=action.action_id,
                kind=action.kind,
                reason_code=action.reason_code,
                reason=action.reason,
                status=items[0].status,
                items=items,
            )
        )
    return entry_of(returned, taken, results, attempt=1)


def _item_names(action: Action) -> list[str]:
    if isinstance(action, RevokeLoyaltyEarn):
        return [f"loyalty_earn:{earn}" for earn in action.earn_ids or []]
    if isinstance(action, RevokeLoyaltyEnrolment):
        return ["enrolment"]
    if isinstance(action, RevokeCartEarn):
        return [f"cart_earn:{earn}" for earn in action.earn_ids]
    if isinstance(action, DeactivateCartPromotion):
        return [f"deactivation:{action.promotion_id}/{action.customer_id}/{action.earn_id}"]
    if isinstance(action, RevokeCouponCodes):
        return [f"coupon:{code}" for code in action.codes]
    return [action.action_id]
