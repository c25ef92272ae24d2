"""The coalescer's tests' Capillary: the real client on a mock transport that echoes.

Every request is answered as if everything asked were done (but ``REFUSED_CUSTOMER``'s
loyalty earns), item by item, so a test reads its callers' results and counts requests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

import httpx

from service.capillary.results import ItemResult
from tests.unit.capillary.helpers import (
    CART,
    COUPON,
    LOYALTY_ENROL,
    LOYALTY_REVOKE,
    FakeCapillary,
    Harness,
    basic_config,
    loyalty_error,
    make_harness,
    reply,
)

FAST = {name: 6000 for name in ("loyalty_revoke", "loyalty_enrol", "cart_revoke", "coupon_revoke")}
REFUSED_CUSTOMER = "9999"


def echo_loyalty(request: httpx.Request) -> httpx.Response:
    """Every customer's earns revoked, except ``REFUSED_CUSTOMER``'s (8903), by position."""
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


def echo_coupons(request: httpx.Request) -> httpx.Response:
    """Every code sent revoked, nothing else."""
    codes = json.loads(request.content).get("couponCodes", [])
    revoked = [{"couponId": 1, "couponCode": c, "issuedToUserId": 7} for c in codes]
    entity = {"revokedCoupons": revoked, "failedToRevoke": []}
    return reply(200, {"entity": entity, "warnings": [], "errors": [], "success": True})


def echo_cart(request: httpx.Request) -> httpx.Response:
    """Every earn sent revoked."""
    body = json.loads(request.content)
    details = [
        {"promotionId": d["promotionId"], "revokedEarnIds": d["earnIds"], "status": "SUCCESS"}
        for d in body["earnRevokeDetails"]
    ]
    data = {"customerId": body["customerId"], "revokedDetails": details}
    return reply(200, {"data": data, "errors": []})


def fast_harness(fake: FakeCapillary | None = None, **config: Any) -> Harness:
    """A client on ``fake`` whose rate limits never hold a test back."""
    config.setdefault("rate_limits", FAST)
    return make_harness(fake, config=basic_config(**config))


def echoing_harness() -> Harness:
    """A fast client on a fake where every endpoint echoes."""
    h = fast_harness()
    h.fake.script(LOYALTY_REVOKE, echo_loyalty)
    h.fake.script(LOYALTY_ENROL, echo_loyalty)
    h.fake.script(COUPON, echo_coupons)
    h.fake.script(CART, echo_cart)
    return h


async def gather(*calls: Awaitable[list[ItemResult]]) -> list[list[ItemResult]]:
    """Every caller's results, the calls made at once."""
    return list(await asyncio.gather(*calls))
