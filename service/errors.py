"""The one exception hierarchy of return-handler.

Every error says what an operator should do next (``next_step``) and carries its
context as keyword fields for the message, never secrets; what code decides on is a
typed attribute (``CapillaryError.status``, ``BrokerError.fenced``,
``ConfigurationError.setting`` and ``.topic``), never a key of ``context``::

    ReturnHandlerError
    ├── ConfigurationError        a setting or the policy file is wrong: fix it, restart
    ├── InvalidEventError         not JSON, or not a valid return event
    ├── CapillaryError            talking to Capillary failed as a whole (not one item)
    │   ├── CapillaryAuthError    credentials refused or token not issued
    │   ├── CapillaryTransientError  5xx, 429, timeout, connection: retried, then reported
    │   └── CapillaryUnavailableError  Capillary down or refusing us: the service pauses
    │       └── CapillaryInterruptedError  ...part-way through an event: what it did is kept
    ├── DeadLetterFloodError      too many dead letters: a producer or schema changed
    ├── BrokerError               Kafka refused or lost something we cannot recover here
    └── OperatorInputError        an operator's tool was asked for something it cannot do

Final business refusals (a coupon already redeemed, a customer not found) are
*results*, not exceptions: they travel in the outcome event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from service.outcome import ActionResult


class ReturnHandlerError(Exception):
    """Root of every error return-handler raises on purpose."""

    next_step: ClassVar[str] = "Read the message and the log line with the same event_id."

    def __init__(self, message: str, /, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        details = ", ".join(f"{key}={value!r}" for key, value in sorted(self.context.items()))
        text = f"{self.message} ({details})" if details else self.message
        return f"{text}. Next: {self.next_step}"


class ConfigurationError(ReturnHandlerError):
    """A setting, a secret file or the policy is missing or inconsistent."""

    next_step = "Fix the named setting (RETURN_HANDLER_* variable or policy file) and restart."

    def __init__(
        self,
        message: str,
        /,
        *,
        setting: str | None = None,
        topic: str | None = None,
        **context: Any,
    ) -> None:
        named = {"setting": setting, "topic": topic}
        super().__init__(message, **{k: v for k, v in named.items() if v is not None}, **context)
        self.setting = setting
        """The ``RETURN_HANDLER_*`` variable (or policy key) to fix, when one is known."""
        self.topic = topic
        """The Kafka topic the setting names, when the problem is that topic."""


class InvalidEventError(ReturnHandlerError):
    """The bytes are not JSON, or the JSON is not a valid return event."""

    next_step = "Inspect the dead-letter message; fix the producer, then replay it."


class CapillaryError(ReturnHandlerError):
    """A call to Capillary failed as a whole (no per-item answer came back)."""

    def __init__(self, message: str, /, *, status: int | None = None, **context: Any) -> None:
        if status is not None:
            context["status"] = status
        super().__init__(message, **context)
        self.status = status
        """The HTTP status of the answer, when one came."""


class CapillaryAuthError(CapillaryError):
    """Capillary refused our credentials, or no OAuth token could be had."""

    next_step = (
        "Check RETURN_HANDLER_CAPILLARY__* credentials (or the mounted secret files); "
        "events stay unprocessed until fixed."
    )


class CapillaryTransientError(CapillaryError):
    """Capillary is unavailable, slow, or asks us to slow down; trying again may work."""

    next_step = (
        "Nothing to do if it passes; if it persists, check Capillary's status and the rate limits."
    )


class CapillaryUnavailableError(CapillaryError):
    """Capillary (or our access to it) failed for every event, not for one: pause, probe."""

    next_step = (
        "Nothing to do if it passes: the service pauses its partitions and probes Capillary. "
        "If it persists, check Capillary's status, the base URLs and the credentials."
    )


class CapillaryInterruptedError(CapillaryUnavailableError):
    """Capillary became unavailable part-way through an event's actions.

    ``done`` holds the results of the actions that finished before (the event's state keeps
    them, so a give-back confirmed before the outage is not made or doubted again);
    ``reached`` names the give-back actions whose call may have reached Capillary without
    an answer that says so.
    """

    def __init__(
        self,
        message: str,
        /,
        *,
        done: Sequence[ActionResult] = (),
        reached: frozenset[str] = frozenset(),
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        self.done = tuple(done)
        self.reached = reached


class DeadLetterFloodError(ReturnHandlerError):
    """More input went to the dead-letter topic than the cap allows: not bad luck."""

    next_step = (
        "Look at the dead-letter topic (return-handler dead-letters): a producer or the event "
        "schema changed. Fix it, then restart; raise "
        "RETURN_HANDLER_RELIABILITY__DEAD_LETTER_MAX_SHARE only if the share is expected."
    )


class BrokerError(ReturnHandlerError):
    """Kafka refused or lost something that the service cannot recover from here."""

    next_step = (
        "Check that the brokers in RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS answer, then restart."
    )

    def __init__(self, message: str, /, *, fenced: bool = False, **context: Any) -> None:
        if fenced:
            context["fenced"] = True
        super().__init__(message, **context)
        self.fenced = fenced
        """A newer owner of the partition took its transactional id over: give it up."""


class OperatorInputError(ReturnHandlerError):
    """An operator's tool (replay, inspect, report) cannot do what its command line asks.

    A missing file, a bad line in it, a topic that does not exist, a selection that matches
    nothing: the message names which, and the command exits without touching anything.
    """

    next_step = (
        "Fix the command line (or the file it names) as the message says, then run it again."
    )
