"""The ledger book: the state topic read whole, the latest state of each event id kept."""

from __future__ import annotations

from dataclasses import replace

from service.kafka.span import TopicRecord
from service.operate.ledger import LedgerBook
from service.outcome import ActionStatus
from tests.unit.operate.build import entry, issued, state, state_record, taken


def _book(*records: TopicRecord) -> LedgerBook:
    book = LedgerBook()
    for record in records:
        book.add(record)
    return book


def test_the_book_keeps_the_latest_state_of_each_event_id() -> None:
    started = state(entry("ret-1"), phase="started")
    done = state(entry("ret-1", taken(974)), minutes=1)
    book = _book(state_record(started, 0), state_record(done, 1))

    assert len(book) == 1
    found = book.state("ret-1")
    assert found is not None
    assert found.phase == "done"
    assert book.entry("ret-1") == done.ledger
    assert book.state("ret-unknown") is None
    assert book.read == 2


def test_a_tombstone_forgets_the_event_its_order_and_its_cancellation() -> None:
    cancel = state(entry("can-1", issued(), cancels="ret-1"))
    book = _book(state_record(cancel, 0), state_record(None, 1, key="can-1"))

    assert "can-1" not in book
    assert book.entry("can-1") is None
    assert book.first_cancellation("ret-1") is None
    assert book.of_order("ORD-1") == []


def test_unreadable_records_are_skipped_and_counted_and_the_earlier_state_stands() -> None:
    done = state(entry("ret-1", taken()))
    book = _book(
        state_record(done, 0),
        state_record(b'{"event_id": "ret-1", "phase": "someday"}', 1, key="ret-1"),
        state_record(b"not json", 2, key="ret-2"),
        replace(state_record(done, 3), key=None),
    )

    assert book.entry("ret-1") == done.ledger
    assert "ret-2" not in book
    assert book.skipped.count == 3
    assert book.skipped.examples[0].startswith("return-handler-state:0:1: not an event state")
    assert "no key" in book.skipped.examples[2]


def test_the_first_cancellation_is_the_first_by_offset_on_the_returns_partition() -> None:
    ret = state(entry("ret-1", taken()))
    first = entry("can-a", issued(), cancels="ret-1")
    later = entry("can-b", cancels="ret-1")
    book = _book(
        state_record(ret, 0),
        state_record(state(first, phase="started"), 1),
        state_record(state(later), 2),
        # can-a's outcome is committed after can-b's: its first record still comes first.
        state_record(state(first), 3),
    )

    assert book.first_cancellation("ret-1") == "can-a"
    assert book.cancellations("ret-1") == ["can-a", "can-b"]
    assert book.first_cancellation("can-a") is None


def test_a_cancellation_on_the_returns_partition_comes_before_an_earlier_one_elsewhere() -> None:
    ret = state(entry("ret-1", taken()))
    # The same cancellation sent by a producer whose partitioner differs: another partition,
    # written earlier; the service decided the one on the return's partition.
    elsewhere = state(entry("can-x", cancels="ret-1"))
    home = state(entry("can-y", issued(), cancels="ret-1"))
    book = _book(
        state_record(ret, 5, partition=1, minutes=0),
        state_record(elsewhere, 0, partition=2, minutes=1),
        state_record(home, 9, partition=1, minutes=2),
    )

    assert book.cancellations("ret-1") == ["can-y", "can-x"]


def test_a_state_that_no_longer_cancels_the_return_leaves_its_cancellations() -> None:
    book = _book(
        state_record(state(entry("can-1", cancels="ret-1")), 0),
        state_record(state(entry("can-1", cancels="ret-2")), 1),
    )

    assert book.cancellations("ret-1") == []
    assert book.cancellations("ret-2") == ["can-1"]


def test_the_entries_of_an_order_come_oldest_first() -> None:
    book = _book(
        state_record(state(entry("can-1", issued(), cancels="ret-1"), minutes=5), 0),
        state_record(state(entry("ret-1", taken()), minutes=1), 1),
        state_record(state(entry("ret-9", taken(975), order_id="ORD-9")), 2),
        # A state without a ledger (written before the ledger existed) has no order.
        state_record(state(None, event_id="ret-old"), 3),
    )

    assert [e.event_id for e in book.of_order("ORD-1")] == ["ret-1", "can-1"]
    assert [e.event_id for e in book.of_order("ORD-9")] == ["ret-9"]
    assert book.of_order("ORD-NOPE") == []


def test_given_back_lists_the_give_backs_made_or_maybe_made() -> None:
    cancel = entry(
        "can-1",
        issued(974, action_id="issue:974"),
        issued(975, action_id="issue:975", status=ActionStatus.UNCONFIRMED),
        issued(976, action_id="issue:976", status=ActionStatus.ALREADY_RESTORED),
        issued(977, action_id="issue:977", status=ActionStatus.FAILED),
        issued(978, action_id="enrol:978", kind="enrol_loyalty", status=ActionStatus.RESTORED),
        cancels="ret-1",
    )
    book = _book(state_record(state(cancel), 0))

    assert book.given_back("can-1") == frozenset(
        {"issue:974", "issue:975", "issue:976", "enrol:978"}
    )
    assert book.given_back("ret-unknown") == frozenset()
