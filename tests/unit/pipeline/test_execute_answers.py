"""Capillary's answers read item by item: the real client on a mock transport, the executor
on top, each answer copied from (or shaped exactly like) the vendor pages.

Each test names the point of issue 12 it proves; each failed on the code before it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.actions import (
    Action,
    DeactivateCartPromotion,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.actions import CouponCustomer as PlannedCouponCustomer
from service.capillary.models import (
    CouponCustomer,
    LoyaltyAction,
    LoyaltyBulkCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.requests import CouponCodesRevoke, LoyaltyBulk
from service.events import LoyaltyPromotionType
from service.ledger import Prior
from service.outcome import ActionResult, ActionStatus
from service.pipeline.execute import Executor
from tests.factories import event, plan_of, why
from tests.unit.capillary.helpers import (
    CART,
    COUPON,
    LOYALTY_ENROL,
    LOYALTY_REVOKE,
    Harness,
    loyalty_error,
    loyalty_ok,
    make_harness,
    reply,
)

PROMO_A = "69117663b1cfc114606fd7fb"
PROMO_B = "69058646b1cfc114606f7bbe"
EARN_A = "6911eaf1f57b486147effac0"
EARN_B = "68f869d94a314550c4b46047"
EARN_C = "68f869d94a314550c4b46048"
DEACTIVATE = f"/api_gateway/v1/promotions/{PROMO_B}/deactivate"
CUSTOMER = 566881933

TARGET = LoyaltyTarget(
    program_id=2714,
    promotion_id=202779,
    promotion_type=LoyaltyPromotionType.ISSUE_AND_EARN,
    identifier_name="id",
    identifier_value="423927867",
    source="INSTORE",
)
TARGET_REF = LoyaltyPromotionRef(program_id=2714, promotion_id=202779)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = make_harness()
    yield h
    await h.client.aclose()


async def _run(
    harness: Harness, *actions: Action, tried_before: bool = False, clawback: bool = True
) -> list[ActionResult]:
    executor = Executor(harness.client, flag_redeemed_for_clawback=clawback)
    if tried_before:
        return await executor.execute(event(), plan_of(*actions), prior=Prior(tried_before=True))
    return await executor.execute(event(), plan_of(*actions))


def _cart_action(*earn_ids: str, promotion: str = PROMO_A) -> RevokeCartEarn:
    return RevokeCartEarn(
        customer_id=CUSTOMER, promotion_id=promotion, earn_ids=list(earn_ids), **why("cart")
    )


def _statuses(result: ActionResult) -> list[tuple[str, ActionStatus, int | None]]:
    return [(item.item, item.status, item.code) for item in result.items]


def _cart_answer(*details: dict[str, Any], errors: list[dict[str, Any]] | None = None) -> Any:
    return {
        "data": {"customerId": CUSTOMER, "revokedDetails": list(details)},
        "errors": errors or [],
    }


# --- 1. cart: an earn is revoked exactly when revokedEarnIds lists it ---


@pytest.mark.parametrize("status", ["PARTIAL_SUCCESS", "FAILED", "WHATEVER", None])
async def test_cart_listed_earn_is_revoked_whatever_the_entry_status(
    harness: Harness, status: str | None
) -> None:
    """Point 1: the page says revokedEarnIds are "earn IDs that were successfully revoked"."""
    harness.fake.script(
        CART,
        reply(
            200,
            _cart_answer(
                {"promotionId": PROMO_A, "revokedEarnIds": [EARN_A], "status": status},
                errors=[{"code": 729, "message": "Promotion earn instance already redeemed."}],
            ),
        ),
    )
    [result] = await _run(harness, _cart_action(EARN_A, EARN_B))
    assert _statuses(result)[0] == (f"cart_earn:{EARN_A}", ActionStatus.REVOKED, None)
    assert "clawback" not in result.items[0].detail
    # The other earn is the only one unaccounted for: the error is its own.
    assert _statuses(result)[1] == (f"cart_earn:{EARN_B}", ActionStatus.REFUSED_REDEEMED, 729)
    assert result.items[1].detail["clawback"] == "flagged"


# --- 2. cart errors name no earn ---


async def test_cart_error_with_several_earns_unaccounted_asks_each_earn_on_its_own(
    harness: Harness,
) -> None:
    """Point 2: one error code is never pinned on several earns."""
    harness.fake.script(
        CART,
        reply(
            400,
            _cart_answer(
                errors=[{"code": 729, "message": "Promotion earn instance already redeemed."}]
            ),
        ),
        reply(400, _cart_answer(errors=[{"code": 729, "message": "redeemed"}])),
        reply(
            200,
            _cart_answer({"promotionId": PROMO_A, "revokedEarnIds": [EARN_B], "status": "SUCCESS"}),
        ),
    )
    [result] = await _run(harness, _cart_action(EARN_A, EARN_B))
    assert _statuses(result) == [
        (f"cart_earn:{EARN_A}", ActionStatus.REFUSED_REDEEMED, 729),
        (f"cart_earn:{EARN_B}", ActionStatus.REVOKED, None),
    ]
    bodies = harness.fake.bodies(CART)
    assert [[e for d in body["earnRevokeDetails"] for e in d["earnIds"]] for body in bodies] == [
        [EARN_A, EARN_B],
        [EARN_A],
        [EARN_B],
    ]


# --- 3. loyalty REVOKE_EARN: revoked only when listed ---


async def test_loyalty_earn_id_sent_but_not_listed_is_not_revoked(harness: Harness) -> None:
    """Point 3: only the ids in revokedEarnIds were revoked."""
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(
            200,
            loyalty_ok(
                {
                    "entityType": "CUSTOMER",
                    "entityId": 423927867,
                    "promotionId": 202779,
                    "programId": 2714,
                    "revokedEarnIds": [974],
                }
            ),
        ),
    )
    [result] = await _run(
        harness, RevokeLoyaltyEarn(target=TARGET, earn_ids=[974, 975], **why("l"))
    )
    assert _statuses(result) == [
        ("loyalty_earn:974", ActionStatus.REVOKED, None),
        ("loyalty_earn:975", ActionStatus.NOT_FOUND, None),
    ]
    assert "revokedEarnIds" in result.items[1].message


# --- 4. loyalty items matched by position, checked by entityId ---


async def test_loyalty_item_naming_another_customer_is_a_request_error(harness: Harness) -> None:
    """Point 4: a successful item whose entityId is not the customer sent is not a success."""
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(
            200,
            loyalty_ok({"entityType": "CUSTOMER", "entityId": 423927868, "revokedEarnIds": [974]}),
        ),
    )
    [result] = await _run(harness, RevokeLoyaltyEarn(target=TARGET, earn_ids=[974], **why("l")))
    assert result.status is ActionStatus.FAILED
    assert "423927868" in result.items[0].message


# --- 5. a loyalty call refused as a whole keeps Capillary's code ---


async def test_loyalty_top_level_errors_without_response_keep_the_code(harness: Harness) -> None:
    """Point 5."""
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(
            400,
            {"errors": [{"status": False, "code": 8881, "message": "Insufficient parameters"}]},
        ),
    )
    [result] = await _run(
        harness, RevokeLoyaltyEarn(target=TARGET, earn_ids=[974, 975], **why("l"))
    )
    assert [item.code for item in result.items] == [8881, 8881]


# --- 6. an empty earnIds list is never sent ---


def test_wire_model_refuses_an_empty_earn_id_list() -> None:
    """Point 6: the page reads a missing list as every earn; [] must not reach the wire."""
    with pytest.raises(ValueError, match="earn"):
        LoyaltyBulkCustomer(identifier_value="1", source="INSTORE", earn_ids=[])


async def test_client_answers_an_empty_earn_id_list_without_a_call(harness: Harness) -> None:
    """Point 6."""
    results = await harness.client.loyalty(
        LoyaltyBulk(LoyaltyAction.REVOKE_EARN, TARGET_REF, "id"),
        [LoyaltyCustomerEarns(identifier_value="1", source="INSTORE", earn_ids=[])],
    )
    assert harness.fake.calls(LOYALTY_REVOKE) == []
    assert [r.result_class.value for r in results] == ["request_error"]


# --- 7. generic coupon series ---


async def test_generic_series_code_goes_alone_with_its_customer(harness: Harness) -> None:
    """Point 7: never several codes with a generic series' id; the customer is named."""
    harness.fake.script(
        COUPON,
        lambda request: reply(
            200,
            {
                "entity": {
                    "totalCount": 1,
                    "failedCount": 0,
                    "revokedCoupons": [
                        {
                            "couponId": 1,
                            "couponCode": _json(request)["couponCodes"][0],
                            "issuedToUserId": 5,
                        }
                    ],
                    "failedToRevoke": [],
                },
                "warnings": [],
                "errors": [],
                "success": True,
            },
        ),
    )
    results = await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(
            ["SALE20", "SALE30"], 415446, generic=True, customer=CouponCustomer(id="555567088")
        )
    )
    assert [r.result_class.value for r in results] == ["done", "done"]
    bodies = harness.fake.bodies(COUPON)
    assert bodies == [
        {"couponCodes": ["SALE20"], "customer": {"id": "555567088"}},
        {"couponCodes": ["SALE30"], "customer": {"id": "555567088"}},
    ]


