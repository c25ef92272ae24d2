"""The coalescer: the real client on a mock transport, requests counted at the transport.

Concurrency is ordered with gates (asyncio events) in the transport or in the rate
permit, never with sleeps; ``linger_seconds=0`` wherever the linger is not the point.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from service.capillary.api import CapillaryApi
from service.capillary.coalesce import Coalescer
from service.capillary.codes import Endpoint
from service.capillary.models import (
    Attribution,
    AttributionEntityType,
    LoyaltyAction,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.requests import LoyaltyBulk
from service.capillary.results import ItemResult, ResultClass
from tests.unit.capillary.coalescing import (
    FAST,
    REFUSED_CUSTOMER,
    echo_loyalty,
    echoing_harness,
    fast_harness,
    gather,
)
from tests.unit.capillary.helpers import (
    LOYALTY_ENROL,
    LOYALTY_REVOKE,
    TOKEN_PATH,
    FakeCapillary,
    Harness,
    basic_config,
    make_harness,
    oauth_config,
    reply,
)

PROMO = LoyaltyPromotionRef(program_id=2714, promotion_id=202779)
OTHER_PROMO = LoyaltyPromotionRef(program_id=2714, promotion_id=202780)

T = TypeVar("T")


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = echoing_harness()
    yield h
    await h.client.aclose()


def _customer(n: int, *earn_ids: int) -> LoyaltyCustomerEarns:
    return LoyaltyCustomerEarns(identifier_value=str(n), source="INSTORE", earn_ids=list(earn_ids))


def _revoke(
    api: CapillaryApi,
    *customers: LoyaltyCustomerEarns,
    promotion: LoyaltyPromotionRef = PROMO,
    attribution: Attribution | None = None,
) -> Coroutine[Any, Any, list[ItemResult]]:
    """REVOKE_EARN of ``customers`` (named by id) in ``promotion``."""
    return api.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, promotion, "id", attribution), list(customers)
    )


def _shared(results: list[ItemResult]) -> list[dict[str, Any]]:
    """A caller's results without what describes the shared call."""
    return [r.model_dump(exclude={"request_ids", "attempts", "elapsed_ms"}) for r in results]


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
    results = await gather(*(_revoke(coalescer, _customer(1000 + n, n)) for n in range(150)))

    bodies = harness.fake.bodies(LOYALTY_REVOKE)
    assert [len(b["customers"]) for b in bodies] == [100, 50]
    assert [c["identifierValue"] for b in bodies for c in b["customers"]] == [
        str(1000 + n) for n in range(150)
    ]
    for n, own in enumerate(results):
        assert [(r.item, r.result_class) for r in own] == [(f"loyalty_earn:{n}", ResultClass.DONE)]
        assert own[0].detail["entity_id"] == str(1000 + n)

    # Exactly what the client alone would have answered that caller, call details aside.
    alone = fast_harness()
    alone.fake.script(LOYALTY_REVOKE, echo_loyalty)
    direct = await _revoke(alone.client, _customer(1149, 149))
    assert _shared(results[149]) == _shared(direct)
    await alone.client.aclose()


