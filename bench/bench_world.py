"""The benchmark's world: a sandbox seed, a policy with rules for its promotions, and events.

Built from a seeded ``random.Random``: the same seed and options give the same world (ids,
choices; the timestamps are the run's). Two shapes:

* :func:`build_mix` (``make bench``): a realistic mix over ``customers`` customers (several
  events per customer when there are fewer customers than events, published in order) and
  ``promotions`` loyalty promotions (half direct, half enrol-and-issue), with a quarter as
  many DISCOUNT cart promotions and non-generic coupon series, and one PAYMENT_VOUCHER cart
  promotion. An event earned, independently: loyalty promotions (most events; one or two),
  DISCOUNT cart earns, now and then a PAYMENT_VOUCHER earn (deactivated on return), coupons.
  Returns are FULL (about 55 %), LINE_ITEM (25 %) or AMOUNT (20 %). A partial return keeps
  what still meets its threshold and takes back what no longer does: the enrol-and-issue
  promotions and the coupon series have SPEND thresholds in the policy, and the kept value
  falls below them about half of the time; direct promotions and cart earns have none, so
  a partial return keeps them (a report, no call).
* :func:`build_storm` (``make bench-storm``): loyalty only, one promotion per event, every
  event a FULL return of its own customer, direct and enrol-and-issue mixed over a few
  promotions: the load a rate limit of 300 requests a minute has to carry.

Every benefit an event lists exists in the seed, belongs to the event's customer and is not
redeemed, so the calls do real work (revoked, not "not found").
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from chaos_world import Ids

from capillary_sandbox.state import (
    CartEarn,
    CartPromotion,
    Coupon,
    CouponSeries,
    Customer,
    Enrolment,
    LoyaltyEarn,
    LoyaltyProgram,
    LoyaltyPromotion,
    SandboxSeed,
)

PROGRAM_ID = 2714
FIRST_PROMOTION = 300_000
FIRST_SERIES = 500_000
FIRST_CUSTOMER = 800_000_000
FIRST_ISSUAL = 40_000_000
FIRST_EARN = 50_000_000
FIRST_COUPON = 6_000_000_000
ENROL_THRESHOLD = 5000
"""SPEND minimum of the enrol-and-issue promotions and the coupon series (the policy's)."""


@dataclass(frozen=True)
class Promotion:
    """A loyalty promotion of the world."""

    id: int
    identifier: str
    enrol_and_issue: bool


@dataclass
class BenchWorld:
    """The seed, the policy and the events (key, JSON value), in publishing order."""

    seed: SandboxSeed
    policy: dict[str, Any]
    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    mix: dict[str, int] = field(default_factory=dict)
    """How many events are of each kind (return types, what they earned)."""

    def seed_json(self) -> str:
        """The seed as the sandbox's ``--seed`` file."""
        return self.seed.model_dump_json()

    def policy_yaml(self) -> str:
        """The policy as the service's ``RETURN_HANDLER_POLICY_PATH`` file."""
        return yaml.safe_dump(self.policy, sort_keys=False)


class WorldBuilder:
    """The promotions, the policy, and per-customer bookkeeping shared by both shapes.

    Public for ``state_memory.py``, which plans its ledger entries under this policy.
    """

    def __init__(
        self, rng: random.Random, run_id: str, promotions: int, cart_and_series: int
    ) -> None:
        self.rng = rng
        self.run_id = run_id
        self.ids = Ids(
            rng, first_issual=FIRST_ISSUAL, first_earn=FIRST_EARN, first_coupon=FIRST_COUPON
        )
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.seed = SandboxSeed(programs=[LoyaltyProgram(id=PROGRAM_ID, name="bench")])
        self.promotions: list[Promotion] = []
        for n in range(promotions):
            # Alternating, so one promotion of each kind exists from two promotions on.
            promotion = Promotion(
                id=FIRST_PROMOTION + n,
                identifier=f"bench-promo-{n:04d}",
                enrol_and_issue=n % 2 == 1,
            )
            self.promotions.append(promotion)
            self.seed.loyalty_promotions.append(
                LoyaltyPromotion(
                    id=promotion.id,
                    promo_identifier=promotion.identifier,
                    program_id=PROGRAM_ID,
                    type="LOYALTY_EARNING" if promotion.enrol_and_issue else "DIRECT",
                )
            )
        self.cart_discount = [self.ids.next_hex() for _ in range(cart_and_series)]
        self.cart_voucher = self.ids.next_hex() if cart_and_series else None
        self.series = [FIRST_SERIES + n for n in range(cart_and_series)]
        for cart_id in self.cart_discount:
            self.seed.cart_promotions.append(CartPromotion(id=cart_id, mode="DISCOUNT"))
        if self.cart_voucher is not None:
            self.seed.cart_promotions.append(
                CartPromotion(id=self.cart_voucher, mode="PAYMENT_VOUCHER")
            )
        for series_id in self.series:
            self.seed.coupon_series.append(CouponSeries(id=series_id))
        self.enrolments: dict[tuple[int, int], int] = {}
        """(promotion, customer) -> issual id: one enrolment however many orders earned."""
        self.mix: dict[str, int] = {}

    def policy(self) -> dict[str, Any]:
        """The policy: the packaged default's choices plus a rule for every promotion."""
        return {
            "version": "bench-1",
            "return_window_days": None,
            "order_date_unknown": "proceed",
            "full_return": {"revoke_enrolment": True},
            "partial_return": {"revoke_enrolment": False, "without_threshold": "keep"},
            "redeemed": {"flag_for_clawback": True},
            "loyalty_promotions": [
                {
                    "program_id": PROGRAM_ID,
                    "promotion_id": p.id,
                    "promo_identifier": p.identifier,
                    "promotion_type": "LOYALTY_EARNING" if p.enrol_and_issue else "DIRECT",
                    **(
                        {"threshold": {"kind": "SPEND", "minimum": ENROL_THRESHOLD}}
                        if p.enrol_and_issue
                        else {}
                    ),
                }
                for p in self.promotions
            ],
            "cart_promotions": [{"promotion_id": c, "mode": "DISCOUNT"} for c in self.cart_discount]
            + (
                [{"promotion_id": self.cart_voucher, "mode": "PAYMENT_VOUCHER"}]
                if self.cart_voucher
                else []
            ),
            "coupon_series": [
                {
                    "series_id": s,
                    # The bench's series hold no generic code: codes of many returns may
                    # share a call, as a merchant who knows it declares.
                    "contains_generic_code": False,
                    "threshold": {"kind": "SPEND", "minimum": ENROL_THRESHOLD},
                }
                for s in self.series
            ],
        }

    def count(self, kind: str) -> None:
        self.mix[kind] = self.mix.get(kind, 0) + 1

    def add_customers(self, count: int) -> list[int]:
        customers = [FIRST_CUSTOMER + n for n in range(count)]
        self.seed.customers.extend(Customer(id=c, source="INSTORE") for c in customers)
        return customers

    def loyalty(self, promotion: Promotion, customer: int, earns: int) -> dict[str, Any]:
        """Earns of ``promotion`` for ``customer`` in the seed, and the event's entry."""
        issual: int | None = None
        if promotion.enrol_and_issue:
            issual = self.enrolments.get((promotion.id, customer))
            if issual is None:
                issual = self.ids.next_issual()
                self.enrolments[(promotion.id, customer)] = issual
                self.seed.enrolments.append(
                    Enrolment(issual_id=issual, promotion_id=promotion.id, customer_id=customer)
                )
        earn_ids = [self.ids.next_earn() for _ in range(earns)]
        for earn_id in earn_ids:
            self.seed.loyalty_earns.append(
                LoyaltyEarn(
                    earn_id=earn_id,
                    promotion_id=promotion.id,
                    customer_id=customer,
                    issual_id=issual if issual is not None else self.ids.next_issual(),
                )
            )
        entry: dict[str, Any] = {
            "program_id": PROGRAM_ID,
            "promotion_type": "LOYALTY_EARNING" if promotion.enrol_and_issue else "DIRECT",
            "earn_ids": earn_ids,
        }
        # Senders use either reference; the policy names both.
        if self.rng.random() < 0.5:
            entry["promotion_id"] = promotion.id
        else:
            entry["promo_identifier"] = promotion.identifier
        if issual is not None:
            entry["issual_id"] = str(issual)
        self.count("loyalty_enrol_and_issue" if promotion.enrol_and_issue else "loyalty_direct")
        return entry

    def envelope(self, n: int, customer: int, kind: str) -> dict[str, Any]:
        event_id = f"bench-{self.run_id}-{n:06d}"
        self.count(f"return_{kind}")
        return {
            "schema_version": "1",
            "event_id": event_id,
            "occurred_at": self.now.isoformat(),
            "return_type": kind,
            "source": {"channel": "POS", "store_code": "STORE-042", "till_code": "TILL-03"},
            "order": {
                "order_id": f"ORD-{event_id}",
                "transaction_id": f"TX-{event_id}",
                "ordered_at": (self.now - timedelta(days=3)).isoformat(),
                "currency": "EUR",
            },
            "customer": {"id": customer, "registration_source": "INSTORE"},
        }


def build_mix(
    events: int,
    rng: random.Random,
    run_id: str,
    *,
    customers: int | None = None,
    promotions: int = 20,
) -> BenchWorld:
    """``events`` events of the realistic mix and the seed and policy they act on."""
    customers = events if customers is None else max(1, min(customers, events))
    builder = WorldBuilder(rng, run_id, max(1, promotions), max(1, promotions // 4))
    pool = builder.add_customers(customers)
    world = BenchWorld(seed=builder.seed, policy=builder.policy())
    for n in range(events):
        # Every customer once before any twice, so "customers" customers really take part.
        customer = pool[n] if n < len(pool) else rng.choice(pool)
        event = _mixed_event(builder, n, customer)
        world.events.append((str(customer).encode(), json.dumps(event).encode()))
        world.event_ids.append(event["event_id"])
    world.seed = SandboxSeed.model_validate(builder.seed.model_dump())
    world.mix = dict(sorted(builder.mix.items()))
    return world


def _mixed_event(builder: WorldBuilder, n: int, customer: int) -> dict[str, Any]:
    rng = builder.rng
    draw = rng.random()
    kind = "FULL" if draw < 0.55 else "LINE_ITEM" if draw < 0.8 else "AMOUNT"
    event = builder.envelope(n, customer, kind)
    # Two lines; a partial return or refund takes back line 1. What the customer keeps
    # (line 2) is below the SPEND threshold about half of the time.
    kept = rng.choice([1200, 2600, 4100, 5600, 7300, 9800])
    returned = rng.choice([300, 900, 1500, 2400])
    before = kept + returned
    event["order_lines"] = [
        {"line_id": "1", "sku": "LAMP-OAK", "quantity": "1", "amount": f"{returned}.00"},
        {"line_id": "2", "sku": "RUG-WOOL", "quantity": "1", "amount": f"{kept}.00"},
    ]
    if kind == "FULL":
        event["amounts"] = {"before": f"{before}.00", "after": "0"}
        event["returned_lines"] = [
            {"line_id": "1", "quantity": "1", "amount": f"{returned}.00"},
            {"line_id": "2", "quantity": "1", "amount": f"{kept}.00"},
        ]
    elif kind == "LINE_ITEM":
        event["amounts"] = {"before": f"{before}.00", "after": f"{kept}.00"}
        event["returned_lines"] = [{"line_id": "1", "quantity": "1", "amount": f"{returned}.00"}]
    else:
        event["amounts"] = {"before": f"{before}.00", "after": f"{kept}.00"}

    loyalty: list[dict[str, Any]] = []
    carts: list[dict[str, Any]] = []
    coupons: list[dict[str, Any]] = []
    while not (loyalty or carts or coupons):
        if rng.random() < 0.8:
            chosen = rng.sample(
                builder.promotions, k=min(len(builder.promotions), 1 + (rng.random() < 0.3))
            )
            loyalty = [builder.loyalty(p, customer, rng.randint(1, 2)) for p in chosen]
        if rng.random() < 0.4:
            cart_id = rng.choice(builder.cart_discount)
            earn_ids = [builder.ids.next_hex() for _ in range(rng.randint(1, 2))]
            for earn_id in earn_ids:
                builder.seed.cart_earns.append(
                    CartEarn(id=earn_id, promotion_id=cart_id, customer_id=customer)
                )
            carts.append({"promotion_id": cart_id, "mode": "DISCOUNT", "earn_ids": earn_ids})
            builder.count("cart_discount")
        if builder.cart_voucher is not None and rng.random() < 0.05:
            voucher = builder.ids.next_hex()
            builder.seed.cart_earns.append(
                CartEarn(id=voucher, promotion_id=builder.cart_voucher, customer_id=customer)
            )
            carts.append(
                {
                    "promotion_id": builder.cart_voucher,
                    "mode": "PAYMENT_VOUCHER",
                    "earn_ids": [voucher],
                }
            )
            builder.count("cart_payment_voucher")
        if rng.random() < 0.35:
            series_id = rng.choice(builder.series)
            codes: list[str] = []
            for _ in range(rng.randint(1, 3)):
                coupon_id = builder.ids.next_coupon()
                code = f"BN{coupon_id}"
                builder.seed.coupons.append(
                    Coupon(id=coupon_id, code=code, series_id=series_id, customer_id=customer)
                )
                codes.append(code)
            coupons.append({"series_id": series_id, "codes": codes})
            builder.count("coupons")
    event["earned"] = {
        "loyalty_promotions": loyalty,
        "cart_promotions": carts,
        "coupons": coupons,
    }
    return event


def build_storm(events: int, rng: random.Random, run_id: str, *, promotions: int = 4) -> BenchWorld:
    """``events`` loyalty-only FULL returns, one customer each, over ``promotions`` promotions."""
    builder = WorldBuilder(rng, run_id, max(2, promotions), 0)
    pool = builder.add_customers(events)
    world = BenchWorld(seed=builder.seed, policy=builder.policy())
    for n, customer in enumerate(pool):
        event = builder.envelope(n, customer, "FULL")
        event["amounts"] = {"before": "5400.00", "after": "0"}
        event["order_lines"] = [
            {"line_id": "1", "sku": "JACKET", "quantity": "1", "amount": "5400.00"}
        ]
        event["returned_lines"] = [{"line_id": "1", "quantity": "1", "amount": "5400.00"}]
        promotion = rng.choice(builder.promotions)
        event["earned"] = {"loyalty_promotions": [builder.loyalty(promotion, customer, 1)]}
        world.events.append((str(customer).encode(), json.dumps(event).encode()))
        world.event_ids.append(event["event_id"])
    world.seed = SandboxSeed.model_validate(builder.seed.model_dump())
    world.mix = dict(sorted(builder.mix.items()))
    return world
