"""The run loop: poll, process in partition order, commit in transactions, pause, drain.

Finished records are committed together with their outputs, state and offsets (one
transaction per partition) at least every ``commit_interval``. When Capillary itself
fails (down, throttling past the budget, refusing our credentials) nothing is published
for the event in hand: finished work is committed, the partitions are paused (the group
membership stays) and Capillary is probed with backoff until it answers; then the
unfinished records are read again. When Capillary answers the probe, the failure was the
event's own, and it takes the retry path instead. On stop the record in hand finishes
(bounded by the grace period), finished work is committed, and the rest is left for the
next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.clock import Clock
from service.errors import BrokerError, CapillaryUnavailableError
from service.logging import get_logger
from service.outcome import OutcomeEvent, OutcomeStatus
from service.pipeline.flood import DeadLetterCap
from service.pipeline.offsets import PartitionProgress
from service.pipeline.process import NotDue, Processor
from service.pipeline.records import DeadLetter, Finished, Record, RecordSource, RetryLater
from service.pipeline.state import EventState, StateStore

log = get_logger(__name__)

_RESET_ATTEMPTS = 30
_EXPIRE_EVERY_SECONDS = 3600.0


class Committer(Protocol):
    """The commit step (``commit.KafkaCommitter``)."""

    async def open_partition(self, partition: int) -> None:
        """Take over p's transactional id (fencing a previous owner)."""

    async def close_partition(self, partition: int) -> None:
        """Give p's transactional id up."""

    async def reset_partition(self, partition: int) -> None:
        """Close and reopen p's producer after a failed transaction."""

    async def commit(
        self, partition: int, finished: Sequence[Finished], offsets: dict[str, int]
    ) -> list[EventState]:
        """Outputs, states and offsets of p in one transaction."""
        ...

    async def stop(self) -> None:
        """Close every producer."""


class Probe(Protocol):
    """``None`` when Capillary answers, else why it does not."""

    async def __call__(self) -> str | None: ...


@dataclass
class RunStats:
    """What one run did, for the final log line and for tests."""

    records: int = 0
    outcomes: int = 0
    dead_letters: int = 0
    failed_outcomes: int = 0
    duplicates: int = 0
    retries: int = 0
    pauses: int = 0
    probes: int = 0
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    """Last committed offset per (topic, partition): bounded by the partitions owned."""


@dataclass
class _Pending:
    finished: list[Finished] = field(default_factory=list)
    progress: dict[str, PartitionProgress] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)
    """The first finished offset per topic: where to read again if the commit fails."""


