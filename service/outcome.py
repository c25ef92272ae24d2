"""The output contract: one outcome event per input event, for analytics and operators.

Published to the outcomes topic, keyed by the source event id. It carries the
source event's identity, the decision with the reason for every action, and
every action's result with API timings and attempts. Personal data is not
copied: the customer appears by numeric id or external id only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.actions import Decision
from service.events import ReturnType

OUTCOME_SCHEMA_VERSION: Literal["1"] = "1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ActionStatus(StrEnum):
    """How one action (or one item of it) ended."""

    REVOKED = "revoked"
    """Taken back now."""
    RESTORED = "restored"
    """Given back now (a cancelled return)."""
    ALREADY_REVOKED = "already_revoked"
    """Capillary answered "invalid or already revoked": an earlier attempt may have done it."""
    REFUSED_REDEEMED = "refused_redeemed"
    """Already used by the customer: cannot be taken back. Never retried."""
    NOT_FOUND = "not_found"
    """Capillary does not know the customer, promotion or item."""
    REFUSED = "refused"
    """Another final business refusal: unsupported type, inactive promotion, expired series."""
    FAILED = "failed"
    """Failed after retries, or the request itself was wrong: needs an operator."""
    SKIPPED = "skipped"
    """No call was made; ``report_kind`` on the action says why."""

    @property
    def is_failure(self) -> bool:
        """True for the one status that asks an operator to act."""
        return self is ActionStatus.FAILED


class SourceRecord(_Model):
    """Where the input event was read from."""

    topic: str
    partition: int
    offset: int


class EventIdentity(_Model):
    """The input event this outcome answers."""

    event_id: str
    return_type: ReturnType
    occurred_at: AwareDatetime
    order_id: str
    transaction_id: str
    customer_id: int | None = None
    customer_external_id: str | None = None
    record: SourceRecord | None = None


class ItemResult(_Model):
    """The result for one thing an action touched: an earn id, a coupon code, an enrolment."""

    item: str
    status: ActionStatus
    code: int | None = None
    message: str = ""
    detail: dict[str, str] = Field(default_factory=dict)


class ActionResult(_Model):
    """One planned action, why it was chosen, and how it ended."""

    action_id: str
    kind: str
    reason_code: str
    reason: str
    status: ActionStatus
    report_kind: str | None = None
    broad: bool = False
    items: list[ItemResult] = Field(default_factory=list)
    attempts: int = 0
    elapsed_ms: float = 0.0
    request_ids: list[str] = Field(default_factory=list)
    next_step: str | None = None


class OutcomeStatus(StrEnum):
    """The outcome in one word."""

    COMPLETED = "completed"
    """Every action reached a final result (revoked, already revoked, refused, skipped...)."""
    FAILED = "failed"
    """At least one action failed: replay the event once the cause is fixed."""


class ServiceInfo(_Model):
    """Which service and version wrote the outcome."""

    name: Literal["return-handler"] = "return-handler"
    version: str


class OutcomeEvent(_Model):
    """The outcome of one input event."""

    schema_version: Literal["1"] = OUTCOME_SCHEMA_VERSION
    event: EventIdentity
    status: OutcomeStatus
    decision: Decision
    summary: str
    policy_version: str
    actions: list[ActionResult] = Field(default_factory=list)
    processed_at: AwareDatetime
    duration_ms: float
    service: ServiceInfo
    replay_warning: str | None = Field(
        default=None,
        description=(
            "Set when replaying this event could repeat a non-idempotent call "
            "(re-issuing a loyalty earn after a cancelled return)."
        ),
    )
