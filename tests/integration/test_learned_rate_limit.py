"""429s teach the limiter: a brand whose real limit is below the configured one.

Issue 23's case: 200 cart returns, Capillary grants 120 requests a minute, the service is
configured for 300. Played ten times faster: the sandbox counts 120 requests per 6 s
window and the client is configured for 3,000 a minute (300 per 6 s), so the ratio, the
window's size in requests and the number of calls are those of the case, in about 10 s
instead of 100. The measure is how many requests Capillary had to refuse (each counts
against the brand's quota), never the time taken.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from capillary_sandbox import Sandbox, SandboxConfig
from capillary_sandbox.state import CartEarn, CartPromotion, Customer, SandboxSeed
from service.capillary import CapillaryClient, CapillaryConfig, CartEarnsRef, ResultClass
from service.capillary.config import CapillaryRateLimits
from service.capillary.requests import CartRevoke
from service.observe.metrics import Metrics

SPEED_UP = 10
WINDOW_SECONDS = 60.0 / SPEED_UP
BRAND_LIMIT = 120
CONFIGURED_PER_MINUTE = 300 * SPEED_UP
RETURNS = 200
MOST_REFUSED = 20
PROMOTION = "69117663b1cfc114606fd7fb"
FIRST_CUSTOMER = 700_000_000


def _earn_id(n: int) -> str:
    return f"{n:024x}"


def _seed() -> SandboxSeed:
    customers = [Customer(id=FIRST_CUSTOMER + n) for n in range(RETURNS)]
    return SandboxSeed(
        customers=customers,
        cart_promotions=[CartPromotion(id=PROMOTION, mode="DISCOUNT")],
        cart_earns=[
            CartEarn(id=_earn_id(n), promotion_id=PROMOTION, customer_id=c.id)
            for n, c in enumerate(customers)
        ],
    )


@pytest.fixture
async def limited_sandbox() -> AsyncIterator[Sandbox]:
    config = SandboxConfig(
        port=0,
        rate_limit_per_minute={"cart_revoke_earn": BRAND_LIMIT},
        rate_limit_window_seconds=WINDOW_SECONDS,
    )
    async with Sandbox(config, seed=_seed()) as running:
        yield running


async def test_cart_returns_over_the_brand_limit_draw_few_429s_and_none_fails(
    limited_sandbox: Sandbox,
) -> None:
    url = limited_sandbox.base_url
    config = CapillaryConfig(
        loyalty_base_url=url,
        gateway_base_url=url,
        oauth_base_url=url,
        username="demo",
        password="demo",
        rate_limits=CapillaryRateLimits(cart_revoke=CONFIGURED_PER_MINUTE),
    )
    metrics = Metrics()
    async with CapillaryClient(config, metrics=metrics) as client:
        answers = await asyncio.gather(
            *(
                client.revoke_cart_earns(
                    CartRevoke(
                        FIRST_CUSTOMER + n,
                        [CartEarnsRef(promotion_id=PROMOTION, earn_ids=[_earn_id(n)])],
                    )
                )
                for n in range(RETURNS)
            )
        )

    statuses = Counter(
        call.status for call in limited_sandbox.calls if call.endpoint == "cart_revoke_earn"
    )
    refused = statuses[429]
    print(f"\n{RETURNS} cart returns: {refused} answered 429, {dict(statuses)}")
    assert refused <= MOST_REFUSED, statuses
    assert [r.result_class for own in answers for r in own] == [ResultClass.DONE] * RETURNS
    assert statuses[200] == RETURNS
    # Every benefit went once, and the client counted what the sandbox refused.
    assert sorted(limited_sandbox.state.ledger.revoked.values()) == [1] * RETURNS
    throttled = metrics.registry.get_sample_value(
        "return_handler_capillary_throttled_total", {"endpoint": "cart_revoke"}
    )
    assert throttled == refused
