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
* Rate: one ``AsyncLimiter`` per endpoint, so calls over the limit wait their turn
  instead of collecting 429s. Capillary counts a sliding minute; a leaky bucket sized
  ``AsyncLimiter(limit, 60)`` lets ``limit`` through at once and ``limit`` more within
  the same minute, so :func:`pacing` sizes it to a burst of about one second's worth and
  a drip that keeps any window of a minute (plus a margin for network jitter) within
  the limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple, TypeVar

from aiolimiter import AsyncLimiter

from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryRateLimits
from service.capillary.models import MAX_CART_EARN_IDS, MAX_COUPON_CODES, MAX_LOYALTY_CUSTOMERS

T = TypeVar("T")

__all__ = [
    "JITTER_SECONDS",
    "MAX_CART_EARN_IDS",
    "MAX_COUPON_CODES",
    "MAX_LOYALTY_CUSTOMERS",
    "WINDOW_SECONDS",
    "Pacing",
    "RateLimiters",
    "chunks",
    "chunks_without_repeats",
    "coupon_code_batches",
    "pacing",
]

WINDOW_SECONDS = 60.0
"""The window Capillary's per-minute limits are counted over."""

JITTER_SECONDS = 1.0
"""Requests granted a window apart can arrive closer together than that: the pacing
keeps a window this much longer than a minute within the limit."""


class Pacing(NamedTuple):
    """The parameters of one endpoint's ``AsyncLimiter``."""

    burst: int
    """How many permits may go at once (the bucket's ``max_rate``)."""
    time_period: float
    """Seconds the bucket takes to drain ``burst`` permits."""

    @property
    def per_second(self) -> float:
        """The steady rate after a burst."""
        return self.burst / self.time_period

    def most_in(self, seconds: float) -> int:
        """The most permits any window of ``seconds`` can see.

        A window can open on an empty bucket (a whole burst) and then see what drains
        during it; the bucket never holds more than ``burst``, so nothing else fits.
        """
        return math.floor(self.burst + self.per_second * seconds)


def pacing(per_minute: int) -> Pacing:
    """A burst of about one second's worth, then an even drip, never over ``per_minute``.

    In a window of ``W`` seconds at most ``burst + W * rate`` permits go, rounded down.
    With ``rate = (per_minute - burst + 1) / (W + jitter)`` that is ``per_minute`` for
    every window shorter than ``W + jitter``, also for a limit of one a minute (one
    permit, then the next a minute and the margin later).
    """
    if per_minute < 1:
        raise ValueError("a rate limit must allow at least one request a minute")
    burst = max(1, per_minute // 60)
    rate = (per_minute - burst + 1) / (WINDOW_SECONDS + JITTER_SECONDS)
    return Pacing(burst=burst, time_period=burst / rate)


class RateLimiters:
    """One limiter per endpoint, sized from settings in requests per minute."""

    def __init__(self, limits: CapillaryRateLimits) -> None:
        self._limiters = {
            endpoint: AsyncLimiter(*pacing(getattr(limits, endpoint.value)))
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
