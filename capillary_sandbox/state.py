"""The sandbox's world: a pydantic seed model of everything Capillary would know, and the
mutable, indexed state the endpoints work on.

The seed is the whole state: ``GET /__admin/state`` answers it, ``POST /__admin/seed``
replaces it, and ``examples/sandbox-seed.json`` is :func:`demo_seed` written out. Field names
are snake_case (this is our file format, not Capillary's wire format).

All mutation happens in plain synchronous methods called from the event loop, so no request
can observe another one half-done and no lock is needed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from capillary_sandbox.ledger import Ledger

HEX24 = r"^[0-9a-f]{24}$"

PromotionType = Literal["LOYALTY_EARNING", "ISSUE_AND_EARN", "LOYALTY", "DIRECT_EARN", "DIRECT"]
ENROL_AND_ISSUE_TYPES: frozenset[str] = frozenset({"LOYALTY_EARNING", "ISSUE_AND_EARN"})

CartMode = Literal["DISCOUNT", "PAYMENT_VOUCHER", "POS", "CODE", "FREE_PRODUCT", "POINTS"]
UNREVOCABLE_CART_MODES: frozenset[str] = frozenset({"POS", "CODE"})

# The loyalty pages' list of registration sources; requests may also send ALL.
REGISTRATION_SOURCES: frozenset[str] = frozenset(
    {
        "FACEBOOK",
        "WEB_ENGAGE",
        "INSTORE",
        "MARTJACK",
        "TMALL",
        "TAOBAO",
        "JD",
        "ECOMMERCE",
        "WEBSITE",
        "LINE",
    }
)
REQUEST_SOURCES: frozenset[str] = REGISTRATION_SOURCES | {"ALL"}

# The form the pages show ("919986000586"): country code and number, digits only, no '+',
# no spaces, no leading zero (a country code never starts with 0), at most 15 digits (E.164).
MOBILE = r"^[1-9][0-9]{6,14}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Customer(_Model):
    """A customer; ``source`` is the registration source loyalty calls must name.

    ``mobile`` is stored only in the pages' form (digits with country code), so a lookup by
    any other form of the same number finds no one. ``source`` is one of the pages' sources
    (any case; ALL is a request wildcard, not a registration source).
    """

    id: int
    mobile: str | None = Field(None, pattern=MOBILE)
    email: str | None = None
    external_id: str | None = None
    source: str = "INSTORE"
    open_cart: bool = False

    @field_validator("source")
    @classmethod
    def _documented_source(cls, value: str) -> str:
        if value.upper() not in REGISTRATION_SOURCES:
            raise ValueError(f"source must be one of {sorted(REGISTRATION_SOURCES)}")
        return value


class LoyaltyProgram(_Model):
    """A loyalty program (``programId``)."""

    id: int
    name: str = ""


class LoyaltyPromotion(_Model):
    """A loyalty promotion, reachable by ``promotionId`` or ``promoIdentifier``."""

    id: int
    promo_identifier: str
    program_id: int
    type: PromotionType
    active: bool = True
    name: str = ""

    @property
    def enrol_and_issue(self) -> bool:
        """True for promotions that need ENROL before EARN."""
        return self.type in ENROL_AND_ISSUE_TYPES


class Enrolment(_Model):
    """A customer's enrolment (issual) in an enrol-and-issue promotion."""

    issual_id: int
    promotion_id: int
    customer_id: int
    active: bool = True


class LoyaltyEarn(_Model):
    """One issued (earned) loyalty promotion; ``issual_id`` is the dummy one for direct ones."""

    earn_id: int
    promotion_id: int
    customer_id: int
    issual_id: int | None = None
    revoked: bool = False


class CartPromotion(_Model):
    """A cart promotion (24-hex id) with its mode."""

    id: str = Field(pattern=HEX24)
    mode: CartMode
    active: bool = True
    name: str = ""


class CartEarn(_Model):
    """One earned cart promotion instance."""

    id: str = Field(pattern=HEX24)
    promotion_id: str = Field(pattern=HEX24)
    customer_id: int
    redeemed: bool = False
    revoked: bool = False


class Deactivation(_Model):
    """A customer's whole participation in a cart promotion was ended."""

    promotion_id: str
    customer_id: int


class CouponSeries(_Model):
    """A coupon series; ``generic`` means it contains a generic coupon code."""

    id: int
    generic: bool = False
    expired: bool = False
    name: str = ""


