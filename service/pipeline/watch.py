"""What the runner shows: health checks, metrics and tests read it, nothing in it acts."""

from __future__ import annotations

import asyncio

from service.clock import Clock
from service.pipeline.consume import Intake
from service.pipeline.outage import Outage
from service.pipeline.partition import OwnedPartition, lag
from service.pipeline.records import RecordSource
from service.pipeline.schedule import Scheduler


class Watched:
    """The runner's view of itself (``run.Runner`` fills these attributes in)."""

    _clock: Clock
    _source: RecordSource
    _scheduler: Scheduler
    _intake: Intake
    _outage: Outage
    _owned: dict[int, OwnedPartition]
    _stopping: bool
    _progress_at: float | None
    changed: asyncio.Condition
    """Notified whenever what the run did changes (for health checks and tests)."""

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
        return self._outage.paused_for

    def not_ready(self) -> str | None:
        """Why this replica should not count as ready now, or ``None``."""
        if self._stopping:
            return "stopping"
        if not self._source.joined:
            return "not in the consumer group (joining or rebalancing)"
        if self._outage.paused_for is not None:
            return "paused: Capillary is unavailable; probing until it answers"
        return None

    def lag(self) -> dict[tuple[str, int], int]:
        """Records of each owned partition not yet finished and committed here."""
        return lag(self._source.reading(), self._owned)

    async def idle(self) -> None:
        """Wait until no event is in flight and nothing fetched waits to be taken."""
        while True:
            await self._scheduler.drain()
            if not self._intake.backlog:
                return
            async with self.changed:
                await self.changed.wait_for(
                    lambda: not self._intake.backlog or self._scheduler.in_flight > 0
                )


__all__ = ["Watched"]
