"""Each command's ``--help`` names its exit statuses; each one named is what the command returns.

The help is read as an operator reads it. Then every case it names is brought about for real,
each command run as a process (``python -m service``) against the broker (the sandbox as
Capillary for ``run``), and the status it exits with must be the one its help names.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from capillary_sandbox import Sandbox
from service.cli import app
from service.kafka.span import read_span
from service.operate.connect import client_options
from service.operate.exits import COMMAND_EXITS
from service.settings import KafkaSettings
from tests.integration.waiting import until
from tests.unit.operate.build import outcome

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "events" / "01-full-return.json"
INVALID = ROOT / "examples" / "invalid" / "missing-fields.json"
PROCESS_TIMEOUT_S = 90.0
# Below the broker's minimum: every command that reads settings refuses it, naming it.
BAD_SETTING = {"RETURN_HANDLER_KAFKA__SESSION_TIMEOUT_MS": "5"}
KAFKA_DOWN = "Kafka does not answer"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Bench:
    """The broker's topics of one test, the sandbox, a directory: where commands are run."""

    kafka: KafkaSettings
    sandbox: Sandbox
    tmp: Path

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """This test's topics and Capillary, and nothing of the caller's RETURN_HANDLER_*."""
        kafka = self.kafka
        base = {k: v for k, v in os.environ.items() if not k.startswith("RETURN_HANDLER_")}
        return {
            **base,
            "COLUMNS": "200",
            "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "RETURN_HANDLER_KAFKA__RETURNS_TOPIC": kafka.returns_topic,
            "RETURN_HANDLER_KAFKA__ROUTED_TOPIC": kafka.routed_topic,
            "RETURN_HANDLER_KAFKA__RETRY_TOPIC": kafka.retry_topic,
            "RETURN_HANDLER_KAFKA__STATE_TOPIC": kafka.state_topic,
            "RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC": kafka.outcomes_topic,
            "RETURN_HANDLER_KAFKA__DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
            "RETURN_HANDLER_KAFKA__GROUP_ID": kafka.group_id,
            "RETURN_HANDLER_OBSERVABILITY__PORT": "0",
            "RETURN_HANDLER_CAPILLARY__LOYALTY_BASE_URL": self.sandbox.base_url,
            "RETURN_HANDLER_CAPILLARY__GATEWAY_BASE_URL": self.sandbox.base_url,
            "RETURN_HANDLER_CAPILLARY__USERNAME": "demo",
            "RETURN_HANDLER_CAPILLARY__PASSWORD": "demo",
            **(extra or {}),
        }

    async def start(self, *args: str, env: dict[str, str] | None = None) -> Process:
        """``return-handler ARGS`` started as a process."""
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", *args,
            env=self.env(env), cwd=self.tmp,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def status(self, *args: str, env: dict[str, str] | None = None) -> int:
        """The exit status of ``return-handler ARGS``, run to its end."""
        return await _ended(await self.start(*args, env=env))

    async def kafka_down(self, *args: str) -> int:
        """The status of ``ARGS`` when nothing listens at the bootstrap address."""
        closed = f"127.0.0.1:{_closed_port()}"
        return await self.status(*args, env={"RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": closed})

    async def produce(self, topic: str, *values: bytes) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.kafka.bootstrap_servers)
        await producer.start()
        try:
            for value in values:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()

    def events_file(self, count: int) -> Path:
        """A JSON-lines file of ``count`` distinct return events."""
        event = json.loads(EXAMPLE.read_text())
        lines = [json.dumps({**event, "event_id": f"exit-{n}"}) for n in range(count)]
        path = self.tmp / "events.jsonl"
        path.write_text("".join(line + "\n" for line in lines))
        return path


Process = asyncio.subprocess.Process


async def _ended(process: Process) -> int:
    async with asyncio.timeout(PROCESS_TIMEOUT_S):
        out, err = await process.communicate()
    assert process.returncode is not None
    # Shown when a status is not the one named: what the command said.
    print(out.decode()[-2000:], err.decode()[-2000:])
    return process.returncode


# --- run ---------------------------------------------------------------------------------


async def _run_until_sigterm(bench: Bench) -> int:
    process = await bench.start("run", env={"RETURN_HANDLER_LOG_FORMAT": "json"})
    assert process.stderr is not None
    async with asyncio.timeout(PROCESS_TIMEOUT_S):
        while b"service_started" not in await process.stderr.readline():
            assert not process.stderr.at_eof(), "the service ended before it started"
    process.send_signal(signal.SIGTERM)
    return await _ended(process)


async def _run_into_a_flood(bench: Bench) -> int:
    await bench.produce(bench.kafka.returns_topic, *[b"not json"] * 6)
    flood = {"RETURN_HANDLER_RELIABILITY__DEAD_LETTER_MIN_COUNT": "2"}
    return await bench.status("run", env=flood)


# --- replay ------------------------------------------------------------------------------


def _replay_file(bench: Bench, count: int, *args: str) -> list[str]:
    """``replay`` of a file of ``count`` events, its manifests in this test's directory."""
    path, state = bench.events_file(count), bench.tmp / "replays"
    return [
        "replay",
        *("--source", "file", "--file", str(path), "--reason", "exit"),
        *("--state-dir", str(state)),
        *args,
    ]


async def _replay_until_ctrl_c(bench: Bench) -> int:
    # No service runs: the first event is published, nothing answers; Ctrl-C then.
    connection = client_options(bench.kafka)

    async def on_returns() -> int:
        return len([r async for r in read_span(connection, bench.kafka.returns_topic)])

    # Other cases of this test may have published already: this run's record comes after.
    before = await on_returns()
    window = ("--execute", "--window", "1", "--grace", "0.5")
    process = await bench.start(*_replay_file(bench, 3, *window))

    async def published() -> bool:
        return await on_returns() > before

    await until(published, "the replay's first event on the returns topic")
    process.send_signal(signal.SIGINT)
    return await _ended(process)


