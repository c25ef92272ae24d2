"""Liveness is progress of the run loop; readiness is joined and not paused."""

from __future__ import annotations

from service.clock import FakeClock
from service.observe.health import Health


def _health(clock: FakeClock, progress: list[float | None], reason: list[str | None]) -> Health:
    return Health(
        clock=clock,
        stall_seconds=60,
        progress_at=lambda: progress[0],
        not_ready=lambda: reason[0],
    )


def test_alive_while_progress_is_recent_and_not_after_the_stall_limit() -> None:
    clock = FakeClock()
    progress: list[float | None] = [None]
    health = _health(clock, progress, [None])
    assert health.live().ok  # starting
    progress[0] = clock.monotonic()
    clock.advance(59)
    assert health.live().ok
    clock.advance(2)
    verdict = health.live()
    assert not verdict.ok
    assert "no progress for 61 s" in verdict.reason


def test_ready_follows_the_run_loops_reason() -> None:
    clock = FakeClock()
    reason: list[str | None] = ["not in the consumer group (joining or rebalancing)"]
    health = _health(clock, [clock.monotonic()], reason)
    assert not health.ready().ok
    assert "consumer group" in health.ready().reason
    reason[0] = None
    assert health.ready().ok
