"""Coupons: revoke by codes (50 a call with a series id) or by customer (up to 100 coupons).

Several codes with the id of a series that contains a generic coupon revoke every coupon of
the series (the page), and no answer says whether a series contains one. So the request
depends on what the policy declares of the series:

* it contains a generic code: each code in its own request that names the customer (the
  page: "Generic coupon codes are not supported for single revokes ... A user ID must be
  provided when dealing with generic coupon series");
* it is declared free of them: up to 50 codes with the series id, whoever holds them;
* nothing is known (the default): one code a request, with the customer named where known
  (one code is never revoked in bulk, and a lone generic code is refused, 108; the page
  does not say that naming the customer bounds a bulk revoke, so that is not relied on).

Whatever Capillary revoked beyond the codes sent comes back as results of their own, marked
as not asked for, and is counted (``return_handler_coupons_revoked_beyond_request_total``):
each is a coupon some customer lost, which no API gives back.

:meth:`CouponCalls.grouped_codes` keeps the two apart (one result per code asked, then what
nobody asked), so that codes of several events can share a call (``coalesce.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import structlog

from service.capillary.answers import (
    NOT_IN_ANSWER,
    Call,
    failed_items,
    from_errors,
    item_result,
    local_refusal,
)
from service.capillary.call import CallLoop
from service.capillary.codes import Endpoint
from service.capillary.config import CouponCodeCase
from service.capillary.limits import coupon_code_batches
from service.capillary.models import (
    ApiError,
    Attribution,
    CouponCustomer,
    CouponRevokeRequest,
    CouponRevokeResponse,
)
from service.capillary.requests import CouponCodesRevoke, CustomerCouponsRevoke
from service.capillary.results import Failure, ItemResult, ResultClass
from service.observe.metrics import Metrics

_ENDPOINT = Endpoint.COUPON_REVOKE
_log = structlog.get_logger("service.capillary.client")


class CodeResults(NamedTuple):
    """What calls revoking codes answered, code by code."""

    asked: list[ItemResult]
    """One result per code sent, in the order sent."""
    unasked: list[ItemResult]
    """What Capillary revoked although no code sent named it (``asked=False``)."""


class CouponCalls:
    """The coupon revoke endpoint, one result per code."""

    def __init__(
        self, loop: CallLoop, code_case: CouponCodeCase, metrics: Metrics | None = None
    ) -> None:
        self._loop = loop
        self._params = {"couponCodeCase": code_case.value}
        self._beyond = (metrics or Metrics()).coupons_revoked_beyond_request

    async def revoke_by_codes(self, request: CouponCodesRevoke) -> list[ItemResult]:
        """Revoke unredeemed coupons by code; one result per distinct code.

        For a ``generic`` series each code goes alone, with ``customer`` and without the
        series id; without a customer no call is made. A series declared free of generic
        codes (``no_generic_code``): at most 50 codes a call with the series id. Any other
        series, or none: one code a call. ``customer`` goes with every call when given.
        """
        codes, series_id, attribution = request.codes, request.series_id, request.attribution
        generic, customer = request.generic, request.customer
        sendable = list(dict.fromkeys(c for c in codes if c.strip()))
        results: list[ItemResult] = []
        if generic and customer is None:
            results += [
                local_refusal(
                    _item(code),
                    "a code of a generic coupon series can be revoked only with its customer "
                    "named; no call was made",
                    "The event must name the customer by id, mobile, email or external id.",
                )
                for code in sendable
            ]
        elif generic:
            for code in sendable:
                body = CouponRevokeRequest(coupon_codes=[code], customer=customer)
                results += self._read(await self._send(body, attribution), [code])
        else:
            together = codes_share_a_call(generic=False, no_generic_code=request.no_generic_code)
            for batch in coupon_code_batches(sendable, series_id if together else None):
                call = await self._send_codes(batch, series_id, attribution, customer=customer)
                results += self._read(call, batch)
        return results + empty_code_refusals(codes)

    async def grouped_codes(
        self,
        codes: Sequence[str],
        series_id: int,
        attribution: Attribution | None = None,
        *,
        customer: CouponCustomer | None = None,
        admitted: bool = False,
    ) -> CodeResults:
        """Revoke codes of one series, at most 50 a call, with ``customer`` when given.

        Without a customer, only for a series declared free of generic codes. ``asked``
        has one result per distinct code, in order, exactly as :meth:`revoke_by_codes`
        answers it; ``unasked`` what the calls took beyond them. ``admitted``: the first
        request's first rate permit is taken.
        """
        asked: list[ItemResult] = []
        unasked: list[ItemResult] = []
        for batch in coupon_code_batches(codes, series_id):
            call = await self._send_codes(
                batch, series_id, attribution, customer=customer, admitted=admitted
            )
            admitted = False  # the permit was for the first request only
            answer = self._read_answer(call, batch)
            asked += answer.asked
            unasked += answer.unasked
        return CodeResults(asked, unasked)

    async def revoke_by_customer(self, request: CustomerCouponsRevoke) -> list[ItemResult]:
        """Revoke *all* unredeemed coupons of a customer (optionally of one series).

        Capillary revokes at most 100 and fails beyond that; it also takes coupons other
        orders earned. Use only when the caller asks for it explicitly.
        """
        customer = request.customer
        body = CouponRevokeRequest(coupon_series_id=request.series_id, customer=customer)
        call = await self._send(body, request.attribution)
        answer = _read_answer(call, None, f"coupons_of_customer:{customer.kind()}")
        return answer.asked + answer.unasked

    async def _send_codes(
        self,
        codes: list[str],
        series_id: int | None,
        attribution: Attribution | None,
        *,
        customer: CouponCustomer | None = None,
        admitted: bool = False,
    ) -> Call:
        request = CouponRevokeRequest(
            coupon_series_id=series_id, coupon_codes=codes, customer=customer
        )
        return await self._send(request, attribution, admitted=admitted)

    def _read(self, call: Call, asked: list[str]) -> list[ItemResult]:
        answer = self._read_answer(call, asked)
        return answer.asked + answer.unasked

    def _read_answer(self, call: Call, asked: list[str]) -> CodeResults:
        """The codes' results; what went beyond them is counted once, here, per call (the
        coalescer hands it to every caller of the call)."""
        answer = _read_answer(call, asked, "")
        self._beyond.inc(len(answer.unasked))
        return answer

    async def _send(
        self,
        request: CouponRevokeRequest,
        attribution: Attribution | None,
        *,
        admitted: bool = False,
    ) -> Call:
        return await self._loop.send(
            _ENDPOINT,
            json=request.wire(),
            params=self._params,
            attribution=attribution,
            admitted=admitted,
        )


def codes_share_a_call(*, generic: bool, no_generic_code: bool) -> bool:
    """Whether several codes of one series may go in one call with its series id.

    Only for a series the policy declares free of generic codes. The coupon page: several
    codes sent with the id of a series that holds a generic code revoke every coupon of the
    series, and it nowhere says that naming a customer bounds that; so codes of any other
    series go one a call, the customer named where known.
    """
    return no_generic_code and not generic


def empty_code_refusals(codes: Sequence[str]) -> list[ItemResult]:
    """One local refusal per empty code given (no call carries an empty code)."""
    return [
        local_refusal(
            "coupon:", "empty coupon code; no call was made", "The event gave an empty code."
        )
        for c in codes
        if not c.strip()
    ]


def _read_answer(call: Call, asked: list[str] | None, summary_item: str) -> CodeResults:
    """Results for the codes asked (``None``: by customer, everything revoked was asked)."""
    whole = [_item(c) for c in asked] if asked is not None else [summary_item]
    parsed = call.read(_ENDPOINT, CouponRevokeResponse)
    if isinstance(parsed, Failure):
        return CodeResults(failed_items(call, whole, parsed), [])
    entity = parsed.entity
    if parsed.errors and (entity is None or parsed.success is False):
        return CodeResults(
            [from_errors(_ENDPOINT, call, item, parsed.errors) for item in whole], []
        )
    revoked = {c.coupon_code.casefold(): c for c in entity.revoked_coupons} if entity else {}
    failed: dict[str, ApiError] = {}
    for group in entity.failed_to_revoke if entity else []:
        for code in group.coupon_codes:
            failed[code.casefold()] = ApiError(code=group.error_code, message=group.error_message)

    def revoked_result(code: str, *, was_asked: bool) -> ItemResult:
        coupon = revoked[code.casefold()]
        detail = {"coupon_id": str(coupon.coupon_id)} if coupon.coupon_id else {}
        if was_asked:
            return item_result(
                call, _item(code), ResultClass.DONE, message="revoked", detail=detail
            )
        return item_result(
            call,
            _item(coupon.coupon_code),
            ResultClass.DONE,
            message="revoked by Capillary although not asked for: several codes with the id "
            "of a series that holds a generic code take every coupon of the series (of the "
            "customer named, when one is)",
            detail={**detail, "not_asked_for": "revoked beyond the codes sent"},
            next_step="Declare the series in the policy (coupon_series: contains_generic_code: "
            "true) so that its codes go one by one; re-issue what the customer should keep.",
            asked=False,
        )

    if asked is None:
        results = [revoked_result(c.coupon_code, was_asked=True) for c in revoked.values()]
        results += [
            from_errors(_ENDPOINT, call, _item(code), [err]) for code, err in failed.items()
        ]
        if not results:
            results.append(
                item_result(
                    call,
                    summary_item,
                    ResultClass.ALREADY_DONE,
                    message="no unredeemed coupons to revoke: already revoked or none issued",
                )
            )
        return CodeResults(results, [])

    asked_keys = {c.casefold() for c in asked}
    results = []
    for code in asked:
        key = code.casefold()
        if key in revoked:
            results.append(revoked_result(code, was_asked=True))
        elif key in failed:
            results.append(from_errors(_ENDPOINT, call, _item(code), [failed[key]]))
        else:
            results.extend(failed_items(call, [_item(code)], NOT_IN_ANSWER))
    unexpected = [c.coupon_code for key, c in revoked.items() if key not in asked_keys]
    if unexpected:
        _log.warning(
            "capillary_unexpected_revocations",
            endpoint=_ENDPOINT.value,
            count=len(unexpected),
            request_ids=call.request_ids,
        )
    return CodeResults(results, [revoked_result(code, was_asked=False) for code in unexpected])


def _item(code: str) -> str:
    return f"coupon:{code}"


__all__ = ["CodeResults", "CouponCalls", "empty_code_refusals"]
