"""execute: actions to calls in plan order, client classes to outcome statuses."""

from __future__ import annotations

import pytest

from service.actions import (
    DeactivateCartPromotion,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Report,
    ReportKind,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.capillary.models import AttributionEntityType
from service.capillary.results import ItemResult, ResultClass
from service.events import LoyaltyPromotionType
from service.outcome import ActionStatus
from service.pipeline.done_before import worst
from service.pipeline.execute import Executor, attribution_for, item_status
from tests.factories import event, plan_of, why
from tests.fakes import FakeCapillary

TARGET = LoyaltyTarget(
    program_id=2714,
    promotion_id=202779,
    promotion_type=LoyaltyPromotionType.ISSUE_AND_EARN,
    identifier_name="id",
    identifier_value="555567088",
    source="INSTORE",
)


async def test_execute_runs_actions_in_plan_order_with_their_arguments() -> None:
    api = FakeCapillary()
    plan = plan_of(
        RevokeLoyaltyEarn(target=TARGET, earn_ids=[974, 975], **why("a1")),
        RevokeLoyaltyEnrolment(target=TARGET, **why("a2")),
        RevokeCartEarn(
            customer_id=555567088,
            promotion_id="69117663b1cfc114606fd7fb",
            earn_ids=["6911eaf1f57b486147effac0"],
            **why("a3"),
        ),
        DeactivateCartPromotion(
            customer_id=555567088,
            promotion_id="69058646b1cfc114606f7bbe",
            earn_id="68f869d94a314550c4b46047",
            **why("a4"),
        ),
        RevokeCouponCodes(series_id=415446, codes=["3138309782", "3636820421"], **why("a5")),
    )
    results = await Executor(api).execute(event(), plan)

    assert [name for name, _ in api.calls] == [
        "revoke_loyalty_earns",
        "revoke_loyalty_enrolments",
        "revoke_cart_earns",
        "deactivate_promotion",
        "revoke_coupons_by_codes",
    ]
    assert api.calls[0][1]["customers"][0].earn_ids == [974, 975]
    assert api.calls[3][1]["earn_id"] == "68f869d94a314550c4b46047"
    assert api.calls[4][1]["series_id"] == 415446
    assert [r.action_id for r in results] == ["a1", "a2", "a3", "a4", "a5"]
    assert all(r.status is ActionStatus.REVOKED for r in results)
    assert len(results[0].items) == 2


async def test_execute_report_makes_no_call_and_is_skipped() -> None:
    api = FakeCapillary()
    plan = plan_of(
        Report(report_kind=ReportKind.NOT_REVOCABLE, item="cart_earn:x", **why("r1")),
    )
    [result] = await Executor(api).execute(event(), plan)
    assert api.calls == []
    assert result.status is ActionStatus.SKIPPED
    assert result.report_kind == "not_revocable"


async def test_execute_enrolment_not_attempted_when_its_earn_revoke_failed() -> None:
    api = FakeCapillary(
        answers={
            "revoke_loyalty_earns": [
                ItemResult(item="loyalty_earn:974", result_class=ResultClass.TRANSIENT, code=503)
            ]
        }
    )
    plan = plan_of(
        RevokeLoyaltyEarn(target=TARGET, earn_ids=[974], **why("a1")),
        RevokeLoyaltyEnrolment(target=TARGET, **why("a2")),
    )
    earn, enrolment = await Executor(api).execute(event(), plan)
    assert earn.status is ActionStatus.FAILED
    assert enrolment.status is ActionStatus.FAILED
    assert "not attempted" in enrolment.items[0].message
    assert [name for name, _ in api.calls] == ["revoke_loyalty_earns"]


async def test_execute_give_back_reports_restored_and_keeps_new_earned_id() -> None:
    api = FakeCapillary(
        answers={
            "issue_earn": [
                ItemResult(
                    item="earn:555567088",
                    result_class=ResultClass.DONE,
                    detail={"earned_id": "1201"},
                )
            ]
        }
    )
    plan = plan_of(
        EnrolLoyalty(target=TARGET, **why("g1")),
        IssueLoyaltyEarn(target=TARGET, replaces_earn_id=974, **why("g2")),
    )
    enrol, issue = await Executor(api).execute(event(), plan)
    assert enrol.status is ActionStatus.RESTORED
    assert issue.status is ActionStatus.RESTORED
    assert issue.items[0].detail["earned_id"] == "1201"


async def test_execute_redeemed_coupon_is_flagged_for_clawback_when_policy_says_so() -> None:
    redeemed = ItemResult(item="coupon:X", result_class=ResultClass.REDEEMED, code=405)
    api = FakeCapillary(answers={"revoke_coupons_by_codes": [redeemed]})
    plan = plan_of(RevokeCouponCodes(series_id=None, codes=["X"], **why("c1")))

    [flagged] = await Executor(api, flag_redeemed_for_clawback=True).execute(event(), plan)
    [plain] = await Executor(api, flag_redeemed_for_clawback=False).execute(event(), plan)

    assert flagged.status is ActionStatus.REFUSED_REDEEMED
    assert flagged.items[0].detail == {"clawback": "flagged"}
    assert plain.items[0].detail == {}


@pytest.mark.parametrize(
    ("result_class", "gives_back", "tried_before", "expected"),
    [
        (ResultClass.DONE, False, False, ActionStatus.REVOKED),
        (ResultClass.DONE, True, False, ActionStatus.RESTORED),
        (ResultClass.ALREADY_DONE, False, False, ActionStatus.ALREADY_REVOKED),
        (ResultClass.GONE, False, False, ActionStatus.NOT_FOUND),
        (ResultClass.GONE, False, True, ActionStatus.ALREADY_REVOKED),
        (ResultClass.NOT_FOUND, False, True, ActionStatus.NOT_FOUND),
        (ResultClass.REDEEMED, False, False, ActionStatus.REFUSED_REDEEMED),
        (ResultClass.KEPT, False, False, ActionStatus.KEPT),
        (ResultClass.REFUSED, False, False, ActionStatus.REFUSED),
        (ResultClass.REQUEST_ERROR, False, False, ActionStatus.FAILED),
        (ResultClass.TRANSIENT, False, False, ActionStatus.FAILED),
    ],
)
def test_item_status_maps_client_class(
    result_class: ResultClass, gives_back: bool, tried_before: bool, expected: ActionStatus
) -> None:
    result = ItemResult(item="x", result_class=result_class)
    assert item_status(result, gives_back=gives_back, tried_before=tried_before) is expected


def test_worst_prefers_failure_over_success_and_empty_is_failure() -> None:
    assert worst([ActionStatus.REVOKED, ActionStatus.FAILED]) is ActionStatus.FAILED
    assert worst([ActionStatus.REVOKED, ActionStatus.ALREADY_REVOKED]) is (
        ActionStatus.ALREADY_REVOKED
    )
    assert worst([]) is ActionStatus.FAILED


def test_attribution_prefers_till_then_store_then_none() -> None:
    till = attribution_for(event())
    assert till is not None
    assert till.entity_type is AttributionEntityType.TILL
    store = attribution_for(event(source={"channel": "POS", "store_code": "S1"}))
    assert store is not None
    assert store.entity_type is AttributionEntityType.STORE
    assert attribution_for(event(source={"channel": "ECOMMERCE"})) is None


async def test_execute_client_crash_fails_that_action_and_runs_the_rest() -> None:
    api = FakeCapillary(crash_on={"revoke_cart_earns": KeyError("boom")})
    plan = plan_of(
        RevokeCartEarn(
            customer_id=555567088, promotion_id="69117663b1cfc114606fd7fb", earn_ids=["x"],
            **why("a1"),
        ),
        RevokeCouponCodes(series_id=415446, codes=["A"], **why("a2")),
    )  # fmt: skip
    crashed, coupons = await Executor(api).execute(event(), plan)
    assert crashed.status is ActionStatus.FAILED
    assert "internal error: KeyError" in crashed.items[0].message
    assert crashed.next_step is not None
    assert coupons.status is ActionStatus.REVOKED
