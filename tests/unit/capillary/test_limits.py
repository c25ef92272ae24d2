"""The client splits calls at every documented limit instead of failing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from capillary_sandbox.faults import RateLimiter as SandboxRateLimiter
from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryPacingSettings, CapillaryRateLimits
from service.capillary.limits import (
    JITTER_SECONDS,
    WINDOW_SECONDS,
    AdaptiveLimiter,
    RateLimiters,
    chunks_without_repeats,
    coupon_code_batches,
    pacing,
)
from service.capillary.models import (
    CartEarnsRef,
    CouponCustomer,
    LoyaltyAction,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.requests import (
    CartRevoke,
    CouponCodesRevoke,
    CustomerCouponsRevoke,
    LoyaltyBulk,
)
from service.capillary.results import ResultClass
from service.clock import FakeClock
from tests.unit.capillary.helpers import (
    CART,
    COUPON,
    LOYALTY_REVOKE,
    FakeCapillary,
    Harness,
    basic_config,
    make_harness,
    reply,
)

PROMO = LoyaltyPromotionRef(program_id=1, promo_identifier="p-1")


def _echo_loyalty(request: httpx.Request) -> httpx.Response:

    body = json.loads(request.content)
    items = [
        {
            "result": {
                "entityId": int(c["identifierValue"]),
                "revokedEarnIds": c.get("earnIds", []),
            },
            "errors": [],
            "warnings": [],
        }
        for c in body["customers"]
    ]
    return reply(200, {"response": items, "totalCount": len(items), "failureCount": 0})


def _echo_coupons(request: httpx.Request) -> httpx.Response:

    codes = json.loads(request.content)["couponCodes"]
    revoked = [{"couponId": i, "couponCode": c, "issuedToUserId": 7} for i, c in enumerate(codes)]
    entity: dict[str, Any] = {
        "totalCount": len(codes),
        "failedCount": 0,
        "revokedCoupons": revoked,
        "failedToRevoke": [],
    }
    return reply(200, {"entity": entity, "warnings": [], "errors": [], "success": True})


def _echo_cart(request: httpx.Request) -> httpx.Response:

    body = json.loads(request.content)
    details = [
        {"promotionId": d["promotionId"], "revokedEarnIds": d["earnIds"], "status": "SUCCESS"}
        for d in body["earnRevokeDetails"]
    ]
    return reply(
        200, {"data": {"customerId": body["customerId"], "revokedDetails": details}, "errors": []}
    )


async def test_revoke_loyalty_earns_101_customers_makes_two_calls(harness: Harness) -> None:
    harness.fake.script(LOYALTY_REVOKE, _echo_loyalty)
    customers = [
        LoyaltyCustomerEarns(identifier_value=str(1000 + i), source="INSTORE", earn_ids=[i])
        for i in range(101)
    ]
    results = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), customers
    )
    assert [len(b["customers"]) for b in harness.fake.bodies(LOYALTY_REVOKE)] == [100, 1]
    assert [r.item for r in results] == [f"loyalty_earn:{i}" for i in range(101)]
    assert all(r.result_class is ResultClass.DONE for r in results)


async def test_revoke_loyalty_earns_duplicate_customer_goes_to_a_second_call(
    harness: Harness,
) -> None:
    harness.fake.script(LOYALTY_REVOKE, _echo_loyalty)
    customers = [
        LoyaltyCustomerEarns(identifier_value="42", source="INSTORE", earn_ids=[1]),
        LoyaltyCustomerEarns(identifier_value="43", source="INSTORE", earn_ids=[2]),
        LoyaltyCustomerEarns(identifier_value="42", source="INSTORE", earn_ids=[3]),
    ]
    results = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), customers
    )
    sent = [
        [(c["identifierValue"], c["earnIds"]) for c in b["customers"]]
        for b in harness.fake.bodies(LOYALTY_REVOKE)
    ]
    assert sent == [[("42", [1]), ("43", [2])], [("42", [3])]]
    assert [r.item for r in results] == ["loyalty_earn:1", "loyalty_earn:2", "loyalty_earn:3"]


async def test_revoke_cart_earns_1001_earn_ids_makes_two_calls(harness: Harness) -> None:
    harness.fake.script(CART, _echo_cart)
    earns = [
        CartEarnsRef(promotion_id="a" * 24, earn_ids=[f"{i:024x}" for i in range(600)]),
        CartEarnsRef(promotion_id="b" * 24, earn_ids=[f"{i:024x}" for i in range(600, 1001)]),
    ]
    results = await harness.client.revoke_cart_earns(CartRevoke(5, earns))
    sizes = [
        sum(len(d["earnIds"]) for d in b["earnRevokeDetails"]) for b in harness.fake.bodies(CART)
    ]
    assert sizes == [1000, 1]
    assert len(results) == 1001
    assert all(r.result_class is ResultClass.DONE for r in results)


async def test_revoke_coupons_51_codes_with_series_makes_two_calls(harness: Harness) -> None:
    harness.fake.script(COUPON, _echo_coupons)
    codes = [f"CODE{i}" for i in range(51)]
    results = await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(codes, series_id=415446, no_generic_code=True)
    )
    bodies = harness.fake.bodies(COUPON)
    assert [len(b["couponCodes"]) for b in bodies] == [50, 1]
    assert all(b["couponSeriesId"] == 415446 and "customer" not in b for b in bodies)
    assert [r.item for r in results] == [f"coupon:{c}" for c in codes]


async def test_revoke_coupons_of_a_series_not_declared_go_one_a_call_even_named(
    harness: Harness,
) -> None:
    """The page does not say a named customer bounds a bulk revoke of a generic series."""
    harness.fake.script(COUPON, _echo_coupons)
    codes = [f"CODE{i}" for i in range(3)]
    await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(codes, series_id=415446, customer=CouponCustomer(email="tom@example.com"))
    )
    bodies = harness.fake.bodies(COUPON)
    assert [b["couponCodes"] for b in bodies] == [[code] for code in codes]
    assert all(
        b["couponSeriesId"] == 415446 and b["customer"] == {"email": "tom@example.com"}
        for b in bodies
    )


async def test_revoke_coupons_of_a_series_not_declared_without_customer_go_one_a_call(
    harness: Harness,
) -> None:
    """The series may hold a generic code: two codes with its id could take all of it."""
    harness.fake.script(COUPON, _echo_coupons)
    results = await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(["A1", "B2"], series_id=415446)
    )
    assert harness.fake.bodies(COUPON) == [
        {"couponSeriesId": 415446, "couponCodes": ["A1"]},
        {"couponSeriesId": 415446, "couponCodes": ["B2"]},
    ]
    assert [r.result_class for r in results] == [ResultClass.DONE] * 2


async def test_revoke_coupons_two_codes_without_series_sends_one_per_call(harness: Harness) -> None:
    harness.fake.script(COUPON, _echo_coupons)
    results = await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(["A1", "B2"], series_id=None)
    )
    assert harness.fake.bodies(COUPON) == [{"couponCodes": ["A1"]}, {"couponCodes": ["B2"]}]
    assert all(r.result_class is ResultClass.DONE for r in results)
    assert all(c.url.params["couponCodeCase"] == "AS_IT_IS" for c in harness.fake.calls(COUPON))


def test_chunks_without_repeats_keeps_original_indexes() -> None:
    batches = chunks_without_repeats(["a", "b", "a", "a"], 2, key=str)
    assert batches == [[(0, "a"), (1, "b")], [(2, "a")], [(3, "a")]]


def test_coupon_code_batches_drops_repeats() -> None:
    assert coupon_code_batches(["X", "X", "Y"], series_id=1) == [["X", "Y"]]


def test_rate_limiters_are_per_endpoint_from_settings() -> None:
    limits = CapillaryRateLimits(coupon_revoke=100, cart_revoke=250)
    clock = FakeClock()
    limiters = RateLimiters(
        limits, CapillaryPacingSettings(), clock=clock, sleep=_VirtualTime(clock).sleep
    )
    coupon = limiters.for_endpoint(Endpoint.COUPON_REVOKE)
    assert (coupon.limit, coupon.pace) == (100, 100)
    cart = limiters.for_endpoint(Endpoint.CART_REVOKE)
    assert (cart.limit, cart.pace) == (250, 250)
    assert coupon is not limiters.for_endpoint(Endpoint.CART_REVOKE)


def test_pacing_never_lets_a_minute_see_more_than_the_limit() -> None:
    for per_minute in range(1, 3001):
        paced = pacing(per_minute)
        assert paced.most_in(WINDOW_SECONDS) <= per_minute, per_minute
        # Requests a little over a minute apart may arrive less than a minute apart.
        assert paced.most_in(WINDOW_SECONDS + JITTER_SECONDS - 1e-6) <= per_minute, per_minute
        # ... and the limit is used, not wasted.
        assert paced.most_in(WINDOW_SECONDS + JITTER_SECONDS) >= per_minute, per_minute


def test_pacing_at_300_a_minute_bursts_5_then_about_5_a_second() -> None:
    paced = pacing(300)
    assert paced.burst == 5
    assert 4.8 < paced.per_second < 5.0
    assert paced.most_in(1.0) <= 10


def test_pacing_of_one_a_minute_lets_one_through_a_minute_and_the_margin() -> None:
    assert pacing(1) == (1, WINDOW_SECONDS + JITTER_SECONDS)


class _VirtualTime:
    """A sleep that moves a fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)


