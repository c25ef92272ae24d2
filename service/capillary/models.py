"""Wire models: the JSON Capillary accepts and answers, as the five pages publish it.

Requests are strict about what we send (limits, exactly-one rules). Responses are
lenient about what we receive, because the published examples disagree with their
own tables: IDs as strings or numbers, ``issualId`` where ``revokedIssualId`` is
documented, a coupon answer without its ``entity`` wrapper and with the error code
spelled ``errroCode`` / ``errrorCode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel

MAX_LOYALTY_CUSTOMERS = 100
MAX_CART_EARN_IDS = 1000
MAX_COUPON_CODES = 50
MAX_COUPONS_BY_CUSTOMER = 100

IdentifierName = Literal["id", "mobile", "email"]
LoyaltyBulkAction = Literal["REVOKE_ENROL", "REVOKE_EARN", "ENROL", "EARN"]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        coerce_numbers_to_str=True,
        extra="ignore",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON body to send: aliases, no nulls (Capillary reads a null as a value)."""
        return self.model_dump(mode="json", exclude_none=True)


# --- shared ------------------------------------------------------------------------------


class ApiError(WireModel):
    """One entry of an ``errors`` array (all endpoints use ``code`` and ``message``)."""

    code: int | None = None
    message: str = ""
    status: bool | None = None


class PromotionKeys(BaseModel):
    """A loyalty promotion's keys: its program and exactly one of its ID or external
    identifier."""

    program_id: int
    promotion_id: int | None = None
    # An empty identifier names no promotion: never sent, never taken for an absent one.
    promo_identifier: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one_key(self) -> Self:
        if (self.promotion_id is None) == (self.promo_identifier is None):
            raise ValueError("exactly one of promotionId and promoIdentifier is required")
        return self


# --- loyalty bulk: revokeEnrolAndEarn and enrolAndEarn -----------------------------------


class PromotionDetails(WireModel, PromotionKeys):
    """Which loyalty promotion: ``programId`` plus exactly one of the two promotion keys."""


class LoyaltyBulkCustomer(WireModel):
    """One customer entry; ``earnIds`` only on REVOKE_EARN (absent = all earns)."""

    identifier_value: str = Field(min_length=1)
    source: str = Field(min_length=1)
    # The page reads a missing list as "every earn of the promotion", and an empty list
    # says nothing narrower: never send one.
    earn_ids: list[int] | None = Field(default=None, min_length=1)


class LoyaltyBulkRequest(WireModel):
    """Body of both loyalty bulk endpoints."""

    type: Literal["CUSTOMER"] = "CUSTOMER"
    bulk_action: LoyaltyBulkAction
    promotion_details: PromotionDetails
    identifier_name: IdentifierName
    customers: list[LoyaltyBulkCustomer] = Field(min_length=1, max_length=MAX_LOYALTY_CUSTOMERS)

    @model_validator(mode="after")
    def _no_repeated_customer(self) -> Self:
        keys = [c.identifier_value.strip().lower() for c in self.customers]
        if len(set(keys)) != len(keys):
            raise ValueError("a customer may appear only once per call")
        if self.bulk_action != "REVOKE_EARN" and any(c.earn_ids for c in self.customers):
            raise ValueError("earnIds belong to REVOKE_EARN only")
        return self


class LoyaltyItemResult(WireModel):
    """``result`` of a successful item. The pages send IDs as strings or numbers."""

    entity_type: str | None = None
    entity_id: int | None = None
    promotion_id: int | None = None
    promo_identifier: str | None = None
    program_id: int | None = None
    # What each bulk action answers. REVOKE_EARN: the earns it revoked.
    revoked_earn_ids: list[int] = Field(default_factory=list)
    # REVOKE_ENROL: revokedIssualId by the table, issualId in its example.
    revoked_issual_id: str | None = None
    # ENROL and EARN: the enrolment's issualId (a dummy one for a DIRECT promotion's EARN),
    # and EARN's new earnedId.
    issual_id: str | None = None
    earned_id: str | None = None


class LoyaltyBulkItem(WireModel):
    """One entry of ``response[]``: a failure has only ``errors``, no ``result``."""

    result: LoyaltyItemResult | None = None
    errors: list[ApiError] = Field(default_factory=list)
    warnings: list[Any] = Field(default_factory=list)


