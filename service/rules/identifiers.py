"""Naming the customer the way each endpoint accepts, or saying what is missing.

Loyalty calls take ``id``, ``mobile`` or ``email`` plus a registration ``source``; cart
calls take only the numeric customer id; coupon calls (by customer, or a code of a generic
series) take one of id, mobile, email or external id. An identifier an endpoint cannot use
never turns into a malformed call. Mobile numbers go out as the pages show them: digits with
the country code, no ``+``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypedDict

from service.actions import CouponCustomer, IdentifierName, LoyaltyTarget
from service.events import CustomerRef, LoyaltyPromotionType, ReturnEvent
from service.rules.policy import Policy


class LoyaltyIdentity(TypedDict):
    """The customer as the loyalty endpoints name one: a loyalty target's customer fields."""

    identifier_name: IdentifierName
    identifier_value: str
    source: str


class LoyaltyPromotion(Protocol):
    """A loyalty promotion as an event names it, or as the ledger remembers it."""

    @property
    def program_id(self) -> int: ...

    @property
    def promotion_id(self) -> int | None: ...

    @property
    def promo_identifier(self) -> str | None: ...

    @property
    def promotion_type(self) -> LoyaltyPromotionType: ...


def loyalty_target(promotion: LoyaltyPromotion, customer: LoyaltyIdentity) -> LoyaltyTarget:
    """The loyalty target for one promotion of this customer."""
    return LoyaltyTarget(
        program_id=promotion.program_id,
        promotion_id=promotion.promotion_id,
        promo_identifier=promotion.promo_identifier,
        promotion_type=promotion.promotion_type,
        **customer,
    )


@dataclass(frozen=True)
class Missing:
    """What an endpoint needs and the event does not give."""

    reason_code: str
    reason: str


def _known(customer: CustomerRef) -> str:
    names = [
        name
        for name, value in (
            ("id", customer.id),
            ("mobile", customer.mobile),
            ("email", customer.email),
            ("external_id", customer.external_id),
        )
        if value is not None
    ]
    return ", ".join(names)


def _value(customer: CustomerRef, name: str) -> str | None:
    value: object = getattr(customer, name)
    if value is None:
        return None
    # The event allows "+9199..."; the pages send "919986000586": digits only.
    return str(value).removeprefix("+") if name == "mobile" else str(value)


def loyalty_identity(event: ReturnEvent, policy: Policy) -> LoyaltyIdentity | Missing:
    """The customer for loyalty calls, by the policy's preference, with a source."""
    customer = event.customer
    preference = policy.customer.loyalty_identifier_preference
    chosen = next(
        ((name, value) for name in preference if (value := _value(customer, name)) is not None),
        None,
    )
    if chosen is None:
        return Missing(
            "loyalty_identifier_missing",
            f"loyalty calls need the customer's {' or '.join(preference)}; "
            f"the event gives only {_known(customer)}",
        )
    source = customer.registration_source or policy.customer.registration_source_by_channel.get(
        event.source.channel
    )
    if source is None:
        return Missing(
            "registration_source_missing",
            "loyalty calls need the customer's registration source; the event has none and "
            f"the policy has no default for channel {event.source.channel}",
        )
    name, value = chosen
    return {"identifier_name": name, "identifier_value": value, "source": str(source)}


def cart_customer_id(event: ReturnEvent) -> int | Missing:
    """The numeric customer id, the only identifier cart endpoints accept."""
    if event.customer.id is not None:
        return event.customer.id
    return Missing(
        "numeric_customer_id_missing",
        "cart promotion calls need Capillary's numeric customer id; "
        f"the event gives only {_known(event.customer)}",
    )


def coupon_customer(
    event: ReturnEvent, policy: Policy, purpose: str = "coupon revoke by customer"
) -> CouponCustomer | Missing:
    """The customer for coupon calls, by the policy's preference: exactly one identifier.

    ``purpose`` says in the reason what needed the customer, when none can be named.
    """
    customer = event.customer
    preference = policy.customer.coupon_identifier_preference
    for name in preference:
        value = _value(customer, name)
        if value is not None:
            return CouponCustomer.model_validate({name: value})
    return Missing(
        "coupon_identifier_missing",
        f"{purpose} needs the customer's {' or '.join(preference)}; "
        f"the event gives only {_known(customer)}",
    )
