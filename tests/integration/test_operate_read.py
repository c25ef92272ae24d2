"""Reading a part of a topic: by time, by offsets, stopping at the end it had."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from service.kafka.span import Span, TopicRecord, read_span


async def _fill(bootstrap: str, topic: str, stamps_ms: list[int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i, stamp in enumerate(stamps_ms):
            await producer.send_and_wait(
                topic, value=f"v{i}".encode(), partition=i % 2, timestamp_ms=stamp
            )
    finally:
        await producer.stop()


async def _all(bootstrap: str, topic: str, span: Span) -> list[TopicRecord]:
    return [r async for r in read_span({"bootstrap_servers": bootstrap}, topic, span)]


BASE_MS = 1_790_000_000_000


async def test_a_time_range_reads_what_was_written_within_it(
    bootstrap_servers: str, fresh_topic: str
) -> None:
    await _fill(bootstrap_servers, fresh_topic, [BASE_MS + i * 1000 for i in range(10)])
    since = datetime.fromtimestamp((BASE_MS + 3000) / 1000, UTC)
    until = datetime.fromtimestamp((BASE_MS + 6000) / 1000, UTC)
    found = await _all(bootstrap_servers, fresh_topic, Span(since=since, until=until))
    assert sorted(r.value for r in found if r.value) == [b"v3", b"v4", b"v5", b"v6"]


async def test_offsets_per_partition_and_progress(bootstrap_servers: str, fresh_topic: str) -> None:
    await _fill(bootstrap_servers, fresh_topic, [BASE_MS + i for i in range(10)])
    seen: list[tuple[int, int]] = []
    found = [
        r
        async for r in read_span(
            {"bootstrap_servers": bootstrap_servers},
            fresh_topic,
            Span(offsets={1: (1, 3)}),
            progress=lambda done, total: seen.append((done, total)),
        )
    ]
    # Partition 1 holds v1, v3, v5, v7, v9 at offsets 0..4.
    assert [(r.partition, r.offset, r.value) for r in found] == [
        (1, 1, b"v3"),
        (1, 2, b"v5"),
        (1, 3, b"v7"),
    ]
    assert seen[0] == (0, 3)
    assert seen[-1] == (3, 3)
    assert found[0].position == f"{fresh_topic}:1:1"
