"""The one table from (endpoint, Capillary code) to what it means for us.

Every code the five pages document, in tables or only in examples, is here, keyed by
endpoint because the same number means different things on different pages (404 is
"not found" for a cart earn, a coupon and a promotion; 731 is "earn ID not valid" for
both cart and deactivate).

Deliberate decisions
--------------------
* "Invalid, not found or already revoked" answers are ``gone``: 8903 on the loyalty revoke
  ("either invalid or already revoked"), 731 and 404 on the cart revoke (that page has no
  already-revoked code, so a repeat meets these), 682 on the coupon revoke (the code of the
  "not found and already revoked" example) and 731 on deactivate (an invalid earnId). The
  client cannot tell "done before" from "never existed"; the caller can, because it knows
  whether an earlier attempt of the same event exists (a retry, a replay, a restart). The
  executor reads ``gone`` as ``already_revoked`` then and as ``not_found`` on a first attempt.
* Redeemed (cart 729, coupon 405) is ``redeemed``, never a success. Deactivate 729 is not on
  the deactivate page (it documents no code for a redeemed earn); it is the cart page's code
  for the same earn object in the same api_gateway family, and the sandbox answers it for a
  redeemed PAYMENT_VOUCHER earn. If production answers a redeemed voucher with 731, the
  outcome says ``not_found`` (or ``already_revoked`` on a repeat): never ``revoked``.
* REVOKE_ENROL refused while the customer still holds earns of the promotion (from other
  orders) is ``kept``: the revoke page says the issual must be revoked before the enrolment
  but its tables give no code for the refusal. 8896 ("Error occurred while issuing
  promotion to the customer"; the backend calls the enrolment the issual) is the code
  issue 23 reports for it, and the sandbox answers it; it is ``kept`` on REVOKE_ENROL only
  (:data:`ACTION_CODES`), ``not_found`` elsewhere, as the pages' one example titles it
  "Invalid customerId". 8904 is the sandbox's former code for the same refusal, still read
  the same way.
* Unknown customer, promotion or code (8015, 8874, 8896 except on REVOKE_ENROL, coupon
  404, deactivate 404) is ``not_found``. Unsupported types (8902, 730, 707, 108), inactive or
  expired (8892, 712), user groups (8899) are ``refused``: final, trying again cannot
  change them.
* Codes that mean we sent something malformed or configured something wrongly are
  ``request_error`` and name the setting to check.
* 737 (open cart) and body code 500 are ``transient``: the client retries them (737 with
  its own, longer budget); the class shows in a result only when retries are exhausted.
* A code not in the table is ``request_error`` with "unknown code" and is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from service.capillary.results import ResultClass


class Endpoint(StrEnum):
    """The endpoint families, each with its own code meanings, rate limit and host."""

    LOYALTY_REVOKE = "loyalty_revoke"
    LOYALTY_ENROL = "loyalty_enrol"
    CART_REVOKE = "cart_revoke"
    COUPON_REVOKE = "coupon_revoke"
    DEACTIVATE = "deactivate"
    OAUTH_TOKEN = "oauth_token"

    @property
    def on_loyalty_host(self) -> bool:
        """Whether it lives on the loyalty (``/v2``) host, not the api_gateway one."""
        return self in _LOYALTY_HOST


_LOYALTY_HOST = frozenset({Endpoint.LOYALTY_REVOKE, Endpoint.LOYALTY_ENROL, Endpoint.COUPON_REVOKE})


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What a code means and what to do about it."""

    result_class: ResultClass
    meaning: str
    next_step: str = ""


_G = ResultClass.GONE
_N = ResultClass.NOT_FOUND
_D = ResultClass.REDEEMED
_R = ResultClass.REFUSED
_E = ResultClass.REQUEST_ERROR
_T = ResultClass.TRANSIENT

_REPLAY_SAFE = "Nothing to do if an earlier attempt of this event revoked it."
_CHECK_POLICY = "Check the IDs the policy file and the event give for this promotion."
_ENROLMENT_KEPT = "Nothing to do: the enrolment stays while the customer holds other earns of it."

