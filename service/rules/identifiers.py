"""Naming the customer the way each endpoint accepts, or saying what is missing.

Loyalty calls take ``id``, ``mobile`` or ``email`` plus a registration ``source``; cart
calls take only the numeric customer id; coupon-by-customer takes one of id, mobile, email
or external id. An identifier an endpoint cannot use never turns into a malformed call.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.actions import CouponCustomer, IdentifierName, LoyaltyTarget
from service.events import CustomerRef, LoyaltyEarn, ReturnEvent
from service.rules.policy import Policy


@dataclass(frozen=True)
class LoyaltyIdentity:
    """The customer as the loyalty endpoints name one."""

    identifier_name: IdentifierName
    identifier_value: str
    source: str

    def target(self, earn: LoyaltyEarn) -> LoyaltyTarget:
        """The loyalty target for one promotion of this customer."""
        return LoyaltyTarget(
            program_id=earn.program_id,
            promotion_id=earn.promotion_id,
            promo_identifier=earn.promo_identifier,
            promotion_type=earn.promotion_type,
            identifier_name=self.identifier_name,
            identifier_value=self.identifier_value,
            source=self.source,
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
    return None if value is None else str(value)


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
    return LoyaltyIdentity(identifier_name=name, identifier_value=value, source=source)


def cart_customer_id(event: ReturnEvent) -> int | Missing:
    """The numeric customer id, the only identifier cart endpoints accept."""
    if event.customer.id is not None:
        return event.customer.id
    return Missing(
        "numeric_customer_id_missing",
        "cart promotion calls need Capillary's numeric customer id; "
        f"the event gives only {_known(event.customer)}",
    )


def coupon_customer(event: ReturnEvent, policy: Policy) -> CouponCustomer | Missing:
    """The customer for coupon-by-customer calls: exactly one identifier."""
    customer = event.customer
    preference = policy.customer.coupon_identifier_preference
    for name in preference:
        value: object = getattr(customer, name)
        if value is not None:
            return CouponCustomer.model_validate({name: value})
    return Missing(
        "coupon_identifier_missing",
        f"coupon revoke by customer needs the customer's {' or '.join(preference)}; "
        f"the event gives only {_known(customer)}",
    )
