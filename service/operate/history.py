"""What earlier outcomes say about each event: whether it is done, what it gave back.

A replay re-executes on purpose, past the event-id deduplication, so it must know what
the service already did for each event, and the outcomes topic is the record of that:

* done: the event's newest outcome is ``completed`` (or a ``duplicate`` whose first
  outcome was): replaying it would only repeat revokes, so it is skipped unless asked;
* issued: the give-backs (ENROL, EARN) any earlier outcome shows as made. Capillary's
  EARN has no idempotency key, so a replay tells the service not to make them again.
  ``unconfirmed`` counts too: a crashed attempt may have made it, and an operator who
  checked the customer can still allow it (``--allow-reissue``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.kafka.span import TopicRecord
from service.operate.sources import read_outcome
from service.outcome import ActionResult, ActionStatus, OutcomeEvent, OutcomeStatus

GIVE_BACK_KINDS = frozenset({"enrol_loyalty", "issue_loyalty_earn"})
"""Action kinds that give something back: not safe to repeat (EARN has no idempotency key)."""

MAY_HAVE_BEEN_MADE = frozenset(
    {ActionStatus.RESTORED, ActionStatus.ALREADY_RESTORED, ActionStatus.UNCONFIRMED}
)
"""Statuses of a give-back that leave it made, or maybe made."""


@dataclass(frozen=True, slots=True)
class PastOutcome:
    """The little a replay needs of one earlier outcome."""

    position: str
    status: OutcomeStatus
    processed_at: datetime
    first_status: OutcomeStatus | None
    """For a duplicate: the status of the first outcome it names."""
    given_back: frozenset[str]
    """Give-back action ids this outcome shows as made (or possibly made)."""
    replay_id: str | None = None

    @property
    def completed(self) -> bool:
        """The event reached a final result: this outcome, or the first one it repeats."""
        if self.status is OutcomeStatus.COMPLETED:
            return True
        return (
            self.status is OutcomeStatus.DUPLICATE and self.first_status is OutcomeStatus.COMPLETED
        )


def given_back(actions: list[ActionResult]) -> frozenset[str]:
    """Ids of the give-back actions an outcome shows as made or possibly made."""
    return frozenset(
        action.action_id
        for action in actions
        if action.kind in GIVE_BACK_KINDS
        and (
            action.status in MAY_HAVE_BEEN_MADE
            or any(item.status in MAY_HAVE_BEEN_MADE for item in action.items)
        )
    )


class History:
    """Every outcome of the outcomes topic, by event id, in the order they were written."""

    def __init__(self) -> None:
        self._by_event: dict[str, list[PastOutcome]] = {}
        self.read = 0

    def add(self, record: TopicRecord) -> OutcomeEvent | None:
        """Take in one record of the outcomes topic; returns its outcome, if readable."""
        self.read += 1
        outcome = read_outcome(record)
        if outcome is not None:
            self.add_outcome(outcome, record.position)
        return outcome

    def add_outcome(self, outcome: OutcomeEvent, position: str) -> None:
        """Take in one outcome read at ``position``."""
        first = outcome.duplicate_of.status if outcome.duplicate_of is not None else None
        past = PastOutcome(
            position=position,
            status=outcome.status,
            processed_at=outcome.processed_at,
            first_status=first,
            given_back=given_back(outcome.actions),
            replay_id=outcome.replay.replay_id if outcome.replay is not None else None,
        )
        self._by_event.setdefault(outcome.event.event_id, []).append(past)

    def outcomes(self, event_id: str) -> list[PastOutcome]:
        """The event's outcomes, oldest first."""
        return sorted(self._by_event.get(event_id, []), key=lambda p: p.processed_at)

    def latest(self, event_id: str) -> PastOutcome | None:
        """The event's newest outcome."""
        found = self.outcomes(event_id)
        return found[-1] if found else None

    def done(self, event_id: str) -> bool:
        """Whether the event's newest outcome says it reached a final result."""
        latest = self.latest(event_id)
        return latest is not None and latest.completed

    def issued(self, event_id: str) -> frozenset[str]:
        """Give-backs any earlier outcome of the event shows as made (or possibly made)."""
        made: frozenset[str] = frozenset()
        for past in self._by_event.get(event_id, []):
            made |= past.given_back
        return made

    def __len__(self) -> int:
        return sum(len(found) for found in self._by_event.values())


__all__ = ["GIVE_BACK_KINDS", "MAY_HAVE_BEEN_MADE", "History", "PastOutcome", "given_back"]
