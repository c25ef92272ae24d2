"""The coalescer's coupon codes and cart earns: the real client on a mock transport.

Codes merge only where the policy makes it safe (a series declared free of generic codes, or
one customer's own codes); cart earns merge per customer; the rest goes through unmerged.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from service.capillary.coalesce import Coalescer
from service.capillary.models import CartEarnsRef, CouponCustomer
from service.capillary.requests import (
    CartRevoke,
    CouponCodesRevoke,
    CustomerCouponsRevoke,
    Deactivation,
)
from service.capillary.results import ItemResult, ResultClass
from tests.unit.capillary.coalescing import echoing_harness, fast_harness, gather
from tests.unit.capillary.helpers import CART, COUPON, FakeCapillary, Harness, reply

SERIES = 415446
CART_PROMO = "69117663b1cfc114606fd7fb"


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = echoing_harness()
    yield h
    await h.client.aclose()


# --- coupons --------------------------------------------------------------------------------


async def test_codes_of_a_series_free_of_generic_codes_from_60_callers_go_50_then_10(
    harness: Harness,
) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    results = await gather(
        *(
            coalescer.revoke_coupons_by_codes(
                CouponCodesRevoke([f"C{n}"], SERIES, no_generic_code=True)
            )
            for n in range(60)
        )
    )
    bodies = harness.fake.bodies(COUPON)
    assert [len(b["couponCodes"]) for b in bodies] == [50, 10]
    assert all(b["couponSeriesId"] == SERIES and "customer" not in b for b in bodies)
    assert [[r.item for r in own] for own in results] == [[f"coupon:C{n}"] for n in range(60)]
    assert all(own[0].result_class is ResultClass.DONE for own in results)


async def test_one_code_from_two_callers_goes_in_two_requests(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    await gather(
        coalescer.revoke_coupons_by_codes(
            CouponCodesRevoke(["ABC", "X1"], SERIES, no_generic_code=True)
        ),
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["abc"], SERIES, no_generic_code=True)),
    )
    assert [b["couponCodes"] for b in harness.fake.bodies(COUPON)] == [["ABC", "X1"], ["abc"]]


async def test_codes_of_other_customers_never_share_a_request_unless_declared_free(
    harness: Harness,
) -> None:
    """Issue 23: a series not declared free of generic codes may hold one, and several codes
    with its id would take every coupon of the series (the page does not say naming the
    customer bounds that): one code a request, its customer named."""
    coalescer = Coalescer(harness.client, linger_seconds=0)
    tom, huck = CouponCustomer(id="555567088"), CouponCustomer(mobile="919986000586")
    toms, hucks, toms_again = await gather(
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["T1", "T2"], SERIES, customer=tom)),
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["H1"], SERIES, customer=huck)),
        coalescer.revoke_coupons_by_codes(
            CouponCodesRevoke(["T3"], SERIES, customer=CouponCustomer(id="555567088"))
        ),
    )
    bodies = harness.fake.bodies(COUPON)
    assert sorted(bodies, key=lambda b: b["couponCodes"]) == [
        {"couponSeriesId": SERIES, "customer": {"mobile": "919986000586"}, "couponCodes": ["H1"]},
        {"couponSeriesId": SERIES, "customer": {"id": "555567088"}, "couponCodes": ["T1"]},
        {"couponSeriesId": SERIES, "customer": {"id": "555567088"}, "couponCodes": ["T2"]},
        {"couponSeriesId": SERIES, "customer": {"id": "555567088"}, "couponCodes": ["T3"]},
    ]
    assert [[r.item for r in own] for own in (toms, hucks, toms_again)] == [
        ["coupon:T1", "coupon:T2"],
        ["coupon:H1"],
        ["coupon:T3"],
    ]


async def test_codes_of_an_undeclared_series_without_customer_go_one_per_request(
    harness: Harness,
) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    await gather(
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["A1", "A2"], SERIES)),
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["B1"], SERIES)),
    )
    bodies = harness.fake.bodies(COUPON)
    assert sorted(code for b in bodies for code in b["couponCodes"]) == ["A1", "A2", "B1"]
    assert all(len(b["couponCodes"]) == 1 and "customer" not in b for b in bodies)


async def test_generic_series_and_no_series_codes_go_one_per_request(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    customer = CouponCustomer(id="555")
    await gather(
        coalescer.revoke_coupons_by_codes(
            CouponCodesRevoke(["G1", "G2"], 415500, generic=True, customer=customer)
        ),
        coalescer.revoke_coupons_by_codes(
            CouponCodesRevoke(["G3"], 415500, generic=True, customer=customer)
        ),
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["N1"], None)),
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["N2"], None)),
    )
    bodies = harness.fake.bodies(COUPON)
    assert sorted(b["couponCodes"][0] for b in bodies) == ["G1", "G2", "G3", "N1", "N2"]
    assert all(len(b["couponCodes"]) == 1 and "couponSeriesId" not in b for b in bodies)


async def test_codes_revoked_unasked_go_to_every_caller_of_that_request() -> None:
    fake = FakeCapillary()

    def whole_series(request: httpx.Request) -> httpx.Response:
        codes = json.loads(request.content)["couponCodes"] + ["SALE20"]
        revoked = [{"couponId": 1, "couponCode": c} for c in codes]
        entity = {"revokedCoupons": revoked, "failedToRevoke": []}
        return reply(200, {"entity": entity, "errors": [], "success": True})

    fake.script(COUPON, whole_series)
    h = fast_harness(fake)
    coalescer = Coalescer(h.client, linger_seconds=0)
    first, second = await gather(
        coalescer.revoke_coupons_by_codes(
            CouponCodesRevoke(["A1", ""], SERIES, no_generic_code=True)
        ),
        coalescer.revoke_coupons_by_codes(CouponCodesRevoke(["B1"], SERIES, no_generic_code=True)),
    )
    assert len(fake.calls(COUPON)) == 1
    # B1 is the second caller's own; SALE20, which nobody asked, is reported to both.
    assert [(r.item, r.asked) for r in first] == [
        ("coupon:A1", True),
        ("coupon:SALE20", False),
        ("coupon:", True),
    ]
    assert [(r.item, r.asked) for r in second] == [("coupon:B1", True), ("coupon:SALE20", False)]
    await h.client.aclose()


# --- cart -----------------------------------------------------------------------------------


async def test_cart_earns_of_one_customer_from_two_callers_share_one_request(
    harness: Harness,
) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    ids = [f"{n:024x}" for n in range(1000)]
    first, second, other_customer = await gather(
        coalescer.revoke_cart_earns(
            CartRevoke(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[:400])])
        ),
        coalescer.revoke_cart_earns(
            CartRevoke(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[400:])])
        ),
        coalescer.revoke_cart_earns(
            CartRevoke(6, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[:1])])
        ),
    )
    bodies = harness.fake.bodies(CART)
    assert [
        (b["customerId"], sum(len(d["earnIds"]) for d in b["earnRevokeDetails"])) for b in bodies
    ] == [
        (5, 1000),
        (6, 1),
    ]
    assert [r.item for r in first] == [f"cart_earn:{i}" for i in ids[:400]]
    assert [r.item for r in second] == [f"cart_earn:{i}" for i in ids[400:]]
    assert all(r.result_class is ResultClass.DONE for r in first + second + other_customer)


async def test_cart_earns_beyond_a_thousand_open_a_second_request(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    ids = [f"{n:024x}" for n in range(1001)]
    results = await gather(
        coalescer.revoke_cart_earns(
            CartRevoke(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[:600])])
        ),
        coalescer.revoke_cart_earns(
            CartRevoke(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[600:])])
        ),
    )
    sizes = [
        sum(len(d["earnIds"]) for d in b["earnRevokeDetails"]) for b in harness.fake.bodies(CART)
    ]
    assert sizes == [1000, 1]
    assert sum(len(own) for own in results) == 1001


# --- passed through -------------------------------------------------------------------------


async def test_revoke_by_customer_and_deactivate_go_through_unmerged(harness: Harness) -> None:
    deactivate = f"/api_gateway/v1/promotions/{CART_PROMO}/deactivate"
    harness.fake.script(deactivate, reply(200, {"data": True, "errors": []}))
    coalescer = Coalescer(harness.client, linger_seconds=0)
    calls: list[Callable[[], Awaitable[list[ItemResult]]]] = [
        lambda: coalescer.revoke_coupons_by_customer(
            CustomerCouponsRevoke(CouponCustomer(id="1"), None)
        ),
        lambda: coalescer.revoke_coupons_by_customer(
            CustomerCouponsRevoke(CouponCustomer(id="2"), None)
        ),
        lambda: coalescer.deactivate_promotion(Deactivation(CART_PROMO, 1, None)),
        lambda: coalescer.deactivate_promotion(Deactivation(CART_PROMO, 2, None)),
    ]
    await gather(*(call() for call in calls))
    assert len(harness.fake.calls(COUPON)) == 2
    assert len(harness.fake.calls(deactivate)) == 2
