"""Capillary's limits, met by splitting and queueing, never by failing.

* Loyalty bulk: at most 100 customers a call, and one customer never twice in a call
  (a repeat goes to another call, so positional matching stays unambiguous).
* Cart revoke: at most 1000 earn IDs a call.
* Coupon revoke by codes: at most 50 codes a call, and only with a series ID; without
  one, each code goes alone (the page requires a series ID for more than one code).
* Coupon revoke by customer: Capillary revokes at most 100 unredeemed coupons and fails
  beyond that with no documented code, and it takes every unredeemed coupon of the
  customer, not just the order's. The client offers it only because a caller may ask
  for it explicitly; revoking by codes is the normal path.
* Rate: one ``AsyncLimiter`` per endpoint (requests per minute), so calls over the
  limit wait their turn instead of collecting 429s.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from aiolimiter import AsyncLimiter

from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryRateLimits
from service.capillary.models import MAX_CART_EARN_IDS, MAX_COUPON_CODES, MAX_LOYALTY_CUSTOMERS

T = TypeVar("T")

__all__ = [
    "MAX_CART_EARN_IDS",
    "MAX_COUPON_CODES",
    "MAX_LOYALTY_CUSTOMERS",
    "RateLimiters",
    "chunks",
    "chunks_without_repeats",
    "coupon_code_batches",
]


class RateLimiters:
    """One limiter per endpoint, sized from settings in requests per minute."""

    def __init__(self, limits: CapillaryRateLimits) -> None:
        self._limiters = {
            endpoint: AsyncLimiter(getattr(limits, endpoint.value), time_period=60)
            for endpoint in Endpoint
        }

    def for_endpoint(self, endpoint: Endpoint) -> AsyncLimiter:
        """The limiter that calls to ``endpoint`` share."""
        return self._limiters[endpoint]


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """Consecutive slices of at most ``size`` items."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]


def chunks_without_repeats(
    items: Sequence[T], size: int, key: Callable[[T], Hashable]
) -> list[list[tuple[int, T]]]:
    """Split into calls of at most ``size`` with no key twice in one call.

    Each element keeps its index in ``items``, so answers matched by position inside a
    call can be mapped back. Order is kept within each call.
    """
    batches: list[list[tuple[int, T]]] = []
    keys: list[set[Hashable]] = []
    for index, item in enumerate(items):
        k = key(item)
        for batch, seen in zip(batches, keys, strict=True):
            if len(batch) < size and k not in seen:
                batch.append((index, item))
                seen.add(k)
                break
        else:
            batches.append([(index, item)])
            keys.append({k})
    return batches


def coupon_code_batches(codes: Sequence[str], series_id: int | None) -> list[list[str]]:
    """Codes per call: 50 with a series ID, one at a time without. Repeats dropped."""
    unique = list(dict.fromkeys(codes))
    return chunks(unique, MAX_COUPON_CODES if series_id is not None else 1)
