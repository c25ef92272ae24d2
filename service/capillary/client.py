"""The async Capillary client: five endpoints, one shared connection pool, per-item results.

Every public method answers a list of ``ItemResult`` (one per thing asked) and never
raises for what Capillary refuses. Calls are split to the documented limits, queued by a
per-endpoint rate limiter, given an overall deadline per attempt, and retried only for
named transient failures under the injected ``RetryPolicy``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from service.capillary.auth import Authenticator, build_authenticator
from service.capillary.codes import Endpoint, classify, is_known, transient_codes
from service.capillary.config import AuthMode, CapillaryConfig
from service.capillary.limits import (
    MAX_CART_EARN_IDS,
    MAX_LOYALTY_CUSTOMERS,
    RateLimiters,
    chunks,
    chunks_without_repeats,
    coupon_code_batches,
)
from service.capillary.models import (
    ApiError,
    Attribution,
    CartEarnRevokeDetail,
    CartEarnsRef,
    CartRevokeRequest,
    CartRevokeResponse,
    CouponCustomer,
    CouponRevokeRequest,
    CouponRevokeResponse,
    DeactivateResponse,
    IdentifierName,
    LoyaltyBulkAction,
    LoyaltyBulkCustomer,
    LoyaltyBulkItem,
    LoyaltyBulkRequest,
    LoyaltyBulkResponse,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.results import ItemResult, ResultClass
from service.capillary.retry import (
    NOT_PROCESSED_STATUSES,
    RETRIABLE_STATUSES,
    RETRY_AFTER_STATUSES,
    RetryPolicy,
    parse_retry_after,
)
from service.clock import Clock, SystemClock
from service.errors import CapillaryAuthError, CapillaryTransientError

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

Sleep = Callable[[float], Awaitable[None]]
M = TypeVar("M", bound=BaseModel)

_log = structlog.get_logger(__name__)

_REPEAT_MAY_ISSUE_TWICE = (
    "no answer after the request may have been processed; EARN has no idempotency key, "
    "so a repeat could issue twice"
)


class _Kind(StrEnum):
    ANSWER = "answer"
    TRANSIENT = "transient"
    UNAUTHORIZED = "unauthorized"
    FATAL = "fatal"


@dataclass(frozen=True, slots=True)
class _Failure:
    """Why a call produced no answer to interpret."""

    result_class: ResultClass
    message: str
    code: int | None = None
    next_step: str | None = None


@dataclass(slots=True)
class _AttemptOutcome:
    kind: _Kind
    status: int | None = None
    body: Any = None
    codes: list[int] = field(default_factory=list)
    request_id: str | None = None
    retry_after: float | None = None
    # True when the request may have been processed although no usable answer came back.
    ambiguous: bool = False
    failure: _Failure | None = None
    sent_headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Call:
    """The end of one logical call, after retries."""

    status: int | None
    body: Any
    failure: _Failure | None
    request_ids: list[str]
    attempts: int
    elapsed_ms: float


class CapillaryClient:
    """One async client per process, over one shared ``httpx.AsyncClient``."""

    def __init__(
        self,
        config: CapillaryConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        retry_policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        rate_limiters: RateLimiters | None = None,
    ) -> None:
        self._config = config
        self._clock: Clock = clock or SystemClock()
        self._policy = retry_policy or RetryPolicy.from_config(config.retry)
        self._sleep = sleep
        self._limiters = rate_limiters or RateLimiters(config.rate_limits)
        t = config.timeouts
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(connect=t.connect, read=t.read, write=t.write, pool=t.pool),
            limits=httpx.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            headers={"Accept": "application/json"},
        )
        self._auth: Authenticator = build_authenticator(
            config,
            http=self._http,
            clock=self._clock,
            limiter=self._limiters.for_endpoint(Endpoint.OAUTH_TOKEN),
        )

    def __repr__(self) -> str:
        return f"CapillaryClient(auth_mode={self._config.auth_mode.value!r})"

    @property
    def authenticator(self) -> Authenticator:
        """The authenticator in use (for diagnostics and tests)."""
        return self._auth

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- loyalty promotions --------------------------------------------------------------

    async def revoke_loyalty_earns(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomerEarns],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """REVOKE_EARN: one result per earn ID, or one per customer for the broad form.

        ``earn_ids=None`` revokes *all* the customer's earns of the promotion; the client
        allows it, the rules decide when.
        """
        return await self._loyalty_bulk(
            Endpoint.LOYALTY_REVOKE,
            "REVOKE_EARN",
            promotion,
            identifier_name,
            customers,
            attribution,
            idempotent=True,
        )

    async def revoke_loyalty_enrolments(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """REVOKE_ENROL (enrol-and-issue promotions only, after that customer's REVOKE_EARN)."""
        return await self._loyalty_bulk(
            Endpoint.LOYALTY_REVOKE,
            "REVOKE_ENROL",
            promotion,
            identifier_name,
            customers,
            attribution,
            idempotent=True,
        )

    async def enrol(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """ENROL customers in an enrol-and-issue promotion; ``detail`` has the ``issual_id``."""
        return await self._loyalty_bulk(
            Endpoint.LOYALTY_ENROL,
            "ENROL",
            promotion,
            identifier_name,
            customers,
            attribution,
            idempotent=True,
        )

    async def issue_earn(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """EARN: issue the promotion; ``detail["earned_id"]`` is the new earn ID.

        Not idempotent: after an ambiguous failure (the request may have been processed)
        it is not retried and the result says a repeat could issue twice.
        """
        return await self._loyalty_bulk(
            Endpoint.LOYALTY_ENROL,
            "EARN",
            promotion,
            identifier_name,
            customers,
            attribution,
            idempotent=False,
        )

    async def _loyalty_bulk(
        self,
        endpoint: Endpoint,
        action: LoyaltyBulkAction,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None,
        *,
        idempotent: bool,
    ) -> list[ItemResult]:
        by_index: dict[int, list[ItemResult]] = {}
        sendable: list[tuple[int, LoyaltyCustomer]] = []
        for index, customer in enumerate(customers):
            missing = _missing_loyalty_fields(customer)
            if missing:
                by_index[index] = [
                    _local_result(
                        item,
                        f"customer has no {' and no '.join(missing)}; no call was made",
                        "The event or the policy must give the customer's "
                        + " and ".join(missing)
                        + ".",
                    )
                    for item in _loyalty_items(action, promotion, customer)
                ]
            else:
                sendable.append((index, customer))

        batches = chunks_without_repeats(
            sendable,
            MAX_LOYALTY_CUSTOMERS,
            key=lambda pair: pair[1].identifier_value.strip().lower(),
        )
        for batch in batches:
            pairs = [pair for _, pair in batch]
            request = LoyaltyBulkRequest(
                bulk_action=action,
                promotion_details=promotion.wire(),
                identifier_name=identifier_name,
                customers=[
                    LoyaltyBulkCustomer(
                        identifier_value=c.identifier_value,
                        source=c.source,
                        earn_ids=c.earn_ids if isinstance(c, LoyaltyCustomerEarns) else None,
                    )
                    for _, c in pairs
                ],
            )
            call = await self._send(
                endpoint,
                "POST",
                self._url(endpoint),
                json=request.wire(),
                attribution=attribution,
                idempotent=idempotent,
            )
            answers = self._loyalty_answers(
                endpoint, action, promotion, identifier_name, pairs, call
            )
            for (index, _), results in zip(pairs, answers, strict=True):
                by_index[index] = results
        return [result for index in sorted(by_index) for result in by_index[index]]

    def _loyalty_answers(
        self,
        endpoint: Endpoint,
        action: LoyaltyBulkAction,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        pairs: list[tuple[int, LoyaltyCustomer]],
        call: _Call,
    ) -> list[list[ItemResult]]:
        customers = [c for _, c in pairs]
        items_of = [_loyalty_items(action, promotion, c) for c in customers]
        if call.failure is not None:
            return [
                [_from_failure(call, item, call.failure) for item in items] for items in items_of
            ]
        parsed = self._parse(endpoint, LoyaltyBulkResponse, call)
        if isinstance(parsed, _Failure):
            return [[_from_failure(call, item, parsed) for item in items] for items in items_of]
        if len(parsed.response) != len(customers):
            failure = _Failure(
                ResultClass.REQUEST_ERROR,
                f"answer has {len(parsed.response)} items for {len(customers)} customers: "
                "cannot match them by position",
                next_step="Replay the event: already-revoked answers make a repeat safe.",
            )
            return [[_from_failure(call, item, failure) for item in items] for items in items_of]
        out: list[list[ItemResult]] = []
        # Items carry no identifier we sent (failures carry none at all): position is the key.
        for customer, items, answer in zip(customers, items_of, parsed.response, strict=True):
            out.append(
                [
                    self._loyalty_item(endpoint, identifier_name, customer, item, answer, call)
                    for item in items
                ]
            )
        return out

    def _loyalty_item(
        self,
        endpoint: Endpoint,
        identifier_name: IdentifierName,
        customer: LoyaltyCustomer,
        item: str,
        answer: LoyaltyBulkItem,
        call: _Call,
    ) -> ItemResult:
        if answer.errors:
            return self._from_errors(endpoint, call, item, answer.errors)
        if answer.result is None:
            return _from_failure(
                call,
                item,
                _Failure(ResultClass.REQUEST_ERROR, "answer item has neither result nor errors"),
            )
        result = answer.result
        detail: dict[str, str] = {}
        if result.entity_id is not None:
            detail["entity_id"] = str(result.entity_id)
            if (
                identifier_name == "id"
                and str(result.entity_id) != customer.identifier_value.strip()
            ):
                _log.warning(
                    "capillary_position_mismatch",
                    endpoint=endpoint.value,
                    entity_id=result.entity_id,
                )
        issual = result.revoked_issual_id or result.issual_id
        if issual is not None:
            detail["issual_id"] = issual
        if result.earned_id is not None:
            detail["earned_id"] = result.earned_id
        if result.revoked_earn_ids:
            detail["revoked_earn_ids"] = ",".join(str(e) for e in result.revoked_earn_ids)
        return _result(call, item, ResultClass.DONE, message="done", detail=detail)

    # --- cart promotions ------------------------------------------------------------------

    async def revoke_cart_earns(
        self,
        customer_id: int,
        earns: Sequence[CartEarnsRef],
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """Revoke unredeemed cart promotion earns of one customer; one result per earn ID."""
        pairs = list(dict.fromkeys((e.promotion_id, earn) for e in earns for earn in e.earn_ids))
        results: list[ItemResult] = []
        for batch in chunks(pairs, MAX_CART_EARN_IDS):
            results.extend(await self._cart_call(customer_id, batch, attribution, may_split=True))
        return results

    async def _cart_call(
        self,
        customer_id: int,
        pairs: list[tuple[str, str]],
        attribution: Attribution | None,
        *,
        may_split: bool,
    ) -> list[ItemResult]:
        endpoint = Endpoint.CART_REVOKE
        grouped: dict[str, list[str]] = {}
        for promotion_id, earn_id in pairs:
            grouped.setdefault(promotion_id, []).append(earn_id)
        request = CartRevokeRequest(
            customer_id=customer_id,
            earn_revoke_details=[
                CartEarnRevokeDetail(promotion_id=p, earn_ids=ids) for p, ids in grouped.items()
            ],
        )
        call = await self._send(
            endpoint, "POST", self._url(endpoint), json=request.wire(), attribution=attribution
        )
        if call.failure is not None:
            failure = call.failure
            return [_from_failure(call, _cart_item(e), failure) for _, e in pairs]
        parsed = self._parse(endpoint, CartRevokeResponse, call)
        if isinstance(parsed, _Failure):
            return [_from_failure(call, _cart_item(e), parsed) for _, e in pairs]
        revoked: dict[str, CartRevokedDetailView] = {}
        for detail in parsed.data.revoked_details if parsed.data else []:
            if detail.status is not None and detail.status.upper() != "SUCCESS":
                continue
            for earn_id in detail.revoked_earn_ids:
                revoked[earn_id] = CartRevokedDetailView(detail.promotion_id, detail.status)
        remaining = [(p, e) for p, e in pairs if e not in revoked]
        distinct = {err.code for err in parsed.errors}
        if may_split and len(remaining) > 1 and len(distinct) > 1:
            # Several different errors cannot be told apart per earn: ask again one by one.
            results = [
                _result(call, _cart_item(e), ResultClass.DONE, message="revoked")
                for _, e in pairs
                if e in revoked
            ]
            for pair in remaining:
                results.extend(
                    await self._cart_call(customer_id, [pair], attribution, may_split=False)
                )
            return results
        results = []
        for promotion_id, earn_id in pairs:
            item = _cart_item(earn_id)
            if earn_id in revoked:
                results.append(
                    _result(
                        call,
                        item,
                        ResultClass.DONE,
                        message="revoked",
                        detail={"promotion_id": promotion_id},
                    )
                )
            elif parsed.errors:
                results.append(self._from_errors(endpoint, call, item, parsed.errors))
            else:
                results.append(_from_failure(call, item, _not_in_answer()))
        return results

    # --- coupons --------------------------------------------------------------------------

    async def revoke_coupons_by_codes(
        self,
        codes: Sequence[str],
        series_id: int | None,
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """Revoke unredeemed coupons by code; one result per distinct code.

        At most 50 codes a call with a series ID; without one, one code a call. Never put
        codes of a series that contains a generic coupon in one call (that revokes the
        whole series): the policy names such series and passes ``series_id=None``.
        """
        endpoint = Endpoint.COUPON_REVOKE
        results: list[ItemResult] = []
        for batch in coupon_code_batches([c for c in codes if c.strip()], series_id):
            request = CouponRevokeRequest(coupon_series_id=series_id, coupon_codes=batch)
            call = await self._send(
                endpoint,
                "POST",
                self._url(endpoint),
                json=request.wire(),
                params=self._coupon_params(),
                attribution=attribution,
            )
            results.extend(self._coupon_code_answers(batch, call))
        results.extend(
            _local_result(
                "coupon:",
                "empty coupon code; no call was made",
                "The event gave an empty coupon code.",
            )
            for c in codes
            if not c.strip()
        )
        return results

    def _coupon_code_answers(self, batch: list[str], call: _Call) -> list[ItemResult]:
        endpoint = Endpoint.COUPON_REVOKE
        if call.failure is not None:
            failure = call.failure
            return [_from_failure(call, _coupon_item(c), failure) for c in batch]
        parsed = self._parse(endpoint, CouponRevokeResponse, call)
        if isinstance(parsed, _Failure):
            return [_from_failure(call, _coupon_item(c), parsed) for c in batch]
        entity = parsed.entity
        if parsed.errors and (entity is None or parsed.success is False):
            return [
                self._from_errors(endpoint, call, _coupon_item(c), parsed.errors) for c in batch
            ]
        revoked = {r.coupon_code.casefold(): r for r in entity.revoked_coupons} if entity else {}
        failed = {}
        for group in entity.failed_to_revoke if entity else []:
            for code in group.coupon_codes:
                failed[code.casefold()] = group
        asked = {c.casefold() for c in batch}
        unexpected = [code for code in revoked if code not in asked]
        if unexpected:
            # A generic coupon in the series makes Capillary revoke the whole series.
            _log.warning(
                "capillary_unexpected_revocations",
                endpoint=endpoint.value,
                count=len(unexpected),
                request_ids=call.request_ids,
            )
        results = []
        for code in batch:
            item = _coupon_item(code)
            key = code.casefold()
            if key in revoked:
                coupon = revoked[key]
                detail = {"coupon_id": str(coupon.coupon_id)} if coupon.coupon_id else {}
                results.append(
                    _result(call, item, ResultClass.DONE, message="revoked", detail=detail)
                )
            elif key in failed:
                group = failed[key]
                results.append(
                    self._from_errors(
                        endpoint,
                        call,
                        item,
                        [ApiError(code=group.error_code, message=group.error_message)],
                    )
                )
            else:
                results.append(_from_failure(call, item, _not_in_answer()))
        return results

    async def revoke_coupons_by_customer(
        self,
        customer: CouponCustomer,
        series_id: int | None,
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """Revoke *all* unredeemed coupons of a customer (optionally of one series).

        Capillary revokes at most 100 and fails beyond that; it also takes coupons other
        orders earned. Use only when the caller asks for it explicitly.
        """
        endpoint = Endpoint.COUPON_REVOKE
        summary_item = f"coupons_of_customer:{customer.kind()}"
        request = CouponRevokeRequest(coupon_series_id=series_id, customer=customer)
        call = await self._send(
            endpoint,
            "POST",
            self._url(endpoint),
            json=request.wire(),
            params=self._coupon_params(),
            attribution=attribution,
        )
        if call.failure is not None:
            return [_from_failure(call, summary_item, call.failure)]
        parsed = self._parse(endpoint, CouponRevokeResponse, call)
        if isinstance(parsed, _Failure):
            return [_from_failure(call, summary_item, parsed)]
        entity = parsed.entity
        if parsed.errors and (entity is None or parsed.success is False):
            return [self._from_errors(endpoint, call, summary_item, parsed.errors)]
        results = [
            _result(
                call,
                _coupon_item(c.coupon_code),
                ResultClass.DONE,
                message="revoked",
                detail={"coupon_id": str(c.coupon_id)} if c.coupon_id else {},
            )
            for c in (entity.revoked_coupons if entity else [])
        ]
        for group in entity.failed_to_revoke if entity else []:
            for code in group.coupon_codes:
                results.append(
                    self._from_errors(
                        endpoint,
                        call,
                        _coupon_item(code),
                        [ApiError(code=group.error_code, message=group.error_message)],
                    )
                )
        if not results:
            results.append(
                _result(
                    call,
                    summary_item,
                    ResultClass.ALREADY_DONE,
                    message="no unredeemed coupons to revoke: already revoked or none issued",
                )
            )
        return results

    def _coupon_params(self) -> dict[str, str]:
        return {"couponCodeCase": self._config.coupon_code_case.value}

    # --- deactivate -----------------------------------------------------------------------

    async def deactivate_promotion(
        self,
        promotion_id: str,
        customer_id: int,
        earn_id: str | None,
        attribution: Attribution | None = None,
    ) -> list[ItemResult]:
        """End one customer's participation, or one earn (``earn_id``, PAYMENT_VOUCHER mode).

        The body is empty; ``earnId`` is left out of the query when ``None``.
        """
        endpoint = Endpoint.DEACTIVATE
        item = f"deactivation:{promotion_id}/{customer_id}"
        if earn_id is not None:
            item += f"/{earn_id}"
        if not promotion_id.strip():
            return [
                _local_result(
                    item,
                    "empty promotion ID; no call was made",
                    "The event or the policy must give the promotion ID.",
                )
            ]
        params = {"customerId": str(customer_id)}
        if earn_id is not None:
            params["earnId"] = earn_id
        url = self._config.gateway_base_url + PATHS[endpoint].format(
            promotion_id=quote(promotion_id, safe="")
        )
        call = await self._send(
            endpoint, "POST", url, content=b"", params=params, attribution=attribution
        )
        if call.failure is not None:
            return [_from_failure(call, item, call.failure)]
        parsed = self._parse(endpoint, DeactivateResponse, call)
        if isinstance(parsed, _Failure):
            return [_from_failure(call, item, parsed)]
        if parsed.errors:
            return [self._from_errors(endpoint, call, item, parsed.errors)]
        if parsed.data is True:
            return [_result(call, item, ResultClass.DONE, message="deactivated")]
        return [
            _from_failure(
                call,
                item,
                _Failure(
                    ResultClass.REQUEST_ERROR,
                    f"answer data={parsed.data!r} without errors",
                    next_step="Look the request id up with Capillary.",
                ),
            )
        ]

    # --- the one HTTP loop -----------------------------------------------------------------

    def _url(self, endpoint: Endpoint) -> str:
        base = (
            self._config.loyalty_base_url
            if endpoint in (Endpoint.LOYALTY_REVOKE, Endpoint.LOYALTY_ENROL, Endpoint.COUPON_REVOKE)
            else self._config.gateway_base_url
        )
        return base + PATHS[endpoint]

    async def _send(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        attribution: Attribution | None = None,
        idempotent: bool = True,
    ) -> _Call:
        """Send one logical call: attempts, retries, one log line per attempt."""
        started = self._clock.monotonic()
        request_ids: list[str] = []
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            attempt_started = self._clock.monotonic()
            outcome = await self._attempt(
                endpoint,
                method,
                url,
                json=json,
                content=content,
                params=params,
                attribution=attribution,
            )
            if outcome.request_id:
                request_ids.append(outcome.request_id)
            _log.info(
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
                return self._finish(started, attempt, request_ids, outcome, outcome.body, None)
            if outcome.kind is _Kind.FATAL:
                return self._finish(started, attempt, request_ids, outcome, None, outcome.failure)
            if outcome.kind is _Kind.UNAUTHORIZED:
                if self._auth.refreshable and not refreshed:
                    # A token can expire early or be revoked: one fresh token, one more try.
                    refreshed = True
                    self._auth.invalidate(outcome.sent_headers)
                    continue
                return self._finish(
                    started, attempt, request_ids, outcome, None, _credentials_refused(self._config)
                )
            if not idempotent and outcome.ambiguous:
                return self._finish(
                    started,
                    attempt,
                    request_ids,
                    outcome,
                    None,
                    _Failure(
                        ResultClass.TRANSIENT,
                        _REPEAT_MAY_ISSUE_TWICE,
                        outcome.status,
                        "Check in Capillary whether the earn was issued before repeating it.",
                    ),
                )
            wait = self._policy.next_wait(
                attempts_made=attempt,
                elapsed=self._clock.monotonic() - started,
                retry_after=outcome.retry_after,
            )
            if wait is None:
                if (
                    outcome.body is not None
                    and outcome.status is not None
                    and (outcome.status not in RETRIABLE_STATUSES)
                ):
                    # A transient body code (737 open cart): the table explains it per item.
                    return self._finish(started, attempt, request_ids, outcome, outcome.body, None)
                failure = outcome.failure or _Failure(ResultClass.TRANSIENT, "transient failure")
                return self._finish(
                    started,
                    attempt,
                    request_ids,
                    outcome,
                    None,
                    _Failure(
                        ResultClass.TRANSIENT,
                        f"{failure.message}; gave up after {attempt} attempts",
                        failure.code,
                        failure.next_step or CapillaryTransientError.next_step,
                    ),
                )
            await self._sleep(wait)

    def _finish(
        self,
        started: float,
        attempts: int,
        request_ids: list[str],
        outcome: _AttemptOutcome,
        body: Any,
        failure: _Failure | None,
    ) -> _Call:
        elapsed_ms = (self._clock.monotonic() - started) * 1000
        return _Call(outcome.status, body, failure, request_ids, attempts, elapsed_ms)

    async def _attempt(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None,
        content: bytes | None,
        params: dict[str, str] | None,
        attribution: Attribution | None,
    ) -> _AttemptOutcome:
        await self._limiters.for_endpoint(endpoint).acquire()
        try:
            headers = await self._auth.headers()
        except CapillaryAuthError as exc:
            return _AttemptOutcome(
                _Kind.FATAL,
                failure=_Failure(
                    ResultClass.REQUEST_ERROR, exc.message, exc.context.get("status"), exc.next_step
                ),
            )
        except CapillaryTransientError as exc:
            return _AttemptOutcome(
                _Kind.TRANSIENT,
                failure=_Failure(ResultClass.TRANSIENT, exc.message, exc.context.get("status")),
            )
        except httpx.TransportError as exc:
            return _AttemptOutcome(
                _Kind.TRANSIENT,
                failure=_Failure(
                    ResultClass.TRANSIENT, f"token request failed: {type(exc).__name__}"
                ),
            )
        sent_headers = dict(headers)
        if attribution is not None and self._config.auth_mode is AuthMode.OAUTH:
            headers[ATTRIBUTION_TYPE_HEADER] = attribution.entity_type.value
            headers[ATTRIBUTION_ID_HEADER] = attribution.entity_id
        if content is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with asyncio.timeout(self._config.timeouts.call_deadline):
                response = await self._http.request(
                    method, url, json=json, content=content, params=params, headers=headers
                )
        except TimeoutError:
            return _AttemptOutcome(
                _Kind.TRANSIENT,
                ambiguous=True,
                failure=_Failure(
                    ResultClass.TRANSIENT,
                    f"no answer within the call deadline ({self._config.timeouts.call_deadline} s)",
                ),
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: safe to repeat even when not idempotent.
            return _AttemptOutcome(
                _Kind.TRANSIENT,
                failure=_Failure(ResultClass.TRANSIENT, f"could not connect: {type(exc).__name__}"),
            )
        except httpx.TransportError as exc:
            return _AttemptOutcome(
                _Kind.TRANSIENT,
                ambiguous=True,
                failure=_Failure(
                    ResultClass.TRANSIENT, f"connection failed mid-call: {type(exc).__name__}"
                ),
            )
        return self._judge(endpoint, response, sent_headers)

    def _judge(
        self, endpoint: Endpoint, response: httpx.Response, sent_headers: dict[str, str]
    ) -> _AttemptOutcome:
        status = response.status_code
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        outcome = _AttemptOutcome(
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
                outcome.retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), self._clock.now()
                )
            outcome.ambiguous = status not in NOT_PROCESSED_STATUSES
            message = "rate limited (HTTP 429)" if status == 429 else f"HTTP {status}"
            outcome.failure = _Failure(ResultClass.TRANSIENT, message, status)
        elif not isinstance(body, dict):
            outcome.kind = _Kind.FATAL
            outcome.failure = _http_failure(endpoint, status)
        elif retry_codes := transient_codes(endpoint).intersection(outcome.codes):
            code = min(retry_codes)
            outcome.kind = _Kind.TRANSIENT
            outcome.ambiguous = 500 in retry_codes
            outcome.failure = _Failure(
                ResultClass.TRANSIENT, classify(endpoint, code).meaning, code
            )
        return outcome

    # --- interpretation helpers -------------------------------------------------------------

    def _parse(self, endpoint: Endpoint, model: type[M], call: _Call) -> M | _Failure:
        try:
            return model.model_validate(call.body)
        except ValidationError as exc:
            _log.warning(
                "capillary_answer_unreadable",
                endpoint=endpoint.value,
                status=call.status,
                errors=exc.error_count(),
            )
            return _Failure(
                ResultClass.REQUEST_ERROR,
                f"answer (HTTP {call.status}) does not have the documented shape",
                call.status,
                "File it with the request id.",
            )

    def _from_errors(
        self, endpoint: Endpoint, call: _Call, item: str, errors: Sequence[ApiError]
    ) -> ItemResult:
        first = errors[0]
        if first.code is None:
            return _from_failure(
                call,
                item,
                _Failure(
                    ResultClass.REQUEST_ERROR,
                    f"error without a code: {first.message}".strip(),
                    next_step="File it with the request id.",
                ),
            )
        if not is_known(endpoint, first.code):
            _log.warning(
                "capillary_unknown_code",
                endpoint=endpoint.value,
                code=first.code,
                request_ids=call.request_ids,
            )
        info = classify(endpoint, first.code)
        message = info.meaning
        if first.message and first.message.strip().lower() != info.meaning.lower():
            message = f"{info.meaning} (Capillary: {first.message.strip()})"
        return _result(
            call,
            item,
            info.result_class,
            code=first.code,
            message=message,
            next_step=info.next_step or None,
        )


@dataclass(frozen=True, slots=True)
class CartRevokedDetailView:
    """What the cart answer said about one revoked earn."""

    promotion_id: str | None
    status: str | None


def _loyalty_items(
    action: LoyaltyBulkAction, promotion: LoyaltyPromotionRef, customer: LoyaltyCustomer
) -> list[str]:
    who = customer.identifier_value
    if action == "REVOKE_EARN":
        earn_ids = customer.earn_ids if isinstance(customer, LoyaltyCustomerEarns) else None
        if earn_ids is None:
            return [f"loyalty_earns_all:{promotion.label()}/{who}"]
        return [f"loyalty_earn:{earn}" for earn in earn_ids]
    if action == "EARN":
        return [f"loyalty_issue:{promotion.label()}/{who}"]
    return [f"enrolment:{promotion.label()}/{who}"]


def _missing_loyalty_fields(customer: LoyaltyCustomer) -> list[str]:
    missing = []
    if not customer.identifier_value.strip():
        missing.append("identifier value")
    if not customer.source.strip():
        missing.append("registration source")
    return missing


def _cart_item(earn_id: str) -> str:
    return f"cart_earn:{earn_id}"


def _coupon_item(code: str) -> str:
    return f"coupon:{code}"


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


def _result(
    call: _Call,
    item: str,
    result_class: ResultClass,
    *,
    code: int | None = None,
    message: str = "",
    detail: dict[str, str] | None = None,
    next_step: str | None = None,
) -> ItemResult:
    return ItemResult(
        item=item,
        result_class=result_class,
        code=code,
        message=message,
        detail=detail or {},
        request_ids=list(call.request_ids),
        attempts=call.attempts,
        elapsed_ms=round(call.elapsed_ms, 1),
        next_step=next_step,
    )


def _from_failure(call: _Call, item: str, failure: _Failure) -> ItemResult:
    return _result(
        call,
        item,
        failure.result_class,
        code=failure.code,
        message=failure.message,
        next_step=failure.next_step,
    )


def _local_result(item: str, message: str, next_step: str) -> ItemResult:
    return ItemResult(
        item=item, result_class=ResultClass.REQUEST_ERROR, message=message, next_step=next_step
    )


def _not_in_answer() -> _Failure:
    return _Failure(
        ResultClass.REQUEST_ERROR,
        "Capillary's answer neither revoked nor refused this item",
        next_step="Replay the event: already-revoked answers make a repeat safe.",
    )


def _http_failure(endpoint: Endpoint, status: int) -> _Failure:
    if status == 403:
        return _Failure(
            ResultClass.REQUEST_ERROR,
            "HTTP 403: access refused",
            status,
            "Give the API user the access group the page names.",
        )
    setting = (
        "RETURN_HANDLER_CAPILLARY__LOYALTY_BASE_URL"
        if endpoint in (Endpoint.LOYALTY_REVOKE, Endpoint.LOYALTY_ENROL, Endpoint.COUPON_REVOKE)
        else "RETURN_HANDLER_CAPILLARY__GATEWAY_BASE_URL"
    )
    return _Failure(
        ResultClass.REQUEST_ERROR,
        f"HTTP {status} without a JSON answer",
        status,
        f"Check {setting}.",
    )


def _credentials_refused(config: CapillaryConfig) -> _Failure:
    names = (
        "USERNAME and PASSWORD"
        if config.auth_mode is AuthMode.BASIC
        else "OAUTH_KEY and OAUTH_SECRET"
    )
    return _Failure(
        ResultClass.REQUEST_ERROR,
        "Capillary refused our credentials (HTTP 401)",
        401,
        f"Check RETURN_HANDLER_CAPILLARY__{names} (or their *_FILE secrets).",
    )


__all__ = ["CapillaryClient", "Sleep"]
