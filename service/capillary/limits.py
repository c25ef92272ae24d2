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
* Rate: one :class:`AdaptiveLimiter` per endpoint, so calls over the limit wait their
  turn instead of collecting 429s. Capillary counts a sliding minute; a leaky bucket that
  holds ``limit`` lets ``limit`` through at once and ``limit`` more within the same minute,
  so :func:`pacing` sizes it to a burst of about one second's worth and a drip that keeps
  any window of a minute (plus a margin for network jitter) within the limit.
* The configured limit is the brand's, and replicas share it: each paces at the share of
  the returns topic's partitions it owns (:meth:`RateLimiters.share`, called on every
  assignment), rounded down, so the shares never add up to more than the limit and one
  replica alone gets all of it. Partitions, not replicas, because they are what the
  group's assignment gives each replica, with no other infrastructure to agree on.
* The configured limit is a ceiling, not a promise: the brand's real one may be lower.
  A 429 halves the endpoint's pace (AIMD, as TCP does with its window) and its
  ``Retry-After`` holds every caller of the endpoint; each answered call then adds back a
  small share of the limit. aiolimiter's rate is fixed when it is built and it reads the
  event loop's clock, so the bucket is written here, on the injected clock and sleep.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import NamedTuple, TypeVar

from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryPacingSettings, CapillaryRateLimits
from service.capillary.models import MAX_CART_EARN_IDS, MAX_COUPON_CODES, MAX_LOYALTY_CUSTOMERS
from service.clock import Clock

T = TypeVar("T")