# Codes shared by both loyalty bulk pages (the enrol page documents 11013; the revoke call
# needs the same source field and answers it the same way).
_LOYALTY_COMMON: dict[int, CodeInfo] = {
    8892: CodeInfo(_R, "promotion is inactive"),
    8015: CodeInfo(_N, "customer not found for the given identifiers"),
    1101: CodeInfo(_E, "invalid programId", "Check the programId in the policy file."),
    8874: CodeInfo(_N, "promotion ID is invalid", _CHECK_POLICY),
    8899: CodeInfo(_R, "cannot enrol/issue to a user group"),
    8902: CodeInfo(
        _R,
        "bulk action not supported for this promotion type (direct promotions have no enrolment)",
        "Check the promotion's type in the policy file.",
    ),
    8881: CodeInfo(
        _E,
        "insufficient parameters: programId and promotionId or promoIdentifier are required",
        "Check the promotion IDs in the policy file; otherwise a client bug.",
    ),
    8896: CodeInfo(_N, "error while issuing the promotion to the customer (invalid customer)"),
    8901: CodeInfo(_E, "invalid entity type", "A client bug: file it with the request id."),
    11013: CodeInfo(
        _E,
        "identifierName, identifierValue, source can not be empty",
        "Check the customer's registration source (event or policy `source`).",
    ),
}

CODES: dict[tuple[Endpoint, int], CodeInfo] = {
    **{(Endpoint.LOYALTY_REVOKE, code): info for code, info in _LOYALTY_COMMON.items()},
    (Endpoint.LOYALTY_REVOKE, 8903): CodeInfo(
        _G, "earn IDs invalid or already revoked", _REPLAY_SAFE
    ),
    (Endpoint.LOYALTY_REVOKE, 8904): CodeInfo(
        ResultClass.KEPT,
        "enrolment kept: other earns of this promotion remain",
        _ENROLMENT_KEPT,
    ),
    **{(Endpoint.LOYALTY_ENROL, code): info for code, info in _LOYALTY_COMMON.items()},
    # Cart revoke.
    (Endpoint.CART_REVOKE, 400): CodeInfo(
        _E, "invalid request: required parameters missing or invalid", "A client bug or bad IDs."
    ),
    (Endpoint.CART_REVOKE, 404): CodeInfo(
        _G, "promotion, earn or customer not found", _REPLAY_SAFE
    ),
    (Endpoint.CART_REVOKE, 729): CodeInfo(_D, "earn already redeemed: cannot be revoked"),
    (Endpoint.CART_REVOKE, 730): CodeInfo(
        _R, "earn revoke not possible for POS and CODE promotions"
    ),
    (Endpoint.CART_REVOKE, 731): CodeInfo(_G, "earn ID not valid", _REPLAY_SAFE),
    (Endpoint.CART_REVOKE, 500): CodeInfo(_T, "Capillary internal error"),
    # Deactivate.
    (Endpoint.DEACTIVATE, 400): CodeInfo(
        _E, "GLOBAL.INVALID_INPUT: required parameters missing or invalid", "A client bug."
    ),
    (Endpoint.DEACTIVATE, 404): CodeInfo(
        _N, "GLOBAL.PROMOTION_NOT_FOUND: promotion does not exist or is not active", _CHECK_POLICY
    ),
    (Endpoint.DEACTIVATE, 707): CodeInfo(
        _R, "PROMO.UNSUPPORTED_PROMOTION_TYPE: cannot deactivate POS or CODE promotions"
    ),
    (Endpoint.DEACTIVATE, 729): CodeInfo(
        _D, "earn already redeemed: cannot be deactivated (sandbox's code; see above)"
    ),
    (Endpoint.DEACTIVATE, 731): CodeInfo(_G, "PROMO.EARN_ID_INVALID: earnId invalid", _REPLAY_SAFE),
    (Endpoint.DEACTIVATE, 736): CodeInfo(
        _E,
        "PROMO.UNSUPPORTED_PREFERENCE_CHANGE: wrong combination of earnId and promotion mode",
        "Check the promotion's mode in the policy file: earnId only for PAYMENT_VOUCHER.",
    ),
    (Endpoint.DEACTIVATE, 737): CodeInfo(
        _T,
        "PROMO.UNSUPPORTED_PREFERENCE_CHANGE_PENDING_CART: the customer has an open cart",
        "Retry later, when the customer's cart is closed.",
    ),
    (Endpoint.DEACTIVATE, 500): CodeInfo(_T, "GLOBAL.UNEXPECTED_ERROR: Capillary internal error"),
    # Coupon revoke (404 and 405 are body codes here, not HTTP statuses).
    (Endpoint.COUPON_REVOKE, 404): CodeInfo(_N, "coupon code not found"),
    (Endpoint.COUPON_REVOKE, 405): CodeInfo(_D, "coupon already redeemed: cannot be revoked"),
    (Endpoint.COUPON_REVOKE, 682): CodeInfo(_G, "coupon not found", _REPLAY_SAFE),
    (Endpoint.COUPON_REVOKE, 108): CodeInfo(
        _R,
        "generic coupon codes are not supported",
        # A lone code reaches Capillary without its customer only when the event names the
        # customer in no way the policy allows for coupons.
        "Declare the series in the policy (coupon_series: contains_generic_code: true) and "
        "have the event name the customer: a generic code is revoked only with its customer.",
    ),
    (Endpoint.COUPON_REVOKE, 712): CodeInfo(_R, "coupon series / campaign has expired"),
    (Endpoint.COUPON_REVOKE, 756): CodeInfo(
        _E, "coupon codes or customer info is mandatory", "A client bug: file it."
    ),
}

