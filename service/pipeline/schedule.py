"""Schedule: one customer's events in order, different customers at once, up to a bound.

Every valid event gets an ordering key: its customer key (``route.py``: the Kafka key, else
the customer's id or another identifier from the event). Whatever identifiers two events
carry (one the customer's id, the other only a mobile), they share a key when their
producer keyed both by the customer, and the router has put both on this partition.
Events of one key run one after the other, in the order they were taken; events of
different keys run concurrently. ``bound`` caps the
events taken and not finished (running or waiting behind their key): the run loop pauses
the consumer when :attr:`Scheduler.full`, so nothing buffers without limit.

The scheduler only orders and counts; running an event, committing it and recovering from
failures are the run loop's (``run.py``), which hands in ``run`` and can stop new starts
(:meth:`Scheduler.hold`), take back what has not started (:meth:`Scheduler.withdraw`) and
wait for what has (:meth:`Scheduler.drain`).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Hashable
from dataclasses import dataclass

from service.events import ReturnEvent
from service.pipeline.records import Record
from service.pipeline.route import key_of_customer


def ordering_key(record: Record, event: ReturnEvent) -> Hashable:
    """What the event must keep its order with: its customer key."""
    return record.key or key_of_customer(event.customer, event.event_id)


@dataclass(frozen=True, slots=True)
class Job:
    """One valid event taken from Kafka, waiting for or holding its key."""

    record: Record
    event: ReturnEvent
    key: Hashable


class Scheduler:
    """Runs jobs concurrently across keys and in order within one, up to ``bound`` at once."""

    def __init__(self, *, bound: int, run: Callable[[Job], Awaitable[None]]) -> None:
        if bound < 1:
            raise ValueError("bound must be at least 1")
        self._bound = bound
        self._run = run
        self._waiting: dict[Hashable, deque[Job]] = {}
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._per_partition: Counter[int] = Counter()
        self._count = 0
        self._starting = True
        self._changed = asyncio.Event()
        self.peak = 0
        """The most jobs ever in flight at once (for stats and tests)."""

    @property
    def in_flight(self) -> int:
        """Jobs taken and not finished: running, or waiting behind their key."""
        return self._count

    @property
    def running(self) -> int:
        """Jobs running now."""
        return len(self._running)

    @property
    def full(self) -> bool:
        """At the bound: take nothing more until a job finishes."""
        return self._count >= self._bound

    def submit(self, job: Job) -> None:
        """Take a job; it starts now unless its key is busy (or starts are held)."""
        self._count += 1
        self._per_partition[job.record.partition] += 1
        self.peak = max(self.peak, self._count)
        if job.key in self._running or not self._starting:
            self._waiting.setdefault(job.key, deque()).append(job)
        else:
            self._start(job)

    def hold(self) -> None:
        """Start nothing new; running jobs go on."""
        self._starting = False

    def resume(self) -> None:
        """Start waiting jobs again, the head of each free key."""
        self._starting = True
        for key in list(self._waiting):
            if key not in self._running:
                self._start_next(key)

    def withdraw(self, partitions: Collection[int] | None = None) -> list[Job]:
        """Take back the jobs that have not started (of ``partitions``, or all), in order."""
        taken: list[Job] = []
        for key in list(self._waiting):
            keep: deque[Job] = deque()
            for job in self._waiting[key]:
                mine = partitions is None or job.record.partition in partitions
                (taken if mine else keep).append(job)
            if keep:
                self._waiting[key] = keep
            else:
                del self._waiting[key]
        for job in taken:
            self._forget(job)
        if taken:
            self._notify()
        return sorted(taken, key=lambda job: (job.record.topic, job.record.offset))

    async def wait_for_room(self) -> None:
        """Return when below the bound."""
        while self.full:
            await self._changed.wait()

    async def drain(self, partitions: Collection[int] | None = None) -> None:
        """Wait until no job (of ``partitions``, or at all) is running or waiting."""
        while self._busy(partitions):
            await self._changed.wait()

    async def cancel(self) -> None:
        """Stop every running job (a drain that ran out of time); waiting jobs are dropped."""
        self.hold()
        self.withdraw()
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _busy(self, partitions: Collection[int] | None) -> bool:
        if partitions is None:
            return self._count > 0
        return any(self._per_partition[p] > 0 for p in partitions)

    def _start(self, job: Job) -> None:
        self._running[job.key] = asyncio.create_task(
            self._run_one(job),
            name=f"event {job.record.topic}/{job.record.partition}@{job.record.offset}",
        )

    def _start_next(self, key: Hashable) -> None:
        queue = self._waiting.get(key)
        if not queue:
            return
        job = queue.popleft()
        if not queue:
            del self._waiting[key]
        self._start(job)

    async def _run_one(self, job: Job) -> None:
        try:
            await self._run(job)
        finally:
            del self._running[job.key]
            self._forget(job)
            if self._starting:
                self._start_next(job.key)
            self._notify()

    def _forget(self, job: Job) -> None:
        self._count -= 1
        self._per_partition[job.record.partition] -= 1
        if not self._per_partition[job.record.partition]:
            del self._per_partition[job.record.partition]

    def _notify(self) -> None:
        # Wake every waiter once; each re-checks its own condition.
        self._changed.set()
        self._changed = asyncio.Event()


__all__ = ["Job", "Scheduler", "ordering_key"]