async def _granted_times(limiter: AdaptiveLimiter, clock: FakeClock, seconds: float) -> list[float]:
    """When a caller that always wants another permit gets one, in virtual time."""
    granted: list[float] = []
    while clock.monotonic() < seconds:
        await limiter.acquire()
        granted.append(clock.monotonic())
    return granted


@pytest.mark.parametrize("per_minute", [1, 2, 7, 61, 300, 1500])
async def test_greedy_caller_through_the_real_limiter_never_meets_the_sandbox_429(
    per_minute: int,
) -> None:
    clock = FakeClock()
    limiter = RateLimiters(
        CapillaryRateLimits(loyalty_revoke=per_minute),
        CapillaryPacingSettings(),
        clock=clock,
        sleep=_VirtualTime(clock).sleep,
    ).for_endpoint(Endpoint.LOYALTY_REVOKE)
    granted = await _granted_times(limiter, clock, seconds=200.0)
    # Network delays spread arrivals by up to most of the jitter margin.
    spread = [0.0, 0.9, 0.3, 0.6, 0.1]
    arrivals = sorted(t + spread[n % len(spread)] for n, t in enumerate(granted))
    now = [0.0]
    sandbox = SandboxRateLimiter({"loyalty_revoke": per_minute}, clock=lambda: now[0])
    refused = 0
    for arrival in arrivals:
        now[0] = arrival
        refused += sandbox.check("loyalty_revoke") is not None
    assert refused == 0
    assert len(granted) >= per_minute * 3  # and the limit was used, 200 s is over 3 minutes


