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
from service.operate.report import OutcomeReport
from service.outcome import OutcomeEvent
from service.pipeline.publish import CLOUDEVENTS_HEADERS, DEAD_LETTER_HEADERS

RETURN_EVENT_FILE = "return-event.v1.json"
OUTCOME_EVENT_FILE = "outcome-event.v1.json"
DEAD_LETTER_FILE = "dead-letter-headers.v1.json"
# What `return-handler report --json` prints: not a topic, but a boundary all the same.
OUTCOME_REPORT_FILE = "outcome-report.v1.json"
ASYNCAPI_FILE = "asyncapi.yaml"

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
    "ce_id": "The input record this answers, topic:partition:offset (same id if published "
    "again after a crash).",
    "ce_source": "RETURN_HANDLER_OBSERVABILITY__CLOUDEVENTS_SOURCE (default /return-handler).",
    "ce_type": "return-handler.outcome.v1 or return-handler.dead-letter.v1.",
    "ce_time": "When it was written (ISO 8601, UTC).",
}
_TRACE_DOCS = {
    "traceparent": "W3C trace context of the event's span (continues the input's trace).",
    "tracestate": "W3C trace state, when the input had one.",
}

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_ID_BASE = "https://return-handler.local/schemas/"


def _model_schema(
    model: type[BaseModel], mode: Literal["validation", "serialization"], file: str
) -> dict[str, Any]:
    # What we read is described as it is validated; what we write, as it is serialised.
    schema = model.model_json_schema(mode=mode)
    schema["$id"] = _ID_BASE + file
    schema["$schema"] = _DRAFT
    return schema


def _dead_letter_schema() -> dict[str, Any]:
    assert set(_HEADER_DOCS) == set(DEAD_LETTER_HEADERS), "document every dead-letter header"
    assert set(_CLOUDEVENTS_DOCS) == set(CLOUDEVENTS_HEADERS), "document every ce_ header"
    docs = {**_HEADER_DOCS, **_CLOUDEVENTS_DOCS}
    return {
        "$schema": _DRAFT,
        "$id": _ID_BASE + DEAD_LETTER_FILE,
        "title": "DeadLetterHeaders",
        "description": (
            "Headers added to a dead-lettered message. Its key and value are the original "
            "message's, byte for byte, so it can be fixed and replayed; its original headers "
            "are kept too."
        ),
        "type": "object",
        "properties": {name: {"type": "string", "description": doc} for name, doc in docs.items()},
        "required": sorted(docs),
    }


def _outcome_headers() -> dict[str, Any]:
    docs = {
        "content-type": "application/json.",
        "schema-version": "Major version of the outcome schema: 1.",
        **_CLOUDEVENTS_DOCS,
        **_TRACE_DOCS,
    }
    return {
        "type": "object",
        "properties": {name: {"type": "string", "description": doc} for name, doc in docs.items()},
        "required": sorted(set(docs) - {"tracestate"}),
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

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "return-handler",
            "version": __version__,
            "description": (
                "Reads return and refund events, takes back in Capillary what the original "
                "order earned, and publishes one outcome per event. Topic names are settings "
                "(RETURN_HANDLER_KAFKA__*_TOPIC); the defaults are shown."
            ),
        },
        "channels": {
            "returns": {
                "address": "returns",
                "description": "Input. Key: any (the customer id keeps one customer in order).",
                "messages": {
                    "returnEvent": message(
                        "ReturnEvent",
                        "Return, refund, exchange or cancelled return",
                        "One event per message; event_id is the idempotency key.",
                        f"./{RETURN_EVENT_FILE}",
                    )
                },
            },
            "outcomes": {
                "address": "return-outcomes",
                "description": (
                    "Output, one outcome per input event. Key: the input's key (the "
                    "customer), so one customer's outcomes stay in order; the event_id "
                    "when the input had no key."
                ),
                "messages": {
                    "outcomeEvent": message(
                        "OutcomeEvent",
                        "What was decided and done for one event",
                        "Decision, every action with its reason and result, timings.",
                        f"./{OUTCOME_EVENT_FILE}",
                        _outcome_headers(),
                    )
                },
            },
            "deadLetters": {
                "address": "returns-dead-letter",
                "description": (
                    "Input messages that are not valid events: original key and bytes, "
                    "reason and origin in headers."
                ),
                "messages": {
                    "deadLetter": {
                        "name": "DeadLetter",
                        "title": "A refused input message",
                        "contentType": "application/octet-stream",
                        "headers": {"$ref": f"./{DEAD_LETTER_FILE}"},
                    }
                },
            },
        },
        "operations": {
            "consumeReturns": {
                "action": "receive",
                "channel": {"$ref": "#/channels/returns"},
            },
            "publishOutcomes": {
                "action": "send",
                "channel": {"$ref": "#/channels/outcomes"},
            },
            "publishDeadLetters": {
                "action": "send",
                "channel": {"$ref": "#/channels/deadLetters"},
            },
        },
    }


def render_all() -> dict[str, str]:
    """File name to exact file content, for every generated document."""

    def as_json(doc: dict[str, Any]) -> str:
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    return {
        RETURN_EVENT_FILE: as_json(_model_schema(ReturnEvent, "validation", RETURN_EVENT_FILE)),
        OUTCOME_EVENT_FILE: as_json(
            _model_schema(OutcomeEvent, "serialization", OUTCOME_EVENT_FILE)
        ),
        DEAD_LETTER_FILE: as_json(_dead_letter_schema()),
        OUTCOME_REPORT_FILE: as_json(
            _model_schema(OutcomeReport, "serialization", OUTCOME_REPORT_FILE)
        ),
        ASYNCAPI_FILE: yaml.safe_dump(_asyncapi(), sort_keys=False, width=100),
    }


def write_all(directory: Path) -> list[Path]:
    """Write every document into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_all().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def drifted(directory: Path) -> list[str]:
    """Names of the documents in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, content in render_all().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale
