"""What a call answered, read: its body in the documented shape, then item by item.

The call loop hands every family a :class:`Call`: the answer's body, or the ``Failure``
that left none to read. From it and what the answer said about one item, each item gets
its ``ItemResult`` here, shared by the endpoint families so that a code, a failure or a
local refusal reads the same whichever endpoint it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError

from service.capillary.codes import Endpoint, classify, is_known
from service.capillary.models import ApiError
from service.capillary.results import Failure, ItemResult, ResultClass

M = TypeVar("M", bound=BaseModel)

_log = structlog.get_logger("service.capillary.client")


@dataclass(frozen=True, slots=True)
class Call:
    """The end of one logical call, after retries."""

    status: int | None
    body: Any
    failure: Failure | None
    request_ids: list[str]
    attempts: int
    elapsed_ms: float
    # An earlier attempt got no clear answer and may have been processed by Capillary.
    after_uncertain_attempt: bool = False

    def read(self, endpoint: Endpoint, model: type[M]) -> M | Failure:
        """The answer in its documented shape, or why there is none to read."""
        if self.failure is not None:
            return self.failure
        try:
            return model.model_validate(self.body)
        except ValidationError as exc:
            _log.warning(
                "capillary_answer_unreadable",
                endpoint=endpoint.value,
                status=self.status,
                errors=exc.error_count(),
            )
            return Failure(
                ResultClass.REQUEST_ERROR,
                f"answer (HTTP {self.status}) does not have the documented shape",
                self.status,
                "File it with the request id.",
            )


def item_result(
    call: Call,
    item: str,
    result_class: ResultClass,
    *,
    code: int | None = None,
    message: str = "",
    detail: dict[str, str] | None = None,
    next_step: str | None = None,
    asked: bool = True,
) -> ItemResult:
    """One item's result, with the call's request ids, attempts and timing."""
    return ItemResult(
        item=item,
        result_class=result_class,
        code=code,
        message=message,
        detail=detail or {},
        request_ids=list(call.request_ids),
        attempts=call.attempts,
        elapsed_ms=round(call.elapsed_ms, 1),
        next_step=next_step,
        asked=asked,
        after_uncertain_attempt=call.after_uncertain_attempt,
    )


def failed_items(call: Call, items: Sequence[str], failure: Failure) -> list[ItemResult]:
    """The same failure for every item of a call that gave nothing to read item by item."""
    return [
        item_result(
            call,
            item,
            failure.result_class,
            code=failure.code,
            message=failure.message,
            next_step=failure.next_step,
        )
        for item in items
    ]


def from_errors(
    endpoint: Endpoint,
    call: Call,
    item: str,
    errors: Sequence[ApiError],
    action: str | None = None,
) -> ItemResult:
    """An item Capillary refused: its first error's code, classified by the one table
    (``action``: the bulk action, where a code means something else for it)."""
    first = errors[0]
    if first.code is None:
        return item_result(
            call,
            item,
            ResultClass.REQUEST_ERROR,
            message=f"error without a code: {first.message}".strip(),
            next_step="File it with the request id.",
        )
    if not is_known(endpoint, first.code, action):
        _log.warning(
            "capillary_unknown_code",
            endpoint=endpoint.value,
            code=first.code,
            request_ids=call.request_ids,
        )
    info = classify(endpoint, first.code, action)
    message = info.meaning
    if first.message and first.message.strip().lower() != info.meaning.lower():
        message = f"{info.meaning} (Capillary: {first.message.strip()})"
    return item_result(
        call,
        item,
        info.result_class,
        code=first.code,
        message=message,
        next_step=info.next_step or None,
    )


def local_refusal(item: str, message: str, next_step: str) -> ItemResult:
    """An item answered without a call, because the call would be malformed."""
    return ItemResult(
        item=item, result_class=ResultClass.REQUEST_ERROR, message=message, next_step=next_step
    )


NOT_IN_ANSWER = Failure(
    ResultClass.REQUEST_ERROR,
    "Capillary's answer neither revoked nor refused this item",
    next_step="Replay the event: revokes are safe to repeat.",
)

__all__ = ["NOT_IN_ANSWER", "Call", "failed_items", "from_errors", "item_result", "local_refusal"]
