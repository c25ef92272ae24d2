"""The plan: what the rules decided to do for one event, each action with its reason.

The rules produce a :class:`Plan`; the executor turns its actions into
Capillary calls; the outcome reports one result per action. Actions name
exactly what they touch (explicit earn ids and coupon codes); the broad forms
that take more than one order earned exist only where the policy asks for
them, and then say so in ``broad``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from service.events import LoyaltyPromotionType

IdentifierName = Literal["id", "mobile", "email"]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action_id: str = Field(description="Stable within the event: names what the action touches.")
    reason_code: str = Field(description="Machine-readable reason, snake_case.")
    reason: str = Field(description="Why the rules chose this action, for people.")

    @property
    def is_broad(self) -> bool:
        """True for a broad form: it reaches beyond the order (every earn, every coupon)."""
        # Only the forms that can be broad have the field; getattr with a default would go
        # through pydantic's __getattr__ and an exception for the others, on every event.
        return self.__dict__.get("broad", False) is True


class LoyaltyTarget(BaseModel):
    """A loyalty promotion and the customer, as the loyalty endpoints name them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    program_id: int
    promotion_id: int | None = None
    promo_identifier: str | None = None
    promotion_type: LoyaltyPromotionType
    identifier_name: IdentifierName
    identifier_value: str
    source: str

    @model_validator(mode="after")
    def _one_promotion(self) -> LoyaltyTarget:
        # A give-back's target comes from the ledger, not from a validated event: a call
        # must never go for a promotion named twice over, or not at all.
        if (self.promotion_id is None) == (self.promo_identifier is None):
            raise ValueError(
                "a loyalty target names exactly one of promotion_id and promo_identifier"
            )
        return self


class RevokeLoyaltyEarn(_Action):
    """REVOKE_EARN on the loyalty bulk endpoint."""

    kind: Literal["revoke_loyalty_earn"] = "revoke_loyalty_earn"
    target: LoyaltyTarget
    earn_ids: list[int] | None = Field(
        description="None only when the policy explicitly allows revoking every earn."
    )
    broad: bool = False


class RevokeLoyaltyEnrolment(_Action):
    """REVOKE_ENROL: only enrol-and-issue promotions, after that customer's REVOKE_EARN."""

    kind: Literal["revoke_loyalty_enrolment"] = "revoke_loyalty_enrolment"
    target: LoyaltyTarget


class EnrolLoyalty(_Action):
    """ENROL, to give back an enrolment a cancelled return had revoked."""

    kind: Literal["enrol_loyalty"] = "enrol_loyalty"
    target: LoyaltyTarget


class IssueLoyaltyEarn(_Action):
    """EARN, to give back an earn a cancelled return had revoked. Not idempotent."""

    kind: Literal["issue_loyalty_earn"] = "issue_loyalty_earn"
    target: LoyaltyTarget
    replaces_earn_id: int | None = None


class RevokeCartEarn(_Action):
    """Cart revokeEarn for one customer (numeric id) and one promotion."""

    kind: Literal["revoke_cart_earn"] = "revoke_cart_earn"
    customer_id: int
    promotion_id: str
    earn_ids: list[str]


class DeactivateCartPromotion(_Action):
    """Deactivate: with ``earn_id`` for PAYMENT_VOUCHER mode; without it ends participation."""

    kind: Literal["deactivate_cart_promotion"] = "deactivate_cart_promotion"
    customer_id: int
    promotion_id: str
    earn_id: str | None
    broad: bool = False


class CouponCustomer(BaseModel):
    """A customer as the coupon endpoint names one: exactly one identifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int | None = None
    mobile: str | None = None
    email: str | None = None
    external_id: str | None = None


class RevokeCouponCodes(_Action):
    """Coupon revoke by codes. ``series_id`` None sends each code on its own.

    Several codes with the id of a series that holds a generic code revoke every coupon of
    the series (the revoke page), and no answer says whether a series holds one, so what the
    policy declares decides the request:

    * ``generic`` (the series holds one): each code on its own, with the customer named
      ("a user ID must be provided when dealing with generic coupon series");
    * ``no_generic_code`` (declared free of them): up to 50 codes with the series id and no
      customer, codes of other events' customers in the same call;
    * neither (not known, the default): the codes go with ``customer`` named, so that only
      this customer's coupons can go; without a customer, one code a call.
    """

    kind: Literal["revoke_coupon_codes"] = "revoke_coupon_codes"
    series_id: int | None
    codes: list[str]
    generic: bool = False
    no_generic_code: bool = False
    customer: CouponCustomer | None = None

    @model_validator(mode="after")
    def _one_declaration(self) -> RevokeCouponCodes:
        if self.generic and self.no_generic_code:
            raise ValueError("a series cannot both hold a generic code and be free of them")
        return self


class RevokeCustomerCoupons(_Action):
    """Coupon revoke by customer: up to 100 unredeemed coupons; only by explicit policy."""

    kind: Literal["revoke_customer_coupons"] = "revoke_customer_coupons"
    customer: CouponCustomer
    series_id: int | None
    broad: bool = True


class ReportKind(StrEnum):
    """Why an item gets no call, as the outcome reports it."""

    STILL_DESERVED = "still_deserved"
    SKIPPED_BY_POLICY = "skipped_by_policy"
    NOT_REVOCABLE = "not_revocable"
    MISSING_IDENTIFIER = "missing_identifier"
    NOT_RESTORABLE = "not_restorable"
    OUTSIDE_RETURN_WINDOW = "outside_return_window"
    NOTHING_EARNED = "nothing_earned"
    RETURN_UNKNOWN = "return_unknown"
    """A cancellation of a return the ledger does not know: nothing is given back."""
    ALREADY_CANCELLED = "already_cancelled"
    """The return was cancelled by another event first: nothing is given back again."""
    NOT_TAKEN_BACK = "not_taken_back"
    """The cancelled return did not take this item back, so it is not given back."""
    TAKEN_BACK_UNCONFIRMED = "taken_back_unconfirmed"
    """The return's own answer for this item was ambiguous: checked by hand, not given."""
    CUSTOMER_MISMATCH = "customer_mismatch"
    """The cancellation names another customer than its return did: nothing is given."""
    CANCELLED_SINCE = "cancelled_since"
    """A replayed return that was cancelled since: nothing is taken back again."""


class Report(_Action):
    """No call: the item is named in the outcome with why nothing was done."""

    kind: Literal["report"] = "report"
    report_kind: ReportKind
    item: str = Field(description="What the report is about, e.g. cart_earn:<id>.")


LoyaltyCall = RevokeLoyaltyEarn | RevokeLoyaltyEnrolment | EnrolLoyalty | IssueLoyaltyEarn
"""The loyalty calls: each names its promotion and its customer in ``target``."""
CartCall = RevokeCartEarn | DeactivateCartPromotion
"""The cart promotion calls: one customer (numeric id) and one promotion."""
CouponCall = RevokeCouponCodes | RevokeCustomerCoupons
"""The coupon revokes, by codes or by customer; ``series_id`` may be None in both."""

Action = Annotated[LoyaltyCall | CartCall | CouponCall | Report, Field(discriminator="kind")]


class Decision(StrEnum):
    """The plan in one word."""

    TAKE_BACK = "take_back"
    GIVE_BACK = "give_back"
    NOTHING_TO_DO = "nothing_to_do"


class Plan(BaseModel):
    """The ordered actions for one event. Order matters: executed first to last."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    decision: Decision
    summary: str
    decided_at: AwareDatetime
    policy_version: str
    actions: list[Action] = Field(default_factory=list)
