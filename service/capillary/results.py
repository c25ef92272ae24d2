"""Per-item results: what the client answers for every benefit it was asked to take back.

The client never raises for a business refusal; each item gets one class, read from the
answer item by item (``service/capillary/codes.py`` is the one table from a code to its
class).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ResultClass(StrEnum):
    """How one item ended, as far as Capillary's answer tells."""

    DONE = "done"
    """Revoked (or enrolled/issued) now."""
    ALREADY_DONE = "already_done"
    """Nothing left to do (e.g. no unredeemed coupons left for a customer)."""
    GONE = "gone"
    """Capillary's "invalid, not found or already revoked" (8903, cart 404/731, coupon 682,
    deactivate 731): whether that means "done before" depends on whether an earlier attempt of the
    same event exists, which the caller knows and the client does not."""
    NOT_FOUND = "not_found"
    """Customer, promotion or item unknown."""
    REDEEMED = "redeemed"
    """The customer used it; it cannot be taken back."""
    KEPT = "kept"
    """Capillary kept it on purpose (an enrolment while other earns of the promotion
    remain)."""
    REFUSED = "refused"
    """Another final business refusal."""
    REQUEST_ERROR = "request_error"
    """A bug or a wrong setting, named in ``next_step``."""
    TRANSIENT = "transient"
    """This item's own transient refusal outlasted its retries (737 open cart)."""
    UNCERTAIN = "uncertain"
    """A give-back (ENROL, EARN) was answered, but the answer cannot be matched to the
    customers sent: it may have been made, so it must not be repeated."""
    UNAVAILABLE = "unavailable"
    """No answer to read: Capillary down, throttling past the budget, or refusing our
    credentials; not about the item, so the caller pauses instead of reporting it."""

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
    asked: bool = Field(
        default=True,
        description="False for what Capillary changed although it was not asked to "
        "(a generic coupon series revoked whole).",
    )
    after_uncertain_attempt: bool = Field(
        default=False,
        description="An earlier attempt of this call got no clear answer and may have been "
        "processed: a gone answer then most likely means done by that attempt.",
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a call (or an answer) produced nothing to read item by item: every item of it
    gets this class, message, code and next step."""

    result_class: ResultClass
    message: str
    code: int | None = None
    next_step: str | None = None
