"""Capillary down: probe once for the events failing together, pause until it answers.

An event whose call failed as if Capillary were unavailable asks
:meth:`Outage.shared_probe`; the events of one coalesced call fail together, so an answer
less than a second old is shared.
When the probe fails too, the runner settles what is in flight and :meth:`Outage.pause`
keeps the consumer in its group, fetching nothing, while it probes with a doubling wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.clock import Clock
from service.logging import get_logger
from service.pipeline.records import Probe, RecordSource
from service.pipeline.stats import RunStats

log = get_logger(__name__)

PROBE_REUSE_SECONDS = 1.0
"""Events failing together (one coalesced call) share one probe."""

OUTAGE = "capillary_outage"


@dataclass(slots=True, eq=False, kw_only=True)
class Outage:
    """Probing Capillary for failing events, and pausing while it does not answer."""

    probe: Probe
    source: RecordSource
    clock: Clock
    stats: RunStats
    initial_seconds: float
    """The first wait between probes while paused; it doubles after each failed one."""
    max_seconds: float
    """The longest wait between probes."""
    changed: Callable[[], Awaitable[None]]
    alive: Callable[[], None]
    """Told while paused, after each poll, that the loop is still alive."""
    _task: asyncio.Task[str | None] | None = field(default=None, init=False, repr=False)
    _answer: tuple[float, str | None] | None = field(default=None, init=False, repr=False)
    paused_for: str | None = field(default=None, init=False)
    """``capillary_outage`` while paused for it."""

    async def shared_probe(self) -> str | None:
        """``None`` when Capillary answers, else why not; one probe for callers at once."""
        now = self.clock.monotonic()
        if self._answer is not None and now - self._answer[0] < PROBE_REUSE_SECONDS:
            return self._answer[1]
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.probe())
        answer = await asyncio.shield(self._task)
        self._answer = (self.clock.monotonic(), answer)
        return answer

    async def pause(self, reason: str, stop: asyncio.Event) -> None:
        """Take no work, keep the membership, probe with backoff until Capillary answers."""
        self.stats.pauses += 1
        self.paused_for = OUTAGE
        await self.changed()
        self.source.pause_all()
        paused_at = self.clock.monotonic()
        wait = self.initial_seconds
        log.warning("capillary_outage_paused", reason=reason)
        try:
            while not stop.is_set():
                next_probe = self.clock.monotonic() + wait
                while not stop.is_set() and self.clock.monotonic() < next_probe:
                    # Polling paused partitions fetches nothing but keeps us in the group.
                    await self.source.poll()
                    self.alive()
                if stop.is_set():
                    return
                reason_now = await self.probe()
                self.stats.probes += 1
                await self.changed()
                paused_for = round(self.clock.monotonic() - paused_at, 1)
                if reason_now is None:
                    log.info("capillary_probe_succeeded", paused_seconds=paused_for)
                    return
                log.warning(
                    "capillary_probe_failed",
                    reason=reason_now,
                    paused_seconds=paused_for,
                    next_probe_seconds=round(min(wait * 2, self.max_seconds), 1),
                )
                wait = min(wait * 2, self.max_seconds)
        finally:
            self.paused_for = None
            self.source.resume_all()


__all__ = ["OUTAGE", "PROBE_REUSE_SECONDS", "Outage"]
