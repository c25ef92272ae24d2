"""Capillary: the client, its settings, wire models, code table and results."""

from service.capillary.api import CapillaryApi
from service.capillary.client import CapillaryClient
from service.capillary.codes import CODES, CodeInfo, Endpoint, classify
from service.capillary.config import (
    AuthMode,
    CapillaryConfig,
    CapillaryRateLimits,
    CapillaryRetrySettings,
    CapillaryTimeouts,
    CouponCodeCase,
)
from service.capillary.models import (
    Attribution,
    AttributionEntityType,
    CartEarnsRef,
    CouponCustomer,
    LoyaltyAction,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.results import ItemResult, ResultClass
from service.capillary.retry import RetryPolicy

__all__ = [
    "CODES",
    "Attribution",
    "AttributionEntityType",
    "AuthMode",
    "CapillaryApi",
    "CapillaryClient",
    "CapillaryConfig",
    "CapillaryRateLimits",
    "CapillaryRetrySettings",
    "CapillaryTimeouts",
    "CartEarnsRef",
    "CodeInfo",
    "CouponCodeCase",
    "CouponCustomer",
    "Endpoint",
    "ItemResult",
    "LoyaltyAction",
    "LoyaltyCustomer",
    "LoyaltyCustomerEarns",
    "LoyaltyPromotionRef",
    "ResultClass",
    "RetryPolicy",
    "classify",
]