async def test_generic_series_code_without_customer_is_not_sent(harness: Harness) -> None:
    """Point 7: a lone generic code answers 108; without a customer no call is made."""
    results = await harness.client.revoke_coupons_by_codes(
        CouponCodesRevoke(["SALE20"], 415446, generic=True)
    )
    assert harness.fake.calls(COUPON) == []
    assert [r.result_class.value for r in results] == ["request_error"]


async def test_generic_series_action_revokes_only_this_customers_coupons(
    harness: Harness,
) -> None:
    """Point 7, through the executor: the plan's customer goes with each code."""
    harness.fake.script(
        COUPON,
        lambda request: reply(
            200,
            {
                "entity": {
                    "revokedCoupons": [
                        {"couponId": 1, "couponCode": _json(request)["couponCodes"][0]}
                    ],
                    "failedToRevoke": [],
                },
                "errors": [],
                "success": True,
            },
        ),
    )
    action = RevokeCouponCodes(
        series_id=415446,
        codes=["SALE20"],
        generic=True,
        customer=PlannedCouponCustomer(id=555567088),
        **why("g"),
    )
    [result] = await _run(harness, action)
    assert result.status is ActionStatus.REVOKED
    assert harness.fake.bodies(COUPON) == [
        {"couponCodes": ["SALE20"], "customer": {"id": "555567088"}}
    ]


