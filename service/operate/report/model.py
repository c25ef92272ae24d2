"""The report's model: what a time range of outcomes adds up to, as ``report --json`` prints it.

A boundary: people load its JSON into spreadsheets and notebooks, so it is versioned, and
``schemas/outcome-report.v1.json`` is generated from it (``return-handler schemas``).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from service.events import ReturnType
from service.outcome import ActionStatus, OutcomeStatus

REPORT_SCHEMA_VERSION: Literal["1"] = "1"


class _Model(BaseModel):
    # Attribute docstrings become the field descriptions of schemas/outcome-report.v1.json.
    # Open to additions: fields are added within v1 (docs/reference/schemas.md,
    # "Compatibility"), so a reader of another version ignores the fields it does not
    # know, and the published schema allows them.
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class EventCount(_Model):
    """How many outcomes of one return type ended in one status."""

    return_type: ReturnType
    """FULL, LINE_ITEM, AMOUNT, EXCHANGE or CANCELLED."""
    status: OutcomeStatus
    """completed, failed, duplicate, needs_check or return_unknown."""
    outcomes: int
    """How many."""


class ItemCount(_Model):
    """How many items of one action kind ended in one status."""

    kind: str
    """The action kind, e.g. revoke_loyalty_earn, revoke_coupon_codes, issue_loyalty_earn."""
    status: ActionStatus
    """The item's status."""
    items: int
    """How many items (earns, coupon codes, enrolments)."""
    not_asked: int = 0
    """Of those, how many Capillary changed without being asked (coupons revoked beyond the
    codes sent)."""
    flagged_for_clawback: int = 0
    """Of those, how many carry clawback=flagged (refused_redeemed only)."""


class FailureGroup(_Model):
    """Outcomes that need an operator, grouped by what the outcome says to do."""

    status: OutcomeStatus
    """failed or needs_check."""
    next_step: str
    """The next step their failed or unconfirmed actions name; per-event values (a customer,
    a promotion) are replaced by their name in braces, so alike failures group together."""
    outcomes: int
    """How many outcomes name it."""
    event_ids: list[str]
    """A few of their event ids, most recently processed first."""


class StatusCount(_Model):
    """How many outcomes ended in one status."""

    status: OutcomeStatus
    """completed, failed, duplicate, needs_check or return_unknown."""
    outcomes: int
    """How many."""


class DayCount(_Model):
    """One UTC day of the range."""

    day: date
    """The UTC day of processed_at."""
    events: int
    """Outcomes of input events as delivered (neither duplicates nor replays)."""
    taken_back: int
    """Items revoked that day (revoked only: already_revoked was taken back before)."""
    given_back: int
    """Items restored that day."""
    refused: int
    """Items refused that day: refused_redeemed, refused, not_found and kept."""
    failures: int
    """failed and needs_check outcomes that day."""
    return_unknown: int = 0
    """return_unknown outcomes that day (cancellations of returns the ledger does not know)."""


class Totals(_Model):
    """The headline figures of the range."""

    outcomes: int
    """Every outcome read in the range, duplicates and replays included."""
    events: int
    """Outcomes of input events as delivered (neither duplicates nor replays)."""
    duplicates: int
    """Duplicate deliveries: nothing was called."""
    replays: int
    """Outcomes of events an operator replayed."""
    taken_back: int
    """Items revoked."""
    already_revoked: int
    """Items an earlier attempt of the same event had revoked."""
    given_back: int
    """Items restored."""
    already_restored: int
    """Items a replay did not give back again (an earlier outcome shows them given back)."""
    redeemed: int
    """Items not taken back because the customer had used them (refused_redeemed)."""
    flagged_for_clawback: int
    """Of the redeemed items, how many are flagged for clawback."""
    refusals: int
    """Items refused: refused_redeemed, refused, not_found and kept."""
    failed: int
    """failed outcomes."""
    needs_check: int
    """needs_check outcomes."""
    return_unknown: int = 0
    """return_unknown outcomes: cancellations of returns the service's ledger does not know;
    nothing was given back, an operator looks."""


class OutcomeReport(_Model):
    """What the outcomes of a time range add up to (``return-handler report --json``)."""

    schema_version: Literal["1"] = REPORT_SCHEMA_VERSION
    """Version of this schema; a breaking change gets a new version and file."""
    topic: str
    """The outcomes topic read."""
    since: AwareDatetime
    """Start of the range (UTC), included; by the time each outcome was written."""
    until: AwareDatetime
    """End of the range (UTC), included."""
    skipped_records: int = 0
    """Records of the range that were not outcomes this version reads (not counted)."""
    totals: Totals
    """The headline figures."""
    events: list[EventCount]
    """Input events as delivered, by return type and status."""
    duplicates: list[EventCount]
    """Duplicate deliveries, by return type."""
    replays: list[StatusCount]
    """Replayed events, by status."""
    taken_back: list[ItemCount]
    """Benefits taken back: revoked and already_revoked items, by action kind."""
    given_back: list[ItemCount]
    """Benefits given back: restored and already_restored items, by action kind."""
    refusals: list[ItemCount]
    """Benefits not taken back: refused_redeemed, refused, not_found and kept, by kind."""
    failures: list[FailureGroup]
    """Outcomes that need an operator, by next step, most frequent first."""
    return_unknown_event_ids: list[str] = Field(default_factory=list)
    """A few event ids of the return_unknown outcomes, most recently processed first."""
    days: list[DayCount] = Field(default_factory=list)
    """Every UTC day of the range, in order."""


__all__ = [
    "REPORT_SCHEMA_VERSION",
    "DayCount",
    "EventCount",
    "FailureGroup",
    "ItemCount",
    "OutcomeReport",
    "StatusCount",
    "Totals",
]
