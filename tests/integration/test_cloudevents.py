"""Outcomes and dead letters of a running service, read with the cloudevents SDK in both of
its Kafka bindings: unique UUID ids, the deployment as source, the order as subject, and a
dataschema that answers with the schema."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from jsonschema import Draft202012Validator

from capillary_sandbox import Sandbox
from service.kafka.headers import deployment_source
from service.kafka.reader import read_topic
from service.schemas import OUTCOME_EVENT_FILE
from service.settings import KafkaSettings, ObservabilitySettings, Settings
from service.wiring import Service, build_service
from tests.cloudevents_sdk import Reader, read_core, read_v1
from tests.factories import event_bytes
from tests.integration.sandbox_config import sandbox_capillary

ROOT = Path(__file__).resolve().parents[2]
ORDERS = {"evt-ce-1": "ORD-CE-1", "evt-ce-2": "ORD-CE-2", "evt-ce-3": "ORD-CE-3"}
NOT_EVENTS = [b"not json at all", b'{"event_id": "evt-ce-bad"}', b"\xff\xfe"]
OUTCOMES = len(ORDERS) + 1  # and a duplicate of the first


@dataclass
class Outputs:
    service: Service
    port: int
    outcomes: list[ConsumerRecord[bytes, bytes]]
    dead_letters: list[ConsumerRecord[bytes, bytes]]


@pytest.fixture
async def outputs(kafka: KafkaSettings, sandbox: Sandbox) -> AsyncIterator[Outputs]:
    """The service's outputs for three returns, a redelivery and three messages that are not
    events; the service still runs (its HTTP port answers)."""
    settings = Settings(
        kafka=kafka,
        capillary=sandbox_capillary(sandbox),
        observability=ObservabilitySettings(host="127.0.0.1", port=0),
    )
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        await producer.start()
        try:
            for event_id, order_id in ORDERS.items():
                value = event_bytes(event_id=event_id, order={**_order(), "order_id": order_id})
                await producer.send(kafka.returns_topic, value=value, key=b"555567088")
            first = event_bytes(event_id="evt-ce-1", order={**_order(), "order_id": "ORD-CE-1"})
            await producer.send(kafka.returns_topic, value=first, key=b"555567088")
            for value in NOT_EVENTS:
                await producer.send(kafka.returns_topic, value=value, key=b"555567088")
            await producer.flush()
        finally:
            await producer.stop()
        outcomes = await read_topic(kafka, kafka.outcomes_topic, count=OUTCOMES, wait_seconds=60)
        dead = await read_topic(
            kafka, kafka.dead_letter_topic, count=len(NOT_EVENTS), wait_seconds=60
        )
        assert (len(outcomes), len(dead)) == (OUTCOMES, len(NOT_EVENTS))
        assert service.http.port is not None
        yield Outputs(service, service.http.port, outcomes, dead)
    finally:
        stop.set()
        await task
        await service.aclose()


def _order() -> dict[str, str]:
    order: dict[str, str] = json.loads(event_bytes())["order"]
    return order


async def _cluster_id(admin: AIOKafkaAdminClient) -> str:
    cluster_id = (await admin.describe_cluster())["cluster_id"]
    assert isinstance(cluster_id, str)
    assert cluster_id
    return cluster_id


def _read(read: Reader, record: ConsumerRecord[bytes, bytes]) -> dict[str, object]:
    event = read(list(record.headers), record.key, record.value or b"")
    attributes: dict[str, object] = event.get_attributes()
    return {**attributes, "data": event.get_data()}


@pytest.mark.parametrize("read", [read_core, read_v1], ids=["core", "v1"])
async def test_outcomes_and_dead_letters_are_cloudevents_unique_across_deployments(
    outputs: Outputs, kafka: KafkaSettings, kafka_admin: AIOKafkaAdminClient, read: Reader
) -> None:
    source = deployment_source(await _cluster_id(kafka_admin), kafka.group_id)
    outcomes = [_read(read, r) for r in outputs.outcomes]
    dead = [_read(read, r) for r in outputs.dead_letters]

    ids = [str(e["id"]) for e in outcomes + dead]
    assert len(set(ids)) == len(ids), "an id repeats"
    assert all(UUID(i).version == 4 for i in ids)
    assert {e["source"] for e in outcomes + dead} == {source}
    assert source.startswith("/return-handler/")
    assert source.endswith(f"/{kafka.group_id}")

    for event in outcomes:
        data = event["data"]
        assert isinstance(data, dict)
        assert event["type"] == "return-handler.outcome.v1"
        assert event["id"] == data["outcome_id"]
        assert event["subject"] == data["event"]["order_id"]
        assert event["datacontenttype"] == "application/json"
    assert sorted(str(e["subject"]) for e in outcomes) == sorted([*ORDERS.values(), "ORD-CE-1"])

    assert {e["type"] for e in dead} == {"return-handler.dead-letter.v1"}
    assert [e["datacontenttype"] for e in dead] == [
        "application/octet-stream",
        "application/json",
        "application/octet-stream",
    ]
    # Without tracing or an input trace context, no outcome claims one.
    assert all("traceparent" not in dict(r.headers) for r in outputs.outcomes)


async def test_the_outcomes_dataschema_answers_with_the_published_schema(
    outputs: Outputs,
) -> None:
    [dataschema] = {_read(read_core, r)["dataschema"] for r in outputs.outcomes}
    url = urlsplit(str(dataschema))
    assert url.scheme == "http"
    assert url.netloc == f"{socket.gethostname()}:{outputs.port}"
    assert url.path == f"/schemas/{OUTCOME_EVENT_FILE}"
    # The host name is the machine's; its address may not be the one we listen on in tests.
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{outputs.port}{url.path}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/schema+json")
    schema = response.json()
    assert schema == json.loads((ROOT / "schemas" / OUTCOME_EVENT_FILE).read_text())
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    for record in outputs.outcomes:
        validator.validate(json.loads(record.value or b""))
