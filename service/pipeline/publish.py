"""The wire form of what the service publishes: outcome bytes and the headers of outputs.

Outcomes and dead letters carry CloudEvents attributes as headers (the Kafka binding's
binary mode: ``ce_*`` headers, the data is the message value) beside our own, so a consumer
that speaks CloudEvents reads them without knowing us. The CloudEvents SDK builds whole
events from its own model; we only need the five headers, so they are written here.

The commit step (``commit.py``) sends them inside its transactions.
"""

from __future__ import annotations

from datetime import datetime

from service.observe.tracing import TRACE_HEADERS
from service.outcome import OutcomeEvent
from service.pipeline.records import DeadLetter, Finished, Record

DEFAULT_SOURCE = "/return-handler"
OUTCOME_TYPE = "return-handler.outcome.v1"
DEAD_LETTER_TYPE = "return-handler.dead-letter.v1"
CLOUDEVENTS_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")

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


def cloudevent_headers(
    record: Record, *, kind: str, source: str, at: datetime
) -> list[tuple[str, bytes]]:
    """``ce_*`` headers of the output of ``record``.

    The id names the input record (topic, partition, offset): an output published again
    after a crash has the same id, a redelivered copy of the input a new one.
    """
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", f"{record.topic}:{record.partition}:{record.offset}".encode()),
        ("ce_source", source.encode()),
        ("ce_type", kind.encode()),
        ("ce_time", at.isoformat().encode()),
    ]


def outcome_headers(
    outcome: OutcomeEvent, finished: Finished, source: str
) -> list[tuple[str, bytes]]:
    """Content type, schema version, CloudEvents attributes and the trace context.

    The trace context is the event span's; an outcome decided without one (a duplicate
    recognised on arrival) passes the input's on.
    """
    trace = list(finished.trace) or [
        (k, v) for k, v in finished.record.headers if k.lower() in TRACE_HEADERS
    ]
    return [
        ("content-type", b"application/json"),
        ("schema-version", b"1"),
        *cloudevent_headers(
            finished.record, kind=OUTCOME_TYPE, source=source, at=outcome.processed_at
        ),
        *trace,
    ]


def dead_letter_headers(
    dead: DeadLetter, at: datetime, source: str = DEFAULT_SOURCE
) -> list[tuple[str, bytes]]:
    """The original headers (trace context included), the reason, the origin, ``ce_*``."""
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
    replaced = set(DEAD_LETTER_HEADERS) | set(CLOUDEVENTS_HEADERS)
    kept = [(k, v) for k, v in record.headers if k not in replaced]
    return kept + ours + cloudevent_headers(record, kind=DEAD_LETTER_TYPE, source=source, at=at)
