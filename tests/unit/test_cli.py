"""The return-handler command: dry runs, schema checks, settings, clear errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from typer.testing import CliRunner

from service.cli import app
from service.events import ReturnEvent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "events" / "01-full-return.json"
POLICY = ROOT / "examples" / "policy.yaml"


@pytest.fixture
def cli() -> Iterator[CliRunner]:
    # Commands configure logging for the process; give the next test what it had.
    handlers, level = logging.root.handlers[:], logging.root.level
    yield CliRunner()
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)
    structlog.reset_defaults()


def test_plan_json_is_the_plan_of_the_example(cli: CliRunner) -> None:
    result = cli.invoke(app, ["plan", str(EXAMPLE), "--policy", str(POLICY), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    event = ReturnEvent.model_validate_json(EXAMPLE.read_bytes())
    assert plan["event_id"] == event.event_id
    assert plan["decision"] == "take_back"
    assert plan["policy_version"] == "demo-1"
    assert plan["actions"][0]["kind"] == "revoke_loyalty_earn"


def test_plan_table_shows_reasons(cli: CliRunner) -> None:
    result = cli.invoke(app, ["plan", str(EXAMPLE), "--policy", str(POLICY)])
    assert result.exit_code == 0, result.output
    assert "revoke_loyalty_earn" in result.stdout
    assert "full return" in result.stdout


def test_plan_of_an_invalid_event_exits_2_naming_the_field(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"event_id": "x"}')
    result = cli.invoke(app, ["plan", str(bad)])
    assert result.exit_code == 2
    assert "occurred_at" in result.output


def test_plan_with_a_broken_policy_exits_2(cli: CliRunner, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: x\nreturn_window_dayz: 3\n")
    result = cli.invoke(app, ["plan", str(EXAMPLE), "--policy", str(policy)])
    assert result.exit_code == 2
    assert "return_window_dayz" in result.output


def test_plan_without_policy_uses_the_packaged_default(cli: CliRunner) -> None:
    result = cli.invoke(app, ["plan", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["policy_version"] == "default-1"


def test_plan_table_without_policy_shows_the_default_policy(cli: CliRunner) -> None:
    result = cli.invoke(app, ["plan", str(EXAMPLE), "--now", "2026-11-24T12:00:00+00:00"])
    assert result.exit_code == 0, result.output
    assert "Policy default-1" in result.stdout
    assert "revoke_loyalty_earn" in result.stdout


def test_plan_with_an_unknown_registration_source_in_the_policy_exits_2(
    cli: CliRunner, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: x\ncustomer:\n  registration_source_by_channel: {POS: SHOP}\n")
    result = cli.invoke(app, ["plan", str(EXAMPLE), "--policy", str(policy)])
    assert result.exit_code == 2
    assert "customer.registration_source_by_channel.POS" in result.output
    assert "INSTORE" in result.output


def test_schemas_check_fails_on_an_empty_directory(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["schemas", "--check", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "return-handler schemas" in result.output
    written = cli.invoke(app, ["schemas", "--out", str(tmp_path)])
    assert written.exit_code == 0
    assert cli.invoke(app, ["schemas", "--check", "--out", str(tmp_path)]).exit_code == 0


def test_settings_table_lists_topics(cli: CliRunner) -> None:
    result = cli.invoke(app, ["settings"])
    assert result.exit_code == 0
    assert "`RETURN_HANDLER_KAFKA__RETURNS_TOPIC` | `returns`" in result.stdout


def test_run_without_credentials_says_which_setting(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("USERNAME", "PASSWORD", "AUTH_MODE"):
        monkeypatch.delenv(f"RETURN_HANDLER_CAPILLARY__{name}", raising=False)
    result = cli.invoke(app, ["run"])
    assert result.exit_code == 1
    assert "RETURN_HANDLER_CAPILLARY__USERNAME" in result.output
