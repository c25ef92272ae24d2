"""commit: start markers of many events in flight share transactions, on the real broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from service.clock import SystemClock
from service.ids import CountingIds
from service.kafka.committer import KafkaCommitter, _Wave
from service.kafka.headers import Envelope
from service.kafka.state_reader import KafkaStateReader
from service.pipeline.records import Committed, Finished, Record, RetryLater
from service.pipeline.state import EventState
from service.settings import KafkaSettings

ENVELOPE = Envelope.fixed("/test", "http://schemas.test/outcome-event.v1.json")


class _CountingCommitter(KafkaCommitter):
    """Counts the transactions actually run."""

    transactions = 0

    async def _transaction(self, partition: int, wave: _Wave) -> list[Committed]:
        self.transactions += 1
        return await super()._transaction(partition, wave)


async def test_start_markers_of_events_in_flight_share_transactions(kafka: KafkaSettings) -> None:
    committer = _CountingCommitter(kafka, clock=SystemClock(), ids=CountingIds(), envelope=ENVELOPE)
    await committer.open_partition(0)
    now = datetime.now(UTC)
    states = [
        EventState(event_id=f"evt-{n}", phase="started", at=now, input_partition=0, input_offset=n)
        for n in range(200)
    ]
    try:
        await asyncio.gather(*(committer.record_start(0, state) for state in states))
    finally:
        await committer.stop()

    # Every marker is committed (read_committed sees them all) in a few transactions.
    records = [r async for batch in KafkaStateReader(kafka).read(0) for r in batch]
    assert {key.decode() for key, _, _ in records} == {s.event_id for s in states}
    assert 1 <= committer.transactions <= 10


async def test_a_committed_state_record_is_read_back_at_its_offset(kafka: KafkaSettings) -> None:
    committer = KafkaCommitter(kafka, clock=SystemClock(), ids=CountingIds(), envelope=ENVELOPE)
    await committer.open_partition(1)
    now = datetime.now(UTC)
    started = EventState(
        event_id="evt-1", phase="started", at=now, input_partition=1, input_offset=4
    )
    retrying = started.model_copy(update={"phase": "retrying", "attempt": 2})
    record = Record(kafka.returns_topic, 1, 4, b"k", b"{}")
    reader = KafkaStateReader(kafka)
    try:
        await committer.record_start(1, started)
        [written] = await committer.commit(
            1, [Finished(record, RetryLater(record, "evt-1", 2, 0, "737"), retrying)], {}
        )
        # At once, without waiting for the last stable offset: memory keeps only the offset.
        fetched = await reader.fetch(1, written.offset)
        restored = [r async for batch in reader.read(1) for r in batch]
        again = [await reader.fetch(1, offset) for _, _, offset in restored]
    finally:
        await committer.stop()
        await reader.aclose()

    assert written.state == retrying
    assert fetched == (b"evt-1", retrying.to_bytes())
    # Every offset a restore reads finds its own record (transaction markers in between).
    assert again == [(key, value) for key, value, _ in restored]
    assert [value for _, value, _ in restored] == [started.to_bytes(), retrying.to_bytes()]
