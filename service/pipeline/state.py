"""What each event id reached and did, kept in Kafka: deduplication, intents and the ledger.

The state topic is compacted and partitioned like the returns topic: every record of a
customer key is handled on one partition p (``route.py`` sends the ones a producer put
elsewhere there first), and the state of its events goes to state partition p, in the
same transaction as the outcome and the offsets. So whoever owns partition p restores
exactly what it needs when p is assigned (read state partition p from the start), and any
replica can take over any partition.

Phases of one event id:

* ``started``: written (and committed) before the event's calls, and again right before
  each give-back call (ENROL, EARN) with that call's intent and the results so far:
  Capillary's EARN has no idempotency key, so a redelivery after a crash must not call it
  again, and must know what the attempt confirmed;
* ``retrying``: the event waits on the retry path (written with the retry record);
* ``done``: written with the outcome; names it (partition, offset, status).

Each state carries the event's ledger entry (``service/ledger.py``): what its calls did,
item by item, across attempts. A cancellation's entry names the return it cancelled
(``cancels``), so the first cancellation of a return is known on its partition.

In memory, committed ``done`` entries are packed into one int per event (a 64-bit hash of
the event id as key): the outcome's position and status, the input record and the offset
of the state record itself, from which the ledger entry is read back when a cancellation or
a replay needs it (``StateReader.fetch``). That keeps a million remembered events near a
hundred megabytes (see ``bench/state_memory.py``); ``started``, ``retrying`` and not yet
committed entries keep their full record. Entries older than the dedupe window are dropped
on restore and by :meth:`StateStore.expire`; the topic's own retention
(``cleanup.policy=compact,delete``) drops them in Kafka.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Literal, NamedTuple, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from service.errors import BrokerError
from service.ledger import LedgerEntry
from service.logging import get_logger
from service.outcome import OutcomeStatus

log = get_logger(__name__)

EXPIRE_EVERY_SECONDS = 3600.0
"""How often event ids older than the window are forgotten while running."""

Phase = Literal["started", "retrying", "done"]

PROGRESS_KEY = b"~progress"
"""The key of each state partition's progress record: per input topic, the offsets finished
beyond the committed prefix, written in every transaction with the offsets. No event id
starts with ``~``. A record read again after a restart at one of those offsets publishes
nothing, whatever event id it carries (a replay, a duplicate, a routed copy)."""


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
    """Partition of the producer's record on the returns topic (whichever copy was read)."""
    input_offset: int
    """Its offset there."""
    intents: list[Intent] = []
    attempt: int = 1
    outcome: OutcomeRef | None = None
    ledger: LedgerEntry | None = None
    """What the event's calls did so far, item by item."""

    def to_bytes(self) -> bytes:
        """The record value."""
        # What model_dump_json(exclude_defaults=True).encode() gives, without decoding the
        # serialiser's UTF-8 to a str only to encode it again (one state record per event).
        return self.__pydantic_serializer__.to_json(self, exclude_defaults=True)


class _Status(IntEnum):
    # Stable small numbers for packing; never reorder.
    COMPLETED = 0
    FAILED = 1
    DUPLICATE = 2
    NEEDS_CHECK = 3
    RETURN_UNKNOWN = 4


_STATUS_CODE = {status: _Status[status.name].value for status in OutcomeStatus}
"""Each status's packed number (looked up for every committed event)."""
_STATUS_OF = {code: status for status, code in _STATUS_CODE.items()}
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
_OFFSET_BITS = 44
_PARTITION_BITS = 16
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_PARTITION_MASK = (1 << _PARTITION_BITS) - 1
_HOURS_SHIFT = 3 + 3 * _OFFSET_BITS + 2 * _PARTITION_BITS + 3


