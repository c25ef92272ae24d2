"""The CPU floor: what the service's libraries alone cost per event, before any of its logic.

    PYTHONPATH=. .venv/bin/python bench/floor.py [--events 20000] [--per-transaction 4]
        [--max-poll-records 200] [--out bench/results/floor.json]

``make bench``'s events (``throughput._world``: its generator, seed and sizes, the last
``--events`` of them) through the libraries the service must use, in one process (under
uvloop, the service's loop), CPU from ``time.process_time()`` around each phase:

* consume: an ``AIOKafkaConsumer`` set as the service's (read_committed, no auto-commit,
  ``max_poll_records``) assigned the input's 3 partitions, ``getmany`` until all are read;
* validate: ``ReturnEvent.model_validate_json`` of every value (the service's call), then
  one ``model_dump_json()`` of each event, standing for the outcome's one serialisation;
* produce: a transactional producer per partition (the committer's options); per
  ``--per-transaction`` events one transaction of ~150-byte "started" states, then one of
  the outcomes (1.5x the event's bytes), ~200-byte "done" states and the input's offsets;
* http: round(0.65 x N) POSTs (``make bench``'s calls per event) of ~400 bytes to the
  sandbox's loyalty revoke (50 ms a call), 64 in flight, by ``httpx.AsyncClient`` over the
  service's ``AiohttpTransport``; ``http_direct``: the same straight on the transport, as the
  service's ``HttpPools`` sends (no ``AsyncClient`` layers), with a total of its own.

A lower bound of the service's CPU per event: library work only, at full speed, in big
batches (a backlog read 200 records a poll, transactions back to back), no service logic.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from bench_world import BenchWorld
from harness import ROOT, Broker, SandboxProcess, delete_topics, publish, run_once, say, set_name
from throughput import Options, _git_commit, _split, _world

from service.capillary.transport import AiohttpTransport
from service.events import ReturnEvent

RESULTS = ROOT / "bench" / "results"
TARGET_MS = 0.4
CALLS_PER_EVENT = 0.65
"""Vendor calls per event that ``make bench`` measures."""
IN_FLIGHT = 64
PARTITIONS = 3
PATH = "/v2/promotion/bulk/revokeEnrolAndEarn"
HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
HEADERS["Authorization"] = "Basic " + base64.b64encode(b"demo:demo").decode()
CONSUMER: dict[str, Any] = {"enable_auto_commit": False, "isolation_level": "read_committed"}
CONSUMER |= {"auto_offset_reset": "earliest", "metadata_max_age_ms": 30_000}
"""The service's consumer settings (service/kafka/source.py) that matter here."""
PRODUCER: dict[str, Any] = {"enable_idempotence": True, "acks": "all", "linger_ms": 5}
"""The committer's transactional producer options (service/kafka/committer.py)."""
PHASES = ("consume", "validate", "produce", "http", "http_direct")
Timing = dict[str, float]


@contextlib.contextmanager
def measure(into: Timing) -> Iterator[None]:
    """Adds the block's CPU seconds (this process, user and system) and wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield
    finally:
        into["cpu_seconds"] = into.get("cpu_seconds", 0.0) + time.process_time() - cpu
        into["wall_seconds"] = into.get("wall_seconds", 0.0) + time.perf_counter() - wall


def sized(head: str, size: int) -> bytes:
    """A JSON object of ``size`` bytes that starts with ``head`` (padded by one field)."""
    prefix = ("{" + head + ',"pad":"').encode()
    return prefix + b"x" * max(0, size - len(prefix) - 2) + b'"}'


def revoke_bodies(world: BenchWorld) -> list[bytes]:
    """Loyalty REVOKE_EARN bodies of about 400 bytes: earns of 4 customers of one promotion."""
    earns: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for earn in world.seed.loyalty_earns:
        earns[earn.promotion_id][earn.customer_id].append(earn.earn_id)
    bodies = []
    for promotion, by_customer in sorted(earns.items()):
        entries = [
            {"identifierValue": str(c), "source": "INSTORE", "earnIds": ids}
            for c, ids in by_customer.items()
        ]
        head: dict[str, Any] = {"type": "CUSTOMER", "bulkAction": "REVOKE_EARN"}
        head |= {
            "identifierName": "id",
            "promotionDetails": {"programId": 2714, "promotionId": promotion},
        }
        for at in range(0, len(entries), 4):
            body = head | {"customers": entries[at : at + 4]}
            bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


async def consume(bootstrap: str, topic: str, n: int, max_poll: int, t: Timing) -> list[Any]:
    """The ``n`` records of ``topic``, read as the service's consumer reads."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, max_poll_records=max_poll, **CONSUMER)
    await consumer.start()
    records: list[Any] = []
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    deadline = time.monotonic() + 120
    try:
        with measure(t):  # from the assignment on: its fetcher starts there
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while len(records) < n and time.monotonic() < deadline:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    records.extend(batch)
                t["polls"] = t.get("polls", 0) + 1
    finally:
        await consumer.stop()
    if len(records) != n:
        raise RuntimeError(f"read {len(records)} records of {n} in 120 s")
    return records


