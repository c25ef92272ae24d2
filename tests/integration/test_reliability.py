"""Nothing lost, nothing twice, on the real broker: crashes, outages, retries, floods."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from capillary_sandbox import FaultConfig, FaultRule, Sandbox
from service.capillary.client import CapillaryClient
from service.capillary.config import CapillaryRetrySettings
from service.errors import DeadLetterFloodError
from service.kafka.partitioner import java_partition
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.pipeline.run import Runner
from service.settings import KafkaSettings, ReliabilitySettings, Settings
from service.wiring import build_service
from tests.factories import event_bytes
from tests.integration.test_end_to_end import _produce, _read, _run_service_until, _settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "events"
FAST = ReliabilitySettings(
    probe_initial_seconds=0.2,
    probe_max_seconds=0.5,
    retry_initial_delay_seconds=0.2,
    retry_max_delay_seconds=0.5,
)


def _fast(kafka: KafkaSettings, sandbox: Sandbox) -> Settings:
    return _settings(kafka, sandbox).model_copy(update={"reliability": FAST})


def _example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def _read_outcomes(kafka: KafkaSettings, count: int) -> Callable[[], Awaitable[None]]:
    async def read() -> None:
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, count)

    return read


async def _outcomes(kafka: KafkaSettings, count: int) -> list[OutcomeEvent]:
    return [
        OutcomeEvent.model_validate_json(r.value)
        for r in await _read(kafka.bootstrap_servers, kafka.outcomes_topic, count)
    ]


def _one_customer_per_partition(partitions: int = 3) -> list[int]:
    """Customer ids whose keys the service (and aiokafka) put on partitions 0, 1, 2..."""
    found: dict[int, int] = {}
    customer = 555_600_000
    while len(found) < partitions:
        found.setdefault(java_partition(str(customer).encode(), partitions), customer)
        customer += 1
    return [found[p] for p in range(partitions)]


async def _produce_spread(kafka: KafkaSettings, values: list[bytes]) -> None:
    """Publish over every partition (each event keyed by its customer), not one customer's."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for value in values:
            key = str(json.loads(value)["customer"]["id"]).encode()
            await producer.send_and_wait(kafka.returns_topic, value=value, key=key)
    finally:
        await producer.stop()


