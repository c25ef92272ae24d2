"""The return-handler command: dry runs, schema checks, settings, clear errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from service.events import ReturnEvent

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "events" / "01-full-return.json"
POLICY = ROOT / "examples" / "policy.yaml"


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


def test_plan_of_the_invalid_example_names_each_bad_field_without_pydantic_s_dump(
    cli: CliRunner,
) -> None:
    bad = ROOT / "examples" / "invalid" / "missing-fields.json"
    result = cli.invoke(app, ["plan", str(bad)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {bad} is not a valid return event (5 problem(s)):",
        "  occurred_at: must be an RFC 3339 date-time with seconds and an offset, such as "
        "2026-11-20T10:15:00+01:00 or 2026-11-20T09:15:00Z",
        "  source: Field required",
        "  order: Field required",
        "  customer: Field required",
        "  amounts: Field required",
    ]
    assert "errors.pydantic.dev" not in result.output


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
    assert result.exit_code == 2
    assert "RETURN_HANDLER_CAPILLARY__USERNAME" in result.output


# What a failed start may write besides its one line: none of it is allowed.
NOISE = ("Unclosed", "Task was destroyed", "Traceback", "ResourceWarning", "Exception ignored")
CREDENTIALS = {
    "RETURN_HANDLER_CAPILLARY__USERNAME": "demo",
    "RETURN_HANDLER_CAPILLARY__PASSWORD": "demo",
}


def _run_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``return-handler run`` as a process, with only the RETURN_HANDLER_* variables given."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("RETURN_HANDLER_")}
    return subprocess.run(
        [sys.executable, "-m", "service", "run"],
        # Unclosed sockets and transports are reported, not silently collected.
        env={**base, "PYTHONWARNINGS": "always::ResourceWarning", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_run_with_bad_values_prints_one_line_per_setting_and_exits_2() -> None:
    done = _run_command(
        {
            **CREDENTIALS,
            "RETURN_HANDLER_KAFKA__SESSION_TIMEOUT_MS": "5",
            "RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL": "TLS",
        }
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "invalid setting RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL: Input should be 'PLAINTEXT', "
        "'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL' (got 'TLS')",
        "invalid setting RETURN_HANDLER_KAFKA__SESSION_TIMEOUT_MS: Input should be greater than "
        "or equal to 6000 (got '5')",
        "Fix the RETURN_HANDLER_* variables above and restart.",
    ]


def test_run_never_echoes_the_value_of_a_misspelt_secret_variable() -> None:
    done = _run_command({**CREDENTIALS, "RETURN_HANDLER_CAPILLARY__PASWORD": "hunter2-secret"})
    assert done.returncode == 2
    assert "RETURN_HANDLER_CAPILLARY__PASWORD" in done.stderr
    assert "hunter2-secret" not in done.stderr


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "RETURN_HANDLER_CAPILLARY__USERNAME"),
        ({"RETURN_HANDLER_CAPILLARY__USERNAME": "demo"}, "RETURN_HANDLER_CAPILLARY__PASSWORD"),
        ({**CREDENTIALS, "RETURN_HANDLER_POLICY_PATH": "/nonexistent/policy.yaml"},
         "RETURN_HANDLER_POLICY_PATH"),
        ({**CREDENTIALS, "RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"},
         "RETURN_HANDLER_KAFKA__SASL_USERNAME"),
        ({**CREDENTIALS, "RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL": "SSL",
          "RETURN_HANDLER_KAFKA__SSL_CA_FILE": "/nonexistent/ca.pem"},
         "cannot read the file in RETURN_HANDLER_KAFKA__SSL_CA_FILE"),
    ],
)  # fmt: skip
def test_run_misconfigured_stops_with_one_line_naming_the_setting_and_exits_2(
    env: dict[str, str], named: str
) -> None:
    done = _run_command(env)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ")
    assert named in line
    assert "restart" in line


def test_run_with_an_unreachable_broker_stops_with_one_line_and_no_noise() -> None:
    servers = f"127.0.0.1:{_closed_port()}"
    done = _run_command(
        {
            **CREDENTIALS,
            "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": servers,
            "RETURN_HANDLER_LOG_FORMAT": "json",
        }
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("error: cannot reach Kafka (reason='[Errno 111] Connect")
    assert servers in line
    assert "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS" in line
    assert not [word for word in NOISE if word in done.stderr]
