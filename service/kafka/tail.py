"""Following topics from their ends (or a time) on, without a group: a tail.

For a tool watching for answers as they come (the replay): committed records only, every
partition of the topics named, positioned at the end each had when the tail started, or
at ``since``; and whether what the topics held at the start has been read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from service.errors import BrokerError
from service.kafka.connection import committed_reader, start_client
from service.kafka.span import TopicRecord, record_of, topic_partitions


class Tail:
    """A group-less consumer of some topics, read from their ends or from ``since``."""

    def __init__(self, options: Mapping[str, Any], purpose: str) -> None:
        self._options = options
        self._purpose = purpose
        self._consumer = committed_reader(options)
        self._ends: dict[TopicPartition, int] = {}

    async def start(self, topics: Sequence[str], since: datetime | None) -> bool:
        """Position on every partition of ``topics``; ``True`` when nothing before the end
        is to be read (no ``since``, or nothing since)."""
        # Asked of the cluster: a consumer without a subscription knows no partitions.
        tps = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in await topic_partitions(self._options, topic)
        ]
        consumer = self._consumer
        await start_client(consumer.start, consumer.stop, f"cannot reach Kafka to {self._purpose}")
        consumer.assign(tps)
        self._ends = await consumer.end_offsets(tps)
        starts = dict(self._ends)
        if since is not None:
            by_time = await consumer.offsets_for_times(
                {tp: int(since.timestamp() * 1000) for tp in tps}
            )
            for tp, found in by_time.items():
                if found is not None:
                    starts[tp] = found.offset
        for tp in tps:
            consumer.seek(tp, starts[tp])
        return all(starts[tp] >= self._ends[tp] for tp in tps)

    async def fetch(self, timeout_ms: int) -> list[TopicRecord]:
        """What arrived, within ``timeout_ms``; :class:`BrokerError` if Kafka is lost."""
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise BrokerError(f"lost Kafka while trying to {self._purpose}") from exc
        return [record_of(message) for messages in batches.values() for message in messages]

    async def caught_up(self) -> bool:
        """Whether what the topics held when the tail started has been read."""
        positions = [await self._consumer.position(tp) for tp in self._ends]
        return all(p >= end for p, end in zip(positions, self._ends.values(), strict=True))

    async def stop(self) -> None:
        """Close the consumer."""
        await self._consumer.stop()


__all__ = ["Tail"]
