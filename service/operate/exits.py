"""How a ``return-handler`` command ends, and its exit status: one table for every command.

A command ends with an :class:`Ending`, or with an error of ours (``service/errors.py``),
which :func:`ending_of` places. :data:`EXIT_CODES` is the only mapping to a status, and
:data:`COMMAND_EXITS` says which endings each command has and how its help words them:
``--help`` names them (:func:`exits_help`), so help and code agree.

The convention, as docs/reference/errors.md gives it: 0 done; 1 something
that trying again (or looking) may cure: Kafka does not answer, nothing matched, nothing
came back; 2 the command cannot be done as asked: an option, a file or a setting to fix,
nothing touched; 130 stopped by Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

from service.errors import BrokerError, ConfigurationError, OperatorInputError, ReturnHandlerError


class Ending(Enum):
    """How a command ended."""

    DONE = "done"
    NOTHING_FOUND = "nothing matched what was asked"
    TOO_FEW = "fewer records than --count arrived in time"
    OUT_OF_DATE = "the files differ from what they are checked against"
    NO_ANSWER = "no outcome came back"
    STOPPED = "stopped by Ctrl-C"
    KAFKA_DOWN = "Kafka does not answer"
    FAILED = "stopped on an error"
    BAD_INPUT = "an option, a file or a setting is wrong"


EXIT_CODES: Mapping[Ending, int] = MappingProxyType(
    {
        Ending.DONE: 0,
        Ending.NOTHING_FOUND: 1,
        Ending.TOO_FEW: 1,
        Ending.OUT_OF_DATE: 1,
        Ending.NO_ANSWER: 1,
        Ending.KAFKA_DOWN: 1,
        Ending.FAILED: 1,
        Ending.BAD_INPUT: 2,
        Ending.STOPPED: 130,
    }
)


_KAFKA_DOWN = "Kafka does not answer"
_TOOL = {Ending.KAFKA_DOWN: _KAFKA_DOWN, Ending.BAD_INPUT: "a setting is wrong"}

COMMAND_EXITS: Mapping[str, Mapping[Ending, str]] = MappingProxyType(
    {
        "version": {Ending.DONE: "printed"},
        "settings": {Ending.DONE: "printed"},
        "run": {
            Ending.DONE: "stopped by SIGTERM or SIGINT",
            Ending.KAFKA_DOWN: _KAFKA_DOWN,
            Ending.FAILED: "stopped on an error, such as a flood of dead letters",
            Ending.BAD_INPUT: "a setting or the policy file is wrong",
        },
        "plan": {
            Ending.DONE: "planned",
            Ending.BAD_INPUT: "the event file or the policy file is wrong",
        },
        "replay": {
            Ending.DONE: "previewed, or every event answered",
            Ending.KAFKA_DOWN: _KAFKA_DOWN,
            Ending.NO_ANSWER: "no outcome came back for --idle-timeout seconds (resumable)",
            Ending.BAD_INPUT: "the command cannot be done as asked (nothing published)",
            Ending.STOPPED: "stopped by Ctrl-C (resumable)",
        },
        "schemas": {
            Ending.DONE: "written, or they match the models (--check)",
            Ending.OUT_OF_DATE: "they differ from the models (--check)",
        },
        "topics": {Ending.DONE: "the topics exist", **_TOOL},
        "publish": {
            Ending.DONE: "every file published",
            Ending.FAILED: "a file is not a valid return event (nothing published)",
            **_TOOL,
        },
        "outcomes": {
            Ending.DONE: "read",
            Ending.TOO_FEW: "fewer than --count outcomes arrived within --timeout",
            **_TOOL,
        },
        "dead-letters": {
            Ending.DONE: "read",
            Ending.TOO_FEW: "fewer than --count dead letters arrived within --timeout",
            **_TOOL,
        },
        "inspect": {
            Ending.DONE: "found",
            Ending.NOTHING_FOUND: "nothing matches the id",
            Ending.KAFKA_DOWN: _KAFKA_DOWN,
            Ending.BAD_INPUT: "a setting, a topic or --since is wrong",
        },
        "report": {
            Ending.DONE: "reported",
            Ending.KAFKA_DOWN: _KAFKA_DOWN,
            Ending.BAD_INPUT: "a setting, a topic, a time or --chart is wrong",
        },
    }
)
"""Per command: the endings it has, each as its help words it (no ``;`` in the words)."""


def ending_of(error: ReturnHandlerError) -> Ending:
    """The ending an error of ours makes: a thing to fix, Kafka away, or another failure."""
    if isinstance(error, OperatorInputError | ConfigurationError):
        return Ending.BAD_INPUT
    if isinstance(error, BrokerError):
        return Ending.KAFKA_DOWN
    return Ending.FAILED


def exit_code(end: Ending | ReturnHandlerError) -> int:
    """The exit status of a command that ended so."""
    return EXIT_CODES[end if isinstance(end, Ending) else ending_of(end)]


def exits_help(command: str) -> str:
    """The help's sentence naming ``command``'s exit statuses, each with its meaning there.

    Listed by status: ``Exit status: 0 found; 1 nothing matches the id; 1 Kafka ...``.
    """
    ordered = sorted(COMMAND_EXITS[command].items(), key=lambda line: EXIT_CODES[line[0]])
    return "Exit status: " + "; ".join(f"{EXIT_CODES[end]} {text}" for end, text in ordered) + "."


def command_help(text: str, command: str) -> str:
    """``command``'s whole help: ``text``, then the paragraph naming its exit statuses."""
    # Typer keeps the line breaks of help paragraphs: each paragraph is one string.
    return f"{text}\n\n{exits_help(command)}"


__all__ = [
    "COMMAND_EXITS",
    "EXIT_CODES",
    "Ending",
    "command_help",
    "ending_of",
    "exit_code",
    "exits_help",
]
