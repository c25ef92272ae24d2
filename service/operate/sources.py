"""Where a replay takes its events from: dead letters, outcomes, a part of returns, a file.

Each source gives candidates: the bytes to publish again, where they were read
(``topic:partition:offset`` or ``file:NAME:LINE``, as an outcome's ``replay.source`` names
it) and, when the bytes are a valid event, the event. The filters a record itself answers
(its time, its offset, the dead letter's error type, the outcome's status, the event id)
are applied here; the ones that need the plan (a promotion) or the outcomes' history
(already done, already given back) are applied when the replay is chosen (``preview.py``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.errors import OperatorInputError
from service.events import ReturnEvent
from service.kafka.span import Span, TopicRecord, read_span
from service.operate import times
from service.outcome import OutcomeEvent, OutcomeStatus, SourceRecord
from service.pipeline.records import DeadLetter, Record
from service.pipeline.validate import validate

ERROR_TYPE_HEADER = "rh-error-type"
ERROR_TYPES = ("json_invalid", "invalid_event", "empty", "rules_error")
"""What the service writes in a dead letter's ``rh-error-type`` (``service/kafka/headers.py``)."""


class SourceKind(StrEnum):
    """Where a replay reads the events it re-drives."""

    DEAD_LETTERS = "dead-letters"
    OUTCOMES = "outcomes"
    RETURNS = "returns"
    FILE = "file"


@dataclass(frozen=True)
class Filters:
    """What to take from a source. Empty sets mean "any"."""

    span: Span = field(default_factory=Span)
    """Time range and offsets of the source topic's records (not for a file)."""
    error_types: frozenset[str] = frozenset()
    """Dead letters: their ``rh-error-type``."""
    statuses: frozenset[OutcomeStatus] = frozenset()
    """Outcomes: their status."""
    event_ids: frozenset[str] = frozenset()
    promotion: str | None = None
    """Events whose plan has an action on this promotion (applied with the plan)."""


@dataclass(frozen=True)
class Candidate:
    """One record (or file line) a replay may publish again."""

    source: str
    """Where the bytes were read: ``topic:partition:offset`` or ``file:NAME:LINE``."""
    value: bytes
    event: ReturnEvent | None
    """The event, when the bytes are a valid one."""
    invalid: str | None = None
    """Why the bytes are not a valid event, when they are not."""
    timestamp_ms: int = 0
    selected_by: str | None = None
    """For the outcomes source: the outcome (``topic:partition:offset``) that chose it."""

    @property
    def event_id(self) -> str | None:
        """The event id, when the bytes are a valid event."""
        return self.event.event_id if self.event is not None else None


def candidate(source: str, value: bytes | None, timestamp_ms: int = 0) -> Candidate:
    """The bytes validated exactly as the service validates them."""
    topic, partition, offset = _split_position(source)
    # The service's own validation, so "still invalid" means what a dead letter means.
    parsed = validate(
        Record(topic=topic, partition=partition, offset=offset, key=None, value=value)
    )
    if isinstance(parsed, DeadLetter):
        return Candidate(source, value or b"", None, parsed.reason, timestamp_ms)
    return Candidate(source, value or b"", parsed, None, timestamp_ms)


def from_dead_letters(records: Iterable[TopicRecord], filters: Filters) -> list[Candidate]:
    """Dead letters of the wanted error types, validated again: fixed ones are events now."""
    found = []
    for record in records:
        if filters.error_types and record.header(ERROR_TYPE_HEADER) not in filters.error_types:
            continue
        found.append(candidate(record.position, record.value, record.timestamp_ms))
    return _in_order(c for c in found if _wanted(c, filters))


def from_returns(records: Iterable[TopicRecord], filters: Filters) -> list[Candidate]:
    """Records of the returns topic, as they were read."""
    found = (candidate(r.position, r.value, r.timestamp_ms) for r in records)
    return _in_order(c for c in found if _wanted(c, filters))


def from_file(path: Path, filters: Filters) -> list[Candidate]:
    """Every non-blank line of a JSON-lines file, one event each; a bad line is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise OperatorInputError(f"{path}: no such file", file=str(path)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise OperatorInputError(f"{path} cannot be read: {exc}", file=str(path)) from exc
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        # file:NAME:LINE names the line in outcomes; the manifest keeps the whole path.
        found.append(candidate(f"file:{path.name}:{number}", line.encode()))
        if found[-1].invalid is not None:
            raise OperatorInputError(
                f"{path} line {number} is not a valid return event: {found[-1].invalid}",
                file=str(path),
                line=number,
            )
    return [c for c in found if _wanted(c, filters)]


@dataclass(frozen=True)
class OutcomeChoice:
    """An outcome that matched, and the record holding the event it answers."""

    outcome: str
    """The outcome's position."""
    event_id: str
    origin: str | None
    """``topic:partition:offset`` of the event's bytes; ``None`` when the outcome names none."""
    timestamp_ms: int


def choose_outcomes(records: Iterable[TopicRecord], filters: Filters) -> list[OutcomeChoice]:
    """Outcomes in the span with a wanted status and event id, and where their event is."""
    chosen = []
    for record in records:
        if not in_span(record, filters.span):
            continue
        outcome = read_outcome(record)
        if outcome is None:
            continue
        if filters.statuses and outcome.status not in filters.statuses:
            continue
        if filters.event_ids and outcome.event.event_id not in filters.event_ids:
            continue
        chosen.append(
            OutcomeChoice(
                outcome=record.position,
                event_id=outcome.event.event_id,
                origin=origin_of(outcome),
                timestamp_ms=record.timestamp_ms,
            )
        )
    chosen.sort(key=lambda c: (c.timestamp_ms, c.outcome))
    return chosen


