"""Chaos run: does the service lose nothing and do nothing twice while things break?

    PYTHONPATH=. .venv/bin/python bench/chaos.py [--events 5000] [--kills 5]
        [--broker-restart/--no-broker-restart] [--error-window 30] [--auth-window 20]
        [--seed N] [--partitions 3] [--rate 100] [--timeout S] [--out bench/results/chaos.json]

``make chaos`` runs the defaults, ``make chaos-short`` a few hundred events with one kill
and one 503 window. What one run does:

1. the broker that ``scripts/kafka.sh`` manages (``KAFKA_PORT``, ``KAFKA_HOME_DIR`` as that
   script reads them), started if it is not running and stopped again only then;
2. fresh topics with this run's names (``return-handler topics``, plus the state and retry
   topics if that command does not create them), a fresh consumer group;
3. the Capillary sandbox in a child process with a generated seed, and as many events as
   asked for (``chaos_world.py``: every return has its own customer and benefits, so the
   sandbox's final state and ledger say exactly what each event did; some returns are
   cancelled later, some twice, some by a cancellation published on another partition than
   its key's; some cancellations are of returns made before the run; some events are
   replayed with an operator's replay headers);
4. ``return-handler run`` in a child process (restarted at once when it dies, as a pod
   would be), the world's stream published keyed by customer at ``--rate`` events a second
   (so the disturbances land while events are in flight), its late records (other-partition
   cancellations, replays) once their point of the progress and the outcomes they wait for
   have come, a replay of every event whose outcome was failed, and then, at random moments
   of the progress (seeded): SIGKILL of the service and an immediate restart (``--kills``),
   one broker restart (``kafka.sh down`` then ``up``; nothing is published meanwhile), a
   window of 503s on every business endpoint (``--error-window`` seconds) and a window of
   401s on everything, as a rotated secret would give (``--auth-window`` seconds). One
   disturbance at a time; after a kill the next waits until the restarted service has
   published;
5. waits (at most ``--timeout`` seconds) until a read_committed consumer of the outcomes
   topic has seen an outcome for every event and every replay, then prints and writes the
   result as JSON.

Harm counts (all must be 0, and ``committed_outcomes == expected_outcomes``, for
``harm_free``): ``events_with_more_than_one_outcome`` (an event, or one replay of it, with
more than one outcome), ``events_without_outcome`` (an event or a replay without one),
``benefits_revoked_more_than_once`` and ``earns_issued_more_than_once`` (from the sandbox's
ledger against what the events asked for), ``earns_issued_never_revoked`` (a promotion and
customer issued more earns than the run revoked of theirs: an earn given back for something
the service never took), ``deactivations_repeated`` (the sandbox's ledger: a deactivation
asked again once done), ``benefits_due_not_revoked`` (a benefit a take-back event listed,
not redeemed in the seed, still not revoked at the end, while its return's outcome is
neither needs_check nor failed: a silent loss), ``give_back_earns_not_issued_unflagged`` (an
earn a cancellation was due to issue, not issued, while no outcome of the return's
cancellations is needs_check or failed: a silent loss; a cancellation of this run's return
answered return_unknown is one), ``given_back_benefits_revoked_again`` (an earn or
enrolment a give-back made, taken back again: a return run again after its cancellation)
and ``failed_outcomes``. The exit status is 0 only when the run is harm free, 1 when it is
not, 2 when it could not run. Everything the run started is stopped again, also on Ctrl-C,
SIGTERM or an error, and its topics are deleted (``--keep-topics`` keeps them). Logs of
every child process are kept in ``.cache/chaos/<run>/``.

The broker restart stops the broker for everyone using it: to keep other work on the
default broker undisturbed, point the run at a broker of its own with ``KAFKA_PORT``,
``KAFKA_CONTROLLER_PORT`` and ``KAFKA_HOME_DIR``, which ``scripts/kafka.sh`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from chaos_world import (
    CANCELLATION,
    CANCELLED_RETURN,
    FAILED,
    OTHER_PARTITION_CANCELLATION,
    REPLAY,
    RETURN,
    SECOND_CANCELLATION,
    UNKNOWN_CANCELLATION,
    ChaosWorld,
    Outgoing,
    build_world,
    replay_of,
)
from harness import (
    ROOT,
    Broker,
    SandboxProcess,
    Service,
    Topics,
    Watcher,
    create_topics,
    delete_topics,
    run_once,
    say,
    set_name,
)
from harness import service_env as harness_service_env

SERVICE_INSTANCE_ID = "chaos-1"
FLAGGED = frozenset({"needs_check", "failed"})
"""Outcome statuses that tell an operator to look: a give-back they leave out is not silent."""
HARMS = (
    "events_with_more_than_one_outcome",
    "events_without_outcome",
    "benefits_revoked_more_than_once",
    "earns_issued_more_than_once",
    "earns_issued_never_revoked",
    "deactivations_repeated",
    "benefits_due_not_revoked",
    "give_back_earns_not_issued_unflagged",
    "given_back_benefits_revoked_again",
    "failed_outcomes",
)
"""The counts that must all be 0 for ``harm_free``."""


@dataclass(frozen=True)
class Options:
    """One run's knobs; see ``--help``."""

    events: int = 5000
    kills: int = 5
    broker_restart: bool = True
    error_window: float = 30.0
    auth_window: float = 20.0
    seed: int = 0
    partitions: int = 3
    rate: float = 100.0
    timeout: float = 1800.0
    out: Path = ROOT / "bench" / "results" / "chaos.json"
    cancel_share: float = 0.2
    unknown_share: float = 0.03
    replay_share: float = 0.04
    session_timeout_ms: int | None = None
    service_env: tuple[tuple[str, str], ...] = ()
    keep_topics: bool = False


