"""The replay's choice and its preview: what is replayed, skipped, not made again, called."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from service.actions import (
    Action,
    Decision,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Plan,
    Report,
    ReportKind,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeLoyaltyEarn,
)
from service.events import LoyaltyPromotionType, ReturnEvent
from service.operate.history import History
from service.operate.preview import calls, choose, render_summary, summarise, touches
from service.operate.sources import Candidate, candidate
from service.pipeline.process import Planner
from service.policy_file import load_policy
from service.wiring import make_planner
from tests.factories import event_bytes
from tests.unit.operate.replay_builders import action, outcome, outcome_record

NOW = datetime(2026, 11, 25, tzinfo=UTC)
WHY = {"reason_code": "test", "reason": "test"}
TARGET = LoyaltyTarget(
    program_id=2714,
    promotion_id=202779,
    promotion_type=LoyaltyPromotionType.LOYALTY_EARNING,
    identifier_name="id",
    identifier_value="555567088",
    source="INSTORE",
)
DEFAULT_RULES = make_planner(load_policy(None))


def _planner(*actions: Action) -> Planner:
    def plan(event: ReturnEvent, now: datetime) -> Plan:
        return Plan(
            event_id=event.event_id,
            decision=Decision.TAKE_BACK,
            summary="test",
            decided_at=now,
            policy_version="test",
            actions=list(actions),
        )

    return plan


GIVE_BACK = _planner(
    EnrolLoyalty(action_id="enrol", target=TARGET, **WHY),
    IssueLoyaltyEarn(action_id="issue", target=TARGET, **WHY),
)


def _event(event_id: str, offset: int) -> Candidate:
    return candidate(f"returns:0:{offset}", event_bytes(event_id=event_id))


def _history(*pairs: tuple[str, str, list[dict[str, object]]]) -> History:
    history = History()
    for offset, (event_id, status, actions) in enumerate(pairs):
        history.add(outcome_record(outcome(event_id, status, actions=actions), 0, offset))
    return history


def test_choose_replays_each_event_once_and_leaves_out_invalid_and_done_ones() -> None:
    candidates = [
        _event("evt-a", 0),
        candidate("returns:0:1", b"not json"),
        _event("evt-done", 2),
        _event("evt-a", 3),
        _event("evt-b", 4),
    ]
    history = _history(("evt-done", "completed", []), ("evt-a", "failed", []))
    selection = choose(candidates, history, DEFAULT_RULES, NOW, source="t", records_read=5)
    assert [(c.sequence, c.event.event_id) for c in selection.chosen] == [
        (1, "evt-a"),
        (2, "evt-b"),
    ]
    assert [c.source for c in selection.invalid] == ["returns:0:1"]
    assert [c.source for c in selection.repeated] == ["returns:0:3"]
    assert [s.event_id for s in selection.done] == ["evt-done"]
    assert selection.selected == 5

    again = choose(
        candidates, history, DEFAULT_RULES, NOW, source="t", records_read=5, include_done=True
    )
    assert [c.event.event_id for c in again.chosen] == ["evt-a", "evt-done", "evt-b"]


def test_give_backs_an_earlier_outcome_made_are_kept_back_unless_reissue_is_allowed() -> None:
    history = _history(
        ("evt-a", "failed", [action("enrol", "enrol_loyalty", "restored")]),
        ("evt-b", "failed", [action("issue", "issue_loyalty_earn", "restored")]),
    )
    selection = choose(
        [_event("evt-a", 0), _event("evt-b", 1)],
        history,
        GIVE_BACK,
        NOW,
        source="t",
        records_read=2,
        allow_reissue=frozenset({"evt-b", "evt-elsewhere"}),
    )
    a, b = selection.chosen
    assert a.issued == frozenset({"enrol"})
    assert a.kept_back == ["enrol"]
    assert b.allow_reissue
    assert b.kept_back == []
    assert selection.reissue_unselected == ["evt-elsewhere"]

    summary = summarise(selection)
    assert summary.give_backs_not_made_again == 1
    assert [(k.event_id, k.action_ids) for k in summary.kept_back] == [("evt-a", ["enrol"])]
    # evt-a's ENROL is not made again; its EARN and both of evt-b's are.
    assert summary.calls_by_endpoint == {"loyalty_enrol": 3}
    assert summary.actions_by_kind == {"enrol_loyalty": 2, "issue_loyalty_earn": 2}
    assert summary.reissue_allowed == ["evt-b"]


def test_the_preview_counts_calls_per_endpoint_as_the_client_splits_them() -> None:
    assert calls(RevokeLoyaltyEarn(action_id="l", target=TARGET, earn_ids=[1, 2], **WHY)) == (
        "loyalty_revoke",
        1,
    )
    codes = [f"C{n}" for n in range(120)]
    assert calls(RevokeCouponCodes(action_id="c", series_id=9, codes=codes, **WHY)) == (
        "coupon_revoke",
        3,
    )
    # A generic series' codes and codes without a series go one by one.
    generic = RevokeCouponCodes(action_id="g", series_id=9, codes=codes[:4], generic=True, **WHY)
    assert calls(generic) == ("coupon_revoke", 4)
    assert calls(RevokeCouponCodes(action_id="n", series_id=None, codes=["a", "b"], **WHY)) == (
        "coupon_revoke",
        2,
    )
    cart = RevokeCartEarn(
        action_id="k", customer_id=1, promotion_id="a" * 24, earn_ids=["e"] * 1500, **WHY
    )
    assert calls(cart) == ("cart_revoke", 2)
    report = Report(action_id="r", report_kind=ReportKind.STILL_DESERVED, item="coupon:1", **WHY)
    assert calls(report) is None


def test_a_promotion_filter_keeps_events_whose_plan_calls_about_it() -> None:
    event = _event("evt-a", 0).event
    assert event is not None
    plan = DEFAULT_RULES(event, NOW)
    assert touches(plan, "202090")
    assert touches(plan, "2714/202090")
    assert touches(plan, "69117663B1CFC114606FD7FB")
    assert not touches(plan, "202779")
    selection = choose(
        [_event("evt-a", 0), candidate("returns:0:1", b"not json")],
        History(),
        DEFAULT_RULES,
        NOW,
        source="t",
        records_read=2,
        promotion="202779",
    )
    assert selection.chosen == []
    assert selection.not_matching == 1
    # An invalid record cannot show it touches the promotion: not selected at all.
    assert selection.invalid == []


def test_the_summary_table_shows_the_counts_and_what_was_left_out() -> None:
    history = _history(("evt-done", "completed", []))
    selection = choose(
        [_event("evt-a", 0), _event("evt-done", 1), candidate("returns:0:2", b"")],
        history,
        DEFAULT_RULES,
        NOW,
        source="returns (r)",
        records_read=3,
    )
    summary = summarise(selection)
    assert (summary.selected, summary.still_invalid, summary.skipped_as_done) == (3, 1, 1)
    assert summary.to_replay == 1
    assert summary.actions_by_kind == {
        "revoke_cart_earn": 1,
        "revoke_coupon_codes": 1,
        "revoke_loyalty_earn": 1,
    }
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None).print(render_summary(summary))
    text = buffer.getvalue()
    assert "Replay preview: returns (r)" in text
    assert "calls loyalty_revoke" in text
    assert "limit 300/min" in text
    assert "returns:0:2: empty message" in text
    assert "evt-done (returns:0:1): its newest outcome is completed" in text
