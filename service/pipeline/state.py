"""What each event id reached, kept in Kafka: the deduplication and intent state.

The state topic is compacted and partitioned like the returns topic: the record for an
event read from returns partition p goes to state partition p, in the same transaction
as the event's outcome and offset. So whoever owns partition p can restore exactly what
it needs when p is assigned (read state partition p from the start), and any replica
can take over any partition.

Phases of one event id:

* ``started``: written (and committed) before the event's calls, and again right before
  each give-back call (ENROL, EARN) with that call's intent added: Capillary's EARN has
  no idempotency key, so a redelivery after a crash must not call it again.
* ``retrying``: the event waits on the retry path (written with the retry record).
* ``done``: written with the outcome; names it (partition, offset, status).

In memory, ``done`` entries are packed into one int per event (a 64-bit hash of the
event id as key), which keeps a million remembered events near a hundred megabytes (see
``bench/state_memory.py``); the rare ``started`` and ``retrying`` entries keep their
full record. Entries older than the dedupe window are dropped on restore and by
:meth:`StateStore.expire`; the topic's own retention (``cleanup.policy=compact,delete``)
drops them in Kafka.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from service.outcome import OutcomeStatus

Phase = Literal["started", "retrying", "done"]


class Intent(BaseModel):
    """A give-back call about to be made: whom and what, for an operator to check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_id: str
    kind: str
    customer: str
    promotion: str


class OutcomeRef(BaseModel):
    """Where the event's outcome was written, and how it ended."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partition: int
    offset: int
    status: OutcomeStatus


class EventState(BaseModel):
    """The value of one state record (the key is the event id)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    phase: Phase
    at: AwareDatetime
    input_partition: int
    input_offset: int
    intents: list[Intent] = []
    attempt: int = 1
    outcome: OutcomeRef | None = None

    def to_bytes(self) -> bytes:
        """The record value."""
        return self.model_dump_json(exclude_defaults=True).encode()


class _Status(IntEnum):
    # Stable small numbers for packing; never reorder.
    COMPLETED = 0
    FAILED = 1
    DUPLICATE = 2
    NEEDS_CHECK = 3


_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_OFFSET_BITS = 44
_PARTITION_BITS = 16


