"""Which offset to commit: the end of the contiguous finished prefix of each partition.

Records are taken in offset order and may finish out of order (per-customer
concurrency does that); the committed offset never passes a record that is not finished,
so a crash re-reads it instead of losing it.
"""

from __future__ import annotations

from collections import deque


class PartitionProgress:
    """Taken and finished offsets of one topic partition."""

    def __init__(self) -> None:
        self._taken: deque[int] = deque()
        self._finished: set[int] = set()
        self._committable: int | None = None
        self.floor: int | None = None
        """The first offset taken and not known to be committed: where to read again from
        when a transaction of the partition fails."""

    def take(self, offset: int) -> None:
        """A record was handed to processing (offsets come in increasing order)."""
        self._taken.append(offset)
        if self.floor is None:
            self.floor = offset

    def finish(self, offset: int) -> None:
        """A record is finished; the prefix advances past every finished head."""
        self._finished.add(offset)
        while self._taken and self._taken[0] in self._finished:
            head = self._taken.popleft()
            self._finished.discard(head)
            self._committable = head + 1

    def finished_above(self) -> list[int]:
        """Offsets finished beyond the contiguous prefix (read again after a crash or a rewind,
        they must publish nothing: their outputs are committed, or go with the next commit)."""
        return sorted(self._finished)

    def committable(self) -> int | None:
        """The offset to commit (one past the finished prefix), or ``None`` if nothing moved."""
        return self._committable

    def committed(self, offset: int) -> None:
        """``offset`` (an earlier :meth:`committable`) was committed."""
        if self._committable == offset:
            self._committable = None
        # Offsets are a prefix: everything before ``offset`` is committed, nothing after.
        self.floor = offset if self._taken or self._committable is not None else None

    @property
    def settled(self) -> bool:
        """Everything taken is finished and committed."""
        return not self._taken and self._committable is None


__all__ = ["PartitionProgress"]