class LoyaltyBulkResponse(WireModel):
    """Answer of both loyalty bulk endpoints; ``totalCount`` is not the number of successes.

    A request refused as a whole carries top-level ``errors`` and no items.
    """

    response: list[LoyaltyBulkItem] = Field(default_factory=list)
    errors: list[ApiError] = Field(default_factory=list)
    total_count: int | None = None
    failure_count: int | None = None


# --- cart promotions: revokeEarn ---------------------------------------------------------


class CartEarnRevokeDetail(WireModel):
    """One cart promotion and the earn IDs (24-hex strings) to revoke in it."""

    promotion_id: str = Field(min_length=1)
    earn_ids: list[str] = Field(min_length=1)


class CartRevokeRequest(WireModel):
    """Body of ``/api_gateway/v1/promotions/revokeEarn``: one customer, at most 1000 earn IDs."""

    customer_id: int
    earn_revoke_details: list[CartEarnRevokeDetail] = Field(min_length=1)

    @model_validator(mode="after")
    def _within_limit(self) -> Self:
        total = sum(len(d.earn_ids) for d in self.earn_revoke_details)
        if total > MAX_CART_EARN_IDS:
            raise ValueError(f"at most {MAX_CART_EARN_IDS} earn IDs per call, got {total}")
        return self


class CartRevokedDetail(WireModel):
    """Outcome for one cart promotion."""

    promotion_id: str | None = None
    revoked_earn_ids: list[str] = Field(default_factory=list)
    status: str | None = None


class CartRevokeData(WireModel):
    """``data`` of the cart answer."""

    customer_id: int | None = None
    revoked_details: list[CartRevokedDetail] = Field(default_factory=list)


class CartRevokeResponse(WireModel):
    """Answer of the cart revoke: ``data`` plus a top-level ``errors`` array."""

    data: CartRevokeData | None = None
    errors: list[ApiError] = Field(default_factory=list)


# --- deactivate --------------------------------------------------------------------------


class DeactivateResponse(WireModel):
    """Answer of ``/promotions/{promotionId}/deactivate``; the request has an empty body."""

    data: bool | None = None
    errors: list[ApiError] = Field(default_factory=list)


# --- coupons -----------------------------------------------------------------------------


class CouponCustomer(WireModel):
    """Whose coupons: exactly one of ``id``, ``mobile``, ``email``, ``externalId``."""

    id: str | None = None
    mobile: str | None = None
    email: str | None = None
    external_id: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [v for v in (self.id, self.mobile, self.email, self.external_id) if v]
        if len(given) != 1:
            raise ValueError("exactly one of id, mobile, email, externalId is required")
        return self

    def kind(self) -> str:
        """Which identifier is set (never its value: that may be a phone or an e-mail)."""
        for name in ("id", "mobile", "email", "external_id"):
            if getattr(self, name):
                return name
        return "none"  # pragma: no cover - the validator forbids it


class CouponRevokeRequest(WireModel):
    """Body of ``/v2/coupon/revoke``: codes (max 50; series ID for more than one), a customer,
    or codes with their customer ("a user ID must be provided when dealing with generic
    coupon series"; the page does not say that this bounds a bulk revoke)."""

    coupon_series_id: int | None = None
    customer: CouponCustomer | None = None
    coupon_codes: list[str] | None = Field(default=None, min_length=1, max_length=MAX_COUPON_CODES)

    @model_validator(mode="after")
    def _codes_or_customer(self) -> Self:
        if self.customer is None and self.coupon_codes is None:
            raise ValueError("couponCodes or customer is required")
        if self.coupon_codes and len(self.coupon_codes) > 1 and self.coupon_series_id is None:
            raise ValueError("couponSeriesId is required for more than one coupon code")
        return self


class RevokedCoupon(WireModel):
    """One revoked coupon."""

    coupon_id: int | None = None
    coupon_code: str
    issued_to_user_id: int | None = None


class FailedCoupons(WireModel):
    """Codes that failed for one reason. Accepts the misspellings of the partial-success example."""

    error_code: int | None = Field(
        default=None,
        validation_alias=AliasChoices("errorCode", "errroCode", "errrorCode", "error_code"),
        serialization_alias="errorCode",
    )
    error_message: str = ""
    coupon_codes: list[str] = Field(default_factory=list)


class CouponRevokeEntity(WireModel):
    """``entity`` of the coupon answer."""

    total_count: int | None = None
    failed_count: int | None = None
    revoked_coupons: list[RevokedCoupon] = Field(default_factory=list)
    failed_to_revoke: list[FailedCoupons] = Field(default_factory=list)


