"""The input contract: a return, refund, exchange or cancelled return on the returns topic.

One JSON object per Kafka message, snake_case, validated strictly (unknown
fields are refused so that a misspelt field is dead-lettered instead of being
silently ignored). ``schemas/return-event.v1.json`` is generated from these
models; ``return-handler schemas --check`` fails when the two drift.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.event_fields import (
    ZERO_AMOUNT_PATTERN,
    Money,
    PositiveAmount,
    PositiveId,
    Quantity,
    Timestamp,
    anchored,
    any_case,
    matching,
)

SCHEMA_VERSION: Literal["1"] = "1"

CartId = Annotated[str, matching(r"[0-9a-fA-F]{24}", "24-hex cart id.")]


class _Model(BaseModel):
    # Attribute docstrings become the field descriptions of the published JSON Schema.
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ReturnType(StrEnum):
    """What happened. FULL, LINE_ITEM and AMOUNT are Capillary's own return types.

    FULL: every item comes back. LINE_ITEM: some lines come back, with quantities.
    AMOUNT: money is refunded, no goods come back (price adjustment, goodwill).
    EXCHANGE: goods come back and other goods go out; the two are netted.
    CANCELLED: a return recorded earlier is cancelled; what the service's ledger says it took
    back is given back.
    """

    FULL = "FULL"
    """Every item of the order comes back."""
    LINE_ITEM = "LINE_ITEM"
    """Some lines come back, with quantities."""
    AMOUNT = "AMOUNT"
    """Money is refunded and no goods come back (price adjustment, goodwill)."""
    EXCHANGE = "EXCHANGE"
    """Goods come back and other goods go out; the two are netted."""
    CANCELLED = "CANCELLED"
    """A return recorded earlier is cancelled: what the service took back for it, as its
    ledger says, is given back."""


class Channel(StrEnum):
    """Where the return was taken: POS (a till) or ECOMMERCE."""

    POS = "POS"
    ECOMMERCE = "ECOMMERCE"


class EventSource(_Model):
    """Who sent the event: a till in a store, or an e-commerce channel."""

    channel: Channel
    """POS (a till in a store) or ECOMMERCE."""
    store_code: str | None = Field(default=None, max_length=64)
    """Capillary store code; calls are attributed to it when no till is given."""
    till_code: str | None = Field(default=None, max_length=64)
    """Capillary till code; calls are attributed to it."""
    sales_channel: str | None = Field(
        default=None, max_length=64, description="E-commerce channel name, e.g. web or app."
    )


class RegistrationSource(StrEnum):
    """Capillary's registration sources, as the loyalty revoke and enrol pages list them.

    Any case is accepted (the pages' own examples send ``instore``) and read as upper case.
    """

    FACEBOOK = "FACEBOOK"
    WEB_ENGAGE = "WEB_ENGAGE"
    INSTORE = "INSTORE"
    MARTJACK = "MARTJACK"
    TMALL = "TMALL"
    TAOBAO = "TAOBAO"
    JD = "JD"
    ECOMMERCE = "ECOMMERCE"
    WEBSITE = "WEBSITE"
    LINE = "LINE"
    ALL = "ALL"


RegistrationSourceName = Annotated[
    RegistrationSource,
    any_case(
        RegistrationSource,
        "Capillary's registration source, needed by loyalty calls: one of FACEBOOK, "
        "WEB_ENGAGE, INSTORE, MARTJACK, TMALL, TAOBAO, JD, ECOMMERCE, WEBSITE, LINE, ALL "
        "(any ASCII case; read as upper case). The policy supplies a default per channel when "
        "absent.",
    ),
]
"""A registration source in any case, read as upper case; other values are refused."""


def _present(name: str) -> dict[str, Any]:
    # "given and not null": the JSON Schema form of a model check on ``is not None``.
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


Mobile = Annotated[
    str, matching(r"\+?[0-9]{6,16}", "Digits with the country code, an optional leading +.")
]
# Whitespace and control characters spelt out: \s means different sets to Python and ECMA.
Email = Annotated[
    str,
    matching(
        r"[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+",
        "One @ between two runs of visible characters.",
        254,
    ),
]


class CustomerRef(_Model):
    """The customer, by any identifiers the sender knows. At least one is required."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [_present(name) for name in ("id", "mobile", "email", "external_id")]
        }
    )

    id: PositiveId | None = None
    """Capillary's numeric customer id."""
    mobile: Mobile | None = None
    """Mobile number with country code, digits only; a leading + is dropped in calls."""
    email: Email | None = None
    """E-mail address."""
    external_id: str | None = Field(default=None, min_length=1, max_length=64)
    """The shop's own customer id, as registered in Capillary."""
    registration_source: RegistrationSourceName | None = None
    """Where the customer registered; the policy supplies a default per channel when absent."""

    @model_validator(mode="after")
    def _needs_an_identifier(self) -> CustomerRef:
        if self.id is None and not (self.mobile or self.email or self.external_id):
            raise ValueError("customer needs at least one of id, mobile, email, external_id")
        return self


