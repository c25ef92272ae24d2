"""The plan for people, in plain text: what each action touches (no display library here).

The table that ``return-handler plan`` prints is drawn in ``service/plan_display.py``.
"""

from __future__ import annotations

from service import actions


def _customer(target: actions.LoyaltyTarget) -> str:
    return f"{target.identifier_name}={target.identifier_value} ({target.source})"


def _coupon_customer(customer: actions.CouponCustomer) -> str:
    return ", ".join(f"{k}={v}" for k, v in customer.model_dump(exclude_none=True).items())


def _promotion(target: actions.LoyaltyTarget) -> str:
    ref = target.promotion_id if target.promotion_id is not None else target.promo_identifier
    return f"program {target.program_id} promotion {ref} [{target.promotion_type}]"


def describe(action: actions.Action) -> str:
    """What one action touches, in a line or two."""
    match action:
        case actions.RevokeLoyaltyEarn(target=target, earn_ids=earn_ids):
            ids = "ALL earns" if earn_ids is None else "earns " + ", ".join(map(str, earn_ids))
            return f"{_promotion(target)}: {ids}; customer {_customer(target)}"
        case actions.RevokeLoyaltyEnrolment(target=target) | actions.EnrolLoyalty(target=target):
            return f"{_promotion(target)}; customer {_customer(target)}"
        case actions.IssueLoyaltyEarn(target=target, replaces_earn_id=replaces):
            return f"{_promotion(target)}: replaces earn {replaces}; customer {_customer(target)}"
        case actions.RevokeCartEarn(promotion_id=promotion, earn_ids=ids, customer_id=customer):
            return f"promotion {promotion}: earns {', '.join(ids)}; customer {customer}"
        case actions.DeactivateCartPromotion(promotion_id=promotion, earn_id=earn, customer_id=who):
            what = f"earn {earn}" if earn is not None else "WHOLE participation"
            return f"promotion {promotion}: {what}; customer {who}"
        case actions.RevokeCouponCodes(series_id=series, codes=codes, customer=who):
            where = f"series {series}" if series is not None else "no series id"
            if action.generic:
                where = f"generic {where}"
            text = f"codes {', '.join(codes)} ({where})"
            return text if who is None else f"{text}; customer {_coupon_customer(who)}"
        case actions.RevokeCustomerCoupons(customer=customer, series_id=series):
            return (
                f"all unredeemed coupons of series {series}; customer {_coupon_customer(customer)}"
            )
        case actions.Report(report_kind=kind, item=item):
            return f"{item} ({kind})"
    raise AssertionError(f"unknown action {action!r}")  # pragma: no cover
