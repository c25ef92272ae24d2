"""``return-handler replay``: what it refuses, in one line and exit code 2, before any Kafka;
what it passes on."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.operate import replay
from service.operate.exits import Ending
from tests.factories import event_bytes


def _replay(cli: CliRunner, *args: str) -> tuple[int, str]:
    result = cli.invoke(app, ["replay", *args])
    return result.exit_code, " ".join(result.output.split())


def test_replay_refuses_a_missing_or_empty_reason(cli: CliRunner) -> None:
    code, output = _replay(cli, "--source", "returns")
    assert code == 2
    assert "--reason is required" in output
    assert _replay(cli, "--source", "returns", "--reason", " ")[0] == 2


def test_replay_names_a_missing_file_and_a_bad_line(cli: CliRunner, tmp_path: Path) -> None:
    code, output = _replay(
        cli, "--source", "file", "--file", str(tmp_path / "none.jsonl"), "--reason", "x"
    )
    assert (code, "no such file" in output) == (2, True)
    bad = tmp_path / "events.jsonl"
    bad.write_bytes(event_bytes(event_id="a") + b"\nnot json\n")
    code, output = _replay(cli, "--source", "file", "--file", str(bad), "--reason", "x")
    assert code == 2
    assert "line 2 is not a valid return event: not JSON" in output


def test_replay_needs_a_source_and_known_error_types(cli: CliRunner) -> None:
    assert "--source is required" in _replay(cli, "--reason", "x")[1]
    code, output = _replay(cli, "--source", "dead-letters", "--error-type", "typo", "--reason", "x")
    assert code == 2
    assert "json_invalid" in output


def test_resume_takes_an_id_it_knows_and_nothing_else(cli: CliRunner, tmp_path: Path) -> None:
    code, output = _replay(cli, "--resume", "nope", "--state-dir", str(tmp_path))
    assert (code, "not a replay id" in output) == (2, True)
    code, output = _replay(cli, "--resume", "a" * 32, "--state-dir", str(tmp_path))
    assert (code, f"no replay {'a' * 32}" in output) == (2, True)
    code, output = _replay(cli, "--resume", "a" * 32, "--source", "returns")
    assert (code, "leave out --source" in output) == (2, True)


def test_include_cancelled_reaches_the_request_and_is_off_by_default(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[replay.ReplayCommand] = []

    def main(settings: object, command: replay.ReplayCommand, **consoles: object) -> Ending:
        asked.append(command)
        return Ending.DONE

    monkeypatch.setattr(replay, "main", main)
    select = ["--source", "returns", "--reason", "audit"]
    assert _replay(cli, *select, "--include-cancelled")[0] == 0
    assert _replay(cli, *select)[0] == 0
    assert [c.request.include_cancelled for c in asked if c.request] == [True, False]


@pytest.mark.parametrize(
    ("ending", "code"), [(Ending.DONE, 0), (Ending.NO_ANSWER, 1), (Ending.STOPPED, 130)]
)
def test_how_the_replay_ended_is_its_exit_status(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, ending: Ending, code: int
) -> None:
    monkeypatch.setattr(replay, "main", lambda *args, **kwargs: ending)
    assert _replay(cli, "--source", "returns", "--reason", "audit")[0] == code