def service_env(
    options: Options, topics: Topics, bootstrap: str, sandbox_url: str
) -> dict[str, str]:
    """The service's environment: this run's topics, the sandbox, the demo policy.

    The client's own limiter (300 a minute per endpoint by default) would make the run last
    an hour and measure nothing of interest here: the sandbox has no limit either, so every
    limit is lifted. ``--service-env`` adds to (or overrides) what is set here.
    """
    return harness_service_env(
        topics,
        bootstrap,
        sandbox_url,
        instance_id=SERVICE_INSTANCE_ID,
        session_timeout_ms=options.session_timeout_ms,
        extra=options.service_env,
    )


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Seen:
    """What the judge needs of one committed outcome."""

    event_id: str
    status: str
    replay_id: str | None = None
    """The replay it answers; ``None`` for the event's own delivery."""
    reports: frozenset[str] = frozenset()
    """The report kinds of its actions (already_cancelled, cancelled_since...)."""
    record: str | None = None
    """The producer's record it answers, ``topic:partition:offset`` (for a post-mortem)."""


class ChaosWatcher(Watcher):
    """The harness's watcher, also keeping which replay each outcome answers and its reports."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        super().__init__(bootstrap, topics)
        self.seen: list[Seen] = []
        self.answered: set[tuple[str, str | None]] = set()
        """(event id, replay id) of every outcome."""
        self.failed: list[str] = []
        """Event ids with a failed outcome, in the order they came."""

    def _take(self, value: bytes | None, now: float) -> None:
        before = len(self.outcomes)
        super()._take(value, now)
        if len(self.outcomes) == before:
            return  # unreadable: counted by the harness's watcher
        outcome: dict[str, Any] = json.loads(value or b"")
        replay = outcome.get("replay") or {}
        actions: list[dict[str, Any]] = outcome.get("actions") or []
        last = self.outcomes[-1]
        record = outcome["event"].get("record") or {}
        seen = Seen(
            event_id=last.event_id,
            status=last.status,
            replay_id=str(replay["replay_id"]) if replay.get("replay_id") else None,
            reports=frozenset(str(a["report_kind"]) for a in actions if a.get("report_kind")),
            record=f"{record['topic']}:{record['partition']}:{record['offset']}"
            if record
            else None,
        )
        self.seen.append(seen)
        self.answered.add((seen.event_id, seen.replay_id))
        if seen.status == "failed":
            self.failed.append(seen.event_id)


# --------------------------------------------------------------------------- publishing


class Feeder:
    """Publishes the world: the stream at ``rate`` events a second, the late records when due.

    A late record is due once ``at_progress`` events have an outcome and every event of its
    ``after`` has one. Every event whose outcome is failed is replayed once (a failed outcome
    is a harm anyway; the replay shows whether the event can be finished). ``lock`` is held
    while records are in flight: the broker restart takes it, so nothing is published while
    the broker is down and no send is left uncertain by it (a send retried after an
    uncertain failure could publish a record twice).
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        world: ChaosWorld,
        watcher: ChaosWatcher,
        rate: float,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._partitions = partitions
        self._world = world
        self._watcher = watcher
        self._rate = rate
        self._next = 0
        self._late = list(world.late)
        self._replayed_failed: set[str] = set()
        self._producer: AIOKafkaProducer | None = None
        self.lock = asyncio.Lock()
        self.published: list[Outgoing] = []

    @property
    def idle(self) -> bool:
        """Everything published, and no failed outcome left to replay."""
        return (
            self._next >= len(self._world.stream)
            and not self._late
            and not self._failed_to_replay()
        )

    def replays_answered(self) -> bool:
        """Every replay published so far has an outcome."""
        answered = self._watcher.answered
        return all(
            (r.event_id, r.replay_id) in answered for r in self.published if r.kind == REPLAY
        )

    def _failed_to_replay(self) -> list[str]:
        return [e for e in dict.fromkeys(self._watcher.failed) if e not in self._replayed_failed]

    def _due(self, started: float) -> tuple[list[Outgoing], list[Outgoing]]:
        """(stream records due by now, late records and replays of failed events ready)."""
        stream = self._world.stream
        if self._rate > 0:
            upto = min(len(stream), int((time.monotonic() - started) * self._rate) + 1)
        else:
            upto = len(stream)
        watcher = self._watcher
        ready = [
            r
            for r in self._late
            if watcher.progress >= r.at_progress and all(e in watcher.per_event for e in r.after)
        ]
        for event_id in self._failed_to_replay():
            self._replayed_failed.add(event_id)
            number = len(self._replayed_failed)
            replay_id = f"chaos-{self._world.run_id}-replay-failed-{number}"
            ready.append(replay_of(self._world.original(event_id), replay_id, number, FAILED))
        return stream[self._next : upto], ready

    async def run(self, deadline: float, service: Service) -> None:
        """Publish until cancelled (failed outcomes may come until the very end)."""
        started = time.monotonic()
        try:
            while True:
                service.check()
                due, ready = self._due(started)
                if due or ready:
                    await self._send([*due, *ready], deadline)
                    self._next += len(due)
                    if due and self._next == len(self._world.stream):
                        say(f"published the stream ({self._next} records) to {self._topic}")
                    sent = {id(r) for r in ready}
                    self._late = [r for r in self._late if id(r) not in sent]
                # Pacing, not synchronisation: the stream's next slice is due in 50 ms.
                await asyncio.sleep(0.05)
        finally:
            if self._producer is not None:
                with contextlib.suppress(KafkaError, TimeoutError):
                    await asyncio.wait_for(self._producer.stop(), 10)

    async def _send(self, batch: Sequence[Outgoing], deadline: float) -> None:
        """Every record once; what failed is sent again by a new producer, in order."""
        remaining = list(batch)
        async with self.lock:
            while True:
                remaining = await self._try(remaining)
                if not remaining:
                    return
                if self._producer is not None:
                    with contextlib.suppress(KafkaError, TimeoutError):
                        await asyncio.wait_for(self._producer.stop(), 10)
                    self._producer = None
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"{len(remaining)} records could not be published")
                await asyncio.sleep(1.0)

    async def _try(self, records: Sequence[Outgoing]) -> list[Outgoing]:
        """Send and wait for the acks; the records not acknowledged, in their order."""
        try:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                )
                await producer.start()
                self._producer = producer
        except KafkaError as exc:
            say(f"publishing: {type(exc).__name__} at the producer's start; trying again")
            return list(records)
        sent = []
        for record in records:
            try:
                sent.append(
                    await self._producer.send(
                        self._topic,
                        value=record.value,
                        key=record.key,
                        partition=record.partition(self._partitions),
                        headers=list(record.headers) or None,
                    )
                )
            except KafkaError as exc:
                say(f"publishing: {type(exc).__name__}; trying again with a new producer")
                break
        results = await asyncio.gather(*sent, return_exceptions=True)
        failed: list[Outgoing] = []
        for record, result in zip(records, results, strict=False):
            if isinstance(result, BaseException):
                failed.append(record)
            else:
                self.published.append(record)
        return [*failed, *records[len(sent) :]]


