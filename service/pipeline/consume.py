"""Kafka in: one consumer group on the returns topic, manual commits, calm rebalances.

aiokafka's defaults are wrong for us: auto-commit would commit before the
outcome is published and ``read_uncommitted`` would read aborted writes, so
both are set explicitly. While a batch is processed (``processing``) the
partitions are paused and the consumer keeps polling, so a slow Capillary
never makes the group think this member died (``max.poll.interval.ms``); a
rebalance waits until the batch in hand is committed, so a partition never
changes owner with work half done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from service.errors import BrokerError
from service.logging import get_logger
from service.pipeline.records import Record
from service.settings import KafkaSettings

log = get_logger(__name__)


class _SettleOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Holds a rebalance until the batch in hand is committed."""

    def __init__(self, in_flight: asyncio.Lock) -> None:
        self._in_flight = in_flight

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._in_flight:
            log.info("partitions_revoked", partitions=sorted(str(tp) for tp in revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))


class KafkaSource:
    """Records from the returns topic, committed only when the caller says so."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self.in_flight = asyncio.Lock()
        """Held while a batch is processed; a rebalance waits for it."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-consumer",
            group_id=settings.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_poll_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            # A returns topic created after start is noticed within this time.
            metadata_max_age_ms=30_000,
        )

    async def start(self) -> None:
        """Join the consumer group on the returns topic."""
        try:
            await self._consumer.start()
        except KafkaError as exc:
            await self._consumer.stop()
            raise BrokerError(
                "cannot reach Kafka", bootstrap_servers=self._settings.bootstrap_servers
            ) from exc
        self._consumer.subscribe(
            [self._settings.returns_topic], listener=_SettleOnRevoke(self.in_flight)
        )
        if self._settings.returns_topic not in await self._consumer.topics():
            log.warning(
                "returns_topic_missing",
                topic=self._settings.returns_topic,
                next_step="create it (or check RETURN_HANDLER_KAFKA__RETURNS_TOPIC); "
                "the service starts consuming within 30 s of its creation",
            )

    async def stop(self) -> None:
        """Leave the group; uncommitted records will be read again by the next owner."""
        await self._consumer.stop()

    @contextlib.asynccontextmanager
    async def processing(self) -> AsyncIterator[None]:
        """Hold rebalances, pause fetching and keep the membership alive while a batch runs."""
        async with self.in_flight:
            paused = list(self._consumer.assignment())
            self._consumer.pause(*paused)
            keepalive = asyncio.create_task(self._keep_polling())
            try:
                yield
            finally:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalive
                still_ours = self._consumer.assignment()
                self._consumer.resume(*[tp for tp in paused if tp in still_ours])

    async def _keep_polling(self) -> None:
        # Polling paused partitions returns nothing but tells the group we are alive.
        while True:
            stray = await self._consumer.getmany(timeout_ms=1000)
            for tp, messages in stray.items():
                # A partition that was not paused: give its records back for the next poll.
                if messages:
                    self._consumer.seek(tp, messages[0].offset)

    async def poll(self) -> Sequence[Record]:
        """Fetch what arrived, each partition's records in offset order."""
        batches = await self._consumer.getmany(timeout_ms=self._settings.fetch_timeout_ms)
        return [
            Record(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                headers=tuple(message.headers or ()),
                timestamp_ms=message.timestamp,
            )
            for messages in batches.values()
            for message in messages
        ]

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit the offset after the last of these records in each partition."""
        offsets = next_offsets(records)
        if not offsets:
            return
        try:
            await self._consumer.commit(
                {TopicPartition(topic, part): offset for (topic, part), offset in offsets.items()}
            )
        except KafkaError as exc:
            raise BrokerError("offset commit failed", offsets=str(offsets)) from exc


def next_offsets(records: Sequence[Record]) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the offset to commit, one past the highest record."""
    offsets: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        offsets[key] = max(offsets.get(key, 0), record.offset + 1)
    return offsets
