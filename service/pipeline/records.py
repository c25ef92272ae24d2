"""What moves between the steps, and the ports the steps talk through.

The ports are protocols so that the pipeline runs unchanged over real Kafka
(``consume``/``publish``) or over in-memory fakes in unit tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from service.outcome import OutcomeEvent


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


class RecordSource(Protocol):
    """Where records come from: a consumer group on the returns topic."""

    async def start(self) -> None:
        """Join the group."""

    async def stop(self) -> None:
        """Leave the group."""

    async def poll(self) -> Sequence[Record]:
        """The next records, in partition order; empty when none arrived in time."""
        ...

    def processing(self) -> AbstractAsyncContextManager[None]:
        """Held while a batch is processed: no rebalance, no new fetches, still alive."""
        ...

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past these records (offset + 1 per partition)."""


class ResultSink(Protocol):
    """Where outcomes and dead letters go. Each call returns once the broker acknowledged."""

    async def start(self) -> None:
        """Connect."""

    async def stop(self) -> None:
        """Flush and disconnect."""

    async def publish_outcome(self, outcome: OutcomeEvent, key: bytes | None) -> None:
        """Publish one outcome under the input's key (its event id when the input had none)."""

    async def publish_dead_letter(self, dead: DeadLetter) -> None:
        """Publish the original bytes with the reason and origin in headers."""