# --------------------------------------------------------------------------- chaos


@dataclass
class Disturbance:
    kind: str  # kill | broker_restart | error_window | auth_window
    at_progress: int
    """Done once this many events have an outcome."""
    seconds: float = 0.0


@dataclass
class Timeline:
    """What the run did and when (seconds since the events were published)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    kills: list[tuple[float, float]] = field(default_factory=list)
    """(wall, monotonic) time of each SIGKILL."""
    broker_restarts: list[dict[str, Any]] = field(default_factory=list)

    def add(self, start: float, what: str, progress: int, **extra: Any) -> None:
        entry = {"at_seconds": round(time.monotonic() - start, 2), "what": what}
        entry |= {"progress": progress, **extra}
        self.entries.append(entry)
        say(f"{what} at {progress} events done" + (f" {extra}" if extra else ""))


def plan_disturbances(options: Options, rng: random.Random) -> list[Disturbance]:
    """When (by events done) each disturbance happens; between 5 % and 85 % of the run."""

    def at() -> int:
        return int(options.events * rng.uniform(0.05, 0.85))

    plan = [Disturbance("kill", at()) for _ in range(options.kills)]
    if options.broker_restart:
        plan.append(Disturbance("broker_restart", at()))
    if options.error_window > 0:
        plan.append(Disturbance("error_window", at(), options.error_window))
    if options.auth_window > 0:
        plan.append(Disturbance("auth_window", at(), options.auth_window))
    return sorted(plan, key=lambda d: d.at_progress)


async def _wait_for(
    condition: Callable[[], bool], deadline: float, service: Service, step: float = 0.1
) -> bool:
    """Poll ``condition`` until it holds or ``deadline`` (monotonic) passes."""
    while True:
        service.check()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)


async def _hold(
    seconds: float, deadline: float, service: Service, all_done: Callable[[], bool]
) -> None:
    """Keep a window open ``seconds`` (not past ``deadline``, nor once every event is done)."""
    await _wait_for(all_done, min(deadline, time.monotonic() + seconds), service, 0.2)


def _progress_reached(watcher: Watcher, events: int) -> Callable[[], bool]:
    return lambda: watcher.progress >= events


def _published_after(watcher: Watcher, wall: float, mono: float, events: int) -> Callable[[], bool]:
    """True once an outcome written after the moment came, or every event is done."""
    return lambda: watcher.progress >= events or watcher.first_after(wall, mono) is not None


async def disturb(
    plan: Sequence[Disturbance],
    *,
    events: int,
    watcher: Watcher,
    service: Service,
    broker: Broker,
    admin: httpx.AsyncClient,
    deadline: float,
    start: float,
    timeline: Timeline,
    publishing: asyncio.Lock,
) -> None:
    """Carry out the plan in order, one disturbance at a time.

    ``publishing`` is held through the broker restart: nothing is published meanwhile.
    """
    all_done = _progress_reached(watcher, events)
    for item in plan:
        reached = await _wait_for(_progress_reached(watcher, item.at_progress), deadline, service)
        if not reached:
            timeline.add(start, f"{item.kind} skipped: the timeout passed", watcher.progress)
            continue
        if all_done():
            # Nothing left to disturb: the service finished before this point of the plan.
            timeline.add(start, f"{item.kind} skipped: every event has an outcome", events)
            continue
        if item.kind == "kill":
            wall, mono = time.time(), time.monotonic()
            await service.kill_and_restart()
            timeline.kills.append((wall, mono))
            timeline.add(start, "service SIGKILLed and restarted", watcher.progress)
            # The next disturbance waits until the restarted service has published.
            await _wait_for(_published_after(watcher, wall, mono, events), deadline, service)
        elif item.kind == "broker_restart":
            async with publishing:
                timeline.add(start, "broker restart (kafka.sh down, up)", watcher.progress)
                began = time.monotonic()
                await broker.restart()
            back_wall, back_mono = time.time(), time.monotonic()
            timeline.add(
                start,
                "broker back",
                watcher.progress,
                down_seconds=round(back_mono - began, 2),
            )
            timeline.broker_restarts.append({"began": began, "back": (back_wall, back_mono)})
        elif item.kind == "error_window":
            await _post(admin, "/__admin/faults", {"default": {"error_rate": 1.0}})
            timeline.add(start, f"503 window opened for {item.seconds:g} s", watcher.progress)
            try:
                await _hold(item.seconds, deadline, service, all_done)
            finally:
                await _post(admin, "/__admin/faults", {})
            timeline.add(start, "503 window closed", watcher.progress)
        elif item.kind == "auth_window":
            await _post(admin, "/__admin/credentials", {"refuse": True})
            timeline.add(start, f"401 window opened for {item.seconds:g} s", watcher.progress)
            try:
                await _hold(item.seconds, deadline, service, all_done)
            finally:
                await _post(admin, "/__admin/credentials", {"refuse": False})
            timeline.add(start, "401 window closed", watcher.progress)


async def _post(admin: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    response = await admin.post(path, json=body)
    response.raise_for_status()


# --------------------------------------------------------------------------- verdict


def judge(
    world: ChaosWorld,
    seen: Sequence[Seen],
    published: Sequence[Outgoing],
    ledger: dict[str, Any],
    state: dict[str, Any],
) -> dict[str, Any]:
    """The result: harm counts from the outcomes seen, the records published and the
    sandbox's ledger and final state (``GET /__admin/ledger``, ``/__admin/state``)."""
    events_in = len(world.event_ids)
    replays = [r for r in published if r.kind == REPLAY]
    expected: set[tuple[str, str | None]] = {(e, None) for e in world.event_ids}
    expected |= {(r.event_id, r.replay_id) for r in replays}
    answers = Counter((o.event_id, o.replay_id) for o in seen)
    first: dict[tuple[str, str | None], Seen] = {}
    statuses: dict[str, set[str]] = {}
    for outcome in seen:
        first.setdefault((outcome.event_id, outcome.replay_id), outcome)
        statuses.setdefault(outcome.event_id, set()).add(outcome.status)
    revoked_counts: dict[str, int] = ledger["revoked"]
    issued = _pairs(ledger["earns_issued"])
    enrolled = _pairs(ledger["enrolments"])

    # Every benefit still active at the end, and whose it is.
    holder: dict[str, int | None] = {}
    holder.update(
        (f"loyalty_earn:{e['earn_id']}", e.get("customer_id"))
        for e in state["loyalty_earns"]
        if not e["revoked"]
    )
    holder.update(
        (f"loyalty_enrolment:{e['issual_id']}", e.get("customer_id"))
        for e in state["enrolments"]
        if e["active"]
    )
    holder.update(
        (f"cart_earn:{e['id']}", e.get("customer_id"))
        for e in state["cart_earns"]
        if not e["revoked"]
    )
    holder.update(
        (f"coupon:{c['id']}", c.get("customer_id")) for c in state["coupons"] if not c["revoked"]
    )
    still_active = set(holder)

    # What the run took of each (promotion, customer): the seed's earns it revoked. An earn
    # issued beyond that gives back something the service never took (a cancellation of a
    # return made before the run, a give-back made twice).
    earn_pairs = world.earn_pairs()
    taken: Counter[tuple[int, int]] = Counter()
    for key in revoked_counts:
        kind, _, value = key.partition(":")
        if kind == "loyalty_earn" and value.isdigit() and int(value) in earn_pairs:
            taken[earn_pairs[int(value)]] += 1
    never_revoked = sorted(pair for pair, n in issued.items() if n > taken[pair])

    # A give-back not made is a loss unless an outcome of the return's cancellations says so:
    # needs_check (an earlier attempt may have made it, or the return's answer left it
    # unclear; an operator looks) or failed (counted anyway). A cancellation answered
    # return_unknown although this run handled its return gives nothing back: a loss too.
    def flagged(customer: int) -> bool:
        cancellations = world.cancellations.get(world.give_back_of.get(customer, ""), [])
        return any(statuses.get(c, set()) & FLAGGED for c in cancellations)

    not_issued = {True: 0, False: 0}
    for pair, due in world.due_earns.items():
        not_issued[flagged(pair[1])] += max(0, due - issued.get(pair, 0))
    not_enrolled = {True: 0, False: 0}
    for pair in world.due_enrolments:
        not_enrolled[flagged(pair[1])] += 1 if enrolled.get(pair, 0) == 0 else 0
    # A benefit due to be taken back and still held is a loss unless its return's outcome
    # says an operator must look (needs_check: a deactivation a crashed attempt may have made
    # is not repeated).
    not_revoked = {True: 0, False: 0}
    for key in world.due_revoked & still_active:
        customer = holder[key]
        owner = world.take_back_of.get(customer, "") if customer is not None else ""
        not_revoked[bool(statuses.get(owner, set()) & FLAGGED)] += 1

    def own(kind: str) -> list[Seen | None]:
        return [first.get((e, None)) for e, k in world.kinds.items() if k == kind]

    checks = {
        # What the service is to answer each kind of record with; not harm counts (the harm,
        # if any, shows in the counts above), but a wrong answer here is worth a look.
        "second_cancellations_not_already_cancelled": sum(
            1 for o in own(SECOND_CANCELLATION) if o and "already_cancelled" not in o.reports
        ),
        "cancelled_return_replays_not_held_back": sum(
            1
            for r in replays
            if r.replayed == CANCELLED_RETURN
            and (o := first.get((r.event_id, r.replay_id))) is not None
            and "cancelled_since" not in o.reports
        ),
        "unknown_return_cancellations_not_return_unknown": sum(
            1 for o in own(UNKNOWN_CANCELLATION) if o and o.status != "return_unknown"
        ),
        "run_return_cancellations_answered_return_unknown": sum(
            1 for o in seen if o.event_id in world.return_of and o.status == "return_unknown"
        ),
        "give_back_enrolments_not_made_unflagged": not_enrolled[False],
        "give_back_enrolments_not_made_flagged": not_enrolled[True],
        "enrolments_made_more_than_once": sum(1 for n in enrolled.values() if n > 1),
    }
    kinds = Counter(r.kind for r in published)
    not_due = sorted(set(revoked_counts) - world.due_revoked)
    seed_issuals = {str(e.issual_id) for e in world.seed.enrolments}
    seed_earns = {str(earn_id) for earn_id in earn_pairs}

    def made_in_run(key: str) -> bool:
        """A loyalty earn or enrolment the seed does not have: the sandbox made it in the run
        (a give-back)."""
        kind, _, value = key.partition(":")
        known = {"loyalty_earn": seed_earns, "loyalty_enrolment": seed_issuals}.get(kind)
        return known is not None and value not in known

    result: dict[str, Any] = {
        "events_in": events_in,
        "replays_published": len(replays),
        "expected_outcomes": len(expected),
        "committed_outcomes": len(seen),
        "events_with_more_than_one_outcome": sum(1 for n in answers.values() if n > 1),
        "events_without_outcome": len(expected - set(answers)),
        "benefits_revoked_more_than_once": sum(1 for n in revoked_counts.values() if n > 1),
        "earns_issued_more_than_once": sum(
            1 for pair, n in issued.items() if n > max(world.due_earns.get(pair, 0), 1)
        ),
        "earns_issued_never_revoked": len(never_revoked),
        "deactivations_repeated": int(ledger["deactivations_repeated"]),
        "benefits_due_not_revoked": not_revoked[False],
        "give_back_earns_not_issued_unflagged": not_issued[False],
        "failed_outcomes": sum(1 for o in seen if o.status == "failed"),
        "outcomes_by_status": dict(sorted(Counter(o.status for o in seen).items())),
        # Informational: not harm counts.
        "published": {
            "returns": kinds[RETURN],
            "cancellations": kinds[CANCELLATION],
            "second_cancellations": kinds[SECOND_CANCELLATION],
            "other_partition_cancellations": kinds[OTHER_PARTITION_CANCELLATION],
            "unknown_return_cancellations": kinds[UNKNOWN_CANCELLATION],
            "replays": dict(sorted(Counter(str(r.replayed) for r in replays).items())),
        },
        "give_back_earns_due": sum(world.due_earns.values()),
        "give_back_earns_issued": sum(issued.values()),
        "give_back_earns_not_issued_flagged": not_issued[True],
        "benefits_due_not_revoked_flagged": not_revoked[True],
        "checks": checks,
        "earns_issued_never_revoked_pairs": [list(pair) for pair in never_revoked[:20]],
        "deactivations_repeated_targets": sorted(
            target for target, n in ledger.get("deactivations", {}).items() if n > 1
        )[:20],
        "benefits_revoked_not_due_count": len(not_due),
        "benefits_revoked_not_due": not_due[:20],
        # Given back (ENROL, EARN: ids the seed does not have) and then taken back again.
        "given_back_benefits_revoked_again": sum(1 for key in not_due if made_in_run(key)),
        "outcomes_of_other_events": sum(1 for e, _ in answers if e not in world.kinds),
    }
    result["harm_free"] = all(result[h] == 0 for h in HARMS) and (
        result["committed_outcomes"] == result["expected_outcomes"]
    )
    return result


