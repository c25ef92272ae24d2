"""The replay contract: headers an operator's replay puts on an event it re-drives.

``return-handler replay --execute`` publishes the chosen events to the returns topic again,
with these headers. The running service then handles them like any event (same
validation, rules, limits, transaction), except that:

* a replay is deliberate: the event-id deduplication does not turn it into a duplicate;
* an earlier attempt exists, so "invalid or already revoked" means already revoked;
* give-backs that the ledger (or an earlier outcome, ``rh-replay-issued``) shows as made are
  not made again, unless the operator allowed it for this event
  (``rh-replay-allow-reissue``): Capillary's EARN has no idempotency key;
* a return that a cancellation has given back since takes nothing back again, unless the
  operator allowed it for this event (``rh-replay-allow-cancelled``);
* the outcome says it is a replay, why, and which record it re-drives.

A plain copy of an event without these headers is a duplicate, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.outcome import ReplayInfo, SourceRecord
from service.pipeline.records import Record

REPLAY_ID_HEADER = "rh-replay-id"
REPLAY_REASON_HEADER = "rh-replay-reason"
REPLAY_SOURCE_HEADER = "rh-replay-source"
"""Where the replayed event came from: ``topic:partition:offset`` or ``file:NAME:LINE``."""
REPLAY_SEQUENCE_HEADER = "rh-replay-seq"
REPLAY_ISSUED_HEADER = "rh-replay-issued"
"""Comma-separated give-back action ids an earlier outcome shows as made."""
REPLAY_ALLOW_REISSUE_HEADER = "rh-replay-allow-reissue"
REPLAY_ALLOW_CANCELLED_HEADER = "rh-replay-allow-cancelled"
"""``1``: take this return back although a cancellation has given it back since."""
REPLAY_HEADERS = (
    REPLAY_ID_HEADER,
    REPLAY_REASON_HEADER,
    REPLAY_SOURCE_HEADER,
    REPLAY_SEQUENCE_HEADER,
    REPLAY_ISSUED_HEADER,
    REPLAY_ALLOW_REISSUE_HEADER,
    REPLAY_ALLOW_CANCELLED_HEADER,
)


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replayed record's headers say: :meth:`headers` writes them, :func:`replay_of`
    reads them back."""

    replay_id: str
    reason: str
    source: str
    sequence: int
    issued: frozenset[str] = frozenset()
    allow_reissue: bool = False
    allow_cancelled: bool = False

    def headers(self) -> list[tuple[str, bytes]]:
        """The headers that make a published event this replay."""
        headers = [
            (REPLAY_ID_HEADER, self.replay_id.encode()),
            (REPLAY_REASON_HEADER, self.reason.encode()),
            (REPLAY_SOURCE_HEADER, self.source.encode()),
            (REPLAY_SEQUENCE_HEADER, str(self.sequence).encode()),
        ]
        if self.issued:
            headers.append((REPLAY_ISSUED_HEADER, ",".join(sorted(self.issued)).encode()))
        if self.allow_reissue:
            headers.append((REPLAY_ALLOW_REISSUE_HEADER, b"1"))
        if self.allow_cancelled:
            headers.append((REPLAY_ALLOW_CANCELLED_HEADER, b"1"))
        return headers

    @property
    def of(self) -> SourceRecord | None:
        """The record it re-drives: ``source`` when that is ``topic:partition:offset``;
        ``None`` for a file or anything else."""
        topic, _, rest = self.source.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        if not topic or topic == "file":
            return None
        try:
            return SourceRecord(topic=topic, partition=int(partition), offset=int(rest))
        except ValueError:
            return None

    def info(self) -> ReplayInfo:
        """The outcome's account of this replay."""
        return ReplayInfo(
            replay_id=self.replay_id,
            reason=self.reason,
            source=self.source,
            of=self.of,
            sequence=self.sequence,
            reissue_allowed=self.allow_reissue,
        )


def replay_of(record: Record) -> Replay | None:
    """The replay a record belongs to, or ``None`` for an ordinary delivery."""
    if not record.headers:
        return None
    headers = {key: value for key, value in record.headers if key in REPLAY_HEADERS}
    if REPLAY_ID_HEADER not in headers:
        return None

    def text(name: str) -> str:
        return headers.get(name, b"").decode("utf-8", "replace")

    issued = text(REPLAY_ISSUED_HEADER)
    try:
        sequence = int(text(REPLAY_SEQUENCE_HEADER) or "0")
    except ValueError:
        sequence = 0
    return Replay(
        replay_id=text(REPLAY_ID_HEADER),
        reason=text(REPLAY_REASON_HEADER),
        source=text(REPLAY_SOURCE_HEADER),
        sequence=sequence,
        issued=frozenset(i for i in issued.split(",") if i),
        allow_reissue=text(REPLAY_ALLOW_REISSUE_HEADER) == "1",
        allow_cancelled=text(REPLAY_ALLOW_CANCELLED_HEADER) == "1",
    )


__all__ = [
    "REPLAY_HEADERS",
    "Replay",
    "replay_of",
]
