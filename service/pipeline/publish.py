"""The wire form of what the service publishes: outcome bytes, dead-letter headers.

The commit step (``commit.py``) sends them inside its transactions.
"""

from __future__ import annotations

from datetime import datetime

from service.outcome import OutcomeEvent
from service.pipeline.records import DeadLetter

DEAD_LETTER_HEADERS = (
    "rh-reason",
    "rh-error-type",
    "rh-details",
    "rh-origin-topic",
    "rh-origin-partition",
    "rh-origin-offset",
    "rh-dead-lettered-at",
)


def outcome_bytes(outcome: OutcomeEvent) -> bytes:
    """The wire form of an outcome: compact JSON, UTF-8."""
    return outcome.model_dump_json(exclude_none=False).encode()


def dead_letter_headers(dead: DeadLetter, at: datetime) -> list[tuple[str, bytes]]:
    """The original headers plus the reason and the origin of the record."""
    record = dead.record
    ours = [
        ("rh-reason", dead.reason.encode()),
        ("rh-error-type", dead.error_type.encode()),
        ("rh-details", "\n".join(dead.details).encode()),
        ("rh-origin-topic", record.topic.encode()),
        ("rh-origin-partition", str(record.partition).encode()),
        ("rh-origin-offset", str(record.offset).encode()),
        ("rh-dead-lettered-at", at.isoformat().encode()),
    ]
    kept = [(k, v) for k, v in record.headers if k not in DEAD_LETTER_HEADERS]
    return kept + ours
