"""Giving back what a cancelled return took: what the ledger says it took, loyalty only.

The service's own ledger is the authority (``service/ledger.py``): each earn the return
revoked is issued again once (EARN replaces exactly that earn id), each enrolment it revoked
is enrolled again first; what the return did not revoke is not given, item by item with the
return's own result. The event's ``taken_back`` is a hint: what it claims and the ledger
does not show is named, never issued. Capillary has no endpoint that restores a revoked cart
earn, a deactivation or a revoked coupon: those are named as not restorable.

A return the ledger does not know gives nothing back and asks an operator (unless the
policy trusts claims), and a return another event cancelled first gives nothing back again.
"""

from __future__ import annotations

from service.actions import EnrolLoyalty, IssueLoyaltyEarn, ReportKind
from service.events import CancelledReturn, ReturnEvent
from service.ledger import TAKEN, CustomerMark, LedgerItem, LoyaltyRef, ReturnRecord
from service.outcome import ActionStatus
from service.rules.builder import PlanBuilder, Why
from service.rules.identifiers import Missing, loyalty_identity, loyalty_target
from service.rules.policy import Policy

_NOT_RESTORABLE = {
    # kind: (reason code, what was taken, how the report names the item's group)
    "revoke_cart_earn": ("cart_not_restorable", "revoked cart promotion earns", "cart_promotion"),
    "deactivate_cart_promotion": (
        "cart_not_restorable",
        "deactivated cart promotion earns",
        "cart_promotion",
    ),
    "revoke_coupon_codes": ("coupon_not_restorable", "revoked coupons", "coupon_series"),
    "revoke_customer_coupons": ("coupon_not_restorable", "revoked coupons", "coupon_series"),
}


def give_back(
    event: ReturnEvent, policy: Policy, builder: PlanBuilder, record: ReturnRecord | None
) -> None:
    """Plan the give-back of a CANCELLED event from what the ledger says its return took."""
    cancelled = event.cancelled_return
    assert cancelled is not None  # guaranteed by ReturnEvent's validation
    returned = cancelled.return_event_id
    if record is None:
        if policy.cancelled_return.when_return_unknown != "trust_claim":
            builder.report(
                ReportKind.RETURN_UNKNOWN,
                f"return:{returned}",
                "return_unknown",
                f"this service's ledger does not know the return {returned} (never handled "
                "here, handled under another customer key, or older than the dedupe window), "
                "so what it took back is unknown and nothing is given back; check what it took "
                "and replay this event once it is handled, or give back by hand",
            )
            return
        record = ReturnRecord.claimed_by(cancelled)
    if record.cancelled_by is not None:
        builder.report(
            ReportKind.ALREADY_CANCELLED,
            f"return:{returned}",
            "already_cancelled",
            f"the return {returned} was cancelled first by event {record.cancelled_by}; what "
            "it took back was given back by that event (see its outcome), so nothing is given "
            "back again",
        )
        return
    if (
        record.customer is not None
        and record.customer.same_as(CustomerMark.of(event.customer)) is False
    ):
        builder.report(
            ReportKind.CUSTOMER_MISMATCH,
            f"return:{returned}",
            "customer_mismatch",
            f"this cancellation names another customer than the return {returned} did, so "
            "nothing is given back; check which customer the return was for",
        )
        return
    taken = [item for item in record.items if item.status in TAKEN]
    if not taken:
        builder.report(
            ReportKind.NOTHING_EARNED,
            f"return:{returned}",
            "nothing_taken_back",
            f"the cancelled return {returned} took nothing back, so there is nothing to give back",
        )
        _not_taken(builder, record, cancelled)
        return
    _give_back_loyalty(event, policy, record, builder)
    _not_taken(builder, record, cancelled)
    _not_restorable(builder, record)


