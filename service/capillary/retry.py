"""Retry policy for Capillary calls: what is transient, how long to wait, when to stop.

Same semantics as ``stamina`` (named failures only, exponential backoff with jitter, a cap
on attempts *and* on total time, ``Retry-After`` honoured), written as a small object
rather than through stamina because stamina sleeps with ``asyncio.sleep`` and measures its
time budget with ``time.monotonic`` inside tenacity: neither can be handed our ``Clock``
and ``sleep``, and its test mode is a process-wide switch. Here the client owns the loop,
asks the policy "wait how long, or stop?", and sleeps with the injected ``sleep``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.utils import parsedate_to_datetime

from service.capillary.config import CapillaryRetrySettings

# HTTP statuses retried. 429 and 503 say "not processed, come back later"; 500/502/504 may
# hide a request that was processed, which matters only for non-idempotent calls.
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
NOT_PROCESSED_STATUSES = frozenset({429, 503})
RETRY_AFTER_STATUSES = frozenset({429, 503})

_DEFAULTS = CapillaryRetrySettings()
_FROM_SETTINGS = {"attempts", "total_timeout", "wait_initial", "wait_max", "wait_jitter"}
"""The policy's fields that the settings give under the same names."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff and stop rules, built from settings and passed to the client.

    Built without settings, it has the settings' defaults.
    """

    attempts: int = _DEFAULTS.attempts
    total_timeout: float = _DEFAULTS.total_timeout
    wait_initial: float = _DEFAULTS.wait_initial
    wait_max: float = _DEFAULTS.wait_max
    wait_jitter: float = _DEFAULTS.wait_jitter
    wait_exp_base: float = 2.0
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    @classmethod
    def from_config(cls, settings: CapillaryRetrySettings) -> RetryPolicy:
        """The policy the settings describe."""
        return cls(**settings.model_dump(include=_FROM_SETTINGS))

    @classmethod
    def open_cart_from_config(cls, settings: CapillaryRetrySettings) -> RetryPolicy:
        """The longer policy for 737 "open cart": waits of seconds, not fractions."""
        return replace(
            cls.from_config(settings),
            attempts=settings.open_cart_attempts,
            total_timeout=settings.open_cart_total_timeout,
            wait_initial=2.0,
            wait_max=30.0,
        )

    def backoff(self, retry_number: int) -> float:
        """Wait before retry ``retry_number`` (1-based): exponential, jittered, capped."""
        base = self.wait_initial * self.wait_exp_base ** (retry_number - 1)
        return min(self.wait_max, base + self.random() * self.wait_jitter)

    def next_wait(
        self, *, attempts_made: int, elapsed: float, retry_after: float | None = None
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to stop.

        Stops when the attempts are used up or when waiting would end past the total
        budget. A server's ``Retry-After`` replaces the computed backoff.
        """
        if attempts_made >= self.attempts:
            return None
        wait = retry_after if retry_after is not None else self.backoff(attempts_made)
        if elapsed + wait >= self.total_timeout:
            return None
        return wait


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP-date; ``None`` if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
