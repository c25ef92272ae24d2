"""The benefit ledger: what this service did in Capillary, item by item, event by event.

Capillary's EARN has no idempotency key, and no call says what an order earned or which
event revoked what: the service's own record is the only truth about the money it moved.
Each handled event gets a :class:`LedgerEntry` listing, item by item, what its calls did
(revoked with Capillary's code, deactivated, refused and why, kept, issued again with the
new earn or issual id) and which attempt did it. The entry travels in the event's state
record (``pipeline/state.py``): written in the same Kafka transaction as the outcome,
restored on assignment, forgotten after the dedupe window.

The ledger decides two things:

* what a cancellation gives back: what its return revoked and nothing else
  (:class:`ReturnRecord`, an input of the rules); the event's ``taken_back`` is a hint;
* what a repeat of an event (the retry path, a read after a crash or an outage, a replay)
  does not do again (:class:`Prior`, an input of the executor): give-backs made or maybe
  made, deactivations, whatever was taken back already.

Customers appear by numeric or external id; a mobile or an e-mail only as a digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from service import actions
from service.events import (
    CancelledReturn,
    CustomerRef,
    LoyaltyEarn,
    LoyaltyPromotionType,
    ReturnEvent,
    ReturnType,
)
from service.outcome import ActionResult, ActionStatus

GIVE_BACK_KINDS = frozenset({"enrol_loyalty", "issue_loyalty_earn"})
"""Action kinds that give something back: never made twice (EARN has no idempotency key)."""

TAKEN = frozenset({ActionStatus.REVOKED, ActionStatus.ALREADY_REVOKED})
"""Item statuses that leave the benefit taken back."""

AS_DONE_BEFORE = {
    ActionStatus.REVOKED: ActionStatus.ALREADY_REVOKED,
    ActionStatus.RESTORED: ActionStatus.ALREADY_RESTORED,
}
"""How a later outcome of the same event reports what an earlier one did."""

SETTLED = frozenset(
    {
        ActionStatus.REVOKED,
        ActionStatus.ALREADY_REVOKED,
        ActionStatus.KEPT,
        ActionStatus.REFUSED_REDEEMED,
    }
)
"""Take-back results a repeat does not ask again: Capillary's answer cannot change, and a
broad call or a deactivation asked again would take more than the order earned."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoyaltyRef(_Model):
    """A loyalty promotion, enough to issue it again."""

    program_id: int
    promotion_id: int | None = None
    promo_identifier: str | None = None
    promotion_type: LoyaltyPromotionType

    @property
    def key(self) -> str:
        """``program/promotion``, as the rules name a promotion."""
        ref = self.promotion_id if self.promotion_id is not None else self.promo_identifier
        return f"{self.program_id}/{ref}"

    @classmethod
    def of(cls, promotion: LoyaltyEarn | actions.LoyaltyTarget) -> LoyaltyRef:
        """The promotion as an event names it, or of a planned loyalty call."""
        return cls(
            program_id=promotion.program_id,
            promotion_id=promotion.promotion_id,
            promo_identifier=promotion.promo_identifier,
            promotion_type=promotion.promotion_type,
        )


class LedgerItem(_Model):
    """One thing an event's call touched, and how it ended."""

    action_id: str
    """The planned action (stable across attempts and replays of the event)."""
    kind: str
    """The action's kind: revoke_loyalty_earn, issue_loyalty_earn, deactivate_cart_promotion..."""
    item: str
    """What was touched: loyalty_earn:974, loyalty_enrolment:2714/202779, cart_earn:<id>,
    coupon:<code>, deactivation:<promotion>/<customer>[/<earn>], loyalty_issue:2714/202090."""
    status: ActionStatus
    code: int | None = None
    """Capillary's code behind the status, when there was one."""
    attempt: int = 1
    """The attempt of the event that got this result."""
    loyalty: LoyaltyRef | None = None
    """Loyalty items: the promotion."""
    promotion: str | None = None
    """Cart items: the cart promotion; coupons: the series."""
    earn_id: int | None = None
    """A loyalty earn the item names (revoked, or listed by a broad revoke)."""
    issual_id: str | None = None
    """An enrolment's issual id: revoked, or made by a give-back."""
    earned_id: str | None = None
    """The new earn id a give-back EARN answered."""
    replaces: str | None = None
    """Give-backs: the return's item this restores (loyalty_earn:974, loyalty_enrolment:...)."""
    report_kind: str | None = None
    """Items reported without a call: why (still_deserved, not_restorable...)."""


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=8, person=b"rh-customer").hexdigest()


