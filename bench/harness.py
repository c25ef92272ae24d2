"""What the bench scripts share: the broker, the sandbox and the service as child processes,
the run's topics, publishing, and a read_committed watcher of the outcomes.

``bench/chaos.py`` (the chaos run) and ``bench/throughput.py`` (``make bench``) import it; it
holds no policy of either. Progress goes to stderr through :func:`say`, prefixed with the
name the script gave :func:`set_name`, so stdout stays for the result.

Run as a script, it is a sandbox launcher (``python bench/harness.py sandbox --port ...``):
the ``capillary-sandbox`` command with a call log as long as a benchmark needs
(``--call-log-limit``; the command keeps the last 10,000 calls only).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
KAFKA_SH = ROOT / "scripts" / "kafka.sh"
POLICY = ROOT / "examples" / "policy.yaml"
HOST = "127.0.0.1"

RATE_LIMITS = (
    "LOYALTY_REVOKE",
    "LOYALTY_ENROL",
    "CART_REVOKE",
    "COUPON_REVOKE",
    "DEACTIVATE",
    "OAUTH_TOKEN",
)
"""The service's rate-limited endpoints (``RETURN_HANDLER_CAPILLARY__RATE_LIMITS__<NAME>``)."""
UNLIMITED = 1_000_000
"""Requests a minute that never limit anything on this machine."""
MAX_SERVICE_RESTARTS = 100
"""Unexpected service exits tolerated (each restarted, as a pod would be) before giving up."""

_name = "bench"


def set_name(name: str) -> None:
    """The prefix of progress lines (``chaos``, ``bench``)."""
    global _name
    _name = name


def say(message: str) -> None:
    """Progress on stderr; stdout carries only the result."""
    print(f"{_name}: {message}", file=sys.stderr, flush=True)


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
        """``kafka.sh down``, only if this run started the broker."""
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
    """``capillary-sandbox`` in a child process, with its admin API.

    ``latency_ms`` and ``rate_limit`` (requests a minute per endpoint) are the command's
    options. ``call_log_limit`` runs this module's launcher instead of the command, so the
    call log keeps every call of a run (the command keeps the last 10,000).
    """

    def __init__(
        self,
        seed_file: Path,
        log_path: Path,
        *,
        latency_ms: float = 0.0,
        rate_limit: int | None = None,
        call_log_limit: int | None = None,
    ) -> None:
        self.port = _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._seed_file = seed_file
        self._log_path = log_path
        self._latency_ms = latency_ms
        self._rate_limit = rate_limit
        self._call_log_limit = call_log_limit
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._log = self._log_path.open("ab")
        args = ["--host", HOST, "--port", str(self.port), "--seed", str(self._seed_file)]
        if self._latency_ms:
            args += ["--latency-ms", str(self._latency_ms)]
        if self._rate_limit:
            args += ["--rate-limit", str(self._rate_limit)]
        if self._call_log_limit is None:
            command = [str(BIN / "capillary-sandbox"), *args]
        else:
            launcher = [sys.executable, str(Path(__file__).resolve()), "sandbox"]
            command = [*launcher, *args, "--call-log-limit", str(self._call_log_limit)]
        return subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def start(self) -> None:
        """Start it and wait (at most 60 s) until its admin API answers."""
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
        """SIGTERM, SIGKILL after 10 s."""
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

    @property
    def log_path(self) -> Path:
        """The log file of the current incarnation."""
        return self._logs / f"service-{self.incarnation}.log"

    def _spawn(self) -> None:
        if self._log is not None:
            self._log.close()
        self.incarnation += 1
        self._log = self.log_path.open("ab")
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
    """The six topic names of one run and its consumer group."""

    returns: str
    outcomes: str
    dead_letters: str
    state: str
    retry: str
    routed: str
    group: str

    @classmethod
    def for_run(cls, run_id: str, kind: str = "chaos") -> Topics:
        """Names no other run shares: ``<kind>-<run_id>-returns`` and so on."""
        prefix = f"{kind}-{run_id}"
        return cls(
            returns=f"{prefix}-returns",
            outcomes=f"{prefix}-outcomes",
            dead_letters=f"{prefix}-dead-letters",
            state=f"{prefix}-state",
            retry=f"{prefix}-retry",
            routed=f"{prefix}-routed",
            group=prefix,
        )

    def names(self) -> list[str]:
        """The six topic names."""
        return [
            self.returns,
            self.outcomes,
            self.dead_letters,
            self.state,
            self.retry,
            self.routed,
        ]


