"""The chaos run's world: a sandbox seed, the records that act on it, and what they are due.

Every return has its own customer (its cancellations share it: same Kafka key), so no two
returns touch the same benefit and the sandbox's final state and ledger say exactly what each
did. Promotions, cart promotions and the coupon series are the demo brand's
(``examples/policy.yaml`` has rules for them); customers, earns, enrolments and coupons are
generated.

* Take-backs (most events): FULL returns, or AMOUNT refunds that keep nothing, of orders that
  earned some of: earns of the enrol-and-issue promotion 202779 (with its enrolment), an earn
  of the direct promotion 202090, DISCOUNT cart earns, a PAYMENT_VOUCHER cart earn, coupons of
  series 415446. A few cart earns and coupons are redeemed in the seed: the customer used
  them, so they are not due. Everything else the event lists is due to be revoked once: the
  earns, the enrolment (a full return revokes it), the cart earns, the coupons.
* Cancellations of this run's returns (``cancel_share`` of the take-backs that earned
  loyalty): a CANCELLED event of the same customer, later in the stream than its return, so
  a kill can land between the two or while the return is mid-way. The service gives back
  what its ledger says the return took: the enrolment of 202779 (ENROL) and one EARN per
  revoked loyalty earn; cart earns and coupons cannot be given back. ``due_earns`` holds the
  earns due per (promotion, customer), ``due_enrolments`` the enrolments.

  - ``second_share`` of them get a second cancellation under a new event id, later again:
    it must give nothing back (``already_cancelled``).
  - ``other_partition_share`` of them are published on another partition than their key's
    murmur2 partition (``late``: once their return has an outcome; the service routes them
    to the key's partition and must still find the return there).
* Cancellations of returns made before the run (``unknown_share`` of the events), whose
  effects the seed holds (earns revoked, enrolment ended): the service never handled the
  return, so nothing is due; they must end ``return_unknown``, issuing nothing.
* Replays (``replay_share`` of the events; headers of ``service.pipeline.replays``) of
  cancellations (in the stream right behind them: maybe still in flight when replayed),
  of cancelled returns (``late``, once every cancellation of the return has an outcome: they
  must be held back, ``cancelled_since``), of plain returns (``late``), and a few of second,
  unknown-return and other-partition cancellations. None may do anything twice.

``stream`` is published in order from the start, keyed by customer (a return precedes its
cancellations in its key's partition); ``late`` records wait for a point of the progress and
for the outcomes they name in ``after``.

Built from a seeded ``random.Random``: the same seed and options give the same world (ids,
choices; the timestamps are the run's).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from capillary_sandbox.state import (
    CartEarn,
    Coupon,
    Customer,
    Enrolment,
    LoyaltyEarn,
    SandboxSeed,
    demo_seed,
)
from service.kafka.partitioner import java_partition
from service.pipeline.replays import Replay

PROGRAM_ID = 2714
ENROL_PROMOTION = 202779  # LOYALTY_EARNING: enrol and issue
DIRECT_PROMOTION = 202090  # DIRECT
DIRECT_IDENTIFIER = "1d9e540d-ae2c-443f-9d0d-7ac146bf93f2"
CART_DISCOUNT = "69117663b1cfc114606fd7fb"
CART_VOUCHER = "69058646b1cfc114606f7bbe"
COUPON_SERIES = 415446  # no generic code: a multi-code revoke takes only the codes sent

FIRST_CUSTOMER = 700_000_000
FIRST_ISSUAL = 10_000_000
FIRST_EARN = 20_000_000
FIRST_COUPON = 3_000_000_000

RETURN = "return"
CANCELLATION = "cancellation"
"""The first cancellation of a return of this run (in the stream)."""
SECOND_CANCELLATION = "second_cancellation"
OTHER_PARTITION_CANCELLATION = "other_partition_cancellation"
"""The only cancellation of a return of this run, published on another partition."""
UNKNOWN_CANCELLATION = "unknown_cancellation"
"""A cancellation of a return made before the run (never handled by the service)."""
REPLAY = "replay"

CANCELLATION_KINDS = frozenset(
    {CANCELLATION, SECOND_CANCELLATION, OTHER_PARTITION_CANCELLATION, UNKNOWN_CANCELLATION}
)
CANCELLED_RETURN = "cancelled_return"
"""``Outgoing.replayed``: a replay of a return that a cancellation has given back since."""
FAILED = "failed"
"""``Outgoing.replayed``: a replay of an event whose outcome was failed (made during a run)."""

GAP = 40
"""Most places (customers) between a return and its cancellation in the stream."""


@dataclass(frozen=True)
class Outgoing:
    """One record to publish to the returns topic."""

    event_id: str
    kind: str
    """return, cancellation, second_cancellation, other_partition_cancellation,
    unknown_cancellation or replay."""
    key: bytes
    """The customer id: every record of a customer has the same key."""
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    partition_shift: int = 0
    """Not 0: published on another partition than its key's murmur2 one; the shift picks
    which (:meth:`partition`), whatever the number of partitions."""
    replay_id: str | None = None
    replayed: str | None = None
    """Replays: what the replayed event is (a kind above, cancelled_return or failed)."""
    at_progress: int = 0
    """Late records: not before this many events have an outcome."""
    after: tuple[str, ...] = ()
    """Late records: not before each of these events has an outcome."""

    def partition(self, partitions: int) -> int | None:
        """The explicit partition to publish on; ``None``: the producer's (the key's)."""
        if not self.partition_shift or partitions < 2:
            return None
        apart = 1 + (self.partition_shift - 1) % (partitions - 1)
        return (java_partition(self.key, partitions) + apart) % partitions


@dataclass
class ChaosWorld:
    """The seed, the records (in publishing order) and what the events are due."""

    seed: SandboxSeed
    run_id: str
    stream: list[Outgoing] = field(default_factory=list)
    """Published from the start, in this order."""
    late: list[Outgoing] = field(default_factory=list)
    """Published once their ``at_progress`` and ``after`` hold."""
    event_ids: list[str] = field(default_factory=list)
    """Every event once (replays are not events of their own)."""
    kinds: dict[str, str] = field(default_factory=dict)
    """Event id -> its kind (return, cancellation...)."""
    due_revoked: set[str] = field(default_factory=set)
    """Ledger keys (``loyalty_earn:974``...) of benefits a take-back event is due to revoke."""
    redeemed: set[str] = field(default_factory=set)
    """Ledger keys of benefits events list that the seed made redeemed: never due."""
    due_earns: dict[tuple[int, int], int] = field(default_factory=dict)
    """(promotion, customer) -> earns a cancellation is due to issue."""
    due_enrolments: set[tuple[int, int]] = field(default_factory=set)
    """(promotion, customer) a cancellation is due to enrol again."""
    give_back_of: dict[int, str] = field(default_factory=dict)
    """Customer -> the cancelled return whose cancellation is due to give back to them."""
    cancellations: dict[str, list[str]] = field(default_factory=dict)
    """Cancelled return -> its cancellations, in publishing order."""
    return_of: dict[str, str] = field(default_factory=dict)
    """Cancellation of a return of this run -> that return."""
    take_back_of: dict[int, str] = field(default_factory=dict)
    """Customer -> the return that is due to take their benefits back (one each)."""
    take_backs: int = 0
    unknown_cancellations: int = 0

    def seed_json(self) -> str:
        """The seed as the sandbox's ``--seed`` file."""
        return self.seed.model_dump_json()

    def count(self, kind: str) -> int:
        """Records of ``kind`` (replays included, once each)."""
        return sum(1 for r in (*self.stream, *self.late) if r.kind == kind)

    def original(self, event_id: str) -> Outgoing:
        """The record of an event (not a replay of it)."""
        for record in (*self.stream, *self.late):
            if record.event_id == event_id and record.kind != REPLAY:
                return record
        raise KeyError(event_id)

    def earn_pairs(self) -> dict[int, tuple[int, int]]:
        """Earn id -> (promotion, customer), for every loyalty earn of the seed."""
        return {e.earn_id: (e.promotion_id, e.customer_id) for e in self.seed.loyalty_earns}


