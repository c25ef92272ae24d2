"""The ``capillary-sandbox`` command."""

from __future__ import annotations

from pathlib import Path

import structlog
from typer.testing import CliRunner

from capillary_sandbox.cli import app


def test_sandbox_with_an_invalid_fault_file_exits_2(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("default:\n  error_rate: 7\n")
    result = CliRunner().invoke(app, ["--faults", str(faults)])
    assert result.exit_code == 2
    assert "error_rate" in result.output


def test_refused_configuration_leaves_logging_alone(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("default:\n  error_rate: 7\n")
    CliRunner().invoke(app, ["--faults", str(faults)])

    # Logging configured during the run would still point at the runner's closed stderr.
    structlog.get_logger("after-cli").info("still_writable")


def test_invalid_oauth_header_name_exits_2() -> None:
    result = CliRunner().invoke(app, ["--oauth-header-name", ""])

    assert result.exit_code == 2
    assert "oauth_header_name" in result.output
