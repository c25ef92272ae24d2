"""validate: bytes to an event, or a dead letter that says what is wrong."""

from __future__ import annotations

import json

import pytest

from service.events import ReturnEvent, ReturnType
from service.pipeline.records import DeadLetter, Record
from service.pipeline.validate import validate
from tests.factories import event_bytes, event_dict


def _record(value: bytes | None) -> Record:
    return Record(topic="returns", partition=2, offset=41, key=b"k", value=value)


def test_validate_valid_event_returns_typed_event() -> None:
    parsed = validate(_record(event_bytes()))
    assert isinstance(parsed, ReturnEvent)
    assert parsed.event_id == "evt-test-0001"
    assert parsed.return_type is ReturnType.FULL


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b"{not json", "json_invalid"),
        (b"\xff\xfe", "json_invalid"),
    ],
)
def test_validate_unparseable_bytes_give_dead_letter(value: bytes | None, error_type: str) -> None:
    parsed = validate(_record(value))
    assert isinstance(parsed, DeadLetter)
    assert parsed.error_type == error_type
    assert parsed.record.offset == 41


def test_validate_invalid_event_names_each_bad_field() -> None:
    data = event_dict(return_type="STOLEN")
    del data["customer"]
    parsed = validate(_record(json.dumps(data).encode()))
    assert isinstance(parsed, DeadLetter)
    assert parsed.error_type == "invalid_event"
    assert any(d.startswith("return_type:") for d in parsed.details)
    assert any(d.startswith("customer:") for d in parsed.details)
    assert "2 error(s)" in parsed.reason


def test_validate_misspelt_field_is_refused_not_ignored() -> None:
    parsed = validate(_record(json.dumps(event_dict(earnd={})).encode()))
    assert isinstance(parsed, DeadLetter)
    assert any("earnd" in d for d in parsed.details)


def test_validate_full_return_that_keeps_money_is_refused() -> None:
    parsed = validate(_record(event_bytes(amounts={"before": "10", "after": "5"})))
    assert isinstance(parsed, DeadLetter)
    assert "amounts.after must be 0" in parsed.reason


def test_validate_customer_without_identifier_is_refused() -> None:
    parsed = validate(_record(event_bytes(customer={"registration_source": "INSTORE"})))
    assert isinstance(parsed, DeadLetter)
    assert "at least one of id, mobile, email, external_id" in parsed.reason


def test_validate_many_errors_are_capped_with_a_count() -> None:
    data = event_dict(order_lines=[{"line_id": str(i)} for i in range(30)])
    parsed = validate(_record(json.dumps(data).encode()))
    assert isinstance(parsed, DeadLetter)
    assert parsed.details[-1].startswith("... and ")
    assert len(parsed.details) == 21


def test_validate_unknown_registration_source_is_refused_naming_the_allowed_values() -> None:
    customer = {"id": 555567088, "registration_source": "IN_STORE"}
    parsed = validate(_record(event_bytes(customer=customer)))
    assert isinstance(parsed, DeadLetter)
    assert parsed.error_type == "invalid_event"
    assert "customer.registration_source" in parsed.reason
    allowed = ["FACEBOOK", "WEB_ENGAGE", "INSTORE", "MARTJACK", "TMALL", "TAOBAO", "JD"]
    allowed += ["ECOMMERCE", "WEBSITE", "LINE", "ALL"]
    assert all(f"'{name}'" in parsed.reason for name in allowed)


@pytest.mark.parametrize("given", ["instore", "InStore", "INSTORE"])
def test_validate_registration_source_in_any_case_is_read_as_upper_case(given: str) -> None:
    customer = {"id": 555567088, "registration_source": given}
    parsed = validate(_record(event_bytes(customer=customer)))
    assert isinstance(parsed, ReturnEvent)
    assert parsed.customer.registration_source == "INSTORE"


def test_a_cancellation_naming_only_its_return_is_valid_and_the_schema_says_so() -> None:
    # What it took is the ledger's to say: taken_back is a hint a producer may leave out.
    bare = event_bytes(
        return_type="CANCELLED",
        amounts={"before": "0", "after": "120.00"},
        earned={},
        cancelled_return={"return_event_id": "ret-1"},
    )
    parsed = validate(_record(bare))
    assert isinstance(parsed, ReturnEvent)
    assert parsed.cancelled_return is not None
    assert parsed.cancelled_return.taken_back.is_empty
    schema = ReturnEvent.model_json_schema()["$defs"]["CancelledReturn"]
    assert schema["required"] == ["return_event_id"]
    assert "hint" in schema["properties"]["taken_back"]["description"]
