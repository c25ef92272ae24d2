"""The health port, the metrics and the outputs' envelope, on the real broker and the sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from capillary_sandbox import Sandbox
from service.kafka.reader import read_topic
from service.outcome import OutcomeEvent
from service.settings import KafkaSettings, ObservabilitySettings, Settings
from service.wiring import Service, build_service
from tests.factories import event_bytes
from tests.integration.sandbox_config import sandbox_capillary
from tests.integration.waiting import until

EVENTS = 40
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@dataclass
class Running:
    service: Service
    http: httpx.AsyncClient


def _settings(kafka: KafkaSettings, sandbox: Sandbox) -> Settings:
    capillary = sandbox_capillary(sandbox)
    return Settings(
        kafka=kafka,
        capillary=capillary,
        observability=ObservabilitySettings(host="127.0.0.1", port=0),
    )


@pytest.fixture
async def running(kafka: KafkaSettings, sandbox: Sandbox) -> AsyncIterator[Running]:
    service = build_service(_settings(kafka, sandbox))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        async with asyncio.timeout(30):
            await service.http.listening.wait()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http.port}") as http:
            yield Running(service, http)
    finally:
        stop.set()
        await task
        await service.aclose()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def test_health_readiness_and_metrics_while_events_flow(
    running: Running, kafka: KafkaSettings
) -> None:
    http = running.http

    async def ready() -> bool:
        return (await http.get("/readyz")).status_code == 200

    await until(ready, "the service joins its group")
    assert (await http.get("/healthz")).json() == {"ok": True, "reason": "making progress"}

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(EVENTS):
            await producer.send(
                kafka.returns_topic,
                value=event_bytes(event_id=f"evt-obs-{i}"),
                key=f"cust-{i % 7}".encode(),
                headers=[("traceparent", TRACEPARENT.encode())] if i == 0 else [],
            )
        await producer.send_and_wait(kafka.returns_topic, value=b"not json", key=b"x")
    finally:
        await producer.stop()

    scrapes: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []

    async def all_outcomes_counted() -> bool:
        response = await http.get("/metrics")
        assert response.status_code == 200
        scrapes.append(_samples(response.text))
        return _total(scrapes[-1], "return_handler_outcomes_total") >= EVENTS

    await until(all_outcomes_counted, "every outcome shows in /metrics")
    last = scrapes[-1]
    # Scraped while the events flowed: an earlier scrape saw fewer outcomes than the last.
    assert len(scrapes) >= 2
    assert _total(scrapes[0], "return_handler_outcomes_total") < EVENTS

    assert last[("return_handler_events_consumed_total", (("topic", kafka.returns_topic),))] >= (
        EVENTS + 1
    )
    assert last[("return_handler_outcomes_total", (("status", "completed"),))] == EVENTS
    assert last[("return_handler_dead_letters_total", (("reason", "json_invalid"),))] == 1
    assert _total(last, "return_handler_transactions_total") >= 1
    assert last[("return_handler_transactions_total", (("result", "aborted"),))] == 0
    ok_calls = {
        labels: value
        for (name, labels), value in last.items()
        if name == "return_handler_capillary_calls_total" and ("result", "ok") in labels
    }
    assert sum(ok_calls.values()) >= 1
    assert _total(last, "return_handler_capillary_call_duration_seconds_count") == sum(
        v for (n, _), v in last.items() if n == "return_handler_capillary_calls_total"
    )
    assert _total(last, "return_handler_coalesced_call_size_count") >= 1
    assert last[("return_handler_paused", (("reason", "capillary_outage"),))] == 0
    assert last[("return_handler_ready", ())] == 1
    lag_partitions = {
        dict(labels)["partition"]
        for (name, labels), _ in last.items()
        if name == "return_handler_consumer_lag"
    }
    assert lag_partitions  # the partitions this replica read from
    assert last[("process_resident_memory_bytes", ())] > 0

    records = await read_topic(kafka, kafka.outcomes_topic, count=EVENTS, wait_seconds=30)
    first = next(
        r
        for r in records
        if OutcomeEvent.model_validate_json(r.value).event.event_id == "evt-obs-0"
    )
    headers = dict(first.headers)
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"return-handler.outcome.v1"
    assert headers["ce_source"].decode().endswith(f"/{kafka.group_id}")
    assert headers["ce_id"].decode() == str(
        OutcomeEvent.model_validate_json(first.value).outcome_id
    )
    # Without an exporter the outcome passes the input's trace context on as it came.
    assert headers["traceparent"].decode() == TRACEPARENT
    [dead] = await read_topic(kafka, kafka.dead_letter_topic, count=1, wait_seconds=30)
    assert dict(dead.headers)["ce_type"] == b"return-handler.dead-letter.v1"
