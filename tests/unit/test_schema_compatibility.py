"""Schemas that can grow: what a consumer built against an earlier release still accepts.

Within v1 fields are only added (docs/reference/schemas.md, "Compatibility"). Each release's
outcome schema is kept under ``schemas/releases/<version>/``; today's outcomes must validate
against every one of them, and every kept schema must be open to additions, or the day a
field is added the consumers validating against it break. (The outcomes the service really
publishes are held to the same releases by ``tests/integration/test_consumer_view.py``.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from service import __version__
from service.actions import Decision
from service.outcome import ActionStatus, FirstOutcome, OutcomeStatus, ReplayInfo
from service.schemas import OUTCOME_EVENT_FILE, release_file, render_all
from tests.unit.operate.build import action, item, outcome

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
RELEASES = sorted(SCHEMAS.glob(f"releases/*/{OUTCOME_EVENT_FILE}"))
TODAY = json.loads(render_all()[OUTCOME_EVENT_FILE])


def _release(path: Path) -> str:
    return path.parent.name


def _validator(path: Path) -> Draft202012Validator:
    schema = json.loads(path.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _objects(node: object, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield where, node
        for key, value in node.items():
            yield from _objects(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _objects(value, f"{where}/{index}")


def test_this_version_s_outcome_schema_is_kept_as_a_release() -> None:
    assert release_file(SCHEMAS).exists(), "run `return-handler schemas` and commit it"
    assert __version__ in [_release(path) for path in RELEASES]


@pytest.mark.parametrize("schema", [TODAY, *RELEASES], ids=["today", *map(_release, RELEASES)])
def test_every_object_of_the_outcome_schema_allows_unknown_properties(
    schema: dict[str, Any] | Path,
) -> None:
    document = json.loads(schema.read_text()) if isinstance(schema, Path) else schema
    closed = [
        where
        for where, node in _objects(document)
        if node.get("additionalProperties") is False or "unevaluatedProperties" in node
    ]
    assert closed == []


def _real_outcomes() -> list[dict[str, Any]]:
    # Outcomes as the service builds them: every item status and outcome status, a replay
    # and a duplicate, so each optional part of the schema is present at least once.
    items = [item(status, f"loyalty_earn:{n}") for n, status in enumerate(ActionStatus)]
    replay = ReplayInfo(replay_id="rp-1", reason="fixed", source="returns:0:7", sequence=1)
    first = FirstOutcome(input_partition=0, input_offset=3, status=OutcomeStatus.COMPLETED)
    built = [
        outcome(action("revoke_loyalty_earn", *items), replay=replay),
        *(outcome(status=status, decision=Decision.NOTHING_TO_DO) for status in OutcomeStatus),
        outcome(status=OutcomeStatus.DUPLICATE, duplicate_of=first),
    ]
    return [json.loads(o.model_dump_json()) for o in built]


@pytest.mark.parametrize("release", RELEASES, ids=map(_release, RELEASES))
def test_outcomes_built_today_validate_against_each_release(release: Path) -> None:
    validator = _validator(release)
    for document in _real_outcomes():
        assert [e.message for e in validator.iter_errors(document)] == []
