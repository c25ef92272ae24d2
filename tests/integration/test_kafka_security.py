"""Kafka security on a real broker: the service and its tools over SASL_SSL with SCRAM-SHA-512,
and a wrong password, CA, mechanism or protocol stopping ``return-handler run`` at start.

The broker is a second one, started here for this module (``secure_broker.py``): its own
state directory, ports, CA and certificate, and a SCRAM user created when it is formatted.
It never touches the development broker on 9092, and it is stopped when the module ends.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capillary_sandbox import Sandbox, load_seed_file
from service.kafka.reader import read_topic
from service.kafka.topics import ensure_topics
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.settings import KafkaSettings
from service.tools import publish_files
from tests.certificates import make_ca
from tests.integration.secure_broker import SecureBroker
from tests.integration.test_end_to_end import _run_service_until, _settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "events" / "01-full-return.json"
USER = "return-handler"
PASSWORD = f"scram-{uuid.uuid4().hex}"
WRONG_PASSWORD = f"not-{uuid.uuid4().hex}"
PREFIX = "RETURN_HANDLER_KAFKA__"
# Anything a failed start may write beside its one line: none of it is allowed.
NOISE = ("Unclosed", "Task was destroyed", "Traceback", "ResourceWarning", "Exception ignored")
START_DEADLINE_S = 15.0


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A single-node KRaft broker whose only client listener is SASL_SSL (SCRAM-SHA-512)."""
    broker = SecureBroker(tmp_path_factory.mktemp("secure-kafka"), username=USER, password=PASSWORD)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(f"{PASSWORD}\n")
    return path


@pytest.fixture
def secure_kafka(
    secure_broker: SecureBroker, password_file: Path, unique_id: Callable[[str], str]
) -> KafkaSettings:
    """Settings for the secure broker, the password from a mounted file, topics of its own."""
    return KafkaSettings(
        bootstrap_servers=secure_broker.bootstrap_servers,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=USER,
        sasl_password_file=password_file,
        ssl_ca_file=secure_broker.ca.cert_file,
        returns_topic=unique_id("returns"),
        outcomes_topic=unique_id("outcomes"),
        dead_letter_topic=unique_id("dead"),
        routed_topic=unique_id("routed"),
        retry_topic=unique_id("retry"),
        state_topic=unique_id("state"),
        group_id=unique_id("group"),
        fetch_timeout_ms=100,
        commit_interval_ms=50,
    )


async def test_the_service_takes_back_an_example_return_over_sasl_ssl(
    secure_kafka: KafkaSettings, sandbox: Sandbox
) -> None:
    kafka = secure_kafka
    created = await ensure_topics(kafka, partitions=3)
    assert sorted(created) == sorted(
        [
            kafka.returns_topic,
            kafka.routed_topic,
            kafka.retry_topic,
            kafka.state_topic,
            kafka.outcomes_topic,
            kafka.dead_letter_topic,
        ]
    )
    sandbox.load_seed(load_seed_file(ROOT / "examples" / "sandbox-seed.json"))
    settings = _settings(kafka, sandbox).model_copy(
        update={"policy_path": ROOT / "examples" / "policy.yaml"}
    )
    [published] = await publish_files(kafka, [EXAMPLE], kafka.returns_topic)
    assert "ret-20261120-0001" in published

    async def one_outcome() -> None:
        records = await read_topic(kafka, kafka.outcomes_topic, count=1, wait_seconds=60)
        assert records, "no outcome within 60 s"

    await _run_service_until(settings, one_outcome)

    [record] = await read_topic(kafka, kafka.outcomes_topic, count=1, wait_seconds=10)
    outcome = OutcomeEvent.model_validate_json(record.value)
    assert outcome.event.event_id == "ret-20261120-0001"
    assert outcome.status is OutcomeStatus.COMPLETED
    assert outcome.actions
    assert {action.status for action in outcome.actions} == {ActionStatus.REVOKED}
    assert sandbox.calls, "the service reached Capillary"


