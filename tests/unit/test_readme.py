"""The README stays a newcomer's page; the configuration page documents every setting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from service.cli import app
from service.settings import describe_settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "reference" / "configuration.md").read_text(encoding="utf-8")
PASTE = "run `return-handler settings` and paste the table into docs/reference/configuration.md"


def test_the_configuration_page_lists_every_setting_with_its_default() -> None:
    missing = [
        env
        for env, default, _ in describe_settings()
        if f"`{env}` | `{default}`" not in CONFIGURATION
    ]
    assert missing == [], PASTE


def test_the_configuration_page_table_is_what_the_settings_command_prints() -> None:
    table = CliRunner().invoke(app, ["settings"]).stdout
    assert table.startswith("| variable | default | meaning |")
    assert table in CONFIGURATION, PASTE


def test_readme_shows_the_two_commands_before_where_to_read_on() -> None:
    read_on = README.index("\n## Where to read on\n")
    assert README.index("make demo") < read_on
    assert README.index("make test") < read_on


def test_readme_fits_in_10_kb() -> None:
    size = len(README.encode("utf-8"))
    assert size <= 10 * 1024, f"README.md is {size} bytes: move the rest to a page in docs/"


def _nav_pages(entries: list[Any]) -> list[str]:
    """Every page of an mkdocs nav list, depth first."""
    pages: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_readme_points_into_every_section_of_the_site() -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))["nav"]
    linked = set(re.findall(r"\]\(docs/([^)#]+)", README))
    sections = {
        title: _nav_pages(pages)
        for entry in nav
        for title, pages in entry.items()
        if isinstance(pages, list)
    }
    assert {title: bool(linked & set(pages)) for title, pages in sections.items()} == dict.fromkeys(
        sections, True
    )