async def _until(runner: Runner, condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait, with a deadline, until the running service's stats meet a condition."""
    async with asyncio.timeout(seconds), runner.changed:
        await runner.changed.wait_for(condition)


async def test_crash_after_a_give_back_call_makes_no_second_call(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    settings = _fast(kafka, sandbox)
    await _produce(kafka.bootstrap_servers, kafka.returns_topic, _example("01-full-return.json"))
    await _run_service_until(settings, _read_outcomes(kafka, 1))

    # The first instance issues the earns, then dies before its outcome is committed.
    crashing = build_service(settings)
    loyalty = crashing.coalescer.loyalty
    earned = asyncio.Event()

    async def issue_then_crash(*args: Any, **kwargs: Any) -> Any:
        results = await loyalty(*args, **kwargs)
        if args[0].action.bulk_action != "EARN":  # args[0]: the LoyaltyBulk
            return results
        earned.set()
        await asyncio.Event().wait()  # the process is gone: nothing after the call happens

    crashing.coalescer.loyalty = issue_then_crash  # type: ignore[method-assign]
    await _produce(
        kafka.bootstrap_servers, kafka.returns_topic, _example("09-cancelled-return.json")
    )
    stop = asyncio.Event()
    task = asyncio.create_task(crashing.runner.run(stop))
    await earned.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await crashing.aclose()
    issued_before = sum(1 for c in sandbox.calls if c.endpoint == "enrol_and_earn")

    # The redelivered cancellation repeats no give-back the crashed attempt made: the
    # enrolment's answer was recorded with the next intent (restored, with its issual id);
    # the first earn's was not (the crash came first): a check of that one, the others made.
    await _run_service_until(settings, _read_outcomes(kafka, 2))
    _, cancel = await _outcomes(kafka, 2)
    assert cancel.status is OutcomeStatus.NEEDS_CHECK
    give_backs = [a for a in cancel.actions if a.kind in ("enrol_loyalty", "issue_loyalty_earn")]
    assert issued_before == 2
    assert [a.status for a in give_backs] == [
        ActionStatus.RESTORED,
        ActionStatus.UNCONFIRMED,
    ] + [ActionStatus.RESTORED] * (len(give_backs) - 2)
    assert give_backs[0].items[0].detail["issual_id"]
    # One call per give-back in all: nothing was made twice.
    assert sum(1 for c in sandbox.calls if c.endpoint == "enrol_and_earn") == len(give_backs)


@pytest.mark.parametrize("outage", ["503", "401"])
async def test_capillary_outage_pauses_instead_of_failing_then_resumes(
    kafka: KafkaSettings, sandbox: Sandbox, outage: str
) -> None:
    if outage == "503":
        sandbox.faults.configure(FaultConfig(default=FaultRule(error_rate=1.0)))
    else:
        sandbox.refuse_credentials(True)
    settings = _fast(kafka, sandbox)
    await _produce(
        kafka.bootstrap_servers,
        kafka.returns_topic,
        *(event_bytes(event_id=f"evt-outage-{n}") for n in range(3)),
    )
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.runner.run(stop))
    try:
        stats = service.runner.stats
        # Paused, and probed more than once without success.
        await _until(service.runner, lambda: stats.pauses >= 1 and stats.probes >= 2)
        assert service.runner.stats.outcomes == 0  # nothing published while paused
        sandbox.faults.configure(FaultConfig())
        sandbox.refuse_credentials(False)
        outcomes = await _outcomes(kafka, 3)
    finally:
        stop.set()
        await task
        await service.aclose()
    assert sorted(o.event.event_id for o in outcomes) == [f"evt-outage-{n}" for n in range(3)]
    assert {o.status for o in outcomes} == {OutcomeStatus.COMPLETED}


async def test_open_cart_takes_the_retry_path_without_blocking_other_events(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    voucher = json.loads(_example("06-payment-voucher.json"))
    customer = sandbox.state.customers_by_id[voucher["customer"]["id"]]
    customer.open_cart = True
    settings = _fast(kafka, sandbox)
    assert settings.capillary is not None
    # The client gives up on the open cart at once; the retry path takes over.
    client = settings.capillary.model_copy(
        update={"retry": CapillaryRetrySettings(open_cart_attempts=1)}
    )
    settings = settings.model_copy(update={"capillary": client})
    await _produce(
        kafka.bootstrap_servers,
        kafka.returns_topic,
        _example("06-payment-voucher.json"),
        event_bytes(event_id="evt-after-voucher"),
    )
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.runner.run(stop))
    try:
        await _until(service.runner, lambda: service.runner.stats.retries >= 1)
        first = await _outcomes(kafka, 1)
        assert [o.event.event_id for o in first] == ["evt-after-voucher"]
        customer.open_cart = False
        outcomes = await _outcomes(kafka, 2)
    finally:
        stop.set()
        await task
        await service.aclose()
    voucher_outcome = outcomes[1]
    assert voucher_outcome.event.event_id == voucher["event_id"]
    assert voucher_outcome.status is OutcomeStatus.COMPLETED
    assert voucher_outcome.attempt >= 2


async def test_a_flood_of_dead_letters_stops_the_service(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    settings = _settings(kafka, sandbox).model_copy(
        update={"reliability": ReliabilitySettings(dead_letter_min_count=5)}
    )
    await _produce(kafka.bootstrap_servers, kafka.returns_topic, *([b"junk"] * 20))
    service = build_service(settings)
    try:
        with pytest.raises(DeadLetterFloodError):
            await service.runner.run(asyncio.Event())
    finally:
        await service.aclose()
    assert service.runner.stats.dead_letters == 6


async def test_kill_9_then_restart_with_static_membership_loses_and_doubles_nothing(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    # A session timeout far longer than the wait below: partitions come back at once only
    # because the restarted instance is the same static member.
    env = {
        **os.environ,
        "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        # Any free port: a developer's service may hold the default one.
        "RETURN_HANDLER_OBSERVABILITY__PORT": "0",
        "RETURN_HANDLER_KAFKA__RETURNS_TOPIC": kafka.returns_topic,
        "RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC": kafka.outcomes_topic,
        "RETURN_HANDLER_KAFKA__DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
        "RETURN_HANDLER_KAFKA__RETRY_TOPIC": kafka.retry_topic,
        "RETURN_HANDLER_KAFKA__ROUTED_TOPIC": kafka.routed_topic,
        "RETURN_HANDLER_KAFKA__STATE_TOPIC": kafka.state_topic,
        "RETURN_HANDLER_KAFKA__GROUP_ID": kafka.group_id,
        "RETURN_HANDLER_KAFKA__GROUP_INSTANCE_ID": "it-static-1",
        "RETURN_HANDLER_KAFKA__SESSION_TIMEOUT_MS": "60000",
        "RETURN_HANDLER_CAPILLARY__LOYALTY_BASE_URL": sandbox.base_url,
        "RETURN_HANDLER_CAPILLARY__GATEWAY_BASE_URL": sandbox.base_url,
        "RETURN_HANDLER_CAPILLARY__USERNAME": "demo",
        "RETURN_HANDLER_CAPILLARY__PASSWORD": "demo",
        "RETURN_HANDLER_LOG_FORMAT": "json",
    }
    # Slow calls, so that the kill lands in the middle of the work.
    sandbox.faults.configure(FaultConfig(default=FaultRule(latency_ms=20)))

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", "run",
            env=env, cwd=ROOT, stderr=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    events = [event_bytes(event_id=f"evt-kill-{n}") for n in range(40)]
    await _produce(kafka.bootstrap_servers, kafka.returns_topic, *events)
    first = await start()
    second: asyncio.subprocess.Process | None = None
    try:
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 5)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        killed_at = time.monotonic()
        seen = len(await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 5))
        second = await start()
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, seen + 1)
        back_after = time.monotonic() - killed_at
        outcomes = await _outcomes(kafka, len(events))
    finally:
        for process in (first, second):
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    await process.wait()
    per_event = Counter(o.event.event_id for o in outcomes)
    assert set(per_event) == {f"evt-kill-{n}" for n in range(40)}
    assert max(per_event.values()) == 1, "one committed outcome per input message"
    # Well inside the 60 s session timeout a dynamic member would have had to wait out.
    assert back_after < 30, f"partitions came back after {back_after:.1f} s"