async def test_client_logs_carry_no_customer_identifiers(harness: Harness) -> None:
    empty = {"entity": {"revokedCoupons": [], "failedToRevoke": []}, "errors": [], "success": True}
    harness.fake.script(COUPON, reply(200, empty))
    with capture_logs() as logs:
        await harness.client.revoke_coupons_by_customer(
            CustomerCouponsRevoke(CouponCustomer(mobile="11223569865"), series_id=None)
        )
        await harness.client.revoke_coupons_by_customer(
            CustomerCouponsRevoke(CouponCustomer(email="tom@example.com"), series_id=None)
        )
    assert len(logs) == 2
    assert "11223569865" not in repr(logs)
    assert "tom@example.com" not in repr(logs)


async def test_calls_over_the_rate_limit_wait_in_line_instead_of_being_sent() -> None:
    fake = FakeCapillary()
    empty = {"entity": {"revokedCoupons": [], "failedToRevoke": []}, "errors": [], "success": True}
    fake.script(COUPON, reply(200, empty))
    sent_at: list[tuple[list[str], float]] = []
    h = make_harness(fake, config=basic_config(rate_limits={"coupon_revoke": 2}))

    def noted(request: httpx.Request) -> httpx.Response:
        sent_at.append((json.loads(request.content)["couponCodes"], h.clock.monotonic()))
        return reply(200, empty)

    fake.script(COUPON, noted)
    async with h.client:
        await asyncio.gather(
            *(
                h.client.revoke_coupons_by_codes(CouponCodesRevoke([code], series_id=None))
                for code in "ABC"
            )
        )
    # Two a minute is a burst of one, then one every 30.5 s (a minute and the margin,
    # halved), in the order the calls came: nothing was sent early and nothing refused.
    assert sent_at == [(["A"], 0.0), (["B"], 30.5), (["C"], 61.0)]
    assert h.sleeps == [30.5, 30.5]
