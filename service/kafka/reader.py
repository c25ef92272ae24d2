"""Reading a topic whole, without a consumer group: the tools' and tests' view of outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeAlias

from aiokafka import ConsumerRecord

from service.kafka.connection import checked_connection, committed_reader, start_client
from service.settings import KafkaSettings

KafkaRecord: TypeAlias = ConsumerRecord[bytes, bytes]
"""A record as read: ``topic``, ``partition``, ``offset``, ``key``, ``value``, ``headers``."""


async def read_topic(
    kafka: KafkaSettings,
    topic: str,
    *,
    count: int = 0,
    wait_seconds: float = 30.0,
    on_record: Callable[[KafkaRecord], None] | None = None,
) -> list[KafkaRecord]:
    """Committed records of ``topic`` from its start, without a consumer group.

    Stops once ``count`` records arrived (0: read until ``wait_seconds`` pass).
    """
    connection = await checked_connection(kafka)
    # Without a group the consumer takes every partition of the topic as it appears;
    # frequent metadata refreshes notice a topic created after we subscribed.
    consumer = committed_reader(connection.kwargs(), topic, metadata_max_age_ms=1000)
    await start_client(consumer.start, consumer.stop, bootstrap_servers=kafka.bootstrap_servers)
    records: list[KafkaRecord] = []
    end = time.monotonic() + wait_seconds
    try:
        while not (count and len(records) >= count) and time.monotonic() < end:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for message in messages:
                    records.append(message)
                    if on_record is not None:
                        on_record(message)
    finally:
        await consumer.stop()
    return records


__all__ = ["KafkaRecord", "read_topic"]
