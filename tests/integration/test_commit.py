"""commit: start markers of many events in flight share transactions, on the real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from service.clock import SystemClock
from service.pipeline.commit import KafkaCommitter, KafkaStateReader
from service.pipeline.records import Finished
from service.pipeline.state import EventState
from service.settings import KafkaSettings


class _CountingCommitter(KafkaCommitter):
    """Counts the transactions actually run."""

    transactions = 0

    async def _transaction(
        self,
        partition: int,
        finished: Sequence[Finished],
        offsets: Mapping[str, int],
        states: Sequence[EventState],
    ) -> list[EventState]:
        self.transactions += 1
        return await super()._transaction(partition, finished, offsets, states)


async def test_start_markers_of_events_in_flight_share_transactions(kafka: KafkaSettings) -> None:
    committer = _CountingCommitter(kafka, clock=SystemClock())
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
    records = await KafkaStateReader(kafka).read(0)
    assert {key.decode() for key, _ in records} == {s.event_id for s in states}
    assert 1 <= committer.transactions <= 10
