"""The first step: fetched records taken in partition order and handed on.

A record of a partition not set up yet is sought back; a retry record not due yet holds its
partition (``service/kafka/source.py`` fetches nothing more of it until released); one
whose outputs are committed already finishes at once; one its producer put on another
partition than its customer key's is routed (``route.py``); an invalid one finishes as a
dead letter (``validate.py``); the rest goes to the scheduler, up to the in-flight bound.
Nothing awaits between two records, so a partition's order is the scheduler's. What cannot
be taken yet waits here: at most one poll's worth, the partitions paused meanwhile.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from service.errors import BrokerError
from service.logging import get_logger
from service.observe.metrics import Metrics
from service.pipeline.partition import OwnedPartition
from service.pipeline.process import Processor
from service.pipeline.records import AlreadyFinished, Finished, Record, RecordSource, Routed
from service.pipeline.route import Router
from service.pipeline.schedule import Job, Scheduler, ordering_key

log = get_logger(__name__)


@dataclass(slots=True, eq=False, kw_only=True)
class Intake:
    """Fetched records not taken yet, and the taking of them."""

    source: RecordSource
    owned: dict[int, OwnedPartition]
    """The owned partitions by number: the runner's, shared with the other steps."""
    scheduler: Scheduler
    processor: Processor
    router: Router | None
    set_up: Callable[[int], Awaitable[None]]
    """Sets up a partition whose set-up failed when it was assigned."""
    finish: Callable[[Finished], None]
    """Takes a record that finished without being scheduled."""
    metrics: Metrics
    backlog: deque[Record] = field(default_factory=deque, init=False)
    """Fetched, not yet taken: at most one poll's worth, waiting for room."""
    _skipped: set[tuple[str, int]] = field(default_factory=set, init=False, repr=False)
    """Partitions whose rest of the backlog is not taken (held, sought back)."""
    _paused: bool = field(default=False, init=False, repr=False)

    def pause(self) -> None:
        """At the bound: fetch nothing more until there is room (the membership stays)."""
        if not self._paused:
            self._paused = True
            self.source.pause_all()

    def resume(self) -> None:
        """Below the bound again: fetch again."""
        if self._paused:
            self._paused = False
            self.source.resume_all()

    def resumed(self) -> None:
        """Something else resumed every partition (the end of an outage's pause)."""
        self._paused = False

    async def wait_for_room(self, wake: asyncio.Event) -> None:
        """Until the scheduler has room, or ``wake`` is set (trouble, a fatal error)."""
        room = asyncio.create_task(self.scheduler.wait_for_room())
        woken = asyncio.create_task(wake.wait())
        try:
            await asyncio.wait({room, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            room.cancel()
            woken.cancel()
            wake.clear()

    def release_due(self, now: datetime) -> None:
        """Fetch again from the held partitions whose retry record is due."""
        now_ms = int(now.timestamp() * 1000)
        for part in self.owned.values():
            for topic, due in list(part.held.items()):
                if due <= now_ms:
                    del part.held[topic]
                    self.source.release(topic, part.number)

    def extend(self, records: Iterable[Record]) -> None:
        """Records just fetched, in partition order."""
        fetched = list(records)
        for topic, count in Counter(r.topic for r in fetched).items():
            self.metrics.events_consumed.labels(topic).inc(count)
        self.backlog.extend(fetched)

    async def take(self, *, rewinding: bool, failed: Callable[[], bool]) -> None:
        """Hand the backlog on in order until the bound (or a failure stops the service).

        ``rewinding``: the pipeline is settling after trouble; records are marked to be read
        again instead of taken.
        """
        waiting = {r.partition for r in self.backlog}
        for partition in sorted(p for p in waiting if self._needs_set_up(p)):
            # Its set-up failed when it was assigned: try again before touching it.
            try:
                await self.set_up(partition)
            except BrokerError as exc:
                log.warning("partition_setup_failed", partition=partition, error=str(exc))
        backlog, skipped = self.backlog, self._skipped
        while backlog and not failed():
            record = backlog[0]
            tp = (record.topic, record.partition)
            part = self.owned.get(record.partition)
            if tp in skipped or (part is not None and part.closing):
                backlog.popleft()
                continue
            if part is None or not part.ready:
                self.source.seek(record.topic, record.partition, record.offset)
                skipped.add(tp)
                continue
            if rewinding:
                part.read_again(record.topic, record.offset)  # sought back once work settles
                skipped.add(tp)
                continue
            due_ms = self.processor.not_due(record)
            if due_ms is not None:
                self.source.hold(record.topic, record.partition, record.offset)
                part.held[record.topic] = due_ms
                skipped.add(tp)
                continue
            if self.scheduler.full:
                break  # the rest waits for room
            backlog.popleft()
            self._hand_on(part, record)
        if not backlog:
            # Partitions skipped for this fetch are fetched again from where they stopped.
            skipped.clear()

    def drop(self, partitions: set[int] | None = None, *, read_again: bool) -> None:
        """Take fetched, untaken records out (of ``partitions``, or all)."""
        kept: deque[Record] = deque()
        for record in self.backlog:
            if partitions is not None and record.partition not in partitions:
                kept.append(record)
            elif (
                read_again
                and (record.topic, record.partition) not in self._skipped
                and (part := self.owned.get(record.partition)) is not None
            ):
                part.read_again(record.topic, record.offset)
        self.backlog = kept
        if not kept:
            self._skipped.clear()

    def read_again(self, record: Record) -> None:
        """Read a taken record again once in-flight work settles; one of a partition given
        up meanwhile is the next owner's."""
        part = self.owned.get(record.partition)
        if part is not None:
            part.read_again(record.topic, record.offset)

    def _needs_set_up(self, partition: int) -> bool:
        part = self.owned.get(partition)
        return part is None or not (part.ready or part.closing)

    def _hand_on(self, part: OwnedPartition, record: Record) -> None:
        if part.take(record.topic, record.offset):
            self.finish(Finished(record, AlreadyFinished(record, None)))
            return
        routed = self._route(record)
        if routed is not None:
            self.finish(Finished(record, routed))
            return
        prepared = self.processor.prepare(record)
        if isinstance(prepared, Finished):
            self.finish(prepared)
            return
        self.scheduler.submit(Job(record, prepared, ordering_key(record, prepared)))

    def _route(self, record: Record) -> Routed | None:
        """Where the record is handled, when its producer put it on another partition."""
        if self.router is None:
            return None
        found = self.router.route(record, self.source.partition_count)
        return Routed(record, *found) if found is not None else None


__all__ = ["Intake"]
