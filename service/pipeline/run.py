"""The run loop: take records, schedule them, commit what finished, recover, drain.

Records are taken in partition order: a record of the returns topic that its producer put
on another partition than its customer key's is routed there (``route.py``: copied to the
routed topic in its partition's next transaction), retry records that are not due yet hold
their partition, invalid ones finish at once as dead letters, valid events go to the scheduler
(``schedule.py``: one customer's events in order, different customers concurrently, the
consumer paused at the in-flight bound). A separate task commits every
``commit_interval``: per partition, one transaction with the outputs and states of what
finished, and the offsets past each partition's contiguous finished prefix. Outputs are
committed as events finish, so a record read again after a restart may have finished
already: the processor recognises it from its state and publishes nothing for it.

When Capillary itself fails (down, throttling past the budget, refusing our credentials)
nothing is published for the events in hand: new starts stop, running events finish or
fail, finished work is committed, each partition is read again from its first unfinished
record, and the consumer pauses (keeping its membership) while Capillary is probed with
backoff. When Capillary answers the probe, the failure was the event's own, and it takes
the retry path instead. A failed transaction starts its partition over from Kafka. On stop
the running events finish (bounded by the grace period), finished work is committed, and
the rest is left for the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.clock import Clock
from service.errors import BrokerError, CapillaryUnavailableError
from service.logging import get_logger
from service.observe.metrics import Metrics
from service.observe.tracing import Tracing
from service.outcome import OutcomeEvent, OutcomeStatus
from service.pipeline.flood import DeadLetterCap
from service.pipeline.offsets import PartitionProgress
from service.pipeline.process import Processor
from service.pipeline.records import (
    AlreadyFinished,
    Committed,
    DeadLetter,
    Finished,
    Record,
    RecordSource,
    RetryLater,
    Routed,
)
from service.pipeline.route import Router
from service.pipeline.schedule import Job, Scheduler, ordering_key
from service.pipeline.state import Progress, StateStore

log = get_logger(__name__)

_RESET_ATTEMPTS = 30
_EXPIRE_EVERY_SECONDS = 3600.0
_PROBE_REUSE_SECONDS = 1.0
"""Events failing together (one coalesced call) share one probe."""
_KEEP_ALIVE_SECONDS = 1.0
"""While paused at the bound, poll this often: the group must see us alive."""

TopicPartition = tuple[str, int]


class Committer(Protocol):
    """The commit step (``commit.KafkaCommitter``)."""

    async def open_partition(self, partition: int) -> None:
        """Take over p's transactional id (fencing a previous owner)."""

    async def close_partition(self, partition: int) -> None:
        """Give p's transactional id up."""

    async def reset_partition(self, partition: int) -> None:
        """Close and reopen p's producer after a failed transaction."""

    async def commit(
        self,
        partition: int,
        finished: Sequence[Finished],
        offsets: dict[str, int],
        progress: Progress | None = None,
    ) -> list[Committed]:
        """Outputs, states, offsets and progress of p in one transaction; the states with
        their offsets."""
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
    read_again: int = 0
    """Records read again whose event had finished already (nothing published)."""
    routed: int = 0
    """Records of the returns topic copied to their customer key's partition."""
    pauses: int = 0
    probes: int = 0
    in_flight_peak: int = 0
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    """Last committed offset per (topic, partition): bounded by the partitions owned."""


@dataclass
class _Trouble:
    """Why the pipeline must stop, settle and rewind before taking more."""

    outage: str | None = None
    broken: dict[int, BrokerError] = field(default_factory=dict)