async def test_probe_tells_an_answering_capillary_from_a_down_one(sandbox: Sandbox) -> None:
    settings = _settings(KafkaSettings(), sandbox)  # only the Capillary part is used
    assert settings.capillary is not None
    async with CapillaryClient(settings.capillary) as client:
        assert await client.probe() is None
        sandbox.refuse_credentials(True)
        reason = await client.probe()
    assert reason is not None
    assert "401" in reason


async def test_rebalance_to_a_second_instance_loses_and_doubles_nothing(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    # Calls slow enough that the second instance joins while work is in hand.
    sandbox.faults.configure(FaultConfig(default=FaultRule(latency_ms=100)))
    settings = _fast(kafka, sandbox)
    # A customer per partition: each one's events run one after the other, so work waits
    # on every partition when the second instance joins.
    customers = _one_customer_per_partition()
    events = [
        event_bytes(
            event_id=f"evt-rebalance-{n}",
            customer={"id": customers[n % 3], "registration_source": "INSTORE"},
        )
        for n in range(30)
    ]
    await _produce_spread(kafka, events[:15])
    first, second = build_service(settings), build_service(settings)
    stops = asyncio.Event(), asyncio.Event()
    if True:
        tasks = [asyncio.create_task(first.runner.run(stops[0]))]
        try:
            await _read(kafka.bootstrap_servers, kafka.outcomes_topic, 3)
            # A second instance joins mid-stream: partitions move while work is in hand.
            tasks.append(asyncio.create_task(second.runner.run(stops[1])))
            await _produce_spread(kafka, events[15:])
            outcomes = await _outcomes(kafka, len(events))
        finally:
            for stop in stops:
                stop.set()
            await asyncio.gather(*tasks)
            await first.aclose()
            await second.aclose()
    per_event = Counter(o.event.event_id for o in outcomes)
    assert set(per_event) == {f"evt-rebalance-{n}" for n in range(30)}
    assert max(per_event.values()) == 1
    # Both took part: the second instance was given partitions the first had owned.
    assert first.runner.stats.records > 0
    assert second.runner.stats.records > 0
    assert first.runner.stats.records + second.runner.stats.records == len(events)