def replay_of(
    record: Outgoing, replay_id: str, sequence: int, replayed: str, **late: Any
) -> Outgoing:
    """A replay of ``record``: its key and value, with the headers of an operator's replay."""
    headers = Replay(
        replay_id=replay_id,
        reason=f"chaos: replay of a {replayed.replace('_', ' ')}",
        source=f"file:chaos-world:{record.event_id}",
        sequence=sequence,
    ).headers()
    return Outgoing(
        event_id=record.event_id,
        kind=REPLAY,
        key=record.key,
        value=record.value,
        headers=tuple(headers),
        replay_id=replay_id,
        replayed=replayed,
        **late,
    )


class Ids:
    """Sequential ids from given starts, so every generated benefit is distinct."""

    def __init__(
        self,
        rng: random.Random,
        *,
        first_issual: int = FIRST_ISSUAL,
        first_earn: int = FIRST_EARN,
        first_coupon: int = FIRST_COUPON,
    ) -> None:
        self._rng = rng
        self.issual = first_issual
        self.earn = first_earn
        self.coupon = first_coupon
        self._hex: set[str] = set()

    def next_issual(self) -> int:
        self.issual += 1
        return self.issual

    def next_earn(self) -> int:
        self.earn += 1
        return self.earn

    def next_coupon(self) -> int:
        self.coupon += 1
        return self.coupon

    def next_hex(self) -> str:
        while True:
            value = f"{self._rng.getrandbits(96):024x}"
            if value not in self._hex:
                self._hex.add(value)
                return value