class CouponRevokeResponse(WireModel):
    """Answer of the coupon revoke: ``entity`` and/or top-level ``errors`` and ``success``."""

    entity: CouponRevokeEntity | None = None
    warnings: list[Any] = Field(default_factory=list)
    errors: list[ApiError] = Field(default_factory=list)
    success: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _wrap_bare_entity(cls, value: Any) -> Any:
        # The partial-success example puts the entity's fields at the top level.
        if (
            isinstance(value, dict)
            and "entity" not in value
            and ("revokedCoupons" in value or "failedToRevoke" in value)
        ):
            return {**value, "entity": value}
        return value


# --- OAuth -------------------------------------------------------------------------------


class OAuthTokenRequest(WireModel):
    """Body of ``/v3/oauth/token/generate``. The secret is revealed only in the JSON we send."""

    key: str
    secret: SecretStr

    @field_serializer("secret", when_used="json")
    def _reveal(self, value: SecretStr) -> str:
        return value.get_secret_value()


class OAuthTokenData(WireModel):
    """The token and how long it lives (at most 60 minutes)."""

    access_token: SecretStr
    ttl_seconds: int = Field(gt=0)


class OAuthTokenResponse(WireModel):
    """``{"data": {...}, "errors": null}``."""

    data: OAuthTokenData | None = None
    errors: list[ApiError] | None = None


# --- what callers hand the client (not wire shapes) --------------------------------------


class ClientRef(BaseModel):
    """Base of the references callers pass in: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LoyaltyPromotionRef(ClientRef, PromotionKeys):
    """A loyalty promotion: its program and exactly one of ID or external identifier."""

    def label(self) -> str:
        """Short text naming the promotion."""
        return (
            str(self.promotion_id) if self.promotion_id is not None else f"{self.promo_identifier}"
        )

    def wire(self) -> PromotionDetails:
        """The ``promotionDetails`` object."""
        return PromotionDetails(
            program_id=self.program_id,
            promotion_id=self.promotion_id,
            promo_identifier=self.promo_identifier,
        )


class LoyaltyCustomer(ClientRef):
    """A customer of a loyalty bulk call, with the registration source Capillary requires.

    Empty values are accepted here so the client can answer them with a clear result
    instead of sending a call Capillary would refuse.
    """

    identifier_value: str
    source: str


class LoyaltyCustomerEarns(LoyaltyCustomer):
    """A customer and the loyalty earn IDs to revoke; ``None`` revokes all of the promotion's."""

    earn_ids: list[int] | None = None


CustomerT = TypeVar("CustomerT", bound=LoyaltyCustomer)
"""The customers a :class:`LoyaltyAction` takes."""


@dataclass(frozen=True, slots=True)
class LoyaltyAction(Generic[CustomerT]):
    """A loyalty bulk action (``LoyaltyAction.EARN`` and the three others), typed by the
    customers it takes.

    REVOKE_EARN takes :class:`LoyaltyCustomerEarns` only: its broad form (every earn of the
    promotion) must be asked for by name (``earn_ids=None``), so mypy refuses a plain
    :class:`LoyaltyCustomer` there. The other three take any customer.
    """

    bulk_action: LoyaltyBulkAction

    REVOKE_EARN: ClassVar[LoyaltyAction[LoyaltyCustomerEarns]]
    REVOKE_ENROL: ClassVar[LoyaltyAction[LoyaltyCustomer]]
    ENROL: ClassVar[LoyaltyAction[LoyaltyCustomer]]
    EARN: ClassVar[LoyaltyAction[LoyaltyCustomer]]


LoyaltyAction.REVOKE_EARN = LoyaltyAction("REVOKE_EARN")
LoyaltyAction.REVOKE_ENROL = LoyaltyAction("REVOKE_ENROL")
LoyaltyAction.ENROL = LoyaltyAction("ENROL")
LoyaltyAction.EARN = LoyaltyAction("EARN")


class CartEarnsRef(ClientRef):
    """Earn IDs (opaque strings) of one cart promotion."""

    promotion_id: str
    earn_ids: list[str]


class AttributionEntityType(StrEnum):
    """Who made the change, as Capillary's attribution headers name it."""

    TILL = "TILL"
    STORE = "STORE"


class Attribution(ClientRef):
    """Till or store to attribute a call to (sent with OAuth only)."""

    entity_type: AttributionEntityType
    entity_id: str = Field(min_length=1)
