"""Replay sources: what each source offers and which filters a record answers itself."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.errors import OperatorInputError
from service.kafka.span import Span, TopicRecord
from service.operate.sources import (
    Filters,
    choose_outcomes,
    from_dead_letters,
    from_file,
    from_outcome_choices,
    from_returns,
    in_span,
    parse_offsets,
    parse_time,
)
from service.outcome import OutcomeStatus
from tests.factories import event_bytes
from tests.unit.operate.replay_builders import event_record, outcome, outcome_record, record


def _dead(offset: int, value: bytes, error_type: str, stamp: int = 0) -> TopicRecord:
    return record(
        "dead",
        0,
        offset,
        value,
        headers=(("rh-error-type", error_type.encode()),),
        timestamp_ms=stamp,
    )


def test_parse_offsets_reads_partition_ranges_and_refuses_what_is_not_one() -> None:
    assert parse_offsets([]) is None
    assert parse_offsets(["0:10-20", "2:5-5"]) == {0: (10, 20), 2: (5, 5)}
    for bad in (["0:20-10"], ["0-10"], ["x:1-2"], ["1:1-2", "1:3-4"]):
        with pytest.raises(OperatorInputError):
            parse_offsets(bad)


def test_parse_time_takes_iso_8601_reads_no_zone_as_utc_and_a_date_as_its_day() -> None:
    assert parse_time("2026-11-25T10:00:00Z", "--since") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_time("2026-11-25T10:00", "--since") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_time("2026-11-25T11:00+01:00", "--since") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert parse_time("2026-11-25", "--since") == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_time("2026-11-25", "--until", end_of_day=True) == datetime(
        2026, 11, 25, 23, 59, 59, 999000, tzinfo=UTC
    )
    with pytest.raises(OperatorInputError, match="--until"):
        parse_time("yesterday", "--until")


def test_dead_letters_of_the_wanted_error_type_that_validate_now_are_events() -> None:
    records = [
        _dead(0, b"not json", "json_invalid"),
        _dead(1, b'{"event_id": "x"}', "invalid_event", stamp=20),
        _dead(2, event_bytes(event_id="evt-fixed"), "invalid_event", stamp=10),
        _dead(3, event_bytes(event_id="evt-rules"), "rules_error"),
    ]
    found = from_dead_letters(records, Filters(error_types=frozenset({"invalid_event"})))
    # In the order they were written, whatever the partitions.
    assert [c.source for c in found] == ["dead:0:2", "dead:0:1"]
    fixed, still = found
    assert fixed.event_id == "evt-fixed"
    assert fixed.invalid is None
    assert still.event is None
    assert still.invalid is not None
    assert "occurred_at" in still.invalid


def test_an_event_id_filter_leaves_out_records_that_have_no_readable_event() -> None:
    records = [_dead(0, b"not json", "json_invalid"), _dead(1, event_bytes(event_id="a"), "x")]
    found = from_dead_letters(records, Filters(event_ids=frozenset({"a"})))
    assert [c.event_id for c in found] == ["a"]


def test_returns_records_are_candidates_in_time_order() -> None:
    records = [
        record("returns", 1, 0, event_bytes(event_id="late"), timestamp_ms=5),
        record("returns", 0, 0, event_bytes(event_id="early"), timestamp_ms=1),
    ]
    assert [c.event_id for c in from_returns(records, Filters())] == ["early", "late"]


def test_a_file_gives_one_event_a_line_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "fixed.jsonl"
    path.write_bytes(event_bytes(event_id="a") + b"\n\n" + event_bytes(event_id="b") + b"\n")
    found = from_file(path, Filters())
    assert [(c.source, c.event_id) for c in found] == [
        ("file:fixed.jsonl:1", "a"),
        ("file:fixed.jsonl:3", "b"),
    ]


def test_a_bad_line_or_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(event_bytes(event_id="a") + b'\n{"event_id": "b"}\n')
    with pytest.raises(OperatorInputError, match="line 2 is not a valid return event"):
        from_file(path, Filters())
    with pytest.raises(OperatorInputError, match="no such file"):
        from_file(tmp_path / "missing.jsonl", Filters())


def test_outcomes_choose_by_status_and_name_the_record_of_their_event() -> None:
    failed = outcome("evt-a", "failed", minutes=1, record=("returns", 2, 40))
    replayed = outcome(
        "evt-b",
        "failed",
        minutes=2,
        record=("returns", 1, 90),
        replay={
            "replay_id": "r1",
            "reason": "x",
            "source": "dead:0:3",
            "of": {"topic": "dead", "partition": 0, "offset": 3},
        },
    )
    completed = outcome("evt-c", "completed", minutes=3)
    records = [outcome_record(o, 0, n) for n, o in enumerate([failed, replayed, completed])]
    chosen = choose_outcomes(records, Filters(statuses=frozenset({OutcomeStatus.FAILED})))
    # A replay's outcome points back to the record it re-drove, not to the replay's copy.
    assert [(c.event_id, c.origin) for c in chosen] == [
        ("evt-a", "returns:2:40"),
        ("evt-b", "dead:0:3"),
    ]
    by_id = choose_outcomes(records, Filters(event_ids=frozenset({"evt-c"})))
    assert [c.event_id for c in by_id] == ["evt-c"]


def test_events_of_chosen_outcomes_are_read_back_and_a_missing_record_is_said() -> None:
    chosen = choose_outcomes(
        [
            outcome_record(outcome("evt-a", "failed", record=("returns", 0, 4)), 0, 0),
            outcome_record(outcome("evt-b", "failed", record=("returns", 0, 5)), 0, 1),
            outcome_record(outcome("evt-c", "failed", record=None), 0, 2),
        ],
        Filters(),
    )
    found = from_outcome_choices(chosen, {"returns:0:4": event_record("evt-a", 0, 4)})
    assert [(c.source, c.event_id, c.selected_by) for c in found] == [
        ("returns:0:4", "evt-a", "outcomes:0:0"),
        ("returns:0:5", None, "outcomes:0:1"),
        ("outcomes:0:2", None, "outcomes:0:2"),
    ]
    assert found[1].invalid is not None
    assert "gone" in found[1].invalid


def test_in_span_applies_times_and_offsets_to_records_already_read() -> None:
    stamp = int(datetime(2026, 11, 25, 10, tzinfo=UTC).timestamp() * 1000)
    r = record("t", 1, 7, b"x", timestamp_ms=stamp)
    assert in_span(r, Span())
    assert in_span(r, Span(since=datetime(2026, 11, 25, 10, tzinfo=UTC)))
    assert not in_span(r, Span(until=datetime(2026, 11, 25, 9, tzinfo=UTC)))
    assert in_span(r, Span(offsets={1: (7, 7)}))
    assert not in_span(r, Span(offsets={0: (0, 100)}))