def validate(values: Sequence[bytes], t: Timing) -> list[ReturnEvent]:
    """The service's validation of every value, then one JSON dump of each event."""
    with measure(t):
        events = [ReturnEvent.model_validate_json(v) for v in values]
    t["validate_cpu_seconds"] = t["cpu_seconds"]
    with measure(t):
        for event in events:
            event.model_dump_json()
    return events


Read = Sequence[tuple[Any, ReturnEvent]]
"""The records consumed and their events."""
Item = tuple[Any, bytes, bytes, bytes]
"""A consumed record, its "started" state, its outcome, its "done" state."""


async def produce(bootstrap: str, read: Read, names: dict[str, str], per: int, t: Timing) -> None:
    """Two transactions per ``per`` events of a partition; the partitions at once."""
    parts: dict[int, list[Item]] = defaultdict(list)
    for r, e in read:  # the values made before the clock starts
        head, size = f'"event_id":"{e.event_id}",', len(r.value) * 3 // 2
        states = sized(head + '"phase":"started"', 150), sized(head + '"phase":"done"', 200)
        parts[r.partition].append((r, states[0], sized(head + '"outcome":1', size), states[1]))
    producers = {
        p: AIOKafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=f"{names['group']}-{p}", **PRODUCER
        )
        for p in parts
    }

    async def partition(p: int, items: list[Item]) -> None:
        producer, state = producers[p], names["state"]
        for at in range(0, len(items), per):
            batch = items[at : at + per]
            await producer.begin_transaction()
            sent = [await producer.send(state, s, r.key, partition=p) for r, s, _, _ in batch]
            for fut in sent:
                await fut
            await producer.commit_transaction()
            await producer.begin_transaction()
            # The committer's order: outcomes acknowledged, then the states naming them.
            for sent in (
                [await producer.send(names["outcomes"], o, r.key) for r, _, o, _ in batch],
                [await producer.send(state, d, r.key, partition=p) for r, _, _, d in batch],
            ):
                for fut in sent:
                    await fut
            offsets = {TopicPartition(names["returns"], p): batch[-1][0].offset + 1}
            await producer.send_offsets_to_transaction(offsets, names["group"])
            await producer.commit_transaction()
            t["transactions"] = t.get("transactions", 0) + 2

    try:
        for producer in producers.values():
            await producer.start()  # transactional ids initialised: not measured
        with measure(t):
            await asyncio.gather(*(partition(p, items) for p, items in parts.items()))
    finally:
        for producer in producers.values():
            await producer.stop()


async def http(
    url: str, bodies: Sequence[bytes], calls: int, direct: bool, t: Timing
) -> Counter[int]:
    """``calls`` POSTs, ``IN_FLIGHT`` at once, after a warm-up that opens the connections;
    the measured answers' statuses."""
    transport = AiohttpTransport(max_connections=IN_FLIGHT)
    client = httpx.AsyncClient(transport=transport, base_url=url, timeout=30.0)
    timeouts = httpx.Timeout(30.0).as_dict()

    async def call(body: bytes) -> int:
        if not direct:
            return (await client.post(PATH, content=body, headers=HEADERS)).status_code
        request = httpx.Request("POST", url + PATH, headers=HEADERS, content=body)
        request.extensions["timeout"] = timeouts
        response = await transport.handle_async_request(request)
        await response.aread()
        await response.aclose()
        return response.status_code

    async def run(numbers: Iterator[int], statuses: Counter[int]) -> Counter[int]:
        async def worker() -> None:
            for i in numbers:  # shared: each number goes to one worker
                statuses[await call(bodies[i % len(bodies)])] += 1

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return statuses

    try:
        await run(iter(range(calls, calls + 2 * IN_FLIGHT)), Counter())
        with measure(t):
            return await run(iter(range(calls)), Counter())
    finally:
        await client.aclose()


