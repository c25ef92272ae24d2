"""The requests of the executor's Capillary calls (``CapillaryApi``), one object a call.

Every layer (the protocol, the coalescer, the client's families, the tests' fake) takes the
same object, so a call's parameters are written once, here. Frozen and slotted: cheap to
build on the call path, and a caller's request cannot change while a coalesced batch holds
its items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Generic

from service.capillary.models import (
    Attribution,
    CartEarnsRef,
    CouponCustomer,
    CustomerT,
    IdentifierName,
    LoyaltyAction,
    LoyaltyPromotionRef,
)


@dataclass(frozen=True, slots=True)
class LoyaltyBulk(Generic[CustomerT]):
    """What every customer of one loyalty bulk request shares; equal ones may share a
    request (the coalescer's merge key: the request without its customers)."""

    action: LoyaltyAction[CustomerT]
    promotion: LoyaltyPromotionRef
    identifier_name: IdentifierName
    attribution: Attribution | None = None


@dataclass(frozen=True, slots=True)
class CartRevoke:
    """Cart revokeEarn: earns of cart promotions of one customer."""

    customer_id: int
    earns: Sequence[CartEarnsRef]
    attribution: Attribution | None = None


@dataclass(frozen=True, slots=True)
class CouponCodesRevoke:
    """Coupon revoke by codes, of one series (``series_id``) where it is known.

    ``generic``: the series holds a generic code (each code goes alone, with ``customer``);
    ``no_generic_code``: the policy declares it free of them (codes go 50 a call);
    ``customer``: whose codes, sent with every call when given.
    """

    codes: Sequence[str]
    series_id: int | None
    attribution: Attribution | None = None
    _: KW_ONLY
    generic: bool = False
    no_generic_code: bool = False
    customer: CouponCustomer | None = None


@dataclass(frozen=True, slots=True)
class CustomerCouponsRevoke:
    """Coupon revoke by customer: all their unredeemed coupons (of one series if given)."""

    customer: CouponCustomer
    series_id: int | None
    attribution: Attribution | None = None


@dataclass(frozen=True, slots=True)
class Deactivation:
    """Deactivate one customer's participation in a cart promotion, or one earn of it
    (``earn_id``, PAYMENT_VOUCHER promotions)."""

    promotion_id: str
    customer_id: int
    earn_id: str | None
    attribution: Attribution | None = None


__all__ = [
    "CartRevoke",
    "CouponCodesRevoke",
    "CustomerCouponsRevoke",
    "Deactivation",
    "LoyaltyBulk",
]
