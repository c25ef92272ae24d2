"""The fewest Capillary calls a workload needs, as the vendor's pages allow, and a run's ratio.

The bound is computed from the plans the service's rules make for the events (their
actions, ``service/actions.py``), with what one request may carry on each endpoint
(``/work/shared/capillary-api/*.md``, ``service/capillary/limits.py``):

* loyalty revoke (REVOKE_EARN, REVOKE_ENROL) and loyalty enrol (ENROL, EARN): one
  ``bulkAction``, one ``programId``, one promotion named one way (``promotionId`` or
  ``promoIdentifier``: a request names one, so the two names of one promotion are two
  groups), one ``identifierName``, at most 100 customers and none twice. A group takes
  ``ceil(entries / 100)`` calls, or as many as its most repeated customer appears;
* cart ``revokeEarn``: one customer a request, at most 1,000 earn ids of any promotions:
  ``ceil(unique earn ids / 1000)`` a customer;
* coupon revoke by codes: up to 50 codes with the series id, but only for a series the
  policy declares free of generic codes (``codes_share_a_call``); such a series takes
  ``ceil(unique codes / 50)`` calls, every other code one a call, and a revoke by customer
  one call;
* deactivate: one call each. Reports make no call.

Not counted: OAuth token calls (the bench authenticates with basic credentials), retries
and 429s, and the order a customer's calls must keep (its REVOKE_ENROL after its
REVOKE_EARN: more waiting, not more calls). So the count is a lower bound; no client can
do the workload in fewer calls. The time at the limit is the fewest calls at the limit's
steady rate, each endpoint paced on its own, so the storm's bound is the slowest endpoint's.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from service.actions import (
    Action,
    DeactivateCartPromotion,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeCustomerCoupons,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.capillary.codes import Endpoint
from service.capillary.coupons import codes_share_a_call

# The pages' numbers, written here rather than taken from the client's constants, so that
# a client that split its calls wrongly could not move the bound it is measured against.
LOYALTY_CUSTOMERS = 100
"""Customers one loyalty bulk request carries (both loyalty pages)."""
CART_EARN_IDS = 1000
"""Earn ids one cart revokeEarn request carries (its page)."""
COUPON_CODES = 50
"""Codes one coupon revoke request carries, with the series id (its page)."""

SANDBOX_NAMES: dict[Endpoint, str] = {
    Endpoint.LOYALTY_REVOKE: "revoke_enrol_and_earn",
    Endpoint.LOYALTY_ENROL: "enrol_and_earn",
    Endpoint.CART_REVOKE: "cart_revoke_earn",
    Endpoint.COUPON_REVOKE: "coupon_revoke",
    Endpoint.DEACTIVATE: "deactivate",
    Endpoint.OAUTH_TOKEN: "oauth_token",
}
"""The service's endpoint families by the names the sandbox's call log gives them."""

COUNTED: tuple[Endpoint, ...] = tuple(e for e in Endpoint if e is not Endpoint.OAUTH_TOKEN)
"""The endpoints the bound counts (the business ones)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Fewest(_Model):
    """One endpoint's share of the workload: the fewest calls and the items they carry."""

    calls: int
    items: int
    """Loyalty customer entries, cart earn ids, coupon codes, deactivations."""


class ItemsPerCall(_Model):
    """How full a run's calls of one endpoint were (answered calls that carry items)."""

    calls: int
    mean: float | None
    min: int | None
    max: int | None


class EndpointBound(_Model):
    """One endpoint: the bound, the run's calls and the ratio between them."""

    service_endpoint: str
    fewest_calls: int
    items: int
    limit_per_minute: int | None
    seconds_at_limit: float | None
    calls: int
    calls_ratio: float | None
    items_per_call: ItemsPerCall | None


class Bound(_Model):
    """The workload's bound over every endpoint, and the run against it."""

    by_endpoint: dict[str, EndpointBound]
    fewest_calls: int
    seconds: float | None
    """The slowest endpoint's ``seconds_at_limit``; None without a rate limit."""
    binding_endpoint: str | None
    seconds_to_clear: float | None
    ratio: float | None
    """``seconds_to_clear / seconds``."""


# --------------------------------------------------------------------------- the plans

_LOYALTY_ACTIONS: dict[type[Any], tuple[Endpoint, str]] = {
    RevokeLoyaltyEarn: (Endpoint.LOYALTY_REVOKE, "REVOKE_EARN"),
    RevokeLoyaltyEnrolment: (Endpoint.LOYALTY_REVOKE, "REVOKE_ENROL"),
    EnrolLoyalty: (Endpoint.LOYALTY_ENROL, "ENROL"),
    IssueLoyaltyEarn: (Endpoint.LOYALTY_ENROL, "EARN"),
}

