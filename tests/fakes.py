"""In-memory stand-ins for Kafka and Capillary, for unit tests of the pipeline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.capillary.api import CapillaryApi
from service.capillary.client import CapillaryClient
from service.capillary.models import (
    CustomerT,
    LoyaltyBulkAction,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
)
from service.capillary.requests import (
    CartRevoke,
    CouponCodesRevoke,
    CustomerCouponsRevoke,
    Deactivation,
    LoyaltyBulk,
)
from service.capillary.results import ItemResult, ResultClass
from service.clock import FakeClock
from service.errors import BrokerError
from service.outcome import OutcomeEvent
from service.pipeline.records import (
    Committed,
    DeadLetter,
    Finished,
    PartitionHook,
    Record,
    RetryLater,
)
from service.pipeline.state import PROGRESS_KEY, EventState, OutcomeRef, Progress


@dataclass
class FakeSource:
    """Hands out prepared batches; records pauses, holds and seeks; ``drained`` when empty.

    Partitions are assigned at start (``partitions``), through the same hooks Kafka's
    rebalance listener calls.
    """

    batches: list[list[Record]]
    partitions: list[int] = field(default_factory=lambda: [0, 1, 2])
    in_flight: asyncio.Lock = field(default_factory=asyncio.Lock)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    paused_all: bool = False
    on_assigned: PartitionHook | None = None
    on_revoked: PartitionHook | None = None
    held: list[tuple[str, int, int]] = field(default_factory=list)
    seeks: list[tuple[str, int, int]] = field(default_factory=list)
    pauses: int = 0
    started: bool = False
    stopped: bool = False
    clock: FakeClock | None = None
    """Moved on by every empty poll, as a real poll's fetch timeout would."""
    ends: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    """What ``reading`` reports: (end offset, next offset to read) per partition."""

    async def start(self) -> None:
        self.started = True
        if self.on_assigned is not None:
            await self.on_assigned(self.partitions)

    async def stop(self) -> None:
        self.stopped = True

    async def poll(self, timeout_ms: int | None = None) -> Sequence[Record]:
        if self.batches and not self.paused_all:
            return self.batches.pop(0)
        if not self.batches:
            self.drained.set()
        if self.clock is not None:
            self.clock.advance(0.5)
        await asyncio.sleep(0)  # yield, as a real poll would, so stop can be observed
        return []

    def pause_all(self) -> None:
        self.paused_all = True
        self.pauses += 1

    def resume_all(self) -> None:
        self.paused_all = False

    def hold(self, topic: str, partition: int, offset: int) -> None:
        self.held.append((topic, partition, offset))

    def release(self, topic: str, partition: int) -> None:
        self.held = [h for h in self.held if (h[0], h[1]) != (topic, partition)]

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self.seeks.append((topic, partition, offset))

    @property
    def joined(self) -> bool:
        return self.started and not self.stopped

    def reading(self) -> dict[tuple[str, int], tuple[int, int]]:
        return dict(self.ends)

    @property
    def partition_count(self) -> int:
        return len(self.partitions)


