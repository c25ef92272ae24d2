"""What one HTTP attempt came to, and what a call that ends without an answer reports.

The call loop (``call.py``) sends, retries and gives up; whether an answer (its status, its
body, its ``Retry-After``) or the lack of one is worth another attempt, may have been
carried out, or says our credentials or address are wrong is decided here, once for every
endpoint. Reading an answer item by item is each family's job (``answers.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import httpx

from service.capillary.answers import Call
from service.capillary.codes import OPEN_CART_CODE, Endpoint, classify, transient_codes
from service.capillary.config import AuthMode, CapillaryConfig
from service.capillary.results import Failure, ResultClass
from service.capillary.retry import (
    NOT_PROCESSED_STATUSES,
    RETRIABLE_STATUSES,
    RETRY_AFTER_STATUSES,
    parse_retry_after,
)
from service.clock import Clock
from service.errors import CapillaryAuthError, CapillaryTransientError

REQUEST_ID_HEADER = "X-CAP-REQUEST-ID"

PROBE_CODE = 756
"""The coupon page's answer to a revoke naming nothing: the probe's proof that we are heard."""


class Kind(StrEnum):
    """What an attempt came to, as the call loop acts on it."""

    ANSWER = "answer"
    """A readable answer: the family reads it item by item."""
    TRANSIENT = "transient"
    """Worth another attempt (a retriable status or code, no answer, no token this time),
    unless the call must not be made twice and this one may have been carried out."""
    UNAUTHORIZED = "unauthorized"
    """HTTP 401: one fresh token and one more attempt where the credentials can be renewed."""
    FATAL = "fatal"
    """Final for the call: an unreadable answer, or credentials the token endpoint refused."""


@dataclass(slots=True)
class Attempt:
    """One attempt, judged: its answer (if any), and whether to try again."""

    kind: Kind
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
        if self.kind is Kind.ANSWER:
            return "ok"
        if self.status is None:
            if self.timed_out:
                return "timeout"
            return "client_error" if self.kind is Kind.FATAL else "unreachable"
        if self.status >= 500 or self.kind is Kind.TRANSIENT:
            return "server_error"
        return "client_error"


def judge_answer(
    endpoint: Endpoint,
    response: httpx.Response,
    sent_headers: dict[str, str],
    *,
    clock: Clock,
    retry_after_max: float,
) -> Attempt:
    """An answer's status and body: to read, to retry (how soon), or final."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    attempt = Attempt(
        Kind.ANSWER,
        status=status,
        body=body,
        codes=_codes_in(body),
        request_id=response.headers.get(REQUEST_ID_HEADER),
        sent_headers=sent_headers,
    )
    if status == 401:
        attempt.kind = Kind.UNAUTHORIZED
    elif status in RETRIABLE_STATUSES:
        attempt.kind = Kind.TRANSIENT
        if status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), clock.now())
            if retry_after is not None:
                retry_after = min(retry_after, retry_after_max)
            attempt.retry_after = retry_after
        attempt.ambiguous = status not in NOT_PROCESSED_STATUSES
        message = "rate limited (HTTP 429)" if status == 429 else f"HTTP {status}"
        attempt.failure = Failure(ResultClass.TRANSIENT, message, status)
    elif not isinstance(body, dict):
        attempt.kind = Kind.FATAL
        attempt.failure = _http_failure(endpoint, status)
        # A success status says the request was carried out, whatever came back with it.
        attempt.ambiguous = 200 <= status < 300
    elif retry_codes := transient_codes(endpoint).intersection(attempt.codes):
        code = min(retry_codes)
        attempt.kind = Kind.TRANSIENT
        attempt.ambiguous = 500 in retry_codes
        attempt.failure = Failure(ResultClass.TRANSIENT, classify(endpoint, code).meaning, code)
    return attempt


