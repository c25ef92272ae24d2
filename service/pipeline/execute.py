"""Plan to Capillary calls: each action in order, one classified result per item.

The client splits, rate-limits and retries; this step chooses the call for
each action, keeps the order the rules gave (an earn before its enrolment),
does not attempt an action whose prerequisite did not succeed, and turns the
client's classes into the statuses of the outcome event.

What an earlier run of the same event did is not done again (``done_before.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service import actions
from service.capillary import models
from service.capillary.api import CapillaryApi
from service.capillary.requests import (
    CartRevoke,
    CouponCodesRevoke,
    CustomerCouponsRevoke,
    Deactivation,
    LoyaltyBulk,
)
from service.capillary.results import ItemResult as ApiItemResult
from service.capillary.results import ResultClass
from service.errors import CapillaryInterruptedError, CapillaryUnavailableError
from service.events import ReturnEvent
from service.ledger import Prior
from service.logging import get_logger
from service.outcome import ActionResult, ActionStatus, ItemResult
from service.pipeline.done_before import (
    Unrepeatable,
    done_before,
    merged,
    result,
    uncalled,
    worst,
)

log = get_logger(__name__)


def attribution_for(event: ReturnEvent) -> models.Attribution | None:
    """The till, else the store, the return was taken at."""
    if event.source.till_code:
        return models.Attribution(
            entity_type=models.AttributionEntityType.TILL, entity_id=event.source.till_code
        )
    if event.source.store_code:
        return models.Attribution(
            entity_type=models.AttributionEntityType.STORE, entity_id=event.source.store_code
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
        case ResultClass.UNCERTAIN:
            return ActionStatus.UNCONFIRMED
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


_NeedsStepBefore = actions.RevokeLoyaltyEnrolment | actions.IssueLoyaltyEarn
"""Loyalty steps that need the one before them, for the same promotion and customer, to
have succeeded: an enrolment revoke its earn revoke, an earn its enrolment."""

IntentHook = Callable[[Unrepeatable, list[ActionResult]], Awaitable[None]]
"""Called before an unrepeatable call is made, with the results of the actions before it."""


@dataclass
class _EventProgress:
    """What the actions of one event have done so far."""

    blocked: set[tuple[int, str, str]] = field(default_factory=set)
    """Loyalty targets whose earn revoke (or enrolment) did not succeed: the next step for
    the same promotion and customer would be refused, so it is not attempted."""
    reached: set[str] = field(default_factory=set)
    """Unrepeatable actions whose call may have reached Capillary (it matters when an outage
    interrupts the event)."""


class Executor:
    """Runs a plan's actions against Capillary, in the plan's order."""

    def __init__(self, api: CapillaryApi, *, flag_redeemed_for_clawback: bool = False) -> None:
        self._api = api
        self._clawback = flag_redeemed_for_clawback

    async def execute(
        self,
        event: ReturnEvent,
        plan: actions.Plan,
        *,
        prior: Prior | None = None,
        attempt: int = 1,
        before_unrepeatable: IntentHook | None = None,
    ) -> list[ActionResult]:
        """One result per action, in plan order.

        ``prior``: what earlier runs of this event did (the ledger, the intents of a crashed
        attempt, a replay's headers); see :class:`~service.ledger.Prior`. ``attempt``: this
        attempt's number, to mark results an earlier attempt got. ``before_unrepeatable``:
        awaited before each call that must not be made twice (ENROL, EARN, deactivate) with
        the results so far (the caller records the intent there); if it raises, the call is
        not made.

        Raises :class:`CapillaryInterruptedError` when a call got no answer about its items
        (Capillary down, throttling past the budget, credentials refused): that is not the
        event's outcome, and the caller pauses instead of publishing one. It carries the
        results of the actions that finished and the give-backs that may have reached
        Capillary.
        """
        prior = prior or Prior()
        attribution = attribution_for(event)
        results: list[ActionResult] = []
        progress = _EventProgress()
        for action in plan.actions:
            earlier = prior.by_action.get(action.action_id, ())
            before = done_before(action, earlier, prior, attempt)
            if before is not None:
                results.append(before)
                continue
            if (
                before_unrepeatable is not None
                and isinstance(action, Unrepeatable)
                and not _blocked(action, progress)
            ):
                await before_unrepeatable(action, list(results))
            try:
                result = await self._run(
                    action, attribution, progress, tried_before=prior.tried_before
                )
            except CapillaryUnavailableError as exc:
                raise CapillaryInterruptedError(
                    exc.message,
                    done=results,
                    reached=frozenset(progress.reached),
                    **exc.context,
                ) from exc
            results.append(merged(result, earlier, prior, attempt))
        return results

    async def _run(
        self,
        action: actions.Action,
        attribution: models.Attribution | None,
        progress: _EventProgress,
        *,
        tried_before: bool,
    ) -> ActionResult:
        blocked = progress.blocked
        if isinstance(action, actions.Report):
            return result(action, ActionStatus.SKIPPED, [], report_kind=str(action.report_kind))
        if _blocked(action, progress):
            assert isinstance(action, _NeedsStepBefore)
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
        gives_back = isinstance(action, actions.EnrolLoyalty | actions.IssueLoyaltyEarn)
        if isinstance(action, Unrepeatable) and any(
            r.result_class is ResultClass.DONE or r.after_uncertain_attempt for r in api_results
        ):
            progress.reached.add(action.action_id)
        unavailable = next(
            (r for r in api_results if r.result_class is ResultClass.UNAVAILABLE), None
        )
        if unavailable is not None:
            raise CapillaryUnavailableError(
                unavailable.message, action_id=action.action_id, code=unavailable.code
            )
        items = [
            self._item(r, gives_back=gives_back, tried_before=tried_before) for r in api_results
        ]
        # What Capillary did unasked is reported, but does not decide the action's status.
        status = worst([item.status for item in items if item.asked])
        if (
            isinstance(action, actions.RevokeLoyaltyEarn | actions.EnrolLoyalty)
            and status is ActionStatus.FAILED
        ):
            blocked.add(_target_key(action.target))
        return result(action, status, items, api_results=api_results)

    async def _call(
        self, action: actions.Action, attribution: models.Attribution | None
    ) -> list[ApiItemResult]:
        api = self._api
        match action:
            case actions.RevokeLoyaltyEarn(target=t, earn_ids=earn_ids):
                customer = models.LoyaltyCustomerEarns(
                    identifier_value=t.identifier_value, source=t.source, earn_ids=earn_ids
                )
                revoke = models.LoyaltyAction.REVOKE_EARN
                bulk_earns = LoyaltyBulk(revoke, _promotion(t), t.identifier_name, attribution)
                return await api.loyalty(bulk_earns, [customer])
            case (
                actions.RevokeLoyaltyEnrolment(target=t)
                | actions.EnrolLoyalty(target=t)
                | actions.IssueLoyaltyEarn(target=t)
            ):
                loyalty_action = _LOYALTY_ACTIONS[type(action)]
                bulk = LoyaltyBulk(loyalty_action, _promotion(t), t.identifier_name, attribution)
                return await api.loyalty(bulk, [_customer(t)])
            case actions.RevokeCartEarn(
                customer_id=customer_id, promotion_id=promotion_id, earn_ids=ids
            ):
                earns = [models.CartEarnsRef(promotion_id=promotion_id, earn_ids=ids)]
                return await api.revoke_cart_earns(CartRevoke(customer_id, earns, attribution))
            case actions.DeactivateCartPromotion(
                customer_id=customer_id, promotion_id=promotion_id, earn_id=earn_id
            ):
                return await api.deactivate_promotion(
                    Deactivation(promotion_id, customer_id, earn_id, attribution)
                )
            case actions.RevokeCouponCodes(
                series_id=series_id, codes=codes, generic=generic, customer=c
            ):
                return await api.revoke_coupons_by_codes(
                    CouponCodesRevoke(
                        codes,
                        series_id,
                        attribution,
                        generic=generic,
                        no_generic_code=action.no_generic_code,
                        customer=_coupon_customer(c) if c is not None else None,
                    )
                )
            case actions.RevokeCustomerCoupons(customer=c, series_id=series_id):
                return await api.revoke_coupons_by_customer(
                    CustomerCouponsRevoke(_coupon_customer(c), series_id, attribution)
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


_LOYALTY_ACTIONS: dict[type[actions.Action], models.LoyaltyAction[models.LoyaltyCustomer]] = {
    actions.RevokeLoyaltyEnrolment: models.LoyaltyAction.REVOKE_ENROL,
    actions.EnrolLoyalty: models.LoyaltyAction.ENROL,
    actions.IssueLoyaltyEarn: models.LoyaltyAction.EARN,
}


def _coupon_customer(customer: actions.CouponCustomer) -> models.CouponCustomer:
    return models.CouponCustomer(
        id=str(customer.id) if customer.id is not None else None,
        mobile=customer.mobile,
        email=customer.email,
        external_id=customer.external_id,
    )


def _promotion(target: actions.LoyaltyTarget) -> models.LoyaltyPromotionRef:
    return models.LoyaltyPromotionRef(
        program_id=target.program_id,
        promotion_id=target.promotion_id,
        promo_identifier=target.promo_identifier,
    )


def _customer(target: actions.LoyaltyTarget) -> models.LoyaltyCustomer:
    return models.LoyaltyCustomer(identifier_value=target.identifier_value, source=target.source)


def _target_key(target: actions.LoyaltyTarget) -> tuple[int, str, str]:
    promotion = str(target.promotion_id or target.promo_identifier)
    return (target.program_id, promotion, f"{target.identifier_name}:{target.identifier_value}")


def _blocked(action: actions.Action, progress: _EventProgress) -> bool:
    """The step before this one for the same promotion and customer did not succeed."""
    return isinstance(action, _NeedsStepBefore) and _target_key(action.target) in progress.blocked


def _not_attempted(action: _NeedsStepBefore) -> ActionResult:
    return uncalled(
        action,
        ActionStatus.FAILED,
        "not attempted: the step before it for this promotion did not succeed",
        "Replay the event once the earlier step's failure is resolved.",
    )