__all__ = [
    "JITTER_SECONDS",
    "MAX_CART_EARN_IDS",
    "MAX_COUPON_CODES",
    "MAX_LOYALTY_CUSTOMERS",
    "WINDOW_SECONDS",
    "AdaptiveLimiter",
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
    """The parameters of one endpoint's leaky bucket."""

    burst: int
    """How many permits may go at once (what the bucket holds)."""
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


def pacing(
    per_minute: float,
    *,
    window_seconds: float = WINDOW_SECONDS,
    jitter_seconds: float = JITTER_SECONDS,
) -> Pacing:
    """A burst of about one second's worth, then an even drip, never over ``per_minute``.

    In a window of ``W`` seconds at most ``burst + W * rate`` permits go, rounded down.
    With ``rate = (per_minute - burst + 1) / (W + jitter)`` that is ``per_minute`` for
    every window shorter than ``W + jitter``, also for a limit of one a minute (one
    permit, then the next a minute and the margin later). ``window_seconds``: the window
    the limit counts (a test playing time faster shortens it).
    """
    if per_minute < 1:
        raise ValueError("a rate limit must allow at least one request a minute")
    burst = max(1, int(per_minute * 1.0 // window_seconds))
    rate = (per_minute - burst + 1) / (window_seconds + jitter_seconds)
    return Pacing(burst=burst, time_period=burst / rate)


Sleep = Callable[[float], Awaitable[None]]

ROUNDING_SECONDS = 1e-9
"""A wait this short is none: float rounding leaves such remainders, too small to move a clock
(a sleep of one would not end the wait)."""

FLOOR_PER_MINUTE = 1.0
"""The slowest pace 429s can bring an endpoint to (the smallest limit a setting allows)."""


def _ignore(_pace: float) -> None:
    return None


class AdaptiveLimiter:
    """One endpoint's pace: a leaky bucket whose rate a 429 lowers and answers raise again.

    Callers wait their turn in order (a lock, FIFO in asyncio); the one at the front sleeps
    until the bucket has room, then looks again, so a 429 that arrives meanwhile (a lower
    pace, a pause) holds it back too.
    """

    def __init__(
        self,
        limit: int,
        settings: CapillaryPacingSettings,
        *,
        clock: Clock,
        sleep: Sleep,
        report: Callable[[float], None] = _ignore,
    ) -> None:
        if limit < 1:
            raise ValueError("a rate limit must allow at least one request a minute")
        self.limit = limit
        self._settings = settings
        self._clock = clock
        self._sleep = sleep
        self._report = report
        self._turn = asyncio.Lock()
        self._level = 0.0
        self._checked = clock.monotonic()
        self._paused_until = -math.inf
        self._lowered_at = -math.inf
        self._ceiling = float(limit)
        self._pace = float(limit)
        self._pacing = self._paced(limit)
        report(self._pace)

    @property
    def pace(self) -> float:
        """Requests a minute the endpoint is paced to now."""
        return self._pace

    @property
    def ceiling(self) -> float:
        """The most requests a minute this replica may send: its share of ``limit``."""
        return self._ceiling

    def set_ceiling(self, ceiling: float) -> None:
        """Pace at most at ``ceiling`` (at least one a minute, at most ``limit``).

        What 429s taught is kept: the pace stays the same fraction of the ceiling.
        """
        ceiling = max(FLOOR_PER_MINUTE, min(float(self.limit), ceiling))
        if ceiling == self._ceiling:
            return
        pace = max(FLOOR_PER_MINUTE, self._pace * ceiling / self._ceiling)
        self._ceiling = ceiling
        self._set_pace(min(pace, ceiling), self._clock.monotonic())

    @property
    def paused_until(self) -> float:
        """Monotonic time before which nothing is sent (a ``Retry-After``)."""
        return self._paused_until

    def has_capacity(self) -> bool:
        """Whether a permit would be granted now without waiting."""
        return self._wait(self._clock.monotonic()) <= ROUNDING_SECONDS

    async def acquire(self) -> None:
        """Wait for and take one permit."""
        async with self._turn:
            while (wait := self._wait(self._clock.monotonic())) > ROUNDING_SECONDS:
                await self._sleep(wait)
            self._level += 1

    def throttled(self, retry_after: float | None, *, sent_at: float) -> None:
        """A request sent at ``sent_at`` was answered 429 (``retry_after`` already bounded).

        Only a request sent since the last decrease lowers the pace again: the others left
        at the old pace, and one burst of refusals is one signal, not many.
        """
        now = self._clock.monotonic()
        if sent_at > self._lowered_at:
            self._lowered_at = now
            self._set_pace(max(FLOOR_PER_MINUTE, self._pace * self._settings.decrease), now)
        if retry_after is not None:
            self.hold(retry_after)

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds``; then one request at once and the drip after it."""
        until = self._clock.monotonic() + seconds
        if until <= self._paused_until:
            return
        self._paused_until = until
        # The server said when one request fits again, not that a whole burst does.
        self._level = self._pacing.burst - 1.0
        self._checked = until

    def answered(self) -> None:
        """A request got an answer that was not a refusal to pace: climb back a step."""
        if self._pace < self._ceiling:
            step = self._ceiling * self._settings.increase
            self._set_pace(min(self._ceiling, self._pace + step), self._clock.monotonic())

    def _paced(self, pace: float) -> Pacing:
        settings = self._settings
        return pacing(
            pace, window_seconds=settings.window_seconds, jitter_seconds=settings.jitter_seconds
        )

    def _set_pace(self, pace: float, now: float) -> None:
        self._leak(now)
        self._pace = pace
        self._pacing = self._paced(pace)
        self._level = min(self._level, float(self._pacing.burst))
        self._report(pace)

    def _leak(self, now: float) -> None:
        elapsed = now - self._checked
        # A pause sets the check time ahead: the bucket does not drain before it ends.
        if elapsed > 0:
            self._level = max(0.0, self._level - elapsed * self._pacing.per_second)
            self._checked = now

    def _wait(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        self._leak(now)
        return (self._level + 1 - self._pacing.burst) / self._pacing.per_second


class RateLimiters:
    """One limiter per endpoint, sized from settings in requests per minute."""

    def __init__(
        self,
        limits: CapillaryRateLimits,
        settings: CapillaryPacingSettings,
        *,
        clock: Clock,
        sleep: Sleep,
        report: Callable[[str, float], None] | None = None,
    ) -> None:
        self._limiters = {
            endpoint: AdaptiveLimiter(
                getattr(limits, endpoint.value),
                settings,
                clock=clock,
                sleep=sleep,
                report=_bound(report, endpoint),
            )
            for endpoint in Endpoint
        }

    def for_endpoint(self, endpoint: Endpoint) -> AdaptiveLimiter:
        """The limiter that calls to ``endpoint`` share."""
        return self._limiters[endpoint]

    def share(self, owned: int, total: int) -> None:
        """Pace every endpoint at this replica's share of the brand's limit.

        ``owned`` of the returns topic's ``total`` partitions. Each limit is rounded down
        (one request a minute at least), so replicas that split the partitions between them
        never send more than the limit together.
        """
        if total < 1 or not 0 <= owned <= total:
            raise ValueError(f"cannot own {owned} of {total} partitions")
        for limiter in self._limiters.values():
            limiter.set_ceiling(limiter.limit * owned // total)


def _bound(
    report: Callable[[str, float], None] | None, endpoint: Endpoint
) -> Callable[[float], None]:
    if report is None:
        return _ignore
    return lambda pace: report(endpoint.value, pace)


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