def origin_of(outcome: OutcomeEvent) -> str | None:
    """The record holding the event an outcome answers.

    A replayed event's outcome names the record it re-drives (``replay.of``): the chain
    goes back to the original record instead of to a replay's copy. Otherwise the record
    the service read (the returns record, or its copy on the retry path).
    """
    record: SourceRecord | None = outcome.event.record
    if outcome.replay is not None and outcome.replay.of is not None:
        record = outcome.replay.of
    if record is None:
        return None
    return f"{record.topic}:{record.partition}:{record.offset}"


def from_outcome_choices(
    choices: Sequence[OutcomeChoice], records: Mapping[str, TopicRecord]
) -> list[Candidate]:
    """The events the chosen outcomes answer, read back from their records."""
    found = []
    for choice in choices:
        if choice.origin is None:
            found.append(
                Candidate(
                    choice.outcome,
                    b"",
                    None,
                    "the outcome names no input record (a dry run?)",
                    choice.timestamp_ms,
                    choice.outcome,
                )
            )
            continue
        record = records.get(choice.origin)
        if record is None:
            found.append(
                Candidate(
                    choice.origin,
                    b"",
                    None,
                    "the record is gone from its topic (retention?); replay it from a file",
                    choice.timestamp_ms,
                    choice.outcome,
                )
            )
            continue
        read = candidate(record.position, record.value, record.timestamp_ms)
        found.append(
            Candidate(
                read.source,
                read.value,
                read.event,
                read.invalid,
                choice.timestamp_ms,
                choice.outcome,
            )
        )
    return found


def read_outcome(record: TopicRecord) -> OutcomeEvent | None:
    """The outcome in a record of the outcomes topic; ``None`` for anything unreadable."""
    return parse_outcome(record.value)


def parse_outcome(value: bytes | None) -> OutcomeEvent | None:
    """An outcome from its bytes; ``None`` for anything unreadable."""
    if not value:
        return None
    try:
        return OutcomeEvent.model_validate_json(value)
    except ValidationError:
        return None


async def fetch(
    client_options: Mapping[str, Any], positions: Iterable[str]
) -> dict[str, TopicRecord]:
    """The records at these positions (``topic:partition:offset``), those still there.

    Each partition is read from its lowest wanted offset to its highest: positions close
    together (a replay's usual case) cost one pass.
    """
    wanted: dict[str, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))
    for position in positions:
        topic, partition, offset = _split_position(position)
        wanted[topic][partition].add(offset)
    found: dict[str, TopicRecord] = {}
    for topic, partitions in wanted.items():
        span = Span(offsets={p: (min(offs), max(offs)) for p, offs in partitions.items()})
        async for record in read_span(client_options, topic, span):
            if record.offset in partitions.get(record.partition, ()):
                found[record.position] = record
    return found


def in_span(record: TopicRecord, span: Span) -> bool:
    """Whether a record already read lies in ``span`` (as ``read_span`` would select it)."""
    if span.since is not None and record.timestamp_ms < _ms(span.since):
        return False
    if span.until is not None and record.timestamp_ms > _ms(span.until):
        return False
    if span.offsets is not None:
        bounds = span.offsets.get(record.partition)
        if bounds is None or not bounds[0] <= record.offset <= bounds[1]:
            return False
    return True


_OFFSETS = re.compile(r"^(\d+):(\d+)-(\d+)$")


def parse_offsets(texts: Sequence[str]) -> dict[int, tuple[int, int]] | None:
    """``P:FROM-TO`` (both included), one per partition; ``None`` when none is given."""
    if not texts:
        return None
    offsets: dict[int, tuple[int, int]] = {}
    for text in texts:
        match = _OFFSETS.match(text.strip())
        if match is None:
            raise OperatorInputError(
                f"--offsets {text!r} is not PARTITION:FROM-TO (e.g. 0:120-180)", option="--offsets"
            )
        partition, first, last = (int(group) for group in match.groups())
        if first > last:
            raise OperatorInputError(f"--offsets {text!r}: FROM is after TO", option="--offsets")
        if partition in offsets:
            raise OperatorInputError(
                f"--offsets names partition {partition} twice", option="--offsets"
            )
        offsets[partition] = (first, last)
    return offsets


def parse_time(text: str, option: str, *, end_of_day: bool = False) -> datetime:
    """``--since``/``--until`` as the other tools read them (``operate/times.py``): ISO 8601,
    UTC unless it has an offset; a date alone is its whole UTC day."""
    try:
        return times.parse_time(text, end_of_day=end_of_day)
    except ValueError as exc:
        raise OperatorInputError(f"{option} {exc}", option=option) from None


def _wanted(found: Candidate, filters: Filters) -> bool:
    if not filters.event_ids:
        return True
    return found.event_id is not None and found.event_id in filters.event_ids


def _in_order(found: Iterable[Candidate]) -> list[Candidate]:
    # Records come partition by partition; replaying in the order they were written keeps
    # what one customer did in order (one customer's events share a partition).
    return sorted(found, key=lambda c: (c.timestamp_ms, *_split_position(c.source)[1:]))


def _split_position(position: str) -> tuple[str, int, int]:
    topic, _, rest = position.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    try:
        return topic, int(partition), int(rest)
    except ValueError:
        return position, 0, 0


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


__all__ = [
    "ERROR_TYPES",
    "Candidate",
    "Filters",
    "OutcomeChoice",
    "SourceKind",
    "candidate",
    "choose_outcomes",
    "fetch",
    "from_dead_letters",
    "from_file",
    "from_outcome_choices",
    "from_returns",
    "in_span",
    "origin_of",
    "parse_offsets",
    "parse_outcome",
    "parse_time",
    "read_outcome",
]
