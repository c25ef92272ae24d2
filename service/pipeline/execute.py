"""Plan to Capillary calls: each action in order, one classified result per item.

The client splits, rate-limits and retries; this step chooses the call for
each action, keeps the order the rules gave (an earn before its enrolment),
does not attempt an action whose prerequisite did not succeed, and turns the
client's classes into the statuses of the outcome event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from service.actions import (
    Action,
    DeactivateCartPromotion,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Plan,
    Report,
    RevokeCartEarn,
    RevokeCouponCodes,
    RevokeCustomerCoupons,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.actions import CouponCustomer as PlannedCouponCustomer
from service.capillary.models import (
    Attribution,
    AttributionEntityType,
    CartEarnsRef,
    CouponCustomer,
    IdentifierName,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.results import ItemResult as ApiItemResult
from service.capillary.results import ResultClass
from service.errors import CapillaryUnavailableError
from service.events import ReturnEvent
from service.logging import get_logger
from service.outcome import ActionResult, ActionStatus, ItemResult

log = get_logger(__name__)

_SEVERITY = [
    ActionStatus.FAILED,
    ActionStatus.UNCONFIRMED,
    ActionStatus.REFUSED,
    ActionStatus.NOT_FOUND,
    ActionStatus.REFUSED_REDEEMED,
    ActionStatus.KEPT,
    ActionStatus.ALREADY_REVOKED,
    ActionStatus.ALREADY_RESTORED,
    ActionStatus.RESTORED,
    ActionStatus.REVOKED,
    ActionStatus.SKIPPED,
]


class CapillaryApi(Protocol):
    """The calls the executor makes; ``CapillaryClient`` is the real one."""

    async def revoke_loyalty_earns(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomerEarns],
        attribution: Attribution | None = None,
    ) -> list[ApiItemResult]: ...

    async def revoke_loyalty_enrolments(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ApiItemResult]: ...

    async def enrol(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ApiItemResult]: ...

    async def issue_earn(
        self,
        promotion: LoyaltyPromotionRef,
        identifier_name: IdentifierName,
        customers: Sequence[LoyaltyCustomer],
        attribution: Attribution | None = None,
    ) -> list[ApiItemResult]: ...

    async def revoke_cart_earns(
        self,
        customer_id: int,
        earns: Sequence[CartEarnsRef],
        attribution: Attribution | None = None,
    ) -> list[ApiItemResult]: ...

    async def revoke_coupons_by_codes(
        self,
        codes: Sequence[str],
        series_id: int | None,
        attribution: Attribution | None = None,
        *,
        generic: bool = False,
        customer: CouponCustomer | None = None,
    ) -> list[ApiItemResult]: ...

    async def revoke_coupons_by_customer(
        self,
        customer: CouponCustomer,
        series_id: int | None,
        attribution: Attribution | None = None,
    ) -> list[ApiItemResult]: ...

    async def deactivate_promotion(
        self,
        promotion_id: str,
        customer_id: int,
        earn_id: str | None,
        attribution: Attribution | None = None,
    ) -> list[ApiItemResult]: ...


def attribution_for(event: ReturnEvent) -> Attribution | None:
    """The till, else the store, the return was taken at."""
    if event.source.till_code:
        return Attribution(entity_type=AttributionEntityType.TILL, entity_id=event.source.till_code)
    if event.source.store_code:
        return Attribution(
            entity_type=AttributionEntityType.STORE, entity_id=event.source.store_code
        )
    return None


def item_status(result: ApiItemResult, *, gives_back: bool, tried_before: bool) -> ActionStatus:
    """The outcome status of one item from the client's class.

    ``gone`` ("invalid, not found or already revoked") means done before only when an
    earlier attempt of the same event exists: this event was tried before (a replay, a
    restart), or an earlier attempt of this very call got no clear answer.
    """
    match result.result_class:
        case ResultClass.DONE:
            return ActionStatus.RESTORED if gives_back else ActionStatus.REVOKED
        case ResultClass.ALREADY_DONE:
            return ActionStatus.ALREADY_REVOKED
        case ResultClass.GONE if tried_before or result.after_uncertain_attempt:
            return ActionStatus.ALREADY_REVOKED
        case ResultClass.GONE | ResultClass.NOT_FOUND:
            return ActionStatus.NOT_FOUND
        case ResultClass.REDEEMED:
            return ActionStatus.REFUSED_REDEEMED
        case ResultClass.KEPT:
            return ActionStatus.KEPT
        case ResultClass.REFUSED:
            return ActionStatus.REFUSED
        case _:
            return ActionStatus.FAILED


def worst(statuses: Sequence[ActionStatus]) -> ActionStatus:
    """The status that says the most about an action made of several items."""
    if not statuses:
        return ActionStatus.FAILED
    return min(statuses, key=_SEVERITY.index)


GiveBackHook = Callable[[EnrolLoyalty | IssueLoyaltyEarn], Awaitable[None]]
"""Called before a give-back call is made."""


@dataclass
class _EventProgress:
    """What the actions of one event have done so far."""

    blocked: set[tuple[int, str, str]] = field(default_factory=set)
    """Loyalty targets whose earn revoke (or enrolment) did not succeed: the next step for
    the same promotion and customer would be refused, so it is not attempted."""
    gave_back: set[str] = field(default_factory=set)
    """Give-back actions whose call may have reached Capillary (it matters when an outage
    interrupts the event)."""


class Executor:
    """Runs a plan's actions against Capillary, in the plan's order."""

    def __init__(self, api: CapillaryApi, *, flag_redeemed_for_clawback: bool = False) -> None:
        self._api = api
        self._clawback = flag_redeemed_for_clawback

    async def execute(
        self,
        event: ReturnEvent,
        plan: Plan,
        *,
        tried_before: bool = False,
        unconfirmed: Collection[str] = (),
        issued: Collection[str] = (),
        before_give_back: GiveBackHook | None = None,
    ) -> list[ActionResult]:
        """One result per action, in plan order.

        ``tried_before``: an earlier attempt of this event exists (a replay, a restart), so
        an "invalid or already revoked" answer means that attempt did it.
        ``unconfirmed``: ids of give-back actions (ENROL, EARN) that attempt may have made;
        they are not made again but reported ``unconfirmed``.
        ``issued``: ids of give-back actions an earlier outcome shows as made (a replay);
        they are not made again but reported ``already_restored``.
        ``before_give_back``: awaited before each give-back call (the caller records the
        intent there); if it raises, the call is not made.

        Raises :class:`CapillaryUnavailableError` when a call got no answer about its items
        (Capillary down, throttling past the budget, credentials refused): that is not the
        event's outcome, and the caller pauses instead of publishing one. Its context names
        the give-back actions whose call may have reached Capillary.
        """
        attribution = attribution_for(event)
        results: list[ActionResult] = []
        progress = _EventProgress()
        for action in plan.actions:
            if action.action_id in issued and isinstance(action, EnrolLoyalty | IssueLoyaltyEarn):
                results.append(_issued_before(action))
                continue
            if action.action_id in unconfirmed and isinstance(
                action, EnrolLoyalty | IssueLoyaltyEarn
            ):
                results.append(_unconfirmed(action))
                continue
            if (
                before_give_back is not None
                and isinstance(action, EnrolLoyalty | IssueLoyaltyEarn)
                and not _blocked(action, progress)
            ):
                await before_give_back(action)
            result = await self._run(action, attribution, progress, tried_before=tried_before)
            results.append(result)
        return results

    async def _run(
        self,
        action: Action,
        attribution: Attribution | None,
        progress: _EventProgress,
        *,
        tried_before: bool,
    ) -> ActionResult:
        blocked = progress.blocked
        if isinstance(action, Report):
            return _result(action, ActionStatus.SKIPPED, [], report_kind=str(action.report_kind))
        if _blocked(action, progress):
            assert isinstance(action, RevokeLoyaltyEnrolment | IssueLoyaltyEarn)
            return _not_attempted(action)
        try:
            api_results = await self._call(action, attribution)
        except Exception as exc:  # a bug must fail this action, not block the partition
            log.exception("action_crashed", action_id=action.action_id)
            api_results = [
                ApiItemResult(
                    item=action.action_id,
                    result_class=ResultClass.REQUEST_ERROR,
                    message=f"internal error: {type(exc).__name__}: {exc}",
                    next_step="File a bug with this outcome; replay the event once fixed.",
                )
            ]
        gives_back = isinstance(action, EnrolLoyalty | IssueLoyaltyEarn)
        if gives_back and any(
            r.result_class is ResultClass.DONE or r.after_uncertain_attempt for r in api_results
        ):
            progress.gave_back.add(action.action_id)
        unavailable = next(
            (r for r in api_results if r.result_class is ResultClass.UNAVAILABLE), None
        )
        if unavailable is not None:
            raise CapillaryUnavailableError(
                unavailable.message,
                action_id=action.action_id,
                code=unavailable.code,
                give_backs_reached=frozenset(progress.gave_back),
            )
        items = [
            self._item(r, gives_back=gives_back, tried_before=tried_before) for r in api_results
        ]
        # What Capillary did unasked is reported, but does not decide the action's status.
        status = worst([item.status for item in items if item.asked])
        if isinstance(action, RevokeLoyaltyEarn | EnrolLoyalty) and status is ActionStatus.FAILED:
            blocked.add(_target_key(action.target))
        return _result(action, status, items, api_results=api_results)

    async def _call(self, action: Action, attribution: Attribution | None) -> list[ApiItemResult]:
        api = self._api
        match action:
            case RevokeLoyaltyEarn(target=t, earn_ids=earn_ids):
                return await api.revoke_loyalty_earns(
                    _promotion(t),
                    t.identifier_name,
                    [
                        LoyaltyCustomerEarns(
                            identifier_value=t.identifier_value, source=t.source, earn_ids=earn_ids
                        )
                    ],
                    attribution,
                )
            case RevokeLoyaltyEnrolment(target=t):
                return await api.revoke_loyalty_enrolments(
                    _promotion(t), t.identifier_name, [_customer(t)], attribution
                )
            case EnrolLoyalty(target=t):
                return await api.enrol(
                    _promotion(t), t.identifier_name, [_customer(t)], attribution
                )
            case IssueLoyaltyEarn(target=t):
                return await api.issue_earn(
                    _promotion(t), t.identifier_name, [_customer(t)], attribution
                )
            case RevokeCartEarn(customer_id=customer_id, promotion_id=promotion_id, earn_ids=ids):
                return await api.revoke_cart_earns(
                    customer_id,
                    [CartEarnsRef(promotion_id=promotion_id, earn_ids=ids)],
                    attribution,
                )
            case DeactivateCartPromotion(
                customer_id=customer_id, promotion_id=promotion_id, earn_id=earn_id
            ):
                return await api.deactivate_promotion(
                    promotion_id, customer_id, earn_id, attribution
                )
            case RevokeCouponCodes(series_id=series_id, codes=codes, generic=generic, customer=c):
                return await api.revoke_coupons_by_codes(
                    codes,
                    series_id,
                    attribution,
                    generic=generic,
                    customer=_coupon_customer(c) if c is not None else None,
                )
            case RevokeCustomerCoupons(customer=c, series_id=series_id):
                return await api.revoke_coupons_by_customer(
                    _coupon_customer(c), series_id, attribution
                )
        raise AssertionError(f"no call for action kind {action.kind}")  # pragma: no cover

    def _item(self, result: ApiItemResult, *, gives_back: bool, tried_before: bool) -> ItemResult:
        status = item_status(result, gives_back=gives_back, tried_before=tried_before)
        detail = dict(result.detail)
        if status is ActionStatus.REFUSED_REDEEMED and self._clawback:
            detail["clawback"] = "flagged"
        return ItemResult(
            item=result.item,
            status=status,
            code=result.code,
            message=result.message,
            detail=detail,
            asked=result.asked,
        )


def _coupon_customer(customer: PlannedCouponCustomer) -> CouponCustomer:
    return CouponCustomer(
        id=str(customer.id) if customer.id is not None else None,
        mobile=customer.mobile,
        email=customer.email,
        external_id=customer.external_id,
    )


def _promotion(target: LoyaltyTarget) -> LoyaltyPromotionRef:
    return LoyaltyPromotionRef(
        program_id=target.program_id,
        promotion_id=target.promotion_id,
        promo_identifier=target.promo_identifier,
    )


def _customer(target: LoyaltyTarget) -> LoyaltyCustomer:
    return LoyaltyCustomer(identifier_value=target.identifier_value, source=target.source)


def _target_key(target: LoyaltyTarget) -> tuple[int, str, str]:
    promotion = str(target.promotion_id or target.promo_identifier)
    return (target.program_id, promotion, f"{target.identifier_name}:{target.identifier_value}")


def _blocked(action: Action, progress: _EventProgress) -> bool:
    """The step before this one for the same promotion and customer did not succeed."""
    return (
        isinstance(action, RevokeLoyaltyEnrolment | IssueLoyaltyEarn)
        and _target_key(action.target) in progress.blocked
    )


def _uncalled(
    action: Action,
    status: ActionStatus,
    message: str,
    next_step: str | None,
    detail: dict[str, str] | None = None,
) -> ActionResult:
    """The result of an action that was not called, as one item saying why."""
    return ActionResult(
        action_id=action.action_id,
        kind=action.kind,
        reason_code=action.reason_code,
        reason=action.reason,
        status=status,
        items=[
            ItemResult(item=action.action_id, status=status, message=message, detail=detail or {})
        ],
        next_step=next_step,
    )


def _unconfirmed(action: EnrolLoyalty | IssueLoyaltyEarn) -> ActionResult:
    target = action.target
    # The outcome names customers by numeric id only; never a mobile or an e-mail.
    who = (
        f"id {target.identifier_value}"
        if target.identifier_name == "id"
        else f"of this event (by {target.identifier_name})"
    )
    promotion = f"{target.program_id}/{target.promotion_id or target.promo_identifier}"
    return _uncalled(
        action,
        ActionStatus.UNCONFIRMED,
        "not called again: an earlier attempt of this event may have made this call before "
        "it crashed",
        f"Check in Capillary whether customer {who} holds promotion {promotion}; "
        "enrol or issue it by hand only if not.",
        {"customer": who, "promotion": promotion},
    )


def _issued_before(action: EnrolLoyalty | IssueLoyaltyEarn) -> ActionResult:
    return _uncalled(
        action,
        ActionStatus.ALREADY_RESTORED,
        "not made again: an earlier outcome of this event shows it made, and Capillary's "
        "EARN has no idempotency key",
        "Nothing, unless the customer truly lacks it: then replay with --allow-reissue for "
        "this event.",
    )


def _not_attempted(action: RevokeLoyaltyEnrolment | IssueLoyaltyEarn) -> ActionResult:
    return _uncalled(
        action,
        ActionStatus.FAILED,
        "not attempted: the step before it for this promotion did not succeed",
        "Replay the event once the earlier step's failure is resolved.",
    )


def _result(
    action: Action,
    status: ActionStatus,
    items: list[ItemResult],
    *,
    report_kind: str | None = None,
    api_results: Sequence[ApiItemResult] = (),
) -> ActionResult:
    next_steps = sorted({r.next_step for r in api_results if r.next_step})
    request_ids = list(dict.fromkeys(rid for r in api_results for rid in r.request_ids))
    return ActionResult(
        action_id=action.action_id,
        kind=action.kind,
        reason_code=action.reason_code,
        reason=action.reason,
        status=status,
        report_kind=report_kind,
        broad=bool(getattr(action, "broad", False)),
        items=items,
        attempts=max((r.attempts for r in api_results), default=0),
        elapsed_ms=max((r.elapsed_ms for r in api_results), default=0.0),
        request_ids=request_ids,
        next_step="; ".join(next_steps) if next_steps else None,
    )
