"""JSON Schema and AsyncAPI documents, generated from the models so they cannot drift.

``return-handler schemas`` writes them to ``schemas/``; ``--check`` fails when
the files there differ from what the models generate (CI runs the check).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from service import __version__
from service.events import ReturnEvent
from service.kafka.headers import (
    CLOUDEVENTS_HEADERS,
    DEAD_LETTER_CLOUDEVENTS,
    DEAD_LETTER_HEADERS,
    DEAD_LETTER_TYPE,
    OUTCOME_CLOUDEVENTS,
    OUTCOME_TYPE,
)
from service.operate.report import OutcomeReport
from service.outcome import OutcomeEvent
from service.settings import KafkaSettings

RETURN_EVENT_FILE = "return-event.v1.json"
OUTCOME_EVENT_FILE = "outcome-event.v1.json"
DEAD_LETTER_FILE = "dead-letter-headers.v1.json"
# What `return-handler report --json` prints: not a topic, but a boundary all the same.
OUTCOME_REPORT_FILE = "outcome-report.v1.json"
ASYNCAPI_FILE = "asyncapi.yaml"
# The outcome schema of each release, kept as published (docs/reference/schemas.md,
# "Compatibility").
RELEASES_DIR = "releases"

_HEADER_DOCS = {
    "rh-reason": "Why the message is not a valid event, for people.",
    "rh-error-type": "json_invalid | invalid_event | empty | rules_error.",
    "rh-details": "One validation error per line (field path: message), at most 20.",
    "rh-origin-topic": "Topic the message was read from.",
    "rh-origin-partition": "Partition it was read from (decimal).",
    "rh-origin-offset": "Offset it was read from (decimal).",
    "rh-dead-lettered-at": "When it was dead-lettered (ISO 8601, UTC).",
}


_CLOUDEVENTS_DOCS = {
    "ce_specversion": "CloudEvents version: 1.0.",
    "ce_id": "A UUID never used again: the outcome's outcome_id (the same whenever that "
    "outcome is read), a new one for each dead letter. With ce_source, what to deduplicate on.",
    "ce_source": "The deployment (a URI reference): RETURN_HANDLER_OBSERVABILITY__"
    "CLOUDEVENTS_SOURCE, by default /return-handler/<Kafka cluster id>/<consumer group id>.",
    "ce_type": "return-handler.outcome.v1 or return-handler.dead-letter.v1.",
    "ce_time": "When it was written (RFC 3339, UTC).",
    "ce_subject": "The order the outcome is about (its event.order_id).",
    "ce_dataschema": "URL of the outcome's JSON Schema, outcome-event.v1.json: served by the "
    "service at /schemas/ unless RETURN_HANDLER_OBSERVABILITY__SCHEMAS_URL names another place.",
}
_CLOUDEVENTS_FORMATS: dict[str, dict[str, Any]] = {
    "ce_specversion": {"const": "1.0"},
    "ce_id": {"format": "uuid"},
    "ce_source": {"format": "uri-reference", "minLength": 1},
    "ce_time": {"format": "date-time"},
    "ce_dataschema": {"format": "uri"},
}
_TRACE_DOCS = {
    "traceparent": "W3C trace context, only when there is one: the event's span while tracing "
    "is on (RETURN_HANDLER_OBSERVABILITY__OTLP_ENDPOINT), else the input's, passed on. Absent "
    "when tracing is off and the input had none.",
    "tracestate": "W3C trace state, when the input had one.",
}
_DEAD_LETTER_TRACE_DOCS = {
    "traceparent": "The input's W3C trace context, kept with its other headers, when it had one.",
    "tracestate": "The input's W3C trace state, when it had one.",
}

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _model_schema(
    model: type[BaseModel], mode: Literal["validation", "serialization"]
) -> dict[str, Any]:
    # What we read is described as it is validated; what we write, as it is serialised.
    # No $id: a schema's identity is where it is published (the service serves them at
    # /schemas/, see service/observe/http.py), so its base URI is the one it was fetched from.
    schema = model.model_json_schema(mode=mode)
    schema["$schema"] = _DRAFT
    return schema


def _headers(
    docs: dict[str, str], optional: dict[str, str], constraints: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Header name to string schema; those in ``docs`` are always there, ``optional`` not."""
    every = {**docs, **optional}
    return {
        "properties": {
            name: {"type": "string", "description": doc, **constraints.get(name, {})}
            for name, doc in every.items()
        },
        "required": sorted(docs),
    }


