"""Deduplicate: a record read again, or a second delivery of an event already handled.

The state of each event id (``state.py``) says what became of it. The very record (or a
copy of it) finished before is a read-again: it publishes nothing. Another delivery of an
event with an outcome, or on the retry path, is a duplicate: its outcome says so and
nothing is called. A replay (``replays.py``) is neither: the operator asked for it.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from service import __version__
from service.actions import Plan
from service.events import ReturnEvent
from service.outcome import FirstOutcome, OutcomeEvent, OutcomeStatus, ServiceInfo
from service.pipeline.outcomes import identity
from service.pipeline.records import Origin, Record
from service.pipeline.state import EventState


def finished_from(known: EventState, source: Origin, attempt: int) -> bool:
    """This very record (or a copy of it now read) finished already: a read-again."""
    if (known.input_partition, known.input_offset) != (source.partition, source.offset):
        return False
    return known.phase == "done" or (known.phase == "retrying" and known.attempt > attempt)


def is_duplicate(known: EventState, attempt: int) -> bool:
    """A first attempt of an event that has an outcome, or waits on the retry path."""
    return attempt == 1 and known.phase in ("done", "retrying")


def duplicate_outcome(
    record: Record,
    event: ReturnEvent,
    known: EventState,
    plan: Plan,
    *,
    outcome_id: UUID,
    processed_at: datetime,
    duration_ms: float,
) -> OutcomeEvent:
    """The outcome of a second delivery: where the first one is, and that nothing was called.

    ``plan``: what the rules decide without the ledger (nothing is done either way).
    """
    first = FirstOutcome(
        status=known.outcome.status if known.outcome else None,
        outcome_partition=known.outcome.partition if known.outcome else None,
        outcome_offset=known.outcome.offset if known.outcome else None,
        input_partition=known.input_partition,
        input_offset=known.input_offset,
    )
    where = f"partition {known.input_partition} offset {known.input_offset}"
    if first.status:
        how = f"(outcome {first.status})"
    elif known.phase == "retrying":
        how = "(still on the retry path)"
    else:
        how = "(its outcome is being committed)"
    return OutcomeEvent(
        outcome_id=outcome_id,
        event=identity(event, record),
        status=OutcomeStatus.DUPLICATE,
        decision=plan.decision,
        summary=f"Duplicate of the delivery at {where} {how}; nothing was called.",
        policy_version=plan.policy_version,
        processed_at=processed_at,
        duration_ms=duration_ms,
        service=ServiceInfo(version=__version__),
        duplicate_of=first,
    )


__all__ = ["duplicate_outcome", "finished_from", "is_duplicate"]
