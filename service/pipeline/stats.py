"""What one run did: counts for the final log line, health checks and tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.outcome import OutcomeEvent, OutcomeStatus
from service.pipeline.records import AlreadyFinished, DeadLetter, Finished, RetryLater, Routed


@dataclass
class RunStats:
    """What one run did, for the final log line and for tests."""

    records: int = 0
    outcomes: int = 0
    dead_letters: int = 0
    failed_outcomes: int = 0
    duplicates: int = 0
    retries: int = 0
    read_again: int = 0
    """Records read again whose event had finished already (nothing published)."""
    routed: int = 0
    """Records of the returns topic copied to their customer key's partition."""
    pauses: int = 0
    probes: int = 0
    in_flight_peak: int = 0
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    """Last committed offset per (topic, partition): bounded by the partitions owned."""

    def summary(self) -> dict[str, int]:
        """The counts the final log line gives."""
        names = ("records", "outcomes", "dead_letters", "failed_outcomes", "duplicates")
        return {name: getattr(self, name) for name in (*names, "retries", "in_flight_peak")}

    def count(self, finished: Finished) -> None:
        """One record finished, whatever became of it."""
        self.records += 1
        result = finished.result
        if isinstance(result, Routed):
            # Counted (and capped) where its copy is handled.
            self.routed += 1
        elif isinstance(result, DeadLetter):
            self.dead_letters += 1
        elif isinstance(result, RetryLater):
            self.retries += 1
        elif isinstance(result, AlreadyFinished):
            self.read_again += 1
        elif isinstance(result, OutcomeEvent):
            self.outcomes += 1
            if result.status is OutcomeStatus.FAILED:
                self.failed_outcomes += 1
            elif result.status is OutcomeStatus.DUPLICATE:
                self.duplicates += 1


__all__ = ["RunStats"]
