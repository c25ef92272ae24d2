"""The chaos run's world: a sandbox seed, the events that act on it, and what they are due.

Every event has its own customer, so no two events touch the same benefit and the sandbox's
final state and ledger say exactly what each event did. Promotions, cart promotions and the
coupon series are the demo brand's (``examples/policy.yaml`` has rules for them); customers,
earns, enrolments and coupons are generated.

* Take-backs (most events): FULL returns, or AMOUNT refunds that keep nothing, of orders that
  earned some of: earns of the enrol-and-issue promotion 202779 (with its enrolment), an earn
  of the direct promotion 202090, DISCOUNT cart earns, a PAYMENT_VOUCHER cart earn, coupons of
  series 415446. A few cart earns and coupons are redeemed in the seed: the customer used
  them, so they are not due. Everything else the event lists is due to be revoked once: the
  earns, the enrolment (a full return revokes it), the cart earns, the coupons.
* Give-backs (some events): CANCELLED returns of a return made before the run, whose effects
  the seed already holds (earns revoked, enrolment ended). Each gives back one earn per
  promotion (and the enrolment of 202779): one EARN per (promotion, customer) is due, no more.

Built from a seeded ``random.Random``: the same ``--seed`` gives the same world (ids and
choices; the timestamps are the run's).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
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


@dataclass
class ChaosWorld:
    """The seed, the events (key, JSON value) and what the events are due."""

    seed: SandboxSeed
    events: list[tuple[bytes, bytes]]
    """(key, value) per event, in publishing order; the key is the customer id."""
    event_ids: list[str]
    due_revoked: set[str] = field(default_factory=set)
    """Ledger keys (``loyalty_earn:974``...) of benefits a take-back event is due to revoke."""
    redeemed: set[str] = field(default_factory=set)
    """Ledger keys of benefits events list that the seed made redeemed: never due."""
    due_earns: dict[tuple[int, int], int] = field(default_factory=dict)
    """(promotion, customer) -> earns a give-back event is due to issue."""
    give_back_of: dict[int, str] = field(default_factory=dict)
    """Customer -> the give-back event that is due to issue their earns."""
    take_backs: int = 0
    give_backs: int = 0

    def seed_json(self) -> str:
        """The seed as the sandbox's ``--seed`` file."""
        return self.seed.model_dump_json()


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


def build_world(
    count: int, rng: random.Random, run_id: str, *, give_back_share: float = 0.1
) -> ChaosWorld:
    """``count`` events and the seed they act on; ``give_back_share`` of them are CANCELLED."""
    base = demo_seed()
    seed = SandboxSeed(
        programs=base.programs,
        loyalty_promotions=base.loyalty_promotions,
        cart_promotions=base.cart_promotions,
        coupon_series=base.coupon_series,
    )
    world = ChaosWorld(seed=seed, events=[], event_ids=[])
    ids = Ids(rng)
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(count):
        customer_id = FIRST_CUSTOMER + n
        seed.customers.append(Customer(id=customer_id, source="INSTORE"))
        event_id = f"chaos-{run_id}-{n:05d}"
        if rng.random() < give_back_share:
            event = _give_back(world, ids, rng, customer_id, event_id, now)
            world.give_backs += 1
        else:
            event = _take_back(world, ids, rng, customer_id, event_id, now)
            world.take_backs += 1
        world.events.append((str(customer_id).encode(), json.dumps(event).encode()))
        world.event_ids.append(event_id)
    # Validates the references once, as the sandbox will.
    world.seed = SandboxSeed.model_validate(seed.model_dump())
    return world


def _envelope(
    event_id: str, customer_id: int, now: datetime, kind: str, before: str, after: str
) -> dict[str, Any]:
    return {
        "schema_version": "1",
        "event_id": event_id,
        "occurred_at": now.isoformat(),
        "return_type": kind,
        "source": {"channel": "POS", "store_code": "STORE-042", "till_code": "TILL-03"},
        "order": {
            "order_id": f"ORD-{event_id}",
            "transaction_id": f"TX-{event_id}",
            "ordered_at": (now - timedelta(days=3)).isoformat(),
            "currency": "EUR",
        },
        "customer": {"id": customer_id, "registration_source": "INSTORE"},
        "amounts": {"before": before, "after": after},
        "order_lines": [{"line_id": "1", "sku": "JACKET", "quantity": "1", "amount": "5400.00"}],
    }


def _take_back(
    world: ChaosWorld,
    ids: Ids,
    rng: random.Random,
    customer_id: int,
    event_id: str,
    now: datetime,
) -> dict[str, Any]:
    seed = world.seed
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
    return event


def _owe(world: ChaosWorld, key: str, *, redeemed: bool) -> None:
    (world.redeemed if redeemed else world.due_revoked).add(key)


def _give_back(
    world: ChaosWorld,
    ids: Ids,
    rng: random.Random,
    customer_id: int,
    event_id: str,
    now: datetime,
) -> dict[str, Any]:
    """A CANCELLED return of a return made before the run: its revokes are in the seed."""
    seed = world.seed
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
    world.due_earns[(ENROL_PROMOTION, customer_id)] = 1
    world.give_back_of[customer_id] = event_id
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
        world.due_earns[(DIRECT_PROMOTION, customer_id)] = 1
    event = _envelope(event_id, customer_id, now, "CANCELLED", "0", "5400.00")
    event["cancelled_return"] = {
        "return_event_id": f"{event_id}-prior",
        "taken_back": {"loyalty_promotions": taken},
        "enrolments_revoked": [{k: v for k, v in enrol_entry.items() if k != "earn_ids"}],
    }
    return event
