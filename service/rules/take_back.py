"""Taking back what an order earned: returns, refunds and exchanges (coupons:
``take_back_coupons.py``).

Each benefit is judged on its own (a full return takes everything; otherwise its threshold
is re-checked on what the customer keeps), then the benefits that go are turned into calls
of the shapes the endpoints accept: explicit earn ids and codes, one action per promotion
or series however many (splitting to the documented limits is the client's and the
coalescer's), in the order the API needs (a loyalty earn before its enrolment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from service.actions import (
    DeactivateCartPromotion,
    ReportKind,
    RevokeCartEarn,
    RevokeLoyaltyEarn,
    RevokeLoyaltyEnrolment,
)
from service.events import (
    CartPromotionEarn,
    CartPromotionMode,
    LoyaltyEarn,
    ReturnEvent,
    ReturnType,
    Threshold,
)
from service.rules.builder import PlanBuilder, Why, dedupe
from service.rules.identifiers import (
    LoyaltyIdentity,
    Missing,
    cart_customer_id,
    loyalty_identity,
    loyalty_target,
)
from service.rules.policy import Policy
from service.rules.thresholds import Kept, evaluate, evaluate_without_threshold, money


@dataclass(frozen=True)
class Judgement:
    """Whether one benefit goes, and why."""

    take: bool
    reason_code: str
    reason: str
    keep_as: ReportKind = ReportKind.STILL_DESERVED


def is_full(event: ReturnEvent, kept: Kept) -> bool:
    """A full return, or an event after which the customer keeps no value."""
    return event.return_type is ReturnType.FULL or kept.keeps_nothing


def judge(threshold: Threshold | None, event: ReturnEvent, kept: Kept, policy: Policy) -> Judgement:
    """Decide whether one benefit is taken back."""
    if event.return_type is ReturnType.FULL:
        return Judgement(True, "full_return", "full return: everything the order earned goes back")
    if kept.keeps_nothing:
        return Judgement(
            True,
            "keeps_nothing",
            f"the customer keeps {money(kept.spend, kept.currency)} of the order, "
            "so it is treated as a full return",
        )
    prefix = ""
    if threshold is not None:
        verdict = evaluate(threshold, kept)
        if verdict.keep is not None:
            return Judgement(not verdict.keep, verdict.reason_code, verdict.reason)
        prefix = f"{verdict.reason}; "
    else:
        settled = evaluate_without_threshold(kept)
        if settled is not None:
            return Judgement(False, settled.reason_code, settled.reason)
        prefix = "no threshold is known for this benefit; "
    if policy.partial_return.without_threshold == "keep":
        return Judgement(
            False,
            "no_threshold_kept",
            f"{prefix}the policy keeps it (partial_return.without_threshold: keep)",
            keep_as=ReportKind.SKIPPED_BY_POLICY,
        )
    return Judgement(
        True,
        "no_threshold_taken_back",
        f"{prefix}the policy takes it back (partial_return.without_threshold: take_back)",
    )


@dataclass
class Group:
    """Benefits of one promotion or series that go, merged across event entries."""

    reasons: list[Judgement] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def add(self, judgement: Judgement, ids: list[str]) -> None:
        """One more entry's ids, with why they go (each reason once)."""
        if judgement.reason not in [j.reason for j in self.reasons]:
            self.reasons.append(judgement)
        self.ids.extend(ids)

    @property
    def reason_code(self) -> str:
        """The first entry's reason code."""
        return self.reasons[0].reason_code

    @property
    def reason(self) -> str:
        """Every entry's reason, joined."""
        return "; ".join(j.reason for j in self.reasons)


_Benefit = Literal["loyalty", "cart", "payment_voucher"]

# Why a benefit that goes is not taken when the event gives no earn ids, by kind of benefit.
_WITHOUT_EARN_IDS: dict[_Benefit, str] = {
    "loyalty": "the event gives no earn ids, and REVOKE_EARN without them would take every earn "
    "of this promotion from the customer. The policy does not allow that for this promotion "
    "(add it to loyalty_promotions with without_earn_ids: revoke_all to allow it)",
    "cart": "the event gives no earn ids, and revokeEarn needs them. The policy does not allow "
    "ending the customer's whole participation instead (without_earn_ids: "
    "deactivate_participation)",
    "payment_voucher": "a PAYMENT_VOUCHER promotion can only be deactivated with its earn id, "
    "and the event gives none",
}


