"""The coalescer: the real client on a mock transport, requests counted at the transport.

Concurrency is ordered with gates (asyncio events) in the transport or in the rate
permit, never with sleeps; ``linger_seconds=0`` wherever the linger is not the point.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from service.capillary.codes import Endpoint
from service.capillary.models import (
    Attribution,
    AttributionEntityType,
    CartEarnsRef,
    CouponCustomer,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.results import ItemResult, ResultClass
from service.pipeline.coalesce import Coalescer
from service.pipeline.execute import CapillaryApi
from tests.unit.capillary.helpers import (
    CART,
    COUPON,
    LOYALTY_ENROL,
    LOYALTY_REVOKE,
    TOKEN_PATH,
    FakeCapillary,
    Harness,
    basic_config,
    loyalty_error,
    make_harness,
    oauth_config,
    reply,
)

PROMO = LoyaltyPromotionRef(program_id=2714, promotion_id=202779)
OTHER_PROMO = LoyaltyPromotionRef(program_id=2714, promotion_id=202780)
SERIES = 415446
CART_PROMO = "69117663b1cfc114606fd7fb"
FAST = {name: 6000 for name in ("loyalty_revoke", "loyalty_enrol", "cart_revoke", "coupon_revoke")}
REFUSED_CUSTOMER = "9999"

T = TypeVar("T")


def _echo_loyalty(request: httpx.Request) -> httpx.Response:
    """Every customer's earns revoked, except REFUSED_CUSTOMER's (8903), by position."""
    body = json.loads(request.content)
    items: list[dict[str, Any]] = []
    for customer in body["customers"]:
        if customer["identifierValue"] == REFUSED_CUSTOMER:
            items.append(loyalty_error(8903, "invalid or already revoked"))
            continue
        result = {
            "entityId": int(customer["identifierValue"]),
            "revokedEarnIds": customer.get("earnIds", []),
            "issualId": "77",
            "earnedId": "88",
        }
        items.append({"result": result, "errors": [], "warnings": []})
    return reply(200, {"response": items, "totalCount": len(items), "failureCount": 0})


def _echo_coupons(request: httpx.Request) -> httpx.Response:
    codes = json.loads(request.content).get("couponCodes", [])
    revoked = [{"couponId": 1, "couponCode": c, "issuedToUserId": 7} for c in codes]
    entity = {"revokedCoupons": revoked, "failedToRevoke": []}
    return reply(200, {"entity": entity, "warnings": [], "errors": [], "success": True})


def _echo_cart(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    details = [
        {"promotionId": d["promotionId"], "revokedEarnIds": d["earnIds"], "status": "SUCCESS"}
        for d in body["earnRevokeDetails"]
    ]
    data = {"customerId": body["customerId"], "revokedDetails": details}
    return reply(200, {"data": data, "errors": []})


def _harness(fake: FakeCapillary | None = None, **config: Any) -> Harness:
    config.setdefault("rate_limits", FAST)
    return make_harness(fake, config=basic_config(**config))


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = _harness()
    h.fake.script(LOYALTY_REVOKE, _echo_loyalty)
    h.fake.script(LOYALTY_ENROL, _echo_loyalty)
    h.fake.script(COUPON, _echo_coupons)
    h.fake.script(CART, _echo_cart)
    yield h
    await h.client.aclose()


def _customer(n: int, *earn_ids: int) -> LoyaltyCustomerEarns:
    return LoyaltyCustomerEarns(identifier_value=str(n), source="INSTORE", earn_ids=list(earn_ids))


def _shared(results: list[ItemResult]) -> list[dict[str, Any]]:
    """A caller's results without what describes the shared call."""
    return [r.model_dump(exclude={"request_ids", "attempts", "elapsed_ms"}) for r in results]


async def _all(*calls: Awaitable[list[ItemResult]]) -> list[list[ItemResult]]:
    return list(await asyncio.gather(*calls))


