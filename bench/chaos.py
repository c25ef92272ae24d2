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
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from chaos_world import ChaosWorld, build_world

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
POLICY = ROOT / "examples" / "policy.yaml"
SERVICE_INSTANCE_ID = "chaos-1"
HOST = "127.0.0.1"

# The client's own limiter (300 a minute per endpoint by default) would make the run last
# an hour and measure nothing of interest here: the sandbox has no limit either.
_RATE_LIMITS = (
    "LOYALTY_REVOKE",
    "LOYALTY_ENROL",
    "CART_REVOKE",
    "COUPON_REVOKE",
    "DEACTIVATE",
    "OAUTH_TOKEN",
)
MAX_SERVICE_RESTARTS = 100
"""Unexpected service exits tolerated (each restarted, as a pod would be) before giving up."""


def say(message: str) -> None:
    """Progress on stderr; stdout carries only the result."""
    print(f"chaos: {message}", file=sys.stderr, flush=True)


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


# --------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _stop_process(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM, wait ``grace`` seconds, then SIGKILL; the exit status (None if it hung)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    return proc.poll()


async def _wait_exit(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        await asyncio.sleep(0.05)
    return proc.poll() is not None


class Broker:
    """The broker of ``scripts/kafka.sh``; ``started`` says whether this run started it."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        port = os.environ.get("KAFKA_PORT", "9092")
        self.bootstrap = f"{HOST}:{port}"
        self.started = False

    async def _kafka_sh(self, verb: str, seconds: float) -> int:
        with self.log_path.open("ab") as log:
            log.write(f"--- kafka.sh {verb} ---\n".encode())
            log.flush()
            proc = await asyncio.create_subprocess_exec(
                "bash", str(KAFKA_SH), verb, stdout=log, stderr=log, cwd=ROOT
            )
            try:
                return await asyncio.wait_for(proc.wait(), seconds)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise RuntimeError(f"kafka.sh {verb} took over {seconds:.0f} s") from None

    async def ensure_up(self, *, restartable: bool) -> None:
        """Start the broker unless it is running (as scripts/test.sh does).

        A broker that answers on the port but is not ``kafka.sh``'s is used as it is, unless
        the run must restart it (``restartable``): then the run stops here.
        """
        if await self._kafka_sh("status", 30) == 0:
            say(f"broker already running at {self.bootstrap}: using it, leaving it running")
            return
        host, _, port = self.bootstrap.rpartition(":")
        with contextlib.suppress(OSError):
            with socket.create_connection((host, int(port)), timeout=2):
                pass
            if restartable:
                raise RuntimeError(
                    f"something answers at {self.bootstrap} that scripts/kafka.sh does not "
                    "manage (KAFKA_HOME_DIR?); it cannot restart it: pass --no-broker-restart"
                )
            say(f"a broker not managed by scripts/kafka.sh answers at {self.bootstrap}: using it")
            return
        say("starting the broker (scripts/kafka.sh up)")
        if await self._kafka_sh("up", 180) != 0:
            raise RuntimeError(f"scripts/kafka.sh up failed; see {self.log_path}")
        self.started = True

    async def restart(self) -> None:
        """``kafka.sh down`` then ``up``: a clean broker restart."""
        if await self._kafka_sh("down", 90) != 0:
            raise RuntimeError(f"scripts/kafka.sh down failed; see {self.log_path}")
        if await self._kafka_sh("up", 180) != 0:
            raise RuntimeError(f"scripts/kafka.sh up failed; see {self.log_path}")

    def stop_if_started(self) -> None:
        if self.started:
            say("stopping the broker this run started")
            with self.log_path.open("ab") as log:
                subprocess.run(
                    ["bash", str(KAFKA_SH), "down"],
                    stdout=log,
                    stderr=log,
                    cwd=ROOT,
                    timeout=90,
                    check=False,
                )
            self.started = False


class SandboxProcess:
    """``capillary-sandbox`` in a child process, with its admin API."""

    def __init__(self, seed_file: Path, log_path: Path) -> None:
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._seed_file = seed_file
        self._log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._log = self._log_path.open("ab")
        return subprocess.Popen(
            [
                str(BIN / "capillary-sandbox"),
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--seed",
                str(self._seed_file),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def start(self) -> None:
        self.proc = self._spawn()
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the sandbox exited at start; see {self._log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/__admin/health")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the sandbox did not answer within 60 s; see {self._log_path}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, 10)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class ServiceExit:
    """The service ended without being told to."""

    incarnation: int
    code: int | None
    at_seconds: float


class Service:
    """``return-handler run`` in a child process; restarted at once when it dies."""

    def __init__(self, env: dict[str, str], logs: Path, started: float) -> None:
        self._env = env
        self._logs = logs
        self._started = started
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.unexpected_exits: list[ServiceExit] = []
        self._log: IO[bytes] | None = None
        self._watch: asyncio.Task[None] | None = None

    def _spawn(self) -> None:
        if self._log is not None:
            self._log.close()
        self.incarnation += 1
        self._log = (self._logs / f"service-{self.incarnation}.log").open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "return-handler"), "run"],
            env=self._env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start(self) -> None:
        """Start it and watch it: an unexpected exit is recorded and restarted after 1 s."""
        self._spawn()
        self._watch = asyncio.create_task(self._supervise())

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            proc = self.proc
            if proc is None or proc.poll() is None:
                continue
            self.unexpected_exits.append(
                ServiceExit(self.incarnation, proc.returncode, time.monotonic() - self._started)
            )
            say(
                f"the service exited by itself (code {proc.returncode}, "
                f"service-{self.incarnation}.log); restarting it"
            )
            if len(self.unexpected_exits) > MAX_SERVICE_RESTARTS:
                raise RuntimeError(
                    f"the service exited {len(self.unexpected_exits)} times by itself; "
                    f"giving up (logs: {self._logs})"
                )
            await asyncio.sleep(1.0)
            self._spawn()

    async def kill_and_restart(self) -> None:
        """SIGKILL, wait until it is gone, start the next incarnation at once."""
        proc = self.proc
        assert proc is not None
        self.proc = None  # the supervisor must not take this death for a crash
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        if not await _wait_exit(proc, 10):
            raise RuntimeError(f"service pid {proc.pid} survived SIGKILL for 10 s")
        self._spawn()

    def check(self) -> None:
        """Re-raise what stopped the supervisor, if anything did."""
        if self._watch is not None and self._watch.done() and not self._watch.cancelled():
            self._watch.result()

    async def stop(self) -> int | None:
        """SIGTERM (the service drains and commits), SIGKILL after 20 s."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._watch
            self._watch = None
        code = None
        if self.proc is not None:
            proc, self.proc = self.proc, None
            code = await asyncio.to_thread(_stop_process, proc, 20)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def stop_now(self) -> None:
        """Last resort, outside the event loop."""
        if self.proc is not None:
            _stop_process(self.proc, 10)
            self.proc = None


# --------------------------------------------------------------------------- Kafka


@dataclass
class Topics:
    returns: str
    outcomes: str
    dead_letters: str
    state: str
    retry: str
    group: str

    @classmethod
    def for_run(cls, run_id: str) -> Topics:
        prefix = f"chaos-{run_id}"
        return cls(
            returns=f"{prefix}-returns",
            outcomes=f"{prefix}-outcomes",
            dead_letters=f"{prefix}-dead-letters",
            state=f"{prefix}-state",
            retry=f"{prefix}-retry",
            group=prefix,
        )

    def names(self) -> list[str]:
        return [self.returns, self.outcomes, self.dead_letters, self.state, self.retry]


def service_env(
    options: Options, topics: Topics, bootstrap: str, sandbox_url: str
) -> dict[str, str]:
    """The service's environment: this run's topics, the sandbox, the demo policy.

    Inherited ``RETURN_HANDLER_*`` variables are dropped so a developer's shell cannot change
    what is measured; ``--service-env`` adds to (or overrides) what is set here. Settings the
    service does not know (yet) are ignored by its settings class (``extra="ignore"``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETURN_HANDLER_")}
    prefix = "RETURN_HANDLER_"
    env.update(
        {
            f"{prefix}KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            f"{prefix}KAFKA__RETURNS_TOPIC": topics.returns,
            f"{prefix}KAFKA__OUTCOMES_TOPIC": topics.outcomes,
            f"{prefix}KAFKA__DEAD_LETTER_TOPIC": topics.dead_letters,
            f"{prefix}KAFKA__STATE_TOPIC": topics.state,
            f"{prefix}KAFKA__RETRY_TOPIC": topics.retry,
            f"{prefix}KAFKA__GROUP_ID": topics.group,
            f"{prefix}KAFKA__GROUP_INSTANCE_ID": SERVICE_INSTANCE_ID,
            f"{prefix}CAPILLARY__LOYALTY_BASE_URL": sandbox_url,
            f"{prefix}CAPILLARY__GATEWAY_BASE_URL": sandbox_url,
            f"{prefix}CAPILLARY__OAUTH_BASE_URL": sandbox_url,
            f"{prefix}CAPILLARY__AUTH_MODE": "basic",
            f"{prefix}CAPILLARY__USERNAME": "demo",
            f"{prefix}CAPILLARY__PASSWORD": "demo",
            f"{prefix}POLICY_PATH": str(POLICY),
            f"{prefix}LOG_FORMAT": "json",
            f"{prefix}LOG_LEVEL": "INFO",
            # Only the final stop waits for it; nothing measured depends on it.
            f"{prefix}SHUTDOWN_GRACE_SECONDS": "10",
        }
    )
    for name in _RATE_LIMITS:
        env[f"{prefix}CAPILLARY__RATE_LIMITS__{name}"] = "1000000"
    if options.session_timeout_ms is not None:
        env[f"{prefix}KAFKA__SESSION_TIMEOUT_MS"] = str(options.session_timeout_ms)
    env.update(dict(options.service_env))
    return env


async def create_topics(
    env: dict[str, str], topics: Topics, partitions: int, bootstrap: str, log_path: Path
) -> list[str]:
    """``return-handler topics``; then the state and retry topics if it did not make them.

    Returns the names this run had to create itself (empty once ``topics`` makes all five).
    """
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "return-handler"),
            "topics",
            "--partitions",
            str(partitions),
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        try:
            code = await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"return-handler topics took over 60 s; see {log_path}") from None
    if code != 0:
        raise RuntimeError(f"return-handler topics failed; see {log_path}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing: list[NewTopic] = []
        if topics.state not in existing:
            # Partitioned like the returns topic; compacted: the latest word per event id.
            missing.append(
                NewTopic(
                    topics.state,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact"},
                )
            )
        if topics.retry not in existing:
            missing.append(NewTopic(topics.retry, num_partitions=partitions, replication_factor=1))
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, names: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), 15)
        existing = set(await admin.list_topics())
        gone = [n for n in names if n in existing]
        if gone:
            await asyncio.wait_for(admin.delete_topics(gone), 30)
    finally:
        await admin.close()


async def publish(bootstrap: str, topic: str, events: Sequence[tuple[bytes, bytes]]) -> None:
    """Every event once (idempotent producer, acks from all replicas), keyed by customer."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        pending = []
        for key, value in events:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


@dataclass
class SeenOutcome:
    event_id: str
    status: str
    processed_at: float | None
    """Epoch seconds the service wrote into the outcome."""
    arrived: float
    """time.monotonic() when the watcher read it."""


class Watcher:
    """A read_committed consumer (no group) of the outcomes and dead-letter topics."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self._topics = topics
        self._consumer = AIOKafkaConsumer(
            topics.outcomes,
            topics.dead_letters,
            bootstrap_servers=bootstrap,
            group_id=None,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            metadata_max_age_ms=1000,
        )
        self.outcomes: list[SeenOutcome] = []
        self.per_event: Counter[str] = Counter()
        self.dead_letters: list[str] = []
        self.unreadable = 0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    @property
    def progress(self) -> int:
        """Events with at least one committed outcome."""
        return len(self.per_event)

    @property
    def last_arrival(self) -> float:
        return self.outcomes[-1].arrived if self.outcomes else 0.0

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batches = await self._consumer.getmany(timeout_ms=200)
            except KafkaError as exc:  # the broker restart: aiokafka reconnects by itself
                say(f"watcher: {type(exc).__name__}; reading on")
                await asyncio.sleep(0.5)
                continue
            now = time.monotonic()
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == self._topics.dead_letters:
                        reason = dict(record.headers or ()).get("rh-reason", b"")
                        self.dead_letters.append(reason.decode(errors="replace"))
                        continue
                    self._take(record.value, now)

    def _take(self, value: bytes | None, now: float) -> None:
        try:
            outcome: Any = json.loads(value or b"")
            event_id = str(outcome["event"]["event_id"])
            status = str(outcome.get("status"))
        except (ValueError, KeyError, TypeError):
            self.unreadable += 1
            return
        processed_at: float | None = None
        with contextlib.suppress(ValueError, TypeError, KeyError):
            processed_at = datetime.fromisoformat(outcome["processed_at"]).timestamp()
        self.outcomes.append(SeenOutcome(event_id, status, processed_at, now))
        self.per_event[event_id] += 1

    def first_after(self, wall: float, mono: float) -> SeenOutcome | None:
        """The first outcome written after ``wall`` (epoch) and read after ``mono``."""
        for seen in self.outcomes:
            if seen.arrived >= mono and (seen.processed_at is None or seen.processed_at > wall):
                return seen
        return None

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await asyncio.wait_for(self._task, 10)
        await self._consumer.stop()


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


def _write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


async def _main(options: Options) -> dict[str, Any]:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    assert task is not None
    # Ctrl-C, SIGTERM and SIGHUP end the run cleanly, stopping what it started (SIGINT too
    # where the shell started us with it ignored, as a background job).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel)
    return await run_chaos(options)


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
    options = parse_args(argv)
    try:
        result = asyncio.run(_main(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; everything this run started was stopped")
        return 2
    except (RuntimeError, KafkaError, OSError, httpx.HTTPError) as exc:
        say(f"the run could not finish: {type(exc).__name__}: {exc}")
        return 2
    _write(result, options.out)
    print(json.dumps(result, indent=2))
    verdict = "HARM FREE" if result["harm_free"] else "HARM FOUND"
    say(f"{verdict}; result in {options.out}")
    return 0 if result["harm_free"] else 1


if __name__ == "__main__":
    sys.exit(main())
