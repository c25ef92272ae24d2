"""The real client against the real sandbox: a 503 storm, real retries, one revoke each."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from capillary_sandbox import Sandbox, SandboxConfig, demo_seed
from capillary_sandbox.state import Customer, LoyaltyEarn
from service.capillary import (
    CapillaryClient,
    CapillaryConfig,
    CartEarnsRef,
    CouponCustomer,
    LoyaltyAction,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
    ResultClass,
    RetryPolicy,
)
from service.capillary.coalesce import Coalescer
from service.capillary.requests import CartRevoke, CouponCodesRevoke, Deactivation, LoyaltyBulk
from service.capillary.results import ItemResult
from service.outcome import ActionStatus
from service.pipeline.execute import item_status

STORM = {"revoke_enrol_and_earn": 2, "cart_revoke_earn": 3, "coupon_revoke": 2, "deactivate": 1}
LOYALTY_PROMO = LoyaltyPromotionRef(program_id=2714, promotion_id=202779)
TOM = "555567088"
POLLY = 566881933
CART_PROMO = "69117663b1cfc114606fd7fb"
CART_EARN = "6911eaf1f57b486147effac0"
COUPONS = ["3138309782", "3636820421"]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0), seed=demo_seed()) as running:
        yield running


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[CapillaryClient]:
    url = sandbox.base_url
    config = CapillaryConfig(
        loyalty_base_url=url,
        gateway_base_url=url,
        oauth_base_url=url,
        username="demo",
        password="demo",
    )
    policy = RetryPolicy(
        attempts=5, total_timeout=10.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.01
    )
    async with CapillaryClient(config, retry_policy=policy) as capillary:
        yield capillary


async def _revoke_everything(client: CapillaryClient) -> list[ItemResult]:
    customer = LoyaltyCustomerEarns(identifier_value=TOM, source="INSTORE", earn_ids=[974])
    return [
        *await client.loyalty(
            LoyaltyBulk(LoyaltyAction.REVOKE_EARN, LOYALTY_PROMO, "id"), [customer]
        ),
        *await client.revoke_cart_earns(
            CartRevoke(POLLY, [CartEarnsRef(promotion_id=CART_PROMO, earn_ids=[CART_EARN])])
        ),
        # The demo's 415446 holds no generic code: declared so, its codes share one call.
        *await client.revoke_coupons_by_codes(
            CouponCodesRevoke(COUPONS, series_id=415446, no_generic_code=True)
        ),
        *await client.deactivate_promotion(Deactivation(CART_PROMO, 555567090, None)),
    ]


async def test_client_through_503_storm_revokes_each_benefit_exactly_once(
    sandbox: Sandbox, client: CapillaryClient
) -> None:
    for endpoint, count in STORM.items():
        sandbox.faults.fail_next(endpoint, "error", count, status=503)

    results = await _revoke_everything(client)

    assert [(r.item, r.result_class) for r in results] == [
        ("loyalty_earn:974", ResultClass.DONE),
        (f"cart_earn:{CART_EARN}", ResultClass.DONE),
        (f"coupon:{COUPONS[0]}", ResultClass.DONE),
        (f"coupon:{COUPONS[1]}", ResultClass.DONE),
        (f"deactivation:{CART_PROMO}/555567090", ResultClass.DONE),
    ]
    assert [r.attempts for r in results] == [3, 4, 3, 3, 2]
    assert all(len(r.request_ids) == r.attempts for r in results)

    calls = sandbox.calls
    faulted = Counter(c.endpoint for c in calls if c.fault == "error")
    processed = Counter(c.endpoint for c in calls if c.fault is None and c.status == 200)
    assert faulted == Counter(STORM)
    assert processed == Counter(dict.fromkeys(STORM, 1)), "one processed call per endpoint"

    state = sandbox.state.snapshot()
    assert {e.earn_id for e in state.loyalty_earns if e.revoked} == {974}
    assert {e.id for e in state.cart_earns if e.revoked} == {CART_EARN}
    assert {c.code for c in state.coupons if c.revoked} == set(COUPONS)
    assert [(d.promotion_id, d.customer_id) for d in state.deactivations] == [
        (CART_PROMO, 555567090)
    ]


async def test_client_replay_after_storm_answers_gone_and_changes_nothing(
    sandbox: Sandbox, client: CapillaryClient
) -> None:
    await _revoke_everything(client)
    before = sandbox.state.snapshot()

    replay = await _revoke_everything(client)

    # "Invalid or already revoked": the executor reads it as already revoked on a repeat.
    assert [r.result_class for r in replay[:4]] == [ResultClass.GONE] * 4
    assert {item_status(r, gives_back=False, tried_before=True) for r in replay[:4]} == {
        ActionStatus.ALREADY_REVOKED
    }
    # Ending a whole participation again answers success again.
    assert replay[4].result_class is ResultClass.DONE
    assert sandbox.state.snapshot() == before


async def test_generic_series_code_revokes_only_its_customers_coupon(
    sandbox: Sandbox, client: CapillaryClient
) -> None:
    [result] = await client.revoke_coupons_by_codes(
        CouponCodesRevoke(
            ["sale-hf-0001"], 415500, generic=True, customer=CouponCustomer(id="555567089")
        )
    )
    assert result.result_class is ResultClass.DONE
    revoked = {c.code for c in sandbox.state.snapshot().coupons if c.revoked}
    # The series' other coupons (the generic SALE20 among them) stay with their customers.
    assert revoked == {"sale-hf-0001"}


async def test_150_concurrent_loyalty_revokes_through_the_coalescer_make_two_calls(
    sandbox: Sandbox, client: CapillaryClient
) -> None:
    seed = sandbox.state.snapshot()
    customers = [700_000_000 + n for n in range(150)]
    sandbox.load_seed(
        seed.model_copy(
            update={
                "customers": [*seed.customers, *(Customer(id=c) for c in customers)],
                "loyalty_earns": [
                    *seed.loyalty_earns,
                    *(
                        LoyaltyEarn(earn_id=60_000 + n, promotion_id=202779, customer_id=c)
                        for n, c in enumerate(customers)
                    ),
                ],
            }
        )
    )
    sandbox.clear_calls()
    coalescer = Coalescer(client, linger_seconds=0.005)

    results = await asyncio.gather(
        *(
            coalescer.loyalty(
                LoyaltyBulk(LoyaltyAction.REVOKE_EARN, LOYALTY_PROMO, "id"),
                [
                    LoyaltyCustomerEarns(
                        identifier_value=str(c), source="INSTORE", earn_ids=[60_000 + n]
                    )
                ],
            )
            for n, c in enumerate(customers)
        )
    )

    calls = [c for c in sandbox.calls if c.endpoint == "revoke_enrol_and_earn"]
    assert [len(c.body["customers"]) for c in calls] == [100, 50]
    assert all(c.status == 200 for c in calls)
    for n, own in enumerate(results):
        assert [(r.item, r.result_class) for r in own] == [
            (f"loyalty_earn:{60_000 + n}", ResultClass.DONE)
        ]
    revoked = {e.earn_id for e in sandbox.state.snapshot().loyalty_earns if e.revoked}
    assert revoked >= {60_000 + n for n in range(150)}
