"""The benefit ledger on the real broker with the sandbox: give back only what was taken.

Each test is one of the ways a give-back or a replay used to be decided from what an event
claims instead of from what the service did, and each checks money in the sandbox's own
books (earns issued, enrolments made, deactivations asked) besides the outcomes. Events come
from two producers whose partitioners differ: aiokafka (murmur2, as Java) and confluent-kafka
(librdkafka's CRC32, as the Go, .NET and node clients).

Outcomes are read as plain JSON here, the way an analytics consumer reads them.
"""

from __future__ import annotations

import asyncio
import json
import sys
import zlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from aiokafka import AIOKafkaProducer

from capillary_sandbox import FaultConfig, FaultRule, Sandbox, SandboxSeed, demo_seed
from capillary_sandbox.faults import FailNext
from capillary_sandbox.state import CartEarn, Customer, Enrolment, LoyaltyEarn
from service.clock import SystemClock
from service.kafka.partitioner import java_partition
from service.kafka.span import TopicRecord, read_span
from service.operate.connect import client_options
from service.operate.replay import (
    ReplayRequest,
    RunOptions,
    new_manifest,
    outgoing_of,
    prepare,
    run,
)
from service.operate.sources import Filters, SourceKind
from service.outcome import OutcomeStatus
from service.pipeline.replays import Replay
from service.policy_file import load_policy
from service.settings import KafkaSettings, ReliabilitySettings, Settings
from service.wiring import build_service, make_planner
from tests.factories import event_dict
from tests.integration.sandbox_config import sandbox_capillary
from tests.integration.waiting import until

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
PROGRAM, DIRECT, ENROLLED = 2714, 202090, 202779
VOUCHER = "69058646b1cfc114606f7bbe"  # PAYMENT_VOUCHER: taken back by deactivation
FAST = ReliabilitySettings(
    probe_initial_seconds=0.2,
    probe_max_seconds=0.5,
    retry_initial_delay_seconds=0.3,
    retry_max_delay_seconds=0.6,
)


def _settings(kafka: KafkaSettings, sandbox: Sandbox, **capillary: Any) -> Settings:
    return Settings(
        kafka=kafka,
        capillary=sandbox_capillary(sandbox, **capillary),
        reliability=FAST,
    )


# --------------------------------------------------------------------------- keys


def _murmur2_partition(key: bytes) -> int:
    return java_partition(key, PARTITIONS)


def _crc32_partition(key: bytes) -> int:
    return zlib.crc32(key) % PARTITIONS


def _split_key(start: int) -> int:
    """A customer id from ``start`` on whose key the two partitioners put apart."""
    customer = start
    while _murmur2_partition(str(customer).encode()) == _crc32_partition(str(customer).encode()):
        customer += 1
    return customer


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """Customers and benefits in the sandbox, and events about them."""

    seed: SandboxSeed = field(
        default_factory=lambda: SandboxSeed(
            programs=demo_seed().programs,
            loyalty_promotions=demo_seed().loyalty_promotions,
            cart_promotions=demo_seed().cart_promotions,
            coupon_series=demo_seed().coupon_series,
        )
    )

    def customer(self, customer_id: int, *, mobile: str | None = None, **extra: Any) -> int:
        self.seed.customers.append(Customer(id=customer_id, mobile=mobile, **extra))
        return customer_id

    def direct_earn(self, customer: int, earn_id: int, *, revoked: bool = False) -> dict[str, Any]:
        self.seed.loyalty_earns.append(
            LoyaltyEarn(
                earn_id=earn_id,
                promotion_id=DIRECT,
                customer_id=customer,
                issual_id=earn_id,
                revoked=revoked,
            )
        )
        return {"program_id": PROGRAM, "promotion_id": DIRECT, "promotion_type": "DIRECT"}

    def enrolled_earn(self, customer: int, issual: int, earn_id: int) -> dict[str, Any]:
        self.seed.enrolments.append(
            Enrolment(issual_id=issual, promotion_id=ENROLLED, customer_id=customer)
        )
        self.seed.loyalty_earns.append(
            LoyaltyEarn(
                earn_id=earn_id, promotion_id=ENROLLED, customer_id=customer, issual_id=issual
            )
        )
        return {
            "program_id": PROGRAM,
            "promotion_id": ENROLLED,
            "promotion_type": "LOYALTY_EARNING",
            "issual_id": str(issual),
        }

    def voucher(self, customer: int, earn: str) -> dict[str, Any]:
        self.seed.cart_earns.append(CartEarn(id=earn, promotion_id=VOUCHER, customer_id=customer))
        return {"promotion_id": VOUCHER, "mode": "PAYMENT_VOUCHER", "earn_ids": [earn]}


