"""Cart promotions: revokeEarn for one customer, up to 1,000 earn ids a call.

What was revoked is what ``revokedDetails[].revokedEarnIds`` lists ("earn IDs that were
successfully revoked"), whatever the entry's ``status`` says. ``errors[]`` carry only a
code and a message and name no earn: when an answer with errors leaves more than one earn
unaccounted for, each of those earns is asked again on its own to learn its own answer.
Ids are 24-hex strings compared without regard to case.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.capillary.answers import NOT_IN_ANSWER, failed_items, from_errors, item_result
from service.capillary.call import CallLoop
from service.capillary.codes import Endpoint
from service.capillary.limits import MAX_CART_EARN_IDS, chunks
from service.capillary.models import (
    Attribution,
    CartEarnRevokeDetail,
    CartEarnsRef,
    CartRevokeRequest,
    CartRevokeResponse,
)
from service.capillary.requests import CartRevoke
from service.capillary.results import Failure, ItemResult, ResultClass

_ENDPOINT = Endpoint.CART_REVOKE


class CartCalls:
    """The cart revokeEarn endpoint, one result per earn id."""

    def __init__(self, loop: CallLoop) -> None:
        self._loop = loop

    async def revoke_earns(self, request: CartRevoke) -> list[ItemResult]:
        """Revoke unredeemed cart promotion earns of one customer; one result per earn ID."""
        return await self.grouped(
            request.customer_id, earn_pairs(request.earns), request.attribution
        )

    async def grouped(
        self,
        customer_id: int,
        pairs: Sequence[tuple[str, str]],
        attribution: Attribution | None = None,
        *,
        admitted: bool = False,
    ) -> list[ItemResult]:
        """One result per (promotion id, earn id) given, in order, 1,000 a call.

        An earn's result does not depend on the other earns of the call, except for the
        call's ``request_ids``, ``attempts`` and ``elapsed_ms`` (errors that name no earn
        are asked again earn by earn), so several events' earns of one customer can share
        a call (``coalesce.py``). ``admitted``: the first request's first permit is taken.
        """
        results: list[ItemResult] = []
        for batch in chunks(list(pairs), MAX_CART_EARN_IDS):
            results += await self._call(
                customer_id, batch, attribution, may_split=True, admitted=admitted
            )
            admitted = False  # the permit was for the first request only
        return results

    async def _call(
        self,
        customer_id: int,
        pairs: list[tuple[str, str]],
        attribution: Attribution | None,
        *,
        may_split: bool,
        admitted: bool = False,
    ) -> list[ItemResult]:
        """One result per pair, in the order of ``pairs``."""
        grouped: dict[str, list[str]] = {}
        for promotion_id, earn_id in pairs:
            grouped.setdefault(promotion_id, []).append(earn_id)
        request = CartRevokeRequest(
            customer_id=customer_id,
            earn_revoke_details=[
                CartEarnRevokeDetail(promotion_id=p, earn_ids=ids) for p, ids in grouped.items()
            ],
        )
        call = await self._loop.send(
            _ENDPOINT, json=request.wire(), attribution=attribution, admitted=admitted
        )
        parsed = call.read(_ENDPOINT, CartRevokeResponse)
        if isinstance(parsed, Failure):
            return failed_items(call, [_item(e) for _, e in pairs], parsed)
        revoked = {
            earn.casefold()
            for detail in (parsed.data.revoked_details if parsed.data else [])
            for earn in detail.revoked_earn_ids
        }
        remaining = [(p, e) for p, e in pairs if e.casefold() not in revoked]
        split = bool(parsed.errors) and len(remaining) > 1 and may_split
        results = []
        for promotion_id, earn_id in pairs:
            item = _item(earn_id)
            if earn_id.casefold() in revoked:
                results.append(
                    item_result(
                        call,
                        item,
                        ResultClass.DONE,
                        message="revoked",
                        detail={"promotion_id": promotion_id},
                    )
                )
            elif split:
                # The errors name no earn: one call per earn learns each earn's own answer.
                results += await self._call(
                    customer_id, [(promotion_id, earn_id)], attribution, may_split=False
                )
            elif parsed.errors:
                results.append(from_errors(_ENDPOINT, call, item, parsed.errors))
            else:
                results.extend(failed_items(call, [item], NOT_IN_ANSWER))
        return results


def earn_pairs(earns: Sequence[CartEarnsRef]) -> list[tuple[str, str]]:
    """(promotion id, earn id) of every earn, each once (ids compared without case)."""
    unique: dict[tuple[str, str], tuple[str, str]] = {}
    for ref in earns:
        for earn in ref.earn_ids:
            unique.setdefault(
                (ref.promotion_id.casefold(), earn.casefold()), (ref.promotion_id, earn)
            )
    return list(unique.values())


def _item(earn_id: str) -> str:
    return f"cart_earn:{earn_id}"


__all__ = ["CartCalls", "earn_pairs"]
