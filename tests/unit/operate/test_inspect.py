"""inspect: matching, newest first, and everything support needs in the rendering."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from rich.console import Console

from service.ledger import LedgerEntry
from service.operate.inspect import (
    FoundOutcome,
    as_json_line,
    ledger_json_line,
    ledger_of,
    matches,
    newest_first,
    nothing_found,
    render,
    render_ledger,
)
from service.operate.ledger import LedgerBook
from service.outcome import ActionStatus, FirstOutcome, OutcomeStatus, ReplayInfo, SourceRecord
from tests.unit.operate.build import (
    DAY,
    action,
    entry,
    issued,
    item,
    outcome,
    position,
    state,
    state_record,
    taken,
)


def _text(found: FoundOutcome) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(render(found))
    # The layout pads columns; what matters is what stands beside what.
    return re.sub(r" +", " ", console.export_text())


def test_matches_the_event_id_or_the_order_id_exactly() -> None:
    found = outcome(event_id="ret-1", order_id="ORD-100231")
    assert matches(found, "ret-1")
    assert matches(found, "ORD-100231")
    assert not matches(found, "ORD-10023")
    assert not matches(found, "ord-100231")


def test_newest_first_orders_by_processing_time_across_partitions() -> None:
    older = FoundOutcome(position=position(offset=9, partition=0), outcome=outcome(event_id="a"))
    newer = FoundOutcome(
        position=position(offset=0, partition=2),
        outcome=outcome(event_id="b", processed_at=DAY + timedelta(hours=1)),
    )
    same_time_later_offset = FoundOutcome(
        position=position(offset=10, partition=0), outcome=outcome(event_id="c")
    )
    assert [
        f.outcome.event.event_id for f in newest_first([older, newer, same_time_later_offset])
    ] == [
        "b",
        "c",
        "a",
    ]


def test_render_shows_what_was_taken_back_why_and_the_request_ids() -> None:
    taken = outcome(
        action(
            "revoke_loyalty_earn",
            item(ActionStatus.REVOKED, "loyalty_earn:974", code=200),
            request_ids=["req-aaa", "req-bbb"],
        ),
        action(
            "revoke_coupon_codes",
            item(
                ActionStatus.REFUSED_REDEEMED,
                "coupon:5500675094",
                code=682,
                detail={"clawback": "flagged"},
                message="coupon already redeemed",
            ),
            request_ids=["req-ccc"],
            reason="the coupon was issued by this order",
        ),
        action(
            "revoke_cart_earn",
            item(ActionStatus.FAILED, "cart_earn:69", code=503),
            request_ids=["req-ddd"],
            next_step="Replay the event: revokes are safe to repeat.",
        ),
        event_id="ret-20261120-0008",
        order_id="ORD-100315",
        status=OutcomeStatus.FAILED,
        offset=7,
    )
    text = _text(FoundOutcome(position=position(offset=3, partition=1), outcome=taken))

    assert text.startswith("ret-20261120-0008 · order ORD-100315 · customer 555567088\n")
    assert "processed 2026-11-20 10:00:00 UTC" in text
    assert "failed · take_back · FULL" in text
    assert "input returns:0:7" in text
    assert "outcome return-outcomes:1:3 (written 2026-11-20 10:00:00 UTC)" in text
    assert "replay no" in text
    assert "action 1 revoke_loyalty_earn revoked" in text
    assert "full return: everything the order earned goes back (full_return)" in text
    assert "loyalty_earn:974 revoked code 200" in text
    assert "request ids req-aaa, req-bbb" in text
    assert (
        'coupon:5500675094 refused_redeemed code 682 clawback=flagged "coupon already redeemed"'
        in text
    )
    assert "request ids req-ccc" in text
    assert "next step Replay the event: revokes are safe to repeat." in text


def test_render_of_a_replay_and_of_a_duplicate_says_so() -> None:
    replayed = outcome(
        action("revoke_loyalty_earn", item(ActionStatus.ALREADY_REVOKED), request_ids=["r-1"]),
        replay=ReplayInfo(
            replay_id="rpl-42",
            reason="Capillary was down",
            source="returns:0:7",
            of=SourceRecord(topic="returns", partition=0, offset=7),
            sequence=3,
        ),
    )
    duplicate = outcome(
        status=OutcomeStatus.DUPLICATE,
        duplicate_of=FirstOutcome(
            status=OutcomeStatus.COMPLETED,
            outcome_partition=0,
            outcome_offset=2,
            input_partition=0,
            input_offset=5,
        ),
    )
    replay_text = _text(FoundOutcome(position=position(), outcome=replayed))
    duplicate_text = _text(FoundOutcome(position=position(), outcome=duplicate))

    assert (
        "replay yes: 'Capillary was down' (replay rpl-42 #3 of returns:0:7, from returns:0:7)"
        in replay_text
    )
    assert "already_revoked" in replay_text
    assert (
        "duplicate of outcome partition 0 offset 2, completed; first delivery: input partition 0 "
        "offset 5" in duplicate_text
    )
    assert "actions none (nothing was called)" in duplicate_text


def test_json_line_is_the_position_and_the_outcome_as_published() -> None:
    found = FoundOutcome(position=position(offset=4), outcome=outcome(event_id="evt-9"))
    line = as_json_line(found)
    assert "\n" not in line
    data = json.loads(line)
    assert data["position"] == {
        "topic": "return-outcomes",
        "partition": 0,
        "offset": 4,
        "written_at": "2026-11-20T10:00:00Z",
    }
    assert data["outcome"] == json.loads(found.outcome.model_dump_json())


def test_nothing_found_names_the_id_the_topic_and_since() -> None:
    line = nothing_found("ORD-9", "return-outcomes", DAY)
    assert "\n" not in line
    assert "'ORD-9'" in line
    assert "return-outcomes" in line
    assert "since 2026-11-20 10:00:00 UTC" in line
    assert "--since" in line
    assert "whole topic" in nothing_found("ORD-9", "return-outcomes", None)


def _order_book() -> LedgerBook:
    """An order returned (one earn revoked, one not found), cancelled twice; another order."""
    book = LedgerBook()
    states = [
        state(entry("ret-1", taken(974), taken(975, status=ActionStatus.NOT_FOUND)), minutes=0),
        state(entry("can-1", issued(974, earned_id="1201"), cancels="ret-1"), minutes=5),
        state(entry("can-2", cancels="ret-1"), minutes=9),
        state(entry("ret-9", taken(976), order_id="ORD-9"), minutes=1),
    ]
    for offset, found in enumerate(states):
        book.add(state_record(found, offset))
    return book


def test_ledger_of_an_order_is_every_entry_of_the_order_oldest_first() -> None:
    found = ledger_of(_order_book(), "ORD-1")
    assert [s.event_id for s in found] == ["ret-1", "can-1", "can-2"]
    assert ledger_of(_order_book(), "ORD-NOPE") == []


def test_ledger_of_an_event_is_its_entry_and_its_return_or_its_cancellations() -> None:
    book = _order_book()
    assert [s.event_id for s in ledger_of(book, "can-1")] == ["ret-1", "can-1"]
    assert [s.event_id for s in ledger_of(book, "ret-1")] == ["ret-1", "can-1", "can-2"]
    assert [s.event_id for s in ledger_of(book, "ret-9")] == ["ret-9"]


def test_the_ledger_section_shows_what_each_event_took_and_gave_back_and_by_whom() -> None:
    book = _order_book()
    console = Console(record=True, width=160, color_system=None)
    console.print(render_ledger(ledger_of(book, "ORD-1"), book, "ORD-1", "rh-state"))
    text = re.sub(r" +", " ", console.export_text())

    assert text.startswith("Ledger of ORD-1 (rh-state)\n")
    assert "ret-1 · FULL · done 2026-11-20 10:00:00 UTC" in text
    assert "take back loyalty_earn:974 revoked code 200" in text
    assert "take back loyalty_earn:975 not_found" in text
    assert "cancelled by can-1 (first: gives back what this took back)" in text
    assert "cancelled by can-2 (after can-1: gives nothing back again)" in text
    assert "can-1 · CANCELLED · done 2026-11-20 10:05:00 UTC" in text
    assert "cancels ret-1 (gives back what it took)" in text
    assert (
        "give back loyalty_issue:2714/202090 restored code 200 replaces loyalty_earn:974 "
        "earned_id=1201" in text
    )
    assert "can-2 · CANCELLED · done 2026-11-20 10:09:00 UTC" in text
    assert "cancels ret-1 (after can-1: gives nothing back again)" in text
    assert "items none (no call reached Capillary)" in text


def test_the_ledger_section_without_entries_says_why_there_may_be_none() -> None:
    console = Console(record=True, width=160, color_system=None)
    console.print(render_ledger([], LedgerBook(), "ORD-1", "rh-state"))
    text = console.export_text()
    assert "Ledger of ORD-1 (rh-state)" in text
    assert "no entry: forgotten after the dedupe window" in text


def test_the_ledger_json_line_is_one_object_with_every_entry_as_the_service_keeps_it() -> None:
    found = ledger_of(_order_book(), "ORD-1")
    line = ledger_json_line(found)
    assert "\n" not in line
    data = json.loads(line)
    assert list(data) == ["ledger"]
    assert [e["event_id"] for e in data["ledger"]] == ["ret-1", "can-1", "can-2"]
    assert [LedgerEntry.model_validate(e) for e in data["ledger"]] == [s.ledger for s in found]
    [given] = data["ledger"][1]["items"]
    assert (given["status"], given["replaces"], given["earned_id"]) == (
        "restored",
        "loyalty_earn:974",
        "1201",
    )
    assert json.loads(ledger_json_line([])) == {"ledger": []}


def test_nothing_found_with_the_state_topic_names_both_topics() -> None:
    line = nothing_found("ORD-9", "return-outcomes", None, "rh-state")
    assert "\n" not in line
    assert "no outcome for 'ORD-9' in return-outcomes (in the whole topic)" in line
    assert "no ledger entry in rh-state" in line
    assert "RETURN_HANDLER_KAFKA__STATE_TOPIC" in line


def test_render_names_the_attempt_that_got_an_items_result() -> None:
    earlier = item(ActionStatus.REVOKED, "loyalty_earn:974", code=200).model_copy(
        update={"attempt": 1}
    )
    found = outcome(action("revoke_loyalty_earn", earlier, request_ids=["r-1"]))
    text = _text(FoundOutcome(position=position(), outcome=found))
    assert "loyalty_earn:974 revoked code 200 attempt 1" in text


def test_render_of_a_return_unknown_outcome_shows_its_status() -> None:
    unknown = outcome(
        action("report", status=ActionStatus.SKIPPED),
        status=OutcomeStatus.RETURN_UNKNOWN,
        event_id="can-7",
    )
    text = _text(FoundOutcome(position=position(), outcome=unknown))
    assert "status return_unknown · take_back · FULL" in text
