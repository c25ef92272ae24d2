"""What ``return-handler replay`` is asked to do, checked once, where every check lives.

:meth:`ReplayCommand.from_options` turns the command line into a command: a new replay
(:class:`ReplayRequest`: which events and why) or a resume, and how the run goes
(:class:`RunOptions`). Each check raises an :class:`OperatorInputError` that names the option
and says what to give instead, before anything reads Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from service.errors import OperatorInputError
from service.kafka.span import Span
from service.operate.replay.manifest import DEFAULT_STATE_DIR
from service.operate.sources import (
    ERROR_TYPES,
    Filters,
    SourceKind,
    parse_offsets,
    parse_time,
)
from service.outcome import OutcomeStatus


@dataclass(frozen=True)
class ReplayRequest:
    """Which events to replay and why; refused when made if the combination cannot be done.

    ``reason`` is kept stripped and ``file`` absolute (a resume reads it again from elsewhere).
    """

    source: SourceKind
    reason: str
    filters: Filters = field(default_factory=Filters)
    file: Path | None = None
    include_done: bool = False
    allow_reissue: frozenset[str] = frozenset()
    offsets: tuple[str, ...] = ()
    """``--offsets`` as given, for the manifest."""
    include_cancelled: bool = False
    """Replay returns a cancellation gave back since, too (they are taken back again)."""

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise OperatorInputError(
                "--reason is required: say why these events are replayed (it goes into every "
                "outcome)",
                option="--reason",
            )
        # Frozen: the normal forms are set once, here, instead of by every caller.
        object.__setattr__(self, "reason", self.reason.strip())
        if self.file is not None:
            object.__setattr__(self, "file", self.file.resolve())
        span = self.filters.span
        if self.source is SourceKind.FILE:
            if self.file is None:
                raise OperatorInputError("--source file needs --file PATH", option="--file")
            if span.since or span.until or span.offsets:
                raise OperatorInputError(
                    "--since, --until and --offsets select records of a topic, not lines of a file",
                    option="--source",
                )
        elif self.file is not None:
            raise OperatorInputError("--file goes with --source file", option="--file")
        if self.filters.error_types and self.source is not SourceKind.DEAD_LETTERS:
            raise OperatorInputError(
                "--error-type selects dead letters: use it with --source dead-letters",
                option="--error-type",
            )
        if self.filters.statuses and self.source is not SourceKind.OUTCOMES:
            raise OperatorInputError(
                "--status selects outcomes: use it with --source outcomes", option="--status"
            )
        if span.since is not None and span.until is not None and span.since > span.until:
            raise OperatorInputError(
                "--since is after --until: give the earlier time to --since", option="--since"
            )


@dataclass(frozen=True)
class RunOptions:
    """How a run goes, for every step of it: one object instead of five parameters.

    At most ``window`` events wait for their outcome; ``stop`` (the first Ctrl-C) ends
    publishing and waits up to ``grace_seconds`` for what is in flight, unless ``abandon``
    (the second) is set too; ``idle_seconds`` without an answer gives up, resumable.
    """

    window: int = 50
    grace_seconds: float = 10.0
    idle_seconds: float = 600.0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    abandon: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.window < 1:
            raise OperatorInputError("--window must be at least 1", option="--window")


@dataclass(frozen=True)
class ReplayCommand:
    """The whole command: a new replay (``request``) or a resume (``resume``), and its run."""

    request: ReplayRequest | None = None
    resume: str | None = None
    """The id of a stopped run to go on with."""
    execute: bool = False
    show: int = 3
    """Plans of the first N events to print with the preview."""
    as_json: bool = False
    state_dir: Path = DEFAULT_STATE_DIR
    run: RunOptions = field(default_factory=RunOptions)

    @classmethod
    def from_options(
        cls,
        *,
        source: SourceKind | None = None,
        reason: str | None = None,
        file: Path | None = None,
        since: str | None = None,
        until: str | None = None,
        offsets: Sequence[str] = (),
        error_types: Sequence[str] = (),
        statuses: Sequence[OutcomeStatus] = (),
        promotion: str | None = None,
        event_ids: Sequence[str] = (),
        include_done: bool = False,
        include_cancelled: bool = False,
        allow_reissue: Sequence[str] = (),
        execute: bool = False,
        show: int = 3,
        as_json: bool = False,
        window: int = 50,
        resume: str | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
        grace_seconds: float = 10.0,
        idle_seconds: float = 600.0,
    ) -> ReplayCommand:
        """The command line, checked: the first thing wrong is the one error raised."""
        run = RunOptions(window=window, grace_seconds=grace_seconds, idle_seconds=idle_seconds)
        asked = cls(show=show, as_json=as_json, state_dir=state_dir, run=run)
        if resume is not None:
            if source is not None or execute or reason is not None:
                raise OperatorInputError(
                    "--resume takes the replay as it was started: leave out --source, --reason "
                    "and --execute",
                    option="--resume",
                )
            return replace(asked, resume=resume)
        if source is None:
            raise OperatorInputError(
                "--source is required (dead-letters, outcomes, returns or file)", option="--source"
            )
        if as_json and execute:
            raise OperatorInputError(
                "--json prints the preview; leave it out with --execute", option="--json"
            )
        unknown = sorted(set(error_types) - set(ERROR_TYPES))
        if unknown:
            raise OperatorInputError(
                f"--error-type {', '.join(unknown)}: use {', '.join(ERROR_TYPES)}",
                option="--error-type",
            )
        filters = Filters(
            span=Span(
                since=parse_time(since, "--since") if since else None,
                until=parse_time(until, "--until", end_of_day=True) if until else None,
                offsets=parse_offsets(offsets),
            ),
            error_types=frozenset(error_types),
            statuses=frozenset(statuses),
            event_ids=frozenset(event_ids),
            promotion=promotion,
        )
        request = ReplayRequest(
            source=source,
            reason=reason or "",
            file=file,
            filters=filters,
            include_done=include_done,
            allow_reissue=frozenset(allow_reissue),
            offsets=tuple(offsets),
            include_cancelled=include_cancelled,
        )
        return replace(asked, request=request, execute=execute)


__all__ = ["ReplayCommand", "ReplayRequest", "RunOptions"]
