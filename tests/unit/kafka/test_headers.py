"""The headers of outcomes and dead letters: CloudEvents the SDK reads, in both its bindings."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from cloudevents.v1 import exceptions as v1_exceptions
from cloudevents.v1 import kafka as v1_kafka

from service.ids import CountingIds
from service.kafka.headers import (
    OUTCOME_TYPE,
    Envelope,
    cloudevent_headers,
    dead_letter_headers,
    deployment_source,
    outcome_bytes,
    outcome_headers,
)
from service.pipeline.records import DeadLetter, Finished, Record
from service.pipeline.validate import validate
from tests.cloudevents_sdk import Reader, read_core, read_v1
from tests.factories import event_bytes
from tests.unit.operate.build import outcome

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SCHEMA = "http://return-handler.returns.svc:8080/schemas/outcome-event.v1.json"
SOURCE = "/return-handler/kafka-cluster-1/returns"
ENVELOPE = Envelope.fixed(SOURCE, SCHEMA)
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _record(value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
    return Record("returns", 2, 41, b"555567088", value, headers=headers)


def _dead(value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()) -> DeadLetter:
    found = validate(_record(value, headers))
    assert isinstance(found, DeadLetter)
    return found


def _dead_letter(dead: DeadLetter, event_id: UUID) -> list[tuple[str, bytes]]:
    return dead_letter_headers(dead, AT, event_id=event_id, source=SOURCE)


def test_an_outcome_is_a_cloudevent_named_by_its_own_id_about_its_order() -> None:
    found = outcome(order_id="ORD-77")
    headers = dict(outcome_headers(found, Finished(_record(b"{}"), found), ENVELOPE))
    assert headers["ce_id"] == str(found.outcome_id).encode()
    assert headers["ce_subject"] == b"ORD-77"
    assert headers["ce_source"] == SOURCE.encode()
    assert headers["ce_dataschema"] == SCHEMA.encode()
    assert headers["content-type"] == b"application/json"


def test_two_outcomes_of_one_input_record_have_different_ids() -> None:
    # The old id, topic:partition:offset, was the same for both (and for any deployment
    # reading a re-created topic from offset 0 again).
    first = outcome()
    second = first.model_copy(update={"outcome_id": CountingIds()()})
    record = _record(b"{}")
    ids = {
        dict(outcome_headers(o, Finished(record, o), ENVELOPE))["ce_id"] for o in (first, second)
    }
    assert len(ids) == 2


def test_an_outcome_read_again_keeps_its_id() -> None:
    found = outcome()
    again = type(found).model_validate_json(outcome_bytes(found))
    assert again.outcome_id == found.outcome_id


def test_an_outcome_without_trace_context_has_no_traceparent() -> None:
    found = outcome()
    headers = dict(outcome_headers(found, Finished(_record(b"{}"), found), ENVELOPE))
    assert "traceparent" not in headers


def test_an_outcome_passes_the_inputs_trace_context_on_when_it_has_none_of_its_own() -> None:
    found = outcome()
    record = _record(b"{}", headers=(("traceparent", TRACEPARENT),))
    headers = dict(outcome_headers(found, Finished(record, found), ENVELOPE))
    assert headers["traceparent"] == TRACEPARENT


@pytest.mark.parametrize("read", [read_core, read_v1], ids=["core", "v1"])
def test_an_outcome_parses_with_the_sdk(read: Reader) -> None:
    found = outcome(order_id="ORD-77")
    headers = outcome_headers(found, Finished(_record(b"{}"), found), ENVELOPE)
    event = read(headers, b"555567088", outcome_bytes(found))
    attributes = event.get_attributes()
    assert attributes["id"] == str(found.outcome_id)
    assert attributes["source"] == SOURCE
    assert attributes["type"] == "return-handler.outcome.v1"
    assert attributes["subject"] == "ORD-77"
    assert attributes["dataschema"] == SCHEMA
    assert event.get_data()["outcome_id"] == str(found.outcome_id)


@pytest.mark.parametrize(
    ("value", "error_type", "content_type"),
    [
        (b"not json at all", "json_invalid", b"application/octet-stream"),
        (b"\xff\xfe\x00", "json_invalid", b"application/octet-stream"),
        (None, "empty", b"application/octet-stream"),
        (b'{"event_id": 1}', "invalid_event", b"application/json"),
        (event_bytes(occurred_at="yesterday"), "invalid_event", b"application/json"),
    ],
)
def test_a_dead_letter_says_what_its_data_are(
    value: bytes | None, error_type: str, content_type: bytes
) -> None:
    dead = _dead(value)
    assert dead.error_type == error_type
    assert dict(_dead_letter(dead, CountingIds()()))["content-type"] == content_type


@pytest.mark.parametrize(
    "value", [b"not json at all", b"\xff\xfe\x00", b"", b'{"event_id": 1}'], ids=repr
)
def test_every_dead_letter_parses_with_both_bindings(value: bytes) -> None:
    # Fails on the headers before content-type: without it, CloudEvents data are JSON, so
    # the older binding unmarshals the bytes with json.loads and raises.
    ids = CountingIds()
    headers = _dead_letter(_dead(value), ids())
    for read in (read_core, read_v1):
        event = read(headers, b"555567088", value)
        attributes = event.get_attributes()
        assert attributes["id"] == "00000000-0000-4000-8000-000000000001"
        assert attributes["type"] == "return-handler.dead-letter.v1"
        assert attributes["source"] == SOURCE


def test_the_older_binding_left_to_its_json_default_refuses_bytes_whatever_the_header() -> None:
    # Why a consumer of dead letters must choose its unmarshaller: no header changes this.
    headers = dict(_dead_letter(_dead(b"not json at all"), CountingIds()()))
    message = v1_kafka.KafkaMessage(headers=headers, key=None, value=b"not json at all")
    with pytest.raises(v1_exceptions.DataUnmarshallerError):
        v1_kafka.from_binary(message)


def test_a_dead_letter_gets_the_id_it_is_given_and_never_the_records_position() -> None:
    ids = CountingIds()
    dead = _dead(b"nope")
    first, second = (dict(_dead_letter(dead, ids())) for _ in range(2))
    assert first["ce_id"] != second["ce_id"]
    assert UUID(first["ce_id"].decode()).version == 4


def test_a_dead_letter_keeps_the_inputs_headers_but_its_envelope() -> None:
    inputs = (
        ("traceparent", TRACEPARENT),
        ("Content-Type", b"application/json"),
        ("ce_id", b"producer-1"),
        ("ce_my_extension", b"x"),
        ("x-team", b"pos"),
    )
    headers = _dead_letter(_dead(b"not json", inputs), CountingIds()())
    found = dict(headers)
    assert found["traceparent"] == TRACEPARENT
    assert found["x-team"] == b"pos"
    assert found["content-type"] == b"application/octet-stream"
    assert "Content-Type" not in found
    assert "ce_my_extension" not in found
    assert found["ce_id"] != b"producer-1"
    # An input's extension with an underscore is no valid CloudEvents attribute name.
    read_core(headers, None, b"not json")


def test_the_default_source_names_the_cluster_and_the_group() -> None:
    assert deployment_source("Xy3-_kQ", "returns") == "/return-handler/Xy3-_kQ/returns"
    assert deployment_source("c1", "returns") != deployment_source("c2", "returns")
    assert deployment_source("c1", "returns") != deployment_source("c1", "returns-eu")
    # Escaped to stay one path segment of a URI reference.
    assert deployment_source("c1", "team/returns v2") == "/return-handler/c1/team%2Freturns%20v2"
    assert deployment_source(None, "returns") == "/return-handler/returns"


def test_outcome_headers_are_the_content_type_then_the_cloudevent_then_the_trace() -> None:
    found = outcome(order_id="ORD-77")
    assert found.outcome_id is not None
    record = _record(b"{}", headers=(("TraceParent", TRACEPARENT), ("other", b"x")))
    expected_head = [
        ("content-type", b"application/json"),
        ("schema-version", b"1"),
        *cloudevent_headers(
            event_id=found.outcome_id,
            kind=OUTCOME_TYPE,
            source=SOURCE,
            at=found.processed_at,
            subject="ORD-77",
            dataschema=SCHEMA,
        ),
    ]
    from_input = outcome_headers(found, Finished(record, found), ENVELOPE)
    assert from_input == [*expected_head, ("TraceParent", TRACEPARENT)]
    own = (("traceparent", b"00-own-01"),)
    assert outcome_headers(found, Finished(record, found, trace=own), ENVELOPE) == [
        *expected_head,
        *own,
    ]


def test_outcome_headers_read_the_envelope_once_for_many_outcomes() -> None:
    reads: list[str] = []

    def source() -> str:
        reads.append("source")
        return SOURCE

    settled = Envelope(source=source, outcome_schema=lambda: SCHEMA).settled()
    made = [
        outcome_headers(o, Finished(_record(b"{}"), o), settled)
        for o in (outcome(), outcome(offset=1))
    ]
    assert reads == ["source"]
    assert [dict(h)["ce_source"] for h in made] == [SOURCE.encode()] * 2
    assert made[0] == outcome_headers(outcome(), Finished(_record(b"{}"), outcome()), ENVELOPE)


def test_an_outcome_without_its_id_is_not_published() -> None:
    found = outcome().model_copy(update={"outcome_id": None})
    with pytest.raises(ValueError, match="outcome_id"):
        outcome_headers(found, Finished(_record(b"{}"), found), ENVELOPE)


def test_outcome_bytes_are_the_compact_json_of_the_model() -> None:
    found = outcome(order_id='Rückgabe ✓ \u2028 "q"')
    assert outcome_bytes(found) == found.model_dump_json(exclude_none=False).encode()
