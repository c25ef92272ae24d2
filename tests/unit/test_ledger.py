"""ledger: what an event did, item by item, from its plan and results; who it was about."""

from __future__ import annotations

from datetime import UTC, datetime

from service.actions import (
    Action,
    Decision,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Plan,
    RevokeLoyaltyEarn,
)
from service.events import CancelledReturn, CustomerRef, LoyaltyPromotionType
from service.ledger import CustomerMark, ReturnRecord, entry_of
from service.outcome import ActionResult, ActionStatus, ItemResult
from tests.factories import event

WHY = {"reason_code": "x", "reason": "y"}
TARGET = LoyaltyTarget(
    program_id=2714,
    promotion_id=202779,
    promotion_type=LoyaltyPromotionType.LOYALTY_EARNING,
    identifier_name="mobile",
    identifier_value="11223569865",
    source="INSTORE",
)


def _plan(*actions: Action) -> Plan:
    return Plan(
        event_id="evt-test-0001",
        decision=Decision.TAKE_BACK,
        summary="s",
        decided_at=datetime(2026, 12, 1, tzinfo=UTC),
        policy_version="p",
        actions=list(actions),
    )


def _result(action_id: str, kind: str, *items: ItemResult) -> ActionResult:
    return ActionResult(
        action_id=action_id,
        kind=kind,
        reason_code="x",
        reason="y",
        status=items[0].status,
        items=list(items),
    )


def test_a_broad_revoke_is_recorded_as_the_earns_capillary_listed() -> None:
    broad = RevokeLoyaltyEarn(action_id="all", target=TARGET, earn_ids=None, broad=True, **WHY)
    result = _result(
        "all",
        "revoke_loyalty_earn",
        ItemResult(
            item="loyalty_earns_all:202779/x",
            status=ActionStatus.REVOKED,
            detail={"revoked_earn_ids": "974,975"},
        ),
    )

    entry = entry_of(event(), _plan(broad), [result], attempt=1)

    assert [(i.item, i.earn_id, i.status) for i in entry.items] == [
        ("loyalty_earn:974", 974, ActionStatus.REVOKED),
        ("loyalty_earn:975", 975, ActionStatus.REVOKED),
    ]
    assert all(i.loyalty is not None and i.loyalty.key == "2714/202779" for i in entry.items)


def test_give_backs_record_what_they_restore_and_the_new_ids_without_the_mobile() -> None:
    enrol = EnrolLoyalty(action_id="e", target=TARGET, **WHY)
    issue = IssueLoyaltyEarn(action_id="i", target=TARGET, replaces_earn_id=974, **WHY)
    results = [
        _result(
            "e",
            "enrol_loyalty",
            ItemResult(
                item="enrolment:202779/11223569865",
                status=ActionStatus.RESTORED,
                detail={"issual_id": "900"},
            ),
        ),
        _result(
            "i",
            "issue_loyalty_earn",
            ItemResult(
                item="loyalty_issue:202779/11223569865",
                status=ActionStatus.RESTORED,
                detail={"earned_id": "5001"},
                attempt=1,
            ),
        ),
    ]

    entry = entry_of(event(), _plan(enrol, issue), results, attempt=2, cancels="ret-1")

    assert [(i.item, i.replaces, i.issual_id, i.earned_id, i.attempt) for i in entry.items] == [
        ("loyalty_enrolment:2714/202779", "loyalty_enrolment:2714/202779", "900", None, 2),
        ("loyalty_issue:2714/202779", "loyalty_earn:974", None, "5001", 1),
    ]
    assert entry.cancels == "ret-1"
    assert "11223569865" not in entry.model_dump_json()


def test_an_entry_keeps_earlier_items_of_actions_this_run_did_not_reach() -> None:
    first = RevokeLoyaltyEarn(action_id="a", target=TARGET, earn_ids=[974], **WHY)
    second = RevokeLoyaltyEarn(action_id="b", target=TARGET, earn_ids=[975], **WHY)
    revoked = ItemResult(item="loyalty_earn:974", status=ActionStatus.REVOKED)
    earlier = entry_of(
        event(), _plan(first, second), [_result("a", "revoke_loyalty_earn", revoked)], attempt=1
    )
    again = ItemResult(item="loyalty_earn:975", status=ActionStatus.REVOKED)

    entry = entry_of(
        event(),
        _plan(first, second),
        [_result("b", "revoke_loyalty_earn", again)],
        attempt=2,
        earlier=earlier,
    )

    assert [(i.action_id, i.attempt) for i in entry.items] == [("a", 1), ("b", 2)]


