"""The run loop: take records, schedule them, commit what finished, recover, drain.

The loop polls the source, hands records on (``consume.py``), keeps polling while the
scheduler is at its bound so the group sees us alive, and settles trouble before taking
more (``recover.py``). A separate task commits every ``commit_interval`` (``commit.py``).
On stop the running events finish (bounded by the grace period), finished work is
committed, and the rest is left for the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from service.clock import Clock
from service.logging import get_logger
from service.observe.metrics import Metrics
from service.observe.tracing import Tracing
from service.pipeline.commit import CommitStep
from service.pipeline.consume import Intake
from service.pipeline.flood import DeadLetterCap
from service.pipeline.job import EventJob
from service.pipeline.outage import Outage
from service.pipeline.partition import OwnedPartition
from service.pipeline.process import Processor
from service.pipeline.rebalance import Rebalance
from service.pipeline.records import (
    Committer,
    DeadLetter,
    Finished,
    Probe,
    RecordSource,
    Routed,
)
from service.pipeline.recover import Trouble
from service.pipeline.route import Router
from service.pipeline.schedule import Job, Scheduler
from service.pipeline.state import StateStore
from service.pipeline.stats import RunStats
from service.pipeline.watch import Watched

log = get_logger(__name__)

_KEEP_ALIVE_SECONDS = 1.0
"""While paused at the bound, poll this often: the group must see us alive."""


class Runner(Watched):
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
        self._metrics = metrics or Metrics()
        self._tracing = tracing or Tracing.off()
        self._committer = committer
        self._state = state
        self._cap = dead_letter_cap
        self._clock = clock
        self._grace_seconds = grace_seconds
        self._scheduler = Scheduler(bound=events_in_flight, run=self._job)
        self._owned: dict[int, OwnedPartition] = {}
        self._intake = Intake(
            source=source,
            owned=self._owned,
            scheduler=self._scheduler,
            processor=processor,
            router=router,
            set_up=lambda p: self._commits.open(p),
            finish=self._add,
            metrics=self._metrics,
        )
        self._stop = asyncio.Event()
        self._fatal: BaseException | None = None
        self._wake = asyncio.Event()
        self._progress_at: float | None = None
        self._stopping = False
        self.stats = RunStats()
        self.changed = asyncio.Condition()
        """Notified whenever ``stats`` change (for health checks and tests)."""
        self._outage = Outage(
            probe=probe,
            source=source,
            clock=clock,
            stats=self.stats,
            initial_seconds=probe_initial_seconds,
            max_seconds=probe_max_seconds,
            changed=self._notify,
            alive=self._mark_progress,
        )
        self._commits = CommitStep(
            committer,
            state,
            self.stats,
            self._owned,
            clock=clock,
            interval_seconds=commit_interval_seconds,
            skip=lambda p: self._trouble.broken(p),
            failed=lambda p, exc: self._trouble.failed(p, exc),
            changed=self._notify,
        )
        self._trouble = Trouble(
            intake=self._intake, commits=self._commits, outage=self._outage, wake=self._wake
        )
        self._rebalance = Rebalance(
            commits=self._commits, intake=self._intake, scheduler=self._scheduler
        )
        self._event_job = EventJob(
            processor=processor, tracing=self._tracing, outage=self._outage, trouble=self._trouble
        )

    async def run(
        self, stop: asyncio.Event, *, started: Callable[[], Awaitable[object]] | None = None
    ) -> RunStats:
        """Run until ``stop`` is set; then drain within the grace period and close.

        ``started`` is awaited once Kafka let us in, before the first record (the service
        opens its health port there, so a start that fails opens nothing).
        """
        self._stop = stop
        self._stopping = False
        self._source.on_assigned = self._rebalance.assigned
        self._source.on_revoked = self._rebalance.revoked
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
            commit_task = asyncio.create_task(self._commits.every_interval())
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
            log.info("service_stopped", **self.stats.summary())
        return self.stats

    # --- taking records ------------------------------------------------------------------------

    async def _loop(self, stop: asyncio.Event) -> None:
        last_poll = self._clock.monotonic()
        while not stop.is_set() and self._fatal is None:
            if self._scheduler.in_flight == 0:
                self._mark_progress()
            if self._trouble.active:
                try:
                    await self._trouble.recover(stop)
                finally:
                    self._intake.resumed()  # a pause resumed every partition
                continue
            self._intake.release_due(self._clock.now())
            self._state.expire_due(self._clock.now(), self._clock.monotonic())
            if self._intake.backlog:
                await self._take()
            if self._scheduler.full or self._intake.backlog:
                # At the bound: the partitions pause and what was fetched waits here (at
                # most one poll's worth), so nothing buffers without limit or is fetched twice.
                self._intake.pause()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_KEEP_ALIVE_SECONDS):
                        await self._intake.wait_for_room(self._wake)
                if self._clock.monotonic() - last_poll < _KEEP_ALIVE_SECONDS:
                    continue
                records = await self._source.poll(timeout_ms=0)  # stay in the group
            else:
                self._intake.resume()
                records = await self._source.poll()
            last_poll = self._clock.monotonic()
            self._intake.extend(records)
            await self._take()
        await self._wind_down()

    async def _take(self) -> None:
        await self._intake.take(
            rewinding=self._trouble.active, failed=lambda: self._fatal is not None
        )
        self.stats.in_flight_peak = self._scheduler.peak
        await self._notify()

    async def _job(self, job: Job) -> None:
        """Process one event; failures that concern the whole pipeline become trouble."""
        if self._stop.is_set() or self._trouble.active or self._fatal is not None:
            # Started just before the pipeline stopped taking work: leave it unread.
            self._intake.read_again(job.record)
            return
        try:
            finished = await self._event_job(job)
        except Exception as exc:
            self._fail(exc)  # a bug: stop the service rather than skip the event
            return
        if finished is None:
            self._intake.read_again(job.record)
            return
        self._add(finished)
        await self._notify()

    def _add(self, finished: Finished) -> None:
        self._owned[finished.record.partition].finish(finished)
        self._mark_progress()
        self.stats.count(finished)
        if isinstance(finished.result, Routed):
            return  # counted (and capped) where its copy is handled
        try:
            dead = isinstance(finished.result, DeadLetter)
            self._cap.count(self._clock.monotonic(), dead_letter=dead)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self._fatal = self._fatal or exc
        self._scheduler.hold()
        self._wake.set()

    async def _wind_down(self) -> None:
        """On stop: start nothing more, let running events finish, commit."""
        self._intake.drop(read_again=False)
        self._scheduler.hold()
        self._scheduler.withdraw()
        await self._scheduler.drain()
        await self._commits.commit()
        if self._fatal is not None:
            raise self._fatal

    def _mark_progress(self) -> None:
        self._progress_at = self._clock.monotonic()

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


__all__ = ["Committer", "Probe", "RunStats", "Runner"]