def _earn_ids_missing(builder: PlanBuilder, item: str, group: Group, benefit: _Benefit) -> None:
    """Report a benefit that goes but that the policy does not let go without earn ids."""
    why = _WITHOUT_EARN_IDS[benefit]
    builder.report(
        ReportKind.SKIPPED_BY_POLICY, item, "earn_ids_missing", f"{group.reason}; but {why}"
    )


def _ids_text(ids: list[str]) -> str:
    return ", ".join(ids) if ids else "no earn ids given"


def keep(builder: PlanBuilder, item: str, judgement: Judgement, what: str) -> None:
    """Report a benefit that stays, and why."""
    builder.report(
        judgement.keep_as,
        item,
        judgement.reason_code,
        f"{what}: not taken back, because {judgement.reason}",
    )


def take_back_loyalty(
    event: ReturnEvent, policy: Policy, kept: Kept, earns: list[LoyaltyEarn], builder: PlanBuilder
) -> None:
    """REVOKE_EARN per promotion with explicit earn ids, then REVOKE_ENROL where due."""
    groups: dict[str, tuple[LoyaltyEarn, Group]] = {}
    for earn in earns:
        rule = policy.loyalty_rule(earn)
        threshold = earn.threshold or (rule.threshold if rule else None)
        judgement = judge(threshold, event, kept, policy)
        item = f"loyalty_promotion:{earn.promotion_key}"
        ids = [str(i) for i in earn.earn_ids]
        if not judgement.take:
            keep(
                builder,
                item,
                judgement,
                f"loyalty promotion {earn.promotion_key} ({_ids_text(ids)})",
            )
            continue
        groups.setdefault(earn.promotion_key, (earn, Group()))[1].add(judgement, ids)
    if not groups:
        return

    identity = loyalty_identity(event, policy)
    full = is_full(event, kept)
    enrolments: list[tuple[LoyaltyEarn, LoyaltyIdentity]] = []
    for key, (earn, group) in groups.items():
        item = f"loyalty_promotion:{key}"
        if isinstance(identity, Missing):
            builder.report(
                ReportKind.MISSING_IDENTIFIER, item, identity.reason_code, identity.reason
            )
            continue
        earn_ids = [int(i) for i in dedupe(group.ids)]
        rule = policy.loyalty_rule(earn)
        if earn_ids:
            builder.call(
                RevokeLoyaltyEarn(
                    **builder.head(
                        f"revoke_loyalty_earn:{key}:{','.join(map(str, earn_ids))}", group
                    ),
                    target=loyalty_target(earn, identity),
                    earn_ids=earn_ids,
                )
            )
        elif rule is not None and rule.without_earn_ids == "revoke_all":
            every_earn = Why(
                "policy_revoke_all_earns",
                f"{group.reason}; the event gives no earn ids and the policy "
                "(loyalty_promotions: without_earn_ids: revoke_all) revokes every earn "
                "of this promotion for the customer, including earns of other orders",
            )
            builder.call(
                RevokeLoyaltyEarn(
                    **builder.head(f"revoke_loyalty_earn:{key}:all", every_earn),
                    target=loyalty_target(earn, identity),
                    earn_ids=None,
                    broad=True,
                )
            )
        else:
            _earn_ids_missing(builder, item, group, "loyalty")
            continue
        if earn.promotion_type.is_enrol_and_issue:
            enrolments.append((earn, identity))

    for earn, who in enrolments:
        key = earn.promotion_key
        setting = "full_return" if full else "partial_return"
        unenrol = (
            policy.full_return.revoke_enrolment if full else policy.partial_return.revoke_enrolment
        )
        if unenrol:
            after_earns = Why(
                "revoke_enrolment_after_earn",
                f"enrol-and-issue promotion ({earn.promotion_type}): the enrolment goes "
                f"after its earns ({setting}.revoke_enrolment: true)",
            )
            builder.call(
                RevokeLoyaltyEnrolment(
                    **builder.head(f"revoke_loyalty_enrolment:{key}", after_earns),
                    target=loyalty_target(earn, who),
                )
            )
        else:
            builder.report(
                ReportKind.SKIPPED_BY_POLICY,
                f"loyalty_enrolment:{key}",
                "enrolment_kept",
                f"the earn goes but the customer stays enrolled ({setting}.revoke_enrolment: "
                "false)",
            )