def _key(event_id: str) -> int:
    """A 64-bit hash: one collision in about 10^11 pairs at a million ids."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "big")


def _hours(at: datetime) -> int:
    return max(0, int((at - _EPOCH).total_seconds() // 3600))


class _Packed(NamedTuple):
    """The fields of a committed ``done`` entry, packed into one int.

    A named tuple: one is made for every committed event, and a frozen dataclass takes
    several times as long to make.
    """

    hours: int
    status: OutcomeStatus
    outcome_partition: int
    outcome_offset: int
    input_partition: int
    input_offset: int
    record_offset: int

    def pack(self) -> int:
        value = self.hours
        value = (value << 3) | _STATUS_CODE[self.status]
        value = (value << _PARTITION_BITS) | self.outcome_partition
        value = (value << _OFFSET_BITS) | self.outcome_offset
        value = (value << _PARTITION_BITS) | self.input_partition
        value = (value << _OFFSET_BITS) | self.input_offset
        value = (value << _OFFSET_BITS) | self.record_offset
        return (value << 3) | 0b001  # a version tag: lets the layout change later

    @classmethod
    def unpack(cls, value: int) -> _Packed:
        value >>= 3
        record_offset = value & _OFFSET_MASK
        value >>= _OFFSET_BITS
        input_offset = value & _OFFSET_MASK
        value >>= _OFFSET_BITS
        input_partition = value & _PARTITION_MASK
        value >>= _PARTITION_BITS
        outcome_offset = value & _OFFSET_MASK
        value >>= _OFFSET_BITS
        outcome_partition = value & _PARTITION_MASK
        value >>= _PARTITION_BITS
        status = _STATUS_OF[value & 0b111]
        return cls(
            hours=value >> 3,
            status=status,
            outcome_partition=outcome_partition,
            outcome_offset=outcome_offset,
            input_partition=input_partition,
            input_offset=input_offset,
            record_offset=record_offset,
        )


class Progress(BaseModel):
    """The value of a progress record: offsets finished beyond each committed prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    finished: dict[str, list[int]] = {}
    """Input topic -> offsets of this partition whose outputs are committed though the
    consumed offset has not passed them yet."""

    def to_bytes(self) -> bytes:
        """The record value: what ``model_dump_json().encode()`` gives, without the str."""
        return self.__pydantic_serializer__.to_json(self)


_LEDGER_FIELD = b',"ledger":'
_CANCELS = re.compile(rb'"cancels":"([A-Za-z0-9._:\-]+)"')
"""The return a ledger entry cancels (an event id: no character a JSON string escapes)."""


class _Partition:
    def __init__(self) -> None:
        self.done: dict[int, int] = {}
        self.open: dict[str, EventState] = {}
        self.cancelled_by: dict[str, str] = {}
        """Return event id -> the event that cancelled it first (its ledger says so)."""
        self.progress = Progress()

    def apply_raw(self, event_id: str, value: bytes | None, oldest: datetime, offset: int) -> None:
        """Apply one record of the state topic; ``done`` records skip the model (restore speed).

        The ledger entry is a record's last field and most of its bytes: memory keeps only its
        offset, and which return it cancels, so a ``done`` record's head alone is parsed.
        """
        if value is None:
            self.apply(event_id, None, None)
            return
        cut = value.find(_LEDGER_FIELD)
        # A JSON string cannot hold an unescaped quote: the only match is the field itself.
        data = json.loads(value[:cut] + b"}" if cut > 0 else value)
        at = datetime.fromisoformat(data["at"])
        if at < oldest:
            self.apply(event_id, None, None)
            return
        outcome = data.get("outcome")
        if data.get("phase") == "done" and isinstance(outcome, dict):
            self.done[_key(event_id)] = _Packed(
                hours=_hours(at),
                status=OutcomeStatus(outcome["status"]),
                outcome_partition=outcome["partition"],
                outcome_offset=outcome["offset"],
                input_partition=data["input_partition"],
                input_offset=data["input_offset"],
                record_offset=offset,
            ).pack()
            self.open.pop(event_id, None)
            cancels = _CANCELS.search(value, cut) if cut > 0 else None
            if cancels is not None:
                self.cancelled_by.setdefault(cancels.group(1).decode(), event_id)
        else:
            self.apply(event_id, EventState.model_validate_json(value), None)

    def apply(self, event_id: str, state: EventState | None, offset: int | None) -> None:
        key = _key(event_id)
        if state is None:
            self.done.pop(key, None)
            self.open.pop(event_id, None)
            return
        if state.ledger is not None and state.ledger.cancels is not None:
            self.cancelled_by.setdefault(state.ledger.cancels, event_id)
        if state.phase == "done" and state.outcome is not None and offset is not None:
            self.done[key] = _Packed(
                hours=_hours(state.at),
                status=state.outcome.status,
                outcome_partition=state.outcome.partition,
                outcome_offset=state.outcome.offset,
                input_partition=state.input_partition,
                input_offset=state.input_offset,
                record_offset=offset,
            ).pack()
            self.open.pop(event_id, None)
        else:
            self.done.pop(key, None)
            self.open[event_id] = state

    def knows(self, event_id: str) -> bool:
        return event_id in self.open or _key(event_id) in self.done