# --- inspect -----------------------------------------------------------------------------


async def _inspect_found(bench: Bench) -> int:
    written = outcome(event_id="exit-found", order_id="ORD-EXIT")
    await bench.produce(bench.kafka.outcomes_topic, written.model_dump_json().encode())
    return await bench.status("inspect", "ORD-EXIT")


Scenario = Callable[[Bench], Awaitable[int]]


def _reading_a_topic(command: str, records: str) -> dict[str, Scenario]:
    """``outcomes`` and ``dead-letters``: a topic read from its start, for a while."""
    return {
        "read": lambda b: b.status(command, "--timeout", "1"),
        f"fewer than --count {records} arrived within --timeout": lambda b: b.status(
            command, "--count", "1", "--timeout", "1"
        ),
        KAFKA_DOWN: lambda b: b.kafka_down(command, "--timeout", "1"),
        "a setting is wrong": lambda b: b.status(command, env=BAD_SETTING),
    }


SCENARIOS: dict[str, dict[str, Scenario]] = {
    "version": {"printed": lambda b: b.status("version")},
    "settings": {"printed": lambda b: b.status("settings")},
    "run": {
        "stopped by SIGTERM or SIGINT": _run_until_sigterm,
        KAFKA_DOWN: lambda b: b.kafka_down("run"),
        "stopped on an error, such as a flood of dead letters": _run_into_a_flood,
        "a setting or the policy file is wrong": lambda b: b.status(
            "run", env={"RETURN_HANDLER_POLICY_PATH": "/nonexistent/policy.yaml"}
        ),
    },
    "plan": {
        "planned": lambda b: b.status("plan", str(EXAMPLE)),
        "the event file or the policy file is wrong": lambda b: b.status("plan", str(INVALID)),
    },
    "replay": {
        "previewed, or every event answered": lambda b: b.status(*_replay_file(b, 2)),
        KAFKA_DOWN: lambda b: b.kafka_down("replay", "--source", "returns", "--reason", "x"),
        "no outcome came back for --idle-timeout seconds (resumable)": lambda b: b.status(
            *_replay_file(b, 2, "--execute", "--idle-timeout", "1")
        ),
        "the command cannot be done as asked (nothing published)": lambda b: b.status(
            "replay", "--source", "returns"
        ),
        "stopped by Ctrl-C (resumable)": _replay_until_ctrl_c,
    },
    "schemas": {
        "written, or they match the models (--check)": lambda b: b.status(
            "schemas", "--out", str(b.tmp / "schemas")
        ),
        "they differ from the models (--check)": lambda b: b.status(
            "schemas", "--check", "--out", str(b.tmp / "none")
        ),
    },
    "topics": {
        "the topics exist": lambda b: b.status("topics"),
        KAFKA_DOWN: lambda b: b.kafka_down("topics"),
        "a setting is wrong": lambda b: b.status("topics", env=BAD_SETTING),
    },
    "publish": {
        "every file published": lambda b: b.status("publish", str(EXAMPLE)),
        "a file is not a valid return event (nothing published)": lambda b: b.status(
            "publish", str(EXAMPLE), str(INVALID)
        ),
        KAFKA_DOWN: lambda b: b.kafka_down("publish", str(EXAMPLE)),
        "a setting is wrong": lambda b: b.status("publish", str(EXAMPLE), env=BAD_SETTING),
    },
    "outcomes": _reading_a_topic("outcomes", "outcomes"),
    "dead-letters": _reading_a_topic("dead-letters", "dead letters"),
    "inspect": {
        "found": _inspect_found,
        "nothing matches the id": lambda b: b.status("inspect", "ORD-NONE"),
        KAFKA_DOWN: lambda b: b.kafka_down("inspect", "ORD-NONE"),
        "a setting, a topic or --since is wrong": lambda b: b.status(
            "inspect", "ORD-NONE", "--since", "last tuesday"
        ),
    },
    "report": {
        "reported": lambda b: b.status("report", "--since", "2026-01-01"),
        KAFKA_DOWN: lambda b: b.kafka_down("report", "--since", "2026-01-01"),
        "a setting, a topic, a time or --chart is wrong": lambda b: b.status(
            "report", "--since", "last tuesday"
        ),
    },
}


def named_statuses(command: str) -> dict[str, int]:
    """What ``command --help`` says each exit status means: meaning -> status."""
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    found = re.search(r"Exit status: (.+?)\.(?: |$)", text)
    assert found is not None, f"{command} --help names no exit status: {text}"
    named: dict[str, int] = {}
    for line in found.group(1).split("; "):
        code, meaning = line.split(" ", 1)
        named[meaning] = int(code)
    return named


def test_every_command_names_its_exit_statuses_and_each_has_a_case_here() -> None:
    commands = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback}
    assert commands == set(COMMAND_EXITS) == set(SCENARIOS)
    for command in commands:
        assert set(named_statuses(command)) == set(SCENARIOS[command]), command


@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", sorted(SCENARIOS))
async def test_each_exit_status_a_help_names_is_the_one_the_command_returns(
    command: str, kafka: KafkaSettings, sandbox: Sandbox, tmp_path: Path
) -> None:
    named = named_statuses(command)
    bench = Bench(kafka, sandbox, tmp_path)
    returned = {meaning: await SCENARIOS[command][meaning](bench) for meaning in named}
    assert returned == named
    # Every command names at least how it succeeds; those with settings, how they fail.
    assert 0 in named.values()
