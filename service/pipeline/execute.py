"""Plan to Capillary calls: each action in order, one classified result per item.

The client splits, rate-limits and retries; this step chooses the call for
each action, keeps the order the rules gave (an earn before its enrolment),
does not attempt an action whose prerequisite did not succeed, and turns the
client's classes into the statuses of the outcome event.

What an earlier run of the same event did (the ledger: the retry path, a read after a crash
or an outage, a replay) is not done again: a give-back made or maybe made is never called
twice, and a take-back Capillary settled (revoked, kept, redeemed) is not asked again, so a
deactivation or a broad call never repeats. Its result is reported from the ledger, with
the attempt that got it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
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
from service.errors import CapillaryInterruptedError, CapillaryUnavailableError
from service.events import ReturnEvent
from service.ledger import AS_DONE_BEFORE, SETTLED, LedgerEntry, LedgerItem, Prior
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
        no_generic_code: bool = False,
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


def worst(statuses: Sequence[ActionStatus]) -> ActionStatus:
    """The status that says the most about an action made of several items."""
    if not statuses:
        return ActionStatus.FAILED
    return min(statuses, key=_SEVERITY.index)


Unrepeatable = EnrolLoyalty | IssueLoyaltyEarn | DeactivateCartPromotion
"""Calls that must not be made twice: EARN has no idempotency key, and the deactivate page
has no "already deactivated" answer (a participation ended twice could end a new one)."""

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
        plan: Plan,
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
            before = _done_before(action, earlier, prior, attempt)
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
            results.append(_merged(result, earlier, prior, attempt))
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
                    no_generic_code=action.no_generic_code,
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
    """Not called again: an earlier attempt (or an answer nobody could match) may have made it."""
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
        "not called again: an earlier attempt of this event may have made this call (it "
        "crashed before the answer was recorded, or the answer could not be matched)",
        f"Check in Capillary whether customer {who} holds promotion {promotion}; "
        "enrol or issue it by hand only if not.",
        {"customer": who, "promotion": promotion},
    )


def _deactivation_unconfirmed(action: DeactivateCartPromotion) -> ActionResult:
    what = f"earn {action.earn_id}" if action.earn_id else "the participation"
    return _uncalled(
        action,
        ActionStatus.UNCONFIRMED,
        "not called again: an earlier attempt of this event may have deactivated it before "
        'it crashed, and the deactivate page has no "already deactivated" answer',
        f"Check in Capillary whether {what} of cart promotion {action.promotion_id} is "
        f"deactivated for customer id {action.customer_id}; deactivate it by hand only if not.",
        {"customer": f"id {action.customer_id}", "promotion": action.promotion_id},
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


def results_from_ledger(
    plan: Plan,
    ledger: LedgerEntry | None,
    *,
    attempt: int,
    missing: str,
    intents: frozenset[str] = frozenset(),
) -> list[ActionResult]:
    """A plan's results as the ledger has them, with no call: what each attempt did.

    For the last outcome of an event its attempts could not finish (Capillary kept failing
    for it alone). An action the ledger does not show finished is ``failed`` with
    ``missing`` as the reason; a give-back one of them may have made is ``unconfirmed``.
    """
    prior = Prior.of(ledger, published=False, intents=intents)
    results: list[ActionResult] = []
    for action in plan.actions:
        earlier = prior.by_action.get(action.action_id, ())
        if isinstance(action, Report):
            results.append(
                _result(action, ActionStatus.SKIPPED, [], report_kind=str(action.report_kind))
            )
        elif (before := _done_before(action, earlier, prior, attempt)) is not None:
            results.append(before)
        elif earlier:
            results.append(_from_ledger(action, earlier, prior, attempt))
        else:
            results.append(
                _uncalled(
                    action,
                    ActionStatus.FAILED,
                    missing,
                    "Replay the event once the cause is found: the ledger keeps what was done "
                    "from being done again.",
                )
            )
    return results


_GONE_NOW = frozenset({ActionStatus.ALREADY_REVOKED, ActionStatus.NOT_FOUND})
_TAKEN_BEFORE = frozenset({ActionStatus.REVOKED, ActionStatus.ALREADY_REVOKED})
_MADE = frozenset({ActionStatus.RESTORED, ActionStatus.ALREADY_RESTORED})


def _done_before(
    action: Action, earlier: Sequence[LedgerItem], prior: Prior, attempt: int
) -> ActionResult | None:
    """The result of an action an earlier run of this event settled; ``None``: call it."""
    if isinstance(action, Report):
        return None
    if isinstance(action, EnrolLoyalty | IssueLoyaltyEarn):
        if prior.allow_reissue:
            return None
        made = [item for item in earlier if item.status in _MADE]
        if made:
            return _from_ledger(action, made, prior, attempt)
        if _may_have_been_made(action, earlier, prior):
            return _unconfirmed(action)
        if action.action_id in prior.issued:
            return _issued_before(action)
        return None
    if earlier and all(item.status in SETTLED for item in earlier):
        return _from_ledger(action, earlier, prior, attempt)
    if isinstance(action, DeactivateCartPromotion) and _may_have_been_made(action, earlier, prior):
        return _deactivation_unconfirmed(action)
    return None


def _may_have_been_made(action: Unrepeatable, earlier: Sequence[LedgerItem], prior: Prior) -> bool:
    """An earlier run called it without an answer that says what happened: it found it
    unconfirmed, or left an intent and crashed before the answer was recorded."""
    if any(item.status is ActionStatus.UNCONFIRMED for item in earlier):
        return True
    return not earlier and action.action_id in prior.intents


def _from_ledger(
    action: Action, earlier: Sequence[LedgerItem], prior: Prior, attempt: int
) -> ActionResult:
    items = [_item_from_ledger(item, prior, attempt) for item in earlier]
    return ActionResult(
        action_id=action.action_id,
        kind=action.kind,
        reason_code=action.reason_code,
        reason=action.reason,
        status=worst([item.status for item in items]),
        broad=bool(getattr(action, "broad", False)),
        items=items,
    )


def _item_from_ledger(item: LedgerItem, prior: Prior, attempt: int) -> ItemResult:
    detail = {
        name: value
        for name, value in (("earned_id", item.earned_id), ("issual_id", item.issual_id))
        if value
    }
    if prior.published:
        return ItemResult(
            item=item.item,
            status=AS_DONE_BEFORE.get(item.status, item.status),
            code=item.code,
            message="done by an earlier outcome of this event (the ledger says so); not asked "
            "again",
            detail=detail,
        )
    return ItemResult(
        item=item.item,
        status=item.status,
        code=item.code,
        message=f"done by attempt {item.attempt} of this event; not asked again",
        detail=detail,
        attempt=item.attempt if item.attempt != attempt else None,
    )


def _merged(
    result: ActionResult, earlier: Sequence[LedgerItem], prior: Prior, attempt: int
) -> ActionResult:
    """A repeat's answers, read with what the ledger says the earlier runs got.

    "Invalid or already revoked" now, for an item an earlier run revoked, is that run's
    revoke; for one an earlier run found missing, it is still missing.
    """
    if not earlier:
        return result
    by_item = {item.item: item for item in earlier}
    single = len(earlier) == 1 and len(result.items) == 1
    items: list[ItemResult] = []
    for new in result.items:
        old = earlier[0] if single else by_item.get(new.item)
        if old is not None and old.status in _TAKEN_BEFORE and new.status in _GONE_NOW:
            items.append(_item_from_ledger(old, prior, attempt))
        elif (
            old is not None
            and old.status is ActionStatus.NOT_FOUND
            and new.status is ActionStatus.ALREADY_REVOKED
        ):
            items.append(new.model_copy(update={"status": ActionStatus.NOT_FOUND}))
        else:
            items.append(new)
    if items == result.items:
        return result
    return result.model_copy(
        update={"items": items, "status": worst([i.status for i in items if i.asked])}
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