@dataclass
class _Placed:
    """A stream record and where it goes: records are sorted by (position, order)."""

    position: float
    order: int
    record: Outgoing


@dataclass
class _Builder:
    """The world being built, its random source and ids, and the stream records placed."""

    world: ChaosWorld
    rng: random.Random
    ids: Ids
    now: datetime
    placed: list[_Placed] = field(default_factory=list)

    def event_id(self) -> str:
        return f"chaos-{self.world.run_id}-{len(self.world.event_ids):05d}"

    def add(self, record: Outgoing, position: float | None) -> None:
        """Count the event; into the stream at ``position``, or ``late`` (``None``)."""
        if record.kind != REPLAY:
            self.world.event_ids.append(record.event_id)
            self.world.kinds[record.event_id] = record.kind
        if position is None:
            self.world.late.append(record)
        else:
            self.placed.append(_Placed(position, len(self.placed), record))


def build_world(
    count: int,
    rng: random.Random,
    run_id: str,
    *,
    partitions: int = 3,
    cancel_share: float = 0.2,
    second_share: float = 0.3,
    other_partition_share: float = 0.3,
    unknown_share: float = 0.03,
    replay_share: float = 0.04,
) -> ChaosWorld:
    """``count`` events and the seed they act on (see the module's docstring for the shares).

    ``partitions``: of the returns topic, to publish other-partition cancellations on another
    one (with a single partition there is no other: those stay in the stream).
    """
    base = demo_seed()
    seed = SandboxSeed(
        programs=base.programs,
        loyalty_promotions=base.loyalty_promotions,
        cart_promotions=base.cart_promotions,
        coupon_series=base.coupon_series,
    )
    world = ChaosWorld(seed=seed, run_id=run_id)
    build = _Builder(world, rng, Ids(rng), datetime.now(UTC).replace(microsecond=0))
    customer_id = FIRST_CUSTOMER - 1
    while len(world.event_ids) < count:
        customer_id += 1
        place = float(customer_id - FIRST_CUSTOMER)
        room = count - len(world.event_ids)
        seed.customers.append(Customer(id=customer_id, source="INSTORE"))
        if rng.random() < unknown_share:
            event = _unknown_cancellation(world, build, customer_id)
            build.add(_record(event, UNKNOWN_CANCELLATION), place)
            world.unknown_cancellations += 1
            continue
        event, loyalty = _take_back(world, build, customer_id)
        build.add(_record(event, RETURN), place)
        world.take_backs += 1
        if loyalty and room >= 2 and rng.random() < cancel_share:
            elsewhere = rng.random() < other_partition_share and partitions > 1
            _cancel(build, event, loyalty, place, room, elsewhere=elsewhere, second=second_share)
    in_stream = len(world.event_ids) - len(world.late)
    # Late records start between 5 % and 85 % of the stream's events (not of all events: the
    # late ones cannot count towards their own start).
    world.late = [
        replace(r, at_progress=int(in_stream * rng.uniform(0.05, 0.85))) for r in world.late
    ]
    _plan_replays(build, replay_share, in_stream)
    world.stream = [p.record for p in sorted(build.placed, key=lambda p: (p.position, p.order))]
    # Validates the references once, as the sandbox will.
    world.seed = SandboxSeed.model_validate(seed.model_dump())
    return world


