"""Publishing within a window and counting the answers: the run's logic, without Kafka.

The tool publishes the next event only when an outcome of this replay came back and fewer
than the window are waiting, so live events never queue behind a large replay and Ctrl-C
stops it within one window. What publishes and what answers are protocols, so a test drives
a run against a stand-in for the service.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from service.operate.replay.outgoing import Outgoing
from service.operate.replay.request import RunOptions


class Publisher(Protocol):
    """Sends one replay record to the returns topic and waits for the broker's ack."""

    async def publish(self, item: Outgoing) -> None:
        """Publish ``item``."""


class Answers(Protocol):
    """What comes back for a replay's events: outcomes (and dead letters) by sequence."""

    def take(self) -> list[tuple[int, str]]:
        """(sequence, status) of the answers that came since the last call.

        The status is the outcome's, or ``dead_letter`` when the service refused the event.
        """
        ...

    async def wait(self, seconds: float) -> None:
        """Return when new answers arrived, or after ``seconds``."""


@dataclass(frozen=True)
class RunProgress:
    """Where a run is: what the progress bar shows."""

    answered: int
    published: int
    total: int


@dataclass
class RunResult:
    """How a run ended."""

    replay_id: str
    total: int
    answered: dict[int, str]
    published_now: int
    """Published by this run (a resume publishes only what was not yet)."""
    published: int = 0
    """Published by this run and the ones it resumes."""
    stopped: bool = False
    """Stopped on request (Ctrl-C) before every event was answered."""
    stalled: bool = False
    """No answer came for ``idle_seconds``: is the service running?"""

    @property
    def finished(self) -> bool:
        """Every event of the run has its answer."""
        return len(self.answered) >= self.total

    def by_status(self) -> Counter[str]:
        """Answers counted by status."""
        return Counter(self.answered.values())


async def drive(
    *,
    replay_id: str,
    sequences: Sequence[int],
    items: Sequence[Outgoing],
    published: set[int],
    publisher: Publisher,
    answers: Answers,
    options: RunOptions,
    progress: Callable[[RunProgress], None] | None = None,
) -> RunResult:
    """Publish ``items`` in order, never more than ``options.window`` waiting for an answer.

    Returns when every sequence is answered; when ``options.stop`` is set (after waiting up
    to ``grace_seconds`` for what is in flight, or until ``abandon`` is set); or when nothing
    came back for ``idle_seconds`` while events were waiting.
    """
    wanted = set(sequences)
    queue = [item for item in items if item.sequence not in published]
    queue.reverse()  # popped from the end: first in first out
    published = set(published)
    done: dict[int, str] = {}
    # Kept up to date answer by answer: a run of a million events stays linear.
    waiting = set(published)
    published_now = 0
    last_change = time.monotonic()
    stop, idle_seconds = options.stop, options.idle_seconds

    def take_answers() -> None:
        nonlocal last_change
        new = [(s, status) for s, status in answers.take() if s in wanted and s not in done]
        for sequence, status in new:
            done[sequence] = status
            # An answer proves its event was published, whatever the scan of returns found.
            published.add(sequence)
            waiting.discard(sequence)
        if new:
            last_change = time.monotonic()
            if progress is not None:
                progress(RunProgress(len(done), len(published), len(wanted)))

    def result(*, stopped: bool = False, stalled: bool = False) -> RunResult:
        return RunResult(
            replay_id, len(wanted), dict(done), published_now, len(published), stopped, stalled
        )

    while True:
        take_answers()
        if len(done) == len(wanted):
            return result()
        if stop.is_set():
            break
        while queue and len(waiting) < options.window and not stop.is_set():
            item = queue.pop()
            await publisher.publish(item)
            published.add(item.sequence)
            waiting.add(item.sequence)
            published_now += 1
            last_change = time.monotonic()
            if progress is not None:
                progress(RunProgress(len(done), len(published), len(wanted)))
        idle = time.monotonic() - last_change
        if idle >= idle_seconds:
            return result(stalled=True)
        await answers.wait(min(1.0, idle_seconds - idle))
    # Stopped: what is in flight gets a short grace to come back, then the run ends.
    deadline = time.monotonic() + options.grace_seconds
    while waiting and time.monotonic() < deadline:
        if options.abandon.is_set():
            break
        await answers.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        take_answers()
    return result(stopped=len(done) < len(wanted))


__all__ = ["Answers", "Publisher", "RunProgress", "RunResult", "drive"]
