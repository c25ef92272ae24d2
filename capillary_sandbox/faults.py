"""Fault injection and rate limiting for the sandbox.

A fault is decided before the request reaches the endpoint logic, so a faulted request
never changes state. Per request, in this order:

1. latency: ``latency_ms`` plus a uniform ``0..jitter_ms`` extra (seeded RNG), applied to
   every request of the endpoint, faulted or not;
2. a pending ``fail_next`` entry for the endpoint (or ``"*"``) is consumed, first match wins:
   deterministic, for tests;
3. otherwise the random rates are rolled in the order hang, drop, error, throttle.

``unmatched`` (only as ``fail_next``) is the one fault that reaches the endpoint: the request
is carried out, then the answer of a loyalty bulk endpoint loses its last item, so its items
no longer match the customers sent (a client must not read it as a refusal). ``after`` lets
that many matching requests through before a ``fail_next`` entry applies.

Endpoint names: ``revoke_enrol_and_earn``, ``enrol_and_earn``, ``cart_revoke_earn``,
``coupon_revoke``, ``deactivate`` and ``oauth_token``. ``"*"`` (and the ``default`` rule)
cover the five business endpoints but not ``oauth_token``, which only a rule or a
``fail_next`` naming it explicitly affects, so a fault meant for business calls does not
also break token fetching.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BUSINESS_ENDPOINTS = (
    "revoke_enrol_and_earn",
    "enrol_and_earn",
    "cart_revoke_earn",
    "coupon_revoke",
    "deactivate",
)
OAUTH_ENDPOINT = "oauth_token"
ALL_ENDPOINTS = (*BUSINESS_ENDPOINTS, OAUTH_ENDPOINT)
ANY = "*"

FaultKind = Literal["error", "throttle", "drop", "hang", "unmatched"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FaultRule(_Model):
    """Latency and failure rates for one endpoint (rates are probabilities, 0..1)."""

    latency_ms: float = Field(0.0, ge=0)
    jitter_ms: float = Field(0.0, ge=0)
    error_rate: float = Field(0.0, ge=0, le=1)
    error_status: int = Field(503, ge=500, le=599)
    throttle_rate: float = Field(0.0, ge=0, le=1)
    retry_after_seconds: int = Field(1, ge=0)
    drop_rate: float = Field(0.0, ge=0, le=1)
    hang_rate: float = Field(0.0, ge=0, le=1)


class FailNext(_Model):
    """The next ``count`` requests to ``endpoint`` fail as ``kind``."""

    endpoint: str = ANY
    kind: FaultKind = "error"
    count: int = Field(1, ge=1)
    after: int = Field(0, ge=0, description="matching requests let through first")
    status: int | None = Field(None, ge=400, le=599)
    retry_after_seconds: int | None = Field(None, ge=0)


class FaultConfig(_Model):
    """All fault settings: a default rule, per-endpoint rules, and pending ``fail_next``."""

    default: FaultRule = Field(default_factory=FaultRule)
    endpoints: dict[str, FaultRule] = Field(default_factory=dict)
    fail_next: list[FailNext] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do with one request before (or instead of) handling it."""

    delay_seconds: float = 0.0
    kind: FaultKind | None = None
    status: int = 503
    retry_after_seconds: int = 1


class Faults:
    """The live fault settings; ``decide`` is called once per API request."""

    def __init__(self, config: FaultConfig, rng: random.Random) -> None:
        self._rng = rng
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Replace every setting, including pending ``fail_next`` entries."""
        self._config = config.model_copy(deep=True)
        self._pending: list[FailNext] = list(self._config.fail_next)

    def fail_next(
        self,
        endpoint: str = ANY,
        kind: FaultKind = "error",
        count: int = 1,
        *,
        status: int | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        """Make the next ``count`` requests to ``endpoint`` fail as ``kind``."""
        self._pending.append(
            FailNext(
                endpoint=endpoint,
                kind=kind,
                count=count,
                status=status,
                retry_after_seconds=retry_after_seconds,
            )
        )

    def current(self) -> FaultConfig:
        """The settings now in force, with the ``fail_next`` entries still pending."""
        return self._config.model_copy(
            update={"fail_next": [p.model_copy() for p in self._pending]}
        )

    def _rule(self, endpoint: str) -> FaultRule | None:
        rule = self._config.endpoints.get(endpoint)
        if rule is not None:
            return rule
        if endpoint == OAUTH_ENDPOINT:
            return None
        return self._config.endpoints.get(ANY, self._config.default)

    def decide(self, endpoint: str) -> FaultDecision:
        """Pick the fault (if any) for one request to ``endpoint``."""
        rule = self._rule(endpoint)
        delay = 0.0
        if rule is not None:
            delay = rule.latency_ms / 1000.0
            if rule.jitter_ms:
                delay += self._rng.uniform(0.0, rule.jitter_ms) / 1000.0
        for pending in self._pending:
            matches = pending.endpoint == endpoint or (
                pending.endpoint == ANY and endpoint != OAUTH_ENDPOINT
            )
            if matches and pending.after > 0:
                pending.after -= 1
            elif matches:
                pending.count -= 1
                if pending.count <= 0:
                    self._pending.remove(pending)
                default_status = 429 if pending.kind == "throttle" else 503
                default_retry = rule.retry_after_seconds if rule else 1
                return FaultDecision(
                    delay_seconds=delay,
                    kind=pending.kind,
                    status=pending.status or default_status,
                    retry_after_seconds=(
                        pending.retry_after_seconds
                        if pending.retry_after_seconds is not None
                        else default_retry
                    ),
                )
        if rule is None:
            return FaultDecision()
        roll = self._rng.random
        if rule.hang_rate and roll() < rule.hang_rate:
            return FaultDecision(delay, "hang")
        if rule.drop_rate and roll() < rule.drop_rate:
            return FaultDecision(delay, "drop")
        if rule.error_rate and roll() < rule.error_rate:
            return FaultDecision(delay, "error", rule.error_status)
        if rule.throttle_rate and roll() < rule.throttle_rate:
            return FaultDecision(delay, "throttle", 429, rule.retry_after_seconds)
        return FaultDecision(delay_seconds=delay)


class RateLimiter:
    """Sliding one-minute window per endpoint; ``None`` means unlimited.

    ``limits`` is keyed by endpoint name; ``"*"`` applies to business endpoints without
    their own entry. ``window_seconds`` shrinks the minute, so a test can play a minute's
    case in seconds (both the limits and the client's pace scaled alike).
    """

    def __init__(
        self,
        limits: dict[str, int | None],
        clock: Callable[[], float],
        window_seconds: float = 60.0,
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        self._window = window_seconds
        self._seen: dict[str, deque[float]] = {}

    def _limit(self, endpoint: str) -> int | None:
        if endpoint in self._limits:
            return self._limits[endpoint]
        return None if endpoint == OAUTH_ENDPOINT else self._limits.get(ANY)

    def clear(self) -> None:
        """Forget every request counted: each window starts empty again."""
        self._seen.clear()

    def check(self, endpoint: str) -> int | None:
        """Count one request; answer ``None`` if allowed, else the ``Retry-After`` seconds."""
        limit = self._limit(endpoint)
        if limit is None:
            return None
        now = self._clock()
        window = self._seen.setdefault(endpoint, deque())
        while window and window[0] <= now - self._window:
            window.popleft()
        if len(window) >= limit:
            return max(1, math.ceil(window[0] + self._window - now))
        window.append(now)
        return None
