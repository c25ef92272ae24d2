"""state: what each event id reached, restored per partition, packed, forgotten after the window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from service.errors import BrokerError
from service.events import ReturnType
from service.ledger import CustomerMark, LedgerEntry, LedgerItem
from service.outcome import ActionStatus, OutcomeStatus
from service.pipeline.state import EventState, Intent, OutcomeRef, Progress, StateStore
from tests.fakes import FakeStateReader

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _done(event_id: str, at: datetime, offset: int = 7) -> EventState:
    return EventState(
        event_id=event_id,
        phase="done",
        at=at,
        input_partition=1,
        input_offset=offset,
        outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.NEEDS_CHECK),
    )


async def test_restore_keeps_done_and_started_states_and_reads_them_back() -> None:
    reader = FakeStateReader()
    reader.put(1, _done("a", NOW - timedelta(days=1)))
    intent = Intent(action_id="issue", kind="issue_loyalty_earn", customer="id:1", promotion="2/3")
    reader.put(
        1,
        EventState(
            event_id="b",
            phase="started",
            at=NOW,
            input_partition=1,
            input_offset=8,
            intents=[intent],
        ),
    )
    store = StateStore(reader, window=timedelta(days=35))
    assert await store.restore(1, NOW) == 2

    done = store.lookup(1, "a", NOW)
    assert done is not None
    assert (done.phase, done.input_offset, done.outcome) == (
        "done",
        7,
        OutcomeRef(partition=2, offset=40, status=OutcomeStatus.NEEDS_CHECK),
    )
    started = store.lookup(1, "b", NOW)
    assert started is not None
    assert started.intents == [intent]
    assert store.lookup(1, "c", NOW) is None
    assert store.lookup(2, "a", NOW) is None  # another partition's state is not ours


async def test_restore_skips_what_is_older_than_the_window_and_tombstones() -> None:
    reader = FakeStateReader()
    reader.put(1, _done("old", NOW - timedelta(days=36)))
    reader.put(1, _done("gone", NOW))
    reader.partitions[1].append((b"gone", None))
    store = StateStore(reader, window=timedelta(days=35))
    assert await store.restore(1, NOW) == 0


async def test_expire_forgets_what_the_window_left_behind_while_running() -> None:
    store = StateStore(FakeStateReader(), window=timedelta(days=35))
    await store.restore(1, NOW)
    store.remember(1, _done("early", NOW - timedelta(days=30)))
    store.remember(1, _done("late", NOW))
    later = NOW + timedelta(days=6)

    assert store.expire(later) == 1
    assert store.size() == 1
    assert store.lookup(1, "late", later) is not None


def _ledger(event_id: str, cancels: str | None = None) -> LedgerEntry:
    return LedgerEntry(
        event_id=event_id,
        return_type=ReturnType.CANCELLED if cancels else ReturnType.FULL,
        order_id="ORD-1",
        customer=CustomerMark(id=555567088),
        cancels=cancels,
        items=[
            LedgerItem(
                action_id="revoke_loyalty_earn:2714/202090:957",
                kind="revoke_loyalty_earn",
                item="loyalty_earn:957",
                status=ActionStatus.REVOKED,
                earn_id=957,
            )
        ],
    )


async def test_a_done_state_is_packed_and_its_ledger_read_back_from_its_record() -> None:
    reader = FakeStateReader()
    reader.put(1, _done("noise", NOW))
    ret = _done("ret-1", NOW).model_copy(update={"ledger": _ledger("ret-1")})
    reader.put(1, ret)
    store = StateStore(reader, window=timedelta(days=35))
    await store.restore(1, NOW)

    assert store.lookup(1, "ret-1", NOW) is not None
    assert reader.fetches == 0  # memory keeps the record's offset, not the entry
    assert await store.entry(1, "ret-1") == ret
    assert reader.fetches == 1
    assert await store.entry(1, "nobody") is None


async def test_an_entry_not_where_it_was_committed_is_a_broker_error() -> None:
    reader = FakeStateReader()
    store = StateStore(reader, window=timedelta(days=35))
    await store.restore(1, NOW)
    store.remember(1, _done("ret-1", NOW), offset=5)  # nothing at offset 5

    with pytest.raises(BrokerError, match="not where it was committed"):
        await store.entry(1, "ret-1")


async def test_the_first_cancellation_of_a_return_is_known_after_a_restore() -> None:
    reader = FakeStateReader()
    reader.put(1, _done("ret-1", NOW).model_copy(update={"ledger": _ledger("ret-1")}))
    reader.put(1, _done("can-1", NOW).model_copy(update={"ledger": _ledger("can-1", "ret-1")}))
    # A second cancellation decided against the return records no `cancels`: only the first.
    reader.put(1, _done("can-2", NOW).model_copy(update={"ledger": _ledger("can-2")}))
    store = StateStore(reader, window=timedelta(days=35))
    await store.restore(1, NOW)

    assert store.cancellation_of(1, "ret-1") == "can-1"
    assert store.cancellation_of(1, "ret-2") is None
    assert store.cancellation_of(2, "ret-1") is None


async def test_a_cancellation_in_flight_counts_as_the_first_and_expires_with_its_event() -> None:
    store = StateStore(FakeStateReader(), window=timedelta(days=35))
    await store.restore(1, NOW)
    started = EventState(
        event_id="can-1",
        phase="started",
        at=NOW - timedelta(days=30),
        input_partition=1,
        input_offset=9,
        ledger=_ledger("can-1", "ret-1"),
    )
    store.remember(1, started)
    assert store.cancellation_of(1, "ret-1") == "can-1"

    store.expire(NOW + timedelta(days=6))
    assert store.cancellation_of(1, "ret-1") is None


async def test_a_routed_record_keeps_the_partition_of_the_producers_record() -> None:
    # Handled on partition 1, read from partition 2 of the returns topic: both are kept.
    reader = FakeStateReader()
    reader.put(1, _done("e", NOW).model_copy(update={"input_partition": 2, "input_offset": 11}))
    store = StateStore(reader, window=timedelta(days=35))
    await store.restore(1, NOW)
    found = store.lookup(1, "e", NOW)
    assert found is not None
    assert (found.input_partition, found.input_offset) == (2, 11)


def test_the_ledger_is_a_state_records_last_field() -> None:
    # A restore parses a done record's head only: what comes before the ledger.
    state = _done("can-1", NOW).model_copy(update={"ledger": _ledger("can-1", "ret-1")})
    value = json.loads(state.to_bytes())
    assert list(value)[-1] == "ledger"
    assert list(EventState.model_fields)[-1] == "ledger"


async def test_a_restore_reads_a_done_records_head_and_what_it_cancels_whatever_its_text() -> None:
    tricky = _ledger("can-1", "ret-1").model_copy(
        update={"order_id": 'ORD ","ledger":{"cancels":"ret-9"} "cancels":"ret-8"'}
    )
    reader = FakeStateReader()
    reader.put(1, _done("can-1", NOW).model_copy(update={"ledger": tricky}))
    store = StateStore(reader, window=timedelta(days=35))
    await store.restore(1, NOW)

    found = store.lookup(1, "can-1", NOW)
    assert found is not None
    assert found.outcome == OutcomeRef(partition=2, offset=40, status=OutcomeStatus.NEEDS_CHECK)
    assert store.cancellation_of(1, "ret-1") == "can-1"
    assert store.cancellation_of(1, "ret-9") is None
    assert store.cancellation_of(1, "ret-8") is None
    assert (await store.entry(1, "can-1")) is not None


def test_state_and_progress_records_are_the_compact_json_of_their_models() -> None:
    # to_bytes skips the str model_dump_json makes: the bytes must not change.
    state = _done("é-1", NOW).model_copy(update={"ledger": _ledger("é-1")})
    assert state.to_bytes() == state.model_dump_json(exclude_defaults=True).encode()
    for progress in (Progress(), Progress(finished={"returns": [3, 5], "retry": []})):
        assert progress.to_bytes() == progress.model_dump_json().encode()


@pytest.mark.parametrize("status", list(OutcomeStatus))
async def test_a_committed_done_state_keeps_every_status_and_position(
    status: OutcomeStatus,
) -> None:
    store = StateStore(FakeStateReader(), window=timedelta(days=35))
    await store.restore(1, NOW)
    ref = OutcomeRef(partition=65535, offset=(1 << 44) - 1, status=status)
    state = _done("a", NOW, offset=(1 << 44) - 2).model_copy(update={"outcome": ref})
    store.remember(1, state, offset=(1 << 44) - 3)
    found = store.lookup(1, "a", NOW)
    assert found is not None
    assert (found.phase, found.input_partition, found.input_offset) == ("done", 1, (1 << 44) - 2)
    assert found.outcome == ref
    assert found.outcome is not None
    assert found.outcome.status is status
