"""Reading the state topic: a whole partition on assignment, one record when the ledger asks.

A restore reads state partition p from its start to its last committed record. The ledger
entry of a finished event lives in its state record, and memory keeps only that record's
offset: :meth:`KafkaStateReader.fetch` reads the one record back when a cancellation or a
replay needs it. The offsets it is asked for were committed (a restore read them, or a
transaction of ours wrote them and committed), so it reads without ``read_committed``: a
committed record is readable at once, before the last stable offset catches up with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from service.errors import BrokerError
from service.kafka.connection import connection_options
from service.settings import KafkaSettings

_RESTORE_DEADLINE_SECONDS = 300.0
_FETCH_DEADLINE_SECONDS = 30.0


class KafkaStateReader:
    """Reads one state partition from its start to its end, or one record of it."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._connection = connection_options(settings)
        self._fetcher: AIOKafkaConsumer | None = None
        self._fetching = asyncio.Lock()

    async def read(self, partition: int) -> AsyncIterator[list[tuple[bytes, bytes | None, int]]]:
        """Every (key, value, offset) of state partition ``partition``, in order, a fetched
        batch at a time."""
        tp = TopicPartition(self._settings.state_topic, partition)
        consumer = AIOKafkaConsumer(
            **self._connection.kwargs(),
            client_id=f"{self._settings.client_id}-state-{partition}",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            await consumer.start()
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            async with asyncio.timeout(_RESTORE_DEADLINE_SECONDS):
                while await consumer.position(tp) < end:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
                    yield [
                        (message.key, message.value, message.offset)
                        for message in batch.get(tp, [])
                        if message.key is not None
                    ]
        except (KafkaError, TimeoutError) as exc:
            raise BrokerError(
                "cannot read the state topic", topic=tp.topic, partition=partition, error=repr(exc)
            ) from exc
        finally:
            await consumer.stop()

    async def fetch(self, partition: int, offset: int) -> tuple[bytes, bytes | None] | None:
        """The (key, value) of the record at ``offset``; ``None`` if no record is there."""
        tp = TopicPartition(self._settings.state_topic, partition)
        async with self._fetching:
            try:
                consumer = await self._started()
                consumer.assign([tp])
                consumer.seek(tp, offset)
                async with asyncio.timeout(_FETCH_DEADLINE_SECONDS):
                    while True:
                        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                        for message in batch.get(tp, []):
                            if message.offset != offset or message.key is None:
                                return None  # compacted away: a newer record replaced it
                            return message.key, message.value
            except (KafkaError, TimeoutError) as exc:
                await self.aclose()
                raise BrokerError(
                    "cannot read a record of the state topic back",
                    topic=tp.topic,
                    partition=partition,
                    offset=offset,
                    error=repr(exc),
                ) from exc

    async def aclose(self) -> None:
        """Close the consumer that fetches single records (it opens again when needed)."""
        fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            await fetcher.stop()

    async def _started(self) -> AIOKafkaConsumer:
        if self._fetcher is None:
            fetcher = AIOKafkaConsumer(
                **self._connection.kwargs(),
                client_id=f"{self._settings.client_id}-state-fetch",
                enable_auto_commit=False,
                isolation_level="read_uncommitted",
                max_partition_fetch_bytes=1 << 20,
            )
            try:
                await fetcher.start()
            except BaseException:
                await fetcher.stop()
                raise
            self._fetcher = fetcher
        return self._fetcher


__all__ = ["KafkaStateReader"]