Currency = Annotated[str, matching(r"[A-Z]{3}", "ISO 4217 code, upper case.")]


class OrderRef(_Model):
    """The original order and its transaction in Capillary."""

    order_id: str = Field(min_length=1, max_length=128)
    """The shop's order number."""
    transaction_id: str = Field(min_length=1, max_length=128)
    """The original transaction's id in Capillary."""
    ordered_at: Timestamp | None = None
    """When the order was placed; the return window counts from here."""
    currency: Currency
    """ISO 4217 code of every amount in the event."""


class Amounts(_Model):
    """The order's value before this event and what the customer keeps after it."""

    before: Money
    """The order's value before this event."""
    after: Money
    """What the customer keeps after this event (0 for a FULL return)."""


class OrderLine(_Model):
    """One line of the original order (or of the goods going out in an exchange)."""

    line_id: str = Field(min_length=1, max_length=64)
    """Unique within the order."""
    sku: str = Field(min_length=1, max_length=64)
    """The product."""
    quantity: Quantity
    """Units on the line."""
    amount: Money
    """The line's total after discounts."""


class ReturnedLine(_Model):
    """How much of one order line comes back."""

    line_id: str = Field(min_length=1, max_length=64)
    """The order line the goods come from (order_lines.line_id)."""
    quantity: Quantity
    """Units coming back."""
    amount: Money
    """Money refunded for them."""


class ThresholdKind(StrEnum):
    """What a benefit's qualifying condition counts."""

    SPEND = "SPEND"
    QUANTITY = "QUANTITY"


class Threshold(_Model):
    """The condition the order met to earn a benefit, when the sender knows it."""

    kind: ThresholdKind
    """SPEND (money kept) or QUANTITY (units kept)."""
    minimum: PositiveAmount
    """The least the customer must keep for the benefit to stay."""
    sku: str | None = Field(
        default=None, description="For QUANTITY: count only this SKU; absent counts every item."
    )


class LoyaltyPromotionType(StrEnum):
    """Loyalty promotion types, in every spelling the vendor pages use."""

    LOYALTY_EARNING = "LOYALTY_EARNING"
    ISSUE_AND_EARN = "ISSUE_AND_EARN"
    LOYALTY = "LOYALTY"
    DIRECT_EARN = "DIRECT_EARN"
    DIRECT = "DIRECT"

    @property
    def is_enrol_and_issue(self) -> bool:
        """Enrol-and-issue promotions have an enrolment (issual) to revoke after the earn."""
        return self in (LoyaltyPromotionType.LOYALTY_EARNING, LoyaltyPromotionType.ISSUE_AND_EARN)


class LoyaltyEarn(_Model):
    """A loyalty promotion the order earned."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [_present("promotion_id"), _present("promo_identifier")]}
    )

    program_id: PositiveId
    """Capillary loyalty program id."""
    promotion_id: PositiveId | None = None
    """Promotion id; give this or promo_identifier."""
    promo_identifier: str | None = Field(default=None, min_length=1, max_length=64)
    """The promotion's external identifier; give this or promotion_id."""
    promotion_type: LoyaltyPromotionType
    """Enrol-and-issue (LOYALTY_EARNING, ISSUE_AND_EARN) or direct (LOYALTY, DIRECT_EARN,
    DIRECT)."""
    earn_ids: list[PositiveId] = Field(
        default_factory=list,
        description="Empty: the sender does not know them; the policy decides what to do.",
    )
    issual_id: str | None = None
    """The enrolment's issual id, for enrol-and-issue promotions."""
    threshold: Threshold | None = None
    """What the order had to reach to earn it, when known."""

    @model_validator(mode="after")
    def _one_promotion_reference(self) -> LoyaltyEarn:
        if (self.promotion_id is None) == (self.promo_identifier is None):
            raise ValueError("give exactly one of promotion_id and promo_identifier")
        return self

    @property
    def promotion_key(self) -> str:
        """A stable name for the promotion, whichever reference the sender used."""
        ref = self.promotion_id if self.promotion_id is not None else self.promo_identifier
        return f"{self.program_id}/{ref}"


class CartPromotionMode(StrEnum):
    """How a cart promotion pays out; decides whether and how it can be taken back."""

    DISCOUNT = "DISCOUNT"
    PAYMENT_VOUCHER = "PAYMENT_VOUCHER"
    POS = "POS"
    CODE = "CODE"


class CartPromotionEarn(_Model):
    """A cart promotion the order earned."""

    promotion_id: CartId
    """Cart promotion id (24 hex characters)."""
    earn_ids: list[CartId] = Field(default_factory=list)
    """The earn ids this order got."""
    mode: CartPromotionMode = CartPromotionMode.DISCOUNT
    """DISCOUNT and PAYMENT_VOUCHER can be taken back by API; POS and CODE cannot."""
    threshold: Threshold | None = None
    """What the order had to reach to earn it, when known."""


class CouponsIssued(_Model):
    """Coupons of one series that the order issued."""

    series_id: PositiveId
    """Coupon series id."""
    codes: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1)
    """The codes the order issued."""
    threshold: Threshold | None = None
    """What the order had to reach to earn them, when known."""


