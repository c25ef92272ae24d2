"""The ``capillary-sandbox`` command."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from capillary_sandbox.cli import app


def test_sandbox_with_an_invalid_fault_file_exits_2(tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("default:\n  error_rate: 7\n")
    result = CliRunner().invoke(app, ["--faults", str(faults)])
    assert result.exit_code == 2
    assert "error_rate" in result.output
