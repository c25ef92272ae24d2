"""Properties of the rules over generated events and policies.

Never take back what the order did not earn (nor give back what the return did not take);
the same inputs give the same plan; every action fits one API call; codes of a generic coupon
series are never sent together, and each names the customer; customers are named as the
pages show them; an enrolment is revoked only for enrol-and-issue promotions and only after
that customer's earn revoke.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.actions import (
    Action,
    CouponCustomer,
    DeactivateCartPromotion,
    Decision,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Report,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeCustomerCoupons,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.events import Earned, LoyaltyPromotionType, RegistrationSource, ReturnEvent
from service.rules import Policy, plan

from .builders import NOW

LOYALTY_POOL = [
    (2714, 202779, "ISSUE_AND_EARN"),
    (2714, 202188, "LOYALTY_EARNING"),
    (2714, 202090, "DIRECT"),
    (2714, 202091, "LOYALTY"),
    (2715, 300001, "DIRECT_EARN"),
]
CART_POOL = [f"{n:024x}" for n in (0x69117663B1CFC114606FD7FB, 0x69058646B1CFC114606F7BBE, 7, 8)]
SERIES_POOL = [415446, 415500, 415600]
SKUS = ["SHOE", "SOCK", "HAT"]
ALL_KINDS = ("FULL", "LINE_ITEM", "AMOUNT", "EXCHANGE", "CANCELLED")
TAKE_BACK_KINDS = ALL_KINDS[:-1]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

money = st.decimals(min_value=1, max_value=500, places=2)
units = st.integers(min_value=1, max_value=4).map(Decimal)


@st.composite
def thresholds(draw: st.DrawFn) -> dict[str, Any] | None:
    kind = draw(st.sampled_from([None, "SPEND", "QUANTITY"]))
    if kind is None:
        return None
    minimum = draw(money) if kind == "SPEND" else draw(units)
    sku = draw(st.one_of(st.none(), st.sampled_from(SKUS)))
    return {"kind": kind, "minimum": str(minimum), **({"sku": sku} if sku else {})}


@st.composite
def loyalty_earns(draw: st.DrawFn) -> dict[str, Any]:
    program, promotion, kind = draw(st.sampled_from(LOYALTY_POOL))
    by_ref = draw(st.booleans())
    ref = {"promo_identifier": f"ref-{promotion}"} if by_ref else {"promotion_id": promotion}
    return {
        "program_id": program,
        **ref,
        "promotion_type": kind,
        "earn_ids": draw(st.lists(st.integers(1, 40), max_size=4)),
        "threshold": draw(thresholds()),
    }


@st.composite
def cart_earns(draw: st.DrawFn) -> dict[str, Any]:
    many = draw(st.integers(0, 9)) == 0
    size = draw(st.integers(995, 1010)) if many else draw(st.integers(0, 4))
    start = draw(st.integers(0, 50))
    entry: dict[str, Any] = {
        "promotion_id": draw(st.sampled_from(CART_POOL)),
        "earn_ids": [f"{n:024x}" for n in range(start, start + size)],
        "threshold": draw(thresholds()),
    }
    if draw(st.booleans()):
        entry["mode"] = draw(st.sampled_from(["DISCOUNT", "PAYMENT_VOUCHER", "POS", "CODE"]))
    return entry


@st.composite
def coupons(draw: st.DrawFn) -> dict[str, Any]:
    many = draw(st.integers(0, 9)) == 0
    size = draw(st.integers(45, 60)) if many else draw(st.integers(1, 4))
    start = draw(st.integers(0, 30))
    return {
        "series_id": draw(st.sampled_from(SERIES_POOL)),
        "codes": [f"C{n:05d}" for n in range(start, start + size)],
        "threshold": draw(thresholds()),
    }


@st.composite
def earned(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "loyalty_promotions": draw(st.lists(loyalty_earns(), max_size=3)),
        "cart_promotions": draw(st.lists(cart_earns(), max_size=3)),
        "coupons": draw(st.lists(coupons(), max_size=3)),
    }


@st.composite
def customers(draw: st.DrawFn) -> dict[str, Any]:
    fields = {
        "id": 555567088,
        "mobile": draw(st.sampled_from(["11223569865", "+11223569865", "+919986000586"])),
        "email": "tom.sawyer@example.com",
        "external_id": "000003873472",
        "registration_source": draw(st.sampled_from(["INSTORE", "instore", "Web_Engage"])),
    }
    chosen = draw(st.lists(st.sampled_from(list(fields)), min_size=1, unique=True))
    if chosen == ["registration_source"]:
        chosen.append("external_id")
    return {name: fields[name] for name in chosen}


@st.composite
def events(draw: st.DrawFn, kinds: tuple[str, ...] = ALL_KINDS) -> ReturnEvent:
    kind = draw(st.sampled_from(kinds))
    lines = [
        {
            "line_id": str(n),
            "sku": draw(st.sampled_from(SKUS)),
            "quantity": str(draw(units)),
            "amount": str(draw(money)),
        }
        for n in range(draw(st.integers(1, 4)))
    ]
    before = sum((Decimal(line["amount"]) for line in lines), Decimal(0))
    returned = [
        {"line_id": line["line_id"], "quantity": line["quantity"], "amount": line["amount"]}
        for line in lines
        if kind == "FULL" or draw(st.booleans())
    ]
    if kind in ("LINE_ITEM", "EXCHANGE") and not returned:
        first = lines[0]
        returned = [{"line_id": "0", "quantity": first["quantity"], "amount": first["amount"]}]
    back = sum((Decimal(r["amount"]) for r in returned), Decimal(0))
    after = {
        "FULL": Decimal(0),
        "LINE_ITEM": before - back,
        "AMOUNT": draw(st.decimals(min_value=0, max_value=before, places=2)),
        "EXCHANGE": before - back,
        "CANCELLED": before,
    }[kind]
    body: dict[str, Any] = {
        "event_id": "evt-prop",
        "occurred_at": "2026-11-20T10:00:00+00:00",
        "return_type": kind,
        "source": {"channel": draw(st.sampled_from(["POS", "ECOMMERCE"]))},
        "order": {
            "order_id": "ORD-1",
            "transaction_id": "TX-1",
            "ordered_at": draw(
                st.sampled_from([None, "2026-11-10T10:00:00+00:00", "2026-06-01T10:00:00+00:00"])
            ),
            "currency": "EUR",
        },
        "customer": draw(customers()),
        "amounts": {"before": str(before), "after": str(after)},
        "order_lines": lines if draw(st.integers(0, 5)) else [],
        "returned_lines": [] if kind in ("AMOUNT", "CANCELLED") else returned,
    }
    if kind == "EXCHANGE":
        body["exchanged_lines"] = [
            {
                "line_id": f"X{n}",
                "sku": draw(st.sampled_from(SKUS)),
                "quantity": str(draw(units)),
                "amount": str(draw(money)),
            }
            for n in range(draw(st.integers(1, 2)))
        ]
    if kind == "CANCELLED":
        body["cancelled_return"] = {
            "return_event_id": "ret-1",
            "taken_back": draw(earned()),
            "enrolments_revoked": draw(st.lists(loyalty_earns(), max_size=2)),
        }
    elif draw(st.integers(0, 5)):
        body["earned"] = draw(earned())
    return ReturnEvent.model_validate(body)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    loyalty_rules = [
        {
            "program_id": program,
            "promotion_id": promotion,
            "promo_identifier": f"ref-{promotion}",
            "promotion_type": kind,
            "without_earn_ids": "revoke_all",
            "assume_earned_when_unlisted": draw(st.booleans()),
            "threshold": draw(thresholds()),
        }
        for program, promotion, kind in LOYALTY_POOL
        if draw(st.booleans())
    ]
    cart_rules = [
        {
            "promotion_id": promotion,
            "mode": "DISCOUNT",
            "without_earn_ids": "deactivate_participation",
            "assume_earned_when_unlisted": draw(st.booleans()),
        }
        for promotion in CART_POOL
        if draw(st.booleans())
    ]
    series_rules = [
        {
            "series_id": series,
            "contains_generic_code": draw(st.sampled_from([True, False, None])),
            "revoke_by_customer_instead_of_codes": draw(st.booleans()),
            "revoke_by_customer_when_unlisted": draw(st.booleans()),
        }
        for series in SERIES_POOL
        if draw(st.booleans())
    ]
    coupon_preference = draw(
        st.lists(
            st.sampled_from(["id", "mobile", "email", "external_id"]),
            min_size=1,
            unique=True,
        )
    )
    loyalty_preference = draw(
        st.lists(st.sampled_from(["id", "mobile", "email"]), min_size=1, unique=True)
    )
    return Policy.model_validate(
        {
            "version": "prop",
            "customer": {
                "loyalty_identifier_preference": loyalty_preference,
                "coupon_identifier_preference": coupon_preference,
            },
            "return_window_days": draw(st.sampled_from([None, 30])),
            "order_date_unknown": draw(st.sampled_from(["proceed", "skip"])),
            "full_return": {"revoke_enrolment": draw(st.booleans())},
            "partial_return": {
                "revoke_enrolment": draw(st.booleans()),
                "without_threshold": draw(st.sampled_from(["keep", "take_back"])),
            },
            "loyalty_promotions": loyalty_rules if draw(st.booleans()) else [],
            "cart_promotions": cart_rules if draw(st.booleans()) else [],
            "coupon_series": series_rules if draw(st.booleans()) else [],
        }
    )


def _key(target: LoyaltyTarget) -> str:
    ref = target.promotion_id if target.promotion_id is not None else target.promo_identifier
    return f"{target.program_id}/{ref}"


def _loyalty_ids(earned_: Earned) -> dict[str, set[int]]:
    ids: dict[str, set[int]] = {}
    for earn in earned_.loyalty_promotions:
        ids.setdefault(earn.promotion_key, set()).update(earn.earn_ids)
    return ids


def _earned_or_assumed(event: ReturnEvent, policy: Policy) -> tuple[Earned, set[int]]:
    """What the event earned, or what the policy assumes when it lists nothing."""
    if not event.earned.is_empty:
        return event.earned, set()
    assumed = Earned(
        loyalty_promotions=[
            r.as_earn() for r in policy.loyalty_promotions if r.assume_earned_when_unlisted
        ],
    )
    by_customer = {r.series_id for r in policy.coupon_series if r.revoke_by_customer_when_unlisted}
    return assumed, by_customer


@SETTINGS
@given(events(TAKE_BACK_KINDS), policies())
def test_plan_never_takes_back_what_the_order_did_not_earn(
    event: ReturnEvent, policy: Policy
) -> None:
    result = plan(event, policy, NOW)
    source, assumed_series = _earned_or_assumed(event, policy)
    loyalty = _loyalty_ids(source)
    cart: dict[str, set[str]] = {}
    for entry in event.earned.cart_promotions:
        cart.setdefault(entry.promotion_id.lower(), set()).update(e.lower() for e in entry.earn_ids)
    codes: dict[int, set[str]] = {}
    for issued in event.earned.coupons:
        codes.setdefault(issued.series_id, set()).update(c.casefold() for c in issued.codes)
    generic = {s.series_id for s in policy.coupon_series if s.contains_generic_code is True}
    free = {s.series_id for s in policy.coupon_series if s.contains_generic_code is False}

    for action in result.actions:
        match action:
            case RevokeLoyaltyEarn(target=target, earn_ids=None):
                rule = policy.loyalty_rule(
                    next(e for e in source.loyalty_promotions if e.promotion_key == _key(target))
                )
                assert action.broad
                assert rule is not None
                assert rule.without_earn_ids == "revoke_all"
            case RevokeLoyaltyEarn(target=target, earn_ids=list() as ids):
                assert ids
                assert set(ids) <= loyalty[_key(target)]
                assert not action.broad
            case RevokeLoyaltyEnrolment(target=target):
                assert _key(target) in loyalty
            case RevokeCartEarn(promotion_id=promotion, earn_ids=ids):
                assert ids
                assert {e.lower() for e in ids} <= cart[promotion.lower()]
            case DeactivateCartPromotion(promotion_id=promotion, earn_id=None):
                cart_rule = policy.cart_rule(promotion)
                assert action.broad
                assert cart_rule is not None
                assert cart_rule.without_earn_ids == "deactivate_participation"
            case DeactivateCartPromotion(promotion_id=promotion, earn_id=str() as earn_id):
                assert earn_id.lower() in cart[promotion.lower()]
                assert not action.broad
            case RevokeCouponCodes(generic=True, series_id=int() as series, codes=[code]):
                assert series in generic
                assert code.casefold() in codes[series]
            case RevokeCouponCodes(generic=False, series_id=int() as series, codes=sent):
                assert series not in generic
                assert action.no_generic_code == (series in free)
                assert {c.casefold() for c in sent} <= codes[series]
            case RevokeCustomerCoupons(series_id=series):
                series_rule = policy.series_rule(series) if series is not None else None
                assert action.broad
                assert series_rule is not None
                assert series in assumed_series or (
                    series in codes and series_rule.revoke_by_customer_instead_of_codes
                )
            case EnrolLoyalty() | IssueLoyaltyEarn():
                raise AssertionError(f"a take-back plan gives back: {action}")
            case Report():
                pass
            case _:
                raise AssertionError(f"unexpected action {action}")


@SETTINGS
@given(events(("CANCELLED",)), policies())
def test_cancelled_plan_gives_back_only_what_the_return_took(
    event: ReturnEvent, policy: Policy
) -> None:
    assert event.cancelled_return is not None
    result = plan(event, policy, NOW)
    taken = _loyalty_ids(event.cancelled_return.taken_back)
    enrolled = {
        e.promotion_key
        for e in event.cancelled_return.enrolments_revoked
        if e.promotion_type.is_enrol_and_issue
    }
    issued: list[tuple[str, int | None]] = []
    for action in result.actions:
        match action:
            case EnrolLoyalty(target=target):
                assert _key(target) in enrolled
            case IssueLoyaltyEarn(target=target, replaces_earn_id=replaced):
                assert replaced is not None
                assert replaced in taken[_key(target)]
                issued.append((_key(target), replaced))
            case Report():
                pass
            case _:
                raise AssertionError(f"a give-back plan takes back: {action}")
    assert len(issued) == len(set(issued)), "an earn is given back twice"
    calls = [a for a in result.actions if not isinstance(a, Report)]
    assert (result.decision is Decision.GIVE_BACK) == bool(calls)


@SETTINGS
@given(events(), policies())
def test_same_event_and_policy_always_give_the_same_plan(
    event: ReturnEvent, policy: Policy
) -> None:
    first = plan(event, policy, NOW)
    replayed = ReturnEvent.model_validate_json(event.model_dump_json())

    again = plan(replayed, Policy.model_validate_json(policy.model_dump_json()), NOW)

    assert again.model_dump_json() == first.model_dump_json()


@SETTINGS
@given(events(), policies())
def test_every_action_has_items_and_ids_are_unique(event: ReturnEvent, policy: Policy) -> None:
    result = plan(event, policy, NOW)

    ids = [a.action_id for a in result.actions]
    assert len(ids) == len(set(ids))
    for action in result.actions:
        # No upper bound: splitting to the API's limits is the client's, not the rules'.
        if isinstance(action, RevokeCartEarn):
            assert len(action.earn_ids) >= 1
        if isinstance(action, RevokeCouponCodes):
            assert len(action.codes) >= 1
            if action.series_id is None or action.generic:
                assert len(action.codes) == 1
            if action.generic:
                assert action.series_id is not None
                assert action.customer is not None
            if action.no_generic_code:
                assert action.customer is None
            if action.customer is not None:
                assert len(action.customer.model_dump(exclude_none=True)) == 1
        if isinstance(action, DeactivateCartPromotion) and action.earn_id is None:
            assert action.broad
    calls = [a for a in result.actions if not isinstance(a, Report)]
    reports_start = len(calls)
    assert all(isinstance(a, Report) for a in result.actions[reports_start:])
    if not calls:
        assert result.decision is Decision.NOTHING_TO_DO


@SETTINGS
@given(events(TAKE_BACK_KINDS), policies())
def test_codes_of_a_generic_series_are_never_sent_together(
    event: ReturnEvent, policy: Policy
) -> None:
    result = plan(event, policy, NOW)
    generic = {s.series_id for s in policy.coupon_series if s.contains_generic_code is True}

    sent: list[tuple[int, str]] = []
    for action in result.actions:
        if isinstance(action, RevokeCouponCodes) and (
            action.series_id is None or action.series_id in generic
        ):
            assert action.codes == [action.codes[0]], f"generic codes sent together: {action}"
            assert action.generic
            assert action.series_id is not None
            assert action.customer is not None
            # A code is a coupon of its series: the same text in two series is two coupons.
            sent.append((action.series_id, action.codes[0].casefold()))
    assert len(sent) == len(set(sent)), "a generic code is sent twice"


@SETTINGS
@given(events(TAKE_BACK_KINDS), policies())
def test_codes_go_without_their_customer_only_for_a_series_declared_free_of_generic_codes(
    event: ReturnEvent, policy: Policy
) -> None:
    """Issue 23: what may share a call with other customers' codes is what the policy
    declares safe; anything else names the customer, or goes a code at a time."""
    result = plan(event, policy, NOW)
    free = {s.series_id for s in policy.coupon_series if s.contains_generic_code is False}

    for action in result.actions:
        if isinstance(action, RevokeCouponCodes) and action.customer is None:
            assert action.no_generic_code == (action.series_id in free)
            assert not action.generic


def _customers_named(action: Action) -> tuple[list[LoyaltyTarget], list[CouponCustomer]]:
    match action:
        case (
            RevokeLoyaltyEarn(target=target)
            | RevokeLoyaltyEnrolment(target=target)
            | EnrolLoyalty(target=target)
            | IssueLoyaltyEarn(target=target)
        ):
            return [target], []
        case RevokeCouponCodes(customer=CouponCustomer() as customer):
            return [], [customer]
        case RevokeCustomerCoupons(customer=customer):
            return [], [customer]
    return [], []


@SETTINGS
@given(events(), policies())
def test_customers_are_named_as_the_pages_show_them(event: ReturnEvent, policy: Policy) -> None:
    result = plan(event, policy, NOW)

    for action in result.actions:
        targets, coupon_customers = _customers_named(action)
        for target in targets:
            assert target.source in {source.value for source in RegistrationSource}
            if target.identifier_name == "mobile":
                assert target.identifier_value.isdigit()
        for customer in coupon_customers:
            assert len(customer.model_dump(exclude_none=True)) == 1
            if customer.mobile is not None:
                assert customer.mobile.isdigit()


@SETTINGS
@given(events(), policies())
def test_enrolment_revoked_only_for_enrol_and_issue_after_its_earn(
    event: ReturnEvent, policy: Policy
) -> None:
    result = plan(event, policy, NOW)

    earns_seen: set[tuple[str, str, str]] = set()
    enrols_given: set[str] = set()
    for action in result.actions:
        if isinstance(action, RevokeLoyaltyEarn):
            target = action.target
            earns_seen.add((_key(target), target.identifier_name, target.identifier_value))
        if isinstance(action, RevokeLoyaltyEnrolment):
            target = action.target
            assert target.promotion_type in (
                LoyaltyPromotionType.ISSUE_AND_EARN,
                LoyaltyPromotionType.LOYALTY_EARNING,
            )
            assert (_key(target), target.identifier_name, target.identifier_value) in earns_seen
        if isinstance(action, EnrolLoyalty):
            assert action.target.promotion_type.is_enrol_and_issue
            enrols_given.add(_key(action.target))
        if (
            isinstance(action, IssueLoyaltyEarn)
            and _key(action.target)
            in {
                e.promotion_key
                for e in (
                    event.cancelled_return.enrolments_revoked if event.cancelled_return else []
                )
            }
            and action.target.promotion_type.is_enrol_and_issue
        ):
            assert _key(action.target) in enrols_given
