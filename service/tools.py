"""Small operator tools over Kafka: publish event files, read outcomes as readable lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from service.errors import BrokerError, InvalidEventError
from service.events import ReturnEvent
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.pipeline.kafka_connection import (
    ConnectionOptions,
    check_connection,
    connection_options,
)
from service.pipeline.route import key_of_customer
from service.settings import KafkaSettings


async def _connect(kafka: KafkaSettings) -> ConnectionOptions:
    """The clients' connection options, once a first connection showed they work."""
    connection = connection_options(kafka)
    await check_connection(kafka, connection)
    return connection


def _key_for(event: ReturnEvent) -> bytes:
    # The customer is the ordering unit: the key the service itself gives a keyless record.
    return key_of_customer(event.customer, event.event_id)


def key_for(event: ReturnEvent) -> bytes:
    """The Kafka key of an event: its customer, as ``publish`` and the replay key events."""
    return _key_for(event)


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
    connection = await _connect(kafka)
    producer = AIOKafkaProducer(**connection.kwargs(), acks="all", enable_idempotence=True)
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise BrokerError("cannot reach Kafka", bootstrap_servers=kafka.bootstrap_servers) from exc
    lines = []
    try:
        for key, value, label in messages:
            meta = await producer.send_and_wait(topic, value=value, key=key)
            lines.append(f"published {label} to {topic}/{meta.partition}@{meta.offset}")
    finally:
        await producer.stop()
    return lines


def state_topic_configs(dedupe_window_days: float) -> dict[str, str]:
    """Compacted (latest state per event id) and forgetting after the dedupe window."""
    return {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int(dedupe_window_days * 86_400_000)),
    }


async def ensure_topics(
    kafka: KafkaSettings, partitions: int, *, dedupe_window_days: float = 35.0
) -> list[str]:
    """Create the service's six topics that do not exist yet.

    Returns the names created. For development and the demo; production topics are
    created by whoever owns the cluster, with their own partition counts and retention,
    keeping returns, routed, retry and state at one partition count. The state topic is
    compacted and forgets after the dedupe window (``dedupe_window_days``).
    """
    wanted = [
        kafka.returns_topic,
        kafka.routed_topic,
        kafka.retry_topic,
        kafka.state_topic,
        kafka.outcomes_topic,
        kafka.dead_letter_topic,
    ]
    connection = await _connect(kafka)
    admin = AIOKafkaAdminClient(**connection.kwargs())
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise BrokerError("cannot reach Kafka", bootstrap_servers=kafka.bootstrap_servers) from exc
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=partitions,
                        replication_factor=1,
                        topic_configs=state_topic_configs(dedupe_window_days)
                        if name == kafka.state_topic
                        else {},
                    )
                    for name in missing
                ]
            )
        return missing
    finally:
        await admin.close()


async def read_outcomes(
    kafka: KafkaSettings,
    on_outcome: Callable[[bytes], None],
    *,
    count: int = 0,
    wait_seconds: float = 30.0,
) -> int:
    """Read outcomes from the start (no group); stop at ``count`` or after ``wait_seconds``."""
    records = await read_topic(
        kafka,
        kafka.outcomes_topic,
        count=count,
        wait_seconds=wait_seconds,
        on_record=lambda record: on_outcome(record.value) if record.value is not None else None,
    )
    return len(records)


async def read_topic(
    kafka: KafkaSettings,
    topic: str,
    *,
    count: int = 0,
    wait_seconds: float = 30.0,
    on_record: Callable[[ConsumerRecord[bytes, bytes]], None] | None = None,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Committed records of ``topic`` from its start, without a consumer group.

    Stops once ``count`` records arrived (0: read until ``wait_seconds`` pass).
    """
    connection = await _connect(kafka)
    # Without a group the consumer takes every partition of the topic as it appears;
    # frequent metadata refreshes notice a topic created after we subscribed.
    consumer = AIOKafkaConsumer(
        topic,
        **connection.kwargs(),
        group_id=None,
        metadata_max_age_ms=1000,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise BrokerError("cannot reach Kafka", bootstrap_servers=kafka.bootstrap_servers) from exc
    records: list[ConsumerRecord[bytes, bytes]] = []
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


def format_dead_letter(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> str:
    """One readable line per dead letter: where it came from and why it was refused."""
    found = {name: data.decode(errors="replace") for name, data in headers}
    origin = "/".join(
        found.get(f"rh-origin-{part}", "?") for part in ("topic", "partition", "offset")
    )
    preview = (value or b"")[:60].decode(errors="replace")
    return f"DEAD {origin}: {found.get('rh-reason', '(no reason header)')} | {preview!r}"


_MARK = {
    ActionStatus.REVOKED: "revoked",
    ActionStatus.RESTORED: "restored",
    ActionStatus.ALREADY_REVOKED: "already revoked",
    ActionStatus.ALREADY_RESTORED: "already restored (not made again)",
    ActionStatus.REFUSED_REDEEMED: "redeemed: not revoked",
    ActionStatus.KEPT: "kept",
    ActionStatus.UNCONFIRMED: "UNCONFIRMED: check by hand",
    ActionStatus.NOT_FOUND: "not found",
    ActionStatus.REFUSED: "refused",
    ActionStatus.FAILED: "FAILED",
    ActionStatus.SKIPPED: "skipped",
}


_HEAD = {
    OutcomeStatus.COMPLETED: "OK ",
    OutcomeStatus.FAILED: "FAIL",
    OutcomeStatus.DUPLICATE: "DUP ",
    OutcomeStatus.NEEDS_CHECK: "CHECK",
    OutcomeStatus.RETURN_UNKNOWN: "ASK ",
}


def format_outcome(data: bytes) -> str:
    """One readable line per outcome, then one indented line per action."""
    try:
        outcome = OutcomeEvent.model_validate_json(data)
    except ValidationError:
        parsed: Any = json.loads(data)
        return f"? unreadable outcome: {str(parsed)[:200]}"
    head = (
        f"{_HEAD[outcome.status]} {outcome.event.event_id} "
        f"[{outcome.event.return_type}] {outcome.decision}: {outcome.summary} "
        f"({outcome.duration_ms:.0f} ms)"
    )
    lines = [head]
    if outcome.replay is not None:
        replay = outcome.replay
        lines.append(
            f"    replay {replay.replay_id} #{replay.sequence} of {replay.source}: {replay.reason}"
        )
    for action in outcome.actions:
        codes = sorted({str(i.code) for i in action.items if i.code is not None})
        code_text = f" code {','.join(codes)}" if codes else ""
        facts = list(
            dict.fromkeys(
                f"{k}={v}" for item in action.items for k, v in sorted(item.detail.items())
            )
        )
        fact_text = f" [{', '.join(facts)}]" if facts else ""
        lines.append(
            f"    - {action.action_id}: {_MARK[action.status]}{code_text}{fact_text} "
            f"({action.reason})"
        )
    if outcome.replay_warning:
        lines.append(f"    ! {outcome.replay_warning}")
    return "\n".join(lines)
