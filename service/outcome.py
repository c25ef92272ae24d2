"""The output contract: one outcome event per input event, for analytics and operators.

Published to the outcomes topic under the input's key. It carries the
source event's identity, the decision with the reason for every action, and
every action's result with API timings and attempts. Personal data is not
copied: the customer appears by numeric id or external id only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.actions import Decision
from service.events import ReturnType

OUTCOME_SCHEMA_VERSION: Literal["1"] = "1"


class _Model(BaseModel):
    # Attribute docstrings become the field descriptions of the published JSON Schema.
    # Open to additions: fields are added within v1 (docs/reference/schemas.md,
    # "Compatibility"), so a reader of another version ignores the fields it does not
    # know, and the published schema allows them.
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class ActionStatus(StrEnum):
    """How one action (or one item of it) ended.

    revoked: taken back now. restored: given back now (a cancelled return).
    already_revoked: taken back before, by an earlier outcome of this event (the ledger), or
    Capillary answered "invalid or already revoked" (8903, cart 731/404, coupon 682,
    deactivate 731) to a repeat whose earlier attempt left no record; not a failure.
    refused_redeemed: the customer already used it; never retried. kept: Capillary kept it
    on purpose (an enrolment while other earns of the promotion remain). not_found:
    Capillary does not know the customer, promotion or item (also "invalid or already
    revoked" on a first attempt). refused: another final business refusal (unsupported
    type, inactive promotion, expired series). failed: failed after retries, or the request
    itself was wrong; needs an operator. skipped: no call was made; report_kind says why.
    """

    REVOKED = "revoked"
    """Taken back now."""
    RESTORED = "restored"
    """Given back now (a cancelled return)."""
    ALREADY_REVOKED = "already_revoked"
    """Taken back before: by an earlier outcome of this event (the ledger says so; no call
    now), or Capillary answered "invalid or already revoked" to a repeat whose earlier attempt
    left no record (a crash)."""
    REFUSED_REDEEMED = "refused_redeemed"
    """Already used by the customer: cannot be taken back. Never retried."""
    KEPT = "kept"
    """Capillary kept it on purpose: an enrolment while other earns of the promotion remain."""
    NOT_FOUND = "not_found"
    """Capillary does not know the customer, promotion or item (or it was invalid or already
    revoked before this event's first attempt)."""
    REFUSED = "refused"
    """Another final business refusal: unsupported type, inactive promotion, expired series."""
    UNCONFIRMED = "unconfirmed"
    """A give-back that may have been made without an answer saying so (an earlier attempt
    crashed between the call and the outcome, or Capillary's answer cannot be matched to the
    customers): not called again; an operator checks the customer in Capillary."""
    FAILED = "failed"
    """Failed after retries, or the request itself was wrong: needs an operator."""
    SKIPPED = "skipped"
    """No call was made; ``report_kind`` on the action says why."""
    ALREADY_RESTORED = "already_restored"
    """Not given back again: the ledger (or the replay's ``rh-replay-issued``) shows an earlier
    outcome of this event gave it back; Capillary's EARN has no idempotency key.
    ``--allow-reissue`` overrides."""

    @property
    def is_failure(self) -> bool:
        """True for the one status that asks an operator to act."""
        return self is ActionStatus.FAILED


class SourceRecord(_Model):
    """Where the input event was read from."""

    topic: str
    """Topic the input event was read from."""
    partition: int
    """Its partition."""
    offset: int
    """Its offset."""


class EventIdentity(_Model):
    """The input event this outcome answers."""

    event_id: str
    """The input event's idempotency key."""
    return_type: ReturnType
    """FULL, LINE_ITEM, AMOUNT, EXCHANGE or CANCELLED, as in the input."""
    occurred_at: AwareDatetime
    """When the return happened, as in the input."""
    order_id: str
    """The original order."""
    transaction_id: str
    """The original transaction in Capillary."""
    customer_id: int | None = None
    """Capillary's numeric customer id, when the input had one."""
    customer_external_id: str | None = None
    """The customer's external id, when the input had one. Mobile and e-mail are not copied."""
    record: SourceRecord | None = None
    """Where the input was read; absent for dry runs."""


class ItemResult(_Model):
    """The result for one thing an action touched: an earn id, a coupon code, an enrolment."""

    item: str
    """What was touched, e.g. loyalty_earn:974, coupon:3138309782, cart_earn:<id>."""
    status: ActionStatus
    """How it ended."""
    code: int | None = None
    """Capillary's code (or HTTP status) behind the status, when there was one."""
    message: str = ""
    """Capillary's message, or ours when no call was made."""
    detail: dict[str, str] = Field(default_factory=dict)
    """Extra facts: earned_id of a re-issued earn, clawback=flagged for a redeemed benefit."""
    attempt: int | None = None
    """The attempt of this event that got this result, when it was an earlier one than the
    outcome's (the retry path): what each attempt did."""
    asked: bool = True
    """False for what Capillary changed although it was not asked to: coupons revoked beyond
    the codes sent (a generic coupon in the series makes a multi-code revoke take it all)."""


class ActionResult(_Model):
    """One planned action, why it was chosen, and how it ended."""

    action_id: str
    """Stable within the event; names what the action touches."""
    kind: str
    """revoke_loyalty_earn, revoke_loyalty_enrolment, enrol_loyalty, issue_loyalty_earn,
    revoke_cart_earn, deactivate_cart_promotion, revoke_coupon_codes,
    revoke_customer_coupons or report."""
    reason_code: str
    """Why the rules chose it, machine-readable (e.g. full_return, spend_threshold_lost)."""
    reason: str
    """Why the rules chose it, for people."""
    status: ActionStatus
    """The most telling status of its items (failed before refused before revoked)."""
    report_kind: str | None = None
    """For kind=report: still_deserved, skipped_by_policy, not_revocable, missing_identifier,
    not_restorable, outside_return_window, nothing_earned, return_unknown, already_cancelled,
    not_taken_back, taken_back_unconfirmed, customer_mismatch or cancelled_since."""
    broad: bool = False
    """True when the call reaches beyond this order (all earns of a promotion, all coupons
    of a customer, a whole participation); only where the policy allows it."""
    items: list[ItemResult] = Field(default_factory=list)
    """One result per thing touched."""
    attempts: int = 0
    """HTTP attempts of the call, retries included."""
    elapsed_ms: float = 0.0
    """Time the call took, retries and waits included."""
    request_ids: list[str] = Field(default_factory=list)
    """Capillary's X-CAP-REQUEST-ID of every attempt, for support tickets."""
    next_step: str | None = None
    """What an operator should do, when the status asks for it."""


class OutcomeStatus(StrEnum):
    """The outcome in one word.

    completed: every action reached a final result (revoked, already revoked, refused,
    skipped...). failed: at least one action failed; replay the event once the cause is fixed.
    duplicate: the same event id was handled before; nothing was called; ``duplicate_of``
    names the first outcome. needs_check: a give-back may have been made without an answer
    that says so (a crash, an answer that cannot be matched); it was not repeated; check the
    customer. return_unknown: a cancellation of a return the ledger does not know; nothing
    was given back; an operator looks.
    """

    COMPLETED = "completed"
    """Every action reached a final result (revoked, already revoked, refused, skipped...)."""
    FAILED = "failed"
    """At least one action failed: replay the event once the cause is fixed."""
    DUPLICATE = "duplicate"
    """The event id was handled before (within the dedupe window): nothing was called."""
    NEEDS_CHECK = "needs_check"
    """A give-back may have been made without an answer that says so (an earlier attempt
    crashed, or Capillary's answer cannot be matched to the customers): an operator checks the
    customer and promotion named in the unconfirmed actions."""
    RETURN_UNKNOWN = "return_unknown"
    """A cancellation of a return this service's ledger does not know (never handled, handled
    under another customer key, or older than the dedupe window): nothing was given back. An
    operator checks what the return took and replays this event once the return is handled,
    or gives back by hand."""


class ReplayInfo(_Model):
    """Set when an operator replayed this event (``return-handler replay``)."""

    replay_id: str
    """The replay run; ``return-handler replay --resume`` continues it."""
    reason: str
    """Why the operator replayed it (``--reason``)."""
    source: str
    """Where the replayed event was taken from: topic:partition:offset, or file:NAME:LINE."""
    of: SourceRecord | None = None
    """The record it re-drives, when it came from a topic."""
    sequence: int = 0
    """Its place in the replay run."""
    reissue_allowed: bool = False
    """The operator allowed give-backs an earlier outcome shows as made to be made again."""


class FirstOutcome(_Model):
    """The outcome a duplicate delivery refers to."""

    status: OutcomeStatus | None = None
    """Its status; absent while the first delivery is still being retried."""
    outcome_partition: int | None = None
    """Partition of the outcomes topic it was written to."""
    outcome_offset: int | None = None
    """Its offset there."""
    input_partition: int
    """Partition of the first delivery of the event."""
    input_offset: int
    """Offset of the first delivery of the event."""


class ServiceInfo(_Model):
    """Which service and version wrote the outcome."""

    name: Literal["return-handler"] = "return-handler"
    """Always return-handler."""
    version: str
    """The service version that wrote the outcome."""


class OutcomeEvent(_Model):
    """The outcome of one input event."""

    schema_version: Literal["1"] = OUTCOME_SCHEMA_VERSION
    """Version of this schema; a breaking change gets a new version and file."""
    outcome_id: UUID | None = None
    """This outcome's own id (a random UUID), also its CloudEvents ``ce_id``: unique across
    deployments and topic re-creations, kept when the outcome is read again. A redelivered or
    replayed event gets an outcome of its own, with a new id. Always written since 0.2.0;
    absent from outcomes written before (a field added within v1 is optional to readers)."""
    event: EventIdentity
    """The input event this outcome answers."""
    status: OutcomeStatus
    """completed, failed, duplicate, needs_check or return_unknown."""
    decision: Decision
    """take_back, give_back or nothing_to_do."""
    summary: str
    """The plan in one sentence, for people."""
    policy_version: str
    """The version key of the policy file that decided."""
    actions: list[ActionResult] = Field(default_factory=list)
    """Every planned action in execution order, with its reason and result."""
    processed_at: AwareDatetime
    """When the outcome was written (UTC)."""
    duration_ms: float
    """Time from reading the input to publishing this outcome."""
    service: ServiceInfo
    """Which service and version wrote it."""
    replay_warning: str | None = None
    """Set when replaying this event could repeat a non-idempotent call (re-issuing a loyalty
    earn after a cancelled return)."""
    duplicate_of: FirstOutcome | None = None
    """For status duplicate: the first outcome of this event id."""
    attempt: int = 1
    """Which attempt of the event this is: above 1 after the retry path (e.g. an open cart)."""
    replay: ReplayInfo | None = None
    """Set when an operator replayed the event: why, which run, which record it re-drives."""
