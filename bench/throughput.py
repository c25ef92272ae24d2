"""The throughput bench: events a second, latency, API calls and the service's CPU and memory.

    PYTHONPATH=. .venv/bin/python bench/throughput.py [--events 20000] [--customers N]
        [--promotions 20] [--rate 1200] [--latency-ms 50] [--rate-limit N] [--bound N]
        [--linger-ms MS] [--naive-events 300] [--storm] [--mix loyalty|realistic] [--misroute]
        [--profile SECONDS] [--out bench/results/latest.json]

``make bench`` runs the defaults, ``make bench-storm`` the storm (``--storm``: 10,000 loyalty
returns published at once, 300 requests a minute per endpoint for the service's limiter and
the sandbox alike, result in ``bench/results/storm.json``). ``--storm --mix realistic``
(``make bench-storm MIX=realistic``) storms with ``make bench``'s mix instead: 5,000 events
at once, 1,500 requests a minute per endpoint, ``bench/results/storm-realistic.json``.
``--misroute`` publishes every event (warm-up included) on the partition after its key's
(``(java_partition(key, n) + 1) % n``), as a producer that partitions unlike Java would, so
the service copies every record to the routed topic before handling it: the worst case of
its repartition step (``PYTHONPATH=. .venv/bin/python bench/throughput.py --misroute --out
bench/results/misrouted.json``). ``--profile SECONDS`` (``make profile``) samples the service
with py-spy for the first SECONDS of the measured events (``profiling.py``), the profile in
the run's log folder and its top entries in the result. What one run does:

1. the broker of ``scripts/kafka.sh``, started if it is not running (and stopped again only
   then); fresh topics and a fresh consumer group for this run;
2. a seeded world (``bench_world.py``): the sandbox's seed, a policy with a rule for every
   promotion, the events, keyed by customer;
3. the sandbox in a child process (``--latency-ms`` on every call, ``--rate-limit`` when
   given) and ``return-handler run`` in a child process (``--bound`` and ``--linger-ms`` as
   its ``RETURN_HANDLER_CONCURRENCY__*``; its log under ``bench/results/logs/<run>/``);
4. once the service holds its partitions, the events are published as a steady stream of
   ``--rate`` events a second (``--rate 0``: all at once), and a read_committed consumer
   reads the outcomes. An event's latency is from the bench's send to the moment it reads
   the event's committed outcome;
5. when every event has an outcome (or ``--timeout`` passed): the service's CPU time and
   peak RSS from /proc and its ``return_handler_routed_total`` from /metrics, then it is
   stopped, the records of the routed topic are counted, and the sandbox's call log; the
   calls against the fewest the measured events' plans allow (``bound.py``);
6. the naive loop, on the first ``--naive-events`` events, against the sandbox reset to
   the same seed, on topics of its own: a plain aiokafka loop in this process that takes
   one event, plans it with the service's rules, makes one call per action with the
   service's executor, produces the outcome, commits the offset, and takes the next.

The result is printed and written as JSON (keys in docs/develop/benchmarks.md). A measurement,
not a test: nothing here judges the numbers. The exit status is 0 when every event got
exactly one outcome, 1 when not (the JSON says ``"complete": false``), 2 when the run could
not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from bench_world import BenchWorld, build_mix, build_storm
from bound import COUNTED, Bound, bound, fewest_calls, items_per_call, table
from harness import (
    HOST,
    RATE_LIMITS,
    ROOT,
    Broker,
    SandboxProcess,
    Service,
    Topics,
    Watcher,
    create_topics,
    delete_topics,
    process_usage,
    publish,
    run_once,
    say,
    service_env,
    set_name,
    wait_for_log_line,
)
from profiling import PY_SPY, PySpy
from pydantic import SecretStr

from service.actions import Action
from service.capillary.client import CapillaryClient
from service.capillary.config import CapillaryConfig, CapillaryRateLimits
from service.events import ReturnEvent
from service.kafka.partitioner import java_partition
from service.logging import configure_logging
from service.pipeline.execute import Executor
from service.pipeline.outcomes import build_outcome
from service.pipeline.records import Record
from service.policy_file import load_policy
from service.wiring import make_planner

RESULTS = ROOT / "bench" / "results"
SERVICE_INSTANCE_ID = "bench-1"
CALL_LOG_LIMIT = 5_000_000
"""Calls the sandbox remembers: every call of any run this bench makes."""
LOYALTY_ENDPOINTS = ("revoke_enrol_and_earn", "enrol_and_earn")
STORM_EVENTS = 10_000
STORM_RATE_LIMIT = 300
STORM_NAIVE_EVENTS = 100
STORM_REALISTIC_EVENTS = 5_000
STORM_REALISTIC_RATE_LIMIT = 1_500
"""A realistic storm's limit: the top of Capillary's regional defaults (300 to 1,500)."""
Mix = Literal["loyalty", "realistic"]
MIXES: tuple[Mix, ...] = ("loyalty", "realistic")
SERVICE_DEFAULT_BOUND = 1000
"""The service's own default of RETURN_HANDLER_CONCURRENCY__EVENTS_IN_FLIGHT, for the record."""
SERVICE_DEFAULT_LINGER_MS = 5.0
ROUTED_METRIC = "return_handler_routed_total"
"""Records the service copied to the routed topic (``service/observe/metrics.py``)."""
TRANSACTIONS_METRIC = 'return_handler_transactions_total{result="committed"}'
"""Kafka transactions the service committed (``service/observe/metrics.py``)."""


