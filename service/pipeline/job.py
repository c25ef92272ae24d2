"""The scheduler's job: one event processed inside its trace span.

A failure that concerns the whole pipeline is not the event's outcome. Capillary down (its
probe fails too) or a transaction of the partition failing becomes trouble (``recover.py``)
and the record is read again; Capillary answering the probe means the failure was the
event's own, and it takes the retry path.
"""

from __future__ import annotations

import dataclasses

from service.errors import BrokerError, CapillaryUnavailableError
from service.logging import get_logger
from service.observe.tracing import Tracing
from service.outcome import OutcomeEvent
from service.pipeline.outage import Outage
from service.pipeline.process import Processor
from service.pipeline.records import Finished
from service.pipeline.recover import Trouble
from service.pipeline.schedule import Job

log = get_logger(__name__)


class EventJob:
    """Runs a scheduled event: its outputs, or ``None`` when it must be read again."""

    def __init__(
        self, *, processor: Processor, tracing: Tracing, outage: Outage, trouble: Trouble
    ) -> None:
        self._processor = processor
        self._tracing = tracing
        self._outage = outage
        self._trouble = trouble

    async def __call__(self, job: Job) -> Finished | None:
        """Process ``job``; a bug raises (the service stops rather than skip the event)."""
        record, event = job.record, job.event
        try:
            with self._tracing.event(
                record.headers,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                event_id=event.event_id,
            ) as span:
                try:
                    finished = await self._processor.process(record, event)
                except CapillaryUnavailableError as exc:
                    reason = await self._outage.shared_probe()
                    if reason is not None:
                        span.set_attribute("return_handler.read_again", reason)
                        self._trouble.capillary_down(f"{exc.message}; probe: {reason}")
                        return None
                    # Capillary answers others: the failure is this event's own.
                    log.warning("event_failing_alone", event_id=event.event_id, reason=exc.message)
                    finished = await self._processor.retry_alone(record, exc.message)
                if isinstance(finished.result, OutcomeEvent):
                    span.set_attribute("return_handler.status", finished.result.status.value)
                return dataclasses.replace(finished, trace=tuple(self._tracing.current_headers()))
        except BrokerError as exc:
            self._trouble.failed(record.partition, exc)
            return None


__all__ = ["EventJob"]