# Where one bulk action reads a code otherwise than the rest of its endpoint.
ACTION_CODES: dict[tuple[Endpoint, str, int], CodeInfo] = {
    # The issual (backend for enrolment) was not revoked because earns remain: whatever
    # the example's title, nothing was taken, so the enrolment stays.
    (Endpoint.LOYALTY_REVOKE, "REVOKE_ENROL", 8896): CodeInfo(
        ResultClass.KEPT,
        "enrolment kept: Capillary refused to revoke the issual while earns of this "
        "promotion remain",
        _ENROLMENT_KEPT,
    ),
}

UNKNOWN_NEXT_STEP = "Unknown Capillary code: add it to service/capillary/codes.py."


OPEN_CART_CODE = 737
"""The customer has an open cart: retried with its own, longer budget."""


def classify(endpoint: Endpoint, code: int, action: str | None = None) -> CodeInfo:
    """The table's entry (``action``'s own first), or a safe ``request_error`` for a code
    nobody documented."""
    info = ACTION_CODES.get((endpoint, action, code)) if action else None
    info = info or CODES.get((endpoint, code))
    if info is not None:
        return info
    return CodeInfo(_E, f"unknown code {code}", UNKNOWN_NEXT_STEP)


def is_known(endpoint: Endpoint, code: int, action: str | None = None) -> bool:
    """Whether the table documents this code for this endpoint (or this action of it)."""
    return (endpoint, code) in CODES or (endpoint, action or "", code) in ACTION_CODES


def _transient_codes(endpoint: Endpoint) -> frozenset[int]:
    return frozenset(
        code for (ep, code), info in CODES.items() if ep is endpoint and info.result_class is _T
    )


# Read from the table once: every answer asks, and the table does not change at run time.
_TRANSIENT_CODES = {endpoint: _transient_codes(endpoint) for endpoint in Endpoint}


def transient_codes(endpoint: Endpoint) -> frozenset[int]:
    """Body codes that the client retries for this endpoint."""
    return _TRANSIENT_CODES[endpoint]


__all__ = [
    "ACTION_CODES",
    "CODES",
    "OPEN_CART_CODE",
    "CodeInfo",
    "Endpoint",
    "classify",
    "is_known",
    "transient_codes",
]
