"""Trouble: stop taking work, settle what is in flight, rewind, and pause for an outage.

Capillary down (the probe failed too) or a partition's transaction failed: nothing is
published for the events in hand. New starts stop, running events finish or fail, finished
work is committed, each broken partition starts over from Kafka, every partition is read
again from its first unfinished record, and for an outage the consumer pauses while
Capillary is probed (``outage.py``).
"""

from __future__ import annotations

import asyncio

from service.errors import BrokerError
from service.pipeline.commit import CommitStep
from service.pipeline.consume import Intake
from service.pipeline.outage import Outage
from service.pipeline.partition import OwnedPartition
from service.pipeline.records import RecordSource
from service.pipeline.schedule import Scheduler


class Trouble:
    """What went wrong since the last recovery, and the recovery."""

    def __init__(
        self,
        *,
        source: RecordSource,
        scheduler: Scheduler,
        intake: Intake,
        commits: CommitStep,
        owned: dict[int, OwnedPartition],
        outage: Outage,
        wake: asyncio.Event,
    ) -> None:
        self._source = source
        self._scheduler = scheduler
        self._intake = intake
        self._commits = commits
        self._owned = owned
        self._outage = outage
        self._wake = wake
        self._reason: str | None = None
        self._broken: dict[int, BrokerError] = {}
        self.active = False
        """Set from the first trouble until the recovery has settled it."""

    def broken(self, partition: int) -> bool:
        """Whether ``partition``'s transaction failed: it commits nothing until rebuilt."""
        return partition in self._broken

    def outage(self, reason: str) -> None:
        """Capillary is down: settle, then pause until it answers."""
        self._reason = self._reason or reason
        self._raise()

    def failed(self, partition: int, exc: BrokerError) -> None:
        """A transaction of ``partition`` failed: settle, then start it over from Kafka."""
        self._broken.setdefault(partition, exc)
        self._raise()

    async def recover(self, stop: asyncio.Event) -> None:
        """Settle what is in flight, commit what finished, rewind; pause if Capillary is down."""
        async with self._source.in_flight:  # no rebalance halfway through
            self._intake.drop(read_again=True)
            for job in self._scheduler.withdraw():
                part = self._owned.get(job.record.partition)
                if part is not None:
                    part.read_again(job.record.topic, job.record.offset)
            await self._scheduler.drain()
            await self._commits.commit()
            reason, broken = self._reason, self._broken
            self._reason, self._broken, self.active = None, {}, False
            for partition, exc in sorted(broken.items()):
                await self._commits.rebuild(partition, exc)
            for part in self._owned.values():
                for topic, offset in part.rewind().items():
                    if part.ready:
                        self._source.seek(topic, part.number, offset)
            self._scheduler.resume()
        if reason is not None:
            await self._outage.pause(reason, stop)

    def _raise(self) -> None:
        # Stop starting events; the loop settles, rewinds and (for an outage) pauses.
        self.active = True
        self._scheduler.hold()
        self._wake.set()


__all__ = ["Trouble"]