async def _run(env: dict[str, str], command: str = "run") -> tuple[int, str]:
    """``return-handler <command>`` as a process; its exit status and stderr, within a deadline."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RETURN_HANDLER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", command,
        # Unclosed sockets and transports are reported, not silently collected.
        env={**base, "PYTHONWARNINGS": "always::ResourceWarning", **env},
        cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(START_DEADLINE_S):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # it did not stop at start: never leave it behind
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


def _env(broker: SecureBroker, password_file: Path, **overrides: str) -> dict[str, str]:
    env = {
        f"{PREFIX}BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        f"{PREFIX}SECURITY_PROTOCOL": "SASL_SSL",
        f"{PREFIX}SASL_USERNAME": USER,
        f"{PREFIX}SASL_PASSWORD_FILE": str(password_file),
        f"{PREFIX}SSL_CA_FILE": str(broker.ca.cert_file),
        f"{PREFIX}GROUP_ID": f"security-{uuid.uuid4().hex[:12]}",
        "RETURN_HANDLER_CAPILLARY__USERNAME": "demo",
        "RETURN_HANDLER_CAPILLARY__PASSWORD": "demo",
        "RETURN_HANDLER_LOG_FORMAT": "json",
    }
    env.update({f"{PREFIX}{name}": value for name, value in overrides.items()})
    return env


@pytest.mark.parametrize("command", ["run", "topics"])
async def test_a_wrong_password_stops_at_start_with_one_line_naming_the_password(
    secure_broker: SecureBroker, password_file: Path, command: str
) -> None:
    env = _env(secure_broker, password_file)
    del env[f"{PREFIX}SASL_PASSWORD_FILE"]
    env[f"{PREFIX}SASL_PASSWORD"] = WRONG_PASSWORD
    code, stderr = await _run(env, command)
    assert code == 2, stderr
    [line] = stderr.splitlines()
    assert line.startswith(f"error: Kafka at {secure_broker.bootstrap_servers} refused the SASL")
    assert f"set {PREFIX}SASL_PASSWORD to the password of the user" in line
    assert WRONG_PASSWORD not in stderr
    assert PASSWORD not in stderr
    assert not [word for word in NOISE if word in stderr]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("password-file", f"set {PREFIX}SASL_PASSWORD_FILE to the password"),
        ("another-ca", f"{PREFIX}SSL_CA_FILE must hold the CA certificate (PEM) that signed it"),
        ("mechanism", f"does not offer {PREFIX}SASL_MECHANISM=SCRAM-SHA-256"),
        ("protocol", f"set {PREFIX}SECURITY_PROTOCOL to what its listener expects"),
    ],
    ids=["password-file", "another-ca", "mechanism", "protocol"],
)
async def test_a_wrong_security_setting_stops_run_at_start_with_one_line_naming_it(
    secure_broker: SecureBroker, password_file: Path, tmp_path: Path, change: str, named: str
) -> None:
    env = _env(secure_broker, password_file)
    if change == "password-file":
        wrong = tmp_path / "wrong-password"
        wrong.write_text(WRONG_PASSWORD)
        env[f"{PREFIX}SASL_PASSWORD_FILE"] = str(wrong)
    elif change == "another-ca":
        # A CA of the same name, but not the one that signed the broker's certificate.
        env[f"{PREFIX}SSL_CA_FILE"] = str(make_ca(tmp_path, "test-ca").cert_file)
    elif change == "mechanism":
        env[f"{PREFIX}SASL_MECHANISM"] = "SCRAM-SHA-256"
    else:
        env[f"{PREFIX}SECURITY_PROTOCOL"] = "SASL_PLAINTEXT"
        del env[f"{PREFIX}SSL_CA_FILE"]
    code, stderr = await _run(env)
    assert code == 2, stderr
    [line] = stderr.splitlines()
    assert line.startswith("error: ")
    assert named in line
    assert WRONG_PASSWORD not in stderr
    assert PASSWORD not in stderr
    assert not [word for word in NOISE if word in stderr]
