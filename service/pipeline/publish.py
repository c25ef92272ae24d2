"""Outcomes and dead letters out to Kafka; every call returns after the broker acknowledged.

The producer is idempotent with ``acks=all``: aiokafka's defaults (``acks=1``,
no idempotence) could lose or duplicate an outcome. Kafka errors are
translated to :class:`service.errors.BrokerError` here and nowhere else.
"""

from __future__ import annotations

from datetime import datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from service.clock import Clock
from service.errors import BrokerError
from service.outcome import OutcomeEvent
from service.pipeline.records import DeadLetter

DEAD_LETTER_HEADERS = (
    "rh-reason",
    "rh-error-type",
    "rh-details",
    "rh-origin-topic",
    "rh-origin-partition",
    "rh-origin-offset",
    "rh-dead-lettered-at",
)


def outcome_bytes(outcome: OutcomeEvent) -> bytes:
    """The wire form of an outcome: compact JSON, UTF-8."""
    return outcome.model_dump_json(exclude_none=False).encode()


def dead_letter_headers(dead: DeadLetter, at: datetime) -> list[tuple[str, bytes]]:
    """The original headers plus the reason and the origin of the record."""
    record = dead.record
    ours = [
        ("rh-reason", dead.reason.encode()),
        ("rh-error-type", dead.error_type.encode()),
        ("rh-details", "\n".join(dead.details).encode()),
        ("rh-origin-topic", record.topic.encode()),
        ("rh-origin-partition", str(record.partition).encode()),
        ("rh-origin-offset", str(record.offset).encode()),
        ("rh-dead-lettered-at", at.isoformat().encode()),
    ]
    kept = [(k, v) for k, v in record.headers if k not in DEAD_LETTER_HEADERS]
    return kept + ours


class KafkaSink:
    """Publishes outcomes and dead letters to their topics."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        client_id: str,
        outcomes_topic: str,
        dead_letter_topic: str,
        clock: Clock,
    ) -> None:
        self._outcomes_topic = outcomes_topic
        self._dead_letter_topic = dead_letter_topic
        self._clock = clock
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=f"{client_id}-producer",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )

    async def start(self) -> None:
        """Connect to the brokers."""
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise BrokerError("cannot start the Kafka producer", error=repr(exc)) from exc

    async def stop(self) -> None:
        """Flush what is pending and disconnect."""
        await self._producer.stop()

    async def publish_outcome(self, outcome: OutcomeEvent, key: bytes | None) -> None:
        """Publish one outcome; returns once acknowledged.

        Keyed like its input (the customer), so one customer's outcomes stay in order
        for consumers; the event id when the input had no key.
        """
        await self._send(
            self._outcomes_topic,
            key=key if key is not None else outcome.event.event_id.encode(),
            value=outcome_bytes(outcome),
            headers=[("content-type", b"application/json"), ("schema-version", b"1")],
        )

    async def publish_dead_letter(self, dead: DeadLetter) -> None:
        """Publish the original key and bytes with the reason and origin in headers."""
        await self._send(
            self._dead_letter_topic,
            key=dead.record.key,
            value=dead.record.value,
            headers=dead_letter_headers(dead, self._clock.now()),
        )

    async def _send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        try:
            await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
        except KafkaError as exc:
            raise BrokerError(
                "Kafka did not acknowledge a publish", topic=topic, error=repr(exc)
            ) from exc
