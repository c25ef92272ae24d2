"""The outcomes topic as another team's consumer sees it: librdkafka (confluent-kafka) at
read_committed, each outcome checked against the published schema file with format checking,
and its headers read as a CloudEvent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, Message
from jsonschema import Draft202012Validator

from capillary_sandbox import Sandbox
from service.schemas import OUTCOME_EVENT_FILE
from service.settings import KafkaSettings, ObservabilitySettings, Settings
from service.wiring import build_service
from tests.cloudevents_sdk import read_core, read_v1
from tests.factories import event_bytes
from tests.integration.sandbox_config import sandbox_capillary
from tests.integration.waiting import until

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "urn:example:returns:staging"
EVENTS = 6


def _consumer(kafka: KafkaSettings, group: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": group,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([kafka.outcomes_topic])
    return consumer


async def test_a_librdkafka_consumer_reads_valid_outcomes_with_cloudevents_headers(
    kafka: KafkaSettings, sandbox: Sandbox, unique_id: Callable[[str], str]
) -> None:
    settings = Settings(
        kafka=kafka,
        capillary=sandbox_capillary(sandbox),
        observability=ObservabilitySettings(host="127.0.0.1", port=0, cloudevents_source=SOURCE),
    )
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    consumer = _consumer(kafka, unique_id("consumer-view"))
    messages: list[Message] = []

    async def all_outcomes_read() -> bool:
        # librdkafka blocks while it polls: off the event loop, which runs the service.
        message = await asyncio.to_thread(consumer.poll, 0.5)
        if message is not None:
            assert message.error() is None, message.error()
            messages.append(message)
        return len(messages) >= EVENTS

    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for n in range(EVENTS):
                await producer.send(
                    kafka.returns_topic,
                    value=event_bytes(event_id=f"evt-view-{n}"),
                    key=f"cust-{n % 3}".encode(),
                )
            await producer.flush()
        finally:
            await producer.stop()
        await until(all_outcomes_read, f"{EVENTS} outcomes reach a read_committed consumer")
    finally:
        await asyncio.to_thread(consumer.close)
        stop.set()
        await task
        await service.aclose()

    # Today's schema, and each release's: a consumer built against an earlier release keeps
    # reading (docs/reference/schemas.md, "Compatibility").
    published = [ROOT / "schemas" / OUTCOME_EVENT_FILE]
    published += sorted((ROOT / "schemas" / "releases").glob(f"*/{OUTCOME_EVENT_FILE}"))
    validators = {
        str(path.relative_to(ROOT)): Draft202012Validator(
            json.loads(path.read_text(encoding="utf-8")),
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        for path in published
    }
    assert len(validators) >= 2
    seen: set[str] = set()
    events: set[str] = set()
    for message in messages:
        value = message.value()
        assert value is not None
        outcome: dict[str, Any] = json.loads(value)
        for name, validator in validators.items():
            errors = [
                f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(outcome)
            ]
            assert errors == [], f"outcome at offset {message.offset()} breaks {name}"
        # librdkafka's headers are (name, value) pairs whose value may be None (a null header).
        headers = [
            (str(h[0]), h[1] if isinstance(h[1], bytes) else b"") for h in message.headers() or []
        ]
        for read in (read_core, read_v1):
            attributes = read(headers, message.key(), value).get_attributes()
            assert attributes["specversion"] == "1.0"
            assert attributes["id"] == outcome["outcome_id"]
            assert attributes["source"] == SOURCE
            assert attributes["type"] == "return-handler.outcome.v1"
            assert attributes["subject"] == outcome["event"]["order_id"]
            assert str(attributes["dataschema"]).endswith(f"/schemas/{OUTCOME_EVENT_FILE}")
        seen.add(outcome["outcome_id"])
        events.add(outcome["event"]["event_id"])
        assert UUID(outcome["outcome_id"]).version == 4
    assert events == {f"evt-view-{n}" for n in range(EVENTS)}
    assert len(seen) == EVENTS
