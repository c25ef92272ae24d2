"""The wire form of what the service publishes: outcome bytes and the headers of outputs.

Outcomes and dead letters carry CloudEvents attributes as headers (the Kafka binding's
binary mode: ``ce_*`` headers, ``content-type`` for ``datacontenttype``, the data is the
message value) beside our own, so a consumer that speaks CloudEvents reads them without
knowing us. The CloudEvents SDK builds whole events from its own model; we only need the
headers, so they are written here.

``ce_id`` is a UUID (the outcome's ``outcome_id``; a new one per dead letter) and
``ce_source`` names the deployment, so (source, id) never repeats, whichever cluster,
consumer group or re-created topic an output comes from.

The committer (``committer.py``) sends them inside its transactions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote
from uuid import UUID

from service.observe.tracing import TRACE_HEADERS
from service.outcome import OutcomeEvent
from service.pipeline.records import DeadLetter, Finished

SOURCE_PREFIX = "/return-handler"
OUTCOME_TYPE = "return-handler.outcome.v1"
DEAD_LETTER_TYPE = "return-handler.dead-letter.v1"
CONTENT_TYPE = "content-type"
JSON = "application/json"
BYTES = "application/octet-stream"

DEAD_LETTER_CLOUDEVENTS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")
"""The ``ce_*`` headers of a dead letter: the required attributes and the time."""
OUTCOME_CLOUDEVENTS = (*DEAD_LETTER_CLOUDEVENTS, "ce_subject", "ce_dataschema")
"""The ``ce_*`` headers of an outcome: a dead letter's, its order and its schema too."""
CLOUDEVENTS_HEADERS = OUTCOME_CLOUDEVENTS
"""Every ``ce_*`` header the service writes."""

DEAD_LETTER_HEADERS = (
    "rh-reason",
    "rh-error-type",
    "rh-details",
    "rh-origin-topic",
    "rh-origin-partition",
    "rh-origin-offset",
    "rh-dead-lettered-at",
)


def deployment_source(cluster_id: str | None, group_id: str) -> str:
    """The default ``ce_source``: ``/return-handler/<Kafka cluster id>/<consumer group>``.

    Two deployments differ in their cluster or their group (two groups on one cluster each
    get every event). Without a cluster id (brokers older than Kafka 0.10.1 send none) only
    the group tells them apart.
    """
    parts = [SOURCE_PREFIX]
    if cluster_id:
        parts.append(quote(cluster_id, safe=""))
    parts.append(quote(group_id, safe=""))
    return "/".join(parts)


@dataclass(frozen=True)
class Envelope:
    """What the CloudEvents headers say about this deployment, the same on every output.

    Read when outputs are published (the commit step reads it once per transaction, see
    :meth:`settled`), because by default both are learnt at start: the source from the
    Kafka cluster's id, the schema's address from the bound HTTP port.
    """

    source: Callable[[], str]
    """``ce_source``: the deployment (a URI reference)."""
    outcome_schema: Callable[[], str]
    """``ce_dataschema`` of outcomes: where the outcome's JSON Schema can be fetched."""

    @classmethod
    def fixed(cls, source: str, outcome_schema: str) -> Envelope:
        """An envelope whose values are known up front."""
        return cls(source=lambda: source, outcome_schema=lambda: outcome_schema)

    def settled(self) -> Envelope:
        """This envelope with its values as they are now, read once: for the outputs of one
        transaction, rather than once per output."""
        return Envelope.fixed(self.source(), self.outcome_schema())


def outcome_bytes(outcome: OutcomeEvent) -> bytes:
    """The wire form of an outcome: compact JSON, UTF-8."""
    # What model_dump_json(exclude_none=False).encode() gives, without decoding the
    # serialiser's UTF-8 to a str only to encode it again (one outcome per event).
    return outcome.__pydantic_serializer__.to_json(outcome, exclude_none=False)


def cloudevent_headers(
    *,
    event_id: UUID,
    kind: str,
    source: str,
    at: datetime,
    subject: str | None = None,
    dataschema: str | None = None,
) -> list[tuple[str, bytes]]:
    """``ce_*`` headers of one output; ``subject`` and ``dataschema`` only when given."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event_id).encode()),
        ("ce_source", source.encode()),
        ("ce_type", kind.encode()),
        ("ce_time", at.isoformat().encode()),
    ]
    if subject is not None:
        headers.append(("ce_subject", subject.encode()))
    if dataschema is not None:
        headers.append(("ce_dataschema", dataschema.encode()))
    return headers


def outcome_headers(
    outcome: OutcomeEvent, finished: Finished, envelope: Envelope
) -> list[tuple[str, bytes]]:
    """Content type, schema version, CloudEvents attributes and the trace context.

    The id is the outcome's own, so an outcome read again (inspect, replay) names the same
    CloudEvent. The trace context is the event span's; an outcome decided without one (a
    duplicate recognised on arrival) passes the input's on, and with tracing off and none in
    the input there is none.
    """
    if outcome.outcome_id is None:
        raise ValueError("an outcome is published with its outcome_id (the commit step sets it)")
    trace = finished.trace or [
        (k, v) for k, v in finished.record.headers if k.lower() in TRACE_HEADERS
    ]
    return [
        (CONTENT_TYPE, JSON.encode()),
        ("schema-version", b"1"),
        *cloudevent_headers(
            event_id=outcome.outcome_id,
            kind=OUTCOME_TYPE,
            source=envelope.source(),
            at=outcome.processed_at,
            subject=outcome.event.order_id,
            dataschema=envelope.outcome_schema(),
        ),
        *trace,
    ]


def dead_letter_content_type(dead: DeadLetter) -> str:
    """What the dead letter's data (the input's bytes, unchanged) are known to be.

    JSON when they parsed as JSON (an invalid event, or a valid one the rules failed on);
    otherwise nothing more than bytes. Without the header a CloudEvents consumer takes the
    data for JSON and fails on them (the SDK's ``cloudevents.v1.kafka`` binding does).
    """
    return JSON if dead.error_type in ("invalid_event", "rules_error") else BYTES


def dead_letter_headers(
    dead: DeadLetter, at: datetime, *, event_id: UUID, source: str
) -> list[tuple[str, bytes]]:
    """The original headers, the reason, the origin, ``content-type`` and ``ce_*``.

    The input's own ``content-type`` and ``ce_*`` headers are not kept: they described the
    producer's message, and the dead letter is a CloudEvent of ours (its data the same bytes).
    """
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
    kept = [(k, v) for k, v in record.headers if not _replaced(k)]
    return [
        *kept,
        *ours,
        (CONTENT_TYPE, dead_letter_content_type(dead).encode()),
        *cloudevent_headers(event_id=event_id, kind=DEAD_LETTER_TYPE, source=source, at=at),
    ]


def _replaced(header: str) -> bool:
    name = header.lower()
    return name in DEAD_LETTER_HEADERS or name == CONTENT_TYPE or name.startswith("ce_")