def _cart_mode(entry: CartPromotionEarn, policy: Policy) -> CartPromotionMode:
    # The event's default mode is DISCOUNT; a sender that did not say which mode lets the
    # policy's knowledge of the promotion decide.
    rule = policy.cart_rule(entry.promotion_id)
    if "mode" not in entry.model_fields_set and rule is not None and rule.mode is not None:
        return rule.mode
    return entry.mode


def take_back_cart(
    event: ReturnEvent,
    policy: Policy,
    kept: Kept,
    entries: list[CartPromotionEarn],
    builder: PlanBuilder,
) -> None:
    """revokeEarn or deactivate by earn id; POS and CODE promotions are only reported."""
    groups: dict[tuple[str, CartPromotionMode], tuple[str, Group]] = {}
    for entry in entries:
        rule = policy.cart_rule(entry.promotion_id)
        threshold = entry.threshold or (rule.threshold if rule else None)
        judgement = judge(threshold, event, kept, policy)
        mode = _cart_mode(entry, policy)
        if not judgement.take:
            keep(
                builder,
                f"cart_promotion:{entry.promotion_id}",
                judgement,
                f"cart promotion {entry.promotion_id} ({_ids_text(entry.earn_ids)})",
            )
            continue
        key = (entry.promotion_id.lower(), mode)
        groups.setdefault(key, (entry.promotion_id, Group()))[1].add(judgement, entry.earn_ids)
    if not groups:
        return

    customer_id = cart_customer_id(event)
    for (_, mode), (promotion_id, group) in groups.items():
        item = f"cart_promotion:{promotion_id}"
        earn_ids = dedupe(group.ids, fold_case=True)
        if mode in (CartPromotionMode.POS, CartPromotionMode.CODE):
            builder.report(
                ReportKind.NOT_REVOCABLE,
                item,
                "pos_code_not_revocable",
                f"{group.reason}; but {mode} cart promotions cannot be revoked or deactivated "
                f"through the API (730, 707), so nothing is called ({_ids_text(earn_ids)})",
            )
            continue
        if isinstance(customer_id, Missing):
            builder.report(
                ReportKind.MISSING_IDENTIFIER, item, customer_id.reason_code, customer_id.reason
            )
            continue
        if mode is CartPromotionMode.PAYMENT_VOUCHER:
            _payment_voucher(builder, customer_id, promotion_id, group, earn_ids)
        elif earn_ids:
            # One action however many ids: splitting to the API's limits is the client's.
            builder.call(
                RevokeCartEarn(
                    **builder.head(f"revoke_cart_earn:{promotion_id}:{earn_ids[0]}", group),
                    customer_id=customer_id,
                    promotion_id=promotion_id,
                    earn_ids=earn_ids,
                )
            )
        else:
            rule = policy.cart_rule(promotion_id)
            if rule and rule.without_earn_ids == "deactivate_participation":
                participation = Why(
                    "policy_deactivate_participation",
                    f"{group.reason}; the event gives no earn ids and the policy "
                    "(cart_promotions: without_earn_ids: deactivate_participation) ends "
                    "the customer's whole participation in this promotion",
                )
                builder.call(
                    DeactivateCartPromotion(
                        **builder.head(
                            f"deactivate_cart_promotion:{promotion_id}:all", participation
                        ),
                        customer_id=customer_id,
                        promotion_id=promotion_id,
                        earn_id=None,
                        broad=True,
                    )
                )
            else:
                _earn_ids_missing(builder, item, group, "cart")


def _payment_voucher(
    builder: PlanBuilder, customer_id: int, promotion_id: str, group: Group, earn_ids: list[str]
) -> None:
    item = f"cart_promotion:{promotion_id}"
    if not earn_ids:
        _earn_ids_missing(builder, item, group, "payment_voucher")
        return
    why = Why(
        group.reason_code,
        f"{group.reason}; PAYMENT_VOUCHER mode: deactivated with the earn id instead of revoked",
    )
    for earn_id in earn_ids:
        builder.call(
            DeactivateCartPromotion(
                **builder.head(f"deactivate_cart_promotion:{promotion_id}:{earn_id}", why),
                customer_id=customer_id,
                promotion_id=promotion_id,
                earn_id=earn_id,
            )
        )
