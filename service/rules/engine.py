"""The plan: a pure function of (event, policy, now, what the ledger says).

No I/O, no clock, no logging: the same inputs always give the same plan, which is why
``return-handler plan EVENT.json`` can show exactly what the service would do. The ledger's
facts (``service/ledger.py``) come in as an argument: what a cancelled return took, and
whether a replayed return was cancelled since.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from service.actions import Decision, Plan, ReportKind
from service.events import (
    CartPromotionEarn,
    Earned,
    ReturnEvent,
    ReturnType,
)
from service.ledger import LedgerFacts
from service.rules.builder import PlanBuilder
from service.rules.give_back import give_back
from service.rules.policy import CouponSeriesPolicy, Policy
from service.rules.take_back import take_back_cart, take_back_loyalty
from service.rules.take_back_coupons import take_back_coupons, take_back_coupons_by_customer
from service.rules.thresholds import what_is_kept

_LABELS = {
    ReturnType.FULL: "Full return",
    ReturnType.LINE_ITEM: "Partial return",
    ReturnType.AMOUNT: "Refund without return",
    ReturnType.EXCHANGE: "Exchange",
    ReturnType.CANCELLED: "Cancelled return",
}


def _assumed(policy: Policy) -> tuple[Earned, list[CouponSeriesPolicy]]:
    """What the policy says to treat as earned when an event lists nothing."""
    earned = Earned(
        loyalty_promotions=[
            rule.as_earn() for rule in policy.loyalty_promotions if rule.assume_earned_when_unlisted
        ],
        cart_promotions=[
            CartPromotionEarn(
                promotion_id=rule.promotion_id,
                threshold=rule.threshold,
                **({"mode": rule.mode} if rule.mode is not None else {}),
            )
            for rule in policy.cart_promotions
            if rule.assume_earned_when_unlisted
        ],
    )
    series = [rule for rule in policy.coupon_series if rule.revoke_by_customer_when_unlisted]
    return earned, series


def _items(earned: Earned, series: list[CouponSeriesPolicy]) -> list[str]:
    return [
        *(f"loyalty_promotion:{earn.promotion_key}" for earn in earned.loyalty_promotions),
        *(f"cart_promotion:{cart.promotion_id}" for cart in earned.cart_promotions),
        *(f"coupon_series:{coupons.series_id}" for coupons in earned.coupons),
        *(f"coupon_series:{rule.series_id}" for rule in series),
    ]


def _window(event: ReturnEvent, policy: Policy) -> tuple[ReportKind, str, str] | None:
    """Why the event falls outside the return window, or None to go on."""
    days = policy.return_window_days
    if days is None:
        return None
    ordered_at = event.order.ordered_at
    if ordered_at is None:
        if policy.order_date_unknown == "skip":
            return (
                ReportKind.SKIPPED_BY_POLICY,
                "order_date_unknown",
                f"the event has no order date, so the {days}-day return window cannot be checked; "
                "the policy skips such events (order_date_unknown: skip)",
            )
        return None
    elapsed = event.occurred_at - ordered_at
    if elapsed <= timedelta(days=days):
        return None
    return (
        ReportKind.OUTSIDE_RETURN_WINDOW,
        "outside_return_window",
        f"the return came {elapsed.days} days after the order ({ordered_at.date().isoformat()}), "
        f"beyond the policy's {days}-day return window; nothing is taken back",
    )


def plan(
    event: ReturnEvent, policy: Policy, now: datetime, facts: LedgerFacts | None = None
) -> Plan:
    """The ordered actions for ``event`` under ``policy``, each with its reason.

    ``facts``: what the ledger says (``None``: nothing, as for a dry run). A cancellation
    gives back what ``facts.returned`` says its return took; without it, the policy decides
    (``cancelled_return.when_return_unknown``).
    """
    facts = facts or LedgerFacts()
    builder = PlanBuilder()
    notes: list[str] = []
    if event.return_type is ReturnType.CANCELLED:
        returned = facts.returned
        give_back(event, policy, builder, returned)
        if returned is None and builder.calls:
            notes.append("The ledger does not know the return: its claim was trusted (policy)")
    elif facts.cancelled_by is not None:
        builder.report(
            ReportKind.CANCELLED_SINCE,
            f"return:{event.event_id}",
            "cancelled_since",
            f"this return was cancelled since by event {facts.cancelled_by}, which gave back "
            "what it took; taking it back again would undo that. Nothing is called; replay "
            "with --include-cancelled if it must be taken back anyway",
        )
    else:
        _take_back(event, policy, builder, notes)

    calls = builder.calls
    if calls:
        decision = (
            Decision.GIVE_BACK if event.return_type is ReturnType.CANCELLED else Decision.TAKE_BACK
        )
    else:
        decision = Decision.NOTHING_TO_DO
    broad = sum(1 for action in calls if action.is_broad)
    if broad:
        notes.append(f"{broad} broad action(s), allowed by the policy, reach beyond this order")
    label = _LABELS[event.return_type]
    if event.return_type is ReturnType.CANCELLED and event.cancelled_return is not None:
        label = f"{label} {event.cancelled_return.return_event_id}"
    verb = "give back" if decision is Decision.GIVE_BACK else "take back"
    head = (
        f"{label} of order {event.order.order_id}: {len(calls)} action(s) to {verb}, "
        f"{len(builder.reports)} item(s) reported without a call"
        if calls
        else f"{label} of order {event.order.order_id}: nothing to call, "
        f"{len(builder.reports)} item(s) reported"
    )
    return Plan(
        event_id=event.event_id,
        decision=decision,
        summary=". ".join([head, *notes]) + ".",
        decided_at=now,
        policy_version=policy.version,
        actions=builder.actions,
    )


def _take_back(event: ReturnEvent, policy: Policy, builder: PlanBuilder, notes: list[str]) -> None:
    earned = event.earned
    series: list[CouponSeriesPolicy] = []
    if earned.is_empty:
        earned, series = _assumed(policy)
        if not earned.is_empty or series:
            notes.append(
                "The event lists no earn details; the policy's configured promotions apply"
            )

    outside = _window(event, policy)
    if outside is not None:
        kind, code, reason = outside
        for item in _items(earned, series) or [f"order:{event.order.order_id}"]:
            builder.report(kind, item, code, reason)
        return
    if policy.return_window_days is not None and event.order.ordered_at is None:
        notes.append("The order date is unknown, so the return window was not checked")

    if earned.is_empty and not series:
        builder.report(
            ReportKind.NOTHING_EARNED,
            f"order:{event.order.order_id}",
            "nothing_earned",
            "the event lists nothing the order earned and the policy assumes nothing",
        )
        return

    kept = what_is_kept(event)
    take_back_loyalty(event, policy, kept, earned.loyalty_promotions, builder)
    take_back_cart(event, policy, kept, earned.cart_promotions, builder)
    take_back_coupons(event, policy, kept, earned.coupons, builder)
    take_back_coupons_by_customer(event, policy, kept, series, builder)
    # Redeemed benefits are learnt from Capillary's answers, not planned: the executor
    # reports them (and flags them for clawback when the policy says so).
