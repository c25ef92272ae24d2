"""Outcomes built with the real models, for the tools' tests: only what a test cares about."""

from __future__ import annotations

from datetime import UTC, datetime

from service.actions import Decision
from service.events import ReturnType
from service.operate.outcomes import OutcomePosition
from service.operate.read import TopicRecord
from service.outcome import (
    ActionResult,
    ActionStatus,
    EventIdentity,
    FirstOutcome,
    ItemResult,
    OutcomeEvent,
    OutcomeStatus,
    ReplayInfo,
    ServiceInfo,
    SourceRecord,
)

DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
TOPIC = "return-outcomes"


def item(
    status: ActionStatus,
    name: str = "loyalty_earn:974",
    *,
    code: int | None = None,
    detail: dict[str, str] | None = None,
    asked: bool = True,
    message: str = "",
) -> ItemResult:
    return ItemResult(
        item=name, status=status, code=code, detail=detail or {}, asked=asked, message=message
    )


def action(
    kind: str,
    *items: ItemResult,
    status: ActionStatus | None = None,
    request_ids: list[str] | None = None,
    next_step: str | None = None,
    reason: str = "full return: everything the order earned goes back",
) -> ActionResult:
    return ActionResult(
        action_id=f"{kind}:{len(items)}",
        kind=kind,
        reason_code="full_return",
        reason=reason,
        status=status or (items[0].status if items else ActionStatus.SKIPPED),
        items=list(items),
        attempts=1 if request_ids else 0,
        request_ids=request_ids or [],
        next_step=next_step,
    )


def outcome(
    *actions: ActionResult,
    event_id: str = "evt-1",
    order_id: str = "ORD-1",
    return_type: ReturnType = ReturnType.FULL,
    status: OutcomeStatus = OutcomeStatus.COMPLETED,
    decision: Decision = Decision.TAKE_BACK,
    processed_at: datetime = DAY,
    offset: int = 0,
    replay: ReplayInfo | None = None,
    duplicate_of: FirstOutcome | None = None,
) -> OutcomeEvent:
    return OutcomeEvent(
        event=EventIdentity(
            event_id=event_id,
            return_type=return_type,
            occurred_at=processed_at,
            order_id=order_id,
            transaction_id="TX-1",
            customer_id=555567088,
            record=SourceRecord(topic="returns", partition=0, offset=offset),
        ),
        status=status,
        decision=decision,
        summary=f"Full return of order {order_id}",
        policy_version="test-1",
        actions=list(actions),
        processed_at=processed_at,
        duration_ms=12.0,
        service=ServiceInfo(version="0.1.0"),
        replay=replay,
        duplicate_of=duplicate_of,
    )


def position(offset: int = 0, partition: int = 0, at: datetime = DAY) -> OutcomePosition:
    return OutcomePosition(topic=TOPIC, partition=partition, offset=offset, written_at=at)


def record(value: bytes | None, offset: int = 0, partition: int = 0) -> TopicRecord:
    return TopicRecord(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        timestamp_ms=int(DAY.timestamp() * 1000),
        key=None,
        value=value,
        headers=(),
    )
