"""The whole path through real Kafka, the rules and the sandbox API, and back out as outcomes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from structlog.testing import capture_logs

from capillary_sandbox import FaultConfig, FaultRule, Sandbox
from service.capillary.config import CapillaryTimeouts
from service.kafka.reader import read_topic
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.pipeline.run import RunStats
from service.settings import KafkaSettings, Settings
from service.wiring import build_service
from tests.factories import event_bytes
from tests.integration.sandbox_config import sandbox_capillary

ROOT = Path(__file__).resolve().parents[2]
READ_TIMEOUT_S = 60.0


def _settings(kafka: KafkaSettings, sandbox: Sandbox) -> Settings:
    capillary = sandbox_capillary(sandbox)
    return Settings(kafka=kafka, capillary=capillary)


async def _produce(bootstrap: str, topic: str, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value=value, key=b"555567088")
    finally:
        await producer.stop()


async def _read(bootstrap: str, topic: str, count: int) -> list[Any]:
    """Exactly ``count`` committed records from the start of ``topic`` (bounded wait)."""
    records = await read_topic(
        KafkaSettings(bootstrap_servers=bootstrap), topic, count=count, wait_seconds=READ_TIMEOUT_S
    )
    assert len(records) >= count, f"only {len(records)} of {count} records in {topic}"
    return records


async def _run_service_until(settings: Settings, done: Callable[[], Awaitable[None]]) -> RunStats:
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.runner.run(stop))
    try:
        await done()
    finally:
        stop.set()
        stats = await task
        await service.aclose()
    return stats


def _by_kind(outcome: OutcomeEvent) -> dict[str, ActionStatus]:
    return {action.kind: action.status for action in outcome.actions}


async def test_full_return_is_taken_back_once_and_a_redelivery_is_a_duplicate(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    settings = _settings(kafka, sandbox)
    full_return = event_bytes(event_id="evt-e2e-full")
    await _produce(kafka.bootstrap_servers, kafka.returns_topic, full_return, b"not json at all")

    async def two_results_then_replay() -> None:
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 1)
        await _read(kafka.bootstrap_servers, kafka.dead_letter_topic, 1)
        await _produce(kafka.bootstrap_servers, kafka.returns_topic, full_return)
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 2)

    await _run_service_until(settings, two_results_then_replay)

    records = await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 2)
    first_record = records[0]
    first, replay = [OutcomeEvent.model_validate_json(r.value) for r in records]
    assert first.event.event_id == "evt-e2e-full"
    assert first.status is OutcomeStatus.COMPLETED
    assert _by_kind(first) == {
        "revoke_loyalty_earn": ActionStatus.REVOKED,
        "revoke_cart_earn": ActionStatus.REVOKED,
        "revoke_coupon_codes": ActionStatus.REVOKED,
    }
    assert all(a.request_ids for a in first.actions)
    # The same event id again: no call, an outcome of its own naming the first one.
    assert replay.status is OutcomeStatus.DUPLICATE
    assert replay.actions == []
    assert replay.duplicate_of is not None
    assert replay.duplicate_of.status is OutcomeStatus.COMPLETED
    assert replay.duplicate_of.input_offset == 0
    assert replay.duplicate_of.outcome_offset == first_record.offset

    # One call per action (per code for the coupons: the default policy declares nothing of
    # their series), for the first delivery only.
    assert sorted(c.endpoint for c in sandbox.calls) == sorted(
        ["revoke_enrol_and_earn", "cart_revoke_earn", "coupon_revoke", "coupon_revoke"]
    )
    state = sandbox.state.snapshot()
    assert [e.revoked for e in state.loyalty_earns if e.earn_id == 957] == [True]
    assert [e.revoked for e in state.cart_earns if e.id == "6911eaf1f57b486147effac2"] == [True]
    assert {c.code for c in state.coupons if c.revoked} >= {"3138309782", "3636820421"}

    [dead] = await _read(kafka.bootstrap_servers, kafka.dead_letter_topic, 1)
    headers = dict(dead.headers)
    assert dead.value == b"not json at all"
    assert headers["rh-error-type"] == b"json_invalid"
    assert headers["rh-origin-topic"] == kafka.returns_topic.encode()
    assert int(headers["rh-origin-offset"]) == 1


async def test_outcome_offsets_are_committed_for_the_group(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    settings = _settings(kafka, sandbox)
    await _produce(kafka.bootstrap_servers, kafka.returns_topic, event_bytes(event_id="evt-c1"))

    async def one_outcome() -> None:
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 1)

    await _run_service_until(settings, one_outcome)

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=kafka.group_id)
    await consumer.start()
    try:
        committed = [
            await consumer.committed(TopicPartition(kafka.returns_topic, p)) for p in range(3)
        ]
    finally:
        await consumer.stop()
    assert sorted(c for c in committed if c is not None) == [1]


async def test_cli_run_stops_cleanly_on_sigterm(kafka: KafkaSettings, sandbox: Sandbox) -> None:
    env = {
        **os.environ,
        "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        # Any free port: a developer's service may hold the default one.
        "RETURN_HANDLER_OBSERVABILITY__PORT": "0",
        "RETURN_HANDLER_KAFKA__RETURNS_TOPIC": kafka.returns_topic,
        "RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC": kafka.outcomes_topic,
        "RETURN_HANDLER_KAFKA__DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "RETURN_HANDLER_KAFKA__STATE_TOPIC": kafka.state_topic,
        "RETURN_HANDLER_KAFKA__RETRY_TOPIC": kafka.retry_topic,
        "RETURN_HANDLER_KAFKA__ROUTED_TOPIC": kafka.routed_topic,
        "RETURN_HANDLER_KAFKA__GROUP_ID": kafka.group_id,
        "RETURN_HANDLER_CAPILLARY__LOYALTY_BASE_URL": sandbox.base_url,
        "RETURN_HANDLER_CAPILLARY__GATEWAY_BASE_URL": sandbox.base_url,
        "RETURN_HANDLER_CAPILLARY__OAUTH_BASE_URL": sandbox.base_url,
        "RETURN_HANDLER_CAPILLARY__USERNAME": "demo",
        "RETURN_HANDLER_CAPILLARY__PASSWORD": "demo",
        "RETURN_HANDLER_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "run",
        env=env, cwd=ROOT, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await _produce(kafka.bootstrap_servers, kafka.returns_topic, event_bytes(event_id="evt-s"))
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 1)
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
        print(stderr.decode()[-3000:])  # shown when the test fails
    assert process.returncode == 0
    events = [json.loads(line)["event"] for line in stderr.decode().splitlines() if line]
    assert "event_processed" in events
    assert events[-1] == "service_stopped"


async def test_slow_capillary_beyond_max_poll_interval_keeps_membership_and_commits(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    # One coupon call takes longer than max.poll.interval.ms: a consumer that stopped
    # polling while it waited would be thrown out of the group and fail its commit.
    sandbox.faults.configure(FaultConfig(endpoints={"coupon_revoke": FaultRule(latency_ms=12_000)}))
    settings = _settings(kafka, sandbox)
    assert settings.capillary is not None
    settings = settings.model_copy(
        update={
            "kafka": kafka.model_copy(update={"max_poll_interval_ms": 10_000}),
            "capillary": settings.capillary.model_copy(
                update={"timeouts": CapillaryTimeouts(read=30, call_deadline=30)}
            ),
        }
    )
    await _produce(kafka.bootstrap_servers, kafka.returns_topic, event_bytes(event_id="evt-slow"))

    async def one_outcome() -> None:
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 1)

    with capture_logs() as logs:
        stats = await _run_service_until(settings, one_outcome)

    assert list(stats.committed.values()) == [1]
    # The group never took the partitions away: the member stayed alive while it waited.
    revocations = [e for e in logs if e["event"] == "partitions_revoked" and e["partitions"]]
    assert revocations == []
    [outcome] = [
        OutcomeEvent.model_validate_json(r.value)
        for r in await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 1)
    ]
    assert outcome.status is OutcomeStatus.COMPLETED
    assert outcome.duration_ms >= 12_000