def _record(event: dict[str, Any], kind: str, **extra: Any) -> Outgoing:
    return Outgoing(
        event_id=event["event_id"],
        kind=kind,
        key=str(event["customer"]["id"]).encode(),
        value=json.dumps(event).encode(),
        **extra,
    )


def _cancel(
    build: _Builder,
    returned: dict[str, Any],
    loyalty: list[dict[str, Any]],
    place: float,
    room: int,
    *,
    elsewhere: bool,
    second: float,
) -> None:
    """The cancellation(s) of a take-back of this run, and what they are due to give back."""
    world, rng = build.world, build.rng
    customer_id: int = returned["customer"]["id"]
    return_id: str = returned["event_id"]
    for entry in loyalty:
        promotion = ENROL_PROMOTION if "promotion_id" in entry else DIRECT_PROMOTION
        pair = (promotion, customer_id)
        world.due_earns[pair] = world.due_earns.get(pair, 0) + len(entry["earn_ids"])
        if promotion == ENROL_PROMOTION:
            # A FULL return (an AMOUNT refund to 0 counts as one) revokes the enrolment.
            world.due_enrolments.add(pair)
    world.give_back_of[customer_id] = return_id
    world.cancellations[return_id] = []

    def cancellation(kind: str, position: float | None, **extra: Any) -> None:
        event = _cancellation_of(returned, build.event_id(), build.now)
        world.cancellations[return_id].append(event["event_id"])
        world.return_of[event["event_id"]] = return_id
        build.add(_record(event, kind, **extra), position)

    if elsewhere:
        # Late: routed to the key's partition, it must come after the return's outcome (one
        # that came first would find no return: return_unknown, a loss this run would count).
        shift = rng.randint(1, 1000)
        cancellation(OTHER_PARTITION_CANCELLATION, None, partition_shift=shift, after=(return_id,))
        return
    first = place + rng.randint(1, GAP) + 0.5
    cancellation(CANCELLATION, first)
    if room >= 3 and rng.random() < second:
        cancellation(SECOND_CANCELLATION, first + rng.randint(1, GAP) + 0.25)


def _plan_replays(build: _Builder, replay_share: float, in_stream: int) -> None:
    """Replays of every kind, in turn, each of an event chosen at random (without repeats)."""
    world, rng = build.world, build.rng
    total = round(len(world.event_ids) * replay_share)
    if total == 0:
        return
    positions = {p.record.event_id: p.position for p in build.placed}
    originals = {p.record.event_id: p.record for p in build.placed}
    originals.update((r.event_id, r) for r in world.late)
    by_kind: dict[str, list[str]] = {}
    for event_id, kind in world.kinds.items():
        if kind == RETURN and event_id in world.cancellations:
            kind = CANCELLED_RETURN
        by_kind.setdefault(kind, []).append(event_id)
    for ids in by_kind.values():
        rng.shuffle(ids)
    turns = [
        CANCELLATION,
        CANCELLED_RETURN,
        RETURN,
        CANCELLATION,
        CANCELLED_RETURN,
        SECOND_CANCELLATION,
        UNKNOWN_CANCELLATION,
        OTHER_PARTITION_CANCELLATION,
    ]
    made = 0
    turn = 0
    while made < total and any(by_kind.get(kind) for kind in turns):
        kind = turns[turn % len(turns)]
        turn += 1
        if not by_kind.get(kind):
            continue
        event_id = by_kind[kind].pop()
        original = originals[event_id]
        replay_id = f"chaos-{world.run_id}-replay-{made:04d}"
        made += 1
        if kind == CANCELLED_RETURN:
            # Once every cancellation of the return has an outcome: then it must be held back.
            replay = replay_of(
                original, replay_id, made, kind, after=(event_id, *world.cancellations[event_id])
            )
        elif event_id in positions:
            # Right behind the event in its key's partition: it may still be in flight.
            position = positions[event_id] + rng.uniform(0.05, 3.0)
            build.add(replay_of(original, replay_id, made, kind), position)
            continue
        else:
            replay = replay_of(original, replay_id, made, kind, after=(event_id,))
        at = int(in_stream * rng.uniform(0.05, 0.85))
        build.add(replace(replay, at_progress=at), None)


