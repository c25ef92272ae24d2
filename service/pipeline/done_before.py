"""What an earlier run of the event did: results from the ledger, never a second call.

The ledger (``service/ledger.py``) of an event holds what each of its runs got (the retry
path, a read after a crash or an outage, a replay). A give-back made or maybe made is never
called twice: EARN has no idempotency key and the deactivate page has no "already
deactivated" answer. A take-back Capillary settled (revoked, kept, redeemed) is not asked
again. Such actions are reported from the ledger, with the attempt that got them; the
executor (``execute.py``) calls the rest and reads a repeat's answers with this history.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.actions import (
    Action,
    DeactivateCartPromotion,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    Plan,
    Report,
)
from service.capillary.results import ItemResult as ApiItemResult
from service.ledger import AS_DONE_BEFORE, SETTLED, LedgerEntry, LedgerItem, Prior
from service.outcome import ActionResult, ActionStatus, ItemResult

Unrepeatable = EnrolLoyalty | IssueLoyaltyEarn | DeactivateCartPromotion
"""Calls that must not be made twice: EARN has no idempotency key, and the deactivate page
has no "already deactivated" answer (a participation ended twice could end a new one)."""

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


def worst(statuses: Sequence[ActionStatus]) -> ActionStatus:
    """The status that says the most about an action made of several items."""
    if not statuses:
        return ActionStatus.FAILED
    return min(statuses, key=_SEVERITY.index)


def result(
    action: Action,
    status: ActionStatus,
    items: list[ItemResult],
    *,
    report_kind: str | None = None,
    api_results: Sequence[ApiItemResult] = (),
    next_step: str | None = None,
    broad: bool | None = None,
) -> ActionResult:
    """An action's result from its items and the client's answers (attempts, request ids).

    ``next_step`` stands where no answer names one; ``broad`` is the action's unless given.
    """
    next_steps = sorted({r.next_step for r in api_results if r.next_step})
    request_ids = list(dict.fromkeys(rid for r in api_results for rid in r.request_ids))
    return ActionResult(
        action_id=action.action_id,
        kind=action.kind,
        reason_code=action.reason_code,
        reason=action.reason,
        status=status,
        report_kind=report_kind,
        broad=action.is_broad if broad is None else broad,
        items=items,
        attempts=max((r.attempts for r in api_results), default=0),
        elapsed_ms=max((r.elapsed_ms for r in api_results), default=0.0),
        request_ids=request_ids,
        next_step="; ".join(next_steps) if next_steps else next_step,
    )


def uncalled(
    action: Action,
    status: ActionStatus,
    message: str,
    next_step: str | None,
    detail: dict[str, str] | None = None,
) -> ActionResult:
    """The result of an action that was not called, as one item saying why."""
    item = ItemResult(item=action.action_id, status=status, message=message, detail=detail or {})
    # Not called now, so it reaches nothing beyond the order, whatever it would have.
    return result(action, status, [item], next_step=next_step, broad=False)


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
    return uncalled(
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
    return uncalled(
        action,
        ActionStatus.UNCONFIRMED,
        "not called again: an earlier attempt of this event may have deactivated it before "
        'it crashed, and the deactivate page has no "already deactivated" answer',
        f"Check in Capillary whether {what} of cart promotion {action.promotion_id} is "
        f"deactivated for customer id {action.customer_id}; deactivate it by hand only if not.",
        {"customer": f"id {action.customer_id}", "promotion": action.promotion_id},
    )


def _issued_before(action: EnrolLoyalty | IssueLoyaltyEarn) -> ActionResult:
    return uncalled(
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
                result(action, ActionStatus.SKIPPED, [], report_kind=str(action.report_kind))
            )
        elif (before := done_before(action, earlier, prior, attempt)) is not None:
            results.append(before)
        elif earlier:
            results.append(_from_ledger(action, earlier, prior, attempt))
        else:
            results.append(
                uncalled(
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


def done_before(
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
    return result(action, worst([item.status for item in items]), items)


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


def merged(
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


__all__ = [
    "Unrepeatable",
    "done_before",
    "merged",
    "result",
    "results_from_ledger",
    "uncalled",
    "worst",
]
