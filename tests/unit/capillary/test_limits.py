"""The client splits calls at every documented limit instead of failing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from aiolimiter import AsyncLimiter
from structlog.testing import capture_logs

from capillary_sandbox.faults import RateLimiter as SandboxRateLimiter
from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryRateLimits
from service.capillary.limits import (
    JITTER_SECONDS,
    WINDOW_SECONDS,
    RateLimiters,
    chunks_without_repeats,
    coupon_code_batches,
    pacing,
)
from service.capillary.models import (
    CartEarnsRef,
    CouponCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.results import ResultClass
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
    results = await harness.client.revoke_loyalty_earns(PROMO, "id", customers)
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
    results = await harness.client.revoke_loyalty_earns(PROMO, "id", customers)
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
    results = await harness.client.revoke_cart_earns(5, earns)
    sizes = [
        sum(len(d["earnIds"]) for d in b["earnRevokeDetails"]) for b in harness.fake.bodies(CART)
    ]
    assert sizes == [1000, 1]
    assert len(results) == 1001
    assert all(r.result_class is ResultClass.DONE for r in results)


async def test_revoke_coupons_51_codes_with_series_makes_two_calls(harness: Harness) -> None:
    harness.fake.script(COUPON, _echo_coupons)
    codes = [f"CODE{i}" for i in range(51)]
    results = await harness.client.revoke_coupons_by_codes(codes, series_id=415446)
    bodies = harness.fake.bodies(COUPON)
    assert [len(b["couponCodes"]) for b in bodies] == [50, 1]
    assert all(b["couponSeriesId"] == 415446 for b in bodies)
    assert [r.item for r in results] == [f"coupon:{c}" for c in codes]


async def test_revoke_coupons_two_codes_without_series_sends_one_per_call(harness: Harness) -> None:
    harness.fake.script(COUPON, _echo_coupons)
    results = await harness.client.revoke_coupons_by_codes(["A1", "B2"], series_id=None)
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
    limiters = RateLimiters(limits)
    coupon = limiters.for_endpoint(Endpoint.COUPON_REVOKE)
    assert (coupon.max_rate, coupon.time_period) == pacing(100)
    cart = limiters.for_endpoint(Endpoint.CART_REVOKE)
    assert (cart.max_rate, cart.time_period) == pacing(250)
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
    """The two things ``AsyncLimiter`` asks of its event loop, on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def is_closed(self) -> bool:
        return False


def _granted_times(limiter: AsyncLimiter, seconds: float, step: float) -> list[float]:
    """When a caller that always wants another permit gets one, in virtual time."""
    clock = _VirtualTime()
    limiter._event_loop = clock  # type: ignore[assignment]  # drive it without a real loop
    granted: list[float] = []
    for tick in range(int(seconds / step)):
        clock.now = tick * step
        while limiter.has_capacity():
            # With capacity, acquire() completes without awaiting anything.
            with pytest.raises(StopIteration):
                limiter.acquire().send(None)
            granted.append(clock.now)
    return granted


@pytest.mark.parametrize("per_minute", [1, 2, 7, 61, 300, 1500])
def test_greedy_caller_through_the_real_limiter_never_meets_the_sandbox_429(
    per_minute: int,
) -> None:
    limiter = RateLimiters(CapillaryRateLimits(loyalty_revoke=per_minute)).for_endpoint(
        Endpoint.LOYALTY_REVOKE
    )
    granted = _granted_times(limiter, seconds=200.0, step=0.01)
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
            CouponCustomer(mobile="11223569865"), series_id=None
        )
        await harness.client.revoke_coupons_by_customer(
            CouponCustomer(email="tom@example.com"), series_id=None
        )
    assert len(logs) == 2
    assert "11223569865" not in repr(logs)
    assert "tom@example.com" not in repr(logs)


async def test_calls_over_the_rate_limit_wait_in_line_instead_of_being_sent() -> None:
    fake = FakeCapillary()
    empty = {"entity": {"revokedCoupons": [], "failedToRevoke": []}, "errors": [], "success": True}
    fake.script(COUPON, reply(200, empty))
    h = make_harness(fake, config=basic_config(rate_limits={"coupon_revoke": 2}))
    async with h.client:
        calls = [
            asyncio.create_task(h.client.revoke_coupons_by_codes([code], series_id=None))
            for code in ("A", "B", "C")
        ]
        done, pending = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
        # Give the event loop plenty of turns: an unlimited client would have sent the
        # third request by now (the transport is in-process, no I/O).
        for _ in range(100):
            await asyncio.sleep(0)
        sent = [json.loads(r.content)["couponCodes"] for r in fake.calls(COUPON)]
        # Two a minute is a burst of one: the others wait for the drip.
        assert len(sent) == 1
        assert sum(not task.done() for task in calls) == 2
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
    assert done
    assert pending
