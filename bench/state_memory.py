"""Memory of the state: what one million remembered events cost, ledger entries included.

    PYTHONPATH=. .venv/bin/python bench/state_memory.py [--events 1000000]

The generated state topic looks like the real one: one committed ``done`` record per event
(compaction keeps the last one of a key), spread over three partitions, at sparse offsets,
each with the event's ledger entry as the service writes it. Returns (nine in ten) are FULL
returns of the bench's realistic mix at its richest: two loyalty earns and the enrolment of
an enrol-and-issue promotion, a cart earn and two coupons, all revoked. Cancellations
(every tenth event) cancel a return of their own partition: the enrolment and both earns
given back, the cart earn and the coupons reported as not restorable. Both shapes are
planned by the service's rules and recorded by its ledger code (``entry_of``) once, with
placeholders for the ids, then filled in per event; a sample of records is checked byte for
byte against the same path run with the real ids.

A restore runs as the service's does: ``KafkaStateReader.read`` gives a partition's records
a fetched batch at a time (so no partition is ever held whole), and the service sets up every
assigned partition at once (``asyncio.gather`` in ``run.py``). The records are made while
they are "read"; that time is not counted in the restore. For comparison, a restore one
partition at a time is measured too.

Reports the restore's seconds, the heap the store holds afterwards (tracemalloc; also split
by structure) and per remembered event, the process's RSS before, at its peak during and
after the restore, and the state topic's bytes per event. Writes
``bench/results/state_memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import platform
import random
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_world import FIRST_COUPON, FIRST_CUSTOMER, FIRST_EARN, FIRST_ISSUAL, WorldBuilder

from service.actions import (
    Action,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    Plan,
    Report,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.events import ReturnEvent
from service.ledger import LedgerFacts, ReturnRecord, entry_of
from service.outcome import ActionResult, ActionStatus, ItemResult, OutcomeStatus
from service.pipeline.state import EventState, OutcomeRef, StateStore
from service.rules import parse_policy
from service.wiring import make_planner

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 3
CANCELLATION_EVERY = 10
"""One event in ten is a cancellation (of a return three events earlier: same partition)."""
TARGET_MB = 250
"""The issue's limit for a million remembered events."""
CHUNK = 10_000
"""Records "fetched" per partition between yields: the three reads interleave, as fetches do."""
NOW = datetime(2026, 11, 25, tzinfo=UTC)
WINDOW = timedelta(days=35)

Fields = dict[str, Any]
"""One event's ids and positions, by placeholder name."""

# Placeholders of the two templates: distinct, of one length each kind, so none is part of
# another, and none occurs in the constant text of a record.
_SENTINELS: Fields = {
    "event_id": "SENTINEL-EVENT-ID",
    "cancels": "SENTINEL-CANCELS-",
    "at": datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC),
    "input_partition": 97310000001,
    "input_offset": 97310000002,
    "outcome_partition": 97310000003,
    "outcome_offset": 97310000004,
    "customer": 97310000005,
    "earn_1": 97310000006,
    "earn_2": 97310000007,
    "issual": 97310000008,
    "cart_earn": "feedfacefeedfacefeedface",
    "code_1": "BN97310000009",
    "code_2": "BN97310000010",
    "new_issual": 97310000011,
    "earned_1": 97310000012,
    "earned_2": 97310000013,
}


def _is_cancellation(n: int) -> bool:
    return n % CANCELLATION_EVERY == CANCELLATION_EVERY - 1


def _event_id(n: int) -> str:
    return f"{'cxl' if _is_cancellation(n) else 'ret'}-2026{n:012d}-{n % 97:02d}"


