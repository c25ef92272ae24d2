"""The bound of ``bench/bound.py``: the fewest calls the pages allow, and a run against it."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from bench_world import FIRST_PROMOTION, build_storm
from bound import (
    COUNTED,
    Fewest,
    ItemsPerCall,
    bound,
    call_items,
    fewest_calls,
    items_per_call,
    table,
)

from service.actions import (
    Action,
    CouponCustomer,
    DeactivateCartPromotion,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Report,
    ReportKind,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeCustomerCoupons,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.capillary.codes import Endpoint
from service.events import ReturnEvent
from service.policy_file import load_policy
from service.wiring import make_planner

_WHY: dict[str, str] = {"action_id": "a", "reason_code": "test", "reason": "test"}


def _target(customer: str | int, **changes: Any) -> LoyaltyTarget:
    fields: dict[str, Any] = {
        "program_id": 2714,
        "promotion_id": 300_000,
        "promotion_type": "LOYALTY_EARNING",
        "identifier_name": "id",
        "identifier_value": str(customer),
        "source": "INSTORE",
    }
    return LoyaltyTarget(**(fields | changes))


def _earn(customer: str | int, **changes: Any) -> RevokeLoyaltyEarn:
    return RevokeLoyaltyEarn(**_WHY, target=_target(customer, **changes), earn_ids=[1])


def _cart(customer: int, ids: list[str], promotion: str = "a" * 24) -> RevokeCartEarn:
    return RevokeCartEarn(**_WHY, customer_id=customer, promotion_id=promotion, earn_ids=ids)


def _codes(codes: list[str], series: int | None = 500_000, **flags: Any) -> RevokeCouponCodes:
    return RevokeCouponCodes(**_WHY, series_id=series, codes=codes, **flags)


def _calls(actions: Iterable[Action]) -> dict[Endpoint, int]:
    return {e: f.calls for e, f in fewest_calls(actions).items()}


# --------------------------------------------------------------------------- loyalty


@pytest.mark.parametrize(("customers", "calls"), [(1, 1), (100, 1), (101, 2), (250, 3)])
def test_a_loyalty_request_carries_at_most_100_customers(customers: int, calls: int) -> None:
    fewest = fewest_calls([_earn(n) for n in range(customers)])
    assert fewest == {Endpoint.LOYALTY_REVOKE: Fewest(calls=calls, items=customers)}


def test_each_bulk_action_is_its_own_request_on_its_own_endpoint() -> None:
    # Other customers for each action: merged, the 60 of an endpoint would fit in one call.
    actions: list[Action] = [_earn(n) for n in range(0, 30)]
    actions += [RevokeLoyaltyEnrolment(**_WHY, target=_target(n)) for n in range(30, 60)]
    actions += [EnrolLoyalty(**_WHY, target=_target(n)) for n in range(60, 90)]
    actions += [IssueLoyaltyEarn(**_WHY, target=_target(n)) for n in range(90, 120)]
    assert _calls(actions) == {Endpoint.LOYALTY_REVOKE: 2, Endpoint.LOYALTY_ENROL: 2}


def test_the_two_names_of_one_promotion_are_two_requests() -> None:
    by_id = [_earn(n) for n in range(50)]
    by_name = [
        _earn(n, promotion_id=None, promo_identifier="bench-promo-0000") for n in range(50, 100)
    ]
    assert _calls([*by_id, *by_name]) == {Endpoint.LOYALTY_REVOKE: 2}
    assert _calls(by_id + [_earn(n) for n in range(50, 100)]) == {Endpoint.LOYALTY_REVOKE: 1}


def test_program_promotion_and_identifier_name_each_split_requests() -> None:
    base = [_earn(n) for n in range(10)]
    assert _calls([*base, *(_earn(n, promotion_id=300_001) for n in range(10))]) == {
        Endpoint.LOYALTY_REVOKE: 2
    }
    assert _calls([*base, *(_earn(n, program_id=9) for n in range(10))]) == {
        Endpoint.LOYALTY_REVOKE: 2
    }
    mobiles = [_earn(f"91987654{n:04d}", identifier_name="mobile") for n in range(10)]
    assert _calls([*base, *mobiles]) == {Endpoint.LOYALTY_REVOKE: 2}


def test_one_customer_is_never_twice_in_a_loyalty_request() -> None:
    # Three earns of one customer (the e-mail's case aside) need three requests.
    same = [_earn(value, identifier_name="email") for value in ("a@x.io", "A@x.io", " a@x.io")]
    assert _calls(same) == {Endpoint.LOYALTY_REVOKE: 3}
    assert _calls([*same, *(_earn(n) for n in range(5))]) == {Endpoint.LOYALTY_REVOKE: 4}


def test_loyalty_entries_the_client_answers_itself_make_no_call() -> None:
    empty = RevokeLoyaltyEarn(**_WHY, target=_target(1), earn_ids=[])
    no_source = _earn(2, source=" ")
    assert fewest_calls([empty, no_source]) == {}
    broad = RevokeLoyaltyEarn(**_WHY, target=_target(3), earn_ids=None, broad=True)
    assert _calls([broad]) == {Endpoint.LOYALTY_REVOKE: 1}


# --------------------------------------------------------------------------- cart


def test_cart_requests_are_per_customer_with_at_most_1000_earn_ids() -> None:
    ids = [f"{n:024x}" for n in range(1500)]
    # One customer, two promotions, 1,001 ids: two requests, whatever the promotions.
    one = [_cart(1, ids[:600], "a" * 24), _cart(1, ids[600:1001], "b" * 24)]
    assert fewest_calls(one) == {Endpoint.CART_REVOKE: Fewest(calls=2, items=1001)}
    assert _calls([_cart(1, ids[:1000])]) == {Endpoint.CART_REVOKE: 1}
    # Two customers with one earn each cannot share a request.
    assert _calls([_cart(1, ids[:1]), _cart(2, ids[1:2])]) == {Endpoint.CART_REVOKE: 2}


def test_a_cart_earn_named_twice_is_revoked_once() -> None:
    ids = [f"{n:024x}" for n in range(1000)]
    again = [_cart(1, ids), _cart(1, [ids[0].upper()])]
    assert fewest_calls(again) == {Endpoint.CART_REVOKE: Fewest(calls=1, items=1000)}
    assert fewest_calls([_cart(1, [])]) == {}


# --------------------------------------------------------------------------- coupons


def test_codes_of_a_series_declared_free_of_generic_codes_share_calls_of_50() -> None:
    codes = [f"C{n}" for n in range(120)]
    declared = [_codes(codes[i : i + 40], no_generic_code=True) for i in range(0, 120, 40)]
    assert fewest_calls(declared) == {Endpoint.COUPON_REVOKE: Fewest(calls=3, items=120)}
    assert _calls([_codes(codes[:50], no_generic_code=True)]) == {Endpoint.COUPON_REVOKE: 1}
    # Two declared series never share a call.
    two = [_codes(["A"], no_generic_code=True), _codes(["B"], 500_001, no_generic_code=True)]
    assert _calls(two) == {Endpoint.COUPON_REVOKE: 2}


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param({}, id="undeclared"),
        pytest.param({"generic": True}, id="generic"),
        pytest.param({"customer": CouponCustomer(id=7)}, id="undeclared-customer-named"),
    ],
)
def test_codes_of_any_other_series_go_one_a_call(flags: dict[str, Any]) -> None:
    codes = [f"C{n}" for n in range(120)]
    assert _calls([_codes(codes, **flags)]) == {Endpoint.COUPON_REVOKE: 120}


def test_declared_codes_without_a_series_go_one_a_call_and_repeats_once() -> None:
    assert _calls([_codes(["A", "B", "C"], None, no_generic_code=True)]) == {
        Endpoint.COUPON_REVOKE: 3
    }
    assert _calls([_codes(["A", "B"]), _codes(["B", " "])]) == {Endpoint.COUPON_REVOKE: 2}


def test_revoke_by_customer_and_deactivate_are_one_call_each_and_reports_none() -> None:
    customer = CouponCustomer(id=7)
    by_customer = RevokeCustomerCoupons(**_WHY, customer=customer, series_id=None)
    deactivate = DeactivateCartPromotion(
        **_WHY, customer_id=7, promotion_id="a" * 24, earn_id="b" * 24
    )
    report = Report(**_WHY, report_kind=ReportKind.STILL_DESERVED, item="cart_earn:x")
    fewest = fewest_calls([by_customer, by_customer, deactivate, deactivate, report])
    assert fewest == {
        Endpoint.COUPON_REVOKE: Fewest(calls=2, items=0),
        Endpoint.DEACTIVATE: Fewest(calls=2, items=2),
    }


def test_the_storm_worlds_bound_is_its_groups_over_100(tmp_path: Path) -> None:
    """Through the service's rules: each event one promotion, named one of two ways."""
    world = build_storm(1000, random.Random("bound"), "run-1")
    policy = tmp_path / "policy.yaml"
    policy.write_text(world.policy_yaml())
    planner = make_planner(load_policy(policy))
    by_name: Counter[tuple[str, str]] = Counter()
    by_promotion: Counter[tuple[str, int]] = Counter()
    actions: list[Action] = []
    for _, value in world.events:
        event = ReturnEvent.model_validate_json(value)
        actions += planner(event, event.occurred_at).actions
        (earned,) = event.earned.loyalty_promotions
        name = str(earned.promotion_id or earned.promo_identifier)
        promotion = earned.promotion_id or FIRST_PROMOTION + int(name.rpartition("-")[2])
        bulk_actions = ["REVOKE_EARN"]
        if earned.promotion_type == "LOYALTY_EARNING":
            bulk_actions.append("REVOKE_ENROL")
        for bulk_action in bulk_actions:
            by_name[(bulk_action, name)] += 1
            by_promotion[(bulk_action, promotion)] += 1
    expected = sum(math.ceil(n / 100) for n in by_name.values())
    # The world is big enough that the two names of a promotion cost calls.
    assert expected > sum(math.ceil(n / 100) for n in by_promotion.values())
    assert _calls(actions) == {Endpoint.LOYALTY_REVOKE: expected}


