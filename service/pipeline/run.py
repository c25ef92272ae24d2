"""The run loop: poll, process in partition order, commit after acknowledgement, drain on stop.

An offset is committed only after the outcome (or dead letter) of its record
was acknowledged by Kafka, so a crash re-reads records instead of losing
them; every Capillary call is safe to repeat, so re-reading is harmless. On
stop the record in hand finishes (bounded by the grace period), the processed
prefix of the batch is committed, and the rest is left for the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from service.errors import ConfigurationError
from service.logging import get_logger
from service.outcome import OutcomeEvent, OutcomeStatus
from service.pipeline.consume import next_offsets
from service.pipeline.process import Processor
from service.pipeline.records import DeadLetter, Record, RecordSource, ResultSink

log = get_logger(__name__)


@dataclass
class RunStats:
    """What one run did, for the final log line and for tests."""

    records: int = 0
    outcomes: int = 0
    dead_letters: int = 0
    failed_outcomes: int = 0
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    """Last committed offset per (topic, partition): bounded by the partitions owned."""


class Runner:
    """Drives records from the source through the processor until told to stop."""

    def __init__(
        self,
        *,
        source: RecordSource,
        sink: ResultSink,
        processor: Processor,
        grace_seconds: float,
    ) -> None:
        self._source = source
        self._sink = sink
        self._processor = processor
        self._grace_seconds = grace_seconds
        self.stats = RunStats()

    async def run(self, stop: asyncio.Event) -> RunStats:
        """Run until ``stop`` is set; then drain within the grace period and close."""
        await self._sink.start()
        try:
            await self._source.start()
            try:
                log.info("service_started")
                loop_task = asyncio.create_task(self._loop(stop))
                stop_task = asyncio.create_task(stop.wait())
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
                            "revokes are safe to repeat",
                        )
                stop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stop_task
                if not loop_task.cancelled():
                    loop_task.result()  # re-raise what stopped the loop
            finally:
                await self._source.stop()
        finally:
            await self._sink.stop()
            log.info(
                "service_stopped",
                records=self.stats.records,
                outcomes=self.stats.outcomes,
                dead_letters=self.stats.dead_letters,
                failed_outcomes=self.stats.failed_outcomes,
            )
        return self.stats

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            records = await self._source.poll()
            if not records:
                continue
            async with self._source.processing():
                await self._process_batch(records, stop)

    async def _process_batch(self, records: Sequence[Record], stop: asyncio.Event) -> None:
        done: list[Record] = []
        try:
            for record in records:
                if stop.is_set():
                    break
                result = await self._processor.handle(record)
                self._count(result)
                done.append(record)
        except ConfigurationError:
            # Every later event would fail the same way: stop without committing it.
            log.error("service_stopping_on_fatal_error", processed_in_batch=len(done))
            raise
        finally:
            if done:
                await self._source.commit(done)
                self.stats.committed.update(next_offsets(done))

    def _count(self, result: OutcomeEvent | DeadLetter) -> None:
        self.stats.records += 1
        if isinstance(result, DeadLetter):
            self.stats.dead_letters += 1
            return
        self.stats.outcomes += 1
        if result.status is OutcomeStatus.FAILED:
            self.stats.failed_outcomes += 1