def _dead_letter_schema() -> dict[str, Any]:
    assert set(_HEADER_DOCS) == set(DEAD_LETTER_HEADERS), "document every dead-letter header"
    assert set(_CLOUDEVENTS_DOCS) == set(CLOUDEVENTS_HEADERS), "document every ce_ header"
    docs = {
        **_HEADER_DOCS,
        "content-type": "The CloudEvents datacontenttype of the data, which are the input's "
        "bytes: application/json when they parse as JSON (rh-error-type invalid_event or "
        "rules_error), else application/octet-stream. Replaces the input's own content-type "
        "(and ce_* headers).",
        **{name: _CLOUDEVENTS_DOCS[name] for name in DEAD_LETTER_CLOUDEVENTS},
    }
    constraints = {
        **_CLOUDEVENTS_FORMATS,
        "content-type": {"enum": ["application/json", "application/octet-stream"]},
        "ce_type": {"const": DEAD_LETTER_TYPE},
    }
    return {
        "$schema": _DRAFT,
        "title": "DeadLetterHeaders",
        "description": (
            "Headers of a dead-lettered message, a binary-mode CloudEvent. Its key and value "
            "are the original message's, byte for byte, so it can be fixed and replayed; its "
            "original headers are kept too (but content-type and ce_*)."
        ),
        "type": "object",
        **_headers(docs, _DEAD_LETTER_TRACE_DOCS, constraints),
    }


def _outcome_headers() -> dict[str, Any]:
    docs = {
        "content-type": "application/json (the CloudEvents datacontenttype).",
        "schema-version": "Major version of the outcome schema: 1.",
        **{name: _CLOUDEVENTS_DOCS[name] for name in OUTCOME_CLOUDEVENTS},
    }
    constraints = {
        **_CLOUDEVENTS_FORMATS,
        "content-type": {"const": "application/json"},
        "schema-version": {"const": "1"},
        "ce_type": {"const": OUTCOME_TYPE},
    }
    return {"type": "object", **_headers(docs, _TRACE_DOCS, constraints)}


def _kafka_key(schema_type: str | list[str], description: str) -> dict[str, Any]:
    # The Kafka message binding: AsyncAPI's place for what a record's key holds.
    return {
        "kafka": {
            "key": {"type": schema_type, "description": description},
            "bindingVersion": "0.5.0",
        }
    }


