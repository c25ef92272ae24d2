"""Trouble: stop taking work, settle what is in flight, rewind, and pause for an outage.

Capillary down (the probe failed too) or a partition's transaction failed: nothing is
published for the events in hand. New starts stop, running events finish or fail, finished
work is committed, each broken partition starts over from Kafka, every partition is read
again from its first unfinished record, and for an outage the consumer pauses while
Capillary is probed (``outage.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from service.errors import BrokerError
from service.pipeline.commit import CommitStep
from service.pipeline.consume import Intake
from service.pipeline.outage import Outage


@dataclass(slots=True, eq=False, kw_only=True)
class Trouble:
    """What went wrong since the last recovery, and the recovery."""

    intake: Intake
    """Its source, scheduler and owned partitions are the ones settled and rewound."""
    commits: CommitStep
    outage: Outage
    wake: asyncio.Event
    """Set to wake the loop where it waits for room, so that it settles at once."""
    _reason: str | None = field(default=None, init=False, repr=False)
    _broken: dict[int, BrokerError] = field(default_factory=dict, init=False, repr=False)
    active: bool = field(default=False, init=False)
    """Set from the first trouble until the recovery has settled it."""

    def broken(self, partition: int) -> bool:
        """Whether ``partition``'s transaction failed: it commits nothing until rebuilt."""
        return partition in self._broken

    def capillary_down(self, reason: str) -> None:
        """Capillary is down: settle, then pause until it answers."""
        self._reason = self._reason or reason
        self._raise()

    def failed(self, partition: int, exc: BrokerError) -> None:
        """A transaction of ``partition`` failed: settle, then start it over from Kafka."""
        self._broken.setdefault(partition, exc)
        self._raise()

    async def recover(self, stop: asyncio.Event) -> None:
        """Settle what is in flight, commit what finished, rewind; pause if Capillary is down."""
        intake, scheduler = self.intake, self.intake.scheduler
        async with intake.source.in_flight:  # no rebalance halfway through
            intake.drop(read_again=True)
            for job in scheduler.withdraw():
                intake.read_again(job.record)
            await scheduler.drain()
            await self.commits.commit()
            reason, broken = self._reason, self._broken
            self._reason, self._broken, self.active = None, {}, False
            for partition, exc in sorted(broken.items()):
                await self.commits.rebuild(partition, exc)
            for part in intake.owned.values():
                for topic, offset in part.rewind().items():
                    if part.ready:
                        intake.source.seek(topic, part.number, offset)
            scheduler.resume()
        if reason is not None:
            await self.outage.pause(reason, stop)

    def _raise(self) -> None:
        # Stop starting events; the loop settles, rewinds and (for an outage) pauses.
        self.active = True
        self.intake.scheduler.hold()
        self.wake.set()


__all__ = ["Trouble"]
