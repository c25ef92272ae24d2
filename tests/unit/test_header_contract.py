"""The published header schemas say which headers are always there, and the headers the
service writes agree with them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from service.ids import CountingIds
from service.kafka.headers import Envelope, dead_letter_headers, outcome_headers
from service.pipeline.records import DeadLetter, Finished, Record
from service.pipeline.validate import validate
from service.schemas import ASYNCAPI_FILE, DEAD_LETTER_FILE, render_all
from tests.unit.operate.build import outcome

ENVELOPE = Envelope.fixed("/return-handler/c1/g1", "http://h:8080/schemas/outcome-event.v1.json")
TRACE = (
    ("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ("tracestate", b"a=1"),
)


def _outcome_schema() -> dict[str, Any]:
    doc = yaml.safe_load(render_all()[ASYNCAPI_FILE])
    headers: dict[str, Any] = doc["channels"]["outcomes"]["messages"]["outcomeEvent"]["headers"]
    return headers


def _dead_letter_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(render_all()[DEAD_LETTER_FILE])
    return schema


def _as_object(headers: list[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


def _outcome(trace: tuple[tuple[str, bytes], ...] = ()) -> dict[str, str]:
    found = outcome()
    record = Record("returns", 0, 3, b"k", b"{}", headers=trace)
    return _as_object(outcome_headers(found, Finished(record, found), ENVELOPE))


def _dead(value: bytes, trace: tuple[tuple[str, bytes], ...] = ()) -> dict[str, str]:
    dead = validate(Record("returns", 0, 3, b"k", value, headers=trace))
    assert isinstance(dead, DeadLetter)
    at = datetime(2026, 11, 20, tzinfo=UTC)
    return _as_object(dead_letter_headers(dead, at, event_id=CountingIds()(), source="/s"))


def test_traceparent_is_not_a_required_outcome_header() -> None:
    # With tracing off (the default) an outcome carries one only if its input did.
    assert "traceparent" not in _outcome()
    assert "traceparent" not in _outcome_schema()["required"]
    assert "traceparent" in _outcome_schema()["properties"]


def test_the_required_outcome_headers_are_exactly_those_every_outcome_has() -> None:
    assert sorted(_outcome_schema()["required"]) == sorted(_outcome())


def test_a_traced_outcome_carries_exactly_the_declared_headers() -> None:
    assert set(_outcome(TRACE)) == set(_outcome_schema()["properties"])


@pytest.mark.parametrize("value", [b"not json", b"{}", b""], ids=repr)
def test_the_required_dead_letter_headers_are_exactly_those_every_dead_letter_has(
    value: bytes,
) -> None:
    assert sorted(_dead_letter_schema()["required"]) == sorted(_dead(value))


@pytest.mark.parametrize("trace", [(), TRACE], ids=["untraced", "traced"])
def test_written_headers_are_valid_under_their_published_schemas(
    trace: tuple[tuple[str, bytes], ...],
) -> None:
    checker = Draft202012Validator.FORMAT_CHECKER
    outcome_schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **_outcome_schema(),
    }
    Draft202012Validator(outcome_schema, format_checker=checker).validate(_outcome(trace))
    dead_schema = _dead_letter_schema()
    Draft202012Validator(dead_schema, format_checker=checker).validate(_dead(b"x", trace))
    # Every header we write is documented (the input's own ones aside).
    assert set(_outcome(trace)) <= set(outcome_schema["properties"])
    assert set(_dead(b"x", trace)) <= set(dead_schema["properties"])
