"""The replay's choice and its preview: what is replayed, skipped, not made again, called."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from rich.console import Console

from service.actions import (
    Action,
    CouponCustomer,
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
from service.ledger import LedgerFacts
from service.operate.history import History
from service.operate.ledger import LedgerBook
from service.operate.preview import (
    calls,
    choose,
    facts_of,
    render_summary,
    summarise,
    touches,
)
from service.operate.replay import ReplayRequest, new_manifest, outgoing_of
from service.operate.sources import Candidate, SourceKind, candidate
from service.outcome import ActionStatus
from service.pipeline.plan import Planner
from service.pipeline.replays import REPLAY_ALLOW_CANCELLED_HEADER
from service.pipeline.state import EventState
from service.policy_file import load_policy
from service.settings import Settings
from service.wiring import make_planner
from tests.factories import event_bytes, event_dict
from tests.unit.operate.build import entry, issued, state, state_record, taken
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
    def plan(event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /) -> Plan:
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
    free = RevokeCouponCodes(action_id="c", series_id=9, codes=codes, no_generic_code=True, **WHY)
    assert calls(free) == ("coupon_revoke", 3)
    # A series not declared free of generic codes: one a call, the customer named or not.
    named = RevokeCouponCodes(
        action_id="c", series_id=9, codes=codes, customer=CouponCustomer(id=7), **WHY
    )
    assert calls(named) == ("coupon_revoke", 120)
    unnamed = RevokeCouponCodes(action_id="c", series_id=9, codes=codes, **WHY)
    assert calls(unnamed) == ("coupon_revoke", 120)
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


def _ledger(*states: EventState) -> LedgerBook:
    book = LedgerBook()
    for offset, found in enumerate(states):
        book.add(state_record(found, offset))
    return book


def _cancellation(event_id: str, of: str, offset: int) -> Candidate:
    event = event_dict(
        event_id=event_id,
        return_type="CANCELLED",
        amounts={"before": "0", "after": "120.00"},
        earned={},
        cancelled_return={"return_event_id": of, "taken_back": {"loyalty_promotions": []}},
    )
    return candidate(f"returns:0:{offset}", json.dumps(event).encode())


def _text(renderable: object) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(renderable)
    return buffer.getvalue()


# A failed return that evt-can later cancelled: its give-back restored what it took.
CANCELLED_SINCE = (
    state(entry("evt-ret", taken(974))),
    state(entry("evt-can", issued(974), cancels="evt-ret")),
)


def test_a_return_a_cancellation_gave_back_since_is_held_back_naming_the_cancellation() -> None:
    selection = choose(
        [_event("evt-ret", 0), _event("evt-other", 1)],
        _history(("evt-ret", "failed", [])),
        DEFAULT_RULES,
        NOW,
        source="outcomes (o)",
        records_read=2,
        ledger=_ledger(*CANCELLED_SINCE),
    )

    assert [c.event.event_id for c in selection.chosen] == ["evt-other"]
    [held] = selection.held_back
    assert held.event_id == "evt-ret"
    assert "cancelled by evt-can since" in held.why
    assert "--include-cancelled" in held.why
    assert selection.selected == 2

    summary = summarise(selection)
    assert (summary.held_back_as_cancelled, summary.to_replay) == (1, 1)
    assert [(s.event_id, s.why) for s in summary.skipped] == [("evt-ret", held.why)]
    assert summary.cancelled_allowed == []
    text = _text(render_summary(summary))
    assert "held back as cancelled" in text
    assert "evt-ret (returns:0:0): cancelled by evt-can since" in text


def test_include_cancelled_replays_the_return_and_its_record_allows_it() -> None:
    request = ReplayRequest(source=SourceKind.OUTCOMES, reason="audit", include_cancelled=True)
    selection = choose(
        [_event("evt-ret", 0), _event("evt-other", 1)],
        History(),
        DEFAULT_RULES,
        NOW,
        source="outcomes (o)",
        records_read=2,
        ledger=_ledger(*CANCELLED_SINCE),
        include_cancelled=request.include_cancelled,
    )

    assert [(c.event.event_id, c.allow_cancelled) for c in selection.chosen] == [
        ("evt-ret", True),
        ("evt-other", False),
    ]
    assert selection.held_back == []
    summary = summarise(selection)
    assert summary.cancelled_allowed == ["evt-ret"]
    assert "take back again ALLOWED" in _text(render_summary(summary))

    # Only the return the ledger showed cancelled carries the permission, and a resume
    # reads it back from the manifest.
    manifest = new_manifest(selection, request, Settings(), NOW)
    assert manifest.parameters.include_cancelled
    assert [e.allow_cancelled for e in manifest.entries] == [True, False]
    allowed = [
        dict(item.headers).get(REPLAY_ALLOW_CANCELLED_HEADER)
        for item in outgoing_of(manifest, selection)
    ]
    assert allowed == [b"1", None]


def test_a_cancellation_is_never_held_back_by_its_own_return() -> None:
    selection = choose(
        [_cancellation("evt-can", "evt-ret", 0)],
        History(),
        DEFAULT_RULES,
        NOW,
        source="t",
        records_read=1,
        ledger=_ledger(*CANCELLED_SINCE),
        include_done=True,
    )
    assert [c.event.event_id for c in selection.chosen] == ["evt-can"]
    assert selection.held_back == []


def test_give_backs_the_ledger_shows_made_are_kept_back_with_the_outcomes_ones() -> None:
    history = _history(("evt-a", "failed", [action("enrol", "enrol_loyalty", "restored")]))
    # The outcome of the attempt that issued the earn was never written (a crash, a lost
    # outcome): the ledger still shows it.
    ledger = _ledger(
        state(entry("evt-a", issued(action_id="issue", status=ActionStatus.UNCONFIRMED)))
    )
    selection = choose(
        [_event("evt-a", 0)], history, GIVE_BACK, NOW, source="t", records_read=1, ledger=ledger
    )
    [chosen] = selection.chosen
    assert chosen.issued == frozenset({"enrol", "issue"})
    assert chosen.kept_back == ["enrol", "issue"]
    assert summarise(selection).give_backs_not_made_again == 2


def test_a_cancellation_is_planned_from_what_the_ledger_says_its_return_took() -> None:
    ret = state(entry("evt-ret", taken(974), taken(975, status=ActionStatus.NOT_FOUND)))
    first = state(entry("evt-first", cancels="evt-ret"))
    mine = state(entry("evt-can", cancels="evt-ret"))
    cancel = _cancellation("evt-can", "evt-ret", 0).event
    assert cancel is not None

    facts = facts_of(cancel, _ledger(ret, mine))
    assert facts is not None
    assert facts.returned is not None
    assert (facts.returned.event_id, facts.returned.cancelled_by) == ("evt-ret", None)
    assert [i.item for i in facts.returned.items] == ["loyalty_earn:974", "loyalty_earn:975"]

    # Another event cancelled it first: the service gives nothing back again.
    later = facts_of(cancel, _ledger(ret, first, mine))
    assert later is not None
    assert later.returned is not None
    assert later.returned.cancelled_by == "evt-first"

    # The ledger does not know the return, or the return is not finished: no record.
    assert facts_of(cancel, _ledger()) == LedgerFacts()
    assert facts_of(cancel, _ledger(state(entry("evt-ret"), phase="retrying"))) == LedgerFacts()
    # A return gets no facts: it is planned as taken back.
    other = _event("evt-x", 1).event
    assert other is not None
    assert facts_of(other, _ledger(*CANCELLED_SINCE)) is None

    seen: list[LedgerFacts | None] = []

    def recording(event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /) -> Plan:
        seen.append(facts)
        return DEFAULT_RULES(event, now, facts)

    selection = choose(
        [_cancellation("evt-can", "evt-ret", 0)],
        History(),
        recording,
        NOW,
        source="t",
        records_read=1,
        ledger=_ledger(ret, mine),
    )
    assert seen == [facts]
    [chosen] = selection.chosen
    # The earn the return revoked comes back; the one it did not find does not.
    assert [a.kind for a in chosen.plan.actions if a.kind == "issue_loyalty_earn"] == [
        "issue_loyalty_earn"
    ]
