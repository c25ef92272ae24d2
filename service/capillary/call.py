"""The one HTTP call loop: rate limit, authenticate, send, judge the answer, retry.

Every endpoint family hands this loop a request and gets back a :class:`Call`: the
answer's body, or the :class:`Failure` that left none to read. Nothing here knows an
endpoint's body shape; reading answers item by item is each family's job.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

import httpx
import structlog
from opentelemetry.trace import StatusCode
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ValidationError

from service.capillary.auth import Authenticator
from service.capillary.codes import OPEN_CART_CODE, Endpoint, classify, transient_codes
from service.capillary.config import AuthMode, CapillaryConfig
from service.capillary.limits import AdaptiveLimiter, RateLimiters
from service.capillary.models import Attribution
from service.capillary.results import ResultClass
from service.capillary.retry import (
    NOT_PROCESSED_STATUSES,
    RETRIABLE_STATUSES,
    RETRY_AFTER_STATUSES,
    RetryPolicy,
    parse_retry_after,
)
from service.clock import Clock
from service.errors import CapillaryAuthError, CapillaryTransientError
from service.observe.metrics import Metrics
from service.observe.tracing import Tracing

REQUEST_ID_HEADER = "X-CAP-REQUEST-ID"
ATTRIBUTION_TYPE_HEADER = "X-CAP-API-ATTRIBUTION-ENTITY-TYPE"
ATTRIBUTION_ID_HEADER = "X-CAP-API-ATTRIBUTION-ENTITY-ID"

PATHS: dict[Endpoint, str] = {
    Endpoint.LOYALTY_REVOKE: "/v2/promotion/bulk/revokeEnrolAndEarn",
    Endpoint.LOYALTY_ENROL: "/v2/promotion/bulk/enrolAndEarn",
    Endpoint.CART_REVOKE: "/api_gateway/v1/promotions/revokeEarn",
    Endpoint.COUPON_REVOKE: "/v2/coupon/revoke",
    Endpoint.DEACTIVATE: "/api_gateway/v1/promotions/{promotion_id}/deactivate",
}
_V2_FAMILY = frozenset({Endpoint.LOYALTY_REVOKE, Endpoint.LOYALTY_ENROL, Endpoint.COUPON_REVOKE})

Sleep = Callable[[float], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)

_log = structlog.get_logger("service.capillary.client")

_REPEAT_MAY_ISSUE_TWICE = (
    "no answer after the request may have been processed; EARN has no idempotency key, "
    "so a repeat could issue twice"
)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a call (or an answer) produced nothing to read item by item."""

    result_class: ResultClass
    message: str
    code: int | None = None
    next_step: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """The end of one logical call, after retries."""

    status: int | None
    body: Any
    failure: Failure | None
    request_ids: list[str]
    attempts: int
    elapsed_ms: float
    # An earlier attempt got no clear answer and may have been processed by Capillary.
    after_uncertain_attempt: bool = False


class _Kind(StrEnum):
    ANSWER = "answer"
    TRANSIENT = "transient"
    UNAUTHORIZED = "unauthorized"
    FATAL = "fatal"


@dataclass(slots=True)
class _Attempt:
    kind: _Kind
    status: int | None = None
    body: Any = None
    codes: list[int] = field(default_factory=list)
    request_id: str | None = None
    retry_after: float | None = None
    # True when the request may have been processed although no usable answer came back.
    ambiguous: bool = False
    failure: Failure | None = None
    sent_headers: dict[str, str] = field(default_factory=dict)
    timed_out: bool = False

    @property
    def result(self) -> str:
        """The metric's ``result`` label of this attempt."""
        if self.status == 429:
            return "throttled"
        if self.kind is _Kind.ANSWER:
            return "ok"
        if self.status is None:
            if self.timed_out:
                return "timeout"
            return "client_error" if self.kind is _Kind.FATAL else "unreachable"
        if self.status >= 500 or self.kind is _Kind.TRANSIENT:
            return "server_error"
        return "client_error"


