"""What moves between the steps, and the ports the steps talk through.

The ports are protocols so that the pipeline runs unchanged over real Kafka
(``consume``/``commit``) or over in-memory fakes in unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.outcome import OutcomeEvent
from service.pipeline.state import EventState

PartitionHook = Callable[[list[int]], Awaitable[None]]
"""Called with the input partition numbers assigned or revoked."""


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka message, as the pipeline sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that is not a valid event, with the reason it was refused."""

    record: Record
    reason: str
    error_type: str
    details: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RetryLater:
    """An event whose own transient refusal (an open cart) sends it down the retry path."""

    record: Record
    event_id: str
    attempt: int
    """The attempt that will run next (2 for the first retry)."""
    not_before_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class AlreadyFinished:
    """A record read again after its event was finished and committed from this very record.

    Outcomes are committed as events finish, offsets only over each partition's finished
    prefix, so a restart (or a rewind after an outage) reads some finished records again:
    nothing is published for them, only their offset moves on.
    """

    record: Record
    event_id: str


@dataclass(frozen=True, slots=True)
class Finished:
    """One record done with: what to publish for it, and the state to remember.

    Publishing, the state record and the record's offset go in one transaction.
    """

    record: Record
    result: OutcomeEvent | DeadLetter | RetryLater | AlreadyFinished
    state: EventState | None = None
    """The event's new state; ``done`` states get the outcome's position filled in."""
    trace: tuple[tuple[str, bytes], ...] = ()
    """The event span's context as headers (``traceparent``), for the outcome."""


class RecordSource(Protocol):
    """Where records come from: a consumer group on the returns and retry topics."""

    in_flight: asyncio.Lock
    """Held while the pipeline rewinds after a failure; a rebalance waits for it."""
    on_assigned: PartitionHook | None
    on_revoked: PartitionHook | None

    async def start(self) -> None:
        """Join the group."""

    async def stop(self) -> None:
        """Leave the group."""

    async def poll(self, timeout_ms: int | None = None) -> Sequence[Record]:
        """The next records, in partition order; empty when none arrived in time."""
        ...

    def pause_all(self) -> None:
        """Fetch nothing (the membership stays)."""

    def resume_all(self) -> None:
        """Fetch again."""

    def hold(self, topic: str, partition: int, offset: int) -> None:
        """Read ``offset`` again later; fetch nothing more of it until released."""

    def release(self, topic: str, partition: int) -> None:
        """Fetch again from a held partition."""

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read this partition again from ``offset``."""

    @property
    def joined(self) -> bool:
        """Whether the consumer is in its group with an assignment (possibly empty)."""
        ...

    def reading(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Per owned (topic, partition) whose end is known: (end offset, next offset to read)."""
        ...
