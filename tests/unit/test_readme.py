"""The README documents every setting the code has."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from service.cli import app
from service.settings import describe_settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_lists_every_setting_with_its_default() -> None:
    missing = [
        env for env, default, _ in describe_settings() if f"`{env}` | `{default}`" not in README
    ]
    assert missing == [], "run `return-handler settings` and paste the table into README.md"


def test_readme_settings_table_is_what_the_settings_command_prints() -> None:
    table = CliRunner().invoke(app, ["settings"]).stdout
    assert table.startswith("| variable | default | meaning |")
    assert table in README, "run `return-handler settings` and paste the table into README.md"


def test_readme_shows_the_two_commands_first() -> None:
    assert README.index("make demo") < README.index("## Configuration")
    assert "make test" in README