class Coupon(_Model):
    """One coupon issued to one customer; codes are matched case-insensitively, stored as created.

    A code belongs to one series. In a series without a generic code a code is one coupon;
    a generic code (of a ``generic`` series) may be issued to several customers, one coupon
    (with its own ``id``) per customer, so "that customer's coupon of that code" is one coupon.
    """

    id: int
    code: str
    series_id: int
    customer_id: int | None = None
    redeemed: bool = False
    revoked: bool = False


class SandboxSeed(_Model):
    """The sandbox's whole state, as loaded from a seed file and served by the admin API."""

    customers: list[Customer] = Field(default_factory=list)
    programs: list[LoyaltyProgram] = Field(default_factory=list)
    loyalty_promotions: list[LoyaltyPromotion] = Field(default_factory=list)
    enrolments: list[Enrolment] = Field(default_factory=list)
    loyalty_earns: list[LoyaltyEarn] = Field(default_factory=list)
    cart_promotions: list[CartPromotion] = Field(default_factory=list)
    cart_earns: list[CartEarn] = Field(default_factory=list)
    deactivations: list[Deactivation] = Field(default_factory=list)
    coupon_series: list[CouponSeries] = Field(default_factory=list)
    coupons: list[Coupon] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        # A seed with dangling references would make the sandbox answer nonsense later;
        # refusing it at load time names the broken entry instead.
        def unique(name: str, keys: list[object]) -> set[object]:
            seen: set[object] = set()
            for key in keys:
                if key in seen:
                    raise ValueError(f"duplicate {name}: {key!r}")
                seen.add(key)
            return seen

        customers = unique("customer id", [c.id for c in self.customers])
        programs = unique("program id", [p.id for p in self.programs])
        promotions = unique("loyalty promotion id", [p.id for p in self.loyalty_promotions])
        unique("promo_identifier", [p.promo_identifier for p in self.loyalty_promotions])
        unique("issual id", [e.issual_id for e in self.enrolments])
        unique("loyalty earn id", [e.earn_id for e in self.loyalty_earns])
        carts = unique("cart promotion id", [p.id for p in self.cart_promotions])
        unique("cart earn id", [e.id for e in self.cart_earns])
        series = unique("coupon series id", [s.id for s in self.coupon_series])
        unique("coupon id", [c.id for c in self.coupons])
        generic_series = {s.id for s in self.coupon_series if s.generic}
        holders: dict[str, list[Coupon]] = defaultdict(list)
        for coupon in self.coupons:
            holders[coupon.code.upper()].append(coupon)
        for code, group in holders.items():
            if len(group) == 1:
                continue
            if len({c.series_id for c in group}) > 1 or group[0].series_id not in generic_series:
                raise ValueError(
                    f"duplicate coupon code: {code!r} (only a generic series' code may be "
                    "issued to several customers)"
                )
            issued_to = [c.customer_id for c in group]
            if None in issued_to or len(set(issued_to)) != len(issued_to):
                raise ValueError(
                    f"duplicate coupon code: {code!r} (a generic code is issued at most once "
                    "to each customer, and each copy to a customer)"
                )

        def check(what: str, key: object, known: set[object]) -> None:
            if key not in known:
                raise ValueError(f"{what} refers to unknown {key!r}")

        for promo in self.loyalty_promotions:
            check(f"loyalty promotion {promo.id}", promo.program_id, programs)
        owners = [(e.promotion_id, e.customer_id) for e in self.enrolments]
        owners += [(e.promotion_id, e.customer_id) for e in self.loyalty_earns]
        for promotion_id, customer_id in owners:
            check("loyalty entry", promotion_id, promotions)
            check("loyalty entry", customer_id, customers)
        for earn in self.cart_earns:
            check(f"cart earn {earn.id}", earn.promotion_id, carts)
            check(f"cart earn {earn.id}", earn.customer_id, customers)
        for gone in self.deactivations:
            check("deactivation", gone.promotion_id, carts)
            check("deactivation", gone.customer_id, customers)
        for coupon in self.coupons:
            check(f"coupon {coupon.code}", coupon.series_id, series)
            if coupon.customer_id is not None:
                check(f"coupon {coupon.code}", coupon.customer_id, customers)
        return self


