"""The retry path: an event whose own transient refusal (an open cart) is tried again later.

The event goes to the retry topic (partitioned like returns, so partition p stays with
the same owner, transaction and state) with the attempt, a not-before time and the
producer's record (``records.origin_headers``) in headers; its returns offset is committed
in the same transaction, so the partition goes on. When the retry record comes up before
its time, only that retry partition waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.capillary.codes import OPEN_CART_CODE
from service.outcome import ActionResult, ActionStatus
from service.pipeline.records import Record, origin_headers

ATTEMPT_HEADER = "rh-attempt"
NOT_BEFORE_HEADER = "rh-not-before-ms"
REASON_HEADER = "rh-retry-reason"
RETRY_HEADERS = (ATTEMPT_HEADER, NOT_BEFORE_HEADER, REASON_HEADER)


@dataclass(frozen=True, slots=True)
class RetryInfo:
    """What a retry record's headers say (its origin is the record's ``origin``)."""

    attempt: int
    not_before_ms: int


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded attempts, doubling delays."""

    max_attempts: int
    initial_delay_seconds: float
    max_delay_seconds: float

    def delay_ms(self, next_attempt: int) -> int | None:
        """Milliseconds before ``next_attempt`` (2 is the first retry), or ``None``: give up."""
        if next_attempt > self.max_attempts:
            return None
        seconds = self.initial_delay_seconds * 2 ** (next_attempt - 2)
        return int(min(seconds, self.max_delay_seconds) * 1000)


def retry_info(record: Record) -> RetryInfo | None:
    """The retry headers of a record from the retry topic; ``None`` for a first delivery."""
    if not record.headers:
        return None
    headers = dict(record.headers)
    if ATTEMPT_HEADER not in headers:
        return None
    try:
        return RetryInfo(
            attempt=int(headers[ATTEMPT_HEADER]),
            not_before_ms=int(headers.get(NOT_BEFORE_HEADER, b"0")),
        )
    except ValueError:
        return None


def retry_headers(
    record: Record, *, attempt: int, not_before_ms: int, reason: str
) -> list[tuple[str, bytes]]:
    """Headers of the retry record: the original ones with the producer's record named (kept
    across retries), then ours."""
    kept = [(k, v) for k, v in origin_headers(record) if k not in RETRY_HEADERS]
    return [
        *kept,
        (ATTEMPT_HEADER, str(attempt).encode()),
        (NOT_BEFORE_HEADER, str(not_before_ms).encode()),
        (REASON_HEADER, reason.encode()),
    ]


def waits_on_open_cart(results: list[ActionResult]) -> bool:
    """An action failed because the customer's cart is open (737): worth the retry path."""
    return any(
        item.status is ActionStatus.FAILED and item.code == OPEN_CART_CODE
        for result in results
        for item in result.items
    )


def gave_back(results: list[ActionResult]) -> bool:
    """Whether a give-back was made (then the event never takes the retry path)."""
    # A retry re-runs the whole event: never once a give-back was made.
    return any(result.status is ActionStatus.RESTORED for result in results)


def exhausted(result: ActionResult, attempts: int) -> ActionResult:
    """``result`` after the last attempt, saying what to do about a cart that stayed open."""
    if not any(item.code == OPEN_CART_CODE for item in result.items):
        return result
    return result.model_copy(
        update={
            "next_step": f"The customer's cart stayed open through {attempts} attempts: "
            "replay the event once the cart is closed."
        }
    )


__all__ = [
    "RetryInfo",
    "RetryPolicy",
    "exhausted",
    "gave_back",
    "retry_headers",
    "retry_info",
    "waits_on_open_cart",
]
