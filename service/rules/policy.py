"""The merchant's policy: how returns are treated, parsed from a mapping of keys.

Every key has a default, so a mapping with only ``version`` is a valid policy; the packaged
``default-policy.yaml`` spells the defaults out with comments for a merchant. A wrong or
unknown key raises :class:`~service.errors.ConfigurationError` naming the key and the file,
because a silently ignored typo in a policy would take back the wrong things. Reading the
file and parsing its YAML is the caller's job (``service/policy_file.py``): the rules do no
I/O.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.actions import IdentifierName
from service.errors import ConfigurationError
from service.events import (
    CartId,
    CartPromotionMode,
    Channel,
    LoyaltyEarn,
    LoyaltyPromotionType,
    RegistrationSource,
    RegistrationSourceName,
    Threshold,
)

CouponIdentifierName = Literal["id", "mobile", "email", "external_id"]


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique(values: list[Any], what: str) -> None:
    if len(values) != len(set(values)):
        raise ValueError(f"{what} lists a value twice")


def _loyalty_preference() -> list[IdentifierName]:
    return ["id", "mobile", "email"]


def _coupon_preference() -> list[CouponIdentifierName]:
    return ["id", "mobile", "email", "external_id"]


class CustomerPolicy(_PolicyModel):
    """How the customer is named to each endpoint."""

    loyalty_identifier_preference: list[IdentifierName] = Field(
        default_factory=_loyalty_preference, min_length=1
    )
    coupon_identifier_preference: list[CouponIdentifierName] = Field(
        default_factory=_coupon_preference, min_length=1
    )
    registration_source_by_channel: dict[Channel, RegistrationSourceName] = Field(
        default_factory=lambda: {
            Channel.POS: RegistrationSource.INSTORE,
            Channel.ECOMMERCE: RegistrationSource.ECOMMERCE,
        }
    )

    @field_validator("loyalty_identifier_preference", "coupon_identifier_preference")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        _unique(value, "the preference")
        return value


class FullReturnPolicy(_PolicyModel):
    """Everything comes back."""

    revoke_enrolment: bool = True


WithoutThreshold = Literal["keep", "take_back"]
"""What happens on a partial return to a benefit whose threshold nobody knows."""


class PartialReturnPolicy(_PolicyModel):
    """Some goods or some money come back (LINE_ITEM, AMOUNT, EXCHANGE)."""

    revoke_enrolment: bool = False
    without_threshold: WithoutThreshold = "keep"


class RedeemedPolicy(_PolicyModel):
    """Benefits the customer already used; the executor learns of them from Capillary."""

    flag_for_clawback: bool = False


ReturnUnknown = Literal["ask_operator", "trust_claim"]
"""What a cancellation does when the ledger does not know the return it cancels."""


class CancelledReturnPolicy(_PolicyModel):
    """Cancellations: the ledger, not the event, says what their return took."""

    when_return_unknown: ReturnUnknown = "ask_operator"


LoyaltyWithoutEarnIds = Literal["report", "revoke_all"]
"""A loyalty promotion named without its earn ids."""


class _PromotionRule(_PolicyModel):
    """What a rule for a loyalty and for a cart promotion both say."""

    assume_earned_when_unlisted: bool = False
    threshold: Threshold | None = None


class LoyaltyPromotionPolicy(_PromotionRule):
    """Rules for one loyalty promotion."""

    program_id: int = Field(gt=0)
    promotion_id: int | None = Field(default=None, gt=0)
    promo_identifier: str | None = Field(default=None, min_length=1, max_length=64)
    promotion_type: LoyaltyPromotionType | None = None
    without_earn_ids: LoyaltyWithoutEarnIds = "report"

    @model_validator(mode="after")
    def _coherent(self) -> LoyaltyPromotionPolicy:
        if self.promotion_id is None and self.promo_identifier is None:
            raise ValueError("give promotion_id or promo_identifier")
        if self.assume_earned_when_unlisted:
            if self.promotion_type is None:
                raise ValueError("assume_earned_when_unlisted needs promotion_type")
            if self.without_earn_ids != "revoke_all":
                raise ValueError("assume_earned_when_unlisted needs without_earn_ids: revoke_all")
        return self

    def as_earn(self) -> LoyaltyEarn:
        """The promotion as an earn without ids, for events that list nothing."""
        assert self.promotion_type is not None  # guaranteed by the validator
        return LoyaltyEarn(
            program_id=self.program_id,
            promotion_id=self.promotion_id,
            promo_identifier=None if self.promotion_id is not None else self.promo_identifier,
            promotion_type=self.promotion_type,
            threshold=self.threshold,
        )


CartWithoutEarnIds = Literal["report", "deactivate_participation"]
"""A cart promotion named without its earn ids."""


class CartPromotionPolicy(_PromotionRule):
    """Rules for one cart promotion."""

    promotion_id: CartId
    mode: CartPromotionMode | None = None
    without_earn_ids: CartWithoutEarnIds = "report"

    @model_validator(mode="after")
    def _coherent(self) -> CartPromotionPolicy:
        broad = self.without_earn_ids == "deactivate_participation"
        if broad and self.mode is not CartPromotionMode.DISCOUNT:
            # PAYMENT_VOUCHER needs the earn id; POS and CODE cannot be deactivated at all.
            raise ValueError("deactivate_participation needs mode: DISCOUNT")
        if self.assume_earned_when_unlisted and not broad:
            raise ValueError(
                "assume_earned_when_unlisted needs without_earn_ids: deactivate_participation"
            )
        return self


class CouponSeriesPolicy(_PolicyModel):
    """Rules for one coupon series."""

    series_id: int = Field(gt=0)
    contains_generic_code: bool | None = None
    """True: the series holds a generic code; False: declared free of generic codes; None
    (the default): not known. Capillary's answers never tell, and a multi-code revoke with
    the id of a series that holds one takes every coupon of the series, so only a series
    declared False may have codes of different customers in one call."""
    revoke_by_customer_instead_of_codes: bool = False
    revoke_by_customer_when_unlisted: bool = False
    threshold: Threshold | None = None


OrderDateUnknown = Literal["proceed", "skip"]
"""What to do when a return window is set but the event has no order date."""


class Policy(_PolicyModel):
    """The whole policy; see ``default-policy.yaml`` for what each key means."""

    version: str = Field(min_length=1, max_length=64)
    return_window_days: int | None = Field(default=None, ge=0)
    order_date_unknown: OrderDateUnknown = "proceed"
    customer: CustomerPolicy = Field(default_factory=CustomerPolicy)
    full_return: FullReturnPolicy = Field(default_factory=FullReturnPolicy)
    partial_return: PartialReturnPolicy = Field(default_factory=PartialReturnPolicy)
    redeemed: RedeemedPolicy = Field(default_factory=RedeemedPolicy)
    cancelled_return: CancelledReturnPolicy = Field(default_factory=CancelledReturnPolicy)
    loyalty_promotions: list[LoyaltyPromotionPolicy] = Field(default_factory=list)
    cart_promotions: list[CartPromotionPolicy] = Field(default_factory=list)
    coupon_series: list[CouponSeriesPolicy] = Field(default_factory=list)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: object) -> object:
        # YAML reads `version: 3` as an int and `version: 2026-11-24` as a date; a merchant
        # should not have to know that, so any scalar becomes its text.
        if isinstance(value, _dt.date | int | float) and not isinstance(value, bool):
            return value.isoformat() if isinstance(value, _dt.date) else str(value)
        return value

    @model_validator(mode="after")
    def _no_duplicate_rules(self) -> Policy:
        _unique([p.promotion_id for p in self.cart_promotions], "cart_promotions")
        _unique([s.series_id for s in self.coupon_series], "coupon_series")
        _unique(
            [
                (p.program_id, p.promotion_id)
                for p in self.loyalty_promotions
                if p.promotion_id is not None
            ],
            "loyalty_promotions",
        )
        _unique(
            [
                (p.program_id, p.promo_identifier)
                for p in self.loyalty_promotions
                if p.promo_identifier is not None
            ],
            "loyalty_promotions",
        )
        return self

    def loyalty_rule(self, earn: LoyaltyEarn) -> LoyaltyPromotionPolicy | None:
        """The rule for a loyalty promotion, if the policy names it."""
        index = self._current_index()
        # An earn names its promotion by exactly one reference (the event's check).
        if earn.promotion_id is not None:
            return index.loyalty_by_id.get((earn.program_id, earn.promotion_id))
        return index.loyalty_by_ref.get((earn.program_id, earn.promo_identifier))

    def cart_rule(self, promotion_id: str) -> CartPromotionPolicy | None:
        """The rule for a cart promotion, if the policy names it."""
        return self._current_index().cart.get(promotion_id.lower())

    def series_rule(self, series_id: int) -> CouponSeriesPolicy | None:
        """The rule for a coupon series, if the policy names it."""
        return self._current_index().series.get(series_id)

    @functools.cached_property
    def _index(self) -> _RuleIndex:
        # Looked up for every promotion of every event: a scan of the lists cost more than
        # the rest of the rule. Not a field, so neither equality nor the schema sees it.
        return _RuleIndex.of(self)

    def _current_index(self) -> _RuleIndex:
        index = self._index
        # model_copy(update=...) copies the cached index along with the old lists.
        return index if index.built_from(self) else _RuleIndex.of(self)


@dataclass(frozen=True, slots=True)
class _RuleIndex:
    """A policy's rules by what looks them up; the first rule of a key wins, as in a scan."""

    of_lists: tuple[object, object, object]
    """The policy's rule lists this index was built from."""
    loyalty_by_id: dict[tuple[int, int], LoyaltyPromotionPolicy]
    loyalty_by_ref: dict[tuple[int, str | None], LoyaltyPromotionPolicy]
    cart: dict[str, CartPromotionPolicy]
    series: dict[int, CouponSeriesPolicy]

    @classmethod
    def of(cls, policy: Policy) -> _RuleIndex:
        by_id: dict[tuple[int, int], LoyaltyPromotionPolicy] = {}
        by_ref: dict[tuple[int, str | None], LoyaltyPromotionPolicy] = {}
        for rule in policy.loyalty_promotions:
            if rule.promotion_id is not None:
                by_id.setdefault((rule.program_id, rule.promotion_id), rule)
            if rule.promo_identifier is not None:
                by_ref.setdefault((rule.program_id, rule.promo_identifier), rule)
        cart: dict[str, CartPromotionPolicy] = {}
        for cart_rule in policy.cart_promotions:
            cart.setdefault(cart_rule.promotion_id.lower(), cart_rule)
        series: dict[int, CouponSeriesPolicy] = {}
        for series_rule in policy.coupon_series:
            series.setdefault(series_rule.series_id, series_rule)
        lists = (policy.loyalty_promotions, policy.cart_promotions, policy.coupon_series)
        return cls(lists, by_id, by_ref, cart, series)

    def built_from(self, policy: Policy) -> bool:
        """True when ``policy`` still holds the lists this index was built from."""
        # Three identity checks written out: a loop over them cost a microsecond a lookup.
        loyalty, cart, series = self.of_lists
        return (
            loyalty is policy.loyalty_promotions
            and cart is policy.cart_promotions
            and series is policy.coupon_series
        )


def parse_policy(mapping: Mapping[str, object], source: str) -> Policy:
    """The policy in ``mapping`` (a parsed policy file); ``source`` names the file in errors.

    Every bad key is named: the message gives the first, ``problems`` lists them all.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigurationError("the policy must be a mapping of keys", file=source)
    try:
        return Policy.model_validate(dict(mapping))
    except ValidationError as exc:
        problems = [
            (".".join(str(part) for part in error["loc"]) or "(top level)", error["msg"])
            for error in exc.errors(include_url=False)
        ]
        key, message = problems[0]
        more = f" (and {len(problems) - 1} more key(s), see problems)" if len(problems) > 1 else ""
        raise ConfigurationError(
            f"policy key {key!r} is invalid: {message}{more}",
            file=source,
            key=key,
            problems="; ".join(f"{k}: {m}" for k, m in problems),
        ) from exc
