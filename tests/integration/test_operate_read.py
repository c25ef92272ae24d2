"""Reading a part of a topic: by time, by offsets, stopping at the end it had."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from service.kafka.reader import read_topic
from service.kafka.span import Span, TopicRecord, read_span
from service.settings import KafkaSettings


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


async def test_the_tools_read_committed_records_only(
    bootstrap_servers: str, fresh_topic: str, unique_id: Callable[[str], str]
) -> None:
    # The outcomes and state topics are written in transactions; a tool that showed an
    # aborted record would show an outcome that was never published.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, transactional_id=unique_id("tools-read")
    )
    await producer.start()
    try:
        for value, commit in ((b"first", True), (b"aborted", False), (b"last", True)):
            await producer.begin_transaction()
            await producer.send_and_wait(fresh_topic, value, partition=0)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()

    spanned = await _all(bootstrap_servers, fresh_topic, Span())
    assert [r.value for r in spanned] == [b"first", b"last"]
    whole = await read_topic(
        KafkaSettings(bootstrap_servers=bootstrap_servers), fresh_topic, count=2, wait_seconds=20
    )
    # count=2 stops at two records; an aborted one would be the second.
    assert [r.value for r in whole] == [b"first", b"last"]
