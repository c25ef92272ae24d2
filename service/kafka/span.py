"""Reading a topic between two points, for the operator's tools (replay, inspect, report).

Unlike the service's consumer, these readers join no group and commit nothing: they take
every partition of one topic, start where the range starts (a time or an offset), read
committed records only, and stop at the end the topic had when they started, so a topic
that keeps growing never keeps them reading.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from service.errors import BrokerError, ConfigurationError
from service.kafka.connection import committed_reader, start_client


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """One record as the tools see it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def position(self) -> str:
        """``topic:partition:offset``, as outcomes and replays name records."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """The last value of header ``name``, decoded, or ``None``."""
        found = [value for key, value in self.headers if key == name]
        return found[-1].decode("utf-8", "replace") if found else None


def record_of(message: ConsumerRecord[bytes, bytes]) -> TopicRecord:
    """An aiokafka record as the tools see it: its fields, in TopicRecord's order."""
    return TopicRecord(
        message.topic,
        message.partition,
        message.offset,
        message.timestamp,
        message.key,
        message.value,
        tuple(message.headers or ()),
    )


@dataclass(frozen=True)
class Span:
    """Which part of a topic to read: a time range, offsets per partition, or both.

    ``offsets`` maps a partition to (first offset, last offset), both included; partitions
    not named are not read when ``offsets`` is given.
    """

    since: datetime | None = None
    until: datetime | None = None
    offsets: Mapping[int, tuple[int, int]] | None = None


Progress = Callable[[int, int], None]
"""Called with (records read so far, records in the range at most) as reading goes."""


async def read_span(
    client_options: Mapping[str, Any],
    topic: str,
    span: Span = Span(),
    *,
    progress: Progress | None = None,
    fetch_timeout_ms: int = 500,
) -> AsyncIterator[TopicRecord]:
    """Every committed record of ``topic`` in ``span``, each partition in offset order.

    ``client_options``: aiokafka's connection arguments (bootstrap servers, TLS, SASL).
    """
    consumer = committed_reader(client_options)
    await start_client(
        consumer.start, consumer.stop, bootstrap_servers=client_options.get("bootstrap_servers")
    )
    try:
        bounds = await _bounds(consumer, client_options, topic, span)
        total = sum(max(0, end - start) for start, end in bounds.values())
        read = 0
        if progress is not None:
            progress(read, total)
        open_partitions = {tp for tp, (start, end) in bounds.items() if start < end}
        consumer.assign(list(open_partitions))
        for tp in open_partitions:
            consumer.seek(tp, bounds[tp][0])
        while open_partitions:
            batches = await consumer.getmany(*open_partitions, timeout_ms=fetch_timeout_ms)
            for tp, messages in batches.items():
                end = bounds[tp][1]
                for message in messages:
                    if message.offset >= end:
                        break
                    if span.until is not None and message.timestamp > _ms(span.until):
                        continue
                    read += 1
                    yield record_of(message)
            for tp in list(open_partitions):
                # Transaction markers and aborted records take offsets too: the position, not
                # the last record seen, says whether the range is done.
                if await consumer.position(tp) >= bounds[tp][1]:
                    open_partitions.discard(tp)
            consumer.pause(*[tp for tp in consumer.assignment() if tp not in open_partitions])
            if progress is not None:
                progress(read, total)
    finally:
        await consumer.stop()


async def topic_partitions(client_options: Mapping[str, Any], topic: str) -> list[int]:
    """The partitions of ``topic``; :class:`ConfigurationError` when it does not exist."""
    return await _partitions(client_options, topic)


async def _partitions(client_options: Mapping[str, Any], topic: str) -> list[int]:
    """The partitions of ``topic``, asked of the cluster (a consumer learns them only later)."""
    admin = AIOKafkaAdminClient(**client_options)
    try:
        await admin.start()
        [described] = await admin.describe_topics([topic])
    except KafkaError as exc:
        raise BrokerError(
            "cannot reach Kafka", bootstrap_servers=client_options.get("bootstrap_servers")
        ) from exc
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for p in described.get("partitions", []))
    if described.get("error_code") or not partitions:
        raise ConfigurationError(f"topic {topic!r} does not exist on this cluster", topic=topic)
    return partitions


async def _bounds(
    consumer: AIOKafkaConsumer, client_options: Mapping[str, Any], topic: str, span: Span
) -> dict[TopicPartition, tuple[int, int]]:
    """(first offset, end offset exclusive) per partition of the span."""
    found = await _partitions(client_options, topic)
    tps = [TopicPartition(topic, p) for p in found]
    if span.offsets is not None:
        tps = [tp for tp in tps if tp.partition in span.offsets]
    if not tps:
        return {}
    beginnings = await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    starts = dict(beginnings)
    if span.since is not None:
        by_time = await consumer.offsets_for_times({tp: _ms(span.since) for tp in tps})
        for tp in tps:
            found_offset = by_time.get(tp)
            starts[tp] = found_offset.offset if found_offset is not None else ends[tp]
    if span.until is not None:
        by_time = await consumer.offsets_for_times({tp: _ms(span.until) + 1 for tp in tps})
        for tp in tps:
            found_offset = by_time.get(tp)
            if found_offset is not None:
                ends[tp] = min(ends[tp], found_offset.offset)
    bounds: dict[TopicPartition, tuple[int, int]] = {}
    for tp in tps:
        start, end = max(starts[tp], beginnings[tp]), ends[tp]
        if span.offsets is not None:
            first, last = span.offsets[tp.partition]
            start, end = max(start, first), min(end, last + 1)
        bounds[tp] = (start, max(start, end))
    return bounds


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


__all__ = ["Progress", "Span", "TopicRecord", "read_span", "record_of", "topic_partitions"]
