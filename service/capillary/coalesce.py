"""Coalesce: the Capillary calls of events handled at the same time, merged into bulk calls.

Capillary limits requests a minute per endpoint (300 by default), not items, while its bulk
endpoints carry 100 loyalty customers, 50 codes of a series or 1,000 cart earns of one
customer. One call per event would let calls, not work, decide how fast a storm of returns
clears. Each event's executor still calls as if it were alone (``CapillaryApi``); this step
merges what one request can carry and hands every caller exactly the results of its own
items.

A batch of one coalescing key (everything that must be equal in one request) lingers a
little from its opening, then waits for its turn (one request of a key at a time, in the
order the batches opened, so a retried call is never overtaken by a later one for the same
customer), then for the endpoint's rate permit. It takes items all that time, up to the
request's maximum, so while the limiter holds it back it grows instead of more calls
queueing. Then it closes and goes with the permit already taken.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from opentelemetry import context as otel_context
from prometheus_client import Histogram

from service.capillary.call import Sleep
from service.capillary.cart import earn_pairs
from service.capillary.client import CapillaryClient
from service.capillary.codes import Endpoint
from service.capillary.coupons import codes_share_a_call, empty_code_refusals
from service.capillary.limits import MAX_CART_EARN_IDS, MAX_COUPON_CODES, MAX_LOYALTY_CUSTOMERS
from service.capillary.loyalty import customer_key, endpoint_of, refusal
from service.capillary.models import Attribution, CustomerT
from service.capillary.requests import CartRevoke, CouponCodesRevoke, LoyaltyBulk
from service.capillary.results import ItemResult

T = TypeVar("T")  # what one item puts in a request
R = TypeVar("R")  # what one item gets back

Admit = Callable[[Endpoint], Awaitable[None]]
"""Waits for and takes one rate permit of an endpoint."""

_Answer = tuple[int, R]  # (serial of the batch that carried the item, the item's answer)


@dataclass(eq=False)
class _Entry(Generic[T, R]):
    """One item of one caller, waiting in a batch for its answer."""

    payload: T
    slot: Hashable
    """What may not appear twice in one request (a customer, a code, an earn id)."""
    owner: object
    """Entries of one owner may share a slot: the client sends those together too."""
    future: asyncio.Future[tuple[int, R]]
    context: otel_context.Context | None
    """The caller's trace context: the request is sent on behalf of every caller in it."""


@dataclass(eq=False)
class _Batch(Generic[T, R]):
    """The items of one future request."""

    serial: int
    opened_at: float
    entries: list[_Entry[T, R]] = field(default_factory=list)
    closed: bool = False

    def admits(self, entry: _Entry[T, R], capacity: int) -> bool:
        """Open, with room, and the slot free or held by the same owner."""
        return (
            not self.closed
            and len(self.entries) < capacity
            and all(e.slot != entry.slot or e.owner is entry.owner for e in self.entries)
        )

    def leave(self, entry: _Entry[T, R]) -> None:
        """A caller gone before the request closed: its item does not go."""
        if not self.closed and entry in self.entries:
            self.entries.remove(entry)


@dataclass(eq=False)
class _Lane(Generic[T, R]):
    """The batches of one coalescing key, oldest first, and how to send one."""

    endpoint: Endpoint
    capacity: int
    send: Callable[[list[T]], Awaitable[list[R]]]
    batches: deque[_Batch[T, R]] = field(default_factory=deque)


