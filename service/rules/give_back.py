"""Giving back what a cancelled return took: loyalty only; the rest is reported.

Capillary can enrol and issue loyalty promotions again, but it has no endpoint that restores
a revoked cart earn, a deactivation or a revoked coupon: those are named as not restorable.
Each re-issued earn replaces exactly one earn id the return revoked, so nothing is given
that the return did not take.
"""

from __future__ import annotations

from service.actions import EnrolLoyalty, IssueLoyaltyEarn, ReportKind
from service.events import CancelledReturn, CartPromotionMode, LoyaltyEarn, ReturnEvent
from service.rules.builder import PlanBuilder, dedupe
from service.rules.identifiers import Missing, loyalty_identity
from service.rules.policy import Policy


def give_back(event: ReturnEvent, policy: Policy, builder: PlanBuilder) -> None:
    """Plan the give-back of a CANCELLED event."""
    cancelled = event.cancelled_return
    assert cancelled is not None  # guaranteed by ReturnEvent's validation
    returned = cancelled.return_event_id
    taken = cancelled.taken_back
    if taken.is_empty and not cancelled.enrolments_revoked:
        builder.report(
            ReportKind.NOTHING_EARNED,
            f"return:{returned}",
            "nothing_taken_back",
            f"the cancelled return {returned} took nothing back, so there is nothing to give back",
        )
        return
    _give_back_loyalty(event, policy, cancelled, builder)
    for cart in taken.cart_promotions:
        ids = ", ".join(cart.earn_ids) or "the whole participation"
        what = (
            "deactivated payment-voucher earns"
            if cart.mode is CartPromotionMode.PAYMENT_VOUCHER
            else "revoked cart promotion earns"
        )
        builder.report(
            ReportKind.NOT_RESTORABLE,
            f"cart_promotion:{cart.promotion_id}",
            "cart_not_restorable",
            f"the {what} ({ids}) cannot be given back: Capillary has no endpoint to restore "
            "them; issue the benefit again by hand if the customer should have it",
        )
    for coupons in taken.coupons:
        builder.report(
            ReportKind.NOT_RESTORABLE,
            f"coupon_series:{coupons.series_id}",
            "coupon_not_restorable",
            f"the revoked coupons {', '.join(coupons.codes)} of series {coupons.series_id} cannot "
            "be given back: Capillary has no endpoint to un-revoke a coupon; issue new coupons "
            "by hand if the customer should have them",
        )


def _give_back_loyalty(
    event: ReturnEvent, policy: Policy, cancelled: CancelledReturn, builder: PlanBuilder
) -> None:
    returned = cancelled.return_event_id
    enrol: dict[str, LoyaltyEarn] = {}
    for earn in cancelled.enrolments_revoked:
        if earn.promotion_type.is_enrol_and_issue:
            enrol.setdefault(earn.promotion_key, earn)
        else:
            builder.report(
                ReportKind.SKIPPED_BY_POLICY,
                f"loyalty_enrolment:{earn.promotion_key}",
                "no_enrolment_for_direct",
                f"{earn.promotion_type} is a direct promotion: it has no enrolment to give back",
            )
    issue: dict[str, tuple[LoyaltyEarn, list[int]]] = {}
    for earn in cancelled.taken_back.loyalty_promotions:
        issue.setdefault(earn.promotion_key, (earn, []))[1].extend(earn.earn_ids)
    if not enrol and not issue:
        return

    identity = loyalty_identity(event, policy)
    if isinstance(identity, Missing):
        for key in dedupe([*enrol, *issue]):
            builder.report(
                ReportKind.MISSING_IDENTIFIER,
                f"loyalty_promotion:{key}",
                identity.reason_code,
                identity.reason,
            )
        return

    for key, earn in enrol.items():
        builder.call(
            EnrolLoyalty(
                action_id=builder.next_id(f"enrol_loyalty:{key}"),
                reason_code="give_back_enrolment",
                reason=(
                    f"the cancelled return {returned} revoked this enrolment; enrol again "
                    "before the earns are issued"
                ),
                target=identity.target(earn),
            )
        )
    for key, (earn, earn_ids) in issue.items():
        if not earn_ids:
            builder.report(
                ReportKind.NOT_RESTORABLE,
                f"loyalty_promotion:{key}",
                "earn_ids_unknown",
                f"the cancelled return {returned} revoked earns of this promotion without naming "
                "them, so how many to issue again is unknown",
            )
            continue
        if key in enrol:
            order = "after its enrolment is given back"
        elif earn.promotion_type.is_enrol_and_issue:
            order = "the enrolment was not revoked, so only the earn is issued"
        else:
            order = "direct promotion: EARN only"
        for earn_id in dict.fromkeys(earn_ids):
            builder.call(
                IssueLoyaltyEarn(
                    action_id=builder.next_id(f"issue_loyalty_earn:{key}:{earn_id}"),
                    reason_code="give_back_earn",
                    reason=(
                        f"the cancelled return {returned} revoked earn {earn_id}; issue it again "
                        f"({order}). EARN is not idempotent: the outcome records the new earn id"
                    ),
                    target=identity.target(earn),
                    replaces_earn_id=earn_id,
                )
            )
