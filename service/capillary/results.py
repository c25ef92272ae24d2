"""Per-item results: what the client answers for every benefit it was asked to take back.

The client never raises for a business refusal; each item gets one of five classes.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ResultClass(StrEnum):
    """How one item ended.

    ``done``: revoked (or enrolled/issued) now. ``already_done``: Capillary says invalid or
    already revoked; after at-least-once delivery that is a final non-failure. ``refused``:
    a final business refusal (redeemed, not found, unsupported type, inactive, expired).
    ``request_error``: a bug or a wrong setting, named in ``next_step``. ``transient``:
    retries exhausted (5xx, 429, timeouts, connection errors, open cart).
    """

    DONE = "done"
    ALREADY_DONE = "already_done"
    REFUSED = "refused"
    REQUEST_ERROR = "request_error"
    TRANSIENT = "transient"

    @property
    def is_success(self) -> bool:
        """``done`` and ``already_done`` both leave the benefit taken back."""
        return self in (ResultClass.DONE, ResultClass.ALREADY_DONE)


class ItemResult(BaseModel):
    """The result of one item: a loyalty earn, a coupon, a cart earn, an enrolment..."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: str = Field(description='What was asked, e.g. "loyalty_earn:974", "coupon:3138309782".')
    result_class: ResultClass
    code: int | None = Field(default=None, description="Capillary's code, or the HTTP status.")
    message: str = ""
    detail: dict[str, str] = Field(default_factory=dict)
    request_ids: list[str] = Field(
        default_factory=list, description="X-CAP-REQUEST-ID of every HTTP attempt."
    )
    attempts: int = 0
    elapsed_ms: float = 0.0
    next_step: str | None = None