# --- 8. REVOKE_ENROL kept while other earns remain ---


async def test_enrolment_kept_while_other_earns_remain_is_not_a_failure(harness: Harness) -> None:
    """Point 8: the sandbox's 8904 (the pages give no code) is a final non-failure."""
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(
            200,
            {
                "response": [
                    loyalty_error(
                        8904,
                        "issual cannot be revoked while earns are active; revoke the earns first",
                    )
                ],
                "totalCount": 1,
                "failureCount": 1,
            },
        ),
    )
    [result] = await _run(harness, RevokeLoyaltyEnrolment(target=TARGET, **why("e")))
    assert result.status is ActionStatus.KEPT
    assert result.items[0].code == 8904
    assert "other earns of this promotion remain" in result.items[0].message
    assert not result.status.is_failure


async def test_8896_on_revoke_enrol_is_kept_not_an_unknown_customer(harness: Harness) -> None:
    """Issue 23: the refusal while earns remain comes as 8896; the enrolment stayed."""
    harness.fake.script(
        LOYALTY_REVOKE,
        reply(
            200,
            {
                "response": [
                    loyalty_error(8896, "Error occurred while issuing promotion to the customer")
                ],
                "totalCount": 1,
                "failureCount": 1,
            },
        ),
    )
    [result] = await _run(harness, RevokeLoyaltyEnrolment(target=TARGET, **why("e")))
    assert result.status is ActionStatus.KEPT
    assert result.items[0].code == 8896
    assert "enrolment kept" in result.items[0].message
    assert not result.status.is_failure


# --- 9. a redeemed PAYMENT_VOUCHER earn ---


async def test_redeemed_payment_voucher_is_refused_redeemed_and_flagged(harness: Harness) -> None:
    """Point 9: never reported as taken back."""
    harness.fake.script(
        DEACTIVATE,
        reply(
            400,
            {
                "data": False,
                "errors": [{"code": 729, "message": "Promotion earn instance already redeemed."}],
            },
        ),
    )
    action = DeactivateCartPromotion(
        customer_id=CUSTOMER, promotion_id=PROMO_B, earn_id=EARN_B, **why("d")
    )
    [result] = await _run(harness, action)
    assert result.status is ActionStatus.REFUSED_REDEEMED
    assert result.items[0].detail["clawback"] == "flagged"


# --- 10. cart 404/731: not found on a first attempt, already revoked on a repeat ---


@pytest.mark.parametrize("code", [404, 731])
async def test_cart_invalid_earn_on_a_first_attempt_is_not_found(
    harness: Harness, code: int
) -> None:
    """Point 10."""
    harness.fake.script(CART, reply(400, _cart_answer(errors=[{"code": code, "message": "x"}])))
    [result] = await _run(harness, _cart_action(EARN_A))
    assert result.status is ActionStatus.NOT_FOUND


