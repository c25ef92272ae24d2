"""schemas/asyncapi.yaml: what the official AsyncAPI parser says of it.

The parser runs through ``scripts/asyncapi.sh``, the same harness ``make test`` runs before
pytest (it installs the pinned parser once with ``npm ci``; later runs need no network).
Whether the headers it documents are the ones the service writes is
``tests/unit/test_header_contract.py``'s.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from service.schemas import ASYNCAPI_FILE, write_all

ROOT = Path(__file__).resolve().parents[2]


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
