"""Kafka in: one consumer group on the returns, routed and retry topics, calm rebalances.

aiokafka's defaults are wrong for us: auto-commit would commit outside the
transaction that publishes the outcome, and ``read_uncommitted`` would read
aborted writes, so both are set explicitly; offsets are committed by the commit
step, inside its transaction. The run loop keeps polling while events are in
flight (pausing the partitions at the in-flight bound), so a slow Capillary never
makes the group think this member died (``max.poll.interval.ms``); a rebalance
waits until the revoked partitions' events have finished and been committed, so
a partition never changes owner with work half done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from service.errors import BrokerError, ConfigurationError
from service.kafka.connection import check_connection, connection_options
from service.logging import get_logger
from service.pipeline.records import PartitionHook, Record, origin_in
from service.settings import KafkaSettings

log = get_logger(__name__)


class _SettleOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets the pipeline settle revoked partitions and set up new ones."""

    def __init__(self, source: KafkaSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        source = self._source
        source.in_group = False
        async with source.in_flight:
            log.info("partitions_revoked", partitions=sorted(str(tp) for tp in revoked))
            if source.on_revoked is not None and revoked:
                await source.on_revoked(sorted({tp.partition for tp in revoked}))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        source = self._source
        log.info("partitions_assigned", partitions=sorted(str(tp) for tp in assigned))
        # Nothing is fetched for a partition until its state and producer are set up.
        source.pause(assigned)
        source.share(assigned)
        if source.on_assigned is not None and assigned:
            await source.on_assigned(sorted({tp.partition for tp in assigned}))
        if source.paused_all:
            source.pause_all()
        else:
            source.resume(assigned)
        source.in_group = True


class KafkaSource:
    """Records from the returns, routed and retry topics; the commit step commits offsets.

    Static membership (``group_instance_id``) lets a restarted instance take its partitions
    back at once. The range assignor keeps partition p of the returns, routed and retry
    topics (partitioned alike) with one consumer, beside state partition p and its
    transaction. A routed or retry record names the producer's record it copies
    (``Record.origin``).
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self.in_flight = asyncio.Lock()
        """Held while the pipeline rewinds after a failure; a rebalance waits for it."""
        self.paused_all = False
        """Set while the pipeline takes nothing (in-flight bound, Capillary outage)."""
        self.on_assigned: PartitionHook | None = None
        self.on_revoked: PartitionHook | None = None
        self.on_share: Callable[[int, int], None] | None = None
        """Called after every assignment with the returns topic's partitions this member
        owns and all of them: the share of the brand's Capillary limits it paces at."""
        self._held: set[TopicPartition] = set()
        self.in_group = False
        """Set once partitions (possibly none) are assigned; unset while they are revoked."""
        self._next: dict[TopicPartition, int] = {}
        self._connection = connection_options(settings)
        self.cluster_id: str | None = None
        """The Kafka cluster's id, once start() connected (``None`` if the brokers send none)."""
        # Made in start(): a consumer that exists is one that start() or stop() closes.
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def topics(self) -> tuple[str, str, str]:
        """The input topics: returns, routed, retry."""
        s = self._settings
        return (s.returns_topic, s.routed_topic, s.retry_topic)

    @property
    def partition_count(self) -> int:
        """Partitions of the returns topic as the consumer's metadata knows them (0: none)."""
        if self._consumer is None:
            return 0
        return len(self._consumer.partitions_for_topic(self._settings.returns_topic) or ())

    def share(self, assigned: Sequence[TopicPartition]) -> None:
        """Tell ``on_share`` what this member owns of the returns topic now.

        Called with the whole new assignment (aiokafka's rebalances are eager), not during
        a revoke: events of revoked partitions still finish at the old share.
        """
        total = self.partition_count
        if self.on_share is None or total == 0:
            return
        returns = self._settings.returns_topic
        self.on_share(sum(1 for tp in assigned if tp.topic == returns), total)

    async def start(self) -> None:
        """Join the consumer group on the returns and retry topics.

        A broker that does not let us in (unreachable, wrong password or CA, another
        protocol) raises what to fix; whatever start() opened is closed again when it fails.
        """
        settings = self._settings
        self.cluster_id = await check_connection(settings, self._connection)
        self._consumer = AIOKafkaConsumer(
            **self._connection.kwargs(),
            client_id=f"{settings.client_id}-consumer",
            group_id=settings.group_id,
            group_instance_id=settings.group_instance_id,
            partition_assignment_strategy=(RangePartitionAssignor,),
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset=settings.auto_offset_reset,
            max_poll_records=settings.max_poll_records,
            max_poll_interval_ms=settings.max_poll_interval_ms,
            session_timeout_ms=settings.session_timeout_ms,
            # A returns topic created after start is noticed within this time.
            metadata_max_age_ms=30_000,
        )
        try:
            await self._join(self._consumer)
        except BaseException:
            await self._consumer.stop()
            raise

    async def _join(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await consumer.start()
        except KafkaError as exc:
            raise BrokerError(
                "cannot reach Kafka", bootstrap_servers=self._settings.bootstrap_servers
            ) from exc
        # Checked before joining the group, so a refusal leaves no partition half set up.
        # consumer.topics() fetches every topic's metadata but returns the names alone, and
        # the consumer's own metadata never holds the state topic (not subscribed): the
        # partition counts are in the answer of its client only (a private attribute, and
        # no public call gives them; aiokafka is pinned below 0.15).
        cluster = await consumer._client.fetch_all_metadata()
        existing: set[str] = cluster.topics()
        self._check_co_partitioned(cluster, existing)
        settings = self._settings
        if settings.returns_topic in existing and settings.routed_topic not in existing:
            # A record a producer put on another partition than its key's has nowhere to go:
            # its partition's transactions would fail one after the other.
            raise ConfigurationError(
                "the routed topic does not exist: create it with as many partitions as the "
                "returns topic (return-handler topics does), or name it",
                topic=settings.routed_topic,
                setting="RETURN_HANDLER_KAFKA__ROUTED_TOPIC",
            )
        consumer.subscribe(list(self.topics), listener=_SettleOnRevoke(self))
        for topic in self.topics:
            if topic not in existing:
                log.warning(
                    "input_topic_missing",
                    topic=topic,
                    next_step="create it (return-handler topics) or check "
                    "RETURN_HANDLER_KAFKA__RETURNS_TOPIC / __ROUTED_TOPIC / __RETRY_TOPIC; the "
                    "service starts consuming within 30 s of its creation",
                )

    def _check_co_partitioned(self, cluster: ClusterMetadata, existing: set[str]) -> None:
        names = (*self.topics, self._settings.state_topic)
        counts = {
            name: len(cluster.partitions_for_topic(name) or ())
            for name in names
            if name in existing
        }
        if len(set(counts.values())) > 1:
            raise ConfigurationError(
                "the returns, routed, retry and state topics must have the same number of "
                "partitions (partition p of each belongs together)",
                partitions=counts,
                setting="RETURN_HANDLER_KAFKA__ROUTED_TOPIC / __RETRY_TOPIC / __STATE_TOPIC",
            )

    async def stop(self) -> None:
        """Leave the group; uncommitted records will be read again by the next owner."""
        self.in_group = False
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("KafkaSource.start() has not run")
        return self._consumer

    @property
    def joined(self) -> bool:
        """Whether the consumer is in its group with an assignment (possibly empty)."""
        return self.in_group

    def reading(self) -> dict[tuple[str, int], tuple[int, int]]:
        """Per owned partition whose end is known: (end offset, next offset to read)."""
        found: dict[tuple[str, int], tuple[int, int]] = {}
        if self._consumer is None:
            return found
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is None:
                continue  # nothing fetched yet: the end is unknown
            found[(tp.topic, tp.partition)] = (end, self._next.get(tp, end))
        return found

    async def poll(self, timeout_ms: int | None = None) -> Sequence[Record]:
        """Fetch what arrived, each partition's records in offset order."""
        wait = self._settings.fetch_timeout_ms if timeout_ms is None else timeout_ms
        batches = await self._started.getmany(timeout_ms=wait)
        for tp, messages in batches.items():
            if messages:
                self._next[tp] = messages[-1].offset + 1
        returns = self._settings.returns_topic
        records = []
        for messages in batches.values():
            for message in messages:
                headers = tuple(message.headers or ())
                records.append(
                    Record(
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        key=message.key,
                        value=message.value,
                        headers=headers,
                        timestamp_ms=message.timestamp,
                        # Only the service's own copies say where the producer's record is.
                        origin=origin_in(headers, returns) if message.topic != returns else None,
                    )
                )
        return records

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Fetch nothing of these partitions."""
        self._started.pause(*partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Fetch these partitions again, unless held."""
        self._started.resume(*[tp for tp in partitions if tp not in self._held])

    def pause_all(self) -> None:
        """Fetch nothing until :meth:`resume_all` (the group membership stays)."""
        self.paused_all = True
        self._started.pause(*self._started.assignment())

    def resume_all(self) -> None:
        """Fetch again from every assigned partition that is not held."""
        self.paused_all = False
        self._started.resume(*[tp for tp in self._started.assignment() if tp not in self._held])

    def hold(self, topic: str, partition: int, offset: int) -> None:
        """Read ``offset`` again later and fetch nothing more of this partition until released."""
        tp = TopicPartition(topic, partition)
        if self._rewind(tp, offset):
            self._started.pause(tp)
            self._held.add(tp)

    def release(self, topic: str, partition: int) -> None:
        """Fetch again from a held partition."""
        tp = TopicPartition(topic, partition)
        self._held.discard(tp)
        if tp in self._started.assignment() and not self.paused_all:
            self._started.resume(tp)

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read this partition again from ``offset`` (if it is still ours)."""
        self._rewind(TopicPartition(topic, partition), offset)

    def _rewind(self, tp: TopicPartition, offset: int) -> bool:
        """Read ``tp`` again from ``offset``; ``False`` when it is no longer ours."""
        if tp not in self._started.assignment():
            return False
        self._started.seek(tp, offset)
        self._next[tp] = offset
        return True