class CustomerMark(_Model):
    """Who an event was about, comparable without keeping a mobile or an e-mail."""

    id: int | None = None
    external_id: str | None = None
    mobile: str | None = None
    """Digest of the mobile number (digits only)."""
    email: str | None = None
    """Digest of the e-mail address (lower case)."""

    @classmethod
    def of(cls, customer: CustomerRef) -> CustomerMark:
        """The mark of the customer an event names."""
        return cls(
            id=customer.id,
            external_id=customer.external_id,
            mobile=_digest(customer.mobile.removeprefix("+")) if customer.mobile else None,
            email=_digest(customer.email.strip().lower()) if customer.email else None,
        )

    def same_as(self, other: CustomerMark) -> bool | None:
        """False when an identifier both name differs, True when one matches, else None."""
        verdict: bool | None = None
        for mine, theirs in (
            (self.id, other.id),
            (self.external_id, other.external_id),
            (self.mobile, other.mobile),
            (self.email, other.email),
        ):
            if mine is None or theirs is None:
                continue
            if mine != theirs:
                return False
            verdict = True
        return verdict


class LedgerEntry(_Model):
    """What one event did in Capillary, item by item."""

    event_id: str
    return_type: ReturnType
    order_id: str
    customer: CustomerMark
    cancels: str | None = None
    """A cancellation that was decided against its return: that return's event id. A later
    cancellation of the same return finds it here and gives nothing back again."""
    items: list[LedgerItem] = []

    def by_action(self) -> dict[str, tuple[LedgerItem, ...]]:
        """The items, grouped by the action that touched them."""
        grouped: dict[str, list[LedgerItem]] = {}
        for item in self.items:
            grouped.setdefault(item.action_id, []).append(item)
        return {action_id: tuple(items) for action_id, items in grouped.items()}


def entry_of(
    event: ReturnEvent,
    plan: actions.Plan,
    results: Sequence[ActionResult],
    *,
    attempt: int,
    cancels: str | None = None,
    earlier: LedgerEntry | None = None,
) -> LedgerEntry:
    """The ledger entry of an event from its plan and its actions' results.

    ``results`` may cover only the first actions of the plan (an attempt interrupted by an
    outage). Items of ``earlier`` whose action is not among the results (a policy that
    changed between attempts, actions not reached) are kept, and so is an earlier item a
    result only repeats as done before (a replay's ``already_restored``): the ledger keeps
    the first-hand account, with its attempt.
    """
    planned = {action.action_id: action for action in plan.actions}
    before = {(i.action_id, i.item): i for i in earlier.items} if earlier is not None else {}
    items: list[LedgerItem] = []
    for result in results:
        action = planned.get(result.action_id)
        if action is None:
            continue
        for item in _items(action, result, attempt):
            first = before.get((item.action_id, item.item))
            if first is not None and AS_DONE_BEFORE.get(first.status) is item.status:
                item = first
            items.append(item)
    done = {result.action_id for result in results}
    if earlier is not None:
        kept = [item for item in earlier.items if item.action_id not in done]
        items = kept + items
    return LedgerEntry(
        event_id=event.event_id,
        return_type=event.return_type,
        order_id=event.order.order_id,
        customer=CustomerMark.of(event.customer),
        cancels=cancels if cancels is not None else (earlier.cancels if earlier else None),
        items=items,
    )


