"""inspect and report on the command line: what fails before or without Kafka, in one line."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.errors import BrokerError, ConfigurationError
from service.operate.terminal import read_failed
from service.settings import Settings


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_inspect_with_a_bad_since_exits_2_with_one_line(cli: CliRunner) -> None:
    result = cli.invoke(app, ["inspect", "ORD-1", "--since", "last tuesday"])
    assert result.exit_code == 2
    line = _one_line(result.output)
    assert line.startswith("error: bad --since: 'last tuesday' is not an ISO 8601 date or time")
    assert "2026-11-20T10:00:00Z" in line


def test_inspect_without_a_broker_exits_1_naming_the_setting(
    cli: CliRunner, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like every command: 1 for a broker that does not answer (try again), 2 for a setting.
    monkeypatch.setenv("RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{closed_port}")
    result = cli.invoke(app, ["inspect", "ORD-1"])
    assert result.exit_code == 1
    line = _one_line(result.output)
    assert line.startswith("error: cannot reach Kafka")
    assert f"127.0.0.1:{closed_port}" in line
    assert "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS" in line


@pytest.mark.parametrize("which", ["STATE", "OUTCOMES"])
def test_a_missing_topic_names_the_setting_of_that_topic(
    which: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # inspect reads two topics: the line names the one that is missing.
    settings = Settings()
    topic = settings.kafka.state_topic if which == "STATE" else settings.kafka.outcomes_topic
    missing = ConfigurationError(f"topic {topic!r} does not exist on this cluster", topic=topic)
    exit_ = read_failed(missing, settings)
    assert exit_.exit_code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"error: no topic {topic!r}")
    assert f"RETURN_HANDLER_KAFKA__{which}_TOPIC" in line


def test_kafka_lost_while_reading_exits_1_as_when_it_never_answered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The connection check passed, then a read failed: the same status as no broker at all.
    settings = Settings()
    exit_ = read_failed(BrokerError("cannot reach Kafka"), settings)
    assert exit_.exit_code == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"error: cannot reach Kafka at {settings.kafka.bootstrap_servers}")