# --------------------------------------------------------------------------- the call log


def _logged(endpoint: str, body: object, status: int | None = 200) -> dict[str, Any]:
    return {"endpoint": endpoint, "body": body, "status": status}


def test_items_per_call_reads_each_endpoints_body() -> None:
    log = [
        _logged("revoke_enrol_and_earn", {"customers": [{}] * 100}),
        _logged("revoke_enrol_and_earn", {"customers": [{}] * 20}),
        # A refused call's customers go again: not counted twice.
        _logged("revoke_enrol_and_earn", {"customers": [{}] * 3}, status=429),
        _logged(
            "cart_revoke_earn",
            {"earnRevokeDetails": [{"earnIds": ["a", "b"]}, {"earnIds": ["c"]}]},
        ),
        _logged("coupon_revoke", {"couponSeriesId": 1, "couponCodes": ["A", "B"]}),
        _logged("coupon_revoke", {"customer": {"id": "7"}}),
        _logged("deactivate", None),
        _logged("oauth_token", {"key": "k"}),
    ]
    assert items_per_call(log) == {
        "cart_revoke_earn": ItemsPerCall(calls=1, mean=3.0, min=3, max=3),
        "coupon_revoke": ItemsPerCall(calls=1, mean=2.0, min=2, max=2),
        "deactivate": ItemsPerCall(calls=1, mean=1.0, min=1, max=1),
        "revoke_enrol_and_earn": ItemsPerCall(calls=2, mean=60.0, min=20, max=100),
    }
    assert call_items("enrol_and_earn", "not json") is None


