"""Malformed requests, endpoint by endpoint: refused as the pages say, and nothing changes.

Where the pages document the answer (coupon 756, the cart page's 400 "Check required
parameters", deactivate's 400 "GLOBAL.INVALID_INPUT") the sandbox gives it; where they say
nothing it refuses the whole request (see the choices in ``capillary_sandbox/endpoints.py``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from capillary_sandbox import Sandbox

LOYALTY_REVOKE = "/v2/promotion/bulk/revokeEnrolAndEarn"
LOYALTY_ENROL = "/v2/promotion/bulk/enrolAndEarn"
CART = "/api_gateway/v1/promotions/revokeEarn"
COUPON = "/v2/coupon/revoke"
DISCOUNT = "69117663b1cfc114606fd7fb"
POLLY = 566881933
TOM = 555567088
SERIES = 415446


def _codes(body: dict[str, Any]) -> list[int]:
    return [int(e["code"]) for e in body.get("errors") or []]


async def _unchanged(
    sandbox: Sandbox, client: httpx.AsyncClient, path: str, **request: Any
) -> httpx.Response:
    """Post, and check that the refused request changed nothing."""
    before = sandbox.state.snapshot()
    response = await client.post(path, **request)
    assert sandbox.state.snapshot() == before
    assert sandbox.ledger().revoked == {}
    return response


async def test_empty_object_to_cart_revoke_earn_is_refused_400(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """The old probe's request: the page's 400 for missing required parameters."""
    response = await _unchanged(sandbox, client, CART, json={})

    assert response.status_code == 400
    body = response.json()
    assert body["data"] is None
    assert _codes(body) == [400]
    assert body["errors"][0]["message"].startswith("Invalid request. Check required parameters.")


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b"null"], ids=["empty", "not-json", "array", "null"]
)
async def test_cart_body_that_is_not_an_object_is_refused_400(
    sandbox: Sandbox, client: httpx.AsyncClient, raw: bytes
) -> None:
    response = await _unchanged(
        sandbox, client, CART, content=raw, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert _codes(response.json()) == [400]


async def test_empty_object_to_coupon_revoke_answers_the_documented_756(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    """The probe's request: a revoke naming nothing, answered as the page's example."""
    response = await _unchanged(sandbox, client, COUPON, json={})

    assert response.status_code == 400
    assert response.json() == {
        "warnings": [],
        "errors": [
            {"status": False, "code": 756, "message": "CouponCode/s or customer info is mandatory"}
        ],
        "success": False,
    }


@pytest.mark.parametrize("series", ["415446", 415446.0, True, ""], ids=repr)
async def test_coupon_series_id_that_is_not_an_integer_is_refused_400(
    sandbox: Sandbox, client: httpx.AsyncClient, series: object
) -> None:
    body = {"couponSeriesId": series, "couponCodes": ["3138309782", "3636820421"]}
    response = await _unchanged(sandbox, client, COUPON, json=body)

    assert response.status_code == 400
    assert _codes(response.json()) == [400]


async def test_empty_coupon_codes_beside_a_customer_is_refused_not_read_as_by_customer(
    sandbox: Sandbox, client: httpx.AsyncClient
) -> None:
    body = {"couponSeriesId": SERIES, "couponCodes": [], "customer": {"id": str(TOM)}}
    response = await _unchanged(sandbox, client, COUPON, json=body)

    assert response.status_code == 400
    assert _codes(response.json()) == [400]


@pytest.mark.parametrize("path", [LOYALTY_REVOKE, LOYALTY_ENROL])
async def test_empty_object_to_loyalty_bulk_is_refused_whole(
    sandbox: Sandbox, client: httpx.AsyncClient, path: str
) -> None:
    response = await _unchanged(sandbox, client, path, json={})

    assert response.status_code == 400
    body = response.json()
    assert body["response"] == []
    assert _codes(body) == [400]


@pytest.mark.parametrize(
    "request_body",
    [{"json": {}}, {"json": {"customerId": POLLY}}, {"content": b"x"}],
    ids=["empty-object", "object", "not-json"],
)
async def test_deactivate_with_a_body_is_refused_400(
    sandbox: Sandbox, client: httpx.AsyncClient, request_body: dict[str, Any]
) -> None:
    """The page's request has no body (``--data ''``); its parameters go in the URL."""
    url = f"/api_gateway/v1/promotions/{DISCOUNT}/deactivate?customerId={POLLY}"
    response = await _unchanged(sandbox, client, url, **request_body)

    assert response.status_code == 400
    assert response.json()["data"] is False
    assert _codes(response.json()) == [400]
    assert sandbox.state.snapshot().deactivations == []