@pytest.mark.parametrize("code", [404, 731])
async def test_cart_invalid_earn_when_the_event_was_tried_before_is_already_revoked(
    harness: Harness, code: int
) -> None:
    """Point 10: a replay or a restart."""
    harness.fake.script(CART, reply(400, _cart_answer(errors=[{"code": code, "message": "x"}])))
    [result] = await _run(harness, _cart_action(EARN_A), tried_before=True)
    assert result.status is ActionStatus.ALREADY_REVOKED


async def test_cart_invalid_earn_after_an_unanswered_attempt_is_already_revoked(
    harness: Harness,
) -> None:
    """Point 10: a retry after an attempt that may have been processed (HTTP 502)."""
    harness.fake.script(
        CART, reply(502), reply(400, _cart_answer(errors=[{"code": 731, "message": "x"}]))
    )
    [result] = await _run(harness, _cart_action(EARN_A))
    assert result.status is ActionStatus.ALREADY_REVOKED


# --- 11. cart ids compared without regard to case ---


async def test_cart_ids_in_upper_case_match_the_answer(harness: Harness) -> None:
    """Point 11: the event schema accepts upper-case hex."""
    harness.fake.script(
        CART,
        reply(
            200,
            _cart_answer({"promotionId": PROMO_A, "revokedEarnIds": [EARN_A], "status": "SUCCESS"}),
        ),
    )
    [result] = await _run(harness, _cart_action(EARN_A.upper(), promotion=PROMO_A.upper()))
    assert result.status is ActionStatus.REVOKED


# --- 12. coupons revoked beyond the codes sent ---


async def test_coupons_revoked_beyond_the_codes_sent_are_items_not_asked_for(
    harness: Harness,
) -> None:
    """Point 12: the generic-series hazard shows in the outcome, not only in a log line."""
    harness.fake.script(
        COUPON,
        reply(
            200,
            {
                "entity": {
                    "totalCount": 3,
                    "failedCount": 0,
                    "revokedCoupons": [
                        {"couponId": 1, "couponCode": "3138309782", "issuedToUserId": 5},
                        {"couponId": 2, "couponCode": "3636820421", "issuedToUserId": 5},
                        {"couponId": 3, "couponCode": "SALE20", "issuedToUserId": 6},
                    ],
                    "failedToRevoke": [],
                },
                "warnings": [],
                "errors": [],
                "success": True,
            },
        ),
    )
    # Declared free of generic codes (wrongly, as the answer shows): the codes go together.
    action = RevokeCouponCodes(
        series_id=415446, codes=["3138309782", "3636820421"], no_generic_code=True, **why("c")
    )
    [result] = await _run(harness, action)
    assert [(i.item, i.status, i.asked) for i in result.items] == [
        ("coupon:3138309782", ActionStatus.REVOKED, True),
        ("coupon:3636820421", ActionStatus.REVOKED, True),
        ("coupon:SALE20", ActionStatus.REVOKED, False),
    ]
    assert "not asked for" in result.items[2].message
    assert result.items[2].detail["not_asked_for"] == "revoked beyond the codes sent"
    assert result.status is ActionStatus.REVOKED


# --- 13. 737 open cart ---


async def test_open_cart_gets_its_own_longer_budget(harness: Harness) -> None:
    """Point 13: more attempts than the general budget (3 here), waits of seconds."""
    open_cart = reply(
        400,
        {
            "data": False,
            "errors": [
                {"code": 737, "message": "PROMO.UNSUPPORTED_PREFERENCE_CHANGE_PENDING_CART"}
            ],
        },
    )
    harness.fake.script(
        DEACTIVATE,
        open_cart,
        open_cart,
        open_cart,
        open_cart,
        reply(200, {"data": True, "errors": []}),
    )
    action = DeactivateCartPromotion(
        customer_id=CUSTOMER, promotion_id=PROMO_B, earn_id=EARN_B, **why("d")
    )
    [result] = await _run(harness, action)
    assert result.status is ActionStatus.REVOKED
    assert len(harness.fake.calls(DEACTIVATE)) == 5
    assert sum(harness.sleeps) > 3.0


# --- an EARN answer for the give-back, read as before ---


async def test_issue_earn_records_the_new_earned_id(harness: Harness) -> None:
    harness.fake.script(
        LOYALTY_ENROL,
        reply(
            200,
            loyalty_ok(
                {
                    "entityType": "CUSTOMER",
                    "entityId": 423927867,
                    "issualId": "847",
                    "earnedId": "840",
                }
            ),
        ),
    )
    [result] = await _run(harness, IssueLoyaltyEarn(target=TARGET, **why("i")))
    assert result.status is ActionStatus.RESTORED
    assert result.items[0].detail["earned_id"] == "840"


def _json(request: httpx.Request) -> Any:
    return json.loads(request.content)
