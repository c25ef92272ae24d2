"""logging: secrets never, e-mails and phone numbers masked, stdlib records as JSON."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from service.logging import configure_logging, get_logger, mask_pii, mask_text


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
