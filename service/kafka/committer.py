"""The last step: outcomes, dead letters, retries, state and offsets in one Kafka transaction.

One transactional producer per input partition, with the transactional id
``<prefix>-<group>-<partition>``. aiokafka 0.14 commits offsets in a transaction with the
group id only (TxnOffsetCommit v0: no generation, so KIP-447 fencing by group metadata is
not available), so zombies are fenced the older way: whoever is assigned partition p
initialises p's transactional id, which aborts the previous owner's open transaction
and makes its next one fail. Nothing is committed for a partition no longer owned.

A transaction carries, for one partition: every finished record's outcome (or dead
letter, or retry record, or routed copy), its state record (``done`` states name the
outcome's position, so the outcomes are acknowledged first), and the offsets of the returns,
routed and retry partitions past the contiguous finished prefix. The state records' offsets
come back to the caller: memory keeps them instead of the ledger entries they hold.

Transactions of one partition run one at a time, so what is asked while one runs waits
for the next, and the next carries everything asked meanwhile (a group commit): with
hundreds of events in flight, their start markers cost a few transactions, not one each.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

from service.clock import Clock
from service.errors import BrokerError
from service.ids import Ids
from service.kafka.connection import connection_options
from service.kafka.headers import (
    Envelope,
    dead_letter_headers,
    outcome_bytes,
    outcome_headers,
)
from service.logging import get_logger
from service.observe.metrics import Metrics
from service.outcome import OutcomeEvent, OutcomeStatus
from service.pipeline.records import (
    AlreadyFinished,
    Committed,
    DeadLetter,
    Finished,
    RetryLater,
    Routed,
    origin_headers,
)
from service.pipeline.retries import retry_headers
from service.pipeline.state import PROGRESS_KEY, EventState, OutcomeRef, Progress
from service.settings import KafkaSettings

log = get_logger(__name__)


class KafkaCommitter:
    """Transactional producers, one per owned input partition."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        clock: Clock,
        ids: Ids,
        envelope: Envelope,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._connection = connection_options(settings)
        self._clock = clock
        self._ids = ids
        """Makes each dead letter's ``ce_id``."""
        self._envelope = envelope
        self._metrics = metrics or Metrics()
        self._producers: dict[int, AIOKafkaProducer] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._next: dict[int, _Wave] = {}
        self._flushers: dict[int, asyncio.Task[None]] = {}

    def transactional_id(self, partition: int) -> str:
        """The transactional id of an input partition."""
        s = self._settings
        return f"{s.transactional_id_prefix}-{s.group_id}-{partition}"

    async def open_partition(self, partition: int) -> None:
        """Start p's producer: initialising its transactional id fences any previous owner."""
        if partition in self._producers:
            return
        producer = AIOKafkaProducer(
            **self._connection.kwargs(),
            client_id=f"{self._settings.client_id}-txn-{partition}",
            transactional_id=self.transactional_id(partition),
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise BrokerError(
                "cannot start the transactional producer",
                partition=partition,
                error=repr(exc),
            ) from exc
        self._producers[partition] = producer
        self._locks.setdefault(partition, asyncio.Lock())

    async def close_partition(self, partition: int) -> None:
        """Stop p's producer; an open transaction is aborted by the broker or the next owner."""
        producer = self._producers.pop(partition, None)
        if producer is not None:
            async with self._locks[partition]:  # never under a running transaction
                try:
                    await producer.stop()
                except KafkaError as exc:  # closing after a broker loss must not stop us
                    log.warning("producer_close_failed", partition=partition, error=repr(exc))

    async def reset_partition(self, partition: int) -> None:
        """Close and reopen p's producer after a failed transaction."""
        await self.close_partition(partition)
        await self.open_partition(partition)

    async def stop(self) -> None:
        """Close every producer; what still waits for a transaction is told it failed."""
        for flusher in self._flushers.values():
            flusher.cancel()
        await asyncio.gather(*self._flushers.values(), return_exceptions=True)
        for wave in self._next.values():
            wave.fail(BrokerError("the service stopped before this transaction"))
        self._next.clear()
        for partition in list(self._producers):
            await self.close_partition(partition)

    async def record_start(self, partition: int, state: EventState) -> None:
        """Commit a ``started`` state before the event's calls (with whatever else waits)."""
        await self._submit(partition, [], {}, [state])

    async def commit(
        self,
        partition: int,
        finished: Sequence[Finished],
        offsets: Mapping[str, int],
        progress: Progress | None = None,
    ) -> list[Committed]:
        """Outputs, states, offsets and ``progress`` of p in one transaction.

        ``progress``: per input topic, the offsets of p finished beyond ``offsets`` (their
        outputs are in this transaction or an earlier one). Returns the states as committed.
        """
        return await self._submit(partition, finished, offsets, [], progress)

    async def _submit(
        self,
        partition: int,
        finished: Sequence[Finished],
        offsets: Mapping[str, int],
        states: Sequence[EventState],
        progress: Progress | None = None,
    ) -> list[Committed]:
        if partition not in self._producers:
            raise BrokerError(
                "partition is not ours any more; nothing committed", partition=partition
            )
        wave = self._next.get(partition)
        if wave is None:
            wave = self._next[partition] = _Wave()
        wave.add(finished, offsets, states, progress)
        flusher = self._flushers.get(partition)
        if flusher is None or flusher.done():
            self._flushers[partition] = asyncio.create_task(self._flush(partition))
        # Shielded: one waiter giving up must not abort what the others wait for.
        return await asyncio.shield(wave.committed)

    async def _flush(self, partition: int) -> None:
        linger = self._settings.transaction_linger_ms / 1000
        while True:
            if linger > 0:
                # Each transaction costs the broker the same however much it carries: let
                # what arrives within the linger go with it.
                await asyncio.sleep(linger)
            wave = self._next.pop(partition, None)
            if wave is None:
                return
            try:
                states = await self._transaction(partition, wave)
            except BaseException as exc:
                wave.fail(exc)
                if not isinstance(exc, Exception):
                    raise
            else:
                wave.committed.set_result(states)

    async def _transaction(self, partition: int, wave: _Wave) -> list[Committed]:
        finished, offsets, states, progress = (
            wave.finished,
            wave.offsets,
            wave.states,
            wave.progress,
        )
        producer = self._producers.get(partition)
        if producer is None:
            raise BrokerError(
                "partition is not ours any more; nothing committed", partition=partition
            )
        async with self._locks[partition]:
            try:
                await producer.begin_transaction()
                try:
                    written = await self._send_all(producer, partition, finished)
                    written += list(states)
                    sent = [
                        (
                            state,
                            await producer.send(
                                self._settings.state_topic,
                                key=state.event_id.encode(),
                                value=state.to_bytes(),
                                partition=partition,
                            ),
                        )
                        for state in written
                    ]
                    committed = [Committed(state, (await fut).offset) for state, fut in sent]
                    if progress is not None:
                        await producer.send(
                            self._settings.state_topic,
                            key=PROGRESS_KEY,
                            value=progress.to_bytes(),
                            partition=partition,
                        )
                    if offsets:
                        await producer.send_offsets_to_transaction(
                            {TopicPartition(t, partition): o for t, o in offsets.items()},
                            self._settings.group_id,
                        )
                    await producer.commit_transaction()
                except BaseException:
                    self._metrics.transactions.labels("aborted").inc()
                    await _abort(producer, partition)
                    raise
            except ProducerFenced as exc:
                # Another instance took p's transactional id: p is not ours any more.
                raise BrokerError(
                    "fenced by a newer owner of the partition; nothing of it is visible",
                    partition=partition,
                    fenced=True,
                ) from exc
            except KafkaError as exc:
                raise BrokerError(
                    "a transaction failed; nothing of it is visible",
                    partition=partition,
                    error=repr(exc),
                ) from exc
        self._count(finished)
        return committed

    def _count(self, finished: Sequence[Finished]) -> None:
        """What a committed transaction made visible."""
        metrics = self._metrics
        metrics.transactions.labels("committed").inc()
        # Counted per transaction, not per record: a label lookup takes a lock each time.
        statuses = Counter(
            item.result.status for item in finished if isinstance(item.result, OutcomeEvent)
        )
        for status, count in statuses.items():
            metrics.outcomes.labels(status.value).inc(count)
        if statuses[OutcomeStatus.DUPLICATE]:
            metrics.duplicates.inc(statuses[OutcomeStatus.DUPLICATE])
        routed = 0
        for item in finished:
            if isinstance(item.result, DeadLetter):
                metrics.dead_letters.labels(item.result.error_type).inc()
            elif isinstance(item.result, Routed):
                routed += 1
        if routed:
            metrics.routed.inc(routed)

    async def _send_all(
        self, producer: AIOKafkaProducer, partition: int, finished: Sequence[Finished]
    ) -> list[EventState]:
        settings = self._settings
        pending = []
        # The envelope every outcome of this transaction shares, read once.
        envelope: Envelope | None = None
        for item in finished:
            result = item.result
            if isinstance(result, AlreadyFinished):
                continue  # committed before: only its offset moves on
            if isinstance(result, OutcomeEvent):
                if result.outcome_id is None:
                    # Outcomes written before 0.2.0 have no id; one published again gets
                    # one, the same in its body and its ce_id.
                    result = result.model_copy(update={"outcome_id": self._ids()})
                key = (
                    item.record.key
                    if item.record.key is not None
                    else result.event.event_id.encode()
                )
                if envelope is None:
                    envelope = self._envelope.settled()
                fut = await producer.send(
                    settings.outcomes_topic,
                    value=outcome_bytes(result),
                    key=key,
                    headers=outcome_headers(result, item, envelope),
                )
            elif isinstance(result, DeadLetter):
                fut = await producer.send(
                    settings.dead_letter_topic,
                    value=result.record.value,
                    key=result.record.key,
                    headers=dead_letter_headers(
                        result,
                        self._clock.now(),
                        event_id=self._ids(),
                        source=self._envelope.source(),
                    ),
                )
            elif isinstance(result, Routed):
                fut = await producer.send(
                    settings.routed_topic,
                    value=result.record.value,
                    key=result.key,
                    headers=origin_headers(result.record),
                    partition=result.partition,
                    timestamp_ms=result.record.timestamp_ms,
                )
            else:
                fut = await producer.send(
                    settings.retry_topic,
                    value=result.record.value,
                    key=result.record.key,
                    headers=_retry_headers(result),
                    partition=partition,
                )
            pending.append((item, fut))
        states: list[EventState] = []
        for item, fut in pending:
            metadata = await fut
            state = item.state
            if state is None:
                continue
            if state.phase == "done" and isinstance(item.result, OutcomeEvent):
                state = state.model_copy(
                    update={
                        "outcome": OutcomeRef(
                            partition=metadata.partition,
                            offset=metadata.offset,
                            status=item.result.status,
                        )
                    }
                )
            states.append(state)
        return states


class _Wave:
    """What one transaction of a partition will carry, and who waits for it."""

    def __init__(self) -> None:
        self.finished: list[Finished] = []
        self.offsets: dict[str, int] = {}
        self.states: list[EventState] = []
        self.progress: Progress | None = None
        self.committed: asyncio.Future[list[Committed]] = asyncio.get_running_loop().create_future()

    def add(
        self,
        finished: Sequence[Finished],
        offsets: Mapping[str, int],
        states: Sequence[EventState],
        progress: Progress | None,
    ) -> None:
        self.finished.extend(finished)
        self.states.extend(states)
        if progress is not None:  # the newest snapshot holds every older one's offsets
            self.progress = progress
        for topic, offset in offsets.items():
            self.offsets[topic] = max(offset, self.offsets.get(topic, offset))

    def fail(self, exc: BaseException) -> None:
        if isinstance(exc, asyncio.CancelledError):
            self.committed.cancel()
            return
        self.committed.set_exception(exc)
        # Marked as seen, so a wave whose waiters all gave up does not warn at exit.
        self.committed.exception()


def _retry_headers(retry: RetryLater) -> list[tuple[str, bytes]]:
    return retry_headers(
        retry.record, attempt=retry.attempt, not_before_ms=retry.not_before_ms, reason=retry.reason
    )


async def _abort(producer: AIOKafkaProducer, partition: int) -> None:
    try:
        await producer.abort_transaction()
    except Exception as exc:  # the transaction may already be dead (fenced, broker gone)
        log.warning("transaction_abort_failed", partition=partition, error=repr(exc))


__all__ = ["KafkaCommitter"]