async def run_floor(args: argparse.Namespace) -> dict[str, Any]:
    """One run: the phases in order; what the run started stopped again, its topics deleted."""
    set_name("floor")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    logs = RESULTS / "logs" / f"floor-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    world = _split(_world(Options(events=args.events), run_id), Options().warmup)[1]
    (seed_file := logs / "sandbox-seed.json").write_text(world.seed_json(), encoding="utf-8")
    names = {k: f"floor-{run_id}-{k}" for k in ("returns", "outcomes", "state", "group")}
    topics = [names["returns"], names["outcomes"], names["state"]]
    n, calls = len(world.events), round(CALLS_PER_EVENT * len(world.events))
    broker = Broker(logs / "kafka.log")
    sandbox = SandboxProcess(seed_file, logs / "sandbox.log", latency_ms=50.0)
    made, t = False, {phase: Timing() for phase in PHASES}
    statuses: dict[str, dict[str, int]] = {}
    try:
        await broker.ensure_up(restartable=False)
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=20_000)
        await admin.start()
        try:
            made = True
            await admin.create_topics([NewTopic(x, PARTITIONS, 1) for x in topics])
        finally:
            await admin.close()
        say(f"run {run_id}: publishing {n} events (not measured)")
        await publish(broker.bootstrap, names["returns"], world.events)
        say("consume, validate")
        records = await consume(broker.bootstrap, topics[0], n, args.max_poll_records, t["consume"])
        events = validate([r.value for r in records], t["validate"])
        say(f"produce, {args.per_transaction} events a transaction")
        read = list(zip(records, events, strict=True))
        await produce(broker.bootstrap, read, names, args.per_transaction, t["produce"])
        await sandbox.start()
        bodies = revoke_bodies(world)
        for phase in PHASES[3:]:
            async with httpx.AsyncClient(base_url=sandbox.url) as admin_http:
                (await admin_http.post("/__admin/reset")).raise_for_status()  # the seed again
            say(f"{phase}: {calls} calls, {IN_FLIGHT} in flight")
            answers = await http(sandbox.url, bodies, calls, phase == "http_direct", t[phase])
            statuses[phase] = {str(k): v for k, v in sorted(answers.items())}
    finally:
        sandbox.stop()
        if made:
            with contextlib.suppress(KafkaError, TimeoutError, OSError):
                await delete_topics(broker.bootstrap, topics)
        broker.stop_if_started()

    phases: dict[str, dict[str, Any]] = {}
    for phase, timing in t.items():
        phases[phase] = {k: round(v, 4) for k, v in timing.items()}
        phases[phase]["ms_per_event"] = round(timing["cpu_seconds"] * 1000 / n, 4)
        if phase in statuses:
            per_call = round(timing["cpu_seconds"] * 1000 / calls, 4)
            phases[phase] |= {"calls": calls, "cpu_ms_per_call": per_call}
            phases[phase]["statuses"] = statuses[phase]
    kafka_pydantic = sum(phases[p]["ms_per_event"] for p in PHASES[:3])
    total, direct = (kafka_pydantic + phases[p]["ms_per_event"] for p in PHASES[3:])
    return {
        "events": n,
        "target_ms_per_event": TARGET_MS,
        "total_ms_per_event": round(total, 4),
        "total_direct_ms_per_event": round(direct, 4),
        "phases": phases,
        "event_bytes_mean": round(sum(len(v) for _, v in world.events) / n, 1),
        "http_endpoint": PATH,
        "http_body_bytes_mean": round(sum(map(len, bodies)) / len(bodies), 1),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "platform": platform.platform(),
        "git": _git_commit(),
        "run": run_id,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run once, print the table; 2 when the run could not finish."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events measured (20,000)")
    parser.add_argument("--per-transaction", type=int, default=4, help="events a transaction")
    parser.add_argument("--max-poll-records", type=int, default=200, help="the service's (200)")
    parser.add_argument("--out", type=Path, default=RESULTS / "floor.json")
    args = parser.parse_args(argv)
    if min(args.events, args.per_transaction, args.max_poll_records) < 1:
        parser.error("--events, --per-transaction and --max-poll-records must be >= 1")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # the service's loop (service/cli.py)
    result = run_once(run_floor(args), args.out)
    if result is None:
        return 2
    say(f"{'phase':<12} {'CPU s':>7} {'ms/event':>9} {'wall s':>7}")
    for name, p in result["phases"].items():
        cpu, ms, wall = p["cpu_seconds"], p["ms_per_event"], p["wall_seconds"]
        say(f"{name:<12} {cpu:>7.2f} {ms:>9.3f} {wall:>7.1f}")
    for label in ("total", "total_direct"):
        ms = result[f"{label}_ms_per_event"]
        say(f"{label:<12} {'':>7} {ms:>9.3f}  (target {TARGET_MS} ms per event)")
    say(f"http statuses: {result['phases']['http']['statuses']}; result in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