def service_env(
    topics: Topics,
    bootstrap: str,
    sandbox_url: str,
    *,
    instance_id: str,
    policy: Path = POLICY,
    rate_limits: Mapping[str, int] | None = None,
    session_timeout_ms: int | None = None,
    extra: Sequence[tuple[str, str]] = (),
) -> dict[str, str]:
    """The service's environment: this run's topics, the sandbox, the policy.

    Inherited ``RETURN_HANDLER_*`` variables are dropped so a developer's shell cannot change
    what is measured; ``extra`` adds to (or overrides) what is set here. ``rate_limits``
    (``RATE_LIMITS`` name to requests a minute) defaults to no limit on any endpoint. Settings the
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
            f"{prefix}KAFKA__ROUTED_TOPIC": topics.routed,
            f"{prefix}KAFKA__GROUP_ID": topics.group,
            f"{prefix}KAFKA__GROUP_INSTANCE_ID": instance_id,
            f"{prefix}CAPILLARY__LOYALTY_BASE_URL": sandbox_url,
            f"{prefix}CAPILLARY__GATEWAY_BASE_URL": sandbox_url,
            f"{prefix}CAPILLARY__OAUTH_BASE_URL": sandbox_url,
            f"{prefix}CAPILLARY__AUTH_MODE": "basic",
            f"{prefix}CAPILLARY__USERNAME": "demo",
            f"{prefix}CAPILLARY__PASSWORD": "demo",
            f"{prefix}POLICY_PATH": str(policy),
            f"{prefix}LOG_FORMAT": "json",
            f"{prefix}LOG_LEVEL": "INFO",
            # Any free port: a developer's service (or a restarted one) may hold 8080.
            f"{prefix}OBSERVABILITY__PORT": "0",
            # Only the final stop waits for it; nothing measured depends on it.
            f"{prefix}SHUTDOWN_GRACE_SECONDS": "10",
        }
    )
    limits = rate_limits or {}
    for name in RATE_LIMITS:
        env[f"{prefix}CAPILLARY__RATE_LIMITS__{name}"] = str(limits.get(name, UNLIMITED))
    if session_timeout_ms is not None:
        env[f"{prefix}KAFKA__SESSION_TIMEOUT_MS"] = str(session_timeout_ms)
    env.update(dict(extra))
    return env


async def create_topics(
    env: dict[str, str], topics: Topics, partitions: int, bootstrap: str, log_path: Path
) -> list[str]:
    """``return-handler topics``; then the state and retry topics if it did not make them.

    Returns the names this run had to create itself (empty once ``topics`` makes all six).
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
    """Delete those of ``names`` that exist."""
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
    """One committed outcome as the watcher read it."""

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
        """When the latest outcome was read (time.monotonic()); 0 before the first."""
        return self.outcomes[-1].arrived if self.outcomes else 0.0

    async def start(self) -> None:
        """Connect and read in the background until :meth:`stop`."""
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
        """Stop reading and close the consumer."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await asyncio.wait_for(self._task, 10)
        await self._consumer.stop()


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class ProcessUsage:
    """CPU time and peak resident memory of one process, from /proc."""

    cpu_seconds: float
    peak_rss_mb: float


def process_usage(pid: int) -> ProcessUsage | None:
    """User plus system CPU seconds (``/proc/<pid>/stat``) and VmHWM (``/proc/<pid>/status``).

    Read while the process is alive (None once it is gone): after its exit only its parent's
    ``wait`` could tell, and ``Popen`` does that without keeping the rusage.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15
    peak_kb = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak_kb = int(line.split()[1])
    return ProcessUsage(cpu_seconds=round(cpu, 2), peak_rss_mb=round(peak_kb / 1024, 1))


def _file_contains(path: Path, needle: str) -> bool:
    try:
        return needle in path.read_text(errors="replace")
    except OSError:
        return False


async def wait_for_log_line(path: Path, needle: str, seconds: float, proc: Any = None) -> bool:
    """Poll ``path`` until a line contains ``needle``; False after ``seconds``.

    ``proc`` (a Popen) ending first also gives False.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _file_contains(path, needle):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        await asyncio.sleep(0.1)
    return False


# --------------------------------------------------------------------------- sandbox launcher


def _serve_sandbox(argv: Sequence[str]) -> int:
    """``capillary-sandbox`` with ``--call-log-limit``: every call of a run stays countable."""
    from capillary_sandbox.faults import FaultConfig, FaultRule
    from capillary_sandbox.server import SandboxConfig, serve_forever

    parser = argparse.ArgumentParser(prog="harness.py sandbox")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed", type=Path, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=None)
    parser.add_argument("--call-log-limit", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    config = SandboxConfig(
        host=args.host,
        port=args.port,
        seed_path=args.seed,
        faults=FaultConfig(default=FaultRule(latency_ms=args.latency_ms)),
        rate_limit_per_minute={"*": args.rate_limit} if args.rate_limit else {},
        call_log_limit=args.call_log_limit,
    )
    asyncio.run(serve_forever(config))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["sandbox"]:
        sys.exit("usage: harness.py sandbox --port N --seed FILE [--latency-ms MS] ...")
    sys.exit(_serve_sandbox(sys.argv[2:]))


def write_result(result: dict[str, Any], out: Path) -> None:
    """The result as indented JSON (the directory made if needed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def run_once(run: Coroutine[Any, Any, dict[str, Any]], out: Path) -> dict[str, Any] | None:
    """Run to its result, write and print it; ``None`` (said why) when it could not finish.

    Ctrl-C, SIGTERM and SIGHUP end the run cleanly, stopping what it started (SIGINT too
    where the shell started us with it ignored, as a background job).
    """

    async def cancellable() -> dict[str, Any]:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, task.cancel)
        return await run

    try:
        result = asyncio.run(cancellable())
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted; everything this run started was stopped")
        return None
    except (RuntimeError, KafkaError, OSError, httpx.HTTPError) as exc:
        say(f"the run could not finish: {type(exc).__name__}: {exc}")
        return None
    write_result(result, out)
    print(json.dumps(result, indent=2))
    return result