_LoyaltyGroup = tuple[Endpoint, str, int, str, str, str]


def _loyalty_group(endpoint: Endpoint, bulk_action: str, target: LoyaltyTarget) -> _LoyaltyGroup:
    if target.promotion_id is not None:
        named = ("promotionId", str(target.promotion_id))
    else:
        named = ("promoIdentifier", str(target.promo_identifier))
    return (endpoint, bulk_action, target.program_id, *named, target.identifier_name)


def _sendable(target: LoyaltyTarget, earn_ids: list[int] | None) -> bool:
    # The client answers these itself: no request carries them (an empty earnIds list
    # would read as every earn of the promotion).
    return bool(target.identifier_value.strip() and target.source.strip()) and earn_ids != []


def fewest_calls(actions: Iterable[Action]) -> dict[Endpoint, Fewest]:
    """The fewest calls per endpoint that carry ``actions`` (every event's, together).

    Endpoints no action calls are left out.
    """
    loyalty: defaultdict[_LoyaltyGroup, Counter[str]] = defaultdict(Counter)
    cart: defaultdict[int, set[tuple[str, str]]] = defaultdict(set)
    shared_series: defaultdict[int, set[str]] = defaultdict(set)
    alone_codes: set[tuple[int | None, str]] = set()
    one_each: Counter[Endpoint] = Counter()
    for action in actions:
        match action:
            case (
                RevokeLoyaltyEarn() | RevokeLoyaltyEnrolment() | EnrolLoyalty() | IssueLoyaltyEarn()
            ):
                earn_ids = action.earn_ids if isinstance(action, RevokeLoyaltyEarn) else None
                if _sendable(action.target, earn_ids):
                    endpoint, bulk_action = _LOYALTY_ACTIONS[type(action)]
                    group = _loyalty_group(endpoint, bulk_action, action.target)
                    loyalty[group][action.target.identifier_value.strip().lower()] += 1
            case RevokeCartEarn(customer_id=customer, promotion_id=promotion, earn_ids=ids):
                cart[customer].update((promotion.casefold(), i.casefold()) for i in ids)
            case RevokeCouponCodes(series_id=series, codes=codes):
                together = codes_share_a_call(
                    generic=action.generic, no_generic_code=action.no_generic_code
                )
                kept = [c for c in codes if c.strip()]
                if together and series is not None:
                    shared_series[series].update(kept)
                else:
                    alone_codes.update((series, c) for c in kept)
            case RevokeCustomerCoupons():
                one_each[Endpoint.COUPON_REVOKE] += 1
            case DeactivateCartPromotion():
                one_each[Endpoint.DEACTIVATE] += 1
            case _:
                pass  # a report: no call

    calls: Counter[Endpoint] = Counter()
    items: Counter[Endpoint] = Counter()
    for (endpoint, *_), customers in loyalty.items():
        entries = customers.total()
        calls[endpoint] += max(math.ceil(entries / LOYALTY_CUSTOMERS), max(customers.values()))
        items[endpoint] += entries
    for earns in cart.values():
        if earns:
            calls[Endpoint.CART_REVOKE] += math.ceil(len(earns) / CART_EARN_IDS)
            items[Endpoint.CART_REVOKE] += len(earns)
    for series_codes in shared_series.values():
        calls[Endpoint.COUPON_REVOKE] += math.ceil(len(series_codes) / COUPON_CODES)
        items[Endpoint.COUPON_REVOKE] += len(series_codes)
    calls[Endpoint.COUPON_REVOKE] += len(alone_codes)
    items[Endpoint.COUPON_REVOKE] += len(alone_codes)
    calls.update(one_each)
    items[Endpoint.DEACTIVATE] += one_each[Endpoint.DEACTIVATE]
    return {e: Fewest(calls=calls[e], items=items[e]) for e in COUNTED if calls[e] or items[e]}


# --------------------------------------------------------------------------- the call log