def _return(event_id: str, customer: int, **earned: Any) -> dict[str, Any]:
    return event_dict(
        event_id=event_id,
        order={
            "order_id": f"ORD-{event_id}",
            "transaction_id": f"TX-{event_id}",
            "ordered_at": "2026-11-10T09:00:00Z",
            "currency": "EUR",
        },
        customer={"id": customer, "registration_source": "INSTORE"},
        earned={"loyalty_promotions": [], "cart_promotions": [], "coupons": [], **earned},
    )


def _cancel(
    event_id: str,
    of: str,
    customer: int,
    loyalty: list[dict[str, Any]],
    *,
    enrolments: list[dict[str, Any]] | None = None,
    order_of: str | None = None,
) -> dict[str, Any]:
    return event_dict(
        event_id=event_id,
        return_type="CANCELLED",
        order={
            "order_id": f"ORD-{order_of or of}",
            "transaction_id": f"TX-{order_of or of}",
            "ordered_at": "2026-11-10T09:00:00Z",
            "currency": "EUR",
        },
        customer={"id": customer, "registration_source": "INSTORE"},
        amounts={"before": "0", "after": "120.00"},
        earned={},
        cancelled_return={
            "return_event_id": of,
            "taken_back": {"loyalty_promotions": loyalty},
            "enrolments_revoked": enrolments or [],
        },
    )


# --------------------------------------------------------------------------- Kafka


def _bytes(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


async def _aiokafka(
    kafka: KafkaSettings,
    *events: dict[str, Any],
    key: bytes | None = None,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[int]:
    """Publish with aiokafka (murmur2); returns the partitions written to."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    partitions = []
    try:
        for event in events:
            meta = await producer.send_and_wait(
                kafka.returns_topic,
                value=_bytes(event),
                key=key if key is not None else str(event["customer"]["id"]).encode(),
                partition=partition,
                headers=headers or [],
            )
            partitions.append(meta.partition)
    finally:
        await producer.stop()
    return partitions


def _confluent(kafka: KafkaSettings, *events: dict[str, Any], key: bytes) -> list[int]:
    """Publish with confluent-kafka (librdkafka, CRC32 by default); the partitions written."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True}
    )
    partitions: list[int] = []
    errors: list[object] = []

    def delivered(error: object, message: Any) -> None:
        if error is not None:
            errors.append(error)
        else:
            partitions.append(message.partition())

    for event in events:
        producer.produce(kafka.returns_topic, value=_bytes(event), key=key, on_delivery=delivered)
    producer.flush(30)
    assert not errors, errors
    return partitions


async def _topic(kafka: KafkaSettings, topic: str) -> list[TopicRecord]:
    return [r async for r in read_span(client_options(kafka), topic)]


async def _outcomes(kafka: KafkaSettings) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in await _topic(kafka, kafka.outcomes_topic) if r.value]


async def _outcomes_of(kafka: KafkaSettings, event_id: str) -> list[dict[str, Any]]:
    return [o for o in await _outcomes(kafka) if o["event"]["event_id"] == event_id]


async def _wait_outcomes(kafka: KafkaSettings, *event_ids: str, count: int = 1) -> None:
    async def arrived() -> bool:
        seen = Counter(o["event"]["event_id"] for o in await _outcomes(kafka))
        return all(seen[e] >= count for e in event_ids)

    await until(arrived, f"{count} outcome(s) of each of {event_ids}")


