"""Coupon codes of different customers never share a call unless the policy says it is safe.

Issue 23, point 1: plan (the real rules and policy) -> executor -> coalescer -> the real
client -> the real sandbox, which revokes as the coupon page says: several codes with the id
of a series that holds a generic code take the whole series, customer named or not. Events
run concurrently, so the coalescer has the chance to merge them; whether it did is read at
the sandbox's request log and state.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from capillary_sandbox import Sandbox, SandboxConfig, demo_seed
from capillary_sandbox.state import Coupon
from service.capillary import CapillaryClient, CapillaryConfig
from service.capillary.coalesce import Coalescer
from service.events import ReturnEvent
from service.observe.metrics import Metrics
from service.outcome import ActionResult, ActionStatus
from service.pipeline.execute import Executor
from service.policy_file import load_policy
from service.rules.engine import plan
from service.rules.policy import Policy, parse_policy
from tests.factories import event

GENERIC_SERIES = 415500  # the demo's SALE20 series: Tom holds SALE20, Huck and Becky a code each
SERIES = 415446  # no generic code
TOM, HUCK, BECKY = 555567088, 555567089, 555567090
BEYOND = "return_handler_coupons_revoked_beyond_request_total"
NOW = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    seed = demo_seed()
    # Tom holds two more codes of the generic series, besides the generic SALE20.
    seed.coupons += [
        Coupon(id=1247326301, code="SALE-TS-0003", series_id=GENERIC_SERIES, customer_id=TOM),
        Coupon(id=1247326302, code="SALE-TS-0004", series_id=GENERIC_SERIES, customer_id=TOM),
    ]
    async with Sandbox(SandboxConfig(port=0), seed=seed) as running:
        yield running


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(sandbox: Sandbox, metrics: Metrics) -> AsyncIterator[CapillaryClient]:
    url = sandbox.base_url
    config = CapillaryConfig(
        loyalty_base_url=url,
        gateway_base_url=url,
        oauth_base_url=url,
        username="demo",
        password="demo",
    )
    async with CapillaryClient(config, metrics=metrics) as capillary:
        yield capillary


def _return(event_id: str, customer: int, series: int, *codes: str) -> ReturnEvent:
    return event(
        event_id=event_id,
        customer={"id": customer, "registration_source": "INSTORE"},
        earned={"coupons": [{"series_id": series, "codes": list(codes)}]},
    )


def _policy(*series: Mapping[str, Any]) -> Policy:
    return parse_policy({"version": "t", "coupon_series": list(series)}, "test")


async def _handle(
    client: CapillaryClient, policy: Policy, *events: ReturnEvent
) -> list[list[ActionResult]]:
    """The events' plans executed at the same time, through one coalescer."""
    coalescer = Coalescer(client, linger_seconds=0)
    executor = Executor(coalescer)
    try:
        return list(
            await asyncio.gather(*(executor.execute(e, plan(e, policy, NOW)) for e in events))
        )
    finally:
        await coalescer.aclose()


def _bodies(sandbox: Sandbox) -> list[Any]:
    return [c.body for c in sandbox.calls if c.endpoint == "coupon_revoke"]


def _revoked(sandbox: Sandbox) -> set[tuple[str, int | None]]:
    return {(c.code, c.customer_id) for c in sandbox.state.snapshot().coupons if c.revoked}


def _items(results: list[ActionResult]) -> list[tuple[str, ActionStatus, bool]]:
    return [(i.item, i.status, i.asked) for r in results for i in r.items]


async def test_two_customers_codes_of_an_undeclared_series_go_in_calls_of_their_own(
    sandbox: Sandbox, client: CapillaryClient, metrics: Metrics
) -> None:
    """The issue's case: merged, these two codes took the whole series, Tom's SALE20 too."""
    huck = _return("evt-huck", HUCK, GENERIC_SERIES, "sale-hf-0001")
    becky = _return("evt-becky", BECKY, GENERIC_SERIES, "sale-bt-0002")

    huck_results, becky_results = await _handle(client, load_policy(None), huck, becky)

    assert sorted(_bodies(sandbox), key=lambda body: body["couponCodes"]) == [
        {
            "couponSeriesId": GENERIC_SERIES,
            "couponCodes": ["sale-bt-0002"],
            "customer": {"id": str(BECKY)},
        },
        {
            "couponSeriesId": GENERIC_SERIES,
            "couponCodes": ["sale-hf-0001"],
            "customer": {"id": str(HUCK)},
        },
    ]
    assert _revoked(sandbox) == {("sale-hf-0001", HUCK), ("sale-bt-0002", BECKY)}
    assert _items(huck_results) == [("coupon:sale-hf-0001", ActionStatus.REVOKED, True)]
    assert _items(becky_results) == [("coupon:sale-bt-0002", ActionStatus.REVOKED, True)]
    assert metrics.registry.get_sample_value(BEYOND) == 0


