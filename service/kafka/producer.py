"""Sending records one by one, each acknowledged: the tools' way into a topic."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.errors import BrokerError
from service.kafka.connection import checked_connection, start_client
from service.settings import KafkaSettings


async def send_each(
    kafka: KafkaSettings, topic: str, records: Sequence[tuple[bytes | None, bytes]]
) -> list[tuple[int, int]]:
    """Send ``(key, value)`` records in order, each acknowledged by every in-sync replica.

    Returns the partition and offset of each. Idempotent, so a retried send is written once.
    """
    connection = await checked_connection(kafka)
    producer = AIOKafkaProducer(**connection.kwargs(), acks="all", enable_idempotence=True)
    await start_client(producer.start, producer.stop, bootstrap_servers=kafka.bootstrap_servers)
    placed = []
    try:
        for key, value in records:
            meta = await producer.send_and_wait(topic, value=value, key=key)
            placed.append((meta.partition, meta.offset))
    finally:
        await producer.stop()
    return placed


class AckedProducer:
    """One topic's producer: each record acknowledged by every in-sync replica, idempotent."""

    def __init__(self, options: Mapping[str, Any], topic: str) -> None:
        self._producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
        self.topic = topic

    async def start(self, purpose: str) -> None:
        """Connect; :class:`BrokerError` ("cannot reach Kafka to ``purpose``") if it fails."""
        producer = self._producer
        await start_client(producer.start, producer.stop, f"cannot reach Kafka to {purpose}")

    async def stop(self) -> None:
        """Flush and close."""
        await self._producer.stop()

    async def send(
        self, key: bytes | None, value: bytes, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        """Send one record and wait for its acknowledgement; :class:`BrokerError` if refused."""
        try:
            await self._producer.send_and_wait(
                self.topic, value=value, key=key, headers=list(headers)
            )
        except KafkaError as exc:
            raise BrokerError("Kafka refused a record", topic=self.topic) from exc


__all__ = ["AckedProducer", "send_each"]
