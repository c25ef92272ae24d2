"""Outcomes and ledger states built with the real models, for the tools' tests: only what a
test cares about."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import NAMESPACE_URL, uuid5

from service.actions import Decision
from service.events import LoyaltyPromotionType, ReturnType
from service.kafka.span import TopicRecord
from service.ledger import CustomerMark, LedgerEntry, LedgerItem, LoyaltyRef
from service.operate.outcomes import OutcomePosition
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
from service.pipeline.state import EventState, OutcomeRef

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
        # The same arguments make the same outcome, id included.
        outcome_id=uuid5(NAMESPACE_URL, f"outcome:{event_id}:{offset}:{processed_at}:{status}"),
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


STATE_TOPIC = "return-handler-state"
DIRECT = LoyaltyRef(
    program_id=2714, promotion_id=202090, promotion_type=LoyaltyPromotionType.DIRECT
)


def taken(earn_id: int = 974, *, status: ActionStatus = ActionStatus.REVOKED) -> LedgerItem:
    """A loyalty earn a return's revoke touched."""
    return LedgerItem(
        action_id="revoke_loyalty_earn:2714/202090",
        kind="revoke_loyalty_earn",
        item=f"loyalty_earn:{earn_id}",
        status=status,
        code=200 if status is ActionStatus.REVOKED else None,
        loyalty=DIRECT,
        earn_id=earn_id,
    )


def issued(
    replaces: int = 974,
    *,
    status: ActionStatus = ActionStatus.RESTORED,
    action_id: str = "issue_loyalty_earn:2714/202090",
    kind: str = "issue_loyalty_earn",
    earned_id: str | None = "1201",
) -> LedgerItem:
    """A give-back a cancellation made in place of what its return took."""
    return LedgerItem(
        action_id=action_id,
        kind=kind,
        item="loyalty_issue:2714/202090",
        status=status,
        code=200,
        loyalty=DIRECT,
        earned_id=earned_id,
        replaces=f"loyalty_earn:{replaces}",
    )


def entry(
    event_id: str,
    *items: LedgerItem,
    order_id: str = "ORD-1",
    cancels: str | None = None,
) -> LedgerEntry:
    """The ledger entry of one event (a CANCELLED one when it ``cancels`` a return)."""
    return LedgerEntry(
        event_id=event_id,
        return_type=ReturnType.CANCELLED if cancels is not None else ReturnType.FULL,
        order_id=order_id,
        customer=CustomerMark(id=555567088),
        cancels=cancels,
        items=list(items),
    )


def state(
    ledger: LedgerEntry | None,
    *,
    event_id: str | None = None,
    phase: str = "done",
    minutes: int = 0,
) -> EventState:
    """The state record value of an event, ``minutes`` after DAY."""
    found = event_id or (ledger.event_id if ledger is not None else "evt-1")
    return EventState.model_validate(
        {
            "event_id": found,
            "phase": phase,
            "at": DAY + timedelta(minutes=minutes),
            "input_partition": 0,
            "input_offset": 0,
            "outcome": (
                OutcomeRef(partition=0, offset=0, status=OutcomeStatus.COMPLETED)
                if phase == "done"
                else None
            ),
            "ledger": ledger,
        }
    )


def state_record(
    found: EventState | bytes | None,
    offset: int,
    *,
    partition: int = 0,
    key: str | None = None,
    minutes: int = 0,
) -> TopicRecord:
    """A record of the state topic: a state, raw bytes, or a tombstone (``None``) of ``key``."""
    value = found.to_bytes() if isinstance(found, EventState) else found
    name = key if key is not None else found.event_id if isinstance(found, EventState) else None
    return TopicRecord(
        topic=STATE_TOPIC,
        partition=partition,
        offset=offset,
        timestamp_ms=int((DAY + timedelta(minutes=minutes)).timestamp() * 1000),
        key=name.encode() if name is not None else None,
        value=value,
        headers=(),
    )
