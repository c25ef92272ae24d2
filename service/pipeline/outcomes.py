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


def identity(event: ReturnEvent, record: Record | None) -> EventIdentity:
    """Who and what the outcome is about, and the producer's record it answers."""
    source = record.source if record is not None else None
    return EventIdentity(
        event_id=event.event_id,
        return_type=event.return_type,
        occurred_at=event.occurred_at,
        order_id=event.order.order_id,
        transaction_id=event.order.transaction_id,
        customer_id=event.customer.id,
        customer_external_id=event.customer.external_id,
        # The producer's record, whichever copy (routed, retry) was read.
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
    reported = {result.report_kind for result in results if result.report_kind}
    if any(result.status.is_failure for result in results):
        status = OutcomeStatus.FAILED
    elif ReportKind.RETURN_UNKNOWN in reported:
        status = OutcomeStatus.RETURN_UNKNOWN
    elif (
        any(result.status is ActionStatus.UNCONFIRMED for result in results)
        or ReportKind.TAKEN_BACK_UNCONFIRMED in reported
    ):
        status = OutcomeStatus.NEEDS_CHECK
    else:
        status = OutcomeStatus.COMPLETED
    # Only an earn this very outcome issued (or may have) makes a replay risky.
    reissued = any(
        result.kind == "issue_loyalty_earn"
        and result.status in (ActionStatus.RESTORED, ActionStatus.UNCONFIRMED)
        for result in results
    )
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
        service=ServiceInfo(version=__version__),
        replay_warning=REISSUE_WARNING if reissued else None,
        attempt=attempt,
        replay=replay,
    )


__all__ = ["REISSUE_WARNING", "build_outcome", "identity"]