def load_seed_file(path: Path) -> SandboxSeed:
    """Read and validate a seed JSON file."""
    return SandboxSeed.model_validate(json.loads(path.read_text(encoding="utf-8")))


def _copy(seed: SandboxSeed) -> SandboxSeed:
    # A JSON round trip runs in pydantic-core and is many times faster than copy.deepcopy on
    # seeds with hundreds of thousands of entries (the benchmark's).
    return SandboxSeed.model_validate_json(seed.model_dump_json())


class SandboxState:
    """The live state: the seed's entities plus the indexes the endpoints look things up by.

    ``data`` is the live model; mutate it only through the endpoint logic (or replace it with
    :meth:`load`), because the indexes point at the same objects. Revoking, enrolling and
    issuing go through the methods below, which also count the change in ``ledger``.
    """

    def __init__(self, seed: SandboxSeed) -> None:
        self.load(seed)

    def load(self, seed: SandboxSeed) -> None:
        """Replace the whole state with a copy of ``seed``; the ledger starts empty."""
        self.data = _copy(seed)
        self.ledger = Ledger()
        self._index()

    def snapshot(self) -> SandboxSeed:
        """A deep copy of the current state, safe to keep or serialise."""
        return _copy(self.data)

    def _index(self) -> None:
        data = self.data
        self.customers_by_id = {c.id: c for c in data.customers}
        self.customers_by_mobile = {c.mobile: c for c in data.customers if c.mobile}
        self.customers_by_email = {c.email.lower(): c for c in data.customers if c.email}
        self.customers_by_external_id = {c.external_id: c for c in data.customers if c.external_id}
        self.programs = {p.id: p for p in data.programs}
        self.promotions_by_id = {p.id: p for p in data.loyalty_promotions}
        self.promotions_by_identifier = {p.promo_identifier: p for p in data.loyalty_promotions}
        # At most one active enrolment per (promotion, customer); older inactive ones stay in data.
        self.enrolments: dict[tuple[int, int], Enrolment] = {
            (e.promotion_id, e.customer_id): e for e in data.enrolments if e.active
        }
        self.loyalty_earns = {e.earn_id: e for e in data.loyalty_earns}
        self.loyalty_earns_by_owner: dict[tuple[int, int], list[LoyaltyEarn]] = defaultdict(list)
        for earn in data.loyalty_earns:
            self.loyalty_earns_by_owner[(earn.promotion_id, earn.customer_id)].append(earn)
        self.cart_promotions = {p.id: p for p in data.cart_promotions}
        self.cart_earns = {e.id: e for e in data.cart_earns}
        self.cart_earns_by_owner: dict[tuple[str, int], list[CartEarn]] = defaultdict(list)
        for cart_earn in data.cart_earns:
            key = (cart_earn.promotion_id, cart_earn.customer_id)
            self.cart_earns_by_owner[key].append(cart_earn)
        self.deactivated = {(d.promotion_id, d.customer_id) for d in data.deactivations}
        self.coupon_series = {s.id: s for s in data.coupon_series}
        by_code: dict[str, list[Coupon]] = defaultdict(list)
        self.coupons_by_customer: dict[int, list[Coupon]] = defaultdict(list)
        self.coupons_by_series: dict[int, list[Coupon]] = defaultdict(list)
        for coupon in data.coupons:
            by_code[coupon.code.upper()].append(coupon)
            if coupon.customer_id is not None:
                self.coupons_by_customer[coupon.customer_id].append(coupon)
            self.coupons_by_series[coupon.series_id].append(coupon)
        # Upper-cased code -> its coupons: one, or one per holder of a generic code.
        self.coupons_by_code: dict[str, list[Coupon]] = dict(by_code)
        self._next_issual = max((e.issual_id for e in data.enrolments), default=800) + 1
        self._next_earn = max((e.earn_id for e in data.loyalty_earns), default=900) + 1

    def new_issual_id(self) -> int:
        """A fresh issual id (also used for the dummy issual of direct EARNs)."""
        value = self._next_issual
        self._next_issual += 1
        return value

    def add_enrolment(self, promotion_id: int, customer_id: int) -> Enrolment:
        """Enrol a customer (the caller checked there is no active enrolment)."""
        enrolment = Enrolment(
            issual_id=self.new_issual_id(), promotion_id=promotion_id, customer_id=customer_id
        )
        self.data.enrolments.append(enrolment)
        self.enrolments[(promotion_id, customer_id)] = enrolment
        self.ledger.enrolments[(promotion_id, customer_id)] += 1
        return enrolment

    def end_enrolment(self, enrolment: Enrolment) -> None:
        """Mark an enrolment revoked; it stays in the data as history."""
        if enrolment.active:
            self.ledger.revoked[f"loyalty_enrolment:{enrolment.issual_id}"] += 1
        enrolment.active = False
        self.enrolments.pop((enrolment.promotion_id, enrolment.customer_id), None)

    def revoke_loyalty_earn(self, earn: LoyaltyEarn) -> None:
        """Mark a loyalty earn revoked."""
        if not earn.revoked:
            earn.revoked = True
            self.ledger.revoked[f"loyalty_earn:{earn.earn_id}"] += 1

    def revoke_cart_earn(self, earn: CartEarn) -> None:
        """Mark a cart earn revoked."""
        if not earn.revoked:
            earn.revoked = True
            self.ledger.revoked[f"cart_earn:{earn.id}"] += 1

    def revoke_coupon(self, coupon: Coupon) -> None:
        """Mark a coupon revoked."""
        if not coupon.revoked:
            coupon.revoked = True
            self.ledger.revoked[f"coupon:{coupon.id}"] += 1

    def add_loyalty_earn(self, promotion_id: int, customer_id: int, issual_id: int) -> LoyaltyEarn:
        """Issue one loyalty promotion earn."""
        earn = LoyaltyEarn(
            earn_id=self._next_earn,
            promotion_id=promotion_id,
            customer_id=customer_id,
            issual_id=issual_id,
        )
        self._next_earn += 1
        self.data.loyalty_earns.append(earn)
        self.loyalty_earns[earn.earn_id] = earn
        self.loyalty_earns_by_owner[(promotion_id, customer_id)].append(earn)
        self.ledger.earns_issued[(promotion_id, customer_id)] += 1
        return earn

    def add_deactivation(self, promotion_id: str, customer_id: int) -> None:
        """Record that a customer's participation in a cart promotion ended."""
        if (promotion_id, customer_id) not in self.deactivated:
            self.ledger.revoked[f"cart_participation:{promotion_id}/{customer_id}"] += 1
            self.deactivated.add((promotion_id, customer_id))
            self.data.deactivations.append(
                Deactivation(promotion_id=promotion_id, customer_id=customer_id)
            )