class Runner:
    """Drives records from the source through the scheduler and processor until told to stop."""

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
        events_in_flight: int = 1,
        probe_initial_seconds: float = 1.0,
        probe_max_seconds: float = 30.0,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        router: Router | None = None,
    ) -> None:
        self._source = source
        self._router = router
        self._metrics = metrics or Metrics()
        self._tracing = tracing or Tracing.off()
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
        self._scheduler = Scheduler(bound=events_in_flight, run=self._job)
        self._pending: dict[int, list[Finished]] = {}
        self._progress: dict[TopicPartition, PartitionProgress] = {}
        self._held: dict[TopicPartition, int] = {}
        self._ready: set[int] = set()
        """Partitions whose producer is open and whose state is restored."""
        self._closing: set[int] = set()
        """Partitions being revoked: nothing more of them is taken."""
        self._rewind_to: dict[TopicPartition, int] = {}
        """Taken but unfinished: the offset to read each partition from again."""
        self._done_offsets: dict[TopicPartition, set[int]] = {}
        """Offsets beyond the committed prefix whose outputs are committed: read again (after
        a restart, a rewind), they publish nothing, whichever event they carry."""
        self._backlog: deque[Record] = deque()
        """Fetched, not yet taken: at most one poll's worth, waiting for room."""
        self._skipped: set[TopicPartition] = set()
        """Partitions whose rest of the backlog is not taken (held, sought back)."""
        self._stop = asyncio.Event()
        self._trouble: _Trouble | None = None
        self._fatal: BaseException | None = None
        self._wake = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._paused_at_bound = False
        self._next_expiry = 0.0
        self._probe_task: asyncio.Task[str | None] | None = None
        self._probe_answer: tuple[float, str | None] | None = None
        self._progress_at: float | None = None
        self._paused_for: str | None = None
        self._stopping = False
        self.stats = RunStats()
        self.changed = asyncio.Condition()
        """Notified whenever ``stats`` change (for health checks and tests)."""

    async def run(
        self, stop: asyncio.Event, *, started: Callable[[], Awaitable[object]] | None = None
    ) -> RunStats:
        """Run until ``stop`` is set; then drain within the grace period and close.

        ``started`` is awaited once Kafka let us in, before the first record (the service
        opens its health port there, so a start that fails opens nothing).
        """
        self._stop = stop
        self._stopping = False
        self._source.on_assigned = self._assigned
        self._source.on_revoked = self._revoked
        try:
            await self._source.start()
            if started is not None:
                try:
                    await started()
                except BaseException:
                    await self._source.stop()
                    raise
        except BaseException:
            # A start that failed stopped its consumer; producers that an early assignment
            # opened are closed here. Nothing ran, so nothing is reported but the error.
            await self._committer.stop()
            raise
        try:
            log.info("service_started")
            loop_task = asyncio.create_task(self._loop(stop))
            commit_task = asyncio.create_task(self._commit_every_interval())
            stop_task = asyncio.create_task(stop.wait())
            try:
                done, _ = await asyncio.wait(
                    {loop_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
                )
                self._stopping = True
                if loop_task not in done:
                    log.info(
                        "service_draining",
                        grace_seconds=self._grace_seconds,
                        in_flight=self._scheduler.running,
                    )
                    try:
                        await asyncio.wait_for(loop_task, self._grace_seconds)
                    except TimeoutError:
                        log.warning(
                            "drain_timed_out",
                            next_step="uncommitted records will be processed again; "
                            "revokes are safe to repeat and give-backs are guarded",
                        )
                if not loop_task.cancelled():
                    loop_task.result()  # re-raise what stopped the loop
            finally:
                # Cancelled from outside (or failing): nothing of ours is left running.
                for task in (loop_task, commit_task, stop_task):
                    task.cancel()
                await asyncio.gather(loop_task, commit_task, stop_task, return_exceptions=True)
                await self._scheduler.cancel()
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
                in_flight_peak=self.stats.in_flight_peak,
            )
        return self.stats

    @property
    def in_flight(self) -> int:
        """Events taken and not finished."""
        return self._scheduler.in_flight

    @property
    def progress_at(self) -> float | None:
        """Monotonic time of the last progress: a loop turn with nothing in flight, or an
        event finished (the liveness watchdog reads it). ``None`` before the loop runs."""
        return self._progress_at

    def last_progress_unix(self) -> float:
        """``progress_at`` as Unix time (0 before the loop runs), for the metric."""
        if self._progress_at is None:
            return 0.0
        return self._clock.now().timestamp() - (self._clock.monotonic() - self._progress_at)

    @property
    def paused_reason(self) -> str | None:
        """``capillary_outage`` while paused for it, else ``None``."""
        return self._paused_for

    def not_ready(self) -> str | None:
        """Why this replica should not count as ready now, or ``None``."""
        if self._stopping:
            return "stopping"
        if not self._source.joined:
            return "not in the consumer group (joining or rebalancing)"
        if self._paused_for is not None:
            return "paused: Capillary is unavailable; probing until it answers"
        return None

    def lag(self) -> dict[tuple[str, int], int]:
        """Records of each owned partition not yet finished and committed here."""
        found: dict[tuple[str, int], int] = {}
        for tp, (end, next_read) in self._source.reading().items():
            progress = self._progress.get(tp)
            floor = progress.floor if progress is not None else None
            done_to = next_read if floor is None else min(floor, next_read)
            found[tp] = max(0, end - done_to)
        return found

    def _mark_progress(self) -> None:
        self._progress_at = self._clock.monotonic()

    async def idle(self) -> None:
        """Wait until no event is in flight and nothing fetched waits to be taken."""
        while True:
            await self._scheduler.drain()
            if not self._backlog:
                return
            async with self.changed:
                await self.changed.wait_for(
                    lambda: not self._backlog or self._scheduler.in_flight > 0
                )

    # --- partitions coming and going --------------------------------------------------------

    async def _assigned(self, partitions: list[int]) -> None:
        new = [p for p in partitions if p not in self._ready]
        results = await asyncio.gather(*(self._set_up(p) for p in new), return_exceptions=True)
        for partition, result in zip(new, results, strict=True):
            if isinstance(result, BaseException):
                # Set up again when its first record arrives (see _take).
                log.warning("partition_setup_failed", partition=partition, error=str(result))

    async def _set_up(self, partition: int) -> None:
        started = self._clock.monotonic()
        # Fence the previous owner first, so nothing of its commits after the state is read.
        await self._committer.open_partition(partition)
        remembered = await self._state.restore(partition, self._clock.now())
        self._take_done_offsets(partition)
        self._ready.add(partition)
        log.info(
            "partition_state_restored",
            partition=partition,
            remembered=remembered,
            elapsed_ms=round((self._clock.monotonic() - started) * 1000, 1),
        )

    async def _revoked(self, partitions: list[int]) -> None:
        # Their events finish and are committed here; what has not started is the next owner's.
        revoked = set(partitions)
        self._closing |= revoked
        try:
            self._drop_backlog(revoked, read_again=False)
            self._scheduler.withdraw(revoked)
            await self._scheduler.drain(revoked)
            async with self._commit_lock:
                await asyncio.gather(*(self._commit_partition(p) for p in revoked))
            for partition in partitions:
                self._ready.discard(partition)
                self._pending.pop(partition, None)
                self._forget_progress(partition)
                self._held = {tp: due for tp, due in self._held.items() if tp[1] != partition}
                self._rewind_to = {tp: o for tp, o in self._rewind_to.items() if tp[1] != partition}
                self._forget_done_offsets(partition)
                self._state.forget(partition)
                await self._committer.close_partition(partition)
        finally:
            self._closing -= revoked

    # --- taking records ------------------------------------------------------------------------

    async def _loop(self, stop: asyncio.Event) -> None:
        last_poll = self._clock.monotonic()
        while not stop.is_set() and self._fatal is None:
            if self._scheduler.in_flight == 0:
                self._mark_progress()
            if self._trouble is not None:
                await self._recover(stop)
                continue
            self._release_due()
            self._expire_due()
            if self._backlog:
                await self._take_backlog()
            if self._scheduler.full or self._backlog:
                # At the bound: the partitions pause and what was fetched waits here (at
                # most one poll's worth), so nothing buffers without limit or is fetched twice.
                self._pause_at_bound()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_KEEP_ALIVE_SECONDS):
                        await self._wait_for_room()
                if self._clock.monotonic() - last_poll < _KEEP_ALIVE_SECONDS:
                    continue
                records = await self._source.poll(timeout_ms=0)  # stay in the group
            else:
                self._resume_below_bound()
                records = await self._source.poll()
            last_poll = self._clock.monotonic()
            if records:
                for topic, count in Counter(r.topic for r in records).items():
                    self._metrics.events_consumed.labels(topic).inc(count)
            self._backlog.extend(records)
            await self._take_backlog()
        await self._wind_down()

    async def _wait_for_room(self) -> None:
        room = asyncio.create_task(self._scheduler.wait_for_room())
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({room, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            room.cancel()
            woken.cancel()
            self._wake.clear()

    def _pause_at_bound(self) -> None:
        if not self._paused_at_bound:
            self._paused_at_bound = True
            self._source.pause_all()

    def _resume_below_bound(self) -> None:
        if self._paused_at_bound:
            self._paused_at_bound = False
            self._source.resume_all()

    async def _take_backlog(self) -> None:
        """Hand fetched records to the scheduler in order, until the bound; nothing awaits
        between two records."""
        waiting = {r.partition for r in self._backlog} - self._ready - self._closing
        for partition in sorted(waiting):
            # Its set-up failed when it was assigned: try again before touching it.
            try:
                await self._set_up(partition)
            except BrokerError as exc:
                log.warning("partition_setup_failed", partition=partition, error=str(exc))
        backlog, skipped = self._backlog, self._skipped
        while backlog and self._fatal is None:
            record = backlog[0]
            tp = (record.topic, record.partition)
            if tp in skipped or record.partition in self._closing:
                backlog.popleft()
                continue
            if record.partition not in self._ready:
                self._source.seek(record.topic, record.partition, record.offset)
                skipped.add(tp)
                continue
            if self._trouble is not None:
                self._read_again(record)  # the recovery seeks back once in-flight work settles
                skipped.add(tp)
                continue
            due_ms = self._processor.not_due(record)
            if due_ms is not None:
                self._source.hold(record.topic, record.partition, record.offset)
                self._held[tp] = due_ms
                skipped.add(tp)
                continue
            if self._scheduler.full:
                break  # the rest waits for room
            backlog.popleft()
            self._progress.setdefault(tp, PartitionProgress()).take(record.offset)
            done = self._done_offsets.get(tp)
            if done is not None and record.offset in done:
                done.discard(record.offset)
                self._add(Finished(record, AlreadyFinished(record, None)))
                continue
            routed = self._route(record)
            if routed is not None:
                self._add(Finished(record, routed))
                continue
            prepared = self._processor.prepare(record)
            if isinstance(prepared, Finished):
                self._add(prepared)
                continue
            self._scheduler.submit(Job(record, prepared, ordering_key(record, prepared)))
        if not backlog:
            # Partitions skipped for this fetch are fetched again from where they stopped.
            skipped.clear()
        self.stats.in_flight_peak = self._scheduler.peak
        await self._notify()

    def _route(self, record: Record) -> Routed | None:
        """Where the record is handled, when its producer put it on another partition."""
        if self._router is None:
            return None
        found = self._router.route(record, self._source.partition_count)
        return Routed(record, *found) if found is not None else None

    def _drop_backlog(self, partitions: set[int] | None = None, *, read_again: bool) -> None:
        """Take fetched, untaken records out (of ``partitions``, or all)."""
        kept: deque[Record] = deque()
        for record in self._backlog:
            if partitions is not None and record.partition not in partitions:
                kept.append(record)
            elif read_again and (record.topic, record.partition) not in self._skipped:
                self._read_again(record)
        self._backlog = kept
        if not kept:
            self._skipped.clear()

    async def _job(self, job: Job) -> None:
        """Process one event; failures that concern the whole pipeline become trouble."""
        record = job.record
        if self._stop.is_set() or self._trouble is not None or self._fatal is not None:
            # Started just before the pipeline stopped taking work: leave it unread.
            self._read_again(record)
            return
        try:
            with self._tracing.event(
                record.headers,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                event_id=job.event.event_id,
            ) as span:
                try:
                    finished = await self._processor.process(record, job.event)
                except CapillaryUnavailableError as exc:
                    reason = await self._shared_probe()
                    if reason is not None:
                        span.set_attribute("return_handler.read_again", reason)
                        self._read_again(record)
                        self._in_trouble(outage=f"{exc.message}; probe: {reason}")
                        return
                    # Capillary answers others: the failure is this event's own.
                    log.warning(
                        "event_failing_alone", event_id=job.event.event_id, reason=exc.message
                    )
                    finished = await self._processor.retry_alone(record, exc.message)
                if isinstance(finished.result, OutcomeEvent):
                    span.set_attribute("return_handler.status", finished.result.status.value)
                finished = dataclasses.replace(
                    finished, trace=tuple(self._tracing.current_headers())
                )
        except BrokerError as exc:
            self._read_again(record)
            self._in_trouble(broken=(record.partition, exc))
            return
        except Exception as exc:
            # A bug: stop the service rather than skip the event.
            self._fatal = exc
            self._scheduler.hold()
            self._wake.set()
            return
        self._add(finished)
        await self._notify()

    def _add(self, finished: Finished) -> None:
        record = finished.record
        self._pending.setdefault(record.partition, []).append(finished)
        self._progress[(record.topic, record.partition)].finish(record.offset)
        self._mark_progress()
        self._count(finished)

    # --- committing ----------------------------------------------------------------------------

    async def _commit_every_interval(self) -> None:
        while True:
            await asyncio.sleep(self._commit_interval)
            async with self._commit_lock:
                await self._commit_all()

    async def _commit_all(self) -> None:
        partitions = {p for p in self._pending if self._pending[p]}
        partitions |= {p for (_, p), prog in self._progress.items() if prog.committable()}
        await asyncio.gather(*(self._commit_partition(p) for p in sorted(partitions)))

    async def _commit_partition(self, partition: int) -> None:
        if partition not in self._ready:
            return
        if self._trouble is not None and partition in self._trouble.broken:
            return  # rebuilt from Kafka first: committing offsets now could skip records
        offsets = {
            topic: offset
            for (topic, p), progress in self._progress.items()
            if p == partition and (offset := progress.committable()) is not None
        }
        finished = self._pending.pop(partition, [])
        if not offsets and not finished:
            return
        # Taken with the outputs, nothing awaited between: what finished beyond the prefix is
        # in this transaction or an earlier one.
        progress = self._progress_of(partition, offsets)
        try:
            committed = await self._committer.commit(partition, finished, offsets, progress)
        except BrokerError as exc:
            self._in_trouble(broken=(partition, exc))
            return
        for written in committed:
            self._state.remember(partition, written.state, written.offset)
        for topic, offset in offsets.items():
            self._progress[(topic, partition)].committed(offset)
            self.stats.committed[(topic, partition)] = offset
            if (done := self._done_offsets.get((topic, partition))) is not None:
                done -= {o for o in done if o < offset}
        await self._notify()

    def _progress_of(self, partition: int, offsets: dict[str, int]) -> Progress:
        """Per topic of ``partition``: the offsets finished beyond what ``offsets`` commits."""
        finished: dict[str, set[int]] = {}
        for (topic, p), progress in self._progress.items():
            if p == partition:
                finished.setdefault(topic, set()).update(progress.finished_above())
        for (topic, p), done in self._done_offsets.items():
            if p == partition:
                finished.setdefault(topic, set()).update(done)
        return Progress(
            finished={
                topic: sorted(o for o in found if o >= offsets.get(topic, 0))
                for topic, found in finished.items()
                if found
            }
        )

    def _take_done_offsets(self, partition: int) -> None:
        """What the partition's progress record says finished beyond its committed prefix."""
        self._forget_done_offsets(partition)
        for topic, offsets in self._state.finished_above(partition).items():
            self._done_offsets[(topic, partition)] = offsets

    def _forget_done_offsets(self, partition: int) -> None:
        self._done_offsets = {tp: o for tp, o in self._done_offsets.items() if tp[1] != partition}

    # --- trouble -------------------------------------------------------------------------------

    def _in_trouble(
        self, *, outage: str | None = None, broken: tuple[int, BrokerError] | None = None
    ) -> None:
        """Stop starting events; the loop settles, rewinds and (for an outage) pauses."""
        trouble = self._trouble = self._trouble or _Trouble()
        if outage is not None and trouble.outage is None:
            trouble.outage = outage
        if broken is not None:
            partition, exc = broken
            trouble.broken.setdefault(partition, exc)
        self._scheduler.hold()
        self._wake.set()

    async def _shared_probe(self) -> str | None:
        now = self._clock.monotonic()
        if self._probe_answer is not None and now - self._probe_answer[0] < _PROBE_REUSE_SECONDS:
            return self._probe_answer[1]
        if self._probe_task is None or self._probe_task.done():
            self._probe_task = asyncio.create_task(self._probe())
        answer = await asyncio.shield(self._probe_task)
        self._probe_answer = (self._clock.monotonic(), answer)
        return answer

    async def _recover(self, stop: asyncio.Event) -> None:
        """Settle what is in flight, commit what finished, rewind; pause if Capillary is down."""
        async with self._source.in_flight:  # no rebalance halfway through
            self._drop_backlog(read_again=True)
            for job in self._scheduler.withdraw():
                self._read_again(job.record)
            await self._scheduler.drain()
            async with self._commit_lock:
                await self._commit_all()
            trouble = self._trouble or _Trouble()
            self._trouble = None
            for partition, exc in sorted(trouble.broken.items()):
                await self._rebuild(partition, exc)
            self._seek_back()
            self._scheduler.resume()
        if trouble.outage is not None:
            await self._pause(trouble.outage, stop)

    async def _rebuild(self, partition: int, exc: BrokerError) -> None:
        """A transaction of p failed: nothing of it is visible. Start p over from Kafka."""
        log.warning("transaction_failed", partition=partition, error=str(exc))
        self._pending.pop(partition, None)
        for (topic, p), progress in list(self._progress.items()):
            if p == partition and progress.floor is not None:
                self._rewind_to[(topic, p)] = min(
                    progress.floor, self._rewind_to.get((topic, p), progress.floor)
                )
        self._forget_progress(partition)
        if exc.context.get("fenced"):
            # A newer owner holds p: taking its transactional id back would fence it.
            self._ready.discard(partition)
            self._state.forget(partition)
            await self._committer.close_partition(partition)
            return
        for attempt in range(1, _RESET_ATTEMPTS + 1):
            try:
                await self._committer.reset_partition(partition)
                # Our memory may be ahead of Kafka (states of the failed transaction).
                await self._state.restore(partition, self._clock.now())
                self._take_done_offsets(partition)
                break
            except BrokerError as again:
                if attempt == _RESET_ATTEMPTS:
                    raise
                log.warning(
                    "producer_reset_failed", partition=partition, attempt=attempt, error=str(again)
                )
                await asyncio.sleep(min(attempt, 5))

    def _read_again(self, record: Record) -> None:
        tp = (record.topic, record.partition)
        self._rewind_to[tp] = min(record.offset, self._rewind_to.get(tp, record.offset))

    def _seek_back(self) -> None:
        """Seek each rewound partition back; its progress starts over from there.

        Only once nothing is in flight: a running event's offset must stay tracked.
        """
        for (topic, partition), offset in self._rewind_to.items():
            if partition in self._ready:
                self._source.seek(topic, partition, offset)
            progress = self._progress.pop((topic, partition), None)
            if progress is not None:
                # Committed by the recovery: read again, they publish nothing.
                done = self._done_offsets.setdefault((topic, partition), set())
                done.update(progress.finished_above())
        self._rewind_to.clear()

    def _forget_progress(self, partition: int) -> None:
        for tp in [tp for tp in self._progress if tp[1] == partition]:
            del self._progress[tp]

    async def _wind_down(self) -> None:
        """On stop: start nothing more, let running events finish, commit."""
        self._drop_backlog(read_again=False)
        self._scheduler.hold()
        self._scheduler.withdraw()
        await self._scheduler.drain()
        async with self._commit_lock:
            await self._commit_all()
        self._raise_fatal()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

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
        self._paused_for = "capillary_outage"
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
                    self._mark_progress()
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
            self._paused_for = None
            self._paused_at_bound = False
            self._source.resume_all()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _count(self, finished: Finished) -> None:
        self.stats.records += 1
        result = finished.result
        if isinstance(result, Routed):
            # Counted (and capped) where its copy is handled.
            self.stats.routed += 1
            return
        if isinstance(result, DeadLetter):
            self.stats.dead_letters += 1
        elif isinstance(result, RetryLater):
            self.stats.retries += 1
        elif isinstance(result, AlreadyFinished):
            self.stats.read_again += 1
        elif isinstance(result, OutcomeEvent):
            self.stats.outcomes += 1
            if result.status is OutcomeStatus.FAILED:
                self.stats.failed_outcomes += 1
            elif result.status is OutcomeStatus.DUPLICATE:
                self.stats.duplicates += 1
        try:
            self._cap.count(self._clock.monotonic(), dead_letter=isinstance(result, DeadLetter))
        except Exception as exc:
            self._fatal = self._fatal or exc
            self._scheduler.hold()
            self._wake.set()


__all__ = ["Committer", "Probe", "RunStats", "Runner"]