def test_a_customer_mark_tells_another_customer_apart_and_keeps_no_contact_data() -> None:
    tom = CustomerMark.of(CustomerRef(id=1, mobile="+11223569865", email="Tom@Example.com"))
    same = CustomerMark.of(CustomerRef(mobile="11223569865"))
    other = CustomerMark.of(CustomerRef(id=2, mobile="11223569865"))
    unrelated = CustomerMark.of(CustomerRef(external_id="X-1"))

    assert tom.same_as(same) is True
    assert tom.same_as(other) is False
    assert tom.same_as(unrelated) is None
    assert "11223569865" not in tom.model_dump_json()
    assert "tom@example.com" not in tom.model_dump_json().lower()


def test_a_replay_that_only_repeats_what_was_done_keeps_the_first_hand_account() -> None:
    issue = IssueLoyaltyEarn(action_id="i", target=TARGET, replaces_earn_id=974, **WHY)
    made = ItemResult(
        item="loyalty_issue:202779/x", status=ActionStatus.RESTORED, detail={"earned_id": "5001"}
    )
    first = entry_of(event(), _plan(issue), [_result("i", "issue_loyalty_earn", made)], attempt=1)
    repeated = ItemResult(item="loyalty_issue:202779/x", status=ActionStatus.ALREADY_RESTORED)

    again = entry_of(
        event(),
        _plan(issue),
        [_result("i", "issue_loyalty_earn", repeated)],
        attempt=1,
        earlier=first,
    )

    assert again.items == first.items
    assert (again.items[0].status, again.items[0].earned_id) == (ActionStatus.RESTORED, "5001")


def test_a_claim_stands_as_revokes_one_action_per_loyalty_item_cart_promotion_and_series() -> None:
    cart, earn_1, earn_2 = "5f1a2b3c4d5e6f7a8b9c0d1e", "0" * 23 + "1", "0" * 23 + "2"
    cancelled = CancelledReturn.model_validate(
        {
            "return_event_id": "ret-1",
            "taken_back": {
                "loyalty_promotions": [
                    {
                        "program_id": 2714,
                        "promotion_id": 202090,
                        "promotion_type": "DIRECT",
                        "earn_ids": [957, 958],
                    }
                ],
                "cart_promotions": [{"promotion_id": cart, "earn_ids": [earn_1, earn_2]}],
                "coupons": [{"series_id": 415446, "codes": ["A", "B"]}],
            },
            "enrolments_revoked": [
                {
                    "program_id": 2714,
                    "promotion_id": 202779,
                    "promotion_type": "LOYALTY_EARNING",
                    "issual_id": "iss-1",
                }
            ],
        }
    )

    record = ReturnRecord.claimed_by(cancelled)

    assert record.claimed
    assert record.event_id == "ret-1"
    assert {item.status for item in record.items} == {ActionStatus.REVOKED}
    assert [(i.action_id, i.kind, i.item) for i in record.items] == [
        ("claim:loyalty_earn:957", "revoke_loyalty_earn", "loyalty_earn:957"),
        ("claim:loyalty_earn:958", "revoke_loyalty_earn", "loyalty_earn:958"),
        (
            "claim:loyalty_enrolment:2714/202779",
            "revoke_loyalty_enrolment",
            "loyalty_enrolment:2714/202779",
        ),
        (f"claim:cart:{cart}", "revoke_cart_earn", f"cart_earn:{earn_1}"),
        (f"claim:cart:{cart}", "revoke_cart_earn", f"cart_earn:{earn_2}"),
        ("claim:coupons:415446", "revoke_coupon_codes", "coupon:A"),
        ("claim:coupons:415446", "revoke_coupon_codes", "coupon:B"),
    ]
    earn, _, enrolment, cart_earn, _, coupon, _ = record.items
    assert (earn.earn_id, earn.loyalty is not None and earn.loyalty.key) == (957, "2714/202090")
    assert enrolment.issual_id == "iss-1"
    assert (cart_earn.promotion, coupon.promotion) == (cart, "415446")
