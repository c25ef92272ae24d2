"""schemas/asyncapi.yaml: what the official AsyncAPI parser says of it, and headers told truly.

The parser runs through ``scripts/asyncapi.sh``, the same harness ``make test`` runs before
pytest (it installs the pinned parser once with ``npm ci``; later runs need no network).
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import jsonschema
import yaml

from service.actions import Decision
from service.events import ReturnType
from service.outcome import EventIdentity, OutcomeEvent, OutcomeStatus, ServiceInfo
from service.pipeline.publish import Envelope, dead_letter_headers, outcome_headers
from service.pipeline.records import DeadLetter, Finished, Record
from service.schemas import ASYNCAPI_FILE, DEAD_LETTER_FILE, render_all, write_all

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _parse(document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "asyncapi.sh"), str(document)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _lines(done: subprocess.CompletedProcess[str], severity: str) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith(f"{severity} ")]


def test_official_parser_finds_no_error_and_no_warning_in_the_generated_document(
    tmp_path: Path,
) -> None:
    write_all(tmp_path)
    done = _parse(tmp_path / ASYNCAPI_FILE)
    assert (_lines(done, "error"), _lines(done, "warning")) == ([], []), done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("ok ")


def test_asyncapi_harness_fails_on_an_error_and_names_it(tmp_path: Path) -> None:
    write_all(tmp_path)
    document = tmp_path / ASYNCAPI_FILE
    text = document.read_text(encoding="utf-8")
    assert "./return-event.v1.json" in text
    document.write_text(text.replace("./return-event.v1.json", "./missing.json"))
    done = _parse(document)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = _lines(done, "error")
    assert any(line.startswith("error invalid-ref ") and "missing.json" in line for line in errors)
    assert done.stdout.splitlines()[-1].startswith("FAILED ")


def test_asyncapi_harness_fails_on_warnings_alone(tmp_path: Path) -> None:
    # A valid AsyncAPI 2 document: the default ruleset's recommendations for 2.x (contact,
    # license, servers, ...) are warnings, so it parses with warnings and no error.
    document = tmp_path / "warned.yaml"
    document.write_text(
        "asyncapi: 2.6.0\ninfo:\n  title: t\n  version: '1'\n  description: d\nchannels: {}\n"
    )
    done = _parse(document)
    assert _lines(done, "error") == [], done.stdout
    assert any(
        line.startswith("warning asyncapi-info-license ") for line in _lines(done, "warning")
    )
    assert done.returncode == 1, done.stdout + done.stderr


def _outcome_header_schema() -> dict[str, Any]:
    document = yaml.safe_load(render_all()[ASYNCAPI_FILE])
    schema: dict[str, Any] = document["channels"]["outcomes"]["messages"]["outcomeEvent"]["headers"]
    return schema


def _dead_letter_header_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(render_all()[DEAD_LETTER_FILE])
    return schema


def _valid(headers: list[tuple[str, bytes]], schema: dict[str, Any]) -> None:
    as_object = {name: value.decode() for name, value in headers}
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(as_object)


def _outcome() -> OutcomeEvent:
    return OutcomeEvent(
        outcome_id=UUID("0b7e6a52-8f0e-4a43-9d43-4d1c1a6f4b11"),
        event=EventIdentity(
            event_id="evt-1",
            return_type=ReturnType.CANCELLED,
            occurred_at=NOW,
            order_id="ORD-1",
            transaction_id="T-1",
        ),
        status=OutcomeStatus.COMPLETED,
        decision=Decision.GIVE_BACK,
        summary="give back",
        policy_version="p",
        processed_at=NOW,
        duration_ms=12.0,
        service=ServiceInfo(version="0.1.0"),
    )


ENVELOPE = Envelope.fixed(
    "/return-handler/cluster-1/return-handler",
    "http://return-handler:8080/schemas/outcome-event.v1.json",
)


def test_asyncapi_requires_exactly_the_headers_an_untraced_outcome_carries() -> None:
    # Tracing off and no trace context in the input: the fewest headers an outcome has.
    record = Record("returns", 0, 7, b"555567088", b"{}")
    headers = outcome_headers(_outcome(), Finished(record, _outcome()), ENVELOPE)
    schema = _outcome_header_schema()
    assert sorted(name for name, _ in headers) == sorted(schema["required"])
    _valid(headers, schema)


def test_asyncapi_declares_every_header_of_a_traced_outcome() -> None:
    record = Record(
        "returns", 0, 7, b"555567088", b"{}", (("traceparent", TRACEPARENT), ("tracestate", b"a=1"))
    )
    headers = outcome_headers(_outcome(), Finished(record, _outcome()), ENVELOPE)
    schema = _outcome_header_schema()
    assert {name for name, _ in headers} == set(schema["properties"])
    _valid(headers, schema)


def test_dead_letter_schema_requires_exactly_the_headers_of_a_bare_dead_letter() -> None:
    # An input without headers of its own: only the ones the service adds.
    dead = DeadLetter(Record("returns", 1, 9, None, b"{broken"), "not JSON", "json_invalid")
    headers = dead_letter_headers(
        dead,
        NOW,
        event_id=UUID("6c1d2f0e-64a4-4d8e-9f57-3f6a0c8f2d21"),
        source=ENVELOPE.source(),
    )
    schema = _dead_letter_header_schema()
    assert sorted(name for name, _ in headers) == sorted(schema["required"])
    _valid(headers, schema)
