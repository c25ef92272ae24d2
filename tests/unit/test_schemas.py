"""schemas/: generated from the models, checked for drift, and agreeing with the models."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from service.schemas import (
    OUTCOME_EVENT_FILE,
    RETURN_EVENT_FILE,
    drifted,
    render_all,
    write_all,
)
from tests.factories import event_dict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "events").glob("*.json"))


def test_committed_schemas_match_the_models() -> None:
    assert drifted(ROOT / "schemas") == [], "run `make schemas` and commit the result"


def test_drift_is_detected_when_a_file_changes(tmp_path: Path) -> None:
    write_all(tmp_path)
    assert drifted(tmp_path) == []
    schema = tmp_path / RETURN_EVENT_FILE
    schema.write_text(schema.read_text().replace('"event_id"', '"eventId"'))
    assert drifted(tmp_path) == [RETURN_EVENT_FILE]
    (tmp_path / OUTCOME_EVENT_FILE).unlink()
    assert drifted(tmp_path) == [RETURN_EVENT_FILE, OUTCOME_EVENT_FILE]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_event_is_valid_under_the_json_schema(path: Path) -> None:
    schema = json.loads(render_all()[RETURN_EVENT_FILE])
    jsonschema.validate(json.loads(path.read_text()), schema)


def test_json_schema_refuses_what_the_model_refuses() -> None:
    schema = json.loads(render_all()[RETURN_EVENT_FILE])
    bad = event_dict(return_type="STOLEN")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event_dict(unknown_field=1), schema)


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 3