class Earned(_Model):
    """What the original order earned (or, in a cancellation, what the return took back)."""

    loyalty_promotions: list[LoyaltyEarn] = Field(default_factory=list)
    """Loyalty promotions earned."""
    cart_promotions: list[CartPromotionEarn] = Field(default_factory=list)
    """Cart promotions earned."""
    coupons: list[CouponsIssued] = Field(default_factory=list)
    """Coupons issued, by series."""

    @property
    def is_empty(self) -> bool:
        """True when nothing is listed."""
        return not (self.loyalty_promotions or self.cart_promotions or self.coupons)


class CancelledReturn(_Model):
    """The return that a CANCELLED event undoes.

    What is given back is what the service's own ledger says that return took, never what
    this event claims: ``taken_back`` and ``enrolments_revoked`` are hints, checked against
    the ledger and named in the outcome where they differ from it.
    """

    return_event_id: str = Field(min_length=1, max_length=128)
    """event_id of the return being cancelled: the service gives back what its ledger says
    that return took."""
    taken_back: Earned = Field(default_factory=Earned)
    """Optional hint: what the sender believes the return took back. Checked against the
    service's ledger, never the authority: what it claims and the ledger does not show is
    named in the outcome and not given back."""
    enrolments_revoked: list[LoyaltyEarn] = Field(
        default_factory=list,
        description="Optional hint: enrol-and-issue promotions whose enrolment the sender "
        "believes the return revoked (checked against the ledger, like taken_back).",
    )


EventId = Annotated[str, matching(r"[A-Za-z0-9._:-]+", "Letters, digits and . _ : -", 128)]


def _when(kind: ReturnType, then: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"required": ["return_type"], "properties": {"return_type": {"const": kind.value}}},
        "then": then,
    }


def _lines(name: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"minItems": 1}}}


# The checks of ``_consistent_with_type``, as JSON Schema.
_TYPE_RULES = [
    _when(ReturnType.CANCELLED, _present("cancelled_return")),
    {
        "if": {"properties": {"return_type": {"not": {"const": ReturnType.CANCELLED.value}}}},
        "then": {"properties": {"cancelled_return": {"type": "null"}}},
    },
    _when(ReturnType.LINE_ITEM, _lines("returned_lines")),
    _when(ReturnType.EXCHANGE, {"allOf": [_lines("returned_lines"), _lines("exchanged_lines")]}),
    _when(
        ReturnType.FULL,
        {
            "properties": {
                "amounts": {"properties": {"after": {"pattern": anchored(ZERO_AMOUNT_PATTERN)}}}
            }
        },
    ),
]


class ReturnEvent(_Model):
    """One return, refund, exchange or cancelled return."""

    model_config = ConfigDict(json_schema_extra={"allOf": list(_TYPE_RULES)})

    schema_version: Literal["1"] = SCHEMA_VERSION
    """Version of this schema."""
    event_id: EventId
    """Idempotency key: the same event_id is the same return."""
    occurred_at: Timestamp
    """When the return, refund or cancellation happened."""
    return_type: ReturnType
    """What happened."""
    source: EventSource
    """Where it happened."""
    order: OrderRef
    """The original order."""
    customer: CustomerRef
    """Who, by any identifiers the sender knows."""
    amounts: Amounts
    """The order's value before and after this event."""
    order_lines: list[OrderLine] = Field(default_factory=list)
    """The original order's lines; needed to re-check quantity thresholds."""
    returned_lines: list[ReturnedLine] = Field(default_factory=list)
    """LINE_ITEM and EXCHANGE: what comes back."""
    exchanged_lines: list[OrderLine] = Field(
        default_factory=list, description="EXCHANGE only: the goods that go out instead."
    )
    earned: Earned = Field(default_factory=Earned)
    """What the original order earned. May be empty: the policy decides then."""
    cancelled_return: CancelledReturn | None = None
    """CANCELLED only: the return being cancelled (what it took comes from the ledger)."""

    @model_validator(mode="after")
    def _consistent_with_type(self) -> ReturnEvent:
        kind = self.return_type
        if kind is ReturnType.CANCELLED and self.cancelled_return is None:
            raise ValueError("a CANCELLED event needs cancelled_return")
        if kind is not ReturnType.CANCELLED and self.cancelled_return is not None:
            raise ValueError("cancelled_return is only for CANCELLED events")
        if kind in (ReturnType.LINE_ITEM, ReturnType.EXCHANGE) and not self.returned_lines:
            raise ValueError(f"a {kind} event needs returned_lines")
        if kind is ReturnType.EXCHANGE and not self.exchanged_lines:
            raise ValueError("an EXCHANGE event needs exchanged_lines")
        if kind is ReturnType.FULL and self.amounts.after != 0:
            raise ValueError("a FULL return keeps nothing: amounts.after must be 0")
        # Returned lines that order_lines does not name are not refused here (JSON Schema
        # cannot compare two lists): the rules read them as lines they cannot count.
        return self
