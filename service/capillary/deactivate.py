"""Deactivate: end one customer's participation in a cart promotion, or one earn.

The body is empty. ``earnId`` goes in the query only for PAYMENT_VOUCHER promotions (the
page's example sends ``earnId=null``; the tables make it optional: it is left out).
"""

from __future__ import annotations

from urllib.parse import quote

from service.capillary.answers import failed_items, from_errors, item_result, local_refusal
from service.capillary.call import CallLoop
from service.capillary.codes import Endpoint
from service.capillary.models import DeactivateResponse
from service.capillary.requests import Deactivation
from service.capillary.results import Failure, ItemResult, ResultClass

_ENDPOINT = Endpoint.DEACTIVATE


class DeactivateCalls:
    """The deactivate endpoint, one result per call."""

    def __init__(self, loop: CallLoop) -> None:
        self._loop = loop

    async def deactivate(self, request: Deactivation) -> list[ItemResult]:
        """End one customer's participation, or one earn (``earn_id``, PAYMENT_VOUCHER mode)."""
        promotion_id, customer_id, earn_id = (
            request.promotion_id,
            request.customer_id,
            request.earn_id,
        )
        item = f"deactivation:{promotion_id}/{customer_id}"
        if earn_id is not None:
            item += f"/{earn_id}"
        if not promotion_id.strip():
            return [
                local_refusal(
                    item,
                    "empty promotion ID; no call was made",
                    "The event or the policy must give the promotion ID.",
                )
            ]
        params = {"customerId": str(customer_id)}
        if earn_id is not None:
            params["earnId"] = earn_id
        call = await self._loop.send(
            _ENDPOINT,
            url=self._loop.url(_ENDPOINT, promotion_id=quote(promotion_id, safe="")),
            content=b"",
            params=params,
            attribution=request.attribution,
        )
        parsed = call.read(_ENDPOINT, DeactivateResponse)
        if isinstance(parsed, Failure):
            return failed_items(call, [item], parsed)
        if parsed.errors:
            return [from_errors(_ENDPOINT, call, item, parsed.errors)]
        if parsed.data is True:
            return [item_result(call, item, ResultClass.DONE, message="deactivated")]
        unclear = Failure(
            ResultClass.REQUEST_ERROR,
            f"answer data={parsed.data!r} without errors",
            next_step="Look the request id up with Capillary.",
        )
        return failed_items(call, [item], unclear)


__all__ = ["DeactivateCalls"]
