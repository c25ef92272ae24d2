"""Fixtures shared by the unit tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from typer.testing import CliRunner


@pytest.fixture
def cli() -> Iterator[CliRunner]:
    """A runner for the CLI; commands configure logging for the process, so the next test
    gets back what it had."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield CliRunner()
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)
    structlog.reset_defaults()