@dataclass(frozen=True)
class Options:
    """One run's knobs; see ``--help``."""

    events: int = 20_000
    customers: int | None = None
    promotions: int = 20
    rate: float = 1200.0
    latency_ms: float = 50.0
    rate_limit: int | None = None
    bound: int | None = None
    linger_ms: float | None = None
    naive_events: int = 300
    warmup: int = 10_000
    partitions: int = 3
    seed: int = 0
    timeout: float = 900.0
    storm: bool = False
    mix: Mix = "realistic"
    misroute: bool = False
    profile: int | None = None
    """Seconds of py-spy on the service from the first measured publish; None: no profile."""
    out: Path = RESULTS / "latest.json"
    service_env: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- measuring


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ascending values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _rate(count: int, seconds: float | None) -> float | None:
    return round(count / seconds, 1) if seconds and seconds > 0 else None


@dataclass
class Published:
    """What the publisher did: the send time of every event id (time.monotonic())."""

    sent_at: dict[str, float]
    first: float
    last: float


def misrouted_partition(key: bytes, partitions: int) -> int:
    """The partition after the one Java's partitioner gives ``key``: never the key's own."""
    return (java_partition(key, partitions) + 1) % partitions


async def publish_paced(
    bootstrap: str,
    topic: str,
    world: BenchWorld,
    rate: float,
    progress: dict[str, int],
    *,
    misroute_over: int | None = None,
) -> Published:
    """Every event once, keyed by customer, ``rate`` events a second (0: as fast as it can).

    The send time is taken when the event is handed to the producer; the producer batches
    for at most 5 ms, which counts in the latency, as it would for a real sender.
    ``misroute_over`` (the topic's partition count): every event on the partition after
    its key's, so the service routes every one.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    sent_at: dict[str, float] = {}
    try:
        pending = []
        start = time.monotonic()
        for n, ((key, value), event_id) in enumerate(
            zip(world.events, world.event_ids, strict=True)
        ):
            if rate > 0:
                # A steady stream: each event at its own moment, sleeping only when ahead by
                # more than a couple of milliseconds (finer sleeps cost more than they buy).
                ahead = start + n / rate - time.monotonic()
                if ahead > 0.002:
                    await asyncio.sleep(ahead)
            partition = misrouted_partition(key, misroute_over) if misroute_over else None
            sent_at[event_id] = time.monotonic()
            pending.append(await producer.send(topic, value=value, key=key, partition=partition))
            progress["published"] = n + 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    values = list(sent_at.values())
    return Published(sent_at=sent_at, first=min(values), last=max(values))


async def report_progress(progress: dict[str, int], watcher: Watcher, total: int) -> None:
    """A line every 5 s: events published, outcomes seen, outcomes a second since the last."""
    last_seen, last_time = 0, time.monotonic()
    while True:
        await asyncio.sleep(5)
        now, seen = time.monotonic(), watcher.progress
        say(
            f"published {progress.get('published', 0)}/{total}, outcomes {seen}/{total} "
            f"({(seen - last_seen) / (now - last_time):.0f}/s)"
        )
        last_seen, last_time = seen, now


async def wait_for_outcomes(
    watcher: Watcher, total: int, deadline: float, service: Service
) -> bool:
    """Until every event has an outcome (True) or ``deadline`` (monotonic) passes (False)."""
    while watcher.progress < total:
        service.check()
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def count_calls(calls: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Calls per endpoint, the 429s among them and the items a call carried, from the
    sandbox's call log."""
    by_endpoint = Counter(str(c.get("endpoint")) for c in calls)
    return {
        "total": len(calls),
        "by_endpoint": dict(sorted(by_endpoint.items())),
        "loyalty": sum(by_endpoint[name] for name in LOYALTY_ENDPOINTS),
        "http_429": sum(1 for c in calls if c.get("status") == 429),
        "items_per_call": items_per_call(calls),
    }


