"""What moves between the steps, and the ports the steps talk through.

The ports are protocols so that the pipeline runs unchanged over real Kafka
(``service/kafka/``: the source and the committer) or over in-memory fakes in unit tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.outcome import OutcomeEvent
from service.pipeline.state import EventState, Progress

PartitionHook = Callable[[list[int]], Awaitable[None]]
"""Called with the input partition numbers assigned or revoked."""


ORIGIN_TOPIC_HEADER = "rh-origin-topic"
ORIGIN_PARTITION_HEADER = "rh-origin-partition"
ORIGIN_OFFSET_HEADER = "rh-origin-offset"
ORIGIN_HEADERS = (ORIGIN_TOPIC_HEADER, ORIGIN_PARTITION_HEADER, ORIGIN_OFFSET_HEADER)
"""On a copy the service made of an input record (routed, or on the retry path): where the
producer's record is."""


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
    origin: Origin | None = None
    """For a copy the service made (routed, or on the retry path): the producer's record.
    ``None``: this record is the producer's own."""

    @property
    def source(self) -> Origin:
        """The producer's record: one input, whichever copy of it is read."""
        if self.origin is not None:
            return self.origin
        return Origin(self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a producer's record is on the returns topic."""

    topic: str
    partition: int
    offset: int


def origin_in(headers: tuple[tuple[str, bytes], ...], returns_topic: str) -> Origin | None:
    """The origin a copy's headers name, or ``None`` when they name none (or a broken one).

    Retry records of versions before the ledger name no topic: theirs is ``returns_topic``.
    """
    found = {key: value for key, value in headers if key in ORIGIN_HEADERS}
    if ORIGIN_PARTITION_HEADER not in found or ORIGIN_OFFSET_HEADER not in found:
        return None
    try:
        topic = found.get(ORIGIN_TOPIC_HEADER, returns_topic.encode()).decode()
        return Origin(topic, int(found[ORIGIN_PARTITION_HEADER]), int(found[ORIGIN_OFFSET_HEADER]))
    except (UnicodeDecodeError, ValueError):
        return None


def origin_headers(record: Record) -> list[tuple[str, bytes]]:
    """The headers of a copy of ``record``: its own, with the producer's record named."""
    source = record.source
    kept = [(k, v) for k, v in record.headers if k not in ORIGIN_HEADERS]
    return [
        *kept,
        (ORIGIN_TOPIC_HEADER, source.topic.encode()),
        (ORIGIN_PARTITION_HEADER, str(source.partition).encode()),
        (ORIGIN_OFFSET_HEADER, str(source.offset).encode()),
    ]


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
class Routed:
    """A record of the returns topic on another partition than its customer key's.

    Its producer's partitioner (CRC32 in librdkafka clients) differs from the service's
    (murmur2, as Java and aiokafka): the record goes to partition ``partition`` of the routed
    topic, keyed by ``key``, in the same transaction as its offset, and is handled there,
    where every record of that customer meets its state and ledger.
    """

    record: Record
    partition: int
    key: bytes


@dataclass(frozen=True, slots=True)
class AlreadyFinished:
    """A record read again after its event was finished and committed from this very record.

    Outcomes are committed as events finish, offsets only over each partition's finished
    prefix, so a restart (or a rewind after an outage) reads some finished records again:
    nothing is published for them, only their offset moves on.
    """

    record: Record
    event_id: str | None
    """``None`` when it was known finished before it was read (the partition's progress)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """One record done with: what to publish for it, and the state to remember.

    Publishing, the state record and the record's offset go in one transaction.
    """

    record: Record
    result: OutcomeEvent | DeadLetter | RetryLater | AlreadyFinished | Routed
    state: EventState | None = None
    """The event's new state; ``done`` states get the outcome's position filled in."""
    trace: tuple[tuple[str, bytes], ...] = ()
    """The event span's context as headers (``traceparent``), for the outcome."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A state record a transaction made visible, and its offset in the state partition."""

    state: EventState
    offset: int


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

    @property
    def partition_count(self) -> int:
        """Partitions of the returns topic (the routed, retry and state topics have as many)."""
        ...


class Committer(Protocol):
    """The last step's transactions (``service.kafka.committer.KafkaCommitter``)."""

    async def open_partition(self, partition: int) -> None:
        """Take over p's transactional id (fencing a previous owner)."""

    async def close_partition(self, partition: int) -> None:
        """Give p's transactional id up."""

    async def reset_partition(self, partition: int) -> None:
        """Close and reopen p's producer after a failed transaction."""

    async def commit(
        self,
        partition: int,
        finished: Sequence[Finished],
        offsets: Mapping[str, int],
        progress: Progress | None,
    ) -> list[Committed]:
        """Outputs, states, offsets and progress of p (``None``: none beyond ``offsets``) in
        one transaction; the states with their offsets."""
        ...

    async def stop(self) -> None:
        """Close every producer."""


class Probe(Protocol):
    """``None`` when Capillary answers, else why it does not."""

    async def __call__(self) -> str | None: ...