class Coalescer:
    """The executor's ``CapillaryApi``, merging concurrent callers' items into bulk calls.

    Merged (see the module docstring for when a request goes):

    * loyalty REVOKE_EARN, REVOKE_ENROL, ENROL, EARN of one action, program, promotion,
      identifier name (and attribution where it is sent): up to 100 customers a call,
      never one customer twice;
    * coupon codes of one series the policy declares free of generic codes
      (``no_generic_code``): up to 50 a call, never one code twice (case aside);
    * coupon codes of one series with one customer named: up to 50 a call, that customer's
      codes only (other customers' codes never share a call of a series that may hold a
      generic code: sent with its id, several codes would take every coupon of the series);
    * cart earns of one customer: up to 1,000 earn ids a call, never one id twice.

    Each caller gets exactly the results the client would have given for its own arguments
    alone, except ``request_ids``, ``attempts`` and ``elapsed_ms``, which describe the
    shared call. What Capillary revoked in a coupon call although no caller of that call
    asked for it (``asked=False``) goes to every caller of that call: each of them learns
    its call took more than it asked; codes another caller asked are that caller's only.

    Passed through unmerged: revoke by customer, deactivate, codes of a generic series (each
    alone with its customer), codes without a series id, and codes of a series not declared
    free of generic codes without a customer (one a call).

    ``linger_seconds``: how long a batch waits for company after it opens. ``admit``: the
    rate permit (the client's own by default); ``sleep`` times the linger, on the client's
    clock. Metrics and tracing are the client's too.
    """

    def __init__(
        self,
        client: CapillaryClient,
        *,
        linger_seconds: float,
        sleep: Sleep = asyncio.sleep,
        admit: Admit | None = None,
    ) -> None:
        if linger_seconds < 0:
            raise ValueError("linger_seconds must not be negative")
        self._client = client
        self._metrics = client.metrics
        self._tracing = client.tracing
        self._linger = linger_seconds
        self._clock = client.clock
        self._sleep = sleep
        self._admit = admit or client.admit
        self._lanes: dict[Hashable, _Lane[Any, Any]] = {}
        self._drivers: set[asyncio.Task[None]] = set()
        self._serials = itertools.count()
        self._call_sizes: dict[Endpoint, Histogram] = {}
        # One customer or one promotion a request: nothing to merge.
        self.revoke_coupons_by_customer = client.revoke_coupons_by_customer
        self.deactivate_promotion = client.deactivate_promotion

    async def aclose(self) -> None:
        """Stop sending; callers still waiting are cancelled."""
        drivers = list(self._drivers)
        for driver in drivers:
            driver.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)

    # --- loyalty ---------------------------------------------------------------------------

    async def loyalty(
        self, bulk: LoyaltyBulk[CustomerT], customers: Sequence[CustomerT]
    ) -> list[ItemResult]:
        """A loyalty bulk action, merged with other callers' of the same action, promotion,
        identifier name (and attribution where it is sent); see ``LoyaltyCalls.bulk``."""
        action, promotion = bulk.action, bulk.promotion
        # The request without its customers is the key, with only the attribution that is
        # sent (a new key only when some is dropped: most callers' bulk is the key as it is).
        sent = self._sent(bulk.attribution)
        shared = (
            bulk
            if sent is bulk.attribution
            else LoyaltyBulk(action, promotion, bulk.identifier_name, sent)
        )
        loyalty = self._client.loyalty_calls

        async def send(batch: list[CustomerT]) -> list[list[ItemResult]]:
            return await loyalty.grouped(shared, batch, admitted=True)

        parts: list[list[ItemResult] | asyncio.Future[_Answer[list[ItemResult]]]] = []
        for customer in customers:
            refused = refusal(action, promotion, customer)
            if refused is not None:
                parts.append(refused)  # never sent, so it waits for nobody
            else:
                # A fresh owner per customer: the same customer twice goes in two calls.
                parts.append(
                    self._join(
                        shared,
                        _Lane(endpoint_of(action), MAX_LOYALTY_CUSTOMERS, send),
                        customer,
                        slot=customer_key(customer),
                        owner=object(),
                    )
                )
        answers = iter(await _wait([p for p in parts if isinstance(p, asyncio.Future)]))
        return [
            result
            for part in parts
            for result in (next(answers)[1] if isinstance(part, asyncio.Future) else part)
        ]

    # --- cart ------------------------------------------------------------------------------

    async def revoke_cart_earns(self, request: CartRevoke) -> list[ItemResult]:
        """Cart revokeEarn, merged with other callers' for the same customer."""
        customer_id = request.customer_id
        sent = self._sent(request.attribution)
        cart = self._client.cart_calls

        async def send(batch: list[tuple[str, str]]) -> list[ItemResult]:
            return await cart.grouped(customer_id, batch, sent, admitted=True)

        lane = _Lane(Endpoint.CART_REVOKE, MAX_CART_EARN_IDS, send)
        # The key is the request without its earns, as a tuple led by the request's type:
        # hashing and comparing a request object would cost about a microsecond a call.
        futures = self._join_all(
            (CartRevoke, customer_id, sent),
            lane,
            earn_pairs(request.earns),
            lambda pair: pair[1].casefold(),
        )
        return [result for _, result in await _wait(futures)]

    # --- coupons ---------------------------------------------------------------------------

    async def revoke_coupons_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
        """Coupon revoke by codes: for a series declared free of generic codes, merged with
        other callers' codes of the series (and customer, when one is named); else one code
        a call.

        Results: the codes asked in order, then what the calls took unasked, then the
        refusals of empty codes.
        """
        series_id, customer = request.series_id, request.customer
        together = codes_share_a_call(
            generic=request.generic, no_generic_code=request.no_generic_code
        )
        if series_id is None or not together:
            # Generic: each code alone with its customer. No series, or one not declared free
            # of generic codes: one code a call (a customer named does not bound a bulk call).
            return await self._client.revoke_coupons_by_codes(request)
        sent = self._sent(request.attribution)
        coupons = self._client.coupon_calls
        known_series = series_id

        async def send(batch: list[str]) -> list[tuple[ItemResult, list[ItemResult]]]:
            answer = await coupons.grouped_codes(
                batch, known_series, sent, customer=customer, admitted=True
            )
            return [(result, answer.unasked) for result in answer.asked]

        # The key is the request without its codes, as a tuple led by the request's type
        # (``generic`` and ``no_generic_code`` are the same for every merged call). The
        # customer is part of it: a call naming one customer carries only theirs. Every
        # field's value, not the model (not hashable) nor its JSON (a dump per call): a
        # field added to the model is in the key without anyone having to list it here.
        whose = tuple(vars(customer).values()) if customer is not None else None
        lane = _Lane(Endpoint.COUPON_REVOKE, MAX_COUPON_CODES, send)
        codes = request.codes
        sendable = dict.fromkeys(c for c in codes if c.strip())
        key = (CouponCodesRevoke, series_id, sent, whose)
        futures = self._join_all(key, lane, sendable, str.casefold)
        answers = await _wait(futures)
        results = [result for _, (result, _) in answers]
        unasked: dict[int, list[ItemResult]] = {}
        for serial, (_, taken) in answers:
            unasked.setdefault(serial, taken)
        return (
            results + [r for taken in unasked.values() for r in taken] + empty_code_refusals(codes)
        )

    # --- batches ---------------------------------------------------------------------------

    def _sent(self, attribution: Attribution | None) -> Attribution | None:
        # Attribution that never reaches Capillary must not split batches.
        return attribution if self._client.sends_attribution else None

    def _join_all(
        self,
        key: Hashable,
        new_lane: _Lane[T, R],
        payloads: Iterable[T],
        slot: Callable[[T], Hashable],
    ) -> list[asyncio.Future[_Answer[R]]]:
        """One caller's items, joined to the batches of ``key``: several of them may share a
        slot in one request (the client would send them together too)."""
        owner = object()
        return [self._join(key, new_lane, p, slot=slot(p), owner=owner) for p in payloads]

    def _join(
        self, key: Hashable, new_lane: _Lane[T, R], payload: T, *, slot: Hashable, owner: object
    ) -> asyncio.Future[_Answer[R]]:
        """Put an item in the oldest batch of ``key`` that admits it, else in a new one.

        ``new_lane`` is the lane of ``key`` to start if none is running.
        """
        entry: _Entry[T, R] = _Entry(
            payload,
            slot,
            owner,
            asyncio.get_running_loop().create_future(),
            self._tracing.capture(),
        )
        lane: _Lane[T, R] | None = self._lanes.get(key)
        if lane is None:
            lane = new_lane
            self._lanes[key] = lane
            driver = asyncio.create_task(self._drive(key, lane))
            self._drivers.add(driver)
            driver.add_done_callback(self._drivers.discard)
        batch = next((b for b in lane.batches if b.admits(entry, lane.capacity)), None)
        if batch is None:
            batch = _Batch(next(self._serials), self._clock.monotonic())
            lane.batches.append(batch)
        batch.entries.append(entry)
        joined = batch

        def left(future: asyncio.Future[_Answer[R]]) -> None:
            if future.cancelled():
                joined.leave(entry)

        entry.future.add_done_callback(left)
        return entry.future

    async def _drive(self, key: Hashable, lane: _Lane[T, R]) -> None:
        """Send the lane's batches one after the other until none is left."""
        try:
            while lane.batches:
                batch = lane.batches[0]
                try:
                    await self._ready(lane, batch)
                except Exception as exc:  # a bug must fail these callers, not the lane
                    _fail(batch.entries, exc)
                    batch.closed = True
                    lane.batches.popleft()
                    continue
                batch.closed = True
                lane.batches.popleft()
                await self._send(lane, batch)
        finally:
            # Nothing awaits between the last look at the batches and here: no item can
            # have joined a lane that is going away.
            if self._lanes.get(key) is lane:
                del self._lanes[key]
            for left_behind in lane.batches:
                for entry in left_behind.entries:
                    entry.future.cancel()

    async def _ready(self, lane: _Lane[T, R], batch: _Batch[T, R]) -> None:
        """Wait out the linger, then take the permit; the batch takes items meanwhile."""
        wait = batch.opened_at + self._linger - self._clock.monotonic()
        if wait > 0:
            await self._sleep(wait)
        if batch.entries:  # every caller may have gone during the linger
            await self._admit(lane.endpoint)

    def _call_size(self, endpoint: Endpoint) -> Histogram:
        """The call-size histogram of ``endpoint``, found once (``labels()`` locks and
        builds a key on every call)."""
        found = self._call_sizes.get(endpoint)
        if found is None:
            found = self._call_sizes[endpoint] = self._metrics.coalesced_call_size.labels(
                endpoint.value
            )
        return found

    async def _send(self, lane: _Lane[T, R], batch: _Batch[T, R]) -> None:
        live = [e for e in batch.entries if not e.future.done()]
        if not live:
            return
        self._call_size(lane.endpoint).observe(len(live))
        try:
            with self._tracing.on_behalf_of([e.context for e in live]):
                answers = await lane.send([e.payload for e in live])
        except asyncio.CancelledError:
            for entry in live:
                entry.future.cancel()
            raise
        except Exception as exc:  # a bug must fail these callers, not the lane
            _fail(live, exc)
            return
        for entry, answer in zip(live, answers, strict=True):
            if not entry.future.done():
                entry.future.set_result((batch.serial, answer))


def _fail(entries: Sequence[_Entry[Any, Any]], exc: Exception) -> None:
    for entry in entries:
        if not entry.future.done():
            entry.future.set_exception(exc)


async def _wait(futures: Sequence[asyncio.Future[_Answer[R]]]) -> list[_Answer[R]]:
    """Every answer, in order; a cancelled caller takes its items out of open batches."""
    return list(await asyncio.gather(*futures))


__all__ = ["Admit", "Coalescer"]