def call_items(endpoint: str, body: object) -> int | None:
    """Items one logged request carried; None when its body carries none to count.

    Loyalty: customers; cart: earn ids; coupon: codes (a revoke by customer names none);
    deactivate: one.
    """
    if endpoint == "deactivate":
        return 1
    if not isinstance(body, dict):
        return None
    if endpoint in ("revoke_enrol_and_earn", "enrol_and_earn"):
        customers = body.get("customers")
        return len(customers) if isinstance(customers, list) else None
    if endpoint == "cart_revoke_earn":
        details = body.get("earnRevokeDetails")
        if not isinstance(details, list):
            return None
        return sum(
            len(d["earnIds"])
            for d in details
            if isinstance(d, dict) and isinstance(d.get("earnIds"), list)
        )
    if endpoint == "coupon_revoke":
        codes = body.get("couponCodes")
        return len(codes) if isinstance(codes, list) else None
    return None


def items_per_call(calls: Sequence[Mapping[str, Any]]) -> dict[str, ItemsPerCall]:
    """Per endpoint name, items a call carried, from the sandbox's call log.

    A call answered 429 is left out: its items go again in the call that retries them.
    """
    counts: defaultdict[str, list[int]] = defaultdict(list)
    for call in calls:
        if call.get("status") == 429:
            continue
        name = str(call.get("endpoint"))
        carried = call_items(name, call.get("body"))
        if carried is not None:
            counts[name].append(carried)
    return {
        name: ItemsPerCall(
            calls=len(values),
            mean=round(sum(values) / len(values), 1),
            min=min(values),
            max=max(values),
        )
        for name, values in sorted(counts.items())
    }


# --------------------------------------------------------------------------- the run


def _ratio(measured: float | None, least: float | None) -> float | None:
    if measured is None or not least:
        return None
    return round(measured / least, 2)


def bound(
    fewest: Mapping[Endpoint, Fewest],
    *,
    limits: Mapping[Endpoint, int] | None,
    calls: Mapping[str, int],
    items: Mapping[str, ItemsPerCall],
    seconds_to_clear: float | None,
) -> Bound:
    """The bound of the workload (``fewest``) under ``limits`` (requests a minute per
    endpoint; None: no limit) and a run's calls (by sandbox name) and time against it."""
    by_endpoint: dict[str, EndpointBound] = {}
    for endpoint in Endpoint:
        name = SANDBOX_NAMES[endpoint]
        share = fewest.get(endpoint, Fewest(calls=0, items=0))
        made = calls.get(name, 0)
        if not (share.calls or made):
            continue
        limit = limits.get(endpoint) if limits is not None else None
        by_endpoint[name] = EndpointBound(
            service_endpoint=endpoint.value,
            fewest_calls=share.calls,
            items=share.items,
            limit_per_minute=limit,
            seconds_at_limit=round(share.calls / (limit / 60), 2) if limit else None,
            calls=made,
            calls_ratio=_ratio(made, share.calls),
            items_per_call=items.get(name),
        )
    timed = [(b.seconds_at_limit, n) for n, b in by_endpoint.items() if b.seconds_at_limit]
    # Ties go to the first endpoint in Endpoint's order: max keeps the first of equals.
    slowest = max(timed, key=lambda pair: pair[0], default=None)
    return Bound(
        by_endpoint=by_endpoint,
        fewest_calls=sum(b.fewest_calls for b in by_endpoint.values()),
        seconds=slowest[0] if slowest else None,
        binding_endpoint=slowest[1] if slowest else None,
        seconds_to_clear=seconds_to_clear,
        ratio=_ratio(seconds_to_clear, slowest[0] if slowest else None),
    )


def table(result: Bound) -> list[str]:
    """The bound as a few lines of text, for the end of a run."""

    def show(value: object) -> str:
        return "-" if value is None else str(value)

    lines = [
        f"{'endpoint':<22} {'fewest':>6} {'limit/min':>9} {'s at limit':>10} {'calls':>6} "
        f"{'x fewest':>8}  items/call run mean [min-max] (bound mean)"
    ]
    for name, b in result.by_endpoint.items():
        run = b.items_per_call
        full = (
            f"{show(run.mean)} [{show(run.min)}-{show(run.max)}]"
            if run is not None and run.calls
            else "-"
        )
        at_bound = round(b.items / b.fewest_calls, 1) if b.fewest_calls else None
        lines.append(
            f"{name:<22} {b.fewest_calls:>6} {show(b.limit_per_minute):>9} "
            f"{show(b.seconds_at_limit):>10} {b.calls:>6} {show(b.calls_ratio):>8}  "
            f"{full} ({show(at_bound)})"
        )
    lines.append(
        f"bound: {result.fewest_calls} calls at least, {show(result.seconds)} s at the limit "
        f"(binding: {show(result.binding_endpoint)}); cleared in "
        f"{show(result.seconds_to_clear)} s, x{show(result.ratio)} the bound"
    )
    return lines