def demo_seed() -> SandboxSeed:
    """The demo brand that ``examples/sandbox-seed.json`` holds and the sandbox starts with."""
    return SandboxSeed(
        customers=[
            Customer(
                id=555567088,
                mobile="11223569865",
                email="tom.sawyer@example.com",
                external_id="000003873472",
                source="INSTORE",
            ),
            Customer(
                id=555567089,
                mobile="919986000586",
                email="huck.finn@example.com",
                external_id="000003873473",
                source="INSTORE",
            ),
            Customer(
                id=555567090,
                mobile="11223569866",
                email="becky.thatcher@example.com",
                external_id="000003873474",
                source="WEB_ENGAGE",
            ),
            Customer(
                id=555567091,
                mobile="11223569867",
                email="joe.harper@example.com",
                external_id="000003873475",
                source="INSTORE",
                open_cart=True,
            ),
            Customer(
                id=566881933,
                mobile="11223569868",
                email="polly.sawyer@example.com",
                external_id="000003873476",
                source="ECOMMERCE",
            ),
        ],
        programs=[LoyaltyProgram(id=2714, name="Demo Rewards")],
        loyalty_promotions=[
            LoyaltyPromotion(
                id=202779,
                promo_identifier="95c77d88-470c-4dd3-bde4-606ae1b64277",
                program_id=2714,
                type="LOYALTY_EARNING",
                name="Review after a 5000 purchase",
            ),
            LoyaltyPromotion(
                id=202188,
                promo_identifier="4f0c2a1e-8a55-4b8e-9d1e-2b7d2f6c0a11",
                program_id=2714,
                type="ISSUE_AND_EARN",
                name="Refer a friend",
            ),
            LoyaltyPromotion(
                id=202090,
                promo_identifier="1d9e540d-ae2c-443f-9d0d-7ac146bf93f2",
                program_id=2714,
                type="DIRECT",
                name="10% after five purchases",
            ),
            LoyaltyPromotion(
                id=202091,
                promo_identifier="7b2e4c9a-3d6f-4e1b-8c5a-9f0d1e2a3b4c",
                program_id=2714,
                type="DIRECT_EARN",
                name="Summer 2025 (ended)",
                active=False,
            ),
        ],
        enrolments=[
            Enrolment(issual_id=847, promotion_id=202779, customer_id=555567088),
            Enrolment(issual_id=848, promotion_id=202779, customer_id=555567089),
        ],
        loyalty_earns=[
            LoyaltyEarn(earn_id=974, promotion_id=202779, customer_id=555567088, issual_id=847),
            LoyaltyEarn(earn_id=975, promotion_id=202779, customer_id=555567088, issual_id=847),
            LoyaltyEarn(earn_id=957, promotion_id=202090, customer_id=555567088, issual_id=837),
            LoyaltyEarn(earn_id=959, promotion_id=202090, customer_id=555567090, issual_id=838),
        ],
        cart_promotions=[
            CartPromotion(id="69117663b1cfc114606fd7fb", mode="DISCOUNT", name="10% off shoes"),
            CartPromotion(id="69058646b1cfc114606f7bbe", mode="PAYMENT_VOUCHER", name="50 voucher"),
            CartPromotion(id="68f9f2904a314550c4b46dc0", mode="POS", name="Till offer"),
            CartPromotion(id="6905a1c2b1cfc114606f0c0d", mode="CODE", name="Code offer"),
            CartPromotion(
                id="68e0c0ffeeb1cfc114606f00", mode="DISCOUNT", name="Old offer", active=False
            ),
        ],
        cart_earns=[
            CartEarn(
                id="6911eaf1f57b486147effac0",
                promotion_id="69117663b1cfc114606fd7fb",
                customer_id=566881933,
            ),
            CartEarn(
                id="6911eaf1f57b486147effac1",
                promotion_id="69117663b1cfc114606fd7fb",
                customer_id=566881933,
                redeemed=True,
            ),
            CartEarn(
                id="6911eaf1f57b486147effac2",
                promotion_id="69117663b1cfc114606fd7fb",
                customer_id=555567088,
            ),
            CartEarn(
                id="68f869d94a314550c4b46047",
                promotion_id="69058646b1cfc114606f7bbe",
                customer_id=566881933,
            ),
            CartEarn(
                id="68f869d94a314550c4b46048",
                promotion_id="69058646b1cfc114606f7bbe",
                customer_id=555567088,
            ),
            CartEarn(
                id="68f869d94a314550c4b46049",
                promotion_id="69058646b1cfc114606f7bbe",
                customer_id=555567090,
            ),
            CartEarn(
                id="68f9f2904a314550c4b46dc1",
                promotion_id="68f9f2904a314550c4b46dc0",
                customer_id=566881933,
            ),
            CartEarn(
                id="6905a1c2b1cfc114606f0c0e",
                promotion_id="6905a1c2b1cfc114606f0c0d",
                customer_id=566881933,
            ),
            CartEarn(
                id="6911eaf1f57b486147effac3",
                promotion_id="69117663b1cfc114606fd7fb",
                customer_id=555567091,
            ),
        ],
        coupon_series=[
            CouponSeries(id=415446, name="Welcome back"),
            CouponSeries(id=415500, generic=True, name="SALE20 (contains a generic code)"),
            CouponSeries(id=415600, expired=True, name="Spring 2025 (expired)"),
        ],
        coupons=[
            Coupon(id=1239817475, code="3138309782", series_id=415446, customer_id=555567088),
            Coupon(id=1239817476, code="3636820421", series_id=415446, customer_id=555567088),
            Coupon(
                id=1239575840,
                code="5500675094",
                series_id=415446,
                customer_id=555567088,
                redeemed=True,
            ),
            Coupon(id=1239575841, code="1017790881", series_id=415446, customer_id=555567089),
            Coupon(id=1247326281, code="SALE20", series_id=415500, customer_id=555567088),
            Coupon(id=1247326282, code="sale-hf-0001", series_id=415500, customer_id=555567089),
            Coupon(id=1247326283, code="sale-bt-0002", series_id=415500, customer_id=555567090),
            Coupon(id=1236000001, code="SPRING25A", series_id=415600, customer_id=555567088),
        ],
    )
