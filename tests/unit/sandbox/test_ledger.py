"""The sandbox's ledger (GET /__admin/ledger): state transitions counted where they happen."""

from __future__ import annotations

from typing import Any

import httpx

from capillary_sandbox import Sandbox
from tests.unit.sandbox.helpers import huck, loyalty_body, tom

REVOKE_LOYALTY = "/v2/promotion/bulk/revokeEnrolAndEarn"
ENROL_LOYALTY = "/v2/promotion/bulk/enrolAndEarn"
REVOKE_CART = "/api_gateway/v1/promotions/revokeEarn"
COUPON = "/v2/coupon/revoke"
DISCOUNT = "69117663b1cfc114606fd7fb"
VOUCHER = "69058646b1cfc114606f7bbe"
POLLY = 566881933
HUCK = 555567089
BECKY = 555567090
REVIEW_PROMOTION = 202779


async def ledger(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/__admin/ledger")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_ledger_of_a_fresh_sandbox_is_empty(client: httpx.AsyncClient) -> None:
    assert await ledger(client) == {
        "revoked": {},
        "enrolments": [],
        "earns_issued": [],
        "revoked_more_than_once": 0,
        "earns_issued_more_than_once": 0,
        "deactivations": {},
        "deactivations_repeated": 0,
    }


async def test_loyalty_earns_and_enrolment_revoked_are_counted_once_each(
    client: httpx.AsyncClient,
) -> None:
    await client.post(REVOKE_LOYALTY, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[974, 975])]))
    await client.post(REVOKE_LOYALTY, json=loyalty_body("REVOKE_ENROL", [tom()]))
    repeat = await client.post(
        REVOKE_LOYALTY, json=loyalty_body("REVOKE_EARN", [tom(earnIds=[974, 975])])
    )

    assert repeat.json()["response"][0]["errors"][0]["code"] == 8903
    assert (await ledger(client))["revoked"] == {
        "loyalty_earn:974": 1,
        "loyalty_earn:975": 1,
        "loyalty_enrolment:847": 1,
    }


async def test_every_earn_issued_is_counted_per_promotion_and_customer(
    client: httpx.AsyncClient,
) -> None:
    # Huck is enrolled already: ENROL creates nothing, each EARN issues one more earn.
    await client.post(ENROL_LOYALTY, json=loyalty_body("ENROL", [huck()]))
    await client.post(ENROL_LOYALTY, json=loyalty_body("EARN", [huck()]))
    await client.post(ENROL_LOYALTY, json=loyalty_body("EARN", [huck()]))
    becky = {"identifierValue": str(BECKY), "source": "WEB_ENGAGE"}
    await client.post(ENROL_LOYALTY, json=loyalty_body("ENROL", [becky]))

    body = await ledger(client)

    assert body["earns_issued"] == [
        {"promotion_id": REVIEW_PROMOTION, "customer_id": HUCK, "count": 2}
    ]
    assert body["earns_issued_more_than_once"] == 1
    assert body["enrolments"] == [
        {"promotion_id": REVIEW_PROMOTION, "customer_id": BECKY, "count": 1}
    ]
    assert body["revoked"] == {}


async def test_cart_revokes_and_deactivations_count_only_what_changed(
    client: httpx.AsyncClient,
) -> None:
    await client.post(
        REVOKE_CART,
        json={
            "customerId": POLLY,
            "earnRevokeDetails": [
                {
                    "promotionId": DISCOUNT,
                    # ...ac1 is redeemed: refused (729), not counted.
                    "earnIds": ["6911eaf1f57b486147effac0", "6911eaf1f57b486147effac1"],
                }
            ],
        },
    )
    # Ends the participation; its one unredeemed earn is already revoked.
    await client.post(f"/api_gateway/v1/promotions/{DISCOUNT}/deactivate?customerId={POLLY}")
    await client.post(f"/api_gateway/v1/promotions/{DISCOUNT}/deactivate?customerId={POLLY}")
    await client.post(
        f"/api_gateway/v1/promotions/{VOUCHER}/deactivate"
        f"?customerId={POLLY}&earnId=68f869d94a314550c4b46047"
    )

    assert (await ledger(client))["revoked"] == {
        f"cart_participation:{DISCOUNT}/{POLLY}": 1,
        "cart_earn:68f869d94a314550c4b46047": 1,
        "cart_earn:6911eaf1f57b486147effac0": 1,
    }


async def test_a_deactivation_asked_again_once_done_is_counted_as_repeated(
    client: httpx.AsyncClient,
) -> None:
    participation = f"/api_gateway/v1/promotions/{DISCOUNT}/deactivate?customerId={POLLY}"
    voucher = (
        f"/api_gateway/v1/promotions/{VOUCHER}/deactivate"
        f"?customerId={POLLY}&earnId=68f869d94a314550c4b46047"
    )
    # The page has no "already deactivated" answer: the repeat of a participation is a 200
    # again, of an earn a 731; neither tells a client it repeated itself.
    assert (await client.post(participation)).status_code == 200
    assert (await client.post(participation)).status_code == 200
    assert (await client.post(voucher)).status_code == 200
    assert (await client.post(voucher)).json()["errors"][0]["code"] == 731

    found = await ledger(client)
    assert found["deactivations"] == {
        f"deactivation:{DISCOUNT}/{POLLY}": 2,
        f"deactivation:{VOUCHER}/{POLLY}/68f869d94a314550c4b46047": 2,
    }
    assert found["deactivations_repeated"] == 2


async def test_coupons_are_counted_by_coupon_id_and_a_repeat_adds_nothing(
    client: httpx.AsyncClient,
) -> None:
    body = {"couponCodes": ["3138309782", "3636820421"], "couponSeriesId": 415446}
    await client.post(COUPON, json=body)
    repeat = await client.post(COUPON, json=body)

    assert repeat.json()["entity"]["failedToRevoke"][0]["errorCode"] == 682
    assert (await ledger(client))["revoked"] == {"coupon:1239817475": 1, "coupon:1239817476": 1}


async def test_reset_starts_a_new_ledger(client: httpx.AsyncClient, sandbox: Sandbox) -> None:
    await client.post(COUPON, json={"couponCodes": ["3138309782"]})

    await client.post("/__admin/reset")

    assert (await ledger(client))["revoked"] == {}
    assert sandbox.ledger().revoked_more_than_once == 0


async def test_a_benefit_given_again_and_taken_again_counts_twice(
    client: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await client.post(COUPON, json={"couponCodes": ["3138309782"]})
    # No endpoint gives a coupon back; an operator does it in the state.
    sandbox.state.coupons_by_code["3138309782"][0].revoked = False
    await client.post(COUPON, json={"couponCodes": ["3138309782"]})

    body = await ledger(client)

    assert body["revoked"] == {"coupon:1239817475": 2}
    assert body["revoked_more_than_once"] == 1