def _give_back_loyalty(
    event: ReturnEvent, policy: Policy, record: ReturnRecord, builder: PlanBuilder
) -> None:
    returned = record.event_id
    enrol: dict[str, LoyaltyRef] = {}
    issue: dict[str, tuple[LoyaltyRef, list[int]]] = {}
    for item in record.items:
        if item.loyalty is None or item.status is not ActionStatus.REVOKED:
            continue
        if item.kind == "revoke_loyalty_enrolment":
            enrol.setdefault(item.loyalty.key, item.loyalty)
        elif item.kind == "revoke_loyalty_earn" and item.earn_id is not None:
            issue.setdefault(item.loyalty.key, (item.loyalty, []))[1].append(item.earn_id)
    for item in record.items:
        if item.loyalty is not None and item.status is ActionStatus.ALREADY_REVOKED:
            what = f"earn {item.earn_id}" if item.earn_id is not None else "the enrolment"
            builder.report(
                ReportKind.TAKEN_BACK_UNCONFIRMED,
                _loyalty_item(item),
                "taken_back_unconfirmed",
                f'the return {returned} was answered "invalid or already revoked" for {what} '
                f"of promotion {item.loyalty.key} after an attempt that left no record: that "
                "attempt may have taken it, or it never existed. Nothing is issued; check the "
                "customer in Capillary and issue it by hand if the return took it",
            )
    if not enrol and not issue:
        return

    identity = loyalty_identity(event, policy)
    if isinstance(identity, Missing):
        for key in dict.fromkeys([*enrol, *issue]):
            builder.report(
                ReportKind.MISSING_IDENTIFIER,
                f"loyalty_promotion:{key}",
                identity.reason_code,
                identity.reason,
            )
        return

    source = "its claim" if record.claimed else "the ledger"
    why = Why(
        "give_back_enrolment",
        f"the cancelled return {returned} revoked this enrolment ({source}); enrol again before "
        "the earns are issued",
    )
    for key, ref in enrol.items():
        builder.call(
            EnrolLoyalty(
                **builder.head(f"enrol_loyalty:{key}", why),
                target=loyalty_target(ref, identity),
            )
        )
    for key, (ref, earn_ids) in issue.items():
        if key in enrol:
            order = "after its enrolment is given back"
        elif ref.promotion_type.is_enrol_and_issue:
            order = "the enrolment was not revoked, so only the earn is issued"
        else:
            order = "direct promotion: EARN only"
        for earn_id in dict.fromkeys(earn_ids):
            again = Why(
                "give_back_earn",
                f"the cancelled return {returned} revoked earn {earn_id} ({source}); "
                f"issue it again ({order}). EARN is not idempotent: the outcome records "
                "the new earn id",
            )
            builder.call(
                IssueLoyaltyEarn(
                    **builder.head(f"issue_loyalty_earn:{key}:{earn_id}", again),
                    target=loyalty_target(ref, identity),
                    replaces_earn_id=earn_id,
                )
            )


def _not_taken(builder: PlanBuilder, record: ReturnRecord, cancelled: CancelledReturn) -> None:
    """Name what the return did not revoke, item by item, and claims the ledger lacks."""
    returned = record.event_id
    by_earn: dict[int, LedgerItem] = {}
    for item in record.items:
        if item.kind == "revoke_loyalty_earn" and item.earn_id is not None:
            by_earn.setdefault(item.earn_id, item)
        elif (
            item.kind == "revoke_loyalty_enrolment"
            and item.loyalty is not None
            and item.status not in TAKEN
        ):
            builder.report(
                ReportKind.NOT_TAKEN_BACK,
                item.item,
                "not_taken_back",
                f"the cancelled return {returned} did not revoke the enrolment of promotion "
                f"{item.loyalty.key} ({_result(item)}), so it is not enrolled again",
            )
    for earn_id, item in by_earn.items():
        if item.status not in TAKEN:
            builder.report(
                ReportKind.NOT_TAKEN_BACK,
                item.item,
                "not_taken_back",
                f"the cancelled return {returned} did not revoke earn {earn_id} "
                f"({_result(item)}), so it is not issued again",
            )
    skipped = {item.item: item for item in record.items if item.report_kind is not None}
    for earn in cancelled.taken_back.loyalty_promotions:
        for earn_id in earn.earn_ids:
            if earn_id in by_earn:
                continue
            reported = skipped.get(f"loyalty_promotion:{earn.promotion_key}")
            why = (
                f"the return reported it without a call ({reported.report_kind})"
                if reported is not None
                else "the return's ledger has no such earn"
            )
            builder.report(
                ReportKind.NOT_TAKEN_BACK,
                f"loyalty_earn:{earn_id}",
                "not_taken_back",
                f"this event claims the return {returned} took earn {earn_id} of promotion "
                f"{earn.promotion_key} back, but {why}: it is not issued",
            )


def _not_restorable(builder: PlanBuilder, record: ReturnRecord) -> None:
    returned = record.event_id
    by_action: dict[str, list[LedgerItem]] = {}
    for item in record.items:
        if item.kind in _NOT_RESTORABLE and item.status in TAKEN:
            by_action.setdefault(item.action_id, []).append(item)
    for items in by_action.values():
        first = items[0]
        reason_code, what, group = _NOT_RESTORABLE[first.kind]
        values = ", ".join(item.item.partition(":")[2] or item.item for item in items)
        where = f" of {group.replace('_', ' ')} {first.promotion}" if first.promotion else ""
        builder.report(
            ReportKind.NOT_RESTORABLE,
            f"{group}:{first.promotion}" if first.promotion else first.item,
            reason_code,
            f"the {what} ({values}){where} taken by the return {returned} cannot be given "
            "back: Capillary has no endpoint to restore them; issue the benefit again by hand "
            "if the customer should have it",
        )


def _loyalty_item(item: LedgerItem) -> str:
    return f"loyalty_earn:{item.earn_id}" if item.earn_id is not None else item.item


def _result(item: LedgerItem) -> str:
    code = f", Capillary code {item.code}" if item.code is not None else ""
    return f"{item.status}{code}"