def _items(action: actions.Action, result: ActionResult, attempt: int) -> list[LedgerItem]:
    if isinstance(action, actions.Report):
        return [
            _item(
                action_id=action.action_id,
                kind=action.kind,
                item=action.item,
                status=ActionStatus.SKIPPED,
                attempt=attempt,
                report_kind=str(action.report_kind),
            )
        ]
    loyalty = LoyaltyRef.of(action.target) if isinstance(action, actions.LoyaltyCall) else None
    promotion: str | None = None
    if isinstance(action, actions.CartCall):
        promotion = action.promotion_id
    elif isinstance(action, actions.CouponCall) and action.series_id:
        promotion = str(action.series_id)
    found: list[LedgerItem] = []
    for item in result.items:
        base: dict[str, Any] = {
            "action_id": action.action_id,
            "kind": action.kind,
            "status": item.status,
            "code": item.code,
            "attempt": item.attempt or attempt,
            "loyalty": loyalty,
            "promotion": promotion,
        }
        detail = item.detail
        if isinstance(action, actions.RevokeLoyaltyEarn) and action.earn_ids is None:
            # A broad revoke names no earn: what it took is what Capillary listed.
            revoked = [int(e) for e in detail.get("revoked_earn_ids", "").split(",") if e]
            found.extend(
                _item(**base, item=f"loyalty_earn:{earn}", earn_id=earn) for earn in revoked
            )
            if not revoked:
                found.append(_item(**base, item=item.item))
        elif isinstance(action, actions.RevokeLoyaltyEarn):
            earn_id = _loyalty_earn(item.item)
            found.append(_item(**base, item=item.item, earn_id=earn_id))
        elif isinstance(action, actions.RevokeLoyaltyEnrolment | actions.EnrolLoyalty):
            assert loyalty is not None
            enrolment = f"loyalty_enrolment:{loyalty.key}"
            # An enrolment given back restores the very enrolment its return revoked.
            replaces = enrolment if isinstance(action, actions.EnrolLoyalty) else None
            issual_id = detail.get("issual_id")
            found.append(_item(**base, item=enrolment, issual_id=issual_id, replaces=replaces))
        elif isinstance(action, actions.IssueLoyaltyEarn):
            assert loyalty is not None
            found.append(
                _item(
                    **base,
                    item=f"loyalty_issue:{loyalty.key}",
                    earned_id=detail.get("earned_id"),
                    issual_id=detail.get("issual_id"),
                    replaces=(
                        f"loyalty_earn:{action.replaces_earn_id}"
                        if action.replaces_earn_id is not None
                        else None
                    ),
                )
            )
        else:
            found.append(_item(**base, item=item.item))
    return found


_item = LedgerItem


def _loyalty_earn(item: str) -> int | None:
    kind, _, value = item.partition(":")
    return int(value) if kind == "loyalty_earn" and value.isdigit() else None


# --------------------------------------------------------------------------- for the executor


@dataclass(frozen=True)
class Prior:
    """What earlier runs of this event did: the executor does not do it again.

    ``published``: an earlier outcome of the event exists (a replay, or a retry record read
    after the event was finished another way), so what it did is reported as done before
    (``already_revoked``, ``already_restored``); otherwise the earlier runs were attempts of
    this very outcome (the retry path, a read after a crash or an outage) and their results
    are this outcome's, marked with their attempt.
    """

    by_action: Mapping[str, tuple[LedgerItem, ...]] = field(default_factory=dict)
    published: bool = False
    intents: frozenset[str] = frozenset()
    """Give-backs an earlier attempt called without recording the answer (a crash)."""
    issued: frozenset[str] = frozenset()
    """Give-backs a replay's headers say an earlier outcome made."""
    allow_reissue: bool = False
    """The operator allowed give-backs to be made again (``--allow-reissue``)."""
    tried_before: bool = False
    """An earlier attempt may have made calls that left no record (a crash): an "invalid or
    already revoked" answer then most likely means that attempt did it."""

    @classmethod
    def of(
        cls,
        entry: LedgerEntry | None,
        *,
        published: bool,
        intents: Iterable[str] = (),
        issued: Iterable[str] = (),
        allow_reissue: bool = False,
        tried_before: bool = False,
    ) -> Prior:
        """The prior work an entry (and the intents, the replay headers) show."""
        return cls(
            by_action=entry.by_action() if entry is not None else {},
            published=published,
            intents=frozenset(intents),
            issued=frozenset(issued),
            allow_reissue=allow_reissue,
            tried_before=tried_before,
        )


