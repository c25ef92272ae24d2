"""Small operator tools: publish event files, read outcomes as readable lines (Kafka through
``service/kafka/``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from service.errors import InvalidEventError
from service.events import ReturnEvent
from service.kafka.producer import send_each
from service.kafka.reader import read_topic
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.pipeline.route import key_of_customer
from service.settings import KafkaSettings


def _key_for(event: ReturnEvent) -> bytes:
    # The customer is the ordering unit: the key the service itself gives a keyless record.
    return key_of_customer(event.customer, event.event_id)


def key_for(event: ReturnEvent) -> bytes:
    """The Kafka key of an event: its customer, as ``publish`` and the replay key events."""
    return _key_for(event)


async def publish_files(
    kafka: KafkaSettings, files: Sequence[Path], topic: str, *, raw: bool = False
) -> list[str]:
    """Publish each file as one message; validates first unless ``raw``. Returns one line each."""
    messages: list[tuple[bytes | None, bytes, str]] = []
    for path in files:
        data = path.read_bytes()
        if raw:
            messages.append((None, data, path.name))
            continue
        try:
            event = ReturnEvent.model_validate_json(data)
        except ValidationError as exc:
            raise InvalidEventError(
                f"{path} is not a valid return event; use --raw to send it anyway",
                errors=exc.error_count(),
            ) from exc
        messages.append((_key_for(event), data, f"{path.name} ({event.event_id})"))
    placed = await send_each(kafka, topic, [(key, value) for key, value, _ in messages])
    return [
        f"published {label} to {topic}/{partition}@{offset}"
        for (_, _, label), (partition, offset) in zip(messages, placed, strict=True)
    ]


async def read_outcomes(
    kafka: KafkaSettings,
    on_outcome: Callable[[bytes], None],
    *,
    count: int = 0,
    wait_seconds: float = 30.0,
) -> int:
    """Read outcomes from the start (no group); stop at ``count`` or after ``wait_seconds``."""
    records = await read_topic(
        kafka,
        kafka.outcomes_topic,
        count=count,
        wait_seconds=wait_seconds,
        on_record=lambda record: on_outcome(record.value) if record.value is not None else None,
    )
    return len(records)


def format_dead_letter(headers: Sequence[tuple[str, bytes]], value: bytes | None) -> str:
    """One readable line per dead letter: where it came from and why it was refused."""
    found = {name: data.decode(errors="replace") for name, data in headers}
    origin = "/".join(
        found.get(f"rh-origin-{part}", "?") for part in ("topic", "partition", "offset")
    )
    preview = (value or b"")[:60].decode(errors="replace")
    return f"DEAD {origin}: {found.get('rh-reason', '(no reason header)')} | {preview!r}"


_MARK = {
    ActionStatus.REVOKED: "revoked",
    ActionStatus.RESTORED: "restored",
    ActionStatus.ALREADY_REVOKED: "already revoked",
    ActionStatus.ALREADY_RESTORED: "already restored (not made again)",
    ActionStatus.REFUSED_REDEEMED: "redeemed: not revoked",
    ActionStatus.KEPT: "kept",
    ActionStatus.UNCONFIRMED: "UNCONFIRMED: check by hand",
    ActionStatus.NOT_FOUND: "not found",
    ActionStatus.REFUSED: "refused",
    ActionStatus.FAILED: "FAILED",
    ActionStatus.SKIPPED: "skipped",
}


_HEAD = {
    OutcomeStatus.COMPLETED: "OK ",
    OutcomeStatus.FAILED: "FAIL",
    OutcomeStatus.DUPLICATE: "DUP ",
    OutcomeStatus.NEEDS_CHECK: "CHECK",
    OutcomeStatus.RETURN_UNKNOWN: "ASK ",
}


def format_outcome(data: bytes) -> str:
    """One readable line per outcome, then one indented line per action."""
    try:
        outcome = OutcomeEvent.model_validate_json(data)
    except ValidationError:
        parsed: Any = json.loads(data)
        return f"? unreadable outcome: {str(parsed)[:200]}"
    head = (
        f"{_HEAD[outcome.status]} {outcome.event.event_id} "
        f"[{outcome.event.return_type}] {outcome.decision}: {outcome.summary} "
        f"({outcome.duration_ms:.0f} ms)"
    )
    lines = [head]
    if outcome.replay is not None:
        replay = outcome.replay
        lines.append(
            f"    replay {replay.replay_id} #{replay.sequence} of {replay.source}: {replay.reason}"
        )
    for action in outcome.actions:
        codes = sorted({str(i.code) for i in action.items if i.code is not None})
        code_text = f" code {','.join(codes)}" if codes else ""
        facts = list(
            dict.fromkeys(
                f"{k}={v}" for item in action.items for k, v in sorted(item.detail.items())
            )
        )
        fact_text = f" [{', '.join(facts)}]" if facts else ""
        lines.append(
            f"    - {action.action_id}: {_MARK[action.status]}{code_text}{fact_text} "
            f"({action.reason})"
        )
    if outcome.replay_warning:
        lines.append(f"    ! {outcome.replay_warning}")
    return "\n".join(lines)