# --------------------------------------------------------------------------- the run


def _limits(per_minute: int) -> dict[Endpoint, int]:
    return dict.fromkeys(COUNTED, per_minute)


def test_the_slowest_endpoint_binds_and_the_ratio_is_against_it() -> None:
    fewest = {
        Endpoint.LOYALTY_REVOKE: Fewest(calls=75, items=5000),
        Endpoint.CART_REVOKE: Fewest(calls=1200, items=1800),
    }
    result = bound(
        fewest,
        limits=_limits(1500),
        calls={"revoke_enrol_and_earn": 150, "cart_revoke_earn": 1200, "oauth_token": 1},
        items={},
        seconds_to_clear=96.0,
    )
    assert result.binding_endpoint == "cart_revoke_earn"
    assert result.seconds == 48.0  # 1,200 calls at 25 a second
    assert result.ratio == 2.0
    assert result.fewest_calls == 1275
    loyalty = result.by_endpoint["revoke_enrol_and_earn"]
    assert (loyalty.seconds_at_limit, loyalty.calls_ratio) == (3.0, 2.0)
    # A token call is made but not bounded: listed, with no ratio.
    assert result.by_endpoint["oauth_token"].fewest_calls == 0
    assert result.by_endpoint["oauth_token"].calls_ratio is None
    assert "cart_revoke_earn" in table(result)[-1]


def test_endpoints_are_paced_apart_so_their_times_do_not_add() -> None:
    fewest = {e: Fewest(calls=300, items=300) for e in COUNTED}
    result = bound(fewest, limits=_limits(300), calls={}, items={}, seconds_to_clear=120.0)
    assert result.seconds == 60.0
    # Equal endpoints: the first in the service's order is named.
    assert result.binding_endpoint == "revoke_enrol_and_earn"
    assert result.ratio == 2.0


def test_without_a_rate_limit_there_is_no_time_bound() -> None:
    fewest = {Endpoint.LOYALTY_REVOKE: Fewest(calls=10, items=1000)}
    result = bound(
        fewest,
        limits=None,
        calls={"revoke_enrol_and_earn": 12},
        items={},
        seconds_to_clear=3.0,
    )
    assert (result.seconds, result.binding_endpoint, result.ratio) == (None, None, None)
    assert result.by_endpoint["revoke_enrol_and_earn"].calls_ratio == 1.2
    assert (
        result.model_dump(mode="json")["by_endpoint"]["revoke_enrol_and_earn"]["seconds_at_limit"]
        is None
    )