def _record_offset(n: int) -> int:
    # Each event wrote a started and a done record, and each transaction a marker:
    # compaction leaves the done records at sparse offsets.
    return 3 * (n // PARTITIONS) + 2


def _fields(n: int) -> Fields:
    """The ids of event ``n`` (for a cancellation, also those of the return it cancels)."""
    partition, index = n % PARTITIONS, n // PARTITIONS
    returned = n - PARTITIONS if _is_cancellation(n) else n
    fields: Fields = {
        "event_id": _event_id(n),
        "at": NOW - timedelta(minutes=n % 10_000),
        "input_partition": partition,
        "input_offset": index,
        "outcome_partition": partition,
        "outcome_offset": index,
        "customer": FIRST_CUSTOMER + returned,
        "earn_1": FIRST_EARN + 2 * returned,
        "earn_2": FIRST_EARN + 2 * returned + 1,
        "issual": FIRST_ISSUAL + returned,
        "cart_earn": f"65f0{returned:020x}",
        "code_1": f"BN{FIRST_COUPON + 2 * returned}",
        "code_2": f"BN{FIRST_COUPON + 2 * returned + 1}",
    }
    if _is_cancellation(n):
        fields |= {
            "cancels": _event_id(returned),
            "new_issual": FIRST_ISSUAL + 50_000_000 + n,
            "earned_1": FIRST_EARN + 500_000_000 + 2 * n,
            "earned_2": FIRST_EARN + 500_000_000 + 2 * n + 1,
        }
    return fields


def _text(value: object) -> str:
    """A field as it appears in the record's JSON (pydantic writes UTC as ``Z``)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


Answer = Callable[[Action, Fields], list[ItemResult]]


def _results(plan: Plan, fields: Fields, answer: Answer) -> list[ActionResult]:
    """Every action of ``plan`` answered by ``answer`` (reports: no call, skipped)."""
    results = []
    for action in plan.actions:
        if isinstance(action, Report):
            status, items, report = ActionStatus.SKIPPED, [], str(action.report_kind)
        else:
            items, report = answer(action, fields), None
            status = items[0].status
        results.append(
            ActionResult(
                action_id=action.action_id,
                kind=action.kind,
                reason_code=action.reason_code,
                reason=action.reason,
                status=status,
                report_kind=report,
                items=items,
            )
        )
    return results


def _return_answer(action: Action, fields: Fields) -> list[ItemResult]:
    """What Capillary answers a return's calls when everything is revoked."""
    revoked = ActionStatus.REVOKED
    if isinstance(action, RevokeLoyaltyEarn) and action.earn_ids is not None:
        return [ItemResult(item=f"loyalty_earn:{e}", status=revoked) for e in action.earn_ids]
    if isinstance(action, RevokeLoyaltyEnrolment):
        return [
            ItemResult(
                item=f"enrolment:{action.target.promotion_id}/{fields['customer']}",
                status=revoked,
                detail={"issual_id": str(fields["issual"])},
            )
        ]
    if isinstance(action, RevokeCartEarn):
        return [ItemResult(item=f"cart_earn:{e}", status=revoked) for e in action.earn_ids]
    if isinstance(action, RevokeCouponCodes):
        return [ItemResult(item=f"coupon:{c}", status=revoked) for c in action.codes]
    raise RuntimeError(f"the rules planned a call this bench does not answer: {action.kind}")


def _cancellation_answer(action: Action, fields: Fields) -> list[ItemResult]:
    """What Capillary answers a cancellation's give-backs: new issual and earn ids."""
    restored, issual = ActionStatus.RESTORED, str(fields["new_issual"])
    if isinstance(action, EnrolLoyalty):
        return [
            ItemResult(
                item=f"enrolment:{action.target.promotion_id}/{fields['customer']}",
                status=restored,
                detail={"issual_id": issual},
            )
        ]
    if isinstance(action, IssueLoyaltyEarn):
        earned = fields["earned_1" if action.replaces_earn_id == fields["earn_1"] else "earned_2"]
        return [
            ItemResult(
                item=f"loyalty_issue:{action.target.promotion_id}/{fields['customer']}",
                status=restored,
                detail={"earned_id": str(earned), "issual_id": issual},
            )
        ]
    raise RuntimeError(f"the rules planned a call this bench does not answer: {action.kind}")


class Shapes:
    """The two record shapes, made by the service's rules and ledger, and their templates."""

    def __init__(self) -> None:
        builder = WorldBuilder(random.Random(0), "state-memory", 2, 1)
        self._promotion = builder.promotions[1]  # the enrol-and-issue one
        self._cart = builder.cart_discount[0]
        self._series = builder.series[0]
        self._planner = make_planner(parse_policy(builder.policy(), "bench_world"))
        self._return = self._template(self.return_state, _SENTINELS)
        self._cancellation = self._template(self.cancellation_state, _SENTINELS)

    def _event(self, fields: Fields, event_id: str) -> dict[str, Any]:
        return {
            "schema_version": "1",
            "event_id": event_id,
            "occurred_at": NOW.isoformat(),
            "return_type": "FULL",
            "source": {"channel": "POS", "store_code": "STORE-042", "till_code": "TILL-03"},
            "order": {
                "order_id": f"ORD-{event_id}",
                "transaction_id": f"TX-{event_id}",
                "ordered_at": (NOW - timedelta(days=3)).isoformat(),
                "currency": "EUR",
            },
            "customer": {"id": fields["customer"], "registration_source": "INSTORE"},
            "amounts": {"before": "5400.00", "after": "0"},
            "earned": {
                "loyalty_promotions": [
                    {
                        "program_id": 2714,
                        "promotion_id": self._promotion.id,
                        "promotion_type": "LOYALTY_EARNING",
                        "earn_ids": [fields["earn_1"], fields["earn_2"]],
                        "issual_id": str(fields["issual"]),
                    }
                ],
                "cart_promotions": [
                    {
                        "promotion_id": self._cart,
                        "mode": "DISCOUNT",
                        "earn_ids": [fields["cart_earn"]],
                    }
                ],
                "coupons": [
                    {"series_id": self._series, "codes": [fields["code_1"], fields["code_2"]]}
                ],
            },
        }

    def _state(
        self,
        fields: Fields,
        event: ReturnEvent,
        plan: Plan,
        answer: Answer,
        cancels: str | None = None,
    ) -> EventState:
        results = _results(plan, fields, answer)
        return EventState(
            event_id=event.event_id,
            phase="done",
            at=fields["at"],
            input_partition=fields["input_partition"],
            input_offset=fields["input_offset"],
            outcome=OutcomeRef(
                partition=fields["outcome_partition"],
                offset=fields["outcome_offset"],
                status=OutcomeStatus.COMPLETED,
            ),
            ledger=entry_of(event, plan, results, attempt=1, cancels=cancels),
        )

    def return_state(self, fields: Fields) -> EventState:
        """A FULL return's state, the long way: event, plan, answers, ledger entry."""
        event = ReturnEvent.model_validate(self._event(fields, fields["event_id"]))
        return self._state(fields, event, self._planner(event, NOW), _return_answer)

    def cancellation_state(self, fields: Fields) -> EventState:
        """A cancellation's state, planned from what its return's ledger entry says."""
        returned = self.return_state(fields | {"event_id": fields["cancels"]})
        assert returned.ledger is not None
        data = self._event(fields, fields["event_id"])
        data |= {
            "return_type": "CANCELLED",
            "amounts": {"before": "0", "after": "5400.00"},
            "cancelled_return": {
                "return_event_id": fields["cancels"],
                "taken_back": data["earned"],
            },
            "earned": {},
        }
        event = ReturnEvent.model_validate(data)
        facts = LedgerFacts(returned=ReturnRecord.of(returned.ledger))
        plan = self._planner(event, NOW, facts)
        return self._state(fields, event, plan, _cancellation_answer, fields["cancels"])

    @staticmethod
    def _template(make: Callable[[Fields], EventState], sentinels: Fields) -> str:
        text = make(sentinels).to_bytes().decode()
        text = text.replace("{", "{{").replace("}", "}}")
        for name, value in sentinels.items():
            text = text.replace(_text(value), "{" + name + "}")
        return text

    def record(self, n: int) -> tuple[bytes, bytes]:
        """Event ``n``'s state record (key, value), from its template."""
        fields = _fields(n)
        template = self._cancellation if _is_cancellation(n) else self._return
        value = template.format_map({name: _text(v) for name, v in fields.items()})
        return fields["event_id"].encode(), value.encode()

    def state(self, n: int) -> EventState:
        """Event ``n``'s state, the long way."""
        fields = _fields(n)
        return (self.cancellation_state if _is_cancellation(n) else self.return_state)(fields)

    def check(self, ns: Iterable[int]) -> int:
        """Each templated record equals the long way's, byte for byte; how many were checked."""
        checked = 0
        for n in ns:
            if self.record(n)[1] != self.state(n).to_bytes():
                raise RuntimeError(f"the template of event {n} differs from the service's record")
            checked += 1
        return checked

    def items(self, n: int) -> list[str]:
        """What the ledger entry of event ``n`` lists: kind and status of each item."""
        ledger = self.state(n).ledger
        assert ledger is not None
        return [f"{item.kind}:{item.status}" for item in ledger.items]


class GeneratedTopic:
    """The state topic, made up while it is read: a ``StateReader`` for the store."""

    def __init__(self, shapes: Shapes, events: int) -> None:
        self._shapes = shapes
        self._events = events
        self.making_seconds = 0.0
        """Time spent making records (counted out of the restore)."""
        self.sizes: dict[str, list[int]] = {}
        """Per kind (return, cancellation): records, key bytes, value bytes (first read)."""
        self._sized: set[int] = set()

    async def read(self, partition: int) -> AsyncIterator[list[tuple[bytes, bytes | None, int]]]:
        """Every record of the partition, a batch at a time: what ``KafkaStateReader.read``
        gives (a fetch of at most 10,000 records)."""
        size = partition not in self._sized
        self._sized.add(partition)
        stride = PARTITIONS * CHUNK
        for start in range(partition, self._events, stride):
            started = time.perf_counter()
            records: list[tuple[bytes, bytes | None, int]] = []
            for n in range(start, min(start + stride, self._events), PARTITIONS):
                key, value = self._shapes.record(n)
                records.append((key, value, _record_offset(n)))
                if size:
                    counts = self.sizes.setdefault(
                        "cancellation" if _is_cancellation(n) else "return", [0, 0, 0]
                    )
                    counts[0] += 1
                    counts[1] += len(key)
                    counts[2] += len(value)
            self.making_seconds += time.perf_counter() - started
            yield records

    async def fetch(self, partition: int, offset: int) -> tuple[bytes, bytes | None] | None:
        """The record at ``offset`` (the inverse of the offsets ``read`` gives)."""
        index, rest = divmod(offset - 2, 3)
        n = partition + index * PARTITIONS
        if rest or index < 0 or n >= self._events:
            return None
        return self._shapes.record(n)


# --------------------------------------------------------------------------- the process


def _say(message: str) -> None:
    """Progress on stderr; stdout carries only the result."""
    print(f"state_memory: {message}", file=sys.stderr, flush=True)


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def _settle() -> None:
    """Collect, and hand freed heap back to the system, so RSS shows what is still held."""
    gc.collect()
    # Not glibc: RSS may keep some freed memory.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> bool:
    """Start VmHWM again from the current RSS (Linux 4.0 on); False when it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def _restore(topic: GeneratedTopic, *, together: bool) -> StateStore:
    store = StateStore(topic, window=WINDOW)
    if together:
        # As run.py's _assigned: every assigned partition set up at once.
        await asyncio.gather(*(store.restore(p, NOW) for p in range(PARTITIONS)))
    else:
        for partition in range(PARTITIONS):
            await store.restore(partition, NOW)
    return store


async def _verify(store: StateStore, shapes: Shapes, events: int) -> None:
    """The restored store answers as the service relies on: dedupe, cancellation, entry."""
    if store.size() != events:
        raise RuntimeError(f"the store remembers {store.size()} of {events} events")
    cancellations = [n for n in range(events) if _is_cancellation(n)]
    for n in cancellations[:1] + cancellations[-1:]:
        returned, partition = n - PARTITIONS, n % PARTITIONS
        if store.cancellation_of(partition, _event_id(returned)) != _event_id(n):
            raise RuntimeError(f"the cancellation of {_event_id(returned)} is not known")
        state = await store.entry(partition, _event_id(returned))
        if state is None or state.ledger != shapes.state(returned).ledger:
            raise RuntimeError(f"the ledger entry of {_event_id(returned)} did not read back")
        known = store.lookup(partition, _event_id(n), NOW)
        if known is None or known.phase != "done":
            raise RuntimeError(f"{_event_id(n)} is not remembered as done")


def _heap_by_structure(store: StateStore) -> dict[str, float]:
    """Bytes of each structure of the store (containers, keys and values), in MB."""
    sizes = {"done": 0, "open": 0, "cancelled_by": 0}
    for cache in store._partitions.values():
        for name, table in (
            ("done", cache.done),
            ("open", cache.open),
            ("cancelled_by", cache.cancelled_by),
        ):
            mapping: dict[Any, Any] = table
            sizes[name] += sys.getsizeof(mapping) + sum(
                sys.getsizeof(k) + sys.getsizeof(v) for k, v in mapping.items()
            )
    return {name: round(size / 2**20, 1) for name, size in sizes.items()}


def _samples(events: int) -> Sequence[int]:
    """Events checked the long way: the first ones, both shapes, and a spread."""
    step = max(1, events // 50)
    return sorted({*range(min(events, 2 * CANCELLATION_EVERY)), *range(0, events, step)})


async def measure(events: int) -> dict[str, Any]:
    """Restore ``events`` remembered events three times: timed, one by one, traced."""
    shapes = Shapes()
    checked = shapes.check(_samples(events))
    topic = GeneratedTopic(shapes, events)
    _say(f"{checked} records match the service's; restoring {events} events, partitions at once")

    _settle()
    rss_before = _status_kb("VmRSS")
    peak_resettable = _reset_peak()
    started = time.perf_counter()
    store = await _restore(topic, together=True)
    restore_seconds = time.perf_counter() - started - topic.making_seconds
    peak_together = _status_kb("VmHWM")
    _settle()
    rss_after = _status_kb("VmRSS")
    await _verify(store, shapes, events)
    by_structure = _heap_by_structure(store)

    del store
    _settle()
    peak_one_by_one: int | None = None
    if peak_resettable and _reset_peak():
        _say(f"restored in {restore_seconds:.1f} s; again, one partition at a time")
        store = await _restore(topic, together=False)
        peak_one_by_one = _status_kb("VmHWM")
        del store
        _settle()

    _say("again under tracemalloc (the slowest: a few minutes for a million)")
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    store = await _restore(topic, together=False)
    gc.collect()
    after, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = after - before

    counts = {kind: topic.sizes.get(kind, [0, 0, 0]) for kind in ("return", "cancellation")}
    records = sum(c[0] for c in counts.values())
    key_bytes = sum(c[1] for c in counts.values())
    value_bytes = sum(c[2] for c in counts.values())
    return {
        "events": events,
        "returns": counts["return"][0],
        "cancellations": counts["cancellation"][0],
        "restore_seconds": round(restore_seconds, 2),
        "restore_events_per_second": round(events / restore_seconds) if restore_seconds else None,
        "heap_mb": round(held / 2**20, 1),
        "bytes_per_event": round(held / events, 1),
        "target_mb": TARGET_MB,
        "heap_within_target": held / 2**20 * 1_000_000 / events <= TARGET_MB,
        "heap_by_structure_mb": by_structure,
        "heap_peak_during_restore_mb": round((traced_peak - before) / 2**20, 1),
        "rss_before_restore_mb": _mb(rss_before),
        "rss_after_restore_mb": _mb(rss_after),
        "peak_rss_mb": _mb(peak_together if peak_resettable else _status_kb("VmHWM")),
        "peak_rss_one_partition_at_a_time_mb": (
            _mb(peak_one_by_one) if peak_one_by_one is not None else None
        ),
        "state_topic": {
            "value_bytes_per_event": round(value_bytes / records, 1) if records else None,
            "key_bytes_per_event": round(key_bytes / records, 1) if records else None,
            "return_value_bytes": (
                round(counts["return"][2] / counts["return"][0], 1) if counts["return"][0] else None
            ),
            "cancellation_value_bytes": (
                round(counts["cancellation"][2] / counts["cancellation"][0], 1)
                if counts["cancellation"][0]
                else None
            ),
            "mb": round((key_bytes + value_bytes) / 2**20, 1),
        },
        "ledger_items": {
            "return": shapes.items(0),
            "cancellation": shapes.items(CANCELLATION_EVERY - 1) if events >= 10 else None,
        },
        "records_checked_against_the_service": checked,
        "partitions": PARTITIONS,
        "python": platform.python_version(),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print and write the result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "state_memory.json")
    args = parser.parse_args(argv)
    if args.events < CANCELLATION_EVERY:
        parser.error(f"--events must be at least {CANCELLATION_EVERY}")
    result = asyncio.run(measure(args.events))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