@dataclass
class FakeCommitter:
    """Keeps what a transaction would write; ``fail_next`` makes the next commit fail."""

    commits: list[tuple[int, list[Finished], dict[str, int]]] = field(default_factory=list)
    starts: list[tuple[int, EventState]] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)
    fail_next: int = 0
    fail_starts: int = 0
    stopped: bool = False
    state_topic: FakeStateReader = field(default_factory=lambda: FakeStateReader())
    """Where committed states go, as a real transaction writes them to the state topic: give
    it the reader of the ``StateStore`` under test, so the ledger reads them back."""
    reset_done: asyncio.Event = field(default_factory=asyncio.Event)
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by each commit (and replaced): wait on it for the next one."""

    async def open_partition(self, partition: int) -> None:
        self.opened.append(partition)

    async def close_partition(self, partition: int) -> None:
        self.closed.append(partition)

    async def reset_partition(self, partition: int) -> None:
        self.resets.append(partition)
        self.reset_done.set()

    async def record_start(self, partition: int, state: EventState) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise BrokerError("transaction failed (fake)", partition=partition)
        self.starts.append((partition, state))
        self._write(partition, state)

    async def commit(
        self,
        partition: int,
        finished: Sequence[Finished],
        offsets: Mapping[str, int],
        progress: Progress | None = None,
    ) -> list[Committed]:
        if self.fail_next:
            self.fail_next -= 1
            raise BrokerError("transaction failed (fake)")
        self.commits.append((partition, list(finished), dict(offsets)))
        if progress is not None:
            records = self.state_topic.partitions.setdefault(partition, [])
            records.append((PROGRESS_KEY, progress.model_dump_json().encode()))
        self.committed.set()
        self.committed = asyncio.Event()
        written = []
        for index, item in enumerate(finished):
            if item.state is None:
                continue
            state = item.state
            if state.phase == "done" and isinstance(item.result, OutcomeEvent):
                ref = OutcomeRef(partition=0, offset=index, status=item.result.status)
                state = state.model_copy(update={"outcome": ref})
            written.append(self._write(partition, state))
        return written

    def _write(self, partition: int, state: EventState) -> Committed:
        """Into the state topic: its offset is where the reader finds it."""
        return Committed(state, self.state_topic.put(partition, state))

    async def stop(self) -> None:
        self.stopped = True

    @property
    def outcomes(self) -> list[OutcomeEvent]:
        return [
            f.result for _, fs, _ in self.commits for f in fs if isinstance(f.result, OutcomeEvent)
        ]

    @property
    def dead_letters(self) -> list[DeadLetter]:
        return [
            f.result for _, fs, _ in self.commits for f in fs if isinstance(f.result, DeadLetter)
        ]

    @property
    def retries(self) -> list[RetryLater]:
        return [
            f.result for _, fs, _ in self.commits for f in fs if isinstance(f.result, RetryLater)
        ]

    def offsets(self) -> dict[tuple[str, int], int]:
        """The last committed offset per (topic, partition)."""
        last: dict[tuple[str, int], int] = {}
        for partition, _, offsets in self.commits:
            for topic, offset in offsets.items():
                last[(topic, partition)] = offset
        return last


@dataclass
class FakeStateReader:
    """A state topic in memory: what each partition holds, as (key, value) records.

    A record's offset is its place in its partition's list, as in a topic never compacted.
    """

    partitions: dict[int, list[tuple[bytes, bytes | None]]] = field(default_factory=dict)
    fetches: int = 0

    async def read(self, partition: int) -> AsyncIterator[list[tuple[bytes, bytes | None, int]]]:
        records = self.partitions.get(partition, [])
        # Two batches at most, as a real read gives them: what is applied across them counts.
        half = len(records) // 2
        for start, stop in ((0, half), (half, len(records))):
            if stop > start:
                yield [(records[o][0], records[o][1], o) for o in range(start, stop)]

    async def fetch(self, partition: int, offset: int) -> tuple[bytes, bytes | None] | None:
        self.fetches += 1
        records = self.partitions.get(partition, [])
        return records[offset] if 0 <= offset < len(records) else None

    def put(self, partition: int, state: EventState) -> int:
        """Append ``state``; its offset."""
        records = self.partitions.setdefault(partition, [])
        records.append((state.event_id.encode(), state.to_bytes()))
        return len(records) - 1


def done(item: str, **extra: Any) -> ItemResult:
    """A successful item result as the client returns it."""
    return ItemResult(item=item, result_class=ResultClass.DONE, attempts=1, **extra)


_LOYALTY_CALLS: dict[LoyaltyBulkAction, tuple[str, str]] = {
    "REVOKE_EARN": ("revoke_loyalty_earns", "loyalty_earn"),
    "REVOKE_ENROL": ("revoke_loyalty_enrolments", "enrolment"),
    "ENROL": ("enrol", "enrolment"),
    "EARN": ("issue_earn", "earn"),
}
"""Each loyalty bulk action's name in ``FakeCapillary.calls`` (and ``answers``), and its items'."""


def _named(customer: LoyaltyCustomer) -> list[str]:
    """What the items of a customer's loyalty call name: its earn ids, or the customer."""
    if not isinstance(customer, LoyaltyCustomerEarns):
        return [customer.identifier_value]
    return [str(e) for e in customer.earn_ids] if customer.earn_ids is not None else ["all"]


@dataclass
class FakeCapillary:
    """The executor's view of ``CapillaryClient``, answering DONE per item unless told otherwise.

    Typed like the client (``CapillaryApi``, checked below), so it takes exactly the calls
    the client takes. It answers only what the client can answer: per-item results.
    ``crash_on`` stands for a bug inside the client (the one way the real client raises),
    never for a Capillary refusal: those are results.
    """

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answers: dict[str, list[ItemResult]] = field(default_factory=dict)
    crash_on: dict[str, Exception] = field(default_factory=dict)

    def _answer(self, method: str, items: list[str], **kwargs: Any) -> list[ItemResult]:
        self.calls.append((method, kwargs))
        if method in self.crash_on:
            raise self.crash_on[method]
        if method in self.answers:
            return self.answers[method]
        return [done(item) for item in items]

    async def loyalty(
        self, bulk: LoyaltyBulk[CustomerT], customers: Sequence[CustomerT]
    ) -> list[ItemResult]:
        name, kind = _LOYALTY_CALLS[bulk.action.bulk_action]
        items = [f"{kind}:{value}" for c in customers for value in _named(c)]
        return self._answer(
            name,
            items,
            promotion=bulk.promotion,
            identifier_name=bulk.identifier_name,
            customers=list(customers),
            attribution=bulk.attribution,
        )

    async def revoke_cart_earns(self, request: CartRevoke) -> list[ItemResult]:
        earns = list(request.earns)
        items = [f"cart_earn:{e}" for ref in earns for e in ref.earn_ids]
        return self._answer(
            "revoke_cart_earns", items, customer_id=request.customer_id, earns=earns
        )

    async def revoke_coupons_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
        codes = list(request.codes)
        return self._answer(
            "revoke_coupons_by_codes",
            [f"coupon:{c}" for c in codes],
            codes=codes,
            series_id=request.series_id,
            generic=request.generic,
            no_generic_code=request.no_generic_code,
            customer=request.customer,
        )

    async def revoke_coupons_by_customer(self, request: CustomerCouponsRevoke) -> list[ItemResult]:
        return self._answer(
            "revoke_coupons_by_customer",
            ["coupons:customer"],
            customer=request.customer,
            series_id=request.series_id,
        )

    async def deactivate_promotion(self, request: Deactivation) -> list[ItemResult]:
        return self._answer(
            "deactivate_promotion",
            [f"deactivation:{request.promotion_id}"],
            promotion_id=request.promotion_id,
            customer_id=request.customer_id,
            earn_id=request.earn_id,
        )


if TYPE_CHECKING:
    # mypy proves the fake takes exactly the calls the executor makes of the real client.
    _fake_is_an_api: CapillaryApi = FakeCapillary()
    _client_is_an_api: CapillaryApi = CapillaryClient.__new__(CapillaryClient)
