"""Loyalty promotions: REVOKE_EARN and REVOKE_ENROL, ENROL and EARN, up to 100 customers a call.

Both bulk endpoints answer one item per customer, in the order sent; a failed item names
no customer, so items are matched by position, and a successful item's ``entityId`` is
checked against the customer we sent where we named customers by ``id``. What was revoked
is what the item lists in ``revokedEarnIds``: an id we sent that is not listed was not
revoked.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from service.capillary.answers import (
    Call,
    failed_items,
    from_errors,
    item_result,
    local_refusal,
)
from service.capillary.call import CallLoop
from service.capillary.codes import Endpoint
from service.capillary.limits import MAX_LOYALTY_CUSTOMERS, chunks_without_repeats
from service.capillary.models import (
    CustomerT,
    IdentifierName,
    LoyaltyAction,
    LoyaltyBulkAction,
    LoyaltyBulkCustomer,
    LoyaltyBulkItem,
    LoyaltyBulkRequest,
    LoyaltyBulkResponse,
    LoyaltyCustomer,
    LoyaltyCustomerEarns,
    LoyaltyPromotionRef,
)
from service.capillary.requests import LoyaltyBulk
from service.capillary.results import Failure, ItemResult, ResultClass

_log = structlog.get_logger("service.capillary.client")

_POSITION_NEXT_STEP = "Replay the event: revokes are safe to repeat."
_GIVE_BACKS = ("ENROL", "EARN")
_UNMATCHED_NEXT_STEP = (
    "Check in Capillary whether the customer holds the promotion (the request id finds the "
    "call); enrol or issue it by hand only if not. Do not replay: EARN has no idempotency key."
)


def _unmatched(action: LoyaltyBulkAction, failure: Failure) -> Failure:
    """A 200 answer that cannot be read item by item: for a give-back it may have been made."""
    if action not in _GIVE_BACKS:
        return failure
    return Failure(
        ResultClass.UNCERTAIN,
        f"{failure.message}; it may have been carried out, so it is not repeated",
        failure.code,
        _UNMATCHED_NEXT_STEP,
    )


class LoyaltyCalls:
    """The two loyalty bulk endpoints, one result per earn id (or per customer)."""

    def __init__(self, loop: CallLoop) -> None:
        self._loop = loop

    async def bulk(
        self, bulk: LoyaltyBulk[CustomerT], customers: Sequence[CustomerT]
    ) -> list[ItemResult]:
        """One bulk action (``bulk``) for ``customers``, their results in order.

        * REVOKE_EARN: one result per earn ID, or one per customer for the broad form:
          ``earn_ids=None`` revokes *all* the customer's earns of the promotion (the client
          allows it, the rules decide when); an empty list is refused without a call.
        * REVOKE_ENROL: enrol-and-issue promotions only, after that customer's REVOKE_EARN.
        * ENROL: enrol in an enrol-and-issue promotion; ``detail`` has the ``issual_id``.
        * EARN: issue the promotion; ``detail["earned_id"]`` is the new earn ID. Not
          idempotent: after an ambiguous failure (the request may have been processed) it is
          not retried and the result says a repeat could issue twice.
        """
        grouped = await self.grouped(bulk, customers)
        return [result for results in grouped for result in results]

    async def grouped(
        self,
        shared: LoyaltyBulk[CustomerT],
        customers: Sequence[CustomerT],
        *,
        admitted: bool = False,
    ) -> list[list[ItemResult]]:
        """The results of each customer given, one list per customer, in order.

        A customer's results do not depend on who else was in the call, except for the
        call's ``request_ids``, ``attempts`` and ``elapsed_ms``: answers are matched by
        position, so callers of several events can share a call (``coalesce.py``) and take
        back each their own. Unsendable customers are answered without a call (see
        :func:`refusal`). ``admitted``: the first request's first rate permit is taken.
        """
        action, promotion, identifier_name = shared.action, shared.promotion, shared.identifier_name
        bulk_action = action.bulk_action
        endpoint, idempotent = _ENDPOINTS[bulk_action]
        by_index: dict[int, list[ItemResult]] = {}
        sendable: list[tuple[int, LoyaltyCustomer]] = []
        for index, customer in enumerate(customers):
            refused = refusal(action, promotion, customer)
            if refused is not None:
                by_index[index] = refused
            else:
                sendable.append((index, customer))

        batches = chunks_without_repeats(
            sendable, MAX_LOYALTY_CUSTOMERS, key=lambda pair: customer_key(pair[1])
        )
        for batch in batches:
            pairs = [pair for _, pair in batch]
            request = LoyaltyBulkRequest(
                bulk_action=bulk_action,
                promotion_details=promotion.wire(),
                identifier_name=identifier_name,
                customers=[
                    LoyaltyBulkCustomer(
                        identifier_value=c.identifier_value,
                        source=c.source,
                        earn_ids=c.earn_ids if isinstance(c, LoyaltyCustomerEarns) else None,
                    )
                    for _, c in pairs
                ],
            )
            call = await self._loop.send(
                endpoint,
                json=request.wire(),
                attribution=shared.attribution,
                idempotent=idempotent,
                admitted=admitted,
            )
            admitted = False  # the permit was for the first request only
            answers = _read(
                endpoint, bulk_action, promotion, identifier_name, [c for _, c in pairs], call
            )
            for (index, _), results in zip(pairs, answers, strict=True):
                by_index[index] = results
        return [by_index[index] for index in range(len(customers))]


_ENDPOINTS: dict[LoyaltyBulkAction, tuple[Endpoint, bool]] = {
    "REVOKE_EARN": (Endpoint.LOYALTY_REVOKE, True),
    "REVOKE_ENROL": (Endpoint.LOYALTY_REVOKE, True),
    "ENROL": (Endpoint.LOYALTY_ENROL, True),
    # EARN has no idempotency key: a repeat after an ambiguous failure could issue twice.
    "EARN": (Endpoint.LOYALTY_ENROL, False),
}


def endpoint_of(action: LoyaltyAction[CustomerT]) -> Endpoint:
    """The endpoint a bulk action goes to (and whose rate limit it takes)."""
    return _ENDPOINTS[action.bulk_action][0]


def customer_key(customer: LoyaltyCustomer) -> str:
    """What makes two customers the same one: never twice in one call."""
    return customer.identifier_value.strip().lower()


def refusal(
    action: LoyaltyAction[CustomerT], promotion: LoyaltyPromotionRef, customer: CustomerT
) -> list[ItemResult] | None:
    """The results of a customer that cannot go in a call (answered locally), or None."""
    why = _unsendable(customer)
    if why is None:
        return None
    message, next_step = why
    items = _items(action.bulk_action, promotion, customer)
    return [local_refusal(item, message, next_step) for item in items]


def _read(
    endpoint: Endpoint,
    action: LoyaltyBulkAction,
    promotion: LoyaltyPromotionRef,
    identifier_name: IdentifierName,
    customers: list[LoyaltyCustomer],
    call: Call,
) -> list[list[ItemResult]]:
    """Each customer's item results, in the order the customers were sent."""
    items_of = [_items(action, promotion, c) for c in customers]
    parsed = call.read(endpoint, LoyaltyBulkResponse)
    if isinstance(parsed, Failure):
        if call.failure is None:  # answered, in a shape nobody can read
            parsed = _unmatched(action, parsed)
        return [failed_items(call, items, parsed) for items in items_of]
    if not parsed.response and parsed.errors:
        # Refused as a whole: every item keeps Capillary's code.
        return [
            [from_errors(endpoint, call, i, parsed.errors, action) for i in items]
            for items in items_of
        ]
    if len(parsed.response) != len(customers):
        mismatch = Failure(
            ResultClass.REQUEST_ERROR,
            f"answer has {len(parsed.response)} items for {len(customers)} customers: "
            "cannot match them by position",
            next_step=_POSITION_NEXT_STEP,
        )
        return [failed_items(call, items, _unmatched(action, mismatch)) for items in items_of]
    # Items carry no identifier we sent (failures carry none at all): position is the key.
    return [
        _customer_results(endpoint, action, identifier_name, customer, items, answer, call)
        for customer, items, answer in zip(customers, items_of, parsed.response, strict=True)
    ]


