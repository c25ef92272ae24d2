"""The published return-event schema and the service's model give the same verdict.

Producers validate against ``schemas/return-event.v1.json`` with their own tools; the
service validates with ``ReturnEvent``. Every document here is judged by both: documents
generated from the schema (hypothesis-jsonschema), and mutations of the examples (every
field of every example replaced by values chosen to split lax from strict readers, removed,
or joined by an unknown field). The schema is read as other teams' validators read it:
ECMA-262 patterns (regress, as JavaScript and check-jsonschema read them) and formats
checked.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import regress
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator, ValidationError, validators
from pydantic import TypeAdapter
from pydantic import ValidationError as ModelError

from service import events
from service.events import ReturnEvent

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "return-event.v1.json").read_text())
EXAMPLES = {
    path.name: json.loads(path.read_text())
    for path in sorted((ROOT / "examples" / "events").glob("*.json"))
}


@functools.cache
def _ecma(pattern: str) -> regress.Regex:
    return regress.Regex(pattern, "u")


def _ecma_pattern(
    validator: Any, pattern: str, instance: object, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if isinstance(instance, str) and _ecma(pattern).find(instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# jsonschema's own `pattern` is Python's re; JSON Schema's is ECMA-262.
EcmaValidator = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _ecma_pattern}
)
EVENT_VALIDATOR = EcmaValidator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_accepts(document: object, schema: dict[str, Any] | None = None) -> bool:
    """The verdict of a strict third-party validator: ECMA patterns, formats checked."""
    validator = (
        EVENT_VALIDATOR
        if schema is None
        else EcmaValidator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    )
    return bool(validator.is_valid(document))


def model_accepts(text: str, adapter: TypeAdapter[Any] | None = None) -> bool:
    """The service's verdict on the same bytes (what ``validate.py`` does)."""
    try:
        if adapter is None:
            ReturnEvent.model_validate_json(text)
        else:
            adapter.validate_json(text)
    except ModelError:
        return False
    return True


def verdicts(document: object) -> tuple[bool, bool]:
    """(schema, model) on one document."""
    return schema_accepts(document), model_accepts(json.dumps(document))


# Values that split lax readers from strict ones: numbers as strings and strings as numbers,
# date-times in every near-RFC 3339 shape, case, whitespace, non-ASCII digits and letters
# that upper-case to ASCII, lengths at and past the limits.
TRICKY: list[object] = [
    *["", " ", "0", "1", "-5", "+5", "007", "1_000", " 12 ", "12.0", "12.00000", "1e2"],
    *["1e400", "abc", "1500.00", "0.0001", "0.00001", "12345678901.0", "1.", ".5", "١٢"],
    *["0.000", "99999999.9999", "123456789", "999999999999999999", "1000000000000000000"],
    *["2026-11-20", "2026-11-20T10:00:00", "2026-11-20T10:00:00Z", "2026-11-20t10:00:00z"],
    *["2026-11-20 10:00:00Z", "2026-11-20T10:00Z", "2026-11-20T10:00:00+0100"],
    *["2026-11-20T10:00:00.123456789+01:00", "2026-11-20T10:00:00.1234567890Z"],
    *["2026-02-30T10:00:00Z", "2024-02-29T10:00:00Z", "1900-02-29T10:00:00Z"],
    *["2000-02-29T23:59:59-23:59", "0000-01-01T00:00:00Z", "2026-11-20T24:00:00Z"],
    *["2026-11-20T23:59:60Z", "2026-11-20T10:00:00-00:00", "2026-11-20T10:00:00+24:00"],
    *["1700000000", "instore", "INSTORE", "\u0131nstore", "InStOrE\n", "web_engage", "FULL"],
    *["full", "POS", "EUR", "eur", "a@b", "a b@c", "a@b\u2028", "+919986000586", "12345"],
    *["69117663b1cfc114606fd7fb", "69117663b1cfc114606fd7fg", "x" * 64, "x" * 65, "x" * 129],
    *["ret-1\n", "ret 1", "SPEND", "DIRECT", "CANCELLED", "LINE_ITEM", "EXCHANGE", "AMOUNT"],
    *[0, 1, -1, 12, 12.0, 12.5, 1e2, 1e19, 999999999999999999, 1000000000000000000, 2**63],
    *[1700000000, True, False, None, [], {}, ["x"], [1], {"x": 1}],
]


