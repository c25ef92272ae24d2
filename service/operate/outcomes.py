"""The outcomes topic as the operator's tools read it: each outcome with where it lies.

inspect, report and replay read the same thing: the committed outcomes of a span of the
topic (``service.kafka.span``), decoded with the published model, each beside its own
position in the topic. A record this version cannot read as an outcome (a newer schema
version, a tombstone, a stray message) is skipped and counted, never fatal: one bad record
must not hide every other outcome from the operator, and the count says that something was
left out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from service.kafka.span import Progress, Span, TopicRecord, read_span
from service.outcome import OutcomeEvent

# Enough to show what kind of records were skipped without keeping all of them.
_EXAMPLES_KEPT = 3


class OutcomePosition(BaseModel):
    """Where an outcome lies in the outcomes topic."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    topic: str
    """The outcomes topic."""
    partition: int
    """Its partition."""
    offset: int
    """Its offset."""
    written_at: AwareDatetime
    """The record's timestamp (UTC): when it was written to the topic."""

    def __str__(self) -> str:
        # The form outcomes, replays and dead letters use to name records.
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass
class Skipped:
    """The records of a span that were not outcomes this version can read."""

    count: int = 0
    examples: list[str] = field(default_factory=list)
    """The first few, as ``topic:partition:offset: why``."""

    def note(self, record: TopicRecord, why: str) -> None:
        """Count ``record`` as skipped because of ``why``."""
        self.count += 1
        if len(self.examples) < _EXAMPLES_KEPT:
            self.examples.append(f"{record.position}: {why}")


def decode(record: TopicRecord, skipped: Skipped) -> tuple[OutcomePosition, OutcomeEvent] | None:
    """The outcome in ``record`` with its position, or ``None`` (counted in ``skipped``)."""
    if record.value is None:
        skipped.note(record, "no value (a tombstone)")
        return None
    try:
        outcome = OutcomeEvent.model_validate_json(record.value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        skipped.note(record, f"not an outcome of schema 1 ({where}: {first['msg']})")
        return None
    position = OutcomePosition(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        written_at=datetime.fromtimestamp(record.timestamp_ms / 1000, UTC),
    )
    return position, outcome


def decode_all(
    records: Iterable[TopicRecord], skipped: Skipped
) -> Iterator[tuple[OutcomePosition, OutcomeEvent]]:
    """:func:`decode` over ``records``, leaving out (and counting) what is not an outcome."""
    for record in records:
        found = decode(record, skipped)
        if found is not None:
            yield found


async def read_outcomes(
    client_options: Mapping[str, Any],
    topic: str,
    span: Span | None = None,
    *,
    skipped: Skipped | None = None,
    progress: Progress | None = None,
) -> AsyncIterator[tuple[OutcomePosition, OutcomeEvent]]:
    """Every committed outcome of ``topic`` in ``span`` (default: all of it) with its position.

    Each partition in offset order, partitions one after another (not in time order); up to
    the end the topic had when reading began. Records that are not outcomes are counted in
    ``skipped``. ``client_options``: from ``service.operate.connect.client_options``.
    """
    tally = skipped if skipped is not None else Skipped()
    async for record in read_span(client_options, topic, span or Span(), progress=progress):
        found = decode(record, tally)
        if found is not None:
            yield found


__all__ = ["OutcomePosition", "Skipped", "decode", "decode_all", "read_outcomes"]
