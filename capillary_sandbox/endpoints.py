"""What each of the five Capillary endpoints does to the sandbox state, and what it answers.

Every function takes the state and the request as raw JSON (whatever ``json.loads`` gave)
and returns a :class:`Reply`. The request is read field by field instead of through a strict
model so that a malformed request gets the documented error code, not a validation dump.
Nothing here awaits, so one request never sees another one half-done.

Choices where the reference pages are silent (the client must not rely on more than the
pages say; these make the sandbox deterministic and are tested in tests/unit/sandbox/):

Loyalty bulk (``revokeEnrolAndEarn``, ``enrolAndEarn``)
  * HTTP 200 for every business error; the errors ride in ``response[]``. HTTP 400 with
    ``{"response": [], "errors": [{"status": false, "code": 400, ...}], "totalCount": 0,
    "failureCount": 0}`` only for a request that cannot be read: not a JSON object, a
    ``bulkAction`` the endpoint does not serve, ``customers`` not a list, more than 100
    customers (the page gives no code for that), or one customer listed twice.
  * One customer twice in one call is refused whole (HTTP 400 as above, nothing done):
    results are matched to customers by position, and two entries for one customer would
    make that ambiguous. "Twice" means two entries that find the same customer (say an
    email in two letter cases), or the same ``identifierValue`` twice even if it finds no
    one. Entries without a readable ``identifierValue`` do not count (they answer 11013).
  * Items answer in request order, one per customer entry; a successful item carries
    ``entityId`` (the customer's numeric id), a failed one only ``errors``.
  * Call-level errors (8901 type, 8881, 1101, 8874, 8892, 8902, 11013 for a bad
    ``identifierName``) are repeated once per customer, so matching items by position
    always works; an empty ``customers`` list gets one error item.
  * ``totalCount`` is the number of items (as the examples show, not the table's "successful
    responses"); ``failureCount`` the failed ones.
  * ``identifierValue`` must be a non-blank JSON string; a number (or anything else) is
    11013, as the page says "invalid or empty". It is taken as sent, without trimming:
    ``id`` is the decimal id exactly (no sign, spaces or leading zeros); ``mobile`` only in
    the pages' form, digits with country code, no '+', no spaces ("919986000586": the seed
    stores mobiles only in that form), so any other form of the same number is 8015;
    ``email`` is compared case-insensitively.
  * ``source`` must be one of the pages' list (FACEBOOK, WEB_ENGAGE, INSTORE, MARTJACK,
    TMALL, TAOBAO, JD, ECOMMERCE, WEBSITE, LINE, ALL), compared case-insensitively (the
    examples send "instore"); anything else, empty or missing is 11013. It must also match
    the customer's registration source or be ``ALL``; otherwise the customer is not found
    (8015). 11013 is checked before the customer is looked up.
  * ENROL of an already enrolled customer answers the existing ``issualId`` (no new one).
  * EARN on an enrol-and-issue promotion without an active enrolment answers 8896 (the
    page's "Error occurred while issuing promotion to the customer").
  * REVOKE_EARN without ``earnIds``, or with an empty list (the same request: "if the
    earnIds parameter is not passed, all the earned IDs ... will be revoked"), revokes every
    active earn of that customer in that promotion.
  * REVOKE_EARN with ids is partial: the ids that are active earns of that customer in that
    promotion are revoked and listed in ``revokedEarnIds`` (request order, each once); the
    others (unknown, foreign, already revoked, repeated) are simply not listed. Only when
    nothing is revoked does the item answer 8903 (also for ``earnIds`` not a list).
  * REVOKE_ENROL with earns still active answers 8896 "Error occurred while issuing
    promotion to the customer" (the page's tables give no code for this refusal; 8896 is
    the code its examples show outside the tables, under the title "Invalid customerId",
    and the one the API README's notes give for it; distinct from 8903 so a client does
    not take it for "already revoked"); a customer not (or no longer) enrolled answers 8903
    "Issual passed is either invalid or already revoked". An unknown customer answers 8015,
    as the table says.
  * The result echoes ``promotionId`` when the request named it, else ``promoIdentifier``.

Cart ``revokeEarn``
  * Request-level errors: 400 (missing/invalid fields, ``{}`` or a body that is not a JSON
    object included: the page's "Check required parameters"; ``customerId`` not a JSON
    number, more than 1000 earn ids in total) and 404 (unknown customer), with
    ``data: null``. A refused request changes nothing.
  * Per earn: unknown, not this customer's or promotion's, or already revoked (including a
    repeat of an earlier successful revoke) all answer 731 "Earn ID passed is not valid":
    the sandbox, like the pages, has no separate "already revoked" code. Redeemed: 729.
    Per promotion: unknown or inactive 404, POS/CODE 730.
  * ``data.revokedDetails[]`` has one entry per promotion sent, with ``status`` SUCCESS,
    PARTIAL_SUCCESS or FAILED. ``errors[]`` entries carry only ``code`` and ``message``, as
    the page's table: one entry per distinct code, naming no earn and no promotion (what was
    revoked is what ``revokedEarnIds`` lists). HTTP 200 when at least one earn was revoked
    (or nothing failed); when nothing was revoked, 404 if every error is a 404, else 400.

Coupon ``revoke``
  * Top-level refusals answer HTTP 400 with ``success: false``: 756 (neither codes nor
    customer), 108 (a single code of a generic series without a ``customer``), 712 (expired
    series), and code 400 for: more than 50 codes, more than one code without
    ``couponSeriesId``, a ``couponSeriesId`` that is not a JSON integer (the table's type;
    every example sends a number), an empty ``couponCodes`` list beside a ``customer`` (the
    pages do not say whether it means "by customer"; refused rather than read as the
    broadest request), more than 100 unredeemed coupons of a customer (undocumented), a bad
    ``couponCodeCase``; code 404 for an unknown series or customer.
  * A generic code may be issued to several customers, one coupon each (see ``state.py``).
    A request may carry both ``couponCodes`` and ``customer``; with a customer, each code
    means that customer's coupon of that code ("a user ID must be provided when dealing with
    generic coupon series"): a single generic code with a customer revokes only that
    customer's coupon.
  * ``failedToRevoke``: 404 for codes that exist (in the given series) but are not issued to
    the given ``customer`` (checked first); 682 for codes not found, not in the given series,
    already revoked or repeated in the request; 405 for redeemed.
  * The documented hazard: more than one code with a ``couponSeriesId`` whose series contains
    a generic coupon revokes every unredeemed coupon of that series, of every customer,
    whether or not a ``customer`` is named: the page says all coupons of the series go and
    nowhere that naming a user (which it asks for, "to ensure proper validation") bounds it.
    The answer lists every coupon revoked (those of the codes sent first); ``failedToRevoke``
    holds only codes sent that none of it revoked: 405 if redeemed, else 682 (not in the
    series, already revoked, repeated). A code of someone else is revoked with the series,
    so never 404.
  * By customer: the customer's unredeemed coupons (of the series, when given; else skipping
    expired series) are revoked; redeemed ones are neither revoked nor reported.
  * ``couponCodeCase`` (default UPPER) applies to every code the answer shows, including the
    echoed failed codes. Codes are matched case-insensitively.

``deactivate``
  * HTTP 200 ``{"data": true, "errors": []}`` on success; errors answer ``{"data": false,
    "errors": [{"code", "message"}]}`` with HTTP 400 (400, 707, 729, 731, 736, 737) or 404.
  * The page's request has an empty body (``--data ''``): any body, ``{}`` included, is
    refused 400 "GLOBAL.INVALID_INPUT" before anything else (the page says nothing of a
    body; refusing it is the strictest reading).
  * Checks in order: params (400; an unknown customer is 400 too), promotion unknown or
    inactive (404), POS/CODE (707), mode vs ``earnId`` (736: PAYMENT_VOUCHER needs one, other
    modes take none; ``earnId=null`` counts as sent), earn unknown, not this customer's or
    promotion's, or already revoked (731), earn redeemed (729), open cart (737).
  * A redeemed earn answers HTTP 400 ``{"data": false, "errors": [{"code": 729, "message":
    "Promotion earn instance already redeemed."}]}``. The deactivate page documents no code
    for a redeemed earn, and its 731 means an invalid earnId; 729 is the code the sibling
    cart ``revokeEarn`` page of the same api_gateway promotions family gives for exactly
    this state of the same earn object. Answering 731 would let a client read a redeemed
    voucher as already revoked.
  * Without ``earnId`` the customer's participation ends and every unredeemed earn of theirs
    in that promotion is revoked; repeating it answers success again. With ``earnId`` that
    one earn is revoked; repeating it answers 731.

Authentication (``server.py``)
  * Basic, or an OAuth token in the one header named by ``SandboxConfig.oauth_header_name``
    (default ``X-CAP-API-OAUTH-TOKEN``). The pages name the header two ways; the client makes
    it a setting, so the sandbox accepts only the configured name: a token under the other
    name (``CAP-API-ACCESS-TOKEN`` by default) answers 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from capillary_sandbox.state import (
    REQUEST_SOURCES,
    UNREVOCABLE_CART_MODES,
    Coupon,
    CouponSeries,
    Customer,
    LoyaltyEarn,
    LoyaltyPromotion,
    SandboxState,
)

MAX_LOYALTY_CUSTOMERS = 100
MAX_CART_EARN_IDS = 1000
MAX_COUPON_CODES = 50
MAX_COUPONS_BY_CUSTOMER = 100

REVOKE_ACTIONS = frozenset({"REVOKE_EARN", "REVOKE_ENROL"})
ENROL_ACTIONS = frozenset({"ENROL", "EARN"})


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


def _as_int(value: object) -> int | None:
    """Loyalty ids come as numbers or numeric strings (the examples send strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# --------------------------------------------------------------------------- loyalty bulk


class _ItemError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _loyalty_error_item(code: int, message: str) -> dict[str, Any]:
    return {"errors": [{"status": False, "message": message, "code": code}], "warnings": []}


def _loyalty_bad_request(message: str) -> Reply:
    return Reply(
        400,
        {
            "response": [],
            "errors": [{"status": False, "code": 400, "message": message}],
            "totalCount": 0,
            "failureCount": 0,
        },
    )


def _loyalty_reply(items: list[dict[str, Any]]) -> Reply:
    failures = sum(1 for item in items if "result" not in item)
    return Reply(200, {"response": items, "totalCount": len(items), "failureCount": failures})


def _resolve_promotion(
    state: SandboxState, details: object
) -> tuple[LoyaltyPromotion, dict[str, Any]]:
    if not isinstance(details, dict):
        raise _ItemError(8881, _INSUFFICIENT)
    raw_program = details.get("programId")
    raw_promotion = details.get("promotionId")
    raw_identifier = details.get("promoIdentifier")
    if raw_program in (None, "") or (raw_promotion in (None, "") and not raw_identifier):
        raise _ItemError(8881, _INSUFFICIENT)
    program_id = _as_int(raw_program)
    if program_id is None or program_id not in state.programs:
        raise _ItemError(1101, "invalid programId passed")
    promotion: LoyaltyPromotion | None
    echo: dict[str, Any]
    if raw_promotion not in (None, ""):
        promotion_id = _as_int(raw_promotion)
        promotion = state.promotions_by_id.get(promotion_id) if promotion_id else None
        echo = {"promotionId": promotion_id}
        if promotion and raw_identifier and promotion.promo_identifier != raw_identifier:
            promotion = None
    else:
        promotion = state.promotions_by_identifier.get(str(raw_identifier))
        echo = {"promoIdentifier": raw_identifier}
    if promotion is None or promotion.program_id != program_id:
        raise _ItemError(8874, "promotion id passed is invalid")
    if not promotion.active:
        raise _ItemError(8892, "promotion is inactive")
    return promotion, {**echo, "programId": program_id}


_INSUFFICIENT = (
    "Insufficient parameters passed; program ID and one of the promotion ID/identifiers "
    "are required"
)
_EMPTY_IDENTIFIER = "identifierName, identifierValue, source can not be empty"
_ISSUING_ERROR = "Error occurred while issuing promotion to the customer"
_NOT_FOUND = "Customer not found for the given identifiers"


def _find_customer(state: SandboxState, name: str, value: str) -> Customer | None:
    # Values are taken as sent (no trimming). An id is the decimal id exactly; a mobile is
    # stored only in the pages' form (digits with country code), so "+91 99860 00586" or
    # "9986000586" find no one; emails compare case-insensitively.
    if name == "id":
        if not (value.isascii() and value.isdigit()) or str(int(value)) != value:
            return None
        return state.customers_by_id.get(int(value))
    if name == "mobile":
        return state.customers_by_mobile.get(value)
    return state.customers_by_email.get(value.lower())


def _identifier_value(entry: object) -> str | None:
    """The entry's ``identifierValue`` if it is a non-blank JSON string, else None."""
    if not isinstance(entry, dict):
        return None
    value = entry.get("identifierValue")
    if not isinstance(value, str) or not value.strip():
        return None
    return value


def _repeated_customer(
    state: SandboxState, identifier_name: object, customers: list[Any]
) -> str | None:
    """The identifierValue of the first entry naming a customer an earlier entry named."""
    seen: set[tuple[str, object]] = set()
    for entry in customers:
        value = _identifier_value(entry)
        if value is None:
            continue  # answered 11013 on its own
        customer = (
            _find_customer(state, identifier_name, value)
            if identifier_name in ("id", "mobile", "email")
            else None
        )
        key: tuple[str, object]
        if customer is not None:
            key = ("customer", customer.id)
        else:
            key = ("value", value.lower() if identifier_name == "email" else value)
        if key in seen:
            return value
        seen.add(key)
    return None


def loyalty_bulk(state: SandboxState, body: object, *, revoke: bool) -> Reply:
    """``POST /v2/promotion/bulk/revokeEnrolAndEarn`` (revoke) or ``.../enrolAndEarn``."""
    if not isinstance(body, dict):
        return _loyalty_bad_request("request body must be a JSON object")
    allowed = REVOKE_ACTIONS if revoke else ENROL_ACTIONS
    action = body.get("bulkAction")
    customers = body.get("customers")
    if not isinstance(customers, list):
        return _loyalty_bad_request("customers must be a list")
    if len(customers) > MAX_LOYALTY_CUSTOMERS:
        return _loyalty_bad_request(
            f"a maximum of {MAX_LOYALTY_CUSTOMERS} customers can be passed in one call"
        )
    repeated = _repeated_customer(state, body.get("identifierName"), customers)
    if repeated is not None:
        return _loyalty_bad_request(
            f"customer {repeated!r} is listed more than once; list each customer once per call"
        )
    positions = max(len(customers), 1)
    try:
        if body.get("type") != "CUSTOMER":
            raise _ItemError(8901, "invalid entity type passed")
        if action not in allowed:
            return _loyalty_bad_request(f"bulkAction must be one of {sorted(allowed)}")
        promotion, echo = _resolve_promotion(state, body.get("promotionDetails"))
        if action in ("ENROL", "REVOKE_ENROL") and not promotion.enrol_and_issue:
            prefix = "revoke " if revoke else ""
            raise _ItemError(
                8902, f"{prefix}bulk action passed not supported for loyalty/generic promotion type"
            )
        identifier_name = body.get("identifierName")
        if identifier_name not in ("id", "mobile", "email"):
            raise _ItemError(11013, _EMPTY_IDENTIFIER)
    except _ItemError as error:
        return _loyalty_reply([_loyalty_error_item(error.code, error.message)] * positions)

    items: list[dict[str, Any]] = []
    for entry in customers:
        try:
            customer = _loyalty_customer(state, identifier_name, entry)
            result = {"entityType": "CUSTOMER", "entityId": customer.id, **echo}
            if action == "ENROL":
                result.update(_enrol(state, promotion, customer))
            elif action == "EARN":
                result.update(_earn(state, promotion, customer))
            elif action == "REVOKE_EARN":
                result.update(_revoke_earn(state, promotion, customer, entry))
            else:
                result.update(_revoke_enrol(state, promotion, customer))
            items.append({"result": result, "errors": [], "warnings": []})
        except _ItemError as error:
            items.append(_loyalty_error_item(error.code, error.message))
    return _loyalty_reply(items)


def _loyalty_customer(state: SandboxState, identifier_name: str, entry: object) -> Customer:
    value = _identifier_value(entry)  # a JSON number is refused, not converted
    if value is None or not isinstance(entry, dict):
        raise _ItemError(11013, _EMPTY_IDENTIFIER)
    source = entry.get("source")
    if not isinstance(source, str) or source.upper() not in REQUEST_SOURCES:
        raise _ItemError(11013, _EMPTY_IDENTIFIER)
    customer = _find_customer(state, identifier_name, value)
    if customer is None:
        raise _ItemError(8015, _NOT_FOUND)
    if source.upper() not in ("ALL", customer.source.upper()):
        raise _ItemError(8015, _NOT_FOUND)
    return customer


def _enrol(state: SandboxState, promotion: LoyaltyPromotion, customer: Customer) -> dict[str, Any]:
    enrolment = state.enrolments.get((promotion.id, customer.id))
    if enrolment is None:
        enrolment = state.add_enrolment(promotion.id, customer.id)
    return {"issualId": str(enrolment.issual_id)}


def _earn(state: SandboxState, promotion: LoyaltyPromotion, customer: Customer) -> dict[str, Any]:
    if promotion.enrol_and_issue:
        enrolment = state.enrolments.get((promotion.id, customer.id))
        if enrolment is None:
            raise _ItemError(8896, _ISSUING_ERROR)
        issual_id = enrolment.issual_id
    else:
        issual_id = state.new_issual_id()  # the documented "dummy issualId"
    earn = state.add_loyalty_earn(promotion.id, customer.id, issual_id)
    return {"issualId": str(issual_id), "earnedId": str(earn.earn_id)}


_EARN_IDS_INVALID = "Earn IDs passed are either invalid or already revoked"


def _revoke_earn(
    state: SandboxState, promotion: LoyaltyPromotion, customer: Customer, entry: dict[str, Any]
) -> dict[str, Any]:
    active = [
        e
        for e in state.loyalty_earns_by_owner.get((promotion.id, customer.id), [])
        if not e.revoked
    ]
    raw_ids = entry.get("earnIds")
    targets: list[LoyaltyEarn]
    if raw_ids is None or raw_ids == []:
        # "If the earnIds parameter is not passed, all the earned IDs ... will be revoked":
        # an empty list is the same request.
        targets = active
    else:
        if not isinstance(raw_ids, list):
            raise _ItemError(8903, _EARN_IDS_INVALID)
        # Partial: the ids that are active earns of this customer in this promotion are
        # revoked (each once, in request order); the others are simply not listed.
        by_id = {e.earn_id: e for e in active}
        targets = []
        for raw in raw_ids:
            earn_id = _as_int(raw)
            earn = by_id.pop(earn_id, None) if earn_id is not None else None
            if earn is not None:
                targets.append(earn)
    if not targets:
        raise _ItemError(8903, _EARN_IDS_INVALID)
    for earn in targets:
        state.revoke_loyalty_earn(earn)
    return {"revokedEarnIds": [e.earn_id for e in targets]}


def _revoke_enrol(
    state: SandboxState, promotion: LoyaltyPromotion, customer: Customer
) -> dict[str, Any]:
    enrolment = state.enrolments.get((promotion.id, customer.id))
    if enrolment is None:
        raise _ItemError(8903, "Issual passed is either invalid or already revoked")
    earns = state.loyalty_earns_by_owner.get((promotion.id, customer.id), [])
    if any(not e.revoked for e in earns):
        raise _ItemError(8896, _ISSUING_ERROR)
    state.end_enrolment(enrolment)
    return {"issualId": str(enrolment.issual_id)}


# --------------------------------------------------------------------------- cart revokeEarn


def _cart_fail(status: int, code: int, message: str) -> Reply:
    return Reply(status, {"data": None, "errors": [{"code": code, "message": message}]})


_CART_INVALID = "Invalid request. Check required parameters."


def cart_revoke_earn(state: SandboxState, body: object) -> Reply:
    """``POST /api_gateway/v1/promotions/revokeEarn``."""
    if not isinstance(body, dict):
        return _cart_fail(400, 400, _CART_INVALID + " The body must be a JSON object.")
    customer_id = body.get("customerId")
    details = body.get("earnRevokeDetails")
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        return _cart_fail(400, 400, _CART_INVALID + " customerId must be a number.")
    if not isinstance(details, list) or not details:
        return _cart_fail(400, 400, _CART_INVALID + " earnRevokeDetails is required.")
    total = 0
    for detail in details:
        ok = (
            isinstance(detail, dict)
            and isinstance(detail.get("promotionId"), str)
            and detail["promotionId"]
            and isinstance(detail.get("earnIds"), list)
            and detail["earnIds"]
            and all(isinstance(i, str) and i for i in detail["earnIds"])
        )
        if not ok:
            return _cart_fail(
                400, 400, _CART_INVALID + " Each entry needs promotionId and earnIds (strings)."
            )
        total += len(detail["earnIds"])
    if total > MAX_CART_EARN_IDS:
        return _cart_fail(
            400, 400, f"Maximum earnIds supported in a single request: {MAX_CART_EARN_IDS}"
        )
    if customer_id not in state.customers_by_id:
        return _cart_fail(404, 404, "Customer not found.")

    revoked_details: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    revoked_any = False
    for detail in details:
        promotion_id: str = detail["promotionId"]
        earn_ids: list[str] = detail["earnIds"]
        promotion = state.cart_promotions.get(promotion_id)
        failures: dict[int, list[str]] = {}
        revoked: list[str] = []
        if promotion is None or not promotion.active:
            failures[404] = list(earn_ids)
        elif promotion.mode in UNREVOCABLE_CART_MODES:
            failures[730] = list(earn_ids)
        else:
            for earn_id in earn_ids:
                earn = state.cart_earns.get(earn_id)
                if (
                    earn is None
                    or earn.revoked
                    or earn.promotion_id != promotion_id
                    or earn.customer_id != customer_id
                ):
                    failures.setdefault(731, []).append(earn_id)
                elif earn.redeemed:
                    failures.setdefault(729, []).append(earn_id)
                else:
                    state.revoke_cart_earn(earn)
                    revoked.append(earn_id)
        revoked_any = revoked_any or bool(revoked)
        status = "FAILED" if not revoked else ("PARTIAL_SUCCESS" if failures else "SUCCESS")
        revoked_details.append(
            {"promotionId": promotion_id, "revokedEarnIds": revoked, "status": status}
        )
        # The page's errors carry only code and message: they name no earn or promotion
        # (what was revoked is what revokedEarnIds lists). One entry per distinct code.
        for code in failures:
            if all(e["code"] != code for e in errors):
                errors.append({"code": code, "message": _CART_MESSAGES[code]})
    if revoked_any or not errors:
        http = 200
    else:
        http = 404 if all(e["code"] == 404 for e in errors) else 400
    body_out = {
        "data": {"customerId": customer_id, "revokedDetails": revoked_details},
        "errors": errors,
    }
    return Reply(http, body_out)


_CART_MESSAGES = {
    404: "Promotion, Earn, or Customer not found.",
    729: "Promotion earn instance already redeemed.",
    730: "Earn revoke not possible for POS and CODE promotion.",
    731: "Earn ID passed is not valid.",
}


# --------------------------------------------------------------------------- coupon revoke

_CASES = ("LOWER", "UPPER", "AS_IT_IS")


def _coupon_fail(code: int, message: str) -> Reply:
    return Reply(
        400,
        {
            "warnings": [],
            "errors": [{"status": False, "code": code, "message": message}],
            "success": False,
        },
    )


def _apply_case(code: str, case: str) -> str:
    if case == "UPPER":
        return code.upper()
    if case == "LOWER":
        return code.lower()
    return code


def coupon_revoke(state: SandboxState, body: object, code_case: str | None) -> Reply:
    """``POST /v2/coupon/revoke?couponCodeCase=``."""
    case = code_case or "UPPER"
    if case not in _CASES:
        return _coupon_fail(400, f"couponCodeCase must be one of {', '.join(_CASES)}")
    if not isinstance(body, dict):
        return _coupon_fail(400, "request body must be a JSON object")
    codes = body.get("couponCodes")
    customer_spec = body.get("customer")
    if codes is not None and (
        not isinstance(codes, list) or not all(isinstance(c, str) and c for c in codes)
    ):
        return _coupon_fail(400, "couponCodes must be a list of coupon codes")
    if customer_spec is not None and not isinstance(customer_spec, dict):
        return _coupon_fail(400, "customer must be an object")
    customer_keys = {k: v for k, v in (customer_spec or {}).items() if v not in (None, "")}
    if not codes and not customer_keys:
        return _coupon_fail(756, "CouponCode/s or customer info is mandatory")
    if codes == []:
        return _coupon_fail(
            400, "couponCodes must not be empty; leave it out to revoke by customer"
        )

    series: CouponSeries | None = None
    raw_series = body.get("couponSeriesId")
    if raw_series is not None:
        if not isinstance(raw_series, int) or isinstance(raw_series, bool):
            return _coupon_fail(400, "couponSeriesId must be an integer")
        series = state.coupon_series.get(raw_series)
        if series is None:
            return _coupon_fail(404, "Coupon series not found")
        if series.expired:
            return _coupon_fail(712, "Coupon Series / Campaign has expired")

    customer: Customer | None = None
    if customer_keys:
        customer = _coupon_customer(state, customer_keys)
        if customer is None:
            return _coupon_fail(404, "Customer not found")

    if codes:
        return _revoke_by_codes(state, codes, series, customer, case)
    assert customer is not None
    return _revoke_by_customer(state, customer, series, case)


def _coupon_customer(state: SandboxState, keys: dict[str, Any]) -> Customer | None:
    if "id" in keys:
        number = _as_int(keys["id"])
        return state.customers_by_id.get(number) if number is not None else None
    if "mobile" in keys:
        return state.customers_by_mobile.get(str(keys["mobile"]))
    if "email" in keys:
        return state.customers_by_email.get(str(keys["email"]).lower())
    if "externalId" in keys:
        return state.customers_by_external_id.get(str(keys["externalId"]))
    return None


def _revoke_by_codes(
    state: SandboxState,
    codes: list[str],
    series: CouponSeries | None,
    customer: Customer | None,
    case: str,
) -> Reply:
    if len(codes) > MAX_COUPON_CODES:
        return _coupon_fail(
            400, f"a maximum of {MAX_COUPON_CODES} coupon codes can be revoked in one call"
        )
    if len(codes) > 1 and series is None:
        return _coupon_fail(400, "couponSeriesId is required to revoke more than one coupon code")
    if len(codes) == 1:
        holders = state.coupons_by_code.get(codes[0].upper(), [])
        if holders:
            own_series = state.coupon_series[holders[0].series_id]
            if own_series.generic and customer is None:
                return _coupon_fail(
                    108, "Unsupported coupons series config with client handling type GENERIC"
                )
            if own_series.expired and (series is None or series.id == own_series.id):
                return _coupon_fail(712, "Coupon Series / Campaign has expired")
    if series is not None and series.generic and len(codes) > 1:
        return _revoke_whole_series(state, codes, series, case)

    failures: dict[int, list[str]] = {}
    targets: list[Coupon] = []
    chosen: set[int] = set()
    for code in codes:
        holders = [
            c
            for c in state.coupons_by_code.get(code.upper(), [])
            if series is None or c.series_id == series.id
        ]
        if customer is not None and holders:
            holders = [c for c in holders if c.customer_id == customer.id]
            if not holders:
                failures.setdefault(404, []).append(code)
                continue
        # One coupon left: a non-generic code is one coupon, and a generic code only gets
        # here with a customer (alone it answered 108; with others, the series went above).
        coupon = holders[0] if holders else None
        if coupon is None or coupon.revoked or coupon.id in chosen:
            failures.setdefault(682, []).append(code)
        elif coupon.redeemed:
            failures.setdefault(405, []).append(code)
        else:
            targets.append(coupon)
            chosen.add(coupon.id)
    return _coupon_success(state, targets, failures, case)


def _revoke_whole_series(
    state: SandboxState, codes: list[str], series: CouponSeries, case: str
) -> Reply:
    """The documented hazard: several codes with the id of a series that contains a generic
    code revoke every unredeemed coupon of that series, of every customer, named or not."""
    members = state.coupons_by_series.get(series.id, [])
    first_sent: dict[str, int] = {}
    for position, code in enumerate(codes):
        first_sent.setdefault(code.upper(), position)
    # The coupons of the codes sent come first (in request order), then the rest of the series.
    targets = sorted(
        (c for c in members if not c.revoked and not c.redeemed),
        key=lambda c: first_sent.get(c.code.upper(), len(codes)),
    )
    revoked_codes = {c.code.upper() for c in targets}
    failures: dict[int, list[str]] = {}
    answered: set[str] = set()
    for code in codes:
        key = code.upper()
        if key in answered or key not in revoked_codes:
            # Repeated in the request, not in the series, already revoked, or redeemed.
            redeemed = key not in answered and any(
                c.redeemed for c in members if c.code.upper() == key
            )
            failures.setdefault(405 if redeemed else 682, []).append(code)
        answered.add(key)
    return _coupon_success(state, targets, failures, case)


def _revoke_by_customer(
    state: SandboxState, customer: Customer, series: CouponSeries | None, case: str
) -> Reply:
    targets = [
        c
        for c in state.coupons_by_customer.get(customer.id, [])
        if not c.revoked
        and not c.redeemed
        and (
            c.series_id == series.id
            if series is not None
            else not state.coupon_series[c.series_id].expired
        )
    ]
    if len(targets) > MAX_COUPONS_BY_CUSTOMER:
        return _coupon_fail(
            400,
            f"customer has more than {MAX_COUPONS_BY_CUSTOMER} unredeemed coupons; "
            "revoke by coupon codes",
        )
    return _coupon_success(state, targets, {}, case)


_COUPON_MESSAGES = {
    404: "Coupon code not found",
    405: "Coupon code redeemed",
    682: "Coupon not found ",
}


def _coupon_success(
    state: SandboxState, targets: list[Coupon], failures: dict[int, list[str]], case: str
) -> Reply:
    for coupon in targets:
        state.revoke_coupon(coupon)
    failed = sum(len(v) for v in failures.values())
    entity = {
        "totalCount": len(targets) + failed,
        "failedCount": failed,
        "revokedCoupons": [
            {
                "couponId": c.id,
                "couponCode": _apply_case(c.code, case),
                "issuedToUserId": c.customer_id,
            }
            for c in targets
        ],
        "failedToRevoke": [
            {
                "errorCode": code,
                "errorMessage": _COUPON_MESSAGES[code],
                "couponCodes": [_apply_case(c, case) for c in items],
            }
            for code, items in failures.items()
        ],
    }
    return Reply(200, {"entity": entity, "warnings": [], "errors": [], "success": True})


# --------------------------------------------------------------------------- deactivate


def _deactivate_fail(status: int, code: int, message: str) -> Reply:
    return Reply(status, {"data": False, "errors": [{"code": code, "message": message}]})


def deactivate(
    state: SandboxState,
    promotion_id: str,
    customer_param: str | None,
    earn_param: str | None,
    body: object = None,
) -> Reply:
    """``POST /api_gateway/v1/promotions/{promotionId}/deactivate?customerId=&earnId=``.

    ``body`` is the parsed request body, None when it was empty.
    """
    if body is not None:
        return _deactivate_fail(
            400, 400, "GLOBAL.INVALID_INPUT: The request takes no body (parameters go in the URL)."
        )
    if not promotion_id or customer_param is None or not customer_param.strip().isdigit():
        return _deactivate_fail(
            400, 400, "GLOBAL.INVALID_INPUT: Required parameters are missing or invalid."
        )
    customer_id = int(customer_param)
    promotion = state.cart_promotions.get(promotion_id)
    if promotion is None or not promotion.active:
        return _deactivate_fail(
            404, 404, "GLOBAL.PROMOTION_NOT_FOUND: The promotion does not exist or is not active."
        )
    if promotion.mode in UNREVOCABLE_CART_MODES:
        return _deactivate_fail(
            400,
            707,
            "PROMO.UNSUPPORTED_PROMOTION_TYPE: Cannot deactivate preferences for POS or CODE "
            "promotions.",
        )
    customer = state.customers_by_id.get(customer_id)
    if customer is None:
        return _deactivate_fail(
            400, 400, "GLOBAL.INVALID_INPUT: Required parameters are missing or invalid."
        )
    earn_id = earn_param if earn_param not in (None, "") else None
    if (promotion.mode == "PAYMENT_VOUCHER") != (earn_id is not None):
        return _deactivate_fail(
            400,
            736,
            "PROMO.UNSUPPORTED_PREFERENCE_CHANGE: Incorrect combination of earnId and "
            "promotion mode.",
        )
    earn = state.cart_earns.get(earn_id) if earn_id is not None else None
    target = f"deactivation:{promotion_id}/{customer_id}" + (f"/{earn_id}" if earn_id else "")
    if earn_id is not None and (
        earn is None
        or earn.promotion_id != promotion_id
        or earn.customer_id != customer_id
        or earn.revoked
    ):
        if earn is not None and earn.revoked and target in state.ledger.deactivations:
            state.ledger.deactivations[target] += 1  # asked again once done
        return _deactivate_fail(400, 731, "PROMO.EARN_ID_INVALID: The provided earnId is invalid.")
    if earn is not None and earn.redeemed:
        # Not 731: that would read as "already revoked". 729 is what the cart page of the
        # same api_gateway promotions family answers for this state of the same earn.
        return _deactivate_fail(400, 729, "Promotion earn instance already redeemed.")
    if customer.open_cart:
        return _deactivate_fail(
            400,
            737,
            "PROMO.UNSUPPORTED_PREFERENCE_CHANGE_PENDING_CART: Cannot change status while the "
            "customer has an open cart.",
        )
    if earn is not None:
        state.revoke_cart_earn(earn)
    else:
        for other in state.cart_earns_by_owner.get((promotion_id, customer_id), []):
            if not other.redeemed:
                state.revoke_cart_earn(other)
        state.add_deactivation(promotion_id, customer_id)
    state.ledger.deactivations[target] += 1
    return Reply(200, {"data": True, "errors": []})
