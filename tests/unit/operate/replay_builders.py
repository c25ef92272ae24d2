"""Records and outcomes for the replay tool's tests, built field by field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from service.kafka.span import TopicRecord
from service.outcome import OutcomeEvent
from tests.factories import event_bytes

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def action(
    action_id: str, kind: str, status: str, *, item_statuses: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One action result of an outcome."""
    return {
        "action_id": action_id,
        "kind": kind,
        "reason_code": "test",
        "reason": "test",
        "status": status,
        "items": [{"item": f"{action_id}:{n}", "status": s} for n, s in enumerate(item_statuses)],
    }


def outcome(
    event_id: str = "evt-test-0001",
    status: str = "completed",
    *,
    minutes: int = 0,
    actions: list[dict[str, Any]] | None = None,
    record: tuple[str, int, int] | None = ("returns", 0, 0),
    replay: dict[str, Any] | None = None,
    first_status: str | None = None,
) -> OutcomeEvent:
    """An outcome of ``event_id`` written ``minutes`` after T0."""
    data: dict[str, Any] = {
        # The same arguments make the same outcome, id included.
        "outcome_id": str(uuid5(NAMESPACE_URL, f"outcome:{event_id}:{status}:{minutes}:{record}")),
        "event": {
            "event_id": event_id,
            "return_type": "FULL",
            "occurred_at": T0.isoformat(),
            "order_id": "ORD-1",
            "transaction_id": "TX-1",
            "record": (
                {"topic": record[0], "partition": record[1], "offset": record[2]}
                if record is not None
                else None
            ),
        },
        "status": status,
        "decision": "take_back",
        "summary": "test",
        "policy_version": "test",
        "actions": actions or [],
        "processed_at": (T0 + timedelta(minutes=minutes)).isoformat(),
        "duration_ms": 1.0,
        "service": {"version": "test"},
        "replay": replay,
    }
    if first_status is not None or status == "duplicate":
        data["duplicate_of"] = {"status": first_status, "input_partition": 0, "input_offset": 0}
    return OutcomeEvent.model_validate(data)


def record(
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    *,
    headers: tuple[tuple[str, bytes], ...] = (),
    timestamp_ms: int = 0,
) -> TopicRecord:
    """A record as the tools read it."""
    return TopicRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=timestamp_ms,
        key=None,
        value=value,
        headers=headers,
    )


def outcome_record(found: OutcomeEvent, partition: int = 0, offset: int = 0) -> TopicRecord:
    """An outcome as a record of the outcomes topic."""
    stamp = int(found.processed_at.timestamp() * 1000)
    return record(
        "outcomes", partition, offset, found.model_dump_json().encode(), timestamp_ms=stamp
    )


def event_record(
    event_id: str, partition: int = 0, offset: int = 0, *, topic: str = "returns", **fields: Any
) -> TopicRecord:
    """A valid event as a record."""
    return record(topic, partition, offset, event_bytes(event_id=event_id, **fields))
