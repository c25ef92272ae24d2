"""The benefit ledger as the operator's tools read it: the state topic, whole, latest first.

The service keeps what each event did in Capillary, item by item, in the value of the
event's record on the compacted state topic (``pipeline/state.py``, ``service/ledger.py``).
``replay`` asks it what was given back (not to be made again) and which returns a
cancellation gave back since (held back); ``inspect`` shows it for an order.

The topic is compacted, so the latest record of an event id is its state and a record
without a value (a tombstone) forgets it. Reading happens before compaction has run, so
every record of every partition is read in offset order and only the latest per key kept.
A record this version cannot read (a newer schema, a stray message) is skipped and
counted, never fatal, as in ``outcomes.py``.

The book keeps each state as the bytes Kafka gave and reads them again on demand: a state
with three ledger items is about 1 KB as bytes and about 9 KB as models, and the topic may
remember a million events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from service.kafka.span import Progress, TopicRecord, read_span
from service.ledger import GIVE_BACK_KINDS, LedgerEntry
from service.operate.history import MAY_HAVE_BEEN_MADE
from service.operate.outcomes import Skipped
from service.pipeline.state import PROGRESS_KEY, EventState


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a record lies: partition, offset, and its timestamp (to compare partitions)."""

    partition: int
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class _Latest:
    where: _Where
    value: bytes
    order_id: str | None
    cancels: str | None
    cancels_since: _Where | None
    """The first record of this event whose ledger cancels ``cancels`` (still the latest's)."""


class LedgerBook:
    """The latest state of every event id of the state topic, and what its ledger says."""

    def __init__(self) -> None:
        self._latest: dict[str, _Latest] = {}
        self._by_order: dict[str, set[str]] = {}
        self._cancelled_by: dict[str, set[str]] = {}
        self.read = 0
        """Records taken in, tombstones and skipped ones included."""
        self.skipped = Skipped()
        """Records that are not states this version reads."""

    # ---------------------------------------------------------------- taking records in

    def add(self, record: TopicRecord) -> None:
        """Take in the next record of the state topic (each partition in offset order)."""
        self.read += 1
        if record.key is None:
            self.skipped.note(record, "no key (the state topic is keyed by event id)")
            return
        if record.key == PROGRESS_KEY:
            return  # the partition's progress, not an event

        event_id = record.key.decode("utf-8", "replace")
        if record.value is None:
            self._forget(event_id)
            return
        try:
            state = EventState.model_validate_json(record.value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "value"
            self.skipped.note(record, f"not an event state ({where}: {first['msg']})")
            return
        position = _Where(record.partition, record.offset, record.timestamp_ms)
        ledger = state.ledger
        cancels = ledger.cancels if ledger is not None else None
        before = self._latest.get(event_id)
        since = position if cancels is not None else None
        if before is not None and cancels is not None and before.cancels == cancels:
            # The first record that cancelled it says when: that is what "first" compares.
            since = before.cancels_since
        self._forget(event_id)
        order_id = ledger.order_id if ledger is not None else None
        self._latest[event_id] = _Latest(position, record.value, order_id, cancels, since)
        if order_id is not None:
            self._by_order.setdefault(order_id, set()).add(event_id)
        if cancels is not None:
            self._cancelled_by.setdefault(cancels, set()).add(event_id)

    def _forget(self, event_id: str) -> None:
        latest = self._latest.pop(event_id, None)
        if latest is None:
            return
        if latest.order_id is not None:
            _discard(self._by_order, latest.order_id, event_id)
        if latest.cancels is not None:
            _discard(self._cancelled_by, latest.cancels, event_id)

    # ---------------------------------------------------------------- what it says

    def __len__(self) -> int:
        return len(self._latest)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._latest

    def state(self, event_id: str) -> EventState | None:
        """The latest state of ``event_id``, or ``None`` (never written, or forgotten)."""
        latest = self._latest.get(event_id)
        if latest is None:
            return None
        # Validated when it was taken in: reading it again cannot fail.
        return EventState.model_validate_json(latest.value)

    def entry(self, event_id: str) -> LedgerEntry | None:
        """The ledger entry of ``event_id``, or ``None``."""
        state = self.state(event_id)
        return state.ledger if state is not None else None

    def cancellations(self, return_id: str) -> list[str]:
        """Event ids whose ledger cancels ``return_id``, the first cancellation first.

        By offset within a partition. The service decides a cancellation on its return's
        partition, so a cancellation there comes first; another partition (the same event
        sent twice by producers whose partitioners differ) comes after, partitions in the
        order of their first such record's timestamp, since offsets do not compare across
        partitions.
        """
        by_partition: dict[int, list[tuple[_Where, str]]] = {}
        for event_id in self._cancelled_by.get(return_id, ()):
            since = self._latest[event_id].cancels_since
            assert since is not None  # set whenever the latest state cancels something
            by_partition.setdefault(since.partition, []).append((since, event_id))
        home = self._latest.get(return_id)
        home_partition = home.where.partition if home is not None else None
        runs = [sorted(found, key=lambda pair: pair[0].offset) for found in by_partition.values()]
        runs.sort(
            key=lambda run: (
                run[0][0].partition != home_partition,
                run[0][0].timestamp_ms,
                run[0][0].partition,
            )
        )
        return [event_id for run in runs for _, event_id in run]

    def first_cancellation(self, return_id: str) -> str | None:
        """The event that cancelled ``return_id`` first, if any did."""
        found = self.cancellations(return_id)
        return found[0] if found else None

    def of_order(self, order_id: str) -> list[LedgerEntry]:
        """The ledger entries of an order, oldest state first."""
        states = [self.state(event_id) for event_id in self._by_order.get(order_id, ())]
        known = sorted((s for s in states if s is not None), key=lambda s: (s.at, s.event_id))
        return [s.ledger for s in known if s.ledger is not None]

    def given_back(self, event_id: str) -> frozenset[str]:
        """Give-back action ids the event's ledger shows made, or maybe made."""
        entry = self.entry(event_id)
        if entry is None:
            return frozenset()
        return frozenset(
            item.action_id
            for item in entry.items
            if item.kind in GIVE_BACK_KINDS and item.status in MAY_HAVE_BEEN_MADE
        )


def _discard(index: dict[str, set[str]], key: str, event_id: str) -> None:
    found = index.get(key)
    if found is None:
        return
    found.discard(event_id)
    if not found:
        del index[key]


async def read_ledger(
    client_options: Mapping[str, Any],
    topic: str,
    *,
    progress: Progress | None = None,
) -> LedgerBook:
    """The whole state topic ``topic``, all partitions, up to the end it had when reading began.

    ``client_options``: from ``service.operate.connect.client_options``.
    """
    book = LedgerBook()
    async for record in read_span(client_options, topic, progress=progress):
        book.add(record)
    return book


__all__ = ["LedgerBook", "read_ledger"]
