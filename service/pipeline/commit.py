"""The last step: what finished, committed per partition every interval.

It also owns each partition's transactions from assignment to revocation: opening one
fences the previous owner before the partition's state is restored, and a failed
transaction starts the partition over from what Kafka holds.

Per owned partition, one transaction (``service/kafka/committer.py``) carries the outputs
and states of what finished and the offsets past each topic's contiguous finished prefix,
with the offsets finished beyond it (the progress record), so that a record read again
after a restart publishes nothing. Partitions commit side by side; one lock keeps a
revocation, a recovery or the drain from committing at the same time as the interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field

from service.clock import Clock
from service.errors import BrokerError
from service.logging import get_logger
from service.pipeline.partition import OwnedPartition
from service.pipeline.records import Committer
from service.pipeline.state import StateStore
from service.pipeline.stats import RunStats

log = get_logger(__name__)

_RESET_ATTEMPTS = 30


@dataclass(slots=True, eq=False)
class CommitStep:
    """Commits the owned partitions' finished work, on an interval or when asked."""

    committer: Committer
    state: StateStore
    stats: RunStats
    partitions: dict[int, OwnedPartition]
    """The owned partitions by number: the runner's, shared with the other steps."""
    _: KW_ONLY
    clock: Clock
    interval_seconds: float
    skip: Callable[[int], bool]
    """Whether a partition must not commit now (its transaction failed, not rebuilt yet)."""
    failed: Callable[[int, BrokerError], None]
    """Told of a partition whose transaction failed."""
    changed: Callable[[], Awaitable[None]]
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    def owned(self, partition: int) -> OwnedPartition:
        """The partition's object, made on first sight (assignment, or a record of it)."""
        return self.partitions.setdefault(partition, OwnedPartition(partition))

    def reopen(self, partition: int) -> None:
        """A revocation that did not complete: the partition, if still owned, is taken again."""
        if (part := self.partitions.get(partition)) is not None:
            part.closing = False

    async def open(self, partition: int) -> None:
        """Set a partition up: its transactions, then its state, then it may be taken."""
        started = self.clock.monotonic()
        # Fence the previous owner first, so nothing of its commits after the state is read.
        await self.committer.open_partition(partition)
        remembered = await self.state.restore(partition, self.clock.now())
        part = self.owned(partition)
        part.restored(self.state.finished_above(partition))
        part.ready = True
        log.info(
            "partition_state_restored",
            partition=partition,
            remembered=remembered,
            elapsed_ms=round((self.clock.monotonic() - started) * 1000, 1),
        )

    async def close(self, partition: int) -> None:
        """A revoked partition, committed: forget it and give its transactional id up."""
        self.partitions.pop(partition, None)
        self.state.forget(partition)
        await self.committer.close_partition(partition)

    async def rebuild(self, partition: int, exc: BrokerError) -> None:
        """A transaction of p failed: nothing of it is visible. Start p over from Kafka."""
        log.warning("transaction_failed", partition=partition, error=str(exc))
        part = self.owned(partition)
        part.rewind_floors()
        if exc.fenced:
            # A newer owner holds p: taking its transactional id back would fence it.
            part.ready = False
            self.state.forget(partition)
            await self.committer.close_partition(partition)
            return
        for attempt in range(1, _RESET_ATTEMPTS + 1):
            try:
                await self.committer.reset_partition(partition)
                # Our memory may be ahead of Kafka (states of the failed transaction).
                await self.state.restore(partition, self.clock.now())
                part.restored(self.state.finished_above(partition))
                break
            except BrokerError as again:
                if attempt == _RESET_ATTEMPTS:
                    raise
                log.warning(
                    "producer_reset_failed", partition=partition, attempt=attempt, error=str(again)
                )
                await asyncio.sleep(min(attempt, 5))

    async def every_interval(self) -> None:
        """Commit everything that moved, every interval, until cancelled."""
        while True:
            await asyncio.sleep(self.interval_seconds)
            await self.commit()

    async def commit(self, partitions: Iterable[int] | None = None) -> None:
        """Commit ``partitions`` (default: every owned one with something to commit)."""
        async with self._lock:
            if partitions is None:
                partitions = [
                    number
                    for number, part in self.partitions.items()
                    if part.pending or part.committable()
                ]
            await asyncio.gather(*(self._commit(number) for number in sorted(partitions)))

    async def _commit(self, number: int) -> None:
        part = self.partitions.get(number)
        if part is None or not part.ready or self.skip(number):
            # Not set up, or rebuilt from Kafka first: committing offsets now could skip records.
            return
        offsets = part.committable()
        finished, part.pending = part.pending, []
        if not offsets and not finished:
            return
        # Taken with the outputs, nothing awaited between: what finished beyond the prefix is
        # in this transaction or an earlier one.
        progress = part.finished_beyond(offsets)
        try:
            committed = await self.committer.commit(number, finished, offsets, progress)
        except BrokerError as exc:
            self.failed(number, exc)
            return
        for written in committed:
            self.state.remember(number, written.state, written.offset)
        part.committed(offsets)
        for topic, offset in offsets.items():
            self.stats.committed[(topic, number)] = offset
        await self.changed()


__all__ = ["CommitStep"]
