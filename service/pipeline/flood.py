"""The cap on dead letters: a flood means a producer or schema changed, not bad luck.

Counts records and dead letters over the last minute; when dead letters exceed both the
floor (``min_count``) and the allowed share of the minute's records, the service stops
with one line instead of quietly dead-lettering the topic away.
"""

from __future__ import annotations

from collections import deque

from service.errors import DeadLetterFloodError

_WINDOW_SECONDS = 60.0


class DeadLetterCap:
    """Raises :class:`DeadLetterFloodError` when a minute's dead letters pass the cap."""

    def __init__(self, *, max_share: float, min_count: int) -> None:
        self._max_share = max_share
        self._min_count = min_count
        self._records: deque[float] = deque()
        self._dead: deque[float] = deque()

    def count(self, now: float, *, dead_letter: bool) -> None:
        """Count one finished record at monotonic time ``now``; raise past the cap."""
        self._records.append(now)
        if dead_letter:
            self._dead.append(now)
        for times in (self._records, self._dead):
            while times and times[0] < now - _WINDOW_SECONDS:
                times.popleft()
        dead, total = len(self._dead), len(self._records)
        if dead > self._min_count and dead > self._max_share * total:
            raise DeadLetterFloodError(
                f"{dead} of the last minute's {total} records were dead letters, over the "
                f"cap ({self._max_share:.0%}, at least {self._min_count})",
                dead_letters=dead,
                records=total,
            )


__all__ = ["DeadLetterCap"]