@asynccontextmanager
async def _service(settings: Settings) -> AsyncIterator[Any]:
    service = build_service(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.runner.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await task
        await service.aclose()


def _issued(sandbox: Sandbox, promotion: int, customer: int) -> int:
    return sandbox.state.ledger.earns_issued[(promotion, customer)]


def _enrolled(sandbox: Sandbox, promotion: int, customer: int) -> int:
    return sandbox.state.ledger.enrolments[(promotion, customer)]


def _actions(outcome: dict[str, Any], *kinds: str) -> list[dict[str, Any]]:
    return [a for a in outcome["actions"] if not kinds or a["kind"] in kinds]


def _reports(outcome: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in outcome["actions"] if a.get("report_kind") == kind]


# --------------------------------------------------------------------------- 2: give-backs


async def test_a_cancellation_gives_back_only_what_its_return_revoked(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_001)
    promotion = world.direct_earn(customer, 41_000_001)
    # 41_999_999 is not in Capillary: the return's revoke answers it "invalid" (8903).
    listed = {**promotion, "earn_ids": [41_000_001, 41_999_999]}
    sandbox.load_seed(world.seed)
    async with _service(_settings(kafka, sandbox)):
        await _aiokafka(kafka, _return("lg-ret-1", customer, loyalty_promotions=[listed]))
        await _wait_outcomes(kafka, "lg-ret-1")
        await _aiokafka(kafka, _cancel("lg-can-1", "lg-ret-1", customer, [listed]))
        await _wait_outcomes(kafka, "lg-can-1")
    [cancel] = await _outcomes_of(kafka, "lg-can-1")

    assert _issued(sandbox, DIRECT, customer) == 1
    issued = _actions(cancel, "issue_loyalty_earn")
    assert [(a["status"], a["action_id"].endswith(":41000001")) for a in issued] == [
        ("restored", True)
    ]
    # The earn the return did not revoke is named, with what the return got for it.
    [not_taken] = _reports(cancel, "not_taken_back")
    assert "41999999" in not_taken["reason"]
    assert "not_found" in not_taken["reason"]
    assert cancel["status"] == "completed"


async def test_a_cancellation_of_a_return_never_handled_issues_nothing_and_asks_an_operator(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_002)
    promotion = world.direct_earn(customer, 41_000_002, revoked=True)
    sandbox.load_seed(world.seed)
    claim = [{**promotion, "earn_ids": [41_000_002]}]
    async with _service(_settings(kafka, sandbox)):
        await _aiokafka(kafka, _cancel("lg-can-2", "lg-ret-never-seen", customer, claim))
        await _wait_outcomes(kafka, "lg-can-2")
    [cancel] = await _outcomes_of(kafka, "lg-can-2")

    assert _issued(sandbox, DIRECT, customer) == 0
    assert not any(c.endpoint == "enrol_and_earn" for c in sandbox.calls)
    assert cancel["status"] == "return_unknown"
    [unknown] = _reports(cancel, "return_unknown")
    assert "lg-ret-never-seen" in unknown["reason"]


async def test_a_return_cancelled_twice_under_two_event_ids_is_given_back_once(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_003)
    listed = {**world.direct_earn(customer, 41_000_003), "earn_ids": [41_000_003]}
    sandbox.load_seed(world.seed)
    async with _service(_settings(kafka, sandbox)):
        await _aiokafka(kafka, _return("lg-ret-3", customer, loyalty_promotions=[listed]))
        await _aiokafka(
            kafka,
            _cancel("lg-can-3a", "lg-ret-3", customer, [listed]),
            _cancel("lg-can-3b", "lg-ret-3", customer, [listed]),
        )
        await _wait_outcomes(kafka, "lg-ret-3", "lg-can-3a", "lg-can-3b")
    [second] = await _outcomes_of(kafka, "lg-can-3b")

    assert _issued(sandbox, DIRECT, customer) == 1
    assert not _actions(second, "issue_loyalty_earn", "enrol_loyalty")
    [already] = _reports(second, "already_cancelled")
    assert "lg-can-3a" in already["reason"]


async def test_the_same_cancellation_on_two_partitions_is_given_back_once(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(_split_key(731_000_100))
    key = str(customer).encode()
    listed = {**world.direct_earn(customer, 41_000_004), "earn_ids": [41_000_004]}
    sandbox.load_seed(world.seed)
    cancel = _cancel("lg-can-4", "lg-ret-4", customer, [listed])
    async with _service(_settings(kafka, sandbox)):
        await _aiokafka(kafka, _return("lg-ret-4", customer, loyalty_promotions=[listed]))
        await _wait_outcomes(kafka, "lg-ret-4")
        # Two producers of one team, two partitioners: the same event on two partitions.
        [by_murmur2] = await _aiokafka(kafka, cancel, key=key)
        [by_crc32] = await asyncio.to_thread(_confluent, kafka, cancel, key=key)
        assert by_murmur2 != by_crc32
        await _wait_outcomes(kafka, "lg-can-4", count=2)
    outcomes = await _outcomes_of(kafka, "lg-can-4")

    assert _issued(sandbox, DIRECT, customer) == 1
    assert sorted(o["status"] for o in outcomes) == ["completed", "duplicate"]
    # Each outcome names the record it answers, on the partition its producer chose.
    assert sorted(o["event"]["record"]["partition"] for o in outcomes) == sorted(
        [by_murmur2, by_crc32]
    )


async def test_the_same_return_on_two_partitions_is_taken_back_once(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(_split_key(731_000_200))
    key = str(customer).encode()
    listed = {**world.direct_earn(customer, 41_000_005), "earn_ids": [41_000_005]}
    sandbox.load_seed(world.seed)
    ret = _return("lg-ret-5", customer, loyalty_promotions=[listed])
    async with _service(_settings(kafka, sandbox)):
        await asyncio.to_thread(_confluent, kafka, ret, key=key)
        await _aiokafka(kafka, ret, key=key)
        await _wait_outcomes(kafka, "lg-ret-5", count=2)
    outcomes = await _outcomes_of(kafka, "lg-ret-5")

    assert sorted(o["status"] for o in outcomes) == ["completed", "duplicate"]
    assert sum(1 for c in sandbox.calls if c.endpoint == "revoke_enrol_and_earn") == 1


async def test_a_cancellation_on_another_partition_finds_its_return(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(_split_key(731_000_300))
    key = str(customer).encode()
    # 41_999_998 is not in Capillary: the return cannot take it, the cancellation must not
    # give it.
    listed = {**world.direct_earn(customer, 41_000_006), "earn_ids": [41_000_006, 41_999_998]}
    sandbox.load_seed(world.seed)
    async with _service(_settings(kafka, sandbox)):
        # The till's producer (murmur2) sends the return, the web shop's (CRC32) the
        # cancellation: they arrive on two partitions.
        await _aiokafka(kafka, _return("lg-ret-6", customer, loyalty_promotions=[listed]))
        await _wait_outcomes(kafka, "lg-ret-6")
        await asyncio.to_thread(
            _confluent, kafka, _cancel("lg-can-6", "lg-ret-6", customer, [listed]), key=key
        )
        await _wait_outcomes(kafka, "lg-can-6")
    [cancel] = await _outcomes_of(kafka, "lg-can-6")

    assert cancel["status"] == "completed"
    assert _issued(sandbox, DIRECT, customer) == 1


async def test_a_cancellation_waits_for_its_return_on_the_retry_path(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_007, open_cart=True)
    listed = {**world.direct_earn(customer, 41_000_007), "earn_ids": [41_000_007]}
    voucher = world.voucher(customer, "7" * 24)
    sandbox.load_seed(world.seed)
    settings = _settings(kafka, sandbox, retry={"open_cart_attempts": 1})
    settings = settings.model_copy(
        update={"reliability": FAST.model_copy(update={"retry_max_attempts": 20})}
    )
    async with _service(settings) as service:
        await _aiokafka(
            kafka,
            _return("lg-ret-7", customer, loyalty_promotions=[listed], cart_promotions=[voucher]),
            _cancel("lg-can-7", "lg-ret-7", customer, [listed]),
        )
        stats = service.runner.stats
        async with asyncio.timeout(60), service.runner.changed:
            # The return waits for the open cart, and the cancellation waits for the return.
            await service.runner.changed.wait_for(lambda: stats.retries >= 2)
        assert await _outcomes(kafka) == []
        assert _issued(sandbox, DIRECT, customer) == 0
        sandbox.state.customers_by_id[customer].open_cart = False
        await _wait_outcomes(kafka, "lg-ret-7", "lg-can-7")
    [ret] = await _outcomes_of(kafka, "lg-ret-7")
    [cancel] = await _outcomes_of(kafka, "lg-can-7")

    assert ret["status"] == "completed"
    assert cancel["status"] == "completed"
    assert _issued(sandbox, DIRECT, customer) == 1
    calls = [c.endpoint for c in sandbox.calls]
    last_deactivation = max(i for i, c in enumerate(calls) if c == "deactivate")
    assert calls.index("enrol_and_earn") > last_deactivation
    # The return's last outcome lists what its first attempt did.
    [revoked] = _actions(ret, "revoke_loyalty_earn")
    assert [(i["status"], i.get("attempt")) for i in revoked["items"]] == [("revoked", 1)]


# --------------------------------------------------------------------------- 3: answers


async def test_an_earn_answered_but_unmatched_is_unconfirmed_in_every_event_of_the_call(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customers = [world.customer(731_000_010 + n) for n in range(3)]
    listed = {
        c: {**world.direct_earn(c, 41_000_010 + n), "earn_ids": [41_000_010 + n]}
        for n, c in enumerate(customers)
    }
    sandbox.load_seed(world.seed)
    settings = _settings(kafka, sandbox)
    # Long enough a linger that the three cancellations' EARNs always share one call.
    settings = settings.model_copy(
        update={"concurrency": settings.concurrency.model_copy(update={"linger_ms": 500})}
    )
    async with _service(settings):
        for n, c in enumerate(customers):
            await _aiokafka(kafka, _return(f"lg-ret-10{n}", c, loyalty_promotions=[listed[c]]))
        await _wait_outcomes(kafka, *(f"lg-ret-10{n}" for n in range(3)))
        # The EARN of the three cancellations goes in one call, which Capillary carries out
        # and answers with one item too few.
        sandbox.faults.configure(
            FaultConfig(fail_next=[FailNext(endpoint="enrol_and_earn", kind="unmatched")])
        )
        await _aiokafka(
            kafka,
            *(
                _cancel(f"lg-can-10{n}", f"lg-ret-10{n}", c, [listed[c]])
                for n, c in enumerate(customers)
            ),
        )
        await _wait_outcomes(kafka, *(f"lg-can-10{n}" for n in range(3)))
    cancels = [(await _outcomes_of(kafka, f"lg-can-10{n}"))[0] for n in range(3)]

    earn_calls = [c for c in sandbox.calls if c.endpoint == "enrol_and_earn"]
    assert len(earn_calls) == 1
    assert [c["status"] for c in cancels] == ["needs_check"] * 3
    assert all(
        [a["status"] for a in _actions(c, "issue_loyalty_earn")] == ["unconfirmed"] for c in cancels
    )


async def test_a_give_back_confirmed_before_an_outage_stays_restored_with_its_ids(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_011)
    enrolled = world.enrolled_earn(customer, 51_000_011, 41_000_011)
    listed = {**enrolled, "earn_ids": [41_000_011]}
    sandbox.load_seed(world.seed)
    async with _service(_settings(kafka, sandbox)) as service:
        await _aiokafka(kafka, _return("lg-ret-11", customer, loyalty_promotions=[listed]))
        await _wait_outcomes(kafka, "lg-ret-11")
        assert _enrolled(sandbox, ENROLLED, customer) == 0
        # The ENROL goes through; then Capillary goes down for everyone, the probe too.
        sandbox.faults.configure(
            FaultConfig(fail_next=[FailNext(endpoint="*", count=10_000, status=503, after=1)])
        )
        await _aiokafka(
            kafka,
            _cancel("lg-can-11", "lg-ret-11", customer, [listed], enrolments=[enrolled]),
        )
        stats = service.runner.stats
        async with asyncio.timeout(60), service.runner.changed:
            await service.runner.changed.wait_for(lambda: stats.pauses >= 1)
        sandbox.faults.configure(FaultConfig())
        await _wait_outcomes(kafka, "lg-can-11")
    [cancel] = await _outcomes_of(kafka, "lg-can-11")

    assert cancel["status"] == "completed"
    assert _enrolled(sandbox, ENROLLED, customer) == 1
    assert _issued(sandbox, ENROLLED, customer) == 1
    [enrol] = _actions(cancel, "enrol_loyalty")
    assert enrol["status"] == "restored"
    assert enrol["items"][0]["detail"]["issual_id"]
    [earn] = _actions(cancel, "issue_loyalty_earn")
    assert earn["status"] == "restored"
    assert earn["items"][0]["detail"]["earned_id"]


async def test_an_event_that_failed_on_the_retry_path_lists_what_its_attempts_did(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_012, open_cart=True)
    listed = {**world.direct_earn(customer, 41_000_012), "earn_ids": [41_000_012]}
    voucher = world.voucher(customer, "c" * 24)
    sandbox.load_seed(world.seed)
    settings = _settings(kafka, sandbox, retry={"open_cart_attempts": 1})
    settings = settings.model_copy(
        update={"reliability": FAST.model_copy(update={"retry_max_attempts": 2})}
    )
    async with _service(settings):
        await _aiokafka(
            kafka,
            _return("lg-ret-12", customer, loyalty_promotions=[listed], cart_promotions=[voucher]),
        )
        await _wait_outcomes(kafka, "lg-ret-12")
    [ret] = await _outcomes_of(kafka, "lg-ret-12")

    assert ret["status"] == "failed"
    assert ret["attempt"] == 2
    [revoked] = _actions(ret, "revoke_loyalty_earn")
    assert [(i["status"], i.get("attempt")) for i in revoked["items"]] == [("revoked", 1)]
    [deactivate] = _actions(ret, "deactivate_cart_promotion")
    assert deactivate["status"] == "failed"


# --------------------------------------------------------------------------- 4: replays


async def test_a_replayed_cancellation_after_a_crash_gives_back_nothing_twice(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_013)
    listed = {**world.direct_earn(customer, 41_000_013), "earn_ids": [41_000_013]}
    sandbox.load_seed(world.seed)
    settings = _settings(kafka, sandbox)
    cancel = _cancel("lg-can-13", "lg-ret-13", customer, [listed])
    async with _service(settings):
        await _aiokafka(kafka, _return("lg-ret-13", customer, loyalty_promotions=[listed]))
        await _wait_outcomes(kafka, "lg-ret-13")

    # An instance issues the earn, then dies before its outcome is committed.
    crashing = build_service(settings)
    loyalty = crashing.coalescer.loyalty
    earned = asyncio.Event()

    async def issue_then_crash(*args: Any, **kwargs: Any) -> Any:
        results = await loyalty(*args, **kwargs)
        if args[0].action.bulk_action != "EARN":  # args[0]: the LoyaltyBulk
            return results
        earned.set()
        await asyncio.Event().wait()

    crashing.coalescer.loyalty = issue_then_crash  # type: ignore[method-assign]
    await _aiokafka(kafka, cancel)
    task = asyncio.create_task(crashing.runner.run(asyncio.Event()))
    await earned.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await crashing.aclose()
    assert _issued(sandbox, DIRECT, customer) == 1

    # An operator replays the cancellation before anything else ran.
    await _aiokafka(
        kafka,
        cancel,
        headers=Replay(
            replay_id="r-13", reason="customer says nothing came back", source="x:0:0", sequence=1
        ).headers(),
    )
    async with _service(settings):
        await _wait_outcomes(kafka, "lg-can-13", count=2)
    outcomes = await _outcomes_of(kafka, "lg-can-13")

    assert _issued(sandbox, DIRECT, customer) == 1
    assert sorted(o["status"] for o in outcomes) == ["needs_check", "needs_check"]


async def test_a_replay_makes_no_deactivation_twice(
    kafka: KafkaSettings, sandbox: Sandbox, tmp_path: Path
) -> None:
    world = World()
    customer = world.customer(731_000_014)
    voucher = world.voucher(customer, "d" * 24)
    sandbox.load_seed(world.seed)
    settings = _settings(kafka, sandbox)
    async with _service(settings):
        await _aiokafka(kafka, _return("lg-ret-14", customer, cart_promotions=[voucher]))
        await _wait_outcomes(kafka, "lg-ret-14")
        await _replay(
            settings,
            ReplayRequest(
                source=SourceKind.RETURNS, reason="audit: everything again", include_done=True
            ),
            tmp_path,
        )
        await _wait_outcomes(kafka, "lg-ret-14", count=2)

    deactivations = [c for c in sandbox.calls if c.endpoint == "deactivate"]
    assert len(deactivations) == 1


async def test_replaying_failed_returns_holds_back_one_cancelled_since(
    kafka: KafkaSettings, sandbox: Sandbox, tmp_path: Path
) -> None:
    world = World()
    customer = world.customer(731_000_015, open_cart=True)
    enrolled = world.enrolled_earn(customer, 51_000_015, 41_000_015)
    listed = {**enrolled, "earn_ids": [41_000_015]}
    voucher = world.voucher(customer, "f" * 24)
    sandbox.load_seed(world.seed)
    settings = _settings(kafka, sandbox, retry={"open_cart_attempts": 1})
    settings = settings.model_copy(
        update={"reliability": FAST.model_copy(update={"retry_max_attempts": 1})}
    )
    async with _service(settings):
        # The return fails on the open cart after revoking the earn and the enrolment...
        await _aiokafka(
            kafka,
            _return("lg-ret-15", customer, loyalty_promotions=[listed], cart_promotions=[voucher]),
        )
        await _wait_outcomes(kafka, "lg-ret-15")
        # ...and the customer cancels it: both come back.
        await _aiokafka(
            kafka, _cancel("lg-can-15", "lg-ret-15", customer, [listed], enrolments=[enrolled])
        )
        await _wait_outcomes(kafka, "lg-can-15")
        assert _enrolled(sandbox, ENROLLED, customer) == 1
        sandbox.state.customers_by_id[customer].open_cart = False

        failed = ReplayRequest(
            source=SourceKind.OUTCOMES,
            reason="carts closed",
            filters=Filters(statuses=frozenset({OutcomeStatus.FAILED})),
        )
        selection = await _replay(settings, failed, tmp_path)
        assert selection.chosen == []
        [held] = selection.held_back
        assert held.event_id == "lg-ret-15"
        assert "lg-can-15" in held.why

        # Published anyway (another tool, an old manifest): the service holds it back too.
        await _aiokafka(
            kafka,
            _return("lg-ret-15", customer, loyalty_promotions=[listed], cart_promotions=[voucher]),
            headers=Replay(replay_id="r-15", reason="x", source="x:0:0", sequence=1).headers(),
        )
        await _wait_outcomes(kafka, "lg-ret-15", count=2)

    # What the cancellation gave back stays given back.
    assert sandbox.state.enrolments.get((ENROLLED, customer)) is not None
    assert sum(1 for c in sandbox.calls if c.endpoint == "deactivate") == 1
    replayed = (await _outcomes_of(kafka, "lg-ret-15"))[-1]
    [held_back] = _reports(replayed, "cancelled_since")
    assert "lg-can-15" in held_back["reason"]


async def _replay(settings: Settings, request: ReplayRequest, state_dir: Path) -> Any:
    """Preview and execute one replay as the command does; returns the selection."""
    now = SystemClock().now()
    selection = await prepare(settings, request, planner=make_planner(load_policy(None)), now=now)
    if selection.chosen:
        manifest = new_manifest(selection, request, settings, now)
        await run(
            settings,
            manifest,
            items=outgoing_of(manifest, selection),
            options=RunOptions(window=10),
        )
    return selection


# --------------------------------------------------------------------------- 5: ordering


async def test_two_events_of_one_customer_never_run_at_once_whichever_identifiers_they_carry(
    kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    world = World()
    customer = world.customer(731_000_016, mobile="447700900016")
    first = world.enrolled_earn(customer, 51_000_016, 41_000_016)
    second_earn = 41_000_017
    world.seed.loyalty_earns.append(
        LoyaltyEarn(
            earn_id=second_earn, promotion_id=ENROLLED, customer_id=customer, issual_id=51_000_016
        )
    )
    sandbox.load_seed(world.seed)
    key = str(customer).encode()
    async with _service(_settings(kafka, sandbox)):
        # A partial return took one earn back, by the customer's id.
        partial = _return(
            "lg-ret-16a", customer, loyalty_promotions=[{**first, "earn_ids": [41_000_016]}]
        )
        await _aiokafka(kafka, partial, key=key)
        await _wait_outcomes(kafka, "lg-ret-16a")
        # Slow calls: two events at once would interleave theirs.
        sandbox.faults.configure(FaultConfig(default=FaultRule(latency_ms=300)))
        sandbox.clear_calls()
        # The till (by id) takes the other earn and the enrolment back; the web shop (by
        # mobile only) cancels the partial return: give-backs of the same promotion.
        full = _return(
            "lg-ret-16b", customer, loyalty_promotions=[{**first, "earn_ids": [second_earn]}]
        )
        cancel = _cancel("lg-can-16", "lg-ret-16a", customer, [{**first, "earn_ids": [41_000_016]}])
        cancel["customer"] = {"mobile": "447700900016", "registration_source": "INSTORE"}
        await _aiokafka(kafka, full, cancel, key=key)
        await _wait_outcomes(kafka, "lg-ret-16b", "lg-can-16")

    calls = [c.endpoint for c in sandbox.calls]
    # The full return's two calls, then the cancellation's: never one inside the other.
    assert calls == ["revoke_enrol_and_earn", "revoke_enrol_and_earn", "enrol_and_earn"]


# --------------------------------------------------------------------------- 6: inspect


async def test_inspect_shows_the_orders_ledger(kafka: KafkaSettings, sandbox: Sandbox) -> None:
    world = World()
    customer = world.customer(731_000_018)
    listed = {**world.direct_earn(customer, 41_000_018), "earn_ids": [41_000_018]}
    sandbox.load_seed(world.seed)
    async with _service(_settings(kafka, sandbox)):
        await _aiokafka(
            kafka,
            _return("lg-ret-18", customer, loyalty_promotions=[listed]),
            _cancel("lg-can-18", "lg-ret-18", customer, [listed]),
        )
        await _wait_outcomes(kafka, "lg-ret-18", "lg-can-18")
    env = {
        "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC": kafka.outcomes_topic,
        "RETURN_HANDLER_KAFKA__STATE_TOPIC": kafka.state_topic,
        "PATH": "/usr/bin:/bin",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "inspect", "ORD-lg-ret-18", "--json",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    # JSON lines: one per outcome found, then the order's ledger.
    [ledger] = [line["ledger"] for line in map(json.loads, out.splitlines()) if "ledger" in line]
    taken = [i for e in ledger if e["event_id"] == "lg-ret-18" for i in e["items"]]
    given = [i for e in ledger if e["event_id"] == "lg-can-18" for i in e["items"]]
    assert [(i["item"], i["status"]) for i in taken] == [("loyalty_earn:41000018", "revoked")]
    assert [(i["status"], i["replaces"]) for i in given] == [("restored", "loyalty_earn:41000018")]
    assert given[0]["earned_id"]