class Gate:
    """A rate permit held back until the test opens it; says when a batch waits for it."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self.opened = asyncio.Event()
        self.asked: list[Endpoint] = []

    async def admit(self, endpoint: Endpoint) -> None:
        self.asked.append(endpoint)
        self.waiting.set()
        await self.opened.wait()


# --- loyalty --------------------------------------------------------------------------------


def test_coalescer_has_the_executors_interface(harness: Harness) -> None:
    api: CapillaryApi = Coalescer(harness.client, linger_seconds=0)
    assert api is not None


async def test_150_customers_revoked_concurrently_make_two_requests_each_gets_its_own(
    harness: Harness,
) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    results = await _all(
        *(coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(1000 + n, n)]) for n in range(150))
    )

    bodies = harness.fake.bodies(LOYALTY_REVOKE)
    assert [len(b["customers"]) for b in bodies] == [100, 50]
    assert [c["identifierValue"] for b in bodies for c in b["customers"]] == [
        str(1000 + n) for n in range(150)
    ]
    for n, own in enumerate(results):
        assert [(r.item, r.result_class) for r in own] == [(f"loyalty_earn:{n}", ResultClass.DONE)]
        assert own[0].detail["entity_id"] == str(1000 + n)

    # Exactly what the client alone would have answered that caller, call details aside.
    alone = _harness()
    alone.fake.script(LOYALTY_REVOKE, _echo_loyalty)
    direct = await alone.client.revoke_loyalty_earns(PROMO, "id", [_customer(1149, 149)])
    assert _shared(results[149]) == _shared(direct)
    await alone.client.aclose()


async def test_same_customer_from_two_callers_goes_in_two_requests_first_callers_first(
    harness: Harness,
) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    first, second = await _all(
        coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(42, 1)]),
        coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(42, 2), _customer(43, 3)]),
    )
    sent = [
        [(c["identifierValue"], c["earnIds"]) for c in b["customers"]]
        for b in harness.fake.bodies(LOYALTY_REVOKE)
    ]
    # 43 rides with the first request: only the repeated customer waits for the second.
    assert sent == [[("42", [1]), ("43", [3])], [("42", [2])]]
    assert [r.item for r in first] == ["loyalty_earn:1"]
    assert [r.item for r in second] == ["loyalty_earn:2", "loyalty_earn:3"]
    assert first[0].request_ids != second[0].request_ids


async def test_one_customers_refusal_reaches_only_its_caller(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    refused, before, after = await _all(
        coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(int(REFUSED_CUSTOMER), 5)]),
        coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(41, 4)]),
        coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(43, 6)]),
    )
    assert len(harness.fake.calls(LOYALTY_REVOKE)) == 1
    assert [(r.result_class, r.code) for r in refused] == [(ResultClass.GONE, 8903)]
    assert [r.result_class for r in before + after] == [ResultClass.DONE, ResultClass.DONE]
    assert before[0].detail["entity_id"] == "41"
    assert after[0].detail["entity_id"] == "43"


async def test_unsendable_customer_is_answered_without_joining_a_batch(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    [no_source] = await coalescer.revoke_loyalty_earns(
        PROMO, "id", [LoyaltyCustomerEarns(identifier_value="7", source=" ", earn_ids=[1])]
    )
    [no_earns] = await coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(8)])
    assert harness.fake.calls(LOYALTY_REVOKE) == []
    assert no_source.result_class is ResultClass.REQUEST_ERROR
    assert "registration source" in no_source.message
    assert no_earns.item == f"loyalty_earns_none:{PROMO.label()}/8"


async def test_batch_given_up_after_503s_fails_only_its_callers(harness: Harness) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["promotionDetails"]["promotionId"] == 202779:
            return reply(503)
        return _echo_loyalty(request)

    harness.fake.script(LOYALTY_REVOKE, answer)
    coalescer = Coalescer(harness.client, linger_seconds=0)
    down = [coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(n, n)]) for n in (1, 2)]
    up = [coalescer.revoke_loyalty_earns(OTHER_PROMO, "id", [_customer(n, n)]) for n in (3, 4)]
    results = await _all(*down, *up)

    assert [r.result_class for own in results[:2] for r in own] == [ResultClass.UNAVAILABLE] * 2
    assert [r.result_class for own in results[2:] for r in own] == [ResultClass.DONE] * 2
    by_promotion = [
        str(b["promotionDetails"]["promotionId"]) for b in harness.fake.bodies(LOYALTY_REVOKE)
    ]
    # Three attempts of the one failing request, one request for the other promotion.
    assert sorted(by_promotion) == ["202779"] * 3 + ["202780"]


async def test_enrol_and_earn_of_several_callers_share_a_request(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    customers = [LoyaltyCustomer(identifier_value=str(n), source="INSTORE") for n in (5, 6)]
    enrolled = await _all(*(coalescer.enrol(PROMO, "id", [c]) for c in customers))
    issued = await _all(*(coalescer.issue_earn(PROMO, "id", [c]) for c in customers))
    bodies = harness.fake.bodies(LOYALTY_ENROL)
    assert [(b["bulkAction"], len(b["customers"])) for b in bodies] == [("ENROL", 2), ("EARN", 2)]
    assert [r.item for own in enrolled for r in own] == [
        f"enrolment:{PROMO.label()}/5",
        f"enrolment:{PROMO.label()}/6",
    ]
    assert [r.detail["earned_id"] for own in issued for r in own] == ["88", "88"]


async def test_attribution_splits_batches_only_when_it_is_sent() -> None:
    till = Attribution(entity_type=AttributionEntityType.TILL, entity_id="T1")
    store = Attribution(entity_type=AttributionEntityType.STORE, entity_id="S1")
    sent_counts = []
    for config in (basic_config(rate_limits=FAST), oauth_config(rate_limits=FAST)):
        fake = FakeCapillary()
        fake.script(LOYALTY_REVOKE, _echo_loyalty)
        token = {"data": {"accessToken": "tok", "ttlSeconds": 3600}, "errors": None}
        fake.script(TOKEN_PATH, reply(200, token))
        h = make_harness(fake, config=config)
        coalescer = Coalescer(h.client, linger_seconds=0)
        await _all(
            coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(1, 1)], till),
            coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(2, 2)], store),
        )
        sent_counts.append(len(fake.calls(LOYALTY_REVOKE)))
        await h.client.aclose()
    assert sent_counts == [1, 2]


# --- the rate permit and the linger ---------------------------------------------------------


async def _joined(calls: list[Coroutine[Any, Any, T]]) -> list[asyncio.Task[T]]:
    """Start the calls as tasks; return once every one has joined its batch.

    A call joins synchronously, before its first await: once the last task has begun its
    call and yielded, every call has joined.
    """
    begun = asyncio.Event()
    count = 0

    async def run(call: Coroutine[Any, Any, T]) -> T:
        nonlocal count
        count += 1
        if count == len(calls):
            begun.set()
        return await call

    tasks = [asyncio.create_task(run(call)) for call in calls]
    await begun.wait()
    return tasks


async def test_callers_arriving_while_the_permit_is_held_join_the_waiting_batch(
    harness: Harness,
) -> None:
    gate = Gate()
    coalescer = Coalescer(harness.client, linger_seconds=0, admit=gate.admit)
    first = asyncio.create_task(coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(0, 0)]))
    await gate.waiting.wait()
    later = await _joined(
        [coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(n, n)]) for n in range(1, 30)]
    )
    assert harness.fake.calls(LOYALTY_REVOKE) == []

    gate.opened.set()
    results = await _all(first, *later)

    [body] = harness.fake.bodies(LOYALTY_REVOKE)
    assert len(body["customers"]) == 30
    assert gate.asked == [Endpoint.LOYALTY_REVOKE]
    assert [r.item for own in results for r in own] == [f"loyalty_earn:{n}" for n in range(30)]


async def test_a_batch_takes_its_permit_so_the_request_does_not_take_another() -> None:
    fake = FakeCapillary()
    fake.script(LOYALTY_REVOKE, _echo_loyalty)
    # A limit of one a minute: a second permit would hold the request back for a minute.
    h = make_harness(fake, config=basic_config(rate_limits={"loyalty_revoke": 1}))
    coalescer = Coalescer(h.client, linger_seconds=0)
    [result] = await coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(1, 1)])
    assert result.result_class is ResultClass.DONE
    assert not h.client.limiter(Endpoint.LOYALTY_REVOKE).has_capacity()
    await h.client.aclose()


async def test_callers_arriving_during_the_linger_join_the_batch(harness: Harness) -> None:
    lingering = asyncio.Event()
    linger_over = asyncio.Event()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        lingering.set()
        await linger_over.wait()

    coalescer = Coalescer(harness.client, linger_seconds=0.005, clock=harness.clock, sleep=sleep)
    first = asyncio.create_task(coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(1, 1)]))
    await lingering.wait()
    [second] = await _joined([coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(2, 2)])])
    assert harness.fake.calls(LOYALTY_REVOKE) == []
    linger_over.set()
    await _all(first, second)
    assert [len(b["customers"]) for b in harness.fake.bodies(LOYALTY_REVOKE)] == [2]
    assert waits == [0.005]


async def test_caller_cancelled_while_waiting_leaves_the_batch_to_the_others(
    harness: Harness,
) -> None:
    gate = Gate()
    coalescer = Coalescer(harness.client, linger_seconds=0, admit=gate.admit)
    gone = asyncio.create_task(coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(1, 1)]))
    await gate.waiting.wait()
    [staying] = await _joined([coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(2, 2)])])
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    gate.opened.set()
    [result] = await staying
    assert result.result_class is ResultClass.DONE
    [body] = harness.fake.bodies(LOYALTY_REVOKE)
    assert [c["identifierValue"] for c in body["customers"]] == ["2"]


async def test_caller_cancelled_while_its_request_is_in_flight_leaves_the_others_answers() -> None:
    fake = FakeCapillary()
    in_flight = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        in_flight.set()
        await release.wait()
        return _echo_loyalty(request)

    fake.script(LOYALTY_REVOKE, slow)
    h = _harness(fake)
    coalescer = Coalescer(h.client, linger_seconds=0)
    gone = asyncio.create_task(coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(1, 1)]))
    staying = asyncio.create_task(coalescer.revoke_loyalty_earns(PROMO, "id", [_customer(2, 2)]))
    await in_flight.wait()
    gone.cancel()
    release.set()
    [result] = await staying
    assert result.result_class is ResultClass.DONE
    assert gone.cancelled()
    assert len(fake.calls(LOYALTY_REVOKE)) == 1
    await h.client.aclose()


# --- coupons --------------------------------------------------------------------------------


async def test_codes_of_a_series_free_of_generic_codes_from_60_callers_go_50_then_10(
    harness: Harness,
) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    results = await _all(
        *(
            coalescer.revoke_coupons_by_codes([f"C{n}"], SERIES, no_generic_code=True)
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
    await _all(
        coalescer.revoke_coupons_by_codes(["ABC", "X1"], SERIES, no_generic_code=True),
        coalescer.revoke_coupons_by_codes(["abc"], SERIES, no_generic_code=True),
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
    toms, hucks, toms_again = await _all(
        coalescer.revoke_coupons_by_codes(["T1", "T2"], SERIES, customer=tom),
        coalescer.revoke_coupons_by_codes(["H1"], SERIES, customer=huck),
        coalescer.revoke_coupons_by_codes(["T3"], SERIES, customer=CouponCustomer(id="555567088")),
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
    await _all(
        coalescer.revoke_coupons_by_codes(["A1", "A2"], SERIES),
        coalescer.revoke_coupons_by_codes(["B1"], SERIES),
    )
    bodies = harness.fake.bodies(COUPON)
    assert sorted(code for b in bodies for code in b["couponCodes"]) == ["A1", "A2", "B1"]
    assert all(len(b["couponCodes"]) == 1 and "customer" not in b for b in bodies)


async def test_generic_series_and_no_series_codes_go_one_per_request(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    customer = CouponCustomer(id="555")
    await _all(
        coalescer.revoke_coupons_by_codes(["G1", "G2"], 415500, generic=True, customer=customer),
        coalescer.revoke_coupons_by_codes(["G3"], 415500, generic=True, customer=customer),
        coalescer.revoke_coupons_by_codes(["N1"], None),
        coalescer.revoke_coupons_by_codes(["N2"], None),
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
    h = _harness(fake)
    coalescer = Coalescer(h.client, linger_seconds=0)
    first, second = await _all(
        coalescer.revoke_coupons_by_codes(["A1", ""], SERIES, no_generic_code=True),
        coalescer.revoke_coupons_by_codes(["B1"], SERIES, no_generic_code=True),
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
    first, second, other_customer = await _all(
        coalescer.revoke_cart_earns(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[:400])]),
        coalescer.revoke_cart_earns(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[400:])]),
        coalescer.revoke_cart_earns(6, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[:1])]),
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
    results = await _all(
        coalescer.revoke_cart_earns(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[:600])]),
        coalescer.revoke_cart_earns(5, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=ids[600:])]),
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
        lambda: coalescer.revoke_coupons_by_customer(CouponCustomer(id="1"), None),
        lambda: coalescer.revoke_coupons_by_customer(CouponCustomer(id="2"), None),
        lambda: coalescer.deactivate_promotion(CART_PROMO, 1, None),
        lambda: coalescer.deactivate_promotion(CART_PROMO, 2, None),
    ]
    await _all(*(call() for call in calls))
    assert len(harness.fake.calls(COUPON)) == 2
    assert len(harness.fake.calls(deactivate)) == 2