def _paths(node: object, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _replaced(document: Any, path: tuple[Any, ...], value: object) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[head] = _replaced(document[head], rest, value)
    return copy


def _removed(document: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    copy = dict(document) if isinstance(document, dict) else list(document)
    if rest:
        copy[head] = _removed(document[head], rest)
    else:
        del copy[head]
    return copy


def _shape(path: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple("[]" if isinstance(step, int) else step for step in path)


def _one_path_per_shape() -> list[tuple[str, tuple[Any, ...]]]:
    # Every field shape of every example once: the same field in twelve examples would
    # only repeat the same verdicts.
    seen: set[tuple[Any, ...]] = set()
    found = []
    for name, example in EXAMPLES.items():
        for path in _paths(example):
            if path and _shape(path) not in seen:
                seen.add(_shape(path))
                found.append((name, path))
    return found


PATHS = _one_path_per_shape()


def _at(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def test_every_example_is_accepted_by_both() -> None:
    assert {name: verdicts(doc) for name, doc in EXAMPLES.items()} == {
        name: (True, True) for name in EXAMPLES
    }


@pytest.mark.parametrize(("example", "path"), PATHS, ids=[".".join(map(str, p)) for _, p in PATHS])
def test_each_field_replaced_by_tricky_values(example: str, path: tuple[Any, ...]) -> None:
    disagreements = []
    for value in TRICKY:
        document = _replaced(EXAMPLES[example], path, value)
        schema, model = verdicts(document)
        if schema != model:
            disagreements.append(f"{value!r}: schema {schema}, model {model}")
    assert disagreements == []


@pytest.mark.parametrize(("example", "path"), PATHS, ids=[".".join(map(str, p)) for _, p in PATHS])
def test_each_field_removed_or_joined_by_an_unknown_one(
    example: str, path: tuple[Any, ...]
) -> None:
    document = EXAMPLES[example]
    mutations = [_removed(document, path)]
    if isinstance(_at(document, path), dict):
        mutations.append(_replaced(document, path, {**_at(document, path), "unknown": 1}))
    assert [verdicts(m) for m in mutations if len(set(verdicts(m))) > 1] == []


# Earned and CancelledReturn are lists of the definitions above them, each generated on its
# own; generating them whole costs a minute for nothing those do not cover.
COMPOSITES = {"Earned", "CancelledReturn"}


@pytest.mark.parametrize("definition", sorted(set(SCHEMA["$defs"]) - COMPOSITES))
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_documents_generated_from_each_definition_are_accepted_by_its_model(
    definition: str, data: st.DataObject
) -> None:
    schema = {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"}
    document = data.draw(from_schema(schema), label=definition)
    adapter: TypeAdapter[Any] = TypeAdapter(getattr(events, definition))
    assert schema_accepts(document, schema), "the generator and the validator disagree"
    assert model_accepts(json.dumps(document), adapter)


# Few: each whole event costs hypothesis-jsonschema seconds (the return_type rules are
# if/then, generated by rejection); the mutations above judge those rules both ways.
@settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(document=from_schema(SCHEMA))
def test_whole_events_generated_from_the_schema_are_accepted_and_round_trip(
    document: dict[str, Any],
) -> None:
    assert verdicts(document) == (True, True)
    again = ReturnEvent.model_validate_json(json.dumps(document)).model_dump_json()
    assert verdicts(json.loads(again)) == (True, True)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="0123456789.-+eE:TZtz _@xAI", max_size=32)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=4,
)


@settings(max_examples=400, deadline=None, database=None)
@given(
    pick=st.sampled_from(
        [(name, path) for name, doc in EXAMPLES.items() for path in _paths(doc) if path]
    ),
    value=_JSON,
)
def test_any_field_of_any_example_replaced_by_any_json(
    pick: tuple[str, tuple[Any, ...]], value: object
) -> None:
    document = _replaced(EXAMPLES[pick[0]], pick[1], value)
    schema, model = verdicts(document)
    assert schema == model, f"schema {schema}, model {model}"


def test_accepted_events_dump_to_documents_both_accept() -> None:
    # Replay and inspect write events out again: what the model writes must be read back.
    for example in EXAMPLES.values():
        dumped = json.loads(ReturnEvent.model_validate(example).model_dump_json())
        assert verdicts(dumped) == (True, True)