def metrics_port(log_path: Path) -> int | None:
    """The port of the service's /metrics, from its ``http_listening`` log line (it asked for
    any free port); None before the line is there."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if "http_listening" not in line:
            continue
        with contextlib.suppress(ValueError):
            data = json.loads(line)
            port = data.get("port") if isinstance(data, dict) else None
            if isinstance(port, int):
                return port
    return None


def counter_value(exposition: str, name: str) -> float | None:
    """The unlabelled sample ``name`` of a Prometheus text exposition; None if absent."""
    for line in exposition.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name:
            return float(value)
    return None


async def scrape_counters(service: Service) -> dict[str, float | None]:
    """The service's routed records and committed transactions now (``None``: unread)."""
    port = metrics_port(service.log_path)
    if port is None:
        return {"routed": None, "transactions": None}
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.get(f"http://{HOST}:{port}/metrics")
            response.raise_for_status()
    except httpx.HTTPError:
        return {"routed": None, "transactions": None}
    return {
        "routed": counter_value(response.text, ROUTED_METRIC),
        "transactions": counter_value(response.text, TRANSACTIONS_METRIC),
    }


def _since(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


async def count_records(bootstrap: str, topic: str, partitions: int) -> int:
    """Committed records of ``topic`` (aborted ones and transaction markers not counted)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        counted = 0
        deadline = time.monotonic() + 120
        for tp in tps:
            while await consumer.position(tp) < end[tp]:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"counting the records of {topic} took over 120 s")
                batches = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
                counted += len(batches.get(tp, []))
        return counted
    finally:
        await consumer.stop()


async def fetch_calls(admin: httpx.AsyncClient) -> dict[str, Any]:
    """Count the sandbox's call log (every call since the last clear)."""
    response = await admin.get("/__admin/calls", timeout=300)
    response.raise_for_status()
    counted = count_calls(response.json())
    if counted["total"] >= CALL_LOG_LIMIT:
        say(f"the sandbox's call log is full ({CALL_LOG_LIMIT}): api_calls is a lower bound")
    return counted


# --------------------------------------------------------------------------- the naive loop


async def run_naive(
    world: BenchWorld,
    count: int,
    policy_path: Path,
    bootstrap: str,
    sandbox_url: str,
    run_id: str,
    partitions: int,
    rate_limit: int | None,
    give_up_after: float,
) -> dict[str, Any]:
    """One event at a time, one call per action, one commit per event; events a second.

    Its own returns and outcomes topics, a plain consumer (no transactions, no state), the
    service's planner and executor over a plain ``CapillaryClient``. The clock runs from
    the first record read to the last commit, so joining the group is not counted.
    """
    returns, outcomes = f"bench-{run_id}-naive-returns", f"bench-{run_id}-naive-outcomes"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(t, num_partitions=partitions, replication_factor=1)
                for t in (returns, outcomes)
            ]
        )
    finally:
        await admin.close()
    policy = load_policy(policy_path)
    planner = make_planner(policy)
    limit = rate_limit or 1_000_000
    config = CapillaryConfig(
        loyalty_base_url=sandbox_url,
        gateway_base_url=sandbox_url,
        oauth_base_url=sandbox_url,
        username="demo",
        password=SecretStr("demo"),
        rate_limits=CapillaryRateLimits(**{name.lower(): limit for name in RATE_LIMITS}),
    )
    client = CapillaryClient(config)
    executor = Executor(client, flag_redeemed_for_clawback=policy.redeemed.flag_for_clawback)
    consumer = AIOKafkaConsumer(
        returns,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{run_id}-naive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    done = 0
    first: float | None = None
    last = 0.0
    try:
        await publish(bootstrap, returns, world.events[:count])
        await consumer.start()
        await producer.start()
        deadline = time.monotonic() + give_up_after
        while done < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(consumer.getone(), remaining)
            except TimeoutError:
                break
            started = time.monotonic()
            first = first if first is not None else started
            event = ReturnEvent.model_validate_json(message.value)
            plan = planner(event, datetime.now(UTC))
            results = await executor.execute(event, plan)
            record = Record(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
            )
            outcome = build_outcome(
                event,
                plan,
                results,
                outcome_id=uuid.uuid4(),
                record=record,
                processed_at=datetime.now(UTC),
                duration_ms=(time.monotonic() - started) * 1000,
            )
            await producer.send_and_wait(
                outcomes, outcome.model_dump_json().encode(), key=message.key
            )
            await consumer.commit(
                {TopicPartition(message.topic, message.partition): message.offset + 1}
            )
            done += 1
            last = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
        await client.aclose()
        with contextlib.suppress(KafkaError, TimeoutError, OSError):
            await delete_topics(bootstrap, [returns, outcomes])
    seconds = last - first if first is not None else None
    return {
        "events": done,
        "complete": done == count,
        "seconds": round(seconds, 2) if seconds is not None else None,
        "events_per_second": _rate(done, seconds),
    }


# --------------------------------------------------------------------------- the run


def _git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _world(options: Options, run_id: str) -> BenchWorld:
    rng = random.Random(f"{options.seed}-bench")
    if options.mix == "loyalty":
        return build_storm(options.events + options.warmup, rng, run_id)
    return build_mix(
        options.events + options.warmup,
        rng,
        run_id,
        customers=options.customers,
        promotions=options.promotions,
    )


def _split(world: BenchWorld, warmup: int) -> tuple[BenchWorld, BenchWorld]:
    """The warm-up events (the first ``warmup``) and the measured ones, over one seed."""
    return (
        replace(world, events=world.events[:warmup], event_ids=world.event_ids[:warmup]),
        replace(world, events=world.events[warmup:], event_ids=world.event_ids[warmup:]),
    )


def _plans(world: BenchWorld, policy_path: Path) -> list[list[Action]]:
    """The actions the rules plan for each event, in publishing order."""
    planner = make_planner(load_policy(policy_path))
    now = datetime.now(UTC)
    return [
        planner(ReturnEvent.model_validate_json(value), now).actions for _, value in world.events
    ]


def _planned_actions(plans: Sequence[Sequence[Action]]) -> dict[str, int]:
    """What the rules plan for the events, by action kind (reports by their kind)."""
    kinds: Counter[str] = Counter()
    for actions in plans:
        for action in actions:
            kind = type(action).__name__
            report = getattr(action, "report_kind", None)
            kinds[f"{kind}:{report}" if report is not None else kind] += 1
    return dict(sorted(kinds.items()))


async def run_bench(options: Options) -> dict[str, Any]:
    """One run; returns the result (also written to ``options.out`` by :func:`main`)."""
    set_name("bench")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    logs = RESULTS / "logs" / run_id
    logs.mkdir(parents=True, exist_ok=True)
    # The naive loop's client logs every call (structlog through the standard library), and
    # aiokafka logs reconnects: into a file, as JSON lines, not onto the terminal.
    configure_logging("INFO", "json")
    root = logging.getLogger()
    handler = logging.FileHandler(logs / "bench.log")
    handler.setFormatter(root.handlers[0].formatter)
    root.handlers[:] = [handler]
    say(f"run {run_id}, logs in {logs.relative_to(ROOT)}")

    world = _world(options, run_id)
    seed_file, policy_file = logs / "sandbox-seed.json", logs / "policy.yaml"
    seed_file.write_text(world.seed_json(), encoding="utf-8")
    policy_file.write_text(world.policy_yaml(), encoding="utf-8")
    plans = _plans(world, policy_file)
    planned = _planned_actions(plans)
    # The call log is cleared after the warm-up: the bound is the measured events' alone.
    fewest = fewest_calls(a for actions in plans[options.warmup :] for a in actions)
    say(f"{options.events} events: {world.mix}")

    broker = Broker(logs / "kafka.log")
    sandbox = SandboxProcess(
        seed_file,
        logs / "sandbox.log",
        latency_ms=options.latency_ms,
        rate_limit=options.rate_limit,
        call_log_limit=CALL_LOG_LIMIT,
    )
    topics = Topics.for_run(run_id, "bench")
    service: Service | None = None
    watcher: Watcher | None = None
    ticker: asyncio.Task[None] | None = None
    profiler: PySpy | None = None
    topics_made = False
    extra = list(options.service_env)
    if options.bound is not None:
        extra.insert(0, ("RETURN_HANDLER_CONCURRENCY__EVENTS_IN_FLIGHT", str(options.bound)))
    if options.linger_ms is not None:
        extra.insert(0, ("RETURN_HANDLER_CONCURRENCY__LINGER_MS", str(options.linger_ms)))
    try:
        await broker.ensure_up(restartable=False)
        await sandbox.start()
        say(f"sandbox on {sandbox.url}, {options.latency_ms:g} ms a call")
        env = service_env(
            topics,
            broker.bootstrap,
            sandbox.url,
            instance_id=SERVICE_INSTANCE_ID,
            policy=policy_file,
            rate_limits=(
                dict.fromkeys(RATE_LIMITS, options.rate_limit) if options.rate_limit else None
            ),
            extra=extra,
        )
        (logs / "service-env.json").write_text(
            json.dumps({k: v for k, v in env.items() if k.startswith("RETURN_HANDLER_")}, indent=2)
        )
        await create_topics(env, topics, options.partitions, broker.bootstrap, logs / "topics.log")
        topics_made = True

        watcher = Watcher(broker.bootstrap, topics)
        await watcher.start()
        service = Service(env, logs, time.monotonic())
        service.start()
        # Publishing before the service holds its partitions would time its start-up.
        if not await wait_for_log_line(service.log_path, "partitions_assigned", 90, service.proc):
            raise RuntimeError(
                f"the service did not join its group in 90 s; see {service.log_path}"
            )
        await asyncio.sleep(1.0)  # the partitions' set-up (transactions, state) after that
        warm, world = _split(world, options.warmup)
        misroute_over = options.partitions if options.misroute else None
        before = None
        counted_before: dict[str, float | None] = {"routed": 0.0, "transactions": 0.0}
        if options.warmup:
            # A broker just started (make bench starts one) compiles its hot paths for the
            # first ten seconds or so of load, and a new service opens its connections and
            # transactions: not the steady state measured. 2,000 events were too few: p99
            # 2.5 to 7 s from a fresh broker where 10,000 gave 1.5 s.
            say(f"service ready; warming up with {options.warmup} events (not measured)")
            await publish_paced(
                broker.bootstrap,
                topics.returns,
                warm,
                options.rate,
                {},
                misroute_over=misroute_over,
            )
            warm_deadline = time.monotonic() + options.timeout
            if not await wait_for_outcomes(watcher, options.warmup, warm_deadline, service):
                raise RuntimeError(f"the warm-up did not finish; see {service.log_path}")
            async with httpx.AsyncClient(base_url=sandbox.url, timeout=60.0) as admin:
                (await admin.delete("/__admin/calls")).raise_for_status()
            assert service.proc is not None
            before = process_usage(service.proc.pid)
            counted_before = await scrape_counters(service)
        say(
            "publishing the measured events"
            + (", each on the partition after its key's" if options.misroute else "")
        )

        progress: dict[str, int] = {}
        ticker = asyncio.create_task(report_progress(progress, watcher, options.events))
        if options.profile:
            assert service.proc is not None
            profiler = PySpy(service.proc.pid, options.profile, logs)
            profiler.start()
            say(f"py-spy samples the service (pid {service.proc.pid}) for {options.profile} s")
        published = await publish_paced(
            broker.bootstrap,
            topics.returns,
            world,
            options.rate,
            progress,
            misroute_over=misroute_over,
        )
        offered = _rate(options.events, published.last - published.first)
        deadline = published.first + options.timeout
        complete = await wait_for_outcomes(
            watcher, options.warmup + options.events, deadline, service
        )
        ticker.cancel()
        say(
            f"all {options.events} events have an outcome"
            if complete
            else f"timeout: {watcher.progress}/{options.events} events have an outcome"
        )
        # A late second outcome would be a bug; give one a moment to show.
        await asyncio.sleep(1.0)
        assert service.proc is not None
        usage = process_usage(service.proc.pid)
        counted_after = await scrape_counters(service)
        routed_after = counted_after["routed"]
        transactions = _since(counted_after["transactions"], counted_before["transactions"])
        profile: dict[str, Any] | None = None
        if profiler is not None:
            # Before the service stops: its shutdown is not what is profiled.
            profile = await profiler.finish()
            say(
                f"profile: {profile['error']}"
                if "error" in profile
                else f"profile: {profile['samples']} samples in {profile['path']}"
            )
        await service.stop()
        await watcher.stop()
        routed_records: int | None = None
        with contextlib.suppress(KafkaError, TimeoutError):
            routed_records = await count_records(
                broker.bootstrap, topics.routed, options.partitions
            )

        async with httpx.AsyncClient(base_url=sandbox.url, timeout=60.0) as admin:
            calls = await fetch_calls(admin)
            # The naive loop starts from the same seed, with an empty call log.
            (await admin.post("/__admin/reset")).raise_for_status()
            (await admin.delete("/__admin/calls")).raise_for_status()
            # The reset also empties the sandbox's rate windows of the service's calls.
            naive_count = min(options.naive_events, options.events)
            if naive_count:
                say(f"the naive loop on the first {naive_count} events")
            naive = (
                await run_naive(
                    world,
                    naive_count,
                    policy_file,
                    broker.bootstrap,
                    sandbox.url,
                    run_id,
                    options.partitions,
                    options.rate_limit,
                    options.timeout,
                )
                if naive_count
                else {"events": 0, "events_per_second": None}
            )
            naive |= {"api_calls": (await fetch_calls(admin))["total"]}

        measured = set(world.event_ids)
        arrivals: dict[str, float] = {}
        for seen in watcher.outcomes:
            if seen.event_id in measured:
                arrivals.setdefault(seen.event_id, seen.arrived)
        latencies = sorted(
            arrivals[e] - published.sent_at[e] for e in world.event_ids if e in arrivals
        )
        last_outcome = max(arrivals.values()) if arrivals else None
        clear = last_outcome - published.first if last_outcome is not None else None
        # The service's limiter and the sandbox both take --rate-limit on every endpoint.
        limits = dict.fromkeys(COUNTED, options.rate_limit) if options.rate_limit else None
        against_bound = bound(
            fewest,
            limits=limits,
            calls=calls["by_endpoint"],
            items=calls["items_per_call"],
            seconds_to_clear=round(clear, 2) if clear is not None else None,
        )
        events_per_second = _rate(len(arrivals), clear)
        cpu_seconds = (
            round(usage.cpu_seconds - (before.cpu_seconds if before else 0.0), 2) if usage else None
        )
        naive_rate = naive.get("events_per_second")
        per_event = {e: n for e, n in watcher.per_event.items() if e in measured}
        statuses = Counter(o.status for o in watcher.outcomes if o.event_id in measured)
        expected = measured
        result: dict[str, Any] = {
            "events": options.events,
            "events_per_second": events_per_second,
            "offered_events_per_second": offered,
            "seconds_to_clear": round(clear, 2) if clear is not None else None,
            "p50_ms": _ms(percentile(latencies, 50)),
            "p95_ms": _ms(percentile(latencies, 95)),
            "p99_ms": _ms(percentile(latencies, 99)),
            "max_ms": _ms(latencies[-1] if latencies else None),
            "api_calls": calls["total"],
            "api_calls_per_event": round(calls["total"] / options.events, 4),
            "loyalty_calls_per_event": round(calls["loyalty"] / options.events, 4),
            "api_calls_by_endpoint": calls["by_endpoint"],
            "http_429": calls["http_429"],
            "service_cpu_seconds": cpu_seconds,
            "service_cpu_ms_per_event": (
                round(cpu_seconds * 1000 / options.events, 3) if cpu_seconds is not None else None
            ),
            "warmup_events": options.warmup,
            # Each costs the client CPU (about 0.9 ms, make bench-floor): few per event matters.
            "transactions_per_event": (
                round(transactions / options.events, 4) if transactions is not None else None
            ),
            "service_peak_rss_mb": usage.peak_rss_mb if usage else None,
            "latency_ms": options.latency_ms,
            "rate_limit_per_minute": options.rate_limit,
            "events_in_flight": options.bound or SERVICE_DEFAULT_BOUND,
            "linger_ms": options.linger_ms
            if options.linger_ms is not None
            else SERVICE_DEFAULT_LINGER_MS,
            "misrouted": options.misroute,
            "routed": {
                # The metric is the service's own count (the measured events: the warm-up's
                # taken off); the topic count is what Kafka holds, warm-up included.
                "metric_total": routed_after,
                "metric_measured": _since(routed_after, counted_before["routed"]),
                "topic_records": routed_records,
            },
            "naive_events_per_second": naive_rate,
            "ratio_to_naive": (
                round(events_per_second / naive_rate, 1)
                if events_per_second and naive_rate
                else None
            ),
            "naive": naive,
            "complete": complete
            and len(expected - set(per_event)) == 0
            and all(n == 1 for n in per_event.values()),
            "outcomes": sum(per_event.values()),
            "outcomes_by_status": dict(sorted(statuses.items())),
            "events_without_outcome": len(expected - set(per_event)),
            "events_with_more_than_one_outcome": sum(1 for n in per_event.values() if n > 1),
            "dead_letters": len(watcher.dead_letters),
            "service_restarts": len(service.unexpected_exits),
            "bound": against_bound.model_dump(mode="json"),
            "profile": profile,
            "mix": world.mix,
            "planned_actions": planned,
            "options": {
                k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()
            },
            "machine": {
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "git": _git_commit(),
            "run": run_id,
            "logs": str(logs.relative_to(ROOT)),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return result
    finally:
        if ticker is not None:
            ticker.cancel()
        if profiler is not None:
            profiler.stop_now()
        if service is not None:
            await service.stop()
        if watcher is not None:
            with contextlib.suppress(KafkaError, asyncio.CancelledError, TimeoutError):
                await watcher.stop()
        sandbox.stop()
        if topics_made:
            with contextlib.suppress(KafkaError, TimeoutError, OSError):
                await delete_topics(broker.bootstrap, topics.names())
        broker.stop_if_started()


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """The options; ``--storm`` (and ``--mix`` with it) changes the defaults of the options
    not given."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--events", type=int, help="events to publish (20,000; storm: 10,000, realistic 5,000)")
    add("--customers", type=int, help="distinct customers (default: one per event)")
    add("--promotions", type=int, default=20, help="loyalty promotions of the mix (20)")
    add("--rate", type=float, help="events a second published; 0: all at once (1,200; storm: 0)")
    add("--latency-ms", type=float, default=50.0, help="sandbox latency per call (50)")
    add(
        "--rate-limit",
        type=int,
        help="requests a minute per endpoint (none; storm: 300, realistic 1,500)",
    )
    add("--bound", type=int, help="the service's events in flight (its default)")
    add("--linger-ms", type=float, help="the service's linger of bulk calls (its default)")
    add("--naive-events", type=int, help="events of the naive loop (300; storm: 100)")
    add("--warmup", type=int, help="unmeasured events before the measured (10,000; storm: 0)")
    add("--partitions", type=int, default=3, help="partitions of every topic (3)")
    add("--seed", type=int, default=0, help="seed of the generated world (0)")
    add("--timeout", type=float, default=900.0, help="most seconds from first publish (900)")
    add("--storm", action="store_true", help="10,000 loyalty returns at once, 300 a minute")
    add(
        "--mix",
        choices=MIXES,
        help="the events: loyalty (the storm's default) or realistic (make bench's mix; "
        "with --storm: 5,000 at once, 1,500 a minute)",
    )
    add(
        "--misroute",
        action="store_true",
        help="every event on the partition after its key's: the service routes every one",
    )
    add(
        "--out",
        type=Path,
        help="result JSON (bench/results/latest.json; storm: storm.json, "
        "storm-realistic.json; misroute: misrouted.json, storm-misrouted.json, "
        "storm-realistic-misrouted.json)",
    )
    add(
        "--profile",
        type=int,
        metavar="SECONDS",
        help="py-spy on the service for SECONDS from the first measured publish (none)",
    )
    add("--service-env", action="append", default=[], metavar="NAME=VALUE", help="repeatable")
    args = parser.parse_args(argv)
    pairs = []
    for item in args.service_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--service-env wants NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    storm = bool(args.storm)
    misroute = bool(args.misroute)
    mix: Mix = args.mix or ("loyalty" if storm else "realistic")
    if mix == "loyalty" and not storm:
        parser.error("--mix loyalty is the storm's: add --storm")
    realistic_storm = storm and mix == "realistic"
    default_out = ("storm-realistic" if realistic_storm else "storm") if storm else "latest"
    if misroute:
        default_out = f"{default_out}-misrouted" if storm else "misrouted"

    def pick(given: Any, normal: Any, in_storm: Any) -> Any:
        return given if given is not None else (in_storm if storm else normal)

    options = Options(
        events=pick(
            args.events,
            20_000,
            STORM_REALISTIC_EVENTS if realistic_storm else STORM_EVENTS,
        ),
        customers=args.customers,
        promotions=args.promotions,
        rate=pick(args.rate, 1200.0, 0.0),
        latency_ms=args.latency_ms,
        rate_limit=pick(
            args.rate_limit,
            None,
            STORM_REALISTIC_RATE_LIMIT if realistic_storm else STORM_RATE_LIMIT,
        ),
        bound=args.bound,
        linger_ms=args.linger_ms,
        naive_events=pick(args.naive_events, 300, STORM_NAIVE_EVENTS),
        warmup=pick(args.warmup, 10_000, 0),
        partitions=args.partitions,
        seed=args.seed,
        timeout=args.timeout,
        storm=storm,
        mix=mix,
        misroute=misroute,
        profile=args.profile,
        out=args.out if args.out is not None else RESULTS / f"{default_out}.json",
        service_env=tuple(pairs),
    )
    if options.events < 1 or options.partitions < 1 or options.timeout <= 0 or options.rate < 0:
        parser.error("--events and --partitions must be >= 1, --timeout > 0, --rate >= 0")
    if options.naive_events < 0 or options.warmup < 0:
        parser.error("--naive-events and --warmup must be >= 0")
    if options.bound is not None and options.bound < 1:
        parser.error("--bound must be >= 1")
    if options.misroute and options.partitions < 2:
        parser.error("--misroute needs --partitions >= 2: one partition is every key's")
    if options.profile is not None and options.profile < 1:
        parser.error("--profile must be >= 1 second")
    if options.profile and not PY_SPY.exists():
        parser.error(f"--profile needs {PY_SPY.relative_to(ROOT)}: make venv (the dev extra)")
    return replace(options)


def summary(result: dict[str, Any]) -> str:
    """One line for people."""
    return (
        f"{result['events']} events: {result['events_per_second']} events/s "
        f"(naive {result['naive_events_per_second']}, x{result['ratio_to_naive']}), "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
        f"{result['api_calls_per_event']} calls/event, {result['http_429']} 429s, "
        f"service {result['service_cpu_seconds']} CPU s "
        f"({result['service_cpu_ms_per_event']} ms an event, "
        f"{result['transactions_per_event']} transactions an event), "
        f"{result['service_peak_rss_mb']} MB"
        + (
            f", misrouted: {result['routed']['metric_measured']} routed"
            if result.get("misrouted")
            else ""
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run once; 0 when every event got exactly one outcome, 1 when not, 2 on an error."""
    set_name("bench")
    options = parse_args(argv)
    result = run_once(run_bench(options), options.out)
    if result is None:
        return 2
    say(summary(result))
    for line in table(Bound.model_validate(result["bound"])):
        say(line)
    if not result["complete"]:
        say(f"INCOMPLETE: not every event got exactly one outcome; result in {options.out}")
        return 1
    say(f"result in {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