def _pairs(counts: Iterable[dict[str, int]]) -> dict[tuple[int, int], int]:
    return {(p["promotion_id"], p["customer_id"]): p["count"] for p in counts}


def _seconds_to_next_outcome(watcher: Watcher, timeline: Timeline) -> list[float | None]:
    """Per kill, seconds until the next outcome; each broker restart's is put on the timeline."""
    kill_gaps: list[float | None] = []
    for wall, mono in timeline.kills:
        seen = watcher.first_after(wall, mono)
        kill_gaps.append(round(seen.arrived - mono, 2) if seen is not None else None)
    for restart in timeline.broker_restarts:
        back_wall, back_mono = restart["back"]
        seen = watcher.first_after(back_wall, back_mono)
        restart["seconds_to_next_outcome"] = (
            round(seen.arrived - back_mono, 2) if seen is not None else None
        )
    return kill_gaps


# --------------------------------------------------------------------------- the run


async def run_chaos(options: Options) -> dict[str, Any]:
    """One chaos run; returns the result (also written to ``options.out``)."""
    set_name("chaos")
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    logs = ROOT / ".cache" / "chaos" / run_id
    logs.mkdir(parents=True, exist_ok=True)
    # aiokafka logs every failed reconnect while the broker restarts: into a file, not the
    # terminal.
    handler = logging.FileHandler(logs / "chaos.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    say(f"run {run_id}, seed {options.seed}, logs in {logs.relative_to(ROOT)}")
    world_rng = random.Random(f"{options.seed}-world")
    chaos_rng = random.Random(f"{options.seed}-chaos")

    world = build_world(
        options.events,
        world_rng,
        run_id,
        partitions=options.partitions,
        cancel_share=options.cancel_share,
        unknown_share=options.unknown_share,
        replay_share=options.replay_share,
    )
    seed_file = logs / "sandbox-seed.json"
    seed_file.write_text(world.seed_json(), encoding="utf-8")
    say(
        f"{options.events} events ({world.take_backs} take-backs, {len(world.return_of)} "
        f"cancellations of them ({world.count(SECOND_CANCELLATION)} second, "
        f"{world.count(OTHER_PARTITION_CANCELLATION)} on another partition), "
        f"{world.unknown_cancellations} of returns before the run) and {world.count(REPLAY)} "
        f"replays: {len(world.due_revoked)} benefits due, {len(world.redeemed)} redeemed, "
        f"{sum(world.due_earns.values())} earns to give back"
    )

    broker = Broker(logs / "kafka.log")
    sandbox = SandboxProcess(seed_file, logs / "sandbox.log")
    topics = Topics.for_run(run_id)
    service: Service | None = None
    watcher: ChaosWatcher | None = None
    feeding: asyncio.Task[None] | None = None
    topics_made = False
    try:
        await broker.ensure_up(restartable=options.broker_restart)
        await sandbox.start()
        say(f"sandbox on {sandbox.url}")
        env = service_env(options, topics, broker.bootstrap, sandbox.url)
        (logs / "service-env.json").write_text(
            json.dumps({k: v for k, v in env.items() if k.startswith("RETURN_HANDLER_")}, indent=2)
        )
        extra_topics = await create_topics(
            env, topics, options.partitions, broker.bootstrap, logs / "topics.log"
        )
        topics_made = True
        if extra_topics:
            say(f"`return-handler topics` made no {', '.join(extra_topics)}: created here")

        watcher = ChaosWatcher(broker.bootstrap, topics)
        await watcher.start()
        start = time.monotonic()
        deadline = start + options.timeout
        service = Service(env, logs, start)
        service.start()
        feeder = Feeder(
            broker.bootstrap, topics.returns, options.partitions, world, watcher, options.rate
        )
        feeding = asyncio.create_task(feeder.run(deadline, service))
        seen = watcher

        def finished() -> bool:
            if feeding is not None and feeding.done():
                feeding.result()  # what stopped the publishing, raised here
            return seen.progress >= options.events and feeder.idle and feeder.replays_answered()

        timeline = Timeline()
        async with httpx.AsyncClient(base_url=sandbox.url, timeout=30.0) as admin:
            plan = plan_disturbances(options, chaos_rng)
            await disturb(
                plan,
                events=options.events,
                watcher=watcher,
                service=service,
                broker=broker,
                admin=admin,
                deadline=deadline,
                start=start,
                timeline=timeline,
                publishing=feeder.lock,
            )
            done = await _wait_for(finished, deadline, service, 0.2)
            # Late duplicates: read on until nothing new came for 3 s (15 s at most).
            await _wait_for(
                lambda: time.monotonic() - max(seen.last_arrival, start) > 3,
                time.monotonic() + 15,
                service,
                0.2,
            )
            duration = time.monotonic() - start
            timeline.add(
                start,
                "every event and replay has an outcome" if done else "timeout: stopped waiting",
                watcher.progress,
            )
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeding
            exit_code = await service.stop()
            await watcher.stop()
            ledger = (await admin.get("/__admin/ledger")).json()
            state = (await admin.get("/__admin/state")).json()
        # For a post-mortem: what the judge read.
        (logs / "ledger.json").write_text(json.dumps(ledger), encoding="utf-8")
        (logs / "state.json").write_text(json.dumps(state), encoding="utf-8")
        (logs / "outcomes.jsonl").write_text(
            "".join(json.dumps(asdict(o), default=sorted) + "\n" for o in watcher.seen),
            encoding="utf-8",
        )

        result = judge(world, watcher.seen, feeder.published, ledger, state)
        result |= {
            "seconds_from_kill_to_next_outcome": _seconds_to_next_outcome(watcher, timeline),
            "dead_letters": len(watcher.dead_letters),
            "unreadable_outcomes": watcher.unreadable,
            "duration_seconds": round(duration, 1),
            "timed_out": not done,
            "run": run_id,
            "seed": options.seed,
            "options": {
                "events": options.events,
                "kills": options.kills,
                "broker_restart": options.broker_restart,
                "error_window_seconds": options.error_window,
                "auth_window_seconds": options.auth_window,
                "partitions": options.partitions,
                "rate": options.rate,
                "cancel_share": options.cancel_share,
                "unknown_share": options.unknown_share,
                "replay_share": options.replay_share,
                "timeout_seconds": options.timeout,
                "session_timeout_ms": options.session_timeout_ms,
            },
            "service_restarts_after_own_exit": [asdict(e) for e in service.unexpected_exits],
            "service_exit_code_on_sigterm": exit_code,
            "broker_restarts": [
                {
                    "down_seconds": round(r["back"][1] - r["began"], 2),
                    "seconds_to_next_outcome": r.get("seconds_to_next_outcome"),
                }
                for r in timeline.broker_restarts
            ],
            "topics_created_by_chaos": extra_topics,
            "timeline": timeline.entries,
            "logs": str(logs.relative_to(ROOT)),
        }
        return result
    finally:
        if feeding is not None:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError, RuntimeError):
                await feeding
        if service is not None:
            await service.stop()
        if watcher is not None:
            with contextlib.suppress(KafkaError, asyncio.CancelledError, TimeoutError):
                await watcher.stop()
        sandbox.stop()
        if topics_made and not options.keep_topics:
            with contextlib.suppress(KafkaError, TimeoutError, OSError):
                await delete_topics(broker.bootstrap, topics.names())
        broker.stop_if_started()


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=5000, help="events to publish")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the service")
    parser.add_argument(
        "--broker-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="restart the broker once (kafka.sh down, up)",
    )
    parser.add_argument(
        "--error-window", type=float, default=30.0, help="seconds of 503s (0: none)"
    )
    parser.add_argument("--auth-window", type=float, default=20.0, help="seconds of 401s (0: none)")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of every topic")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="most seconds to wait for the outcomes"
    )
    parser.add_argument("--out", type=Path, default=Options.out, help="result JSON")
    parser.add_argument(
        "--rate",
        type=float,
        default=Options.rate,
        help="events a second the stream is published at (0: all at once)",
    )
    parser.add_argument(
        "--cancel-share",
        type=float,
        default=Options.cancel_share,
        help="share of the returns that earned loyalty cancelled later in the run",
    )
    parser.add_argument(
        "--unknown-share",
        type=float,
        default=Options.unknown_share,
        help="share of events that cancel a return made before the run",
    )
    parser.add_argument(
        "--replay-share",
        type=float,
        default=Options.replay_share,
        help="replays published, as a share of the events",
    )
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=None,
        help="the service's RETURN_HANDLER_KAFKA__SESSION_TIMEOUT_MS (default: its own)",
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the service (repeatable)",
    )
    parser.add_argument("--keep-topics", action="store_true", help="do not delete the run's topics")
    args = parser.parse_args(argv)
    if args.events < 1 or args.kills < 0 or args.partitions < 1 or args.timeout <= 0:
        parser.error("--events and --partitions must be >= 1, --kills >= 0, --timeout > 0")
    shares = (args.cancel_share, args.unknown_share, args.replay_share)
    if args.rate < 0 or not all(0 <= share <= 1 for share in shares):
        parser.error("--rate must be >= 0, the shares between 0 and 1")
    pairs = []
    for item in args.service_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--service-env wants NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return Options(
        events=args.events,
        kills=args.kills,
        broker_restart=args.broker_restart,
        error_window=args.error_window,
        auth_window=args.auth_window,
        seed=args.seed if args.seed is not None else secrets.randbelow(2**31),
        partitions=args.partitions,
        rate=args.rate,
        timeout=args.timeout,
        out=args.out,
        cancel_share=args.cancel_share,
        unknown_share=args.unknown_share,
        replay_share=args.replay_share,
        session_timeout_ms=args.session_timeout_ms,
        service_env=tuple(pairs),
        keep_topics=args.keep_topics,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run once; 0 only when the run was harm free, 1 when not, 2 when it could not run."""
    set_name("chaos")
    options = parse_args(argv)
    result = run_once(run_chaos(options), options.out)
    if result is None:
        return 2
    verdict = "HARM FREE" if result["harm_free"] else "HARM FOUND"
    say(f"{verdict}; result in {options.out}")
    return 0 if result["harm_free"] else 1


if __name__ == "__main__":
    sys.exit(main())
