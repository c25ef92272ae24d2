"""The answers to a replay, tailed as they come, and what of a run is already published."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any

from service.errors import BrokerError
from service.kafka.span import Span, read_span
from service.kafka.tail import Tail
from service.operate.sources import parse_outcome
from service.pipeline.replays import REPLAY_ID_HEADER, REPLAY_SEQUENCE_HEADER


class AnswerWatch:
    """Tails the outcomes and dead-letter topics for the answers to one replay.

    Outcomes name their replay (``replay.replay_id``, ``replay.sequence``); a replayed
    event the service dead-letters keeps its ``rh-replay-*`` headers. Committed records
    only, no consumer group: the tool commits nothing.
    """

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        outcomes_topic: str,
        dead_letter_topic: str,
        replay_id: str,
        since: datetime | None,
        fetch_timeout_ms: int = 200,
    ) -> None:
        self._tail = Tail(options, "watch the replay's outcomes")
        self._outcomes = outcomes_topic
        self._dead = dead_letter_topic
        self._replay_id = replay_id
        self._marker = replay_id.encode()
        self._since = since
        self._fetch_timeout_ms = fetch_timeout_ms
        self._answered: dict[int, str] = {}
        self._new: list[tuple[int, str]] = []
        self._changed = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.extra_answers = 0
        """Answers beyond the first for one sequence (none expected: exactly once)."""

    @property
    def answered(self) -> Mapping[int, str]:
        """Every answer seen so far: sequence -> status."""
        return self._answered

    def take(self) -> list[tuple[int, str]]:
        """The answers that came since the last call."""
        new, self._new = self._new, []
        return new

    async def start(self) -> None:
        """Position on the topics (their ends, or ``since``) and start tailing."""
        if await self._tail.start((self._outcomes, self._dead), self._since):
            self._caught_up.set()
        self._task = asyncio.create_task(self._follow())

    async def caught_up(self) -> None:
        """Return once what the topics held at start has been read (a resume's past)."""
        while not self._caught_up.is_set():
            await self.wait(1.0)

    async def wait(self, seconds: float) -> None:
        """Return when new answers arrived, or after ``seconds``; raise if the watch failed."""
        if self._task is not None and self._task.done():
            self._task.result()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)
        self._changed.clear()

    async def stop(self) -> None:
        """Stop tailing and close the consumer."""
        if self._task is not None:
            self._task.cancel()
            # Stopping: a failure of the watch was reported by wait() already.
            with suppress(asyncio.CancelledError, BrokerError):
                await self._task
        await self._tail.stop()

    async def _follow(self) -> None:
        while True:
            got = False
            for record in await self._tail.fetch(self._fetch_timeout_ms):
                got |= self._take(record.topic, record.value, record.headers)
            if not self._caught_up.is_set() and await self._tail.caught_up():
                self._caught_up.set()
                got = True
            if got:
                self._changed.set()

    def _take(
        self, topic: str, value: bytes | None, headers: tuple[tuple[str, bytes], ...]
    ) -> bool:
        if topic == self._dead:
            found = {k: v for k, v in headers}
            if found.get(REPLAY_ID_HEADER) != self._marker:
                return False
            try:
                sequence = int(found.get(REPLAY_SEQUENCE_HEADER, b""))
            except ValueError:
                return False
            return self._answer(sequence, "dead_letter")
        # Most outcomes are not this replay's: a byte search spares parsing them.
        if not value or self._marker not in value:
            return False
        outcome = parse_outcome(value)
        if outcome is None or outcome.replay is None or outcome.replay.replay_id != self._replay_id:
            return False
        return self._answer(outcome.replay.sequence, str(outcome.status))

    def _answer(self, sequence: int, status: str) -> bool:
        if sequence in self._answered:
            self.extra_answers += 1
            return False
        self._answered[sequence] = status
        self._new.append((sequence, status))
        return True


async def published_sequences(
    options: Mapping[str, Any], topic: str, replay_id: str, since: datetime
) -> set[int]:
    """Sequences of a replay already on the returns topic (read from ``since``)."""
    found: set[int] = set()
    async for record in read_span(options, topic, Span(since=since)):
        if record.header(REPLAY_ID_HEADER) != replay_id:
            continue
        try:
            found.add(int(record.header(REPLAY_SEQUENCE_HEADER) or ""))
        except ValueError:
            continue
    return found


__all__ = ["AnswerWatch", "published_sequences"]
