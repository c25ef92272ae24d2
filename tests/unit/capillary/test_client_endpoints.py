"""Each endpoint: what is sent, and how every answer shape becomes per-item results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from service.capillary.api import CapillaryApi
from service.capillary.client import CapillaryClient
from service.capillary.models import (
    CartEarnsRef,
    CouponCustomer,
    LoyaltyAction,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.requests import (
    CartRevoke,
    CouponCodesRevoke,
    CustomerCouponsRevoke,
    Deactivation,
    LoyaltyBulk,
)
from service.capillary.results import ResultClass
from tests.unit.capillary.helpers import (
    CART,
    COUPON,
    LOYALTY_ENROL,
    LOYALTY_REVOKE,
    Harness,
    loyalty_error,
    loyalty_ok,
    reply,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "capillary"
PROMO = LoyaltyPromotionRef(program_id=753, promotion_id=74230)
D, A, N, R, E = (
    ResultClass.DONE,
    ResultClass.ALREADY_DONE,
    ResultClass.NOT_FOUND,
    ResultClass.REFUSED,
    ResultClass.REQUEST_ERROR,
)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _customers(*values: str, earn_ids: list[int] | None = None) -> list[LoyaltyCustomerEarns]:
    return [
        LoyaltyCustomerEarns(identifier_value=v, source="INSTORE", earn_ids=earn_ids)
        for v in values
    ]


async def test_revoke_loyalty_earns_partial_success_matches_items_by_position(
    harness: Harness,
) -> None:
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(200, fixture("loyalty_revoke.response.response_with_partial_success.json")),
    )
    customers = [
        LoyaltyCustomerEarns(identifier_value="555567088", source="INSTORE", earn_ids=[111]),
        LoyaltyCustomerEarns(identifier_value="1", source="INSTORE", earn_ids=[112]),
        LoyaltyCustomerEarns(identifier_value="2", source="INSTORE", earn_ids=[113, 114]),
    ]
    results = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), customers
    )
    assert [(r.item, r.result_class, r.code) for r in results] == [
        ("loyalty_earn:111", D, None),
        ("loyalty_earn:112", N, 8015),
        ("loyalty_earn:113", N, 8015),
        ("loyalty_earn:114", N, 8015),
    ]
    assert results[0].detail == {"entity_id": "555567088", "revoked_earn_ids": "111"}
    assert results[0].request_ids == ["req-1"]


async def test_revoke_loyalty_earns_invalid_or_already_revoked_is_gone(harness: Harness) -> None:
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(200, {"response": [loyalty_error(8903)], "totalCount": 1, "failureCount": 1}),
    )
    [result] = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), _customers("9", earn_ids=[974])
    )
    assert result.result_class is ResultClass.GONE
    assert result.code == 8903
    assert not result.result_class.is_success


async def test_revoke_loyalty_earns_broad_form_sends_no_earn_ids(harness: Harness) -> None:
    harness.fake.script(
        LOYALTY_REVOKE, reply(200, loyalty_ok({"entityId": 9, "revokedEarnIds": [1, 2]}))
    )
    [result] = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), _customers("9")
    )
    [body] = harness.fake.bodies(LOYALTY_REVOKE)
    assert body["customers"] == [{"identifierValue": "9", "source": "INSTORE"}]
    assert body["bulkAction"] == "REVOKE_EARN"
    assert body["type"] == "CUSTOMER"
    assert body["promotionDetails"] == {"programId": 753, "promotionId": 74230}
    assert result.item == "loyalty_earns_all:74230/9"
    assert result.detail["revoked_earn_ids"] == "1,2"


if TYPE_CHECKING:

    async def _revoke_earn_takes_no_plain_customer(
        client: CapillaryClient, api: CapillaryApi
    ) -> None:
        """A customer without earn ids would read as "every earn of the promotion": mypy
        refuses one for REVOKE_EARN, and these ignores fail the type check (unused) the day
        it stops refusing."""
        plain = [LoyaltyCustomer(identifier_value="9", source="INSTORE")]
        revoke = LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id")
        await client.loyalty(revoke, plain)  # type: ignore[misc]
        await api.loyalty(revoke, plain)  # type: ignore[misc]
        await api.loyalty(LoyaltyBulk(LoyaltyAction.ENROL, PROMO, "id"), plain)


async def test_revoke_loyalty_answer_count_mismatch_is_request_error(harness: Harness) -> None:
    harness.fake.script(LOYALTY_REVOKE, reply(200, loyalty_ok({"entityId": 1})))
    results = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), _customers("1", "2", earn_ids=[5])
    )
    assert {r.result_class for r in results} == {E}
    assert "position" in results[0].message


async def test_revoke_loyalty_customer_without_source_is_answered_without_a_call(
    harness: Harness,
) -> None:
    harness.fake.script(
        LOYALTY_REVOKE, reply(200, loyalty_ok({"entityId": 1, "revokedEarnIds": [5]}))
    )
    customers = [
        LoyaltyCustomerEarns(identifier_value="1", source="INSTORE", earn_ids=[5]),
        LoyaltyCustomerEarns(identifier_value="2", source=" ", earn_ids=[6]),
    ]
    results = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), customers
    )
    assert [(r.item, r.result_class) for r in results] == [
        ("loyalty_earn:5", D),
        ("loyalty_earn:6", E),
    ]
    assert "registration source" in results[1].message
    assert [len(b["customers"]) for b in harness.fake.bodies(LOYALTY_REVOKE)] == [1]


async def test_revoke_loyalty_enrolments_reads_issual_id(harness: Harness) -> None:
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(200, fixture("loyalty_revoke.response.response_issue_earn_action_revoke_enrol.json")),
    )
    customers = [
        LoyaltyCustomer(identifier_value=v, source="INSTORE")
        for v in ("423926199", "423926198", "423926200", "423926201")
    ]
    results = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_ENROL, PROMO, "id"), customers
    )
    assert [r.detail["issual_id"] for r in results] == ["847", "848", "849", "850"]
    assert results[0].item == "enrolment:74230/423926199"
    assert harness.fake.bodies(LOYALTY_REVOKE)[0]["bulkAction"] == "REVOKE_ENROL"


async def test_issue_earn_puts_new_earned_id_in_detail(harness: Harness) -> None:
    harness.fake.script(
        LOYALTY_ENROL,
        reply(200, fixture("loyalty_enrol.response.response_with_partial_success.json")),
    )
    # The first item names customer 170940055: it must be the one sent first.
    customers = [
        LoyaltyCustomer(identifier_value=str(v), source="INSTORE") for v in (170940055, 1, 2, 3)
    ]
    results = await harness.client.loyalty(
        LoyaltyBulk(
            LoyaltyAction.EARN, LoyaltyPromotionRef(program_id=699, promo_identifier="x"), "id"
        ),
        customers,
    )
    assert results[0].result_class is D
    assert results[0].detail["earned_id"] == "102"
    assert [r.result_class for r in results[1:]] == [N, N, N]
    body = harness.fake.bodies(LOYALTY_ENROL)[0]
    assert body["bulkAction"] == "EARN"
    assert body["promotionDetails"] == {"programId": 699, "promoIdentifier": "x"}


async def test_enrol_direct_promotion_8902_is_refused(harness: Harness) -> None:
    harness.fake.script(
        LOYALTY_ENROL,
        reply(200, fixture("loyalty_enrol.response.response_direct_action_enrol.json")),
    )
    [result] = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.ENROL, PROMO, "mobile"),
        [LoyaltyCustomer(identifier_value="9198", source="INSTORE")],
    )
    assert result.result_class is R
    assert result.code == 8902


async def test_revoke_cart_earns_sends_documented_body_and_reads_example(harness: Harness) -> None:
    harness.fake.script(CART, reply(200, fixture("cart_revoke.response.example_response.json")))
    earns = [
        CartEarnsRef(
            promotion_id="69117663b1cfc114606fd7fb", earn_ids=["6911eaf1f57b486147effac0"]
        ),
        CartEarnsRef(
            promotion_id="69058646b1cfc114606f7bbe", earn_ids=["68f869d94a314550c4b46047"]
        ),
    ]
    results = await harness.client.revoke_cart_earns(CartRevoke(566881933, earns))
    assert harness.fake.bodies(CART) == [fixture("cart_revoke.request.example_two_promotions.json")]
    assert [(r.item, r.result_class) for r in results] == [
        ("cart_earn:6911eaf1f57b486147effac0", D),
        ("cart_earn:68f869d94a314550c4b46047", D),
    ]


async def test_revoke_cart_earns_mixed_errors_are_asked_again_one_by_one(harness: Harness) -> None:
    mixed = {
        "data": {
            "customerId": 5,
            "revokedDetails": [{"promotionId": "p", "revokedEarnIds": ["e1"], "status": "SUCCESS"}],
        },
        "errors": [{"code": 729, "message": "redeemed"}, {"code": 731, "message": "invalid"}],
    }

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        ids = [e for d in body["earnRevokeDetails"] for e in d["earnIds"]]
        if len(ids) > 1:
            return reply(200, mixed)
        code = 729 if ids == ["e2"] else 731
        return reply(200, {"data": None, "errors": [{"code": code, "message": "m"}]})

    harness.fake.script(CART, answer)
    earns = [CartEarnsRef(promotion_id="p", earn_ids=["e1", "e2", "e3"])]
    results = await harness.client.revoke_cart_earns(CartRevoke(5, earns))
    assert sorted((r.item, r.result_class, r.code) for r in results) == [
        ("cart_earn:e1", D, None),
        ("cart_earn:e2", ResultClass.REDEEMED, 729),
        ("cart_earn:e3", ResultClass.GONE, 731),
    ]
    assert len(harness.fake.calls(CART)) == 3


async def test_revoke_coupons_partial_success_without_entity_and_misspellings(
    harness: Harness,
) -> None:
    harness.fake.script(
        COUPON,
        reply(
            200,
            fixture(
                "coupon_revoke.response.partial_success_coupon_not_found_and_coupon_code_redeemed.json"
            ),
        ),
    )
    codes = ["SDDSDSDS", "CODE4", "CODE5", "CODE6", "CODE7", "CODE8"]
    results = await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(codes, series_id=1, no_generic_code=True)
    )
    assert [(r.result_class, r.code) for r in results] == [
        (D, None),
        (N, 404),
        (N, 404),
        (ResultClass.REDEEMED, 405),
        (ResultClass.REDEEMED, 405),
        (E, None),
    ]
    assert "neither revoked nor refused" in results[-1].message


async def test_revoke_coupons_generic_series_top_level_error_applies_to_all(
    harness: Harness,
) -> None:
    harness.fake.script(
        COUPON,
        reply(
            200,
            fixture("coupon_revoke.response.failure_generic_coupon_code_are_not_supported.json"),
        ),
    )
    results = await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(["SALE20", "SALE21"], series_id=9, no_generic_code=True)
    )
    assert [(r.item, r.result_class, r.code) for r in results] == [
        ("coupon:SALE20", R, 108),
        ("coupon:SALE21", R, 108),
    ]


async def test_revoke_coupons_by_customer_lists_revoked_codes(harness: Harness) -> None:
    harness.fake.script(
        COUPON,
        reply(
            200,
            fixture(
                "coupon_revoke.response.response_revoking_all_coupon_from_series_using_mobile.json"
            ),
        ),
    )
    results = await harness.client.revoke_coupons_by_customer(
        CustomerCouponsRevoke(CouponCustomer(mobile="11223569865"), 415446)
    )
    assert len(results) == 18
    assert {r.result_class for r in results} == {D}
    assert harness.fake.bodies(COUPON) == [
        fixture("coupon_revoke.request.revoke_coupon_using_mobile.json")
    ]


async def test_revoke_coupons_by_customer_with_nothing_left_is_already_done(
    harness: Harness,
) -> None:
    empty = {
        "entity": {"totalCount": 0, "failedCount": 0, "revokedCoupons": [], "failedToRevoke": []},
        "warnings": [],
        "errors": [],
        "success": True,
    }
    harness.fake.script(COUPON, reply(200, empty))
    [result] = await harness.client.revoke_coupons_by_customer(
        CustomerCouponsRevoke(CouponCustomer(id="555567088"), None)
    )
    assert result.item == "coupons_of_customer:id"
    assert result.result_class is A


async def test_deactivate_without_earn_id_omits_it_and_sends_empty_body(harness: Harness) -> None:
    harness.fake.script(
        "/deactivate", reply(200, fixture("deactivate.response.example_response.json"))
    )
    [result] = await harness.client.deactivate_promotion(
        Deactivation("69117663b1cfc114606fd7fb", 566881933, None)
    )
    [call] = harness.fake.calls("/api_gateway/v1/promotions/69117663b1cfc114606fd7fb/deactivate")
    assert call.method == "POST"
    assert call.content == b""
    assert dict(call.url.params) == {"customerId": "566881933"}
    assert "null" not in str(call.url)
    assert result.result_class is D
    assert result.item == "deactivation:69117663b1cfc114606fd7fb/566881933"


async def test_deactivate_with_earn_id_sends_it(harness: Harness) -> None:
    harness.fake.script("/deactivate", reply(200, {"data": True, "errors": []}))
    await harness.client.deactivate_promotion(Deactivation("p1", 5, "e1"))
    [call] = harness.fake.requests
    assert dict(call.url.params) == {"customerId": "5", "earnId": "e1"}


async def test_deactivate_empty_promotion_id_makes_no_call(harness: Harness) -> None:
    [result] = await harness.client.deactivate_promotion(Deactivation("", 5, None))
    assert result.result_class is E
    assert harness.fake.requests == []


async def test_http_404_without_json_names_the_base_url_setting(harness: Harness) -> None:
    harness.fake.script(CART, httpx.Response(404, text="<html>not here</html>"))
    [result] = await harness.client.revoke_cart_earns(
        CartRevoke(5, [CartEarnsRef(promotion_id="p", earn_ids=["e"])])
    )
    assert result.result_class is ResultClass.UNAVAILABLE
    assert "GATEWAY_BASE_URL" in (result.next_step or "")


async def test_an_earn_answered_but_unmatched_is_uncertain_for_every_customer_of_the_call(
    harness: Harness,
) -> None:
    # Issued (HTTP 200) and answered with one item for two customers: it may have been made
    # for both, so neither may be issued again.
    harness.fake.script(LOYALTY_ENROL, reply(200, loyalty_ok({"entityId": 1, "earnedId": "77"})))
    customers = [LoyaltyCustomer(identifier_value=v, source="INSTORE") for v in ("1", "2")]
    results = await harness.client.loyalty(LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"), customers)
    assert [r.result_class for r in results] == [ResultClass.UNCERTAIN] * 2
    assert "not repeated" in results[0].message
    assert results[0].next_step is not None
    assert "Do not replay" in results[0].next_step


async def test_an_earn_item_naming_another_customer_is_uncertain(harness: Harness) -> None:
    harness.fake.script(LOYALTY_ENROL, reply(200, loyalty_ok({"entityId": 9, "earnedId": "77"})))
    customers = [LoyaltyCustomer(identifier_value="1", source="INSTORE")]
    [result] = await harness.client.loyalty(LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"), customers)
    assert result.result_class is ResultClass.UNCERTAIN


async def test_an_earn_answered_in_an_unreadable_shape_is_uncertain(harness: Harness) -> None:
    harness.fake.script(LOYALTY_ENROL, reply(200, {"response": "not a list"}))
    customers = [LoyaltyCustomer(identifier_value="1", source="INSTORE")]
    [result] = await harness.client.loyalty(LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"), customers)
    assert result.result_class is ResultClass.UNCERTAIN


async def test_a_revoke_answered_but_unmatched_stays_a_request_error(harness: Harness) -> None:
    # A revoke is safe to repeat: the replay the message advises cannot take twice.
    harness.fake.script(LOYALTY_REVOKE, reply(200, {"response": "not a list"}))
    [result] = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, PROMO, "id"), _customers("1", earn_ids=[5])
    )
    assert result.result_class is E


async def test_an_earn_answered_200_without_json_may_have_been_issued(harness: Harness) -> None:
    # Capillary (or a proxy) carried the request out and answered something else than JSON:
    # no item to read, and the executor must count the EARN as possibly made.
    harness.fake.script(LOYALTY_ENROL, httpx.Response(200, text="<html>ok</html>"))
    customers = [LoyaltyCustomer(identifier_value="1", source="INSTORE")]
    [result] = await harness.client.loyalty(LoyaltyBulk(LoyaltyAction.EARN, PROMO, "id"), customers)
    assert result.result_class is ResultClass.UNAVAILABLE
    assert result.after_uncertain_attempt