def _envelope(
    event_id: str,
    customer_id: int,
    now: datetime,
    kind: str,
    before: str,
    after: str,
    order_of: str | None = None,
) -> dict[str, Any]:
    order = order_of or event_id
    return {
        "schema_version": "1",
        "event_id": event_id,
        "occurred_at": now.isoformat(),
        "return_type": kind,
        "source": {"channel": "POS", "store_code": "STORE-042", "till_code": "TILL-03"},
        "order": {
            "order_id": f"ORD-{order}",
            "transaction_id": f"TX-{event_id}",
            "ordered_at": (now - timedelta(days=3)).isoformat(),
            "currency": "EUR",
        },
        "customer": {"id": customer_id, "registration_source": "INSTORE"},
        "amounts": {"before": before, "after": after},
        "order_lines": [{"line_id": "1", "sku": "JACKET", "quantity": "1", "amount": "5400.00"}],
    }


def _take_back(
    world: ChaosWorld, build: _Builder, customer_id: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A return and the loyalty entries it lists (what a cancellation would give back)."""
    seed, ids, rng, now, event_id = world.seed, build.ids, build.rng, build.now, build.event_id()
    world.take_back_of[customer_id] = event_id
    loyalty: list[dict[str, Any]] = []
    carts: list[dict[str, Any]] = []
    coupons: list[dict[str, Any]] = []
    while not (loyalty or carts or coupons):
        if rng.random() < 0.7:
            issual = ids.next_issual()
            seed.enrolments.append(
                Enrolment(issual_id=issual, promotion_id=ENROL_PROMOTION, customer_id=customer_id)
            )
            earn_ids = [ids.next_earn() for _ in range(rng.randint(1, 2))]
            for earn_id in earn_ids:
                seed.loyalty_earns.append(
                    LoyaltyEarn(
                        earn_id=earn_id,
                        promotion_id=ENROL_PROMOTION,
                        customer_id=customer_id,
                        issual_id=issual,
                    )
                )
                world.due_revoked.add(f"loyalty_earn:{earn_id}")
            world.due_revoked.add(f"loyalty_enrolment:{issual}")
            loyalty.append(
                {
                    "program_id": PROGRAM_ID,
                    "promotion_id": ENROL_PROMOTION,
                    "promotion_type": "LOYALTY_EARNING",
                    "earn_ids": earn_ids,
                    "issual_id": str(issual),
                }
            )
        if rng.random() < 0.6:
            earn_id = ids.next_earn()
            seed.loyalty_earns.append(
                LoyaltyEarn(
                    earn_id=earn_id,
                    promotion_id=DIRECT_PROMOTION,
                    customer_id=customer_id,
                    issual_id=ids.next_issual(),
                )
            )
            world.due_revoked.add(f"loyalty_earn:{earn_id}")
            loyalty.append(
                {
                    "program_id": PROGRAM_ID,
                    "promo_identifier": DIRECT_IDENTIFIER,
                    "promotion_type": "DIRECT",
                    "earn_ids": [earn_id],
                }
            )
        if rng.random() < 0.6:
            earn_ids_hex = [ids.next_hex() for _ in range(rng.randint(1, 2))]
            for position, cart_earn in enumerate(earn_ids_hex):
                redeemed = position == 1 and rng.random() < 0.3
                seed.cart_earns.append(
                    CartEarn(
                        id=cart_earn,
                        promotion_id=CART_DISCOUNT,
                        customer_id=customer_id,
                        redeemed=redeemed,
                    )
                )
                _owe(world, f"cart_earn:{cart_earn}", redeemed=redeemed)
            carts.append(
                {"promotion_id": CART_DISCOUNT, "mode": "DISCOUNT", "earn_ids": earn_ids_hex}
            )
        if rng.random() < 0.3:
            voucher = ids.next_hex()
            seed.cart_earns.append(
                CartEarn(id=voucher, promotion_id=CART_VOUCHER, customer_id=customer_id)
            )
            _owe(world, f"cart_earn:{voucher}", redeemed=False)
            carts.append(
                {"promotion_id": CART_VOUCHER, "mode": "PAYMENT_VOUCHER", "earn_ids": [voucher]}
            )
        if rng.random() < 0.6:
            codes: list[str] = []
            for position in range(rng.randint(1, 3)):
                coupon_id = ids.next_coupon()
                code = f"CH{coupon_id}"
                redeemed = position == 2 and rng.random() < 0.5
                seed.coupons.append(
                    Coupon(
                        id=coupon_id,
                        code=code,
                        series_id=COUPON_SERIES,
                        customer_id=customer_id,
                        redeemed=redeemed,
                    )
                )
                _owe(world, f"coupon:{coupon_id}", redeemed=redeemed)
                codes.append(code)
            coupons.append({"series_id": COUPON_SERIES, "codes": codes})

    # A full return, or a refund after which the customer keeps nothing (taken as full).
    if rng.random() < 0.8:
        event = _envelope(event_id, customer_id, now, "FULL", "5400.00", "0")
        event["returned_lines"] = [{"line_id": "1", "quantity": "1", "amount": "5400.00"}]
    else:
        event = _envelope(event_id, customer_id, now, "AMOUNT", "5400.00", "0")
    event["earned"] = {
        "loyalty_promotions": loyalty,
        "cart_promotions": carts,
        "coupons": coupons,
    }
    return event, loyalty


def _owe(world: ChaosWorld, key: str, *, redeemed: bool) -> None:
    (world.redeemed if redeemed else world.due_revoked).add(key)


def _cancellation_of(returned: dict[str, Any], event_id: str, now: datetime) -> dict[str, Any]:
    """A CANCELLED event of a return of this run; ``taken_back`` is the return's list (a hint:
    the service gives back what its ledger says the return took)."""
    customer_id: int = returned["customer"]["id"]
    return_id: str = returned["event_id"]
    event = _envelope(event_id, customer_id, now, "CANCELLED", "0", "5400.00", return_id)
    earned = returned["earned"]
    event["cancelled_return"] = {
        "return_event_id": return_id,
        "taken_back": earned,
        "enrolments_revoked": [
            {k: v for k, v in entry.items() if k != "earn_ids"}
            for entry in earned["loyalty_promotions"]
            if entry["promotion_type"] == "LOYALTY_EARNING"
        ],
    }
    return event


def _unknown_cancellation(world: ChaosWorld, build: _Builder, customer_id: int) -> dict[str, Any]:
    """A CANCELLED event of a return made before the run: its revokes are in the seed.

    The service never handled that return, so its ledger does not know what it took: nothing
    is due, however much the event claims.
    """
    seed, ids, rng, now, event_id = world.seed, build.ids, build.rng, build.now, build.event_id()
    issual = ids.next_issual()
    seed.enrolments.append(
        Enrolment(
            issual_id=issual,
            promotion_id=ENROL_PROMOTION,
            customer_id=customer_id,
            active=False,
        )
    )
    enrol_earn = ids.next_earn()
    seed.loyalty_earns.append(
        LoyaltyEarn(
            earn_id=enrol_earn,
            promotion_id=ENROL_PROMOTION,
            customer_id=customer_id,
            issual_id=issual,
            revoked=True,
        )
    )
    enrol_entry = {
        "program_id": PROGRAM_ID,
        "promotion_id": ENROL_PROMOTION,
        "promotion_type": "LOYALTY_EARNING",
        "earn_ids": [enrol_earn],
        "issual_id": str(issual),
    }
    taken: list[dict[str, Any]] = [enrol_entry]
    if rng.random() < 0.5:
        direct_earn = ids.next_earn()
        seed.loyalty_earns.append(
            LoyaltyEarn(
                earn_id=direct_earn,
                promotion_id=DIRECT_PROMOTION,
                customer_id=customer_id,
                issual_id=ids.next_issual(),
                revoked=True,
            )
        )
        taken.append(
            {
                "program_id": PROGRAM_ID,
                "promo_identifier": DIRECT_IDENTIFIER,
                "promotion_type": "DIRECT",
                "earn_ids": [direct_earn],
            }
        )
    event = _envelope(event_id, customer_id, now, "CANCELLED", "0", "5400.00")
    event["cancelled_return"] = {
        "return_event_id": f"{event_id}-prior",
        "taken_back": {"loyalty_promotions": taken},
        "enrolments_revoked": [{k: v for k, v in enrol_entry.items() if k != "earn_ids"}],
    }
    return event