class Runner:
    """Drives records from the source through the processor until told to stop."""

    def __init__(
        self,
        *,
        source: RecordSource,
        committer: Committer,
        processor: Processor,
        state: StateStore,
        probe: Probe,
        dead_letter_cap: DeadLetterCap,
        clock: Clock,
        grace_seconds: float,
        commit_interval_seconds: float,
        probe_initial_seconds: float = 1.0,
        probe_max_seconds: float = 30.0,
    ) -> None:
        self._source = source
        self._committer = committer
        self._processor = processor
        self._state = state
        self._probe = probe
        self._cap = dead_letter_cap
        self._clock = clock
        self._grace_seconds = grace_seconds
        self._commit_interval = commit_interval_seconds
        self._probe_initial = probe_initial_seconds
        self._probe_max = probe_max_seconds
        self._pending: dict[int, _Pending] = {}
        self._held: dict[tuple[str, int], int] = {}
        self._ready: set[int] = set()
        """Partitions whose producer is open and whose state is restored."""
        self._next_expiry = 0.0
        self._rewind_to: dict[tuple[str, int], int] = {}
        """Fetched but unfinished: the offset to read each partition from again."""
        self.stats = RunStats()
        self.changed = asyncio.Condition()
        """Notified whenever ``stats`` change (for health checks and tests)."""

    async def run(self, stop: asyncio.Event) -> RunStats:
        """Run until ``stop`` is set; then drain within the grace period and close."""
        self._source.on_assigned = self._assigned
        self._source.on_revoked = self._revoked
        try:
            await self._source.start()
            log.info("service_started")
            loop_task = asyncio.create_task(self._loop(stop))
            stop_task = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
                )
                if loop_task not in done:
                    log.info("service_draining", grace_seconds=self._grace_seconds)
                    try:
                        await asyncio.wait_for(loop_task, self._grace_seconds)
                    except TimeoutError:
                        log.warning(
                            "drain_timed_out",
                            next_step="uncommitted records will be processed again; "
                            "revokes are safe to repeat and give-backs are guarded",
                        )
                stop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stop_task
                if not loop_task.cancelled():
                    loop_task.result()  # re-raise what stopped the loop
            finally:
                # Cancelled from outside (or failing): nothing of ours is left running.
                for task in (loop_task, stop_task):
                    task.cancel()
                await asyncio.gather(loop_task, stop_task, return_exceptions=True)
                await self._source.stop()
        finally:
            await self._committer.stop()
            log.info(
                "service_stopped",
                records=self.stats.records,
                outcomes=self.stats.outcomes,
                dead_letters=self.stats.dead_letters,
                failed_outcomes=self.stats.failed_outcomes,
                duplicates=self.stats.duplicates,
                retries=self.stats.retries,
            )
        return self.stats

    # --- partitions coming and going --------------------------------------------------------

    async def _assigned(self, partitions: list[int]) -> None:
        new = [p for p in partitions if p not in self._ready]
        results = await asyncio.gather(*(self._set_up(p) for p in new), return_exceptions=True)
        for partition, result in zip(new, results, strict=True):
            if isinstance(result, BaseException):
                # Set up again when its first record arrives (see _batch).
                log.warning("partition_setup_failed", partition=partition, error=str(result))

    async def _set_up(self, partition: int) -> None:
        started = self._clock.monotonic()
        # Fence the previous owner first, so nothing of its commits after the state is read.
        await self._committer.open_partition(partition)
        remembered = await self._state.restore(partition, self._clock.now())
        self._ready.add(partition)
        log.info(
            "partition_state_restored",
            partition=partition,
            remembered=remembered,
            elapsed_ms=round((self._clock.monotonic() - started) * 1000, 1),
        )

    async def _revoked(self, partitions: list[int]) -> None:
        # The batch in hand has stopped and committed; what is left is not ours to commit.
        for partition in partitions:
            self._ready.discard(partition)
            self._pending.pop(partition, None)
            self._held = {tp: due for tp, due in self._held.items() if tp[1] != partition}
            self._state.forget(partition)
            await self._committer.close_partition(partition)

    # --- the loop ------------------------------------------------------------------------------

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._release_due()
            self._expire_due()
            records = await self._source.poll()
            if not records:
                continue
            async with self._source.processing():
                outage = await self._batch(records, stop)
            if outage is not None:
                await self._pause(outage, stop)

    async def _batch(self, records: Sequence[Record], stop: asyncio.Event) -> str | None:
        """Process a batch; returns why Capillary is unavailable, if it is.

        Whatever was fetched and not finished is read again: its partition is sought back
        to the first such record (never to a committed offset read back from Kafka, which
        can lag a transaction that just committed).
        """
        skipped: set[tuple[str, int]] = set()
        outage: str | None = None
        last_commit = self._clock.monotonic()
        stopped_at = len(records)
        try:
            for index, record in enumerate(records):
                if stop.is_set() or self._source.revoking:
                    stopped_at = index
                    break
                tp = (record.topic, record.partition)
                if tp in skipped:
                    continue
                if record.partition not in self._ready:
                    # Its set-up failed when it was assigned: try again before touching it.
                    try:
                        await self._set_up(record.partition)
                    except BrokerError as exc:
                        log.warning(
                            "partition_setup_failed", partition=record.partition, error=str(exc)
                        )
                        self._read_again(record.topic, record.partition, record.offset)
                        skipped.add(tp)
                        continue
                try:
                    result = await self._handle(record)
                except CapillaryUnavailableError as exc:
                    outage = exc.message
                    stopped_at = index
                    break
                except BrokerError as exc:
                    self._read_again(record.topic, record.partition, record.offset)
                    await self._broker_failed(record.partition, exc)
                    skipped.add(tp)
                    continue
                if isinstance(result, NotDue):
                    self._source.hold(record.topic, record.partition, record.offset)
                    self._held[tp] = result.due_ms
                    skipped.add(tp)
                    continue
                await self._add(result)
                if self._clock.monotonic() - last_commit >= self._commit_interval:
                    await self._commit_all()
                    last_commit = self._clock.monotonic()
        finally:
            for record in records[stopped_at:]:
                if (record.topic, record.partition) not in skipped:
                    self._read_again(record.topic, record.partition, record.offset)
            await self._commit_all()
            self._seek_back()
        return outage

    def _read_again(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        self._rewind_to[key] = min(offset, self._rewind_to.get(key, offset))

    def _seek_back(self) -> None:
        for (topic, partition), offset in self._rewind_to.items():
            if partition in self._ready:
                self._source.seek(topic, partition, offset)
        self._rewind_to.clear()

    async def _handle(self, record: Record) -> Finished | NotDue:
        try:
            return await self._processor.handle(record)
        except CapillaryUnavailableError as exc:
            reason = await self._probe()
            if reason is not None:
                raise CapillaryUnavailableError(f"{exc.message}; probe: {reason}") from exc
            # Capillary answers others: the failure is this event's own.
            log.warning("event_failing_alone", reason=exc.message)
            return await self._processor.retry_alone(record, exc.message)

    async def _add(self, finished: Finished) -> None:
        record = finished.record
        pending = self._pending.setdefault(record.partition, _Pending())
        pending.first.setdefault(record.topic, record.offset)
        progress = pending.progress.setdefault(record.topic, PartitionProgress())
        progress.take(record.offset)
        progress.finish(record.offset)
        pending.finished.append(finished)
        self._count(finished)
        await self._notify()

    async def _commit_all(self) -> None:
        for partition in list(self._pending):
            pending = self._pending[partition]
            offsets = {
                topic: offset
                for topic, progress in pending.progress.items()
                if (offset := progress.committable()) is not None
            }
            if not offsets and not pending.finished:
                continue
            try:
                states = await self._committer.commit(partition, pending.finished, offsets)
            except BrokerError as exc:
                await self._broker_failed(partition, exc)
                continue
            for state in states:
                self._state.remember(partition, state)
            for topic, offset in offsets.items():
                self.stats.committed[(topic, partition)] = offset
            del self._pending[partition]

    async def _broker_failed(self, partition: int, exc: BrokerError) -> None:
        """A transaction of p failed: nothing of it is visible. Start p over from Kafka."""
        log.warning("transaction_failed", partition=partition, error=str(exc))
        dropped = self._pending.pop(partition, None)
        for topic, offset in (dropped.first if dropped else {}).items():
            self._read_again(topic, partition, offset)
        if exc.context.get("fenced"):
            # A newer owner holds p: taking its transactional id back would fence it.
            self._ready.discard(partition)
            self._state.forget(partition)
            await self._committer.close_partition(partition)
            return
        for attempt in range(1, _RESET_ATTEMPTS + 1):
            try:
                await self._committer.reset_partition(partition)
                break
            except BrokerError as again:
                if attempt == _RESET_ATTEMPTS:
                    raise
                log.warning(
                    "producer_reset_failed", partition=partition, attempt=attempt, error=str(again)
                )
                await asyncio.sleep(min(attempt, 5))

    def _expire_due(self) -> None:
        # Event ids older than the window go, so memory stays bounded while running too.
        if self._clock.monotonic() < self._next_expiry:
            return
        self._next_expiry = self._clock.monotonic() + _EXPIRE_EVERY_SECONDS
        dropped = self._state.expire(self._clock.now())
        if dropped:
            log.info("state_expired", dropped=dropped, remembered=self._state.size())

    def _release_due(self) -> None:
        now_ms = int(self._clock.now().timestamp() * 1000)
        for tp, due in list(self._held.items()):
            if due <= now_ms:
                del self._held[tp]
                self._source.release(*tp)

    async def _pause(self, reason: str, stop: asyncio.Event) -> None:
        """Stop taking work, keep the membership, probe with backoff until Capillary answers."""
        self.stats.pauses += 1
        await self._notify()
        self._source.pause_all()
        paused_at = self._clock.monotonic()
        wait = self._probe_initial
        log.warning("capillary_outage_paused", reason=reason)
        try:
            while not stop.is_set():
                next_probe = self._clock.monotonic() + wait
                while not stop.is_set() and self._clock.monotonic() < next_probe:
                    # Polling paused partitions fetches nothing but keeps us in the group.
                    await self._source.poll()
                if stop.is_set():
                    return
                reason_now = await self._probe()
                self.stats.probes += 1
                await self._notify()
                paused_for = round(self._clock.monotonic() - paused_at, 1)
                if reason_now is None:
                    log.info("capillary_probe_succeeded", paused_seconds=paused_for)
                    return
                log.warning(
                    "capillary_probe_failed",
                    reason=reason_now,
                    paused_seconds=paused_for,
                    next_probe_seconds=round(min(wait * 2, self._probe_max), 1),
                )
                wait = min(wait * 2, self._probe_max)
        finally:
            self._source.resume_all()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _count(self, finished: Finished) -> None:
        self.stats.records += 1
        result = finished.result
        self._count_result(result)
        self._cap.count(self._clock.monotonic(), dead_letter=isinstance(result, DeadLetter))

    def _count_result(self, result: OutcomeEvent | DeadLetter | RetryLater) -> None:
        if isinstance(result, DeadLetter):
            self.stats.dead_letters += 1
        elif isinstance(result, RetryLater):
            self.stats.retries += 1
        elif isinstance(result, OutcomeEvent):
            self.stats.outcomes += 1
            if result.status is OutcomeStatus.FAILED:
                self.stats.failed_outcomes += 1
            elif result.status is OutcomeStatus.DUPLICATE:
                self.stats.duplicates += 1


__all__ = ["Committer", "Probe", "RunStats", "Runner"]
