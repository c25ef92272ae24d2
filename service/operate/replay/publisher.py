"""The replay's producer: each record to the returns topic, acknowledged by every replica."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.errors import BrokerError
from service.kafka.producer import AckedProducer
from service.operate.replay.outgoing import Outgoing


class KafkaPublisher:
    """Publishes replay records with acks from every replica, idempotently."""

    def __init__(self, options: Mapping[str, Any], topic: str) -> None:
        self._producer = AckedProducer(options, topic)

    async def start(self) -> None:
        """Connect; :class:`BrokerError` when Kafka does not answer."""
        await self._producer.start("publish the replay")

    async def stop(self) -> None:
        """Flush and close."""
        await self._producer.stop()

    async def publish(self, item: Outgoing) -> None:
        """Send ``item`` and wait for the broker's ack."""
        try:
            await self._producer.send(item.key, item.value, item.headers)
        except BrokerError as exc:
            raise BrokerError(
                "Kafka refused a replayed event",
                topic=self._producer.topic,
                sequence=item.sequence,
            ) from exc


__all__ = ["KafkaPublisher"]
