"""The broker from scripts/kafka.sh gives the transactional guarantees the service relies on.

Every record goes to partition 0 on purpose: Kafka orders records only within
a partition, and these tests reason about "everything before the end marker".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.conftest import TopicFactory

# An upper bound for one broker round trip chain on a slow CI box, never a
# pause: the loops below return as soon as their condition holds.
DEADLINE_S = 30.0
POLL_MS = 200
PARTITION = 0

Records = list[Any]  # aiokafka's ConsumerRecord is untyped


async def read_until(
    consumer: AIOKafkaConsumer,
    done: Callable[[Records], bool],
    what: str,
) -> Records:
    """Polls ``consumer`` until ``done(records)`` holds or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    records: Records = []
    while not done(records):
        if loop.time() > deadline:
            seen = [r.value for r in records]
            raise AssertionError(f"no {what} within {DEADLINE_S} s; saw {seen!r}")
        batches = await consumer.getmany(timeout_ms=POLL_MS)
        for batch in batches.values():
            records.extend(batch)
    return records


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Re-runs ``check`` until it returns True or the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"no {what} within {DEADLINE_S} s")
        # Yield to the loop between admin round trips; each check is itself
        # a network call, so this only keeps the poll from spinning.
        await asyncio.sleep(POLL_MS / 1000)


def has_value(value: bytes) -> Callable[[Records], bool]:
    return lambda records: any(r.value == value for r in records)


@asynccontextmanager
async def transactional_producer(
    bootstrap_servers: str, transactional_id: str
) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        transactional_id=transactional_id,
        enable_idempotence=True,
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def partition_reader(
    bootstrap_servers: str, topic: str, isolation_level: str
) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer reading partition 0 of ``topic`` from the start."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        isolation_level=isolation_level,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, PARTITION)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        yield consumer
    finally:
        await consumer.stop()


async def send_all(producer: AIOKafkaProducer, topic: str, values: list[bytes]) -> None:
    # Waiting for each ack makes sure the records are in the log before the
    # transaction ends, so an abort really has something to hide.
    for value in values:
        await producer.send_and_wait(topic, value, partition=PARTITION)


async def test_read_committed_consumer_with_aborted_transaction_sees_only_committed_records(
    bootstrap_servers: str, fresh_topic: str, unique_id: Callable[[str], str]
) -> None:
    committed = [b"committed-1", b"committed-2", b"committed-3"]
    aborted = [b"aborted-1", b"aborted-2"]
    end_marker = b"end"

    async with transactional_producer(bootstrap_servers, unique_id("txn")) as producer:
        await producer.begin_transaction()
        await send_all(producer, fresh_topic, committed)
        await producer.commit_transaction()

        await producer.begin_transaction()
        await send_all(producer, fresh_topic, aborted)
        await producer.abort_transaction()

        # Committed after the abort, so reaching it means the aborted records
        # have already been passed over in partition order.
        await producer.begin_transaction()
        await send_all(producer, fresh_topic, [end_marker])
        await producer.commit_transaction()

    async with partition_reader(bootstrap_servers, fresh_topic, "read_committed") as consumer:
        seen = await read_until(consumer, has_value(end_marker), "committed end marker")
    assert [r.value for r in seen] == [*committed, end_marker]

    # Control: the aborted records are in the log; only the isolation level hides them.
    async with partition_reader(bootstrap_servers, fresh_topic, "read_uncommitted") as consumer:
        raw = await read_until(consumer, has_value(end_marker), "end marker, uncommitted")
    assert [r.value for r in raw] == [*committed, *aborted, end_marker]


async def committed_offset(admin: AIOKafkaAdminClient, group_id: str, tp: TopicPartition) -> int:
    offsets = await admin.list_consumer_group_offsets(group_id, partitions=[tp])
    meta = offsets.get(tp)
    return -1 if meta is None else int(meta.offset)


async def test_send_offsets_to_transaction_moves_group_offset_only_when_committed(
    bootstrap_servers: str,
    topic_factory: TopicFactory,
    kafka_admin: AIOKafkaAdminClient,
    unique_id: Callable[[str], str],
) -> None:
    source = await topic_factory("in")
    sink = await topic_factory("out")
    group_id = unique_id("group")
    inputs = [b"event-1", b"event-2", b"event-3", b"event-4"]
    source_tp = TopicPartition(source, PARTITION)

    seeder = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await seeder.start()
    try:
        await send_all(seeder, source, inputs)
    finally:
        await seeder.stop()

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumed = await read_until(
            consumer, lambda records: len(records) >= len(inputs), "input events"
        )
        assert [r.value for r in consumed] == inputs
        next_offset: int = consumed[-1].offset + 1

        async with transactional_producer(bootstrap_servers, unique_id("txn")) as producer:
            # An aborted attempt must neither publish nor move the group.
            await producer.begin_transaction()
            await send_all(producer, sink, [b"lost-" + r.value for r in consumed])
            await producer.send_offsets_to_transaction({source_tp: next_offset}, group_id)
            await producer.abort_transaction()
            assert await committed_offset(kafka_admin, group_id, source_tp) == -1

            await producer.begin_transaction()
            await send_all(producer, sink, [b"done-" + r.value for r in consumed])
            await producer.send_offsets_to_transaction({source_tp: next_offset}, group_id)
            await producer.commit_transaction()
    finally:
        await consumer.stop()

    # Commit markers reach the group coordinator asynchronously; wait for them.
    async def group_moved() -> bool:
        return await committed_offset(kafka_admin, group_id, source_tp) == next_offset

    await wait_for(group_moved, f"group offset {next_offset}")

    async with partition_reader(bootstrap_servers, sink, "read_committed") as reader:
        out = await read_until(
            reader, lambda records: len(records) >= len(inputs), "committed outputs"
        )
    assert [r.value for r in out] == [b"done-" + v for v in inputs]