def _customer_results(
    endpoint: Endpoint,
    action: LoyaltyBulkAction,
    identifier_name: IdentifierName,
    customer: LoyaltyCustomer,
    items: list[str],
    answer: LoyaltyBulkItem,
    call: Call,
) -> list[ItemResult]:
    if answer.errors:
        return [from_errors(endpoint, call, item, answer.errors, action) for item in items]
    result = answer.result
    if result is None:
        empty = Failure(ResultClass.REQUEST_ERROR, "answer item has neither result nor errors")
        return failed_items(call, items, _unmatched(action, empty))
    sent = customer.identifier_value.strip()
    if identifier_name == "id" and result.entity_id is not None and str(result.entity_id) != sent:
        _log.warning(
            "capillary_position_mismatch",
            endpoint=endpoint.value,
            entity_id=result.entity_id,
            sent=sent,
            request_ids=call.request_ids,
        )
        mismatch = Failure(
            ResultClass.REQUEST_ERROR,
            f"answer item names customer {result.entity_id} where customer {sent} was sent: "
            "items do not match customers by position",
            next_step=_POSITION_NEXT_STEP,
        )
        return failed_items(call, items, _unmatched(action, mismatch))
    detail: dict[str, str] = {}
    if result.entity_id is not None:
        detail["entity_id"] = str(result.entity_id)
    issual = result.revoked_issual_id or result.issual_id
    if issual is not None:
        detail["issual_id"] = issual
    if result.earned_id is not None:
        detail["earned_id"] = result.earned_id
    if result.revoked_earn_ids:
        detail["revoked_earn_ids"] = ",".join(str(e) for e in result.revoked_earn_ids)
    earn_ids = customer.earn_ids if isinstance(customer, LoyaltyCustomerEarns) else None
    if action != "REVOKE_EARN" or earn_ids is None:
        return [
            item_result(call, item, ResultClass.DONE, message="done", detail=detail)
            for item in items
        ]
    revoked = set(result.revoked_earn_ids)
    return [
        item_result(call, _earn_item(earn), ResultClass.DONE, message="revoked", detail=detail)
        if earn in revoked
        else item_result(
            call,
            _earn_item(earn),
            ResultClass.GONE,
            message="not revoked: Capillary did not list it in revokedEarnIds "
            "(invalid or already revoked)",
            detail=detail,
            next_step="Nothing to do if an earlier attempt of this event revoked it.",
        )
        for earn in earn_ids
    ]


