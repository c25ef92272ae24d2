"""The commands' terminal: their two consoles, the settings they read, and how they fail.

Every ``return-handler`` command (``service/cli.py``) writes results on :data:`OUT` and
everything else on :data:`ERR`, and fails the same way: one line ``error: ...`` on stderr,
then the exit status of how it ended (``exits.py``, the one table).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.text import Text

from service.errors import BrokerError, ConfigurationError, ReturnHandlerError
from service.operate.exits import Ending, ending_of, exit_code
from service.settings import Settings, setting_errors

T = TypeVar("T")

OUT = Console(soft_wrap=True)
# Never wrapped: a log collector keeps each line of stderr as one record.
ERR = Console(stderr=True, soft_wrap=True)


def load_settings() -> Settings:
    """The settings from the environment; a wrong one ends the command, naming it."""
    try:
        return Settings()
    except ValidationError as exc:
        for line in setting_errors(exc):
            ERR.print(line, markup=False, highlight=False)
        ERR.print("Fix the RETURN_HANDLER_* variables above and restart.", highlight=False)
        raise typer.Exit(exit_code(Ending.BAD_INPUT)) from None
    except SettingsError as exc:  # a whole group given as JSON that does not parse
        message = f"invalid settings: {exc}; fix that RETURN_HANDLER_* variable"
        raise fail(message, Ending.BAD_INPUT) from None
    except ReturnHandlerError as exc:
        raise failed(exc) from None


def fail(message: str, ending: Ending) -> typer.Exit:
    """Write ``error: <message>`` as one line on stderr; the exit to raise."""
    ERR.print(Text.assemble(("error: ", "red"), message))
    return typer.Exit(exit_code(ending))


def failed(exc: ReturnHandlerError, message: str | None = None) -> typer.Exit:
    """One line for an error of ours (or ``message`` for it), then its notes; the exit."""
    exit_ = fail(message or str(exc), ending_of(exc))
    # Notes say how to go on (a replay's --resume): after the error, a line each.
    for note in getattr(exc, "__notes__", ()):
        ERR.print(note, markup=False, highlight=False)
    return exit_


def ended(ending: Ending) -> None:
    """Leave with ``ending``'s exit status; when that is 0, just return."""
    if exit_code(ending):
        raise typer.Exit(exit_code(ending))


def run_to_end(
    work: Coroutine[Any, Any, T],
    *,
    explain: Callable[[ReturnHandlerError], typer.Exit] = failed,
) -> T:
    """``work`` run in an event loop of its own; an error of ours ends the command, told by
    ``explain`` (default: its own line)."""
    try:
        return asyncio.run(work)
    except ReturnHandlerError as exc:
        raise explain(exc) from None


def quiet_kafka_client() -> None:
    """Keep aiokafka's own warnings off stderr when logging is not configured."""
    # Without logging configured, Python prints aiokafka's warnings ("Unable connect to ...")
    # raw on stderr beside our one line that says the same and what to do. A handler that
    # drops them silences only that fallback: configured logging still receives them.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())


def kafka_options(settings: Settings) -> dict[str, Any]:
    """The tools' Kafka connection arguments, once a first connection showed they work."""
    from service.operate.connect import checked_options

    quiet_kafka_client()
    return run_to_end(checked_options(settings.kafka))


def time_option(option: str, text: str, *, end_of_day: bool = False) -> datetime:
    """``--since``/``--until`` read (``times.py``); a bad one ends the command, naming it."""
    from service.operate.times import parse_time

    try:
        return parse_time(text, end_of_day=end_of_day)
    except ValueError as exc:
        raise fail(f"bad {option}: {exc}", Ending.BAD_INPUT) from exc


def read_failed(exc: ReturnHandlerError, settings: Settings) -> typer.Exit:
    """inspect's and report's Kafka failures as one line saying what to set; the exit."""
    kafka = settings.kafka
    if isinstance(exc, ConfigurationError) and exc.topic is not None:
        topic = exc.topic
        which = "STATE" if topic == kafka.state_topic else "OUTCOMES"
        return failed(
            exc,
            f"no topic {topic!r} at {kafka.bootstrap_servers}: set "
            f"RETURN_HANDLER_KAFKA__{which}_TOPIC to the {which.lower()} topic's name",
        )
    if isinstance(exc, BrokerError):
        return failed(
            exc,
            f"cannot reach Kafka at {kafka.bootstrap_servers}: check that the broker runs and "
            "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS",
        )
    return failed(exc)


__all__ = [
    "ERR",
    "OUT",
    "ended",
    "fail",
    "failed",
    "kafka_options",
    "load_settings",
    "quiet_kafka_client",
    "read_failed",
    "run_to_end",
    "time_option",
]
