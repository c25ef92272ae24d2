"""The outcome event, assembled from an event's plan and the results of its actions."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from service import __version__
from service.actions import Plan, ReportKind
from service.events import ReturnEvent
from service.outcome import (
    ActionResult,
    ActionStatus,
    EventIdentity,
    OutcomeEvent,
    OutcomeStatus,
    ReplayInfo,
    ServiceInfo,
    SourceRecord,
)
from service.pipeline.records import Record

REISSUE_WARNING = (
    "This outcome re-issued loyalty earns. Capillary's EARN has no idempotency key: the "
    "service's ledger keeps this event from issuing them again (a replay, a copy of the "
    "event), unless `return-handler replay --allow-reissue` names this event. Check the "
    "earned ids below first."
)

_SERVICE = ServiceInfo(version=__version__)
"""Which service wrote an outcome: the same on every one (a frozen model), so made once."""
_GIVEN_BACK = (ActionStatus.RESTORED, ActionStatus.UNCONFIRMED)
"""An earn action in one of these issued (or may have issued) an earn."""


def identity(event: ReturnEvent, record: Record | None) -> EventIdentity:
    """Who and what the outcome is about, and the producer's record it answers."""
    # The producer's record, whichever copy (routed, retry) was read: a producer's own record
    # is its own source (``Record.source`` would make an Origin of it for each outcome).
    source = (record.origin or record) if record is not None else None
    return EventIdentity(
        event_id=event.event_id,
        return_type=event.return_type,
        occurred_at=event.occurred_at,
        order_id=event.order.order_id,
        transaction_id=event.order.transaction_id,
        customer_id=event.customer.id,
        customer_external_id=event.customer.external_id,
        record=(
            SourceRecord(topic=source.topic, partition=source.partition, offset=source.offset)
            if source is not None
            else None
        ),
    )


def build_outcome(
    event: ReturnEvent,
    plan: Plan,
    results: list[ActionResult],
    *,
    outcome_id: UUID,
    record: Record | None,
    processed_at: datetime,
    duration_ms: float,
    attempt: int = 1,
    replay: ReplayInfo | None = None,
) -> OutcomeEvent:
    """Assemble the outcome event from the plan and its results."""
    status, reissued = _status(results)
    return OutcomeEvent(
        outcome_id=outcome_id,
        event=identity(event, record),
        status=status,
        decision=plan.decision,
        summary=plan.summary,
        policy_version=plan.policy_version,
        actions=results,
        processed_at=processed_at,
        duration_ms=duration_ms,
        service=_SERVICE,
        replay_warning=REISSUE_WARNING if reissued else None,
        attempt=attempt,
        replay=replay,
    )


def _status(results: list[ActionResult]) -> tuple[OutcomeStatus, bool]:
    """The outcome's status, and whether it re-issued (or may have) a loyalty earn.

    One pass over the results (this runs for every event): failed before return_unknown
    before needs_check before completed. Only an earn this very outcome issued (or may have)
    makes a replay risky.
    """
    failed = unknown = unconfirmed = reissued = False
    for result in results:
        if result.status.is_failure:
            failed = True
        if result.status is ActionStatus.UNCONFIRMED:
            unconfirmed = True
        if result.report_kind == ReportKind.RETURN_UNKNOWN:
            unknown = True
        elif result.report_kind == ReportKind.TAKEN_BACK_UNCONFIRMED:
            unconfirmed = True
        if result.kind == "issue_loyalty_earn" and result.status in _GIVEN_BACK:
            reissued = True
    if failed:
        return OutcomeStatus.FAILED, reissued
    if unknown:
        return OutcomeStatus.RETURN_UNKNOWN, reissued
    if unconfirmed:
        return OutcomeStatus.NEEDS_CHECK, reissued
    return OutcomeStatus.COMPLETED, reissued


__all__ = ["REISSUE_WARNING", "build_outcome", "identity"]
