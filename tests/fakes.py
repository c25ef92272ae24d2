"""In-memory stand-ins for Kafka and Capillary, for unit tests of the pipeline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.capillary.client import CapillaryClient
from service.capillary.models import (
    Attribution,
    CartEarnsRef,
    CouponCustomer,
    IdentifierName,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.results import ItemResult, ResultClass
from service.errors import ReturnHandlerError
from service.outcome import OutcomeEvent
from service.pipeline.execute import CapillaryApi
from service.pipeline.records import DeadLetter, Record


@dataclass
class FakeSource:
    """Hands out prepared batches, records commits; sets ``drained`` when out of batches."""

    batches: list[list[Record]]
    commits: list[list[Record]] = field(default_factory=list)
    in_flight: asyncio.Lock = field(default_factory=asyncio.Lock)
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    started: bool = False
    stopped: bool = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def poll(self) -> Sequence[Record]:
        if self.batches:
            return self.batches.pop(0)
        self.drained.set()
        await asyncio.sleep(0)  # yield, as a real poll would, so stop can be observed
        return []

    @contextlib.asynccontextmanager
    async def processing(self) -> AsyncIterator[None]:
        async with self.in_flight:
            yield

    async def commit(self, records: Sequence[Record]) -> None:
        self.commits.append(list(records))


@dataclass
class FakeSink:
    """Collects what would be published; can be told to fail."""

    outcomes: list[OutcomeEvent] = field(default_factory=list)
    outcome_keys: list[bytes | None] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    fail_with: ReturnHandlerError | None = None
    on_outcome: Callable[[OutcomeEvent], None] | None = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish_outcome(self, outcome: OutcomeEvent, key: bytes | None) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.outcomes.append(outcome)
        self.outcome_keys.append(key)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def publish_dead_letter(self, dead: DeadLetter) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.dead_letters.append(dead)


def done(item: str, **extra: Any) -> ItemResult:
    """A successful item result as the client returns it."""
    return ItemResult(item=item, result_class=ResultClass.DONE, attempts=1, **extra)


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

    async def revoke_loyalty_earns(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomerEarns],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        items = [
            f"loyalty_earn:{e}"
            for c in customers
            for e in (map(str, c.earn_ids) if c.earn_ids is not None else ["all"])
        ]
        return self._answer(
            "revoke_loyalty_earns",
            items,
            promotion=promotion,
            identifier_name=identifier_name,
            customers=list(customers),
            attribution=attribution,
        )

    async def revoke_loyalty_enrolments(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        items = [f"enrolment:{c.identifier_value}" for c in customers]
        return self._answer(
            "revoke_loyalty_enrolments", items, promotion=promotion, customers=list(customers)
        )

    async def enrol(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        items = [f"enrolment:{c.identifier_value}" for c in customers]
        return self._answer("enrol", items, promotion=promotion, customers=list(customers))

    async def issue_earn(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        items = [f"earn:{c.identifier_value}" for c in customers]
        return self._answer("issue_earn", items, promotion=promotion, customers=list(customers))

    async def revoke_cart_earns(
        self,
        customer_id: int,
        earns: Sequence[CartEarnsRef],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        items = [f"cart_earn:{e}" for ref in earns for e in ref.earn_ids]
        return self._answer("revoke_cart_earns", items, customer_id=customer_id, earns=list(earns))

    async def revoke_coupons_by_codes(
        self,
        codes: Sequence[str],
        series_id: int | None,
        attribution: Attribution | None = None,
        *,
        generic: bool = False,
        customer: CouponCustomer | None = None,
    ) -> list[ItemResult]:
        return self._answer(
            "revoke_coupons_by_codes",
            [f"coupon:{c}" for c in codes],
            codes=list(codes),
            series_id=series_id,
            generic=generic,
            customer=customer,
        )

    async def revoke_coupons_by_customer(
        self,
        customer: CouponCustomer,
        series_id: int | None,
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        return self._answer(
            "revoke_coupons_by_customer",
            ["coupons:customer"],
            customer=customer,
            series_id=series_id,
        )

    async def deactivate_promotion(
        self,
        promotion_id: str,
        customer_id: int,
        earn_id: str | None,
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        return self._answer(
            "deactivate_promotion",
            [f"deactivation:{promotion_id}"],
            promotion_id=promotion_id,
            customer_id=customer_id,
            earn_id=earn_id,
        )


if TYPE_CHECKING:
    # mypy proves the fake takes exactly the calls the executor makes of the real client.
    _fake_is_an_api: CapillaryApi = FakeCapillary()
    _client_is_an_api: CapillaryApi = CapillaryClient.__new__(CapillaryClient)
