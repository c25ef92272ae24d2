"""Small operator tools over Kafka: publish event files, read outcomes as readable lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from service.errors import BrokerError, InvalidEventError
from service.events import ReturnEvent
from service.outcome import ActionStatus, OutcomeEvent
from service.settings import KafkaSettings


def _key_for(event: ReturnEvent) -> bytes:
    # The customer is the ordering unit: one customer's events stay on one partition.
    customer = event.customer
    ident = customer.id or customer.external_id or customer.mobile or customer.email
    return str(ident).encode()


async def publish_files(
    kafka: KafkaSettings, files: Sequence[Path], topic: str, *, raw: bool = False
) -> list[str]:
    """Publish each file as one message; validates first unless ``raw``. Returns one line each."""
    messages: list[tuple[bytes | None, bytes, str]] = []
    for path in files:
        data = path.read_bytes()
        if raw:
            messages.append((None, data, path.name))
            continue
        try:
            event = ReturnEvent.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidEventError(
                f"{path} is not a valid return event; use --raw to send it anyway",
                errors=exc.error_count(),
            ) from exc
        messages.append((_key_for(event), data, f"{path.name} ({event.event_id})"))
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True
    )
    try:
        await producer.start()
    except KafkaError as exc:
        raise BrokerError("cannot reach Kafka", bootstrap_servers=kafka.bootstrap_servers) from exc
    lines = []
    try:
        for key, value, label in messages:
            meta = await producer.send_and_wait(topic, value=value, key=key)
            lines.append(f"published {label} to {topic}/{meta.partition}@{meta.offset}")
    finally:
        await producer.stop()
    return lines


async def read_outcomes(
    kafka: KafkaSettings,
    on_outcome: Callable[[bytes], None],
    *,
    count: int = 0,
    wait_seconds: float = 30.0,
) -> int:
    """Read outcomes from the start (no group); stop at ``count`` or after ``wait_seconds``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise BrokerError("cannot reach Kafka", bootstrap_servers=kafka.bootstrap_servers) from exc
    seen = 0
    try:
        partitions = await _wait_for_partitions(consumer, kafka.outcomes_topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = time.monotonic() + wait_seconds
        while not (count and seen >= count) and time.monotonic() < end:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for message in messages:
                    if message.value is not None:
                        on_outcome(message.value)
                        seen += 1
    finally:
        await consumer.stop()
    return seen


async def _wait_for_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        # Topic metadata may not be loaded yet (or the topic is auto-created on first write).
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or {0}
    return [TopicPartition(topic, p) for p in sorted(partitions)]


_MARK = {
    ActionStatus.REVOKED: "revoked",
    ActionStatus.RESTORED: "restored",
    ActionStatus.ALREADY_REVOKED: "already revoked",
    ActionStatus.REFUSED_REDEEMED: "redeemed: not revoked",
    ActionStatus.NOT_FOUND: "not found",
    ActionStatus.REFUSED: "refused",
    ActionStatus.FAILED: "FAILED",
    ActionStatus.SKIPPED: "skipped",
}


def format_outcome(data: bytes) -> str:
    """One readable line per outcome, then one indented line per action."""
    try:
        outcome = OutcomeEvent.model_validate_json(data)
    except ValidationError:
        parsed: Any = json.loads(data)
        return f"? unreadable outcome: {str(parsed)[:200]}"
    head = (
        f"{'OK ' if outcome.status == 'completed' else 'FAIL'} {outcome.event.event_id} "
        f"[{outcome.event.return_type}] {outcome.decision}: {outcome.summary} "
        f"({outcome.duration_ms:.0f} ms)"
    )
    lines = [head]
    for action in outcome.actions:
        codes = sorted({str(i.code) for i in action.items if i.code is not None})
        code_text = f" code {','.join(codes)}" if codes else ""
        lines.append(
            f"    - {action.action_id}: {_MARK[action.status]}{code_text} ({action.reason})"
        )
    if outcome.replay_warning:
        lines.append(f"    ! {outcome.replay_warning}")
    return "\n".join(lines)
