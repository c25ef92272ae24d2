"""What /healthz and /readyz answer: a watchdog on the run loop, and readiness.

Liveness is progress, not "the port answers": the run loop must keep turning, and events in
flight must keep finishing. A Capillary outage is neither: the service pauses, keeps
turning (it polls to stay in the group) and has nothing in flight, so it stays alive and
only readiness goes down; restarting it would not bring Capillary back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.clock import Clock


@dataclass(frozen=True)
class Verdict:
    """One answer of a check: fine or not, and why, for people."""

    ok: bool
    reason: str


@dataclass(frozen=True)
class Health:
    """Liveness and readiness from the run loop's readings."""

    clock: Clock
    stall_seconds: float
    progress_at: Callable[[], float | None]
    """Monotonic time of the last progress: a loop turn with nothing in flight, or an event
    finished. ``None`` before the run loop started."""
    not_ready: Callable[[], str | None]
    """Why the service should take no traffic now, or ``None``."""

    def live(self) -> Verdict:
        """Alive unless the run loop or the events in flight stopped moving."""
        progress = self.progress_at()
        if progress is None:
            return Verdict(True, "starting")
        stalled = self.clock.monotonic() - progress
        if stalled > self.stall_seconds:
            return Verdict(
                False,
                f"no progress for {stalled:.0f} s (run loop stuck or events in flight not "
                f"finishing; limit {self.stall_seconds:.0f} s)",
            )
        return Verdict(True, "making progress")

    def ready(self) -> Verdict:
        """Ready when the group is joined and the service is not paused."""
        reason = self.not_ready()
        return Verdict(reason is None, reason or "ready")


__all__ = ["Health", "Verdict"]
