"""One brand limit, shared by the replicas: each paces at its partitions' share of it.

Capillary counts its limits per brand, however many replicas send. Played fast: the sandbox
grants ``LIMIT`` cart revokes per ``WINDOW`` seconds, and the service is configured with
that limit over the same window (``capillary.pacing.window_seconds``), so a minute's
traffic passes in a few seconds. Each event is one customer's cart return: one call, which
no other event's can join (the cart endpoint takes one customer a request).

Measured from the sandbox's call log: the requests it refused (429) and the most requests
any window of it saw. One replica alone must reach the whole limit; two, on three
partitions, must stay within it together, with the replica of two partitions pacing at two
thirds of it and the other at a third.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import pytest
from aiokafka import AIOKafkaProducer

from capillary_sandbox import Sandbox, SandboxConfig
from capillary_sandbox.server import CallRecord
from capillary_sandbox.state import CartEarn, CartPromotion, Customer, SandboxSeed
from service.kafka.partitioner import java_partition
from service.settings import KafkaSettings, Settings
from service.wiring import Service, build_service
from tests.factories import event_bytes
from tests.integration.sandbox_config import sandbox_capillary
from tests.integration.test_end_to_end import _read
from tests.integration.waiting import until

WINDOW = 3.0
JITTER = 0.5
LIMIT = 60
"""Cart revokes a window, the brand's: the sandbox's limit and the service's setting alike."""
PARTITIONS = 3
ALONE = 72
"""Events while one replica runs: more than a window's worth, so the limit binds."""
TOGETHER = 90
PROMOTION = "69117663b1cfc114606fd7fb"
ENDPOINT = "cart_revoke_earn"
FIRST_CUSTOMER = 710_000_000


