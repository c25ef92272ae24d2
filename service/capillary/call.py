"""The one HTTP call loop: rate limit, authenticate, send, retry, until it ends.

Every endpoint family hands this loop a request and gets back a :class:`Call`
(``answers.py``): the answer's body, or the failure that left none to read. What each
attempt came to is judged in ``judge.py``; the connections are ``transport.py``'s. Nothing
here knows an endpoint's body shape; reading answers item by item is each family's job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import httpx
import structlog
from opentelemetry.trace import StatusCode
from prometheus_client import Counter, Histogram

from service.capillary.answers import Call
from service.capillary.auth import Authenticator
from service.capillary.codes import OPEN_CART_CODE, Endpoint
from service.capillary.config import AuthMode, CapillaryConfig
from service.capillary.judge import (
    Attempt,
    Kind,
    credentials_refused,
    gave_up,
    judge_answer,
    judge_no_answer,
    judge_no_token,
    may_have_been_made,
)
from service.capillary.limits import AdaptiveLimiter, RateLimiters
from service.capillary.models import Attribution
from service.capillary.results import Failure, ResultClass
from service.capillary.retry import RETRIABLE_STATUSES, RetryPolicy
from service.capillary.transport import HttpPools
from service.clock import Clock
from service.errors import CapillaryAuthError, CapillaryTransientError
from service.observe.metrics import Metrics
from service.observe.tracing import Tracing

ATTRIBUTION_TYPE_HEADER = "X-CAP-API-ATTRIBUTION-ENTITY-TYPE"
ATTRIBUTION_ID_HEADER = "X-CAP-API-ATTRIBUTION-ENTITY-ID"

PATHS: dict[Endpoint, str] = {
    Endpoint.LOYALTY_REVOKE: "/v2/promotion/bulk/revokeEnrolAndEarn",
    Endpoint.LOYALTY_ENROL: "/v2/promotion/bulk/enrolAndEarn",
    Endpoint.CART_REVOKE: "/api_gateway/v1/promotions/revokeEarn",
    Endpoint.COUPON_REVOKE: "/v2/coupon/revoke",
    Endpoint.DEACTIVATE: "/api_gateway/v1/promotions/{promotion_id}/deactivate",
}

Sleep = Callable[[float], Awaitable[None]]

_log = structlog.get_logger("service.capillary.client")


@dataclass(slots=True, eq=False)
class CallLoop:
    """Sends one logical call at a time through limits, auth and the retry policies."""

    config: CapillaryConfig
    _: KW_ONLY
    http: HttpPools
    auth: Authenticator
    limiters: RateLimiters
    clock: Clock
    retry_policy: RetryPolicy
    open_cart_policy: RetryPolicy
    sleep: Sleep
    metrics: Metrics
    tracing: Tracing
    _children: dict[tuple[Endpoint, str], tuple[Counter, Histogram]] = field(
        default_factory=dict, init=False, repr=False
    )

    _urls: dict[Endpoint, str] = field(default_factory=dict, init=False, repr=False)

    def url(self, endpoint: Endpoint, **path: str) -> str:
        """The endpoint's URL on its family's host (the two families live on two hosts)."""
        if not path:
            # The same string every call: built once (the settings do not change).
            found = self._urls.get(endpoint)
            if found is None:
                found = self._urls[endpoint] = self._url(endpoint)
            return found
        return self._url(endpoint, **path)

    def _url(self, endpoint: Endpoint, **path: str) -> str:
        base = (
            self.config.loyalty_base_url
            if endpoint.on_loyalty_host
            else self.config.gateway_base_url
        )
        return base + PATHS[endpoint].format(**path)

    def limiter(self, endpoint: Endpoint) -> AdaptiveLimiter:
        """The rate limiter every attempt to ``endpoint`` acquires a permit from."""
        return self.limiters.for_endpoint(endpoint)

    @property
    def sends_attribution(self) -> bool:
        """Whether attribution reaches Capillary (its headers go with OAuth only)."""
        return self.config.auth_mode is AuthMode.OAUTH

    async def send(
        self,
        endpoint: Endpoint,
        *,
        url: str | None = None,
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        attribution: Attribution | None = None,
        idempotent: bool = True,
        retry: bool = True,
        admitted: bool = False,
    ) -> Call:
        """Send one logical call (always POST): attempts, retries, one log line per attempt.

        ``retry=False`` makes one attempt (a probe). ``admitted=True``: the caller already
        took the rate permit of the first attempt (a coalesced batch grows while it waits
        for it); every later attempt takes its own.
        """
        target = url or self.url(endpoint)

        async def send_once() -> Attempt:
            return await self._attempt(
                endpoint, target, json=json, content=content, params=params, attribution=attribution
            )

        started = self.clock.monotonic()
        request_ids: list[str] = []
        attempt = 0
        refreshed = False
        uncertain = False

        def finish(outcome: Attempt, body: Any, failure: Failure | None) -> Call:
            elapsed_ms = (self.clock.monotonic() - started) * 1000
            return Call(outcome.status, body, failure, request_ids, attempt, elapsed_ms, uncertain)

        while True:
            attempt += 1
            attempt_started = self.clock.monotonic()
            limiter = self.limiters.for_endpoint(endpoint)
            if not (admitted and attempt == 1):
                await limiter.acquire()
            sent_at = self.clock.monotonic()
            outcome = await self._observed(endpoint, attempt, send_once)
            _teach(limiter, outcome, sent_at)
            if outcome.request_id:
                request_ids.append(outcome.request_id)
            # A plain answer at the first attempt is the common case: DEBUG, so a storm does
            # not write a line per call; anything else (retries, failures) stays at INFO.
            plain = outcome.kind is Kind.ANSWER and attempt == 1
            (_log.debug if plain else _log.info)(
                "capillary_call_finished",
                endpoint=endpoint.value,
                status=outcome.status,
                codes=outcome.codes,
                request_id=outcome.request_id,
                attempt=attempt,
                outcome=outcome.kind.value,
                elapsed_ms=round((self.clock.monotonic() - attempt_started) * 1000, 1),
            )

            if outcome.kind is Kind.ANSWER:
                return finish(outcome, outcome.body, None)
            if outcome.kind is Kind.FATAL:
                uncertain = uncertain or outcome.ambiguous
                return finish(outcome, None, outcome.failure)
            if outcome.kind is Kind.UNAUTHORIZED:
                if self.auth.refreshable and not refreshed and retry:
                    # A token can expire early or be revoked: one fresh token, one more try.
                    refreshed = True
                    self.auth.invalidate(outcome.sent_headers)
                    self.metrics.capillary_retries.labels(endpoint.value).inc()
                    continue
                return finish(outcome, None, credentials_refused(self.config))
            if not idempotent and outcome.ambiguous:
                uncertain = True  # this very attempt may have been processed
                return finish(outcome, None, may_have_been_made(outcome.status))
            uncertain = uncertain or outcome.ambiguous
            failure = outcome.failure or Failure(ResultClass.TRANSIENT, "transient failure")
            # An open cart closes on the customer's time, not Capillary's: a longer budget.
            policy = self.open_cart_policy if failure.code == OPEN_CART_CODE else self.retry_policy
            wait = (
                policy.next_wait(
                    attempts_made=attempt,
                    elapsed=self.clock.monotonic() - started,
                    retry_after=outcome.retry_after,
                )
                if retry
                else None
            )
            if wait is None:
                if outcome.body is not None and outcome.status not in RETRIABLE_STATUSES:
                    # A transient body code (737 open cart): the family explains it per item.
                    return finish(outcome, outcome.body, None)
                return finish(outcome, None, gave_up(failure, attempt))
            self.metrics.capillary_retries.labels(endpoint.value).inc()
            await self.sleep(wait)

    def _counted(self, endpoint: Endpoint, result: str) -> tuple[Counter, Histogram]:
        """The call counter and the duration histogram of this endpoint and result.

        Kept once found: ``labels()`` takes a lock and builds a key on every call.
        """
        key = (endpoint, result)
        found = self._children.get(key)
        if found is None:
            metrics = self.metrics
            found = self._children[key] = (
                metrics.capillary_calls.labels(endpoint.value, result),
                metrics.capillary_call_duration.labels(endpoint.value),
            )
        return found

    async def _observed(
        self, endpoint: Endpoint, attempt: int, send_once: Callable[[], Awaitable[Attempt]]
    ) -> Attempt:
        """Attempt number ``attempt`` in its own span, counted and timed."""
        with self.tracing.request(endpoint.value, attempt) as span:
            started = self.clock.monotonic()
            outcome = await send_once()
            elapsed = self.clock.monotonic() - started
            result = outcome.result
            calls, duration = self._counted(endpoint, result)
            calls.inc()
            duration.observe(elapsed)
            if result == "throttled":
                self.metrics.capillary_throttled.labels(endpoint.value).inc()
            if span.is_recording():
                span.set_attribute("capillary.result", result)
                if outcome.status is not None:
                    span.set_attribute("http.response.status_code", outcome.status)
                if outcome.request_id:
                    span.set_attribute("capillary.request_id", outcome.request_id)
                if outcome.codes:
                    span.set_attribute("capillary.codes", outcome.codes)
                if result != "ok":
                    span.set_status(StatusCode.ERROR, result)
        return outcome

    async def _attempt(
        self,
        endpoint: Endpoint,
        url: str,
        *,
        json: dict[str, Any] | None,
        content: bytes | None,
        params: dict[str, str] | None,
        attribution: Attribution | None,
    ) -> Attempt:
        try:
            headers = await self.auth.headers()
        except (CapillaryAuthError, CapillaryTransientError, httpx.TransportError) as exc:
            return judge_no_token(exc)
        sent_headers = dict(headers)
        if attribution is not None and self.sends_attribution:
            headers[ATTRIBUTION_TYPE_HEADER] = attribution.entity_type.value
            headers[ATTRIBUTION_ID_HEADER] = attribution.entity_id
        if content is not None:
            headers["Content-Type"] = "application/json"
        deadline = self.config.timeouts.call_deadline
        try:
            request = self.http.request(
                url, json=json, content=content, params=params, headers=headers
            )
            response = await self.http.send(request, deadline)
        except (TimeoutError, httpx.TransportError) as exc:
            return judge_no_answer(exc, deadline)
        return judge_answer(
            endpoint,
            response,
            sent_headers,
            clock=self.clock,
            retry_after_max=self.config.pacing.retry_after_max,
        )


def _teach(limiter: AdaptiveLimiter, outcome: Attempt, sent_at: float) -> None:
    """What one attempt's answer says about the endpoint's pace."""
    if outcome.status == 429:
        limiter.throttled(outcome.retry_after, sent_at=sent_at)
    elif outcome.retry_after is not None:
        # A 503 that says when to come back: nobody should call before then.
        limiter.hold(outcome.retry_after)
    elif outcome.status is not None and outcome.status < 500:
        # A 5xx says nothing about the limit; any other answer says this pace was granted.
        limiter.answered()


__all__ = ["PATHS", "CallLoop", "Sleep"]