def _key(event_id: str) -> int:
    """A 64-bit hash: one collision in about 10^11 pairs at a million ids."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def _hours(at: datetime) -> int:
    return max(0, int((at - _EPOCH).total_seconds() // 3600))


def _pack(state: EventState) -> int:
    assert state.outcome is not None
    outcome = state.outcome
    return _pack_fields(
        state.at, outcome.status.value, outcome.partition, outcome.offset, state.input_offset
    )


def _pack_fields(
    at: datetime, status: str, outcome_partition: int, outcome_offset: int, input_offset: int
) -> int:
    value = _hours(at)
    value = (value << 3) | _Status[OutcomeStatus(status).name].value
    value = (value << _PARTITION_BITS) | outcome_partition
    value = (value << _OFFSET_BITS) | outcome_offset
    value = (value << _OFFSET_BITS) | input_offset
    return value


@dataclass(frozen=True, slots=True)
class Known:
    """What the state says about an event id."""

    phase: Phase
    at: datetime
    input_partition: int
    input_offset: int
    intents: tuple[Intent, ...] = ()
    attempt: int = 1
    outcome: OutcomeRef | None = None


def _unpack(value: int, partition: int) -> Known:
    mask = (1 << _OFFSET_BITS) - 1
    input_offset = value & mask
    value >>= _OFFSET_BITS
    outcome_offset = value & mask
    value >>= _OFFSET_BITS
    outcome_partition = value & ((1 << _PARTITION_BITS) - 1)
    value >>= _PARTITION_BITS
    status = OutcomeStatus[_Status(value & 0b111).name]
    hours = value >> 3
    return Known(
        phase="done",
        at=_EPOCH + timedelta(hours=hours),
        input_partition=partition,
        input_offset=input_offset,
        outcome=OutcomeRef(partition=outcome_partition, offset=outcome_offset, status=status),
    )


class _Partition:
    def __init__(self) -> None:
        self.done: dict[int, int] = {}
        self.open: dict[str, EventState] = {}

    def apply_raw(self, event_id: str, value: bytes | None, oldest: datetime) -> None:
        """Apply one record of the state topic; ``done`` records skip the model (restore speed)."""
        if value is None:
            self.apply(event_id, None)
            return
        data = json.loads(value)
        at = datetime.fromisoformat(data["at"])
        if at < oldest:
            self.apply(event_id, None)
        elif data.get("phase") == "done" and isinstance(outcome := data.get("outcome"), dict):
            self.done[_key(event_id)] = _pack_fields(
                at, outcome["status"], outcome["partition"], outcome["offset"], data["input_offset"]
            )
            self.open.pop(event_id, None)
        else:
            self.apply(event_id, EventState.model_validate(data))

    def apply(self, event_id: str, state: EventState | None) -> None:
        key = _key(event_id)
        if state is None:
            self.done.pop(key, None)
            self.open.pop(event_id, None)
        elif state.phase == "done" and state.outcome is not None:
            self.done[key] = _pack(state)
            self.open.pop(event_id, None)
        else:
            self.done.pop(key, None)
            self.open[event_id] = state


class StateReader(Protocol):
    """Reads one partition of the state topic from its start to its end."""

    async def read(self, partition: int) -> Iterable[tuple[bytes, bytes | None]]:
        """Every (key, value) of the partition, in order; ``None`` for a tombstone."""
        ...


class StateStore:
    """The state of the partitions this instance owns, restored from Kafka on assignment."""

    def __init__(self, reader: StateReader, *, window: timedelta) -> None:
        self._reader = reader
        self._window = window
        self._partitions: dict[int, _Partition] = {}

    async def restore(self, partition: int, now: datetime) -> int:
        """Read state partition ``partition``; returns how many event ids it remembers."""
        cache = _Partition()
        oldest = now - self._window
        for key, value in await self._reader.read(partition):
            cache.apply_raw(key.decode(), value, oldest)
        self._partitions[partition] = cache
        return len(cache.done) + len(cache.open)

    def forget(self, partition: int) -> None:
        """Drop a partition that is no longer ours."""
        self._partitions.pop(partition, None)

    def lookup(self, partition: int, event_id: str, now: datetime) -> Known | None:
        """What the state says of ``event_id`` (within the window), or ``None``."""
        cache = self._partitions.get(partition)
        if cache is None:
            return None
        found: Known | None
        if (state := cache.open.get(event_id)) is not None:
            found = Known(
                phase=state.phase,
                at=state.at,
                input_partition=state.input_partition,
                input_offset=state.input_offset,
                intents=tuple(state.intents),
                attempt=state.attempt,
                outcome=state.outcome,
            )
        elif (packed := cache.done.get(_key(event_id))) is not None:
            found = _unpack(packed, partition)
        else:
            return None
        # Packed times are whole hours: an hour of slack, never less than the window.
        if found.at < now - self._window - timedelta(hours=1):
            return None
        return found

    def remember(self, partition: int, state: EventState) -> None:
        """Record a state that was committed to Kafka."""
        cache = self._partitions.get(partition)
        if cache is not None:
            cache.apply(state.event_id, state)

    def expire(self, now: datetime) -> int:
        """Forget what is older than the window; returns how many entries went."""
        oldest_hours = _hours(now - self._window) - 1
        dropped = 0
        for cache in self._partitions.values():
            stale = [
                k
                for k, v in cache.done.items()
                if (v >> (2 * _OFFSET_BITS + _PARTITION_BITS + 3)) < oldest_hours
            ]
            for key in stale:
                del cache.done[key]
            old_open = [e for e, s in cache.open.items() if s.at < now - self._window]
            for event_id in old_open:
                del cache.open[event_id]
            dropped += len(stale) + len(old_open)
        return dropped

    def size(self) -> int:
        """Event ids remembered across the owned partitions."""
        return sum(len(c.done) + len(c.open) for c in self._partitions.values())


__all__ = ["EventState", "Intent", "Known", "OutcomeRef", "StateReader", "StateStore"]
