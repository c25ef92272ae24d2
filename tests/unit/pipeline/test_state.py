"""state: what each event id reached, restored per partition, packed, forgotten after the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.outcome import OutcomeStatus
from service.pipeline.state import EventState, Intent, OutcomeRef, StateStore
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
    assert started.intents == (intent,)
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
