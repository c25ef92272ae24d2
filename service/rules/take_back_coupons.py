"""Taking back the coupons an order issued: by code (the normal path) or by customer.

Codes are judged like every benefit (``take_back.judge``); what a request may carry depends
on what the policy declares of each series (``policy.CouponSeriesPolicy``): several codes
with the series id only for a series declared free of generic codes, a generic series'
codes one by one with their customer, and codes of a series nothing is known of one by one.
"""

from __future__ import annotations

from service.actions import CouponCustomer, ReportKind, RevokeCouponCodes, RevokeCustomerCoupons
from service.events import CouponsIssued, ReturnEvent
from service.rules.builder import PlanBuilder, Why, dedupe
from service.rules.identifiers import Missing, coupon_customer
from service.rules.policy import CouponSeriesPolicy, Policy
from service.rules.take_back import Group, judge, keep
from service.rules.thresholds import Kept


def take_back_coupons(
    event: ReturnEvent,
    policy: Policy,
    kept: Kept,
    issued: list[CouponsIssued],
    builder: PlanBuilder,
) -> None:
    """Revoke by explicit codes: in 50s with the series id; generic series' alone, by customer."""
    groups: dict[int, Group] = {}
    for entry in issued:
        rule = policy.series_rule(entry.series_id)
        threshold = entry.threshold or (rule.threshold if rule else None)
        judgement = judge(threshold, event, kept, policy)
        if not judgement.take:
            keep(
                builder,
                f"coupon_series:{entry.series_id}",
                judgement,
                f"coupons {', '.join(entry.codes)} of series {entry.series_id}",
            )
            continue
        groups.setdefault(entry.series_id, Group()).add(judgement, entry.codes)

    for series_id, group in groups.items():
        codes = dedupe(group.ids, fold_case=True)
        rule = policy.series_rule(series_id)
        if rule is not None and rule.revoke_by_customer_instead_of_codes:
            _by_customer(
                event,
                policy,
                builder,
                series_id,
                group.reason_code,
                f"{group.reason}; the policy (coupon_series: revoke_by_customer_instead_of_codes) "
                f"revokes the customer's unredeemed coupons of series {series_id} instead of the "
                f"codes {', '.join(codes)}, including coupons of other orders",
            )
            continue
        generic = rule.contains_generic_code if rule is not None else None
        if generic is False:
            # Declared free of generic codes: one action however many codes (splitting to 50
            # a call is the client's), which may share calls with other customers' codes.
            builder.call(
                RevokeCouponCodes(
                    **builder.head(f"revoke_coupon_codes:{series_id}:{codes[0]}", group),
                    series_id=series_id,
                    codes=codes,
                    no_generic_code=True,
                )
            )
            continue
        kind = "generic coupon series" if generic else "coupon series"
        customer = coupon_customer(event, policy, f"revoking codes of {kind} {series_id}")
        if not generic:
            _codes_of_unknown_series(builder, series_id, group, codes, customer)
        elif isinstance(customer, Missing):
            builder.report(
                ReportKind.MISSING_IDENTIFIER,
                f"coupon_series:{series_id}",
                customer.reason_code,
                f"{group.reason}; but {customer.reason}, so codes {', '.join(codes)} are not "
                "revoked",
            )
        else:
            _generic_codes(builder, series_id, group, codes, customer)


def _generic_codes(
    builder: PlanBuilder,
    series_id: int,
    group: Group,
    codes: list[str],
    customer: CouponCustomer,
) -> None:
    """One call per code, with the series id and the customer."""
    # The revoke page: with the series id, several codes of a series that holds a generic
    # code revoke every coupon of the series; and "a user ID must be provided when dealing
    # with generic coupon series". So each code goes alone, with the series and the customer
    # (without one, the caller reports who is missing).
    why = Why(
        group.reason_code,
        f"{group.reason}; series {series_id} contains a generic code, so each code is revoked "
        "on its own, with the series id and the customer named (several codes with the series "
        "id would revoke every coupon of the series)",
    )
    for code in codes:
        builder.call(
            RevokeCouponCodes(
                **builder.head(f"revoke_coupon_codes:{series_id}:{code}", why),
                series_id=series_id,
                codes=[code],
                generic=True,
                customer=customer,
            )
        )


def _codes_of_unknown_series(
    builder: PlanBuilder,
    series_id: int,
    group: Group,
    codes: list[str],
    customer: CouponCustomer | Missing,
) -> None:
    """Codes of a series the policy does not declare free of generic codes: one a call.

    Such a series may hold a generic code, and then several codes with its id revoke every
    coupon of the series, of every customer; the page does not say that naming the customer
    bounds that. So each code goes alone (one code is never revoked in bulk, and a lone
    generic code is refused, 108), with the customer named where the event allows.
    """
    how = (
        "each code goes on its own, with the customer named"
        if not isinstance(customer, Missing)
        else f"{customer.reason}, so each code goes on its own"
    ) + " (a lone code is never revoked with the series; one of a generic code is refused)"
    why = Why(
        group.reason_code,
        f"{group.reason}; the policy does not declare series {series_id} free of "
        f"generic codes (coupon_series: contains_generic_code: false), so {how}",
    )
    builder.call(
        RevokeCouponCodes(
            **builder.head(f"revoke_coupon_codes:{series_id}:{codes[0]}", why),
            series_id=series_id,
            codes=codes,
            customer=None if isinstance(customer, Missing) else customer,
        )
    )


def take_back_coupons_by_customer(
    event: ReturnEvent,
    policy: Policy,
    kept: Kept,
    series: list[CouponSeriesPolicy],
    builder: PlanBuilder,
) -> None:
    """Revoke by customer, for series the policy assumes issued when the event lists nothing."""
    for rule in series:
        judgement = judge(rule.threshold, event, kept, policy)
        if not judgement.take:
            keep(builder, f"coupon_series:{rule.series_id}", judgement, "the series' coupons")
            continue
        _by_customer(
            event,
            policy,
            builder,
            rule.series_id,
            "policy_revoke_by_customer",
            f"{judgement.reason}; the event lists no coupons and the policy "
            "(coupon_series: revoke_by_customer_when_unlisted) revokes the customer's "
            f"unredeemed coupons of series {rule.series_id}, including coupons of other orders",
        )


def _by_customer(
    event: ReturnEvent,
    policy: Policy,
    builder: PlanBuilder,
    series_id: int,
    reason_code: str,
    reason: str,
) -> None:
    customer = coupon_customer(event, policy)
    if isinstance(customer, Missing):
        builder.report(
            ReportKind.MISSING_IDENTIFIER,
            f"coupon_series:{series_id}",
            customer.reason_code,
            customer.reason,
        )
        return
    why = Why(
        reason_code,
        f"{reason}. Capillary refuses this call for a customer with over 100 unredeemed coupons",
    )
    builder.call(
        RevokeCustomerCoupons(
            **builder.head(f"revoke_customer_coupons:{series_id}", why),
            customer=customer,
            series_id=series_id,
            broad=True,
        )
    )