class HttpPools:
    """Transports that share the requests; each request goes to the least busy one.

    Requests go straight to an httpx transport, not through ``httpx.AsyncClient``: the
    client's layers (merging, auth and redirect flows, cookies) cost as much CPU per
    request as the aiohttp transport under them, and we use none of them. A request waits
    for a free connection here, never inside the transport's pool.
    """

    def __init__(
        self,
        transports: Sequence[httpx.AsyncBaseTransport],
        connections_each: int,
        timeout: httpx.Timeout,
    ) -> None:
        self._transports = list(transports)
        self._slots = [asyncio.Semaphore(connections_each) for _ in self._transports]
        self._busy = [0] * len(self._transports)
        self._timeout = timeout.as_dict()

    def request(
        self,
        url: str,
        *,
        json: dict[str, Any] | None,
        content: bytes | None,
        params: dict[str, str] | None,
        headers: dict[str, str],
    ) -> httpx.Request:
        """A POST as ``httpx.AsyncClient`` would build it, with our timeouts."""
        return httpx.Request(
            "POST",
            url,
            params=params,
            headers={"Accept": "application/json", **headers},
            json=json,
            content=content,
            extensions={"timeout": self._timeout},
        )

    @contextlib.asynccontextmanager
    async def transport(self) -> AsyncIterator[httpx.AsyncBaseTransport]:
        """A transport with a free connection, held for one request."""
        index = min(range(len(self._transports)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            async with self._slots[index]:
                yield self._transports[index]
        finally:
            self._busy[index] -= 1

    async def aclose(self) -> None:
        """Close every transport."""
        for transport in self._transports:
            await transport.aclose()


async def _send(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
    response = await transport.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


class CallLoop:
    """Sends one logical call at a time through limits, auth and the retry policies."""

    def __init__(
        self,
        config: CapillaryConfig,
        *,
        http: HttpPools,
        auth: Authenticator,
        limiters: RateLimiters,
        clock: Clock,
        retry_policy: RetryPolicy,
        open_cart_policy: RetryPolicy,
        sleep: Sleep,
        metrics: Metrics,
        tracing: Tracing,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._tracing = tracing
        self._children: dict[tuple[Endpoint, str], tuple[Counter, Histogram]] = {}
        self._http = http
        self._auth = auth
        self._limiters = limiters
        self._clock = clock
        self._policy = retry_policy
        self._open_cart_policy = open_cart_policy
        self._sleep = sleep

    def url(self, endpoint: Endpoint, **path: str) -> str:
        """The endpoint's URL on its family's host (the two families live on two hosts)."""
        base = (
            self._config.loyalty_base_url
            if endpoint in _V2_FAMILY
            else self._config.gateway_base_url
        )
        return base + PATHS[endpoint].format(**path)

    def limiter(self, endpoint: Endpoint) -> AdaptiveLimiter:
        """The rate limiter every attempt to ``endpoint`` acquires a permit from."""
        return self._limiters.for_endpoint(endpoint)

    @property
    def sends_attribution(self) -> bool:
        """Whether attribution reaches Capillary (its headers go with OAuth only)."""
        return self._config.auth_mode is AuthMode.OAUTH

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
        started = self._clock.monotonic()
        request_ids: list[str] = []
        attempt = 0
        refreshed = False
        uncertain = False

        def finish(outcome: _Attempt, body: Any, failure: Failure | None) -> Call:
            elapsed_ms = (self._clock.monotonic() - started) * 1000
            return Call(outcome.status, body, failure, request_ids, attempt, elapsed_ms, uncertain)

        while True:
            attempt += 1
            attempt_started = self._clock.monotonic()
            limiter = self._limiters.for_endpoint(endpoint)
            if not (admitted and attempt == 1):
                await limiter.acquire()
            sent_at = self._clock.monotonic()
            outcome = await self._observed_attempt(
                endpoint,
                target,
                attempt,
                json=json,
                content=content,
                params=params,
                attribution=attribution,
            )
            _teach(limiter, outcome, sent_at)
            if outcome.request_id:
                request_ids.append(outcome.request_id)
            # A plain answer at the first attempt is the common case: DEBUG, so a storm does
            # not write a line per call; anything else (retries, failures) stays at INFO.
            plain = outcome.kind is _Kind.ANSWER and attempt == 1
            (_log.debug if plain else _log.info)(
                "capillary_call_finished",
                endpoint=endpoint.value,
                status=outcome.status,
                codes=outcome.codes,
                request_id=outcome.request_id,
                attempt=attempt,
                outcome=outcome.kind.value,
                elapsed_ms=round((self._clock.monotonic() - attempt_started) * 1000, 1),
            )

            if outcome.kind is _Kind.ANSWER:
                return finish(outcome, outcome.body, None)
            if outcome.kind is _Kind.FATAL:
                uncertain = uncertain or outcome.ambiguous
                return finish(outcome, None, outcome.failure)
            if outcome.kind is _Kind.UNAUTHORIZED:
                if self._auth.refreshable and not refreshed and retry:
                    # A token can expire early or be revoked: one fresh token, one more try.
                    refreshed = True
                    self._auth.invalidate(outcome.sent_headers)
                    self._metrics.capillary_retries.labels(endpoint.value).inc()
                    continue
                return finish(outcome, None, _credentials_refused(self._config))
            if not idempotent and outcome.ambiguous:
                uncertain = True  # this very attempt may have been processed
                return finish(
                    outcome,
                    None,
                    Failure(
                        ResultClass.UNAVAILABLE,
                        _REPEAT_MAY_ISSUE_TWICE,
                        outcome.status,
                        "Check in Capillary whether the earn was issued before repeating it.",
                    ),
                )
            uncertain = uncertain or outcome.ambiguous
            failure = outcome.failure or Failure(ResultClass.TRANSIENT, "transient failure")
            # An open cart closes on the customer's time, not Capillary's: a longer budget.
            policy = self._open_cart_policy if failure.code == OPEN_CART_CODE else self._policy
            wait = (
                policy.next_wait(
                    attempts_made=attempt,
                    elapsed=self._clock.monotonic() - started,
                    retry_after=outcome.retry_after,
                )
                if retry
                else None
            )
            if wait is None:
                if outcome.body is not None and outcome.status not in RETRIABLE_STATUSES:
                    # A transient body code (737 open cart): the family explains it per item.
                    return finish(outcome, outcome.body, None)
                # An open cart is this item's own state; anything else is Capillary's.
                own = failure.code == OPEN_CART_CODE
                return finish(
                    outcome,
                    None,
                    Failure(
                        ResultClass.TRANSIENT if own else ResultClass.UNAVAILABLE,
                        f"{failure.message}; gave up after {attempt} attempts",
                        failure.code,
                        failure.next_step or CapillaryTransientError.next_step,
                    ),
                )
            self._metrics.capillary_retries.labels(endpoint.value).inc()
            await self._sleep(wait)

    def _counted(self, endpoint: Endpoint, result: str) -> tuple[Counter, Histogram]:
        """The call counter and the duration histogram of this endpoint and result.

        Kept once found: ``labels()`` takes a lock and builds a key on every call.
        """
        key = (endpoint, result)
        found = self._children.get(key)
        if found is None:
            metrics = self._metrics
            found = self._children[key] = (
                metrics.capillary_calls.labels(endpoint.value, result),
                metrics.capillary_call_duration.labels(endpoint.value),
            )
        return found

    async def _observed_attempt(
        self,
        endpoint: Endpoint,
        url: str,
        attempt: int,
        *,
        json: dict[str, Any] | None,
        content: bytes | None,
        params: dict[str, str] | None,
        attribution: Attribution | None,
    ) -> _Attempt:
        """One attempt in its own span, counted and timed."""
        with self._tracing.request(endpoint.value, attempt) as span:
            started = self._clock.monotonic()
            outcome = await self._attempt(
                endpoint, url, json=json, content=content, params=params, attribution=attribution
            )
            elapsed = self._clock.monotonic() - started
            result = outcome.result
            calls, duration = self._counted(endpoint, result)
            calls.inc()
            duration.observe(elapsed)
            if result == "throttled":
                self._metrics.capillary_throttled.labels(endpoint.value).inc()
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
    ) -> _Attempt:
        try:
            headers = await self._auth.headers()
        except CapillaryAuthError as exc:
            return _Attempt(
                _Kind.FATAL,
                failure=Failure(
                    ResultClass.UNAVAILABLE, exc.message, exc.context.get("status"), exc.next_step
                ),
            )
        except CapillaryTransientError as exc:
            return _Attempt(
                _Kind.TRANSIENT,
                failure=Failure(ResultClass.TRANSIENT, exc.message, exc.context.get("status")),
            )
        except httpx.TransportError as exc:
            return _Attempt(
                _Kind.TRANSIENT,
                failure=Failure(
                    ResultClass.TRANSIENT, f"token request failed: {type(exc).__name__}"
                ),
            )
        sent_headers = dict(headers)
        if attribution is not None and self.sends_attribution:
            headers[ATTRIBUTION_TYPE_HEADER] = attribution.entity_type.value
            headers[ATTRIBUTION_ID_HEADER] = attribution.entity_id
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            # The slot first: time spent waiting for it is not the request's, and a request
            # that never left must not count as one that may have been processed.
            request = self._http.request(
                url, json=json, content=content, params=params, headers=headers
            )
            async with (
                self._http.transport() as transport,
                asyncio.timeout(self._config.timeouts.call_deadline),
            ):
                response = await _send(transport, request)
        except TimeoutError:
            return _Attempt(
                _Kind.TRANSIENT,
                ambiguous=True,
                timed_out=True,
                failure=Failure(
                    ResultClass.TRANSIENT,
                    f"no answer within the call deadline ({self._config.timeouts.call_deadline} s)",
                ),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: safe to repeat even when not idempotent.
            return _Attempt(
                _Kind.TRANSIENT,
                failure=Failure(ResultClass.TRANSIENT, f"could not connect: {type(exc).__name__}"),
            )
        except httpx.TransportError as exc:
            return _Attempt(
                _Kind.TRANSIENT,
                ambiguous=True,
                failure=Failure(
                    ResultClass.TRANSIENT, f"connection failed mid-call: {type(exc).__name__}"
                ),
            )
        return self._judge(endpoint, response, sent_headers)

    def _judge(
        self, endpoint: Endpoint, response: httpx.Response, sent_headers: dict[str, str]
    ) -> _Attempt:
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        outcome = _Attempt(
            _Kind.ANSWER,
            status=status,
            body=body,
            codes=_codes_in(body),
            request_id=response.headers.get(REQUEST_ID_HEADER),
            sent_headers=sent_headers,
        )
        if status == 401:
            outcome.kind = _Kind.UNAUTHORIZED
        elif status in RETRIABLE_STATUSES:
            outcome.kind = _Kind.TRANSIENT
            if status in RETRY_AFTER_STATUSES:
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._clock.now()
                )
                if retry_after is not None:
                    retry_after = min(retry_after, self._config.pacing.retry_after_max)
                outcome.retry_after = retry_after
            outcome.ambiguous = status not in NOT_PROCESSED_STATUSES
            message = "rate limited (HTTP 429)" if status == 429 else f"HTTP {status}"
            outcome.failure = Failure(ResultClass.TRANSIENT, message, status)
        elif not isinstance(body, dict):
            outcome.kind = _Kind.FATAL
            outcome.failure = _http_failure(endpoint, status)
            # A success status says the request was carried out, whatever came back with it.
            outcome.ambiguous = 200 <= status < 300
        elif retry_codes := transient_codes(endpoint).intersection(outcome.codes):
            code = min(retry_codes)
            outcome.kind = _Kind.TRANSIENT
            outcome.ambiguous = 500 in retry_codes
            outcome.failure = Failure(ResultClass.TRANSIENT, classify(endpoint, code).meaning, code)
        return outcome


def _teach(limiter: AdaptiveLimiter, outcome: _Attempt, sent_at: float) -> None:
    """What one attempt's answer says about the endpoint's pace."""
    if outcome.status == 429:
        limiter.throttled(outcome.retry_after, sent_at=sent_at)
    elif outcome.retry_after is not None:
        # A 503 that says when to come back: nobody should call before then.
        limiter.hold(outcome.retry_after)
    elif outcome.status is not None and outcome.status < 500:
        # A 5xx says nothing about the limit; any other answer says this pace was granted.
        limiter.answered()


def read_answer(endpoint: Endpoint, model: type[M], call: Call) -> M | Failure:
    """The call's answer in its documented shape, or why there is none to read."""
    if call.failure is not None:
        return call.failure
    try:
        return model.model_validate(call.body)
    except ValidationError as exc:
        _log.warning(
            "capillary_answer_unreadable",
            endpoint=endpoint.value,
            status=call.status,
            errors=exc.error_count(),
        )
        return Failure(
            ResultClass.REQUEST_ERROR,
            f"answer (HTTP {call.status}) does not have the documented shape",
            call.status,
            "File it with the request id.",
        )


def _codes_in(body: Any) -> list[int]:
    """Every error code an answer carries, whichever of the three shapes it has (for logs)."""
    if not isinstance(body, dict):
        return []
    found: list[Any] = []
    for err in body.get("errors") or []:
        if isinstance(err, dict):
            found.append(err.get("code"))
    for item in body.get("response") or []:
        if isinstance(item, dict):
            found.extend(e.get("code") for e in item.get("errors") or [] if isinstance(e, dict))
    entity_value = body.get("entity")
    entity: dict[str, Any] = entity_value if isinstance(entity_value, dict) else body
    for group in entity.get("failedToRevoke") or []:
        if isinstance(group, dict):
            found.append(
                next(
                    (group[k] for k in ("errorCode", "errroCode", "errrorCode") if k in group), None
                )
            )
    return [c for c in found if isinstance(c, int) and not isinstance(c, bool)]


def _http_failure(endpoint: Endpoint, status: int) -> Failure:
    # Without a JSON answer nothing is about the item: access or the address is wrong.
    if status == 403:
        return Failure(
            ResultClass.UNAVAILABLE,
            "HTTP 403: access refused",
            status,
            "Give the API user the access group the page names.",
        )
    setting = (
        "RETURN_HANDLER_CAPILLARY__LOYALTY_BASE_URL"
        if endpoint in _V2_FAMILY
        else "RETURN_HANDLER_CAPILLARY__GATEWAY_BASE_URL"
    )
    return Failure(
        ResultClass.UNAVAILABLE,
        f"HTTP {status} without a JSON answer",
        status,
        f"Check {setting}.",
    )


def _credentials_refused(config: CapillaryConfig) -> Failure:
    names = (
        "USERNAME and PASSWORD"
        if config.auth_mode is AuthMode.BASIC
        else "OAUTH_KEY and OAUTH_SECRET"
    )
    return Failure(
        ResultClass.UNAVAILABLE,
        "Capillary refused our credentials (HTTP 401)",
        401,
        f"Check RETURN_HANDLER_CAPILLARY__{names} (or their *_FILE secrets).",
    )


__all__ = ["REQUEST_ID_HEADER", "Call", "CallLoop", "Failure", "Sleep", "read_answer"]