async def test_one_customers_codes_of_an_undeclared_series_go_one_a_call_named(
    sandbox: Sandbox, client: CapillaryClient, metrics: Metrics
) -> None:
    """Several codes of a series that may hold a generic code: together they would take the
    whole series (the page does not say naming Tom bounds that), so one a call, Tom named,
    and his SALE20 and everyone else's coupons stay."""
    tom = _return("evt-tom", TOM, GENERIC_SERIES, "SALE-TS-0003", "SALE-TS-0004")
    huck = _return("evt-huck", HUCK, GENERIC_SERIES, "sale-hf-0001")

    tom_results, huck_results = await _handle(client, load_policy(None), tom, huck)

    toms = sorted(
        (b for b in _bodies(sandbox) if b["customer"] == {"id": str(TOM)}),
        key=lambda body: body["couponCodes"],
    )
    assert toms == [
        {
            "couponSeriesId": GENERIC_SERIES,
            "couponCodes": [code],
            "customer": {"id": str(TOM)},
        }
        for code in ("SALE-TS-0003", "SALE-TS-0004")
    ]
    assert _revoked(sandbox) == {
        ("SALE-TS-0003", TOM),
        ("SALE-TS-0004", TOM),
        ("sale-hf-0001", HUCK),
    }
    assert _items(tom_results) == [
        ("coupon:SALE-TS-0003", ActionStatus.REVOKED, True),
        ("coupon:SALE-TS-0004", ActionStatus.REVOKED, True),
    ]
    assert _items(huck_results) == [("coupon:sale-hf-0001", ActionStatus.REVOKED, True)]
    assert metrics.registry.get_sample_value(BEYOND) == 0


async def test_codes_of_a_series_declared_free_of_generic_codes_share_one_call(
    sandbox: Sandbox, client: CapillaryClient, metrics: Metrics
) -> None:
    tom = _return("evt-tom", TOM, SERIES, "3138309782")
    huck = _return("evt-huck", HUCK, SERIES, "1017790881")
    policy = _policy({"series_id": SERIES, "contains_generic_code": False})

    tom_results, huck_results = await _handle(client, policy, tom, huck)

    assert _bodies(sandbox) == [
        {"couponSeriesId": SERIES, "couponCodes": ["3138309782", "1017790881"]}
    ]
    assert _items(tom_results) == [("coupon:3138309782", ActionStatus.REVOKED, True)]
    assert _items(huck_results) == [("coupon:1017790881", ActionStatus.REVOKED, True)]
    assert metrics.registry.get_sample_value(BEYOND) == 0


async def test_a_wrong_declaration_shows_in_both_outcomes_and_counts_once_per_coupon(
    sandbox: Sandbox, client: CapillaryClient, metrics: Metrics
) -> None:
    """Declared free of generic codes, the SALE20 series is revoked whole: the declaration
    was wrong, and every coupon nobody asked for is an item of each outcome and counted."""
    huck = _return("evt-huck", HUCK, GENERIC_SERIES, "sale-hf-0001")
    becky = _return("evt-becky", BECKY, GENERIC_SERIES, "sale-bt-0002")
    policy = _policy({"series_id": GENERIC_SERIES, "contains_generic_code": False})

    huck_results, becky_results = await _handle(client, policy, huck, becky)

    unasked = {("coupon:SALE20", ActionStatus.REVOKED, False)} | {
        (f"coupon:{code}", ActionStatus.REVOKED, False) for code in ("SALE-TS-0003", "SALE-TS-0004")
    }
    assert (
        set(_items(huck_results)) == {("coupon:sale-hf-0001", ActionStatus.REVOKED, True)} | unasked
    )
    assert (
        set(_items(becky_results))
        == {("coupon:sale-bt-0002", ActionStatus.REVOKED, True)} | unasked
    )
    assert metrics.registry.get_sample_value(BEYOND) == 3