async def test_same_customer_from_two_callers_goes_in_two_requests_first_callers_first(
    harness: Harness,
) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    first, second = await gather(
        _revoke(coalescer, _customer(42, 1)),
        _revoke(coalescer, _customer(42, 2), _customer(43, 3)),
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
    refused, before, after = await gather(
        _revoke(coalescer, _customer(int(REFUSED_CUSTOMER), 5)),
        _revoke(coalescer, _customer(41, 4)),
        _revoke(coalescer, _customer(43, 6)),
    )
    assert len(harness.fake.calls(LOYALTY_REVOKE)) == 1
    assert [(r.result_class, r.code) for r in refused] == [(ResultClass.GONE, 8903)]
    assert [r.result_class for r in before + after] == [ResultClass.DONE, ResultClass.DONE]
    assert before[0].detail["entity_id"] == "41"
    assert after[0].detail["entity_id"] == "43"


async def test_unsendable_customer_is_answered_without_joining_a_batch(harness: Harness) -> None:
    coalescer = Coalescer(harness.client, linger_seconds=0)
    [no_source] = await _revoke(
        coalescer, LoyaltyCustomerEarns(identifier_value="7", source=" ", earn_ids=[1])
    )
    [no_earns] = await _revoke(coalescer, _customer(8))
    assert harness.fake.calls(LOYALTY_REVOKE) == []
    assert no_source.result_class is ResultClass.REQUEST_ERROR
    assert "registration source" in no_source.message
    assert no_earns.item == f"loyalty_earns_none:{PROMO.label()}/8"


async def test_batch_given_up_after_503s_fails_only_its_callers(harness: Harness) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["promotionDetails"]["promotionId"] == 202779:
            return reply(503)
        return echo_loyalty(request)

    harness.fake.script(LOYALTY_REVOKE, answer)
    coalescer = Coalescer(harness.client, linger_seconds=0)
    down = [_revoke(coalescer, _customer(n, n)) for n in (1, 2)]
    up = [_revoke(coalescer, _customer(n, n), promotion=OTHER_PROMO) for n in (3, 4)]
    results = await gather(*down, *up)

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
    enrolled = await gather(
        *(coalescer.loyalty(LoyaltyBulk(LoyaltyAction.ENROL, PROMO, "id"), [c]) for c in customers)
    )
    issued = await gather(
        *(coalescer.loyalty(LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"), [c]) for c in customers)
    )
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
        fake.script(LOYALTY_REVOKE, echo_loyalty)
        token = {"data": {"accessToken": "tok", "ttlSeconds": 3600}, "errors": None}
        fake.script(TOKEN_PATH, reply(200, token))
        h = make_harness(fake, config=config)
        coalescer = Coalescer(h.client, linger_seconds=0)
        await gather(
            _revoke(coalescer, _customer(1, 1), attribution=till),
            _revoke(coalescer, _customer(2, 2), attribution=store),
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
    first = asyncio.create_task(_revoke(coalescer, _customer(0, 0)))
    await gate.waiting.wait()
    later = await _joined([_revoke(coalescer, _customer(n, n)) for n in range(1, 30)])
    assert harness.fake.calls(LOYALTY_REVOKE) == []

    gate.opened.set()
    results = await gather(first, *later)

    [body] = harness.fake.bodies(LOYALTY_REVOKE)
    assert len(body["customers"]) == 30
    assert gate.asked == [Endpoint.LOYALTY_REVOKE]
    assert [r.item for own in results for r in own] == [f"loyalty_earn:{n}" for n in range(30)]


async def test_a_batch_takes_its_permit_so_the_request_does_not_take_another() -> None:
    fake = FakeCapillary()
    fake.script(LOYALTY_REVOKE, echo_loyalty)
    # A limit of one a minute: a second permit would hold the request back for a minute.
    h = make_harness(fake, config=basic_config(rate_limits={"loyalty_revoke": 1}))
    coalescer = Coalescer(h.client, linger_seconds=0)
    [result] = await _revoke(coalescer, _customer(1, 1))
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

    coalescer = Coalescer(harness.client, linger_seconds=0.005, sleep=sleep)
    first = asyncio.create_task(_revoke(coalescer, _customer(1, 1)))
    await lingering.wait()
    [second] = await _joined([_revoke(coalescer, _customer(2, 2))])
    assert harness.fake.calls(LOYALTY_REVOKE) == []
    linger_over.set()
    await gather(first, second)
    assert [len(b["customers"]) for b in harness.fake.bodies(LOYALTY_REVOKE)] == [2]
    assert waits == [0.005]


async def test_caller_cancelled_while_waiting_leaves_the_batch_to_the_others(
    harness: Harness,
) -> None:
    gate = Gate()
    coalescer = Coalescer(harness.client, linger_seconds=0, admit=gate.admit)
    gone = asyncio.create_task(_revoke(coalescer, _customer(1, 1)))
    await gate.waiting.wait()
    [staying] = await _joined([_revoke(coalescer, _customer(2, 2))])
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
        return echo_loyalty(request)

    fake.script(LOYALTY_REVOKE, slow)
    h = fast_harness(fake)
    coalescer = Coalescer(h.client, linger_seconds=0)
    gone = asyncio.create_task(_revoke(coalescer, _customer(1, 1)))
    staying = asyncio.create_task(_revoke(coalescer, _customer(2, 2)))
    await in_flight.wait()
    gone.cancel()
    release.set()
    [result] = await staying
    assert result.result_class is ResultClass.DONE
    assert gone.cancelled()
    assert len(fake.calls(LOYALTY_REVOKE)) == 1
    await h.client.aclose()