class StateReader(Protocol):
    """Reads the state topic: one partition whole, or one record at an offset."""

    def read(self, partition: int) -> AsyncIterator[Sequence[tuple[bytes, bytes | None, int]]]:
        """Every (key, value, offset) of the partition, in order, a batch at a time (so a
        restore never holds the whole partition); ``None`` for a tombstone."""
        ...

    async def fetch(self, partition: int, offset: int) -> tuple[bytes, bytes | None] | None:
        """The (key, value) of the record at ``offset``; ``None`` if it is not there."""
        ...


class StateStore:
    """The state of the partitions this instance owns, restored from Kafka on assignment."""

    def __init__(self, reader: StateReader, *, window: timedelta) -> None:
        self._reader = reader
        self._window = window
        self._partitions: dict[int, _Partition] = {}
        self._waiting: dict[tuple[int, str], list[asyncio.Future[None]]] = {}
        self._next_expiry = -math.inf

    def expire_due(self, now: datetime, monotonic: float) -> None:
        """:meth:`expire` at most once an hour: memory stays bounded while running too."""
        if monotonic < self._next_expiry:
            return
        self._next_expiry = monotonic + EXPIRE_EVERY_SECONDS
        dropped = self.expire(now)
        if dropped:
            log.info("state_expired", dropped=dropped, remembered=self.size())

    async def restore(self, partition: int, now: datetime) -> int:
        """Read state partition ``partition``; returns how many event ids it remembers."""
        cache = _Partition()
        oldest = now - self._window
        async for batch in self._reader.read(partition):
            for key, value, offset in batch:
                if key == PROGRESS_KEY:
                    cache.progress = Progress.model_validate_json(value) if value else Progress()
                else:
                    cache.apply_raw(key.decode(), value, oldest, offset)
        self._partitions[partition] = cache
        return len(cache.done) + len(cache.open)

    def finished_above(self, partition: int) -> dict[str, set[int]]:
        """Per input topic, offsets of ``partition`` committed finished beyond its prefix."""
        cache = self._partitions.get(partition)
        if cache is None:
            return {}
        return {topic: set(offsets) for topic, offsets in cache.progress.finished.items()}

    def forget(self, partition: int) -> None:
        """Drop a partition that is no longer ours."""
        self._partitions.pop(partition, None)

    async def committed(self, partition: int, event_id: str, seconds: float) -> bool:
        """Wait until the ``done`` state of ``event_id`` is committed; False after ``seconds``.

        A finished event is known at once, its state committed with the next transaction of
        its partition: what depends on its outcome being final (a cancellation giving back
        what its return took) waits for that, so a crash cannot run the event again after.
        """
        cache = self._partitions.get(partition)
        if cache is not None and _key(event_id) in cache.done:
            return True
        waiter = asyncio.get_running_loop().create_future()
        waiters = self._waiting.setdefault((partition, event_id), [])
        waiters.append(waiter)
        try:
            async with asyncio.timeout(seconds):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            waiters.remove(waiter)
            if not waiters:
                del self._waiting[(partition, event_id)]

    def lookup(self, partition: int, event_id: str, now: datetime) -> EventState | None:
        """What the state says of ``event_id`` (within the window), or ``None``.

        An open event's state is the one read or written; a finished one's is rebuilt from
        its packed form, without its ledger entry (:meth:`entry` reads that back).
        """
        cache = self._partitions.get(partition)
        if cache is None:
            return None
        found = cache.open.get(event_id)
        if found is None and (packed := cache.done.get(_key(event_id))) is not None:
            unpacked = _Packed.unpack(packed)
            found = EventState(
                event_id=event_id,
                phase="done",
                at=_EPOCH + timedelta(hours=unpacked.hours),
                input_partition=unpacked.input_partition,
                input_offset=unpacked.input_offset,
                outcome=OutcomeRef(
                    partition=unpacked.outcome_partition,
                    offset=unpacked.outcome_offset,
                    status=unpacked.status,
                ),
            )
        if found is None:
            return None
        # Packed times are whole hours: an hour of slack, never less than the window.
        if found.at < now - self._window - timedelta(hours=1):
            return None
        return found

    async def entry(self, partition: int, event_id: str) -> EventState | None:
        """The whole state of ``event_id``, its ledger entry included, or ``None``.

        A committed ``done`` state is read back from the state topic (one record).
        Raises :class:`BrokerError` when Kafka does not give that record back.
        """
        cache = self._partitions.get(partition)
        if cache is None:
            return None
        if (state := cache.open.get(event_id)) is not None:
            return state
        packed = cache.done.get(_key(event_id))
        if packed is None:
            return None
        offset = _Packed.unpack(packed).record_offset
        found = await self._reader.fetch(partition, offset)
        if found is None or found[0].decode() != event_id or found[1] is None:
            raise BrokerError(
                "the state record of an event is not where it was committed",
                partition=partition,
                offset=offset,
                event_id=event_id,
            )
        try:
            return EventState.model_validate_json(found[1])
        except ValidationError as exc:
            raise BrokerError(
                "the state record of an event cannot be read",
                partition=partition,
                offset=offset,
                event_id=event_id,
                errors=exc.error_count(),
            ) from exc

    def cancellation_of(self, partition: int, return_event_id: str) -> str | None:
        """The event that cancelled this return first, if one did (on this partition)."""
        cache = self._partitions.get(partition)
        return cache.cancelled_by.get(return_event_id) if cache is not None else None

    def remember(self, partition: int, state: EventState, offset: int | None = None) -> None:
        """Record a state: committed at ``offset`` of the state partition, or not yet."""
        cache = self._partitions.get(partition)
        if cache is not None:
            cache.apply(state.event_id, state, offset)
            waiters = self._waiting.get((partition, state.event_id)) if self._waiting else None
            if waiters and _key(state.event_id) in cache.done:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    def expire(self, now: datetime) -> int:
        """Forget what is older than the window; returns how many entries went."""
        oldest_hours = _hours(now - self._window) - 1
        dropped = 0
        for cache in self._partitions.values():
            stale = [k for k, v in cache.done.items() if (v >> _HOURS_SHIFT) < oldest_hours]
            for key in stale:
                del cache.done[key]
            old_open = [e for e, s in cache.open.items() if s.at < now - self._window]
            for event_id in old_open:
                del cache.open[event_id]
            cache.cancelled_by = {
                returned: by for returned, by in cache.cancelled_by.items() if cache.knows(by)
            }
            dropped += len(stale) + len(old_open)
        return dropped

    def size(self) -> int:
        """Event ids remembered across the owned partitions."""
        return sum(len(c.done) + len(c.open) for c in self._partitions.values())


__all__ = [
    "PROGRESS_KEY",
    "EventState",
    "Intent",
    "OutcomeRef",
    "Progress",
    "StateReader",
    "StateStore",
]