def _customers(count: int) -> list[int]:
    """Customers whose keys fall on the partitions in turn: every partition equally loaded."""
    per_partition: list[list[int]] = [[] for _ in range(PARTITIONS)]
    for customer in itertools.count(FIRST_CUSTOMER):
        bucket = per_partition[java_partition(str(customer).encode(), PARTITIONS)]
        if len(bucket) < count // PARTITIONS + 1:
            bucket.append(customer)
        if all(len(b) > count // PARTITIONS for b in per_partition):
            break
    interleaved = [c for row in zip(*per_partition, strict=True) for c in row]
    return interleaved[:count]


CUSTOMERS = _customers(ALONE + TOGETHER)


def _earn_id(customer: int) -> str:
    return f"{customer:024x}"


def _event(customer: int) -> bytes:
    return event_bytes(
        event_id=f"evt-share-{customer}",
        customer={"id": customer, "registration_source": "INSTORE"},
        earned={
            "cart_promotions": [
                {"promotion_id": PROMOTION, "earn_ids": [_earn_id(customer)], "mode": "DISCOUNT"}
            ]
        },
    )


@pytest.fixture
async def limited_sandbox() -> AsyncIterator[Sandbox]:
    seed = SandboxSeed(
        customers=[Customer(id=c) for c in CUSTOMERS],
        cart_promotions=[CartPromotion(id=PROMOTION, mode="DISCOUNT")],
        cart_earns=[
            CartEarn(id=_earn_id(c), promotion_id=PROMOTION, customer_id=c) for c in CUSTOMERS
        ],
    )
    config = SandboxConfig(
        port=0, rate_limit_per_minute={ENDPOINT: LIMIT}, rate_limit_window_seconds=WINDOW
    )
    async with Sandbox(config, seed=seed) as running:
        yield running


async def _publish(kafka: KafkaSettings, customers: Sequence[int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await asyncio.gather(
            *[
                await producer.send(kafka.returns_topic, _event(c), key=str(c).encode())
                for c in customers
            ]
        )
    finally:
        await producer.stop()


def _cart_calls(sandbox: Sandbox, since: datetime | None = None) -> list[CallRecord]:
    return [
        c
        for c in sandbox.calls
        if c.endpoint == ENDPOINT and (since is None or c.timestamp >= since)
    ]


def _most_in_a_window(calls: Sequence[CallRecord]) -> int:
    """The most accepted requests any ``WINDOW`` seconds held, as the sandbox counts them."""
    times = sorted(c.timestamp.timestamp() for c in calls if c.status != 429)
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - WINDOW:
            start += 1
        most = max(most, end - start + 1)
    return most


def _gauge(service: Service, name: str, labels: dict[str, str] | None = None) -> float:
    value = service.metrics.registry.get_sample_value(name, labels or {})
    assert value is not None, name
    return value


def _pace(service: Service) -> float:
    return _gauge(service, "return_handler_capillary_pace_per_minute", {"endpoint": "cart_revoke"})


def _share(service: Service) -> float:
    return _gauge(service, "return_handler_capillary_limit_share")


async def test_replicas_share_the_brand_limit_and_one_alone_gets_all_of_it(
    kafka: KafkaSettings, limited_sandbox: Sandbox
) -> None:
    sandbox = limited_sandbox
    settings = Settings(
        kafka=kafka,
        capillary=sandbox_capillary(
            sandbox,
            rate_limits={"cart_revoke": LIMIT},
            pacing={"window_seconds": WINDOW, "jitter_seconds": JITTER},
        ),
    )
    first, second = build_service(settings), build_service(settings)
    stops = asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[object]] = []
    try:
        # Alone: everything is waiting when it joins, so only the limit holds it back.
        await _publish(kafka, CUSTOMERS[:ALONE])
        tasks.append(asyncio.create_task(first.runner.run(stops[0])))
        await _read(kafka.bootstrap_servers, kafka.outcomes_topic, ALONE)
        alone = _cart_calls(sandbox)
        alone_pace = _pace(first)

        tasks.append(asyncio.create_task(second.runner.run(stops[1])))

        async def both_assigned() -> bool:
            # The second one is in the group only once the rebalance gave both their share.
            return first.runner.not_ready() is None and second.runner.not_ready() is None

        await until(both_assigned, "both replicas in the group")
        shares = sorted((_share(first), _share(second)))
        # The sandbox's window still counts the last calls made alone; together starts on
        # an empty one.
        sandbox.clear_rate_windows()
        started = datetime.now(tz=alone[-1].timestamp.tzinfo)
        await _publish(kafka, CUSTOMERS[ALONE:])
        outcomes = await _read(kafka.bootstrap_servers, kafka.outcomes_topic, ALONE + TOGETHER)
        together = _cart_calls(sandbox, since=started)
        paces = sorted((_pace(first), _pace(second)))
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await first.aclose()
        await second.aclose()

    refused_alone = sum(1 for c in alone if c.status == 429)
    refused_together = sum(1 for c in together if c.status == 429)
    print(
        f"\nlimit {LIMIT} a {WINDOW:g} s window; alone: pace {alone_pace:g}, "
        f"{len(alone)} calls, most {_most_in_a_window(alone)} in a window, "
        f"{refused_alone} 429s; together: paces {paces}, {len(together)} calls, "
        f"most {_most_in_a_window(together)} in a window, {refused_together} 429s"
    )
    statuses = {json.loads(r.value)["status"] for r in outcomes}
    assert statuses == {"completed"}
    # One replica alone paces at the whole limit and reaches it.
    assert alone_pace == LIMIT
    assert refused_alone == 0
    assert _most_in_a_window(alone) >= 0.8 * LIMIT
    # Two stay within it together: two partitions' worth and one's, rounded down.
    assert refused_together == 0
    assert _most_in_a_window(together) <= LIMIT
    assert shares == [pytest.approx(1 / PARTITIONS), pytest.approx(2 / PARTITIONS)]
    assert paces == [LIMIT * 1 // PARTITIONS, LIMIT * 2 // PARTITIONS]
    assert len(together) == TOGETHER
    assert first.runner.stats.records > ALONE
    assert second.runner.stats.records > 0
