"""Chaos run: does the service lose nothing and do nothing twice while things break?

    PYTHONPATH=. .venv/bin/python bench/chaos.py [--events 5000] [--kills 5]
        [--broker-restart/--no-broker-restart] [--error-window 30] [--auth-window 20]
        [--seed N] [--partitions 3] [--timeout S] [--out bench/results/chaos.json]

``make chaos`` runs the defaults, ``make chaos-short`` a few hundred events with one kill
and one 503 window. What one run does:

1. the broker that ``scripts/kafka.sh`` manages (``KAFKA_PORT``, ``KAFKA_HOME_DIR`` as that
   script reads them), started if it is not running and stopped again only then;
2. fresh topics with this run's names (``return-handler topics``, plus the state and retry
   topics if that command does not create them), a fresh consumer group;
3. the Capillary sandbox in a child process with a generated seed, and as many events as
   asked for (``chaos_world.py``: every event has its own customer and benefits, so the
   sandbox's final state and ledger say exactly what each event did);
4. ``return-handler run`` in a child process (restarted at once when it dies, as a pod
   would be), the events published keyed by customer, and then, at random moments of the
   progress (seeded): SIGKILL of the service and an immediate restart (``--kills``), one
   broker restart (``kafka.sh down`` then ``up``), a window of 503s on every business
   endpoint (``--error-window`` seconds) and a window of 401s on everything, as a rotated
   secret would give (``--auth-window`` seconds). One disturbance at a time; after a kill
   the next waits until the restarted service has published;
5. waits (at most ``--timeout`` seconds) until a read_committed consumer of the outcomes
   topic has seen an outcome for every event, then prints and writes the result as JSON.

Harm counts (all must be 0, and ``committed_outcomes == events_in``, for ``harm_free``):
``events_with_more_than_one_outcome``, ``events_without_outcome``,
``benefits_revoked_more_than_once`` and ``earns_issued_more_than_once`` (from the sandbox's
ledger against what the events asked for), ``benefits_due_not_revoked`` (a benefit a
take-back event listed, not redeemed in the seed, still not revoked at the end),
``give_back_earns_not_issued_unflagged`` (an earn a give-back was due to issue, not issued,
while the event's outcome is neither needs_check nor failed: a silent loss) and
``failed_outcomes``. The exit status is 0 only when the run is harm free, 1 when it is not,
2 when it could not run. Everything the run started is stopped again, also on Ctrl-C,
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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka.errors import KafkaError
from chaos_world import ChaosWorld, build_world
from harness import (
    ROOT,
    Broker,
    SandboxProcess,
    Service,
    Topics,
    Watcher,
    create_topics,
    delete_topics,
    publish,
    run_once,
    say,
    set_name,
)
from harness import service_env as harness_service_env

SERVICE_INSTANCE_ID = "chaos-1"


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
    timeout: float = 1800.0
    out: Path = ROOT / "bench" / "results" / "chaos.json"
    give_back_share: float = 0.1
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
) -> None:
    """Carry out the plan in order, one disturbance at a time."""
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
    watcher: Watcher,
    ledger: dict[str, Any],
    state: dict[str, Any],
    timeline: Timeline,
) -> dict[str, Any]:
    """The result: harm counts from the outcomes seen and the sandbox's ledger and state."""
    events_in = len(world.event_ids)
    expected = set(world.event_ids)
    per_event = watcher.per_event
    revoked_counts: dict[str, int] = ledger["revoked"]
    issued = {(p["promotion_id"], p["customer_id"]): p["count"] for p in ledger["earns_issued"]}

    still_active: set[str] = set()
    still_active.update(
        f"loyalty_earn:{e['earn_id']}" for e in state["loyalty_earns"] if not e["revoked"]
    )
    still_active.update(
        f"loyalty_enrolment:{e['issual_id']}" for e in state["enrolments"] if e["active"]
    )
    still_active.update(f"cart_earn:{e['id']}" for e in state["cart_earns"] if not e["revoked"])
    still_active.update(f"coupon:{c['id']}" for c in state["coupons"] if not c["revoked"])

    # A give-back earn not issued is a loss unless the event's outcome says so: needs_check
    # (an earlier attempt may have issued it; an operator looks) or failed (counted anyway).
    statuses: dict[str, set[str]] = {}
    for outcome in watcher.outcomes:
        statuses.setdefault(outcome.event_id, set()).add(outcome.status)
    unissued = [pair for pair, n in world.due_earns.items() if issued.get(pair, 0) < n]
    flagged = sum(
        1
        for _, customer in unissued
        if statuses.get(world.give_back_of[customer], set()) & {"needs_check", "failed"}
    )

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

    result: dict[str, Any] = {
        "events_in": events_in,
        "committed_outcomes": len(watcher.outcomes),
        "events_with_more_than_one_outcome": sum(1 for n in per_event.values() if n > 1),
        "events_without_outcome": len(expected - set(per_event)),
        "benefits_revoked_more_than_once": sum(1 for n in revoked_counts.values() if n > 1),
        "earns_issued_more_than_once": sum(
            1 for pair, n in issued.items() if n > max(world.due_earns.get(pair, 0), 1)
        ),
        "benefits_due_not_revoked": len(world.due_revoked & still_active),
        "failed_outcomes": sum(1 for o in watcher.outcomes if o.status == "failed"),
        "outcomes_by_status": dict(sorted(Counter(o.status for o in watcher.outcomes).items())),
        "give_back_earns_not_issued_unflagged": len(unissued) - flagged,
        "seconds_from_kill_to_next_outcome": kill_gaps,
        # Informational: not harm counts.
        "give_back_earns_not_issued_flagged": flagged,
        "benefits_revoked_not_due": sorted(set(revoked_counts) - world.due_revoked)[:20],
        "dead_letters": len(watcher.dead_letters),
        "unreadable_outcomes": watcher.unreadable,
        "outcomes_of_other_events": sum(1 for e in per_event if e not in expected),
    }
    harms = (
        "events_with_more_than_one_outcome",
        "events_without_outcome",
        "benefits_revoked_more_than_once",
        "earns_issued_more_than_once",
        "benefits_due_not_revoked",
        "give_back_earns_not_issued_unflagged",
        "failed_outcomes",
    )
    result["harm_free"] = all(result[h] == 0 for h in harms) and (
        result["committed_outcomes"] == events_in
    )
    return result


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

    world = build_world(options.events, world_rng, run_id, give_back_share=options.give_back_share)
    seed_file = logs / "sandbox-seed.json"
    seed_file.write_text(world.seed_json(), encoding="utf-8")
    say(
        f"{options.events} events ({world.take_backs} take-backs, {world.give_backs} "
        f"give-backs): {len(world.due_revoked)} benefits due, {len(world.redeemed)} redeemed"
    )

    broker = Broker(logs / "kafka.log")
    sandbox = SandboxProcess(seed_file, logs / "sandbox.log")
    topics = Topics.for_run(run_id)
    service: Service | None = None
    watcher: Watcher | None = None
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

        watcher = Watcher(broker.bootstrap, topics)
        await watcher.start()
        start = time.monotonic()
        deadline = start + options.timeout
        service = Service(env, logs, start)
        service.start()
        await asyncio.wait_for(publish(broker.bootstrap, topics.returns, world.events), 300)
        say(f"published {options.events} events to {topics.returns}")

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
            )
            seen = watcher
            done = await _wait_for(lambda: seen.progress >= options.events, deadline, service, 0.2)
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
                "all events have an outcome" if done else "timeout: stopped waiting",
                watcher.progress,
            )
            exit_code = await service.stop()
            await watcher.stop()
            ledger = (await admin.get("/__admin/ledger")).json()
            state = (await admin.get("/__admin/state")).json()
        (logs / "ledger.json").write_text(json.dumps(ledger), encoding="utf-8")

        result = judge(world, watcher, ledger, state, timeline)
        result |= {
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
        "--give-back-share", type=float, default=0.1, help="share of CANCELLED events"
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
        timeout=args.timeout,
        out=args.out,
        give_back_share=args.give_back_share,
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
