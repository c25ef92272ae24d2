"""Every documented code, through the client, lands in the class decided in codes.py."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from service.capillary.codes import CODES, Endpoint, classify
from service.capillary.models import (
    CartEarnsRef,
    LoyaltyAction,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.requests import CartRevoke, CouponCodesRevoke, Deactivation, LoyaltyBulk
from service.capillary.results import ItemResult, ResultClass
from tests.unit.capillary.helpers import (
    CART,
    COUPON,
    LOYALTY_ENROL,
    LOYALTY_REVOKE,
    OPEN_CART_ATTEMPTS,
    Harness,
    loyalty_error,
    make_harness,
    reply,
)

G, N, D, R, E, T = (
    ResultClass.GONE,
    ResultClass.NOT_FOUND,
    ResultClass.REDEEMED,
    ResultClass.REFUSED,
    ResultClass.REQUEST_ERROR,
    ResultClass.TRANSIENT,
)
_LOYALTY = {
    8892: R,
    8015: N,
    1101: E,
    8874: N,
    8899: R,
    8902: R,
    8881: E,
    8896: N,
    8901: E,
    11013: E,
}

# Written from the pages and the brief, independently of codes.py.
EXPECTED: dict[tuple[Endpoint, int], ResultClass] = {
    **{(Endpoint.LOYALTY_REVOKE, c): k for c, k in _LOYALTY.items()},
    (Endpoint.LOYALTY_REVOKE, 8903): G,
    # Not on the pages: the sandbox's codes for states the pages describe without a code
    # (REVOKE_ENROL while earns remain; deactivating a redeemed voucher). See codes.py.
    (Endpoint.LOYALTY_REVOKE, 8904): ResultClass.KEPT,
    (Endpoint.DEACTIVATE, 729): D,
    **{(Endpoint.LOYALTY_ENROL, c): k for c, k in _LOYALTY.items()},
    (Endpoint.CART_REVOKE, 400): E,
    (Endpoint.CART_REVOKE, 404): G,
    (Endpoint.CART_REVOKE, 729): D,
    (Endpoint.CART_REVOKE, 730): R,
    (Endpoint.CART_REVOKE, 731): G,
    (Endpoint.CART_REVOKE, 500): ResultClass.UNAVAILABLE,
    (Endpoint.DEACTIVATE, 400): E,
    (Endpoint.DEACTIVATE, 404): N,
    (Endpoint.DEACTIVATE, 707): R,
    (Endpoint.DEACTIVATE, 731): G,
    (Endpoint.DEACTIVATE, 736): E,
    (Endpoint.DEACTIVATE, 737): T,
    (Endpoint.DEACTIVATE, 500): ResultClass.UNAVAILABLE,
    (Endpoint.COUPON_REVOKE, 404): N,
    (Endpoint.COUPON_REVOKE, 405): D,
    (Endpoint.COUPON_REVOKE, 682): G,
    (Endpoint.COUPON_REVOKE, 108): R,
    (Endpoint.COUPON_REVOKE, 712): R,
    (Endpoint.COUPON_REVOKE, 756): E,
}

PROMO = LoyaltyPromotionRef(program_id=2714, promotion_id=202779)


def test_code_table_documents_exactly_the_codes_of_the_pages() -> None:
    assert set(CODES) == set(EXPECTED)


def test_code_table_gives_every_non_done_class_a_meaning() -> None:
    assert all(info.meaning for info in CODES.values())
    assert all(info.result_class is not ResultClass.DONE for info in CODES.values())


def _http_status(code: int) -> int:
    return code if code in (400, 404, 500) else 200


async def _run(h: Harness, endpoint: Endpoint, code: int) -> list[ItemResult]:
    client = h.client
    if endpoint is Endpoint.LOYALTY_REVOKE:
        h.fake.script(LOYALTY_REVOKE, reply(200, {"response": [loyalty_error(code)]}))
        customer = LoyaltyCustomerEarns(
            identifier_value="423927867", source="INSTORE", earn_ids=[974]
        )
        return await client.loyalty(LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), [customer])
    if endpoint is Endpoint.LOYALTY_ENROL:
        h.fake.script(LOYALTY_ENROL, reply(200, {"response": [loyalty_error(code)]}))
        return await client.loyalty(
            LoyaltyBulk(LoyaltyAction.ENROL, PROMO, "id"),
            [LoyaltyCustomer(identifier_value="1", source="INSTORE")],
        )
    if endpoint is Endpoint.CART_REVOKE:
        body: dict[str, Any] = {"data": None, "errors": [{"code": code, "message": "m"}]}
        h.fake.script(CART, reply(_http_status(code), body))
        earns = [
            CartEarnsRef(
                promotion_id="69117663b1cfc114606fd7fb", earn_ids=["6911eaf1f57b486147effac0"]
            )
        ]
        return await client.revoke_cart_earns(CartRevoke(566881933, earns))
    if endpoint is Endpoint.DEACTIVATE:
        body = {"data": False, "errors": [{"code": code, "message": "m"}]}
        h.fake.script("/deactivate", reply(_http_status(code), body))
        return await client.deactivate_promotion(
            Deactivation("69117663b1cfc114606fd7fb", 566881933, None)
        )
    if code in (404, 405, 682):
        body = {
            "entity": {
                "totalCount": 1,
                "failedCount": 1,
                "revokedCoupons": [],
                "failedToRevoke": [{"errorCode": code, "errorMessage": "m", "couponCodes": ["C1"]}],
            },
            "warnings": [],
            "errors": [],
            "success": True,
        }
        h.fake.script(COUPON, reply(200, body))
    else:
        body = {
            "warnings": [],
            "errors": [{"status": False, "code": code, "message": "m"}],
            "success": False,
        }
        h.fake.script(COUPON, reply(400, body))
    return await client.revoke_coupons_by_codes(CouponCodesRevoke(["C1"], series_id=None))


@pytest.mark.parametrize(("key", "expected"), sorted(EXPECTED.items()), ids=lambda v: str(v))
async def test_client_classifies_each_documented_code(
    key: tuple[Endpoint, int], expected: ResultClass
) -> None:
    endpoint, code = key
    h = make_harness()
    async with h.client:
        results = await _run(h, endpoint, code)
    assert [r.result_class for r in results] == [expected]
    assert results[0].code == code
    assert results[0].message
    if code == 737:
        assert results[0].attempts == OPEN_CART_ATTEMPTS, (
            "an open cart is retried with its own, longer budget"
        )
    elif expected in (T, ResultClass.UNAVAILABLE):
        assert results[0].attempts == 3, "transient codes are retried up to the cap"
    else:
        assert results[0].attempts == 1, "business codes are not retried"


async def test_client_unknown_code_is_request_error_and_logged() -> None:
    h = make_harness()
    with capture_logs() as logs:
        async with h.client:
            results = await _run(h, Endpoint.LOYALTY_REVOKE, 4242)
    assert results[0].result_class is ResultClass.REQUEST_ERROR
    assert "unknown code 4242" in results[0].message
    assert any(e["event"] == "capillary_unknown_code" and e["code"] == 4242 for e in logs)


async def test_8896_is_kept_on_revoke_enrol_and_not_found_on_the_other_actions() -> None:
    h = make_harness()
    h.fake.script(LOYALTY_REVOKE, reply(200, {"response": [loyalty_error(8896)]}))
    h.fake.script(LOYALTY_ENROL, reply(200, {"response": [loyalty_error(8896)]}))
    customer = LoyaltyCustomer(identifier_value="423927867", source="INSTORE")
    earns = LoyaltyCustomerEarns(identifier_value="423927867", source="INSTORE", earn_ids=[974])
    async with h.client:
        [enrolment] = await h.client.loyalty(
            LoyaltyBulk(LoyaltyAction.REVOKE_ENROL, PROMO, "id"), [customer]
        )
        [earn] = await h.client.loyalty(
            LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), [earns]
        )
        [issue] = await h.client.loyalty(LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"), [customer])
    assert (enrolment.result_class, enrolment.code) == (ResultClass.KEPT, 8896)
    assert enrolment.next_step
    assert (earn.result_class, issue.result_class) == (N, N)


def test_classify_same_number_differs_by_endpoint() -> None:
    assert classify(Endpoint.CART_REVOKE, 404).result_class is G
    assert classify(Endpoint.COUPON_REVOKE, 404).result_class is N
    assert classify(Endpoint.DEACTIVATE, 404).result_class is N
    assert classify(Endpoint.LOYALTY_ENROL, 8903).result_class is E
