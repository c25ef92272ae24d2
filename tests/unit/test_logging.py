"""logging: secrets never, e-mails and phone numbers masked, stdlib records as JSON."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from service.logging import (
    add_event_context,
    bind_event_context,
    clear_event_context,
    configure_logging,
    event_context,
    get_logger,
    mask_pii,
    mask_text,
)


def test_mask_text_hides_email_but_keeps_ids_and_codes() -> None:
    text = mask_text("tom.sawyer@example.com asked about coupon:3138309782")
    assert "tom.sawyer" not in text
    assert "example.com" in text
    assert "coupon:3138309782" in text


def test_mask_pii_replaces_secret_keys_and_masks_phone_keys() -> None:
    out = mask_pii(
        None,
        "info",
        {"event": "x", "password": "hunter2", "oauth_token": "abc", "mobile": "11223569865"},
    )
    assert out == {"event": "x", "password": "***", "oauth_token": "***", "mobile": "11*******65"}


def test_configured_logging_writes_json_lines_for_structlog_and_stdlib(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    try:
        structlog.contextvars.bind_contextvars(event_id="evt-1")
        get_logger("test").info("event_processed", customer_email="a.b@example.com")
        get_logger("test").debug("below_the_level")
        logging.getLogger("aiokafka").warning("broker %s gone", "127.0.0.1:9092")
    finally:
        structlog.contextvars.clear_contextvars()
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    ours, theirs = lines
    assert ours["event"] == "event_processed"
    assert ours["event_id"] == "evt-1"
    assert ours["logger"] == "test"
    assert ours["level"] == "info"
    assert ours["timestamp"].endswith("Z")
    assert "a.b@" not in ours["customer_email"]
    assert theirs["logger"] == "aiokafka"
    assert theirs["level"] == "warning"
    assert theirs["event"] == "broker 127.0.0.1:9092 gone"


def test_event_context_is_on_every_line_of_its_message_and_gone_after(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    try:
        bind_event_context(topic="returns", partition=2, offset=41)
        add_event_context(event_id="evt-1")
        get_logger("test").info("event_processed", offset=7)  # the line's own key wins
        assert event_context() == {
            "topic": "returns",
            "partition": 2,
            "offset": 41,
            "event_id": "evt-1",
        }
        bind_event_context(topic="returns", partition=2, offset=42)  # the next message
        get_logger("test").info("next_message")
        clear_event_context()
        get_logger("test").info("between_messages")
    finally:
        clear_event_context()
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    first, second, third = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (first["event_id"], first["partition"], first["offset"]) == ("evt-1", 2, 7)
    assert "event_id" not in second
    assert second["offset"] == 42
    assert not {"topic", "partition", "offset", "event_id"} & set(third)
    assert event_context() == {}
    with pytest.raises(ValueError, match="not an event context field"):
        add_event_context(customer_email="a@b.c")


def test_a_value_json_cannot_hold_is_written_as_its_repr_and_the_line_stays_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque 7>"

    configure_logging("INFO", "json")
    try:
        get_logger("test").info("odd_values", thing=Opaque(), name="Zoë", codes={"A1"})
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
    assert (line["thing"], line["name"], line["codes"]) == ("<opaque 7>", "Zoë", ["A1"])