def _earn_item(earn_id: int) -> str:
    return f"loyalty_earn:{earn_id}"


def _items(
    action: LoyaltyBulkAction, promotion: LoyaltyPromotionRef, customer: LoyaltyCustomer
) -> list[str]:
    who = customer.identifier_value
    if action == "REVOKE_EARN":
        earn_ids = customer.earn_ids if isinstance(customer, LoyaltyCustomerEarns) else None
        if earn_ids is None:
            return [f"loyalty_earns_all:{promotion.label()}/{who}"]
        if not earn_ids:
            return [f"loyalty_earns_none:{promotion.label()}/{who}"]
        return [_earn_item(earn) for earn in earn_ids]
    if action == "EARN":
        return [f"loyalty_issue:{promotion.label()}/{who}"]
    return [f"enrolment:{promotion.label()}/{who}"]


def _unsendable(customer: LoyaltyCustomer) -> tuple[str, str] | None:
    """Why this customer cannot go in a call (message, next step), or None."""
    missing = []
    if not customer.identifier_value.strip():
        missing.append("identifier value")
    if not customer.source.strip():
        missing.append("registration source")
    if missing:
        return (
            f"customer has no {' and no '.join(missing)}; no call was made",
            f"The event or the policy must give the customer's {' and '.join(missing)}.",
        )
    if isinstance(customer, LoyaltyCustomerEarns) and customer.earn_ids == []:
        return (
            "empty earn id list; no call was made (Capillary reads no earnIds as every earn "
            "of the promotion)",
            "Name the earn ids to revoke, or let the policy ask for the broad form explicitly.",
        )
    return None


__all__ = ["LoyaltyCalls", "customer_key", "endpoint_of", "refusal"]