# --------------------------------------------------------------------------- for the rules


@dataclass(frozen=True)
class ReturnRecord:
    """What the ledger says a cancelled return took, for the rules to give back."""

    event_id: str
    items: tuple[LedgerItem, ...]
    customer: CustomerMark | None = None
    cancelled_by: str | None = None
    """Another event cancelled this return first."""
    claimed: bool = False
    """Built from the cancellation's own claim (the policy trusts claims), not the ledger."""

    @classmethod
    def of(cls, entry: LedgerEntry, *, cancelled_by: str | None = None) -> ReturnRecord:
        """The record of a return the ledger knows."""
        return cls(
            event_id=entry.event_id,
            items=tuple(entry.items),
            customer=entry.customer,
            cancelled_by=cancelled_by,
        )

    @classmethod
    def claimed_by(cls, cancelled: CancelledReturn) -> ReturnRecord:
        """What the cancellation claims its return took, taken at its word."""
        items: list[LedgerItem] = []
        for earn in cancelled.taken_back.loyalty_promotions:
            ref = LoyaltyRef.of(earn)
            items.extend(
                _claimed("revoke_loyalty_earn", f"loyalty_earn:{i}", loyalty=ref, earn_id=i)
                for i in earn.earn_ids
            )
        for earn in cancelled.enrolments_revoked:
            ref = LoyaltyRef.of(earn)
            items.append(
                _claimed(
                    "revoke_loyalty_enrolment",
                    f"loyalty_enrolment:{ref.key}",
                    loyalty=ref,
                    issual_id=earn.issual_id,
                )
            )
        for cart in cancelled.taken_back.cart_promotions:
            promotion = cart.promotion_id
            items.extend(
                _claimed(
                    "revoke_cart_earn", f"cart_earn:{i}", f"cart:{promotion}", promotion=promotion
                )
                for i in cart.earn_ids
            )
        for coupons in cancelled.taken_back.coupons:
            series = str(coupons.series_id)
            items.extend(
                _claimed(
                    "revoke_coupon_codes", f"coupon:{code}", f"coupons:{series}", promotion=series
                )
                for code in coupons.codes
            )
        return cls(event_id=cancelled.return_event_id, items=tuple(items), claimed=True)


def _claimed(kind: str, item: str, group: str | None = None, **known: Any) -> LedgerItem:
    # A claimed item stands as a revoke would have recorded it: a loyalty item is its own
    # action, a cart promotion's earns or a series' codes share one (``group``).
    return LedgerItem(
        action_id=f"claim:{group or item}",
        kind=kind,
        item=item,
        status=ActionStatus.REVOKED,
        **known,
    )


@dataclass(frozen=True)
class LedgerFacts:
    """What the ledger says that the rules need for one event (nothing for most events)."""

    returned: ReturnRecord | None = None
    """CANCELLED events: their return, when the ledger knows it."""
    cancelled_by: str | None = None
    """A replayed return that another event cancelled since (and no operator allowed it)."""


__all__ = [
    "AS_DONE_BEFORE",
    "GIVE_BACK_KINDS",
    "SETTLED",
    "TAKEN",
    "CustomerMark",
    "LedgerEntry",
    "LedgerFacts",
    "LedgerItem",
    "LoyaltyRef",
    "Prior",
    "ReturnRecord",
    "entry_of",
]
