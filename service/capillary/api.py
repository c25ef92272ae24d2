"""The calls the executor makes of Capillary, whoever answers them.

``CapillaryClient`` makes them one by one; ``Coalescer`` merges concurrent callers' items
into bulk calls of the same client; the tests' ``FakeCapillary`` answers them in memory.
Each answers one ``ItemResult`` per thing asked and never raises for what Capillary
refuses. What each call does is documented on the family method that makes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from service.capillary.models import CustomerT
from service.capillary.requests import (
    CartRevoke,
    CouponCodesRevoke,
    CustomerCouponsRevoke,
    Deactivation,
    LoyaltyBulk,
)
from service.capillary.results import ItemResult


class CapillaryApi(Protocol):
    """The calls the executor makes; ``CapillaryClient`` is the real one."""

    async def loyalty(
        self, bulk: LoyaltyBulk[CustomerT], customers: Sequence[CustomerT]
    ) -> list[ItemResult]:
        """A loyalty bulk action (``LoyaltyCalls.bulk``)."""

    async def revoke_cart_earns(self, request: CartRevoke) -> list[ItemResult]:
        """Cart revokeEarn (``CartCalls.revoke_earns``)."""

    async def revoke_coupons_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
        """Coupon revoke by codes (``CouponCalls.revoke_by_codes``)."""

    async def revoke_coupons_by_customer(self, request: CustomerCouponsRevoke) -> list[ItemResult]:
        """Coupon revoke by customer (``CouponCalls.revoke_by_customer``)."""

    async def deactivate_promotion(self, request: Deactivation) -> list[ItemResult]:
        """Deactivate (``DeactivateCalls.deactivate``)."""


__all__ = ["CapillaryApi"]
