"""What the runner knows of one input partition it owns, in one object.

Made when the partition is assigned and dropped when it is revoked, so nothing of a
partition outlives its ownership. Inside, offsets are kept per topic: partition p of the
returns, routed and retry topics goes to one member (the range assignor) and commits in
one transaction (``service/kafka/committer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from service.pipeline.offsets import PartitionProgress
from service.pipeline.records import Finished
from service.pipeline.state import Progress


@dataclass(eq=False)
class OwnedPartition:
    """One owned partition: taken, finished, pending, held, rewind point, ready or closing."""

    number: int
    ready: bool = False
    """Its producer is open and its state restored: records of it may be taken."""
    closing: bool = False
    """Being revoked: nothing more of it is taken."""
    pending: list[Finished] = field(default_factory=list)
    """Finished, not yet committed."""
    progress: dict[str, PartitionProgress] = field(default_factory=dict)
    """Taken and finished offsets, per topic."""
    held: dict[str, int] = field(default_factory=dict)
    """A retry record not due yet holds its topic until then (epoch milliseconds)."""
    rewind_to: dict[str, int] = field(default_factory=dict)
    """Taken but unfinished: the offset to read each topic from again."""
    done: dict[str, set[int]] = field(default_factory=dict)
    """Offsets beyond the committed prefix whose outputs are committed: read again (after a
    restart, a rewind), they publish nothing, whichever event they carry."""

    def take(self, topic: str, offset: int) -> bool:
        """Track a record handed to processing; ``True`` if its outputs are committed already."""
        self.progress.setdefault(topic, PartitionProgress()).take(offset)
        done = self.done.get(topic)
        if done is not None and offset in done:
            done.discard(offset)
            return True
        return False

    def finish(self, finished: Finished) -> None:
        """A record finished: its outputs wait for the next commit."""
        record = finished.record
        self.pending.append(finished)
        self.progress[record.topic].finish(record.offset)

    def read_again(self, topic: str, offset: int) -> None:
        """Read ``topic`` again from ``offset`` (or earlier) once in-flight work settles."""
        self.rewind_to[topic] = min(offset, self.rewind_to.get(topic, offset))

    def committable(self) -> dict[str, int]:
        """Per topic, the offset past its contiguous finished prefix, where it moved."""
        return {
            topic: offset
            for topic, progress in self.progress.items()
            if (offset := progress.committable()) is not None
        }

    def finished_beyond(self, offsets: dict[str, int]) -> Progress:
        """Per topic, the offsets finished beyond what ``offsets`` commits."""
        finished: dict[str, set[int]] = {}
        for topic, progress in self.progress.items():
            finished.setdefault(topic, set()).update(progress.finished_above())
        for topic, done in self.done.items():
            finished.setdefault(topic, set()).update(done)
        return Progress(
            finished={
                topic: sorted(o for o in found if o >= offsets.get(topic, 0))
                for topic, found in finished.items()
                if found
            }
        )

    def committed(self, offsets: dict[str, int]) -> None:
        """``offsets`` (from :meth:`committable`) were committed."""
        for topic, offset in offsets.items():
            self.progress[topic].committed(offset)
            if (done := self.done.get(topic)) is not None:
                done -= {o for o in done if o < offset}

    def rewind_floors(self) -> None:
        """A transaction failed: read every topic again from its first uncommitted offset."""
        self.pending.clear()
        for topic, progress in self.progress.items():
            if progress.floor is not None:
                self.read_again(topic, progress.floor)
        self.progress.clear()

    def rewind(self) -> dict[str, int]:
        """Start over from the rewind points: the offsets to seek to, per topic.

        Only once nothing of it is in flight: a running event's offset must stay tracked.
        What finished beyond them is committed by then, so it is read again as done.
        """
        seek = dict(self.rewind_to)
        for topic in seek:
            progress = self.progress.pop(topic, None)
            if progress is not None:
                self.done.setdefault(topic, set()).update(progress.finished_above())
        self.rewind_to.clear()
        return seek

    def restored(self, finished_above: dict[str, set[int]]) -> None:
        """What the partition's progress record says finished beyond its committed prefix."""
        self.done = {topic: set(offsets) for topic, offsets in finished_above.items()}


def lag(
    reading: dict[tuple[str, int], tuple[int, int]], owned: dict[int, OwnedPartition]
) -> dict[tuple[str, int], int]:
    """Records of each owned (topic, partition) not yet finished and committed here, from
    the source's (end offset, next offset to read) of each."""
    found: dict[tuple[str, int], int] = {}
    for (topic, number), (end, next_read) in reading.items():
        part = owned.get(number)
        progress = part.progress.get(topic) if part is not None else None
        floor = progress.floor if progress is not None else None
        done_to = next_read if floor is None else min(floor, next_read)
        found[(topic, number)] = max(0, end - done_to)
    return found


__all__ = ["OwnedPartition", "lag"]
