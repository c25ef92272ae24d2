"""Which events were attempted before: what lets "invalid or already revoked" mean "done".

A cart 731 or a loyalty 8903 on the first attempt of an event means the benefit was
never there (``not_found``); on a later attempt of the same event (a redelivery, a
replay) it most likely means the earlier attempt revoked it (``already_revoked``). The
processor asks this history before executing and records the attempt.

``RecentAttempts`` remembers the attempts of this process only, bounded; the
reliability work replaces it with state kept in Kafka, so that a restarted or another
replica knows too. Until then a redelivery after a restart reads as a first attempt.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol


class AttemptHistory(Protocol):
    """Answers "was this event attempted before?" and records attempts."""

    def tried_before(self, event_id: str) -> bool:
        """True when an attempt of ``event_id`` was recorded."""
        ...

    def record(self, event_id: str) -> None:
        """Record that ``event_id`` is being attempted now."""
        ...


class RecentAttempts:
    """The most recent ``capacity`` event ids attempted by this process."""

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def tried_before(self, event_id: str) -> bool:
        """True when this process attempted ``event_id`` and still remembers it."""
        return event_id in self._ids

    def record(self, event_id: str) -> None:
        """Remember ``event_id``, forgetting the oldest beyond the capacity."""
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)


__all__ = ["AttemptHistory", "RecentAttempts"]