def _asyncapi() -> dict[str, Any]:
    def message(
        name: str, title: str, summary: str, ref: str, headers: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": name,
            "title": title,
            "summary": summary,
            "contentType": "application/json",
            "payload": {"$ref": ref},
        }
        if headers is not None:
            found["headers"] = headers
        return found

    def topic(field: str) -> str:
        # The address is the setting's default; each channel's description names the setting.
        default = KafkaSettings.model_fields[field].default
        assert isinstance(default, str)
        return default

    returns = message(
        "ReturnEvent",
        "Return, refund, exchange or cancelled return",
        "One event per message; event_id is the idempotency key.",
        f"./{RETURN_EVENT_FILE}",
    )
    returns["bindings"] = _kafka_key(
        ["string", "null"],
        "The customer key: every event of one customer must have the same one; use the "
        "customer's numeric Capillary id as decimal text. Without a key the service uses "
        "the customer's id, else external id, mobile or e-mail, else the event_id.",
    )
    outcome = message(
        "OutcomeEvent",
        "What was decided and done for one event",
        "Decision, every action with its reason and result, timings.",
        f"./{OUTCOME_EVENT_FILE}",
        _outcome_headers(),
    )
    outcome["bindings"] = _kafka_key(
        "string",
        "The key the event was handled under: the input's key; for an input without one, "
        "the customer key the service gave it when it moved it to that key's partition, "
        "else the event_id.",
    )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "return-handler",
            "version": __version__,
            "description": (
                "Reads return and refund events, takes back in Capillary what the original "
                "order earned, and publishes one outcome per event. Topic names are settings "
                "(RETURN_HANDLER_KAFKA__*_TOPIC); the defaults are shown. No server is listed: "
                "the brokers are a setting too (RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS)."
            ),
        },
        "channels": {
            "returns": {
                "address": topic("returns_topic"),
                "description": (
                    "Input (RETURN_HANDLER_KAFKA__RETURNS_TOPIC). Key: the customer key, the "
                    "same for every event of one customer (docs/reference/topics.md, "
                    "'The customer key')."
                ),
                "messages": {"returnEvent": returns},
            },
            "outcomes": {
                "address": topic("outcomes_topic"),
                "description": (
                    "Output (RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC), one outcome per input "
                    "event. Key: the customer key the event was handled under, so one "
                    "customer's outcomes stay in order."
                ),
                "messages": {"outcomeEvent": outcome},
            },
            "deadLetters": {
                "address": topic("dead_letter_topic"),
                "description": (
                    "Output (RETURN_HANDLER_KAFKA__DEAD_LETTER_TOPIC): input messages the "
                    "service cannot handle (not JSON, empty, not a valid event, or an event "
                    "the rules failed on), with their original key and bytes; the reason and "
                    "origin are in headers."
                ),
                "messages": {
                    "deadLetter": {
                        "name": "DeadLetter",
                        "title": "A refused input message",
                        "summary": "The input's key and bytes unchanged, with why and where from.",
                        "description": (
                            "The value is the input's bytes as they were read, whatever they "
                            "are, hence application/octet-stream; the content-type header "
                            "says application/json when they parsed as JSON."
                        ),
                        "contentType": "application/octet-stream",
                        "headers": {"$ref": f"./{DEAD_LETTER_FILE}"},
                        "bindings": _kafka_key(["string", "null"], "The input's key, unchanged."),
                    }
                },
            },
        },
        "operations": {
            "consumeReturns": {
                "action": "receive",
                "channel": {"$ref": "#/channels/returns"},
                "summary": "Handle each return event; one customer's events in order.",
                "description": (
                    "Consumer group RETURN_HANDLER_KAFKA__GROUP_ID. Each record's outcome or "
                    "dead letter is published in the Kafka transaction that commits its offset."
                ),
            },
            "publishOutcomes": {
                "action": "send",
                "channel": {"$ref": "#/channels/outcomes"},
                "summary": "One outcome per input event.",
                "description": (
                    "Written in Kafka transactions: read with isolation.level=read_committed, "
                    "or aborted outcomes are read too."
                ),
            },
            "publishDeadLetters": {
                "action": "send",
                "channel": {"$ref": "#/channels/deadLetters"},
                "summary": "Input messages that cannot be handled, kept for a fix and a replay.",
                "description": (
                    "Written in Kafka transactions, like outcomes. When a minute's dead letters "
                    "pass the cap (RETURN_HANDLER_RELIABILITY__DEAD_LETTER_*), the service stops."
                ),
            },
        },
    }


def render_all() -> dict[str, str]:
    """File name to exact file content, for every generated document."""

    def as_json(doc: dict[str, Any]) -> str:
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    return {
        RETURN_EVENT_FILE: as_json(_model_schema(ReturnEvent, "validation")),
        OUTCOME_EVENT_FILE: as_json(_model_schema(OutcomeEvent, "serialization")),
        DEAD_LETTER_FILE: as_json(_dead_letter_schema()),
        OUTCOME_REPORT_FILE: as_json(_model_schema(OutcomeReport, "serialization")),
        ASYNCAPI_FILE: yaml.safe_dump(_asyncapi(), sort_keys=False, width=100),
    }


def release_file(directory: Path, version: str = __version__) -> Path:
    """Where the outcome schema of release ``version`` is kept, as it was published."""
    return directory / RELEASES_DIR / version / OUTCOME_EVENT_FILE


def write_all(directory: Path) -> list[Path]:
    """Write every document into ``directory``; returns the paths written.

    The outcome schema of this version is also kept under ``releases/<version>/`` the first
    time (never rewritten): the compatibility test holds every later outcome to it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    rendered = render_all()
    for name, content in rendered.items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    frozen = release_file(directory)
    if not frozen.exists():
        frozen.parent.mkdir(parents=True, exist_ok=True)
        frozen.write_text(rendered[OUTCOME_EVENT_FILE], encoding="utf-8")
        written.append(frozen)
    return written


def drifted(directory: Path) -> list[str]:
    """Names of the documents in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, content in render_all().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    frozen = release_file(directory)
    if not frozen.exists():
        stale.append(str(frozen.relative_to(directory)))
    return stale