def judge_no_token(
    exc: CapillaryAuthError | CapillaryTransientError | httpx.TransportError,
) -> Attempt:
    """No token to send with: refused (final for the call) or not got this time."""
    if isinstance(exc, CapillaryAuthError):
        failure = Failure(ResultClass.UNAVAILABLE, exc.message, exc.status, exc.next_step)
        return Attempt(Kind.FATAL, failure=failure)
    if isinstance(exc, CapillaryTransientError):
        failure = Failure(ResultClass.TRANSIENT, exc.message, exc.status)
    else:
        failure = Failure(ResultClass.TRANSIENT, f"token request failed: {type(exc).__name__}")
    return Attempt(Kind.TRANSIENT, failure=failure)


def judge_no_answer(exc: TimeoutError | httpx.TransportError, call_deadline: float) -> Attempt:
    """A request that got no answer: whether it may have reached Capillary decides whether
    a call that must not be made twice may be tried again."""
    if isinstance(exc, TimeoutError):
        message = f"no answer within the call deadline ({call_deadline} s)"
        return Attempt(
            Kind.TRANSIENT,
            ambiguous=True,
            timed_out=True,
            failure=Failure(ResultClass.TRANSIENT, message),
        )
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        # The request never left: safe to repeat even when not idempotent.
        message = f"could not connect: {type(exc).__name__}"
        return Attempt(Kind.TRANSIENT, failure=Failure(ResultClass.TRANSIENT, message))
    message = f"connection failed mid-call: {type(exc).__name__}"
    return Attempt(Kind.TRANSIENT, ambiguous=True, failure=Failure(ResultClass.TRANSIENT, message))


def credentials_refused(config: CapillaryConfig) -> Failure:
    """A 401 that a fresh token did not cure (or with nothing to refresh)."""
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


def may_have_been_made(status: int | None) -> Failure:
    """A call that must not be made twice got no clear answer: it is not tried again."""
    return Failure(
        ResultClass.UNAVAILABLE,
        "no answer after the request may have been processed; EARN has no idempotency key, "
        "so a repeat could issue twice",
        status,
        "Check in Capillary whether the earn was issued before repeating it.",
    )


def gave_up(failure: Failure, attempts: int) -> Failure:
    """The last transient failure once the retries are spent.

    An open cart is this item's own state; anything else is Capillary's, so the caller
    pauses rather than report it.
    """
    own = failure.code == OPEN_CART_CODE
    return Failure(
        ResultClass.TRANSIENT if own else ResultClass.UNAVAILABLE,
        f"{failure.message}; gave up after {attempts} attempts",
        failure.code,
        failure.next_step or CapillaryTransientError.next_step,
    )


def probe_verdict(call: Call) -> str | None:
    """``None`` if ``call`` got the coupon page's 756 refusal, else what it got instead."""
    where = Endpoint.COUPON_REVOKE.value
    if call.failure is not None:
        return f"{where}: {call.failure.message}"
    errors = call.body.get("errors") if isinstance(call.body, dict) else None
    codes = [e.get("code") for e in errors or [] if isinstance(e, dict)]
    if PROBE_CODE in codes:
        return None
    # A proxy's JSON 404, a 403 or a changed API would otherwise read as "up" and send
    # every paused event down the retry path.
    return (
        f"{where}: HTTP {call.status} with codes {codes} to a revoke naming nothing, "
        f"not the documented {PROBE_CODE}"
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
        if endpoint.on_loyalty_host
        else "RETURN_HANDLER_CAPILLARY__GATEWAY_BASE_URL"
    )
    return Failure(
        ResultClass.UNAVAILABLE,
        f"HTTP {status} without a JSON answer",
        status,
        f"Check {setting}.",
    )


__all__ = [
    "PROBE_CODE",
    "REQUEST_ID_HEADER",
    "Attempt",
    "Kind",
    "credentials_refused",
    "gave_up",
    "judge_answer",
    "judge_no_answer",
    "judge_no_token",
    "may_have_been_made",
    "probe_verdict",
]
