"""Decoding the outcomes topic: each outcome with its position; what is not one is counted."""

from __future__ import annotations

import json

from service.operate.outcomes import Skipped, decode_all
from service.outcome import ActionStatus
from tests.unit.operate.build import DAY, TOPIC, action, item, outcome, record


def test_decode_all_yields_outcomes_with_their_positions_and_counts_what_is_not_one() -> None:
    good = outcome(action("revoke_loyalty_earn", item(ActionStatus.REVOKED)), event_id="evt-a")
    newer = json.loads(good.model_dump_json())
    newer["schema_version"] = "2"
    records = [
        record(good.model_dump_json().encode(), offset=0),
        record(None, offset=1),
        record(b"not json", offset=2),
        record(json.dumps(newer).encode(), offset=3),
        record(good.model_copy(update={"summary": "again"}).model_dump_json().encode(), offset=4),
    ]
    skipped = Skipped()

    found = list(decode_all(records, skipped))

    assert [(str(p), o.summary) for p, o in found] == [
        (f"{TOPIC}:0:0", good.summary),
        (f"{TOPIC}:0:4", "again"),
    ]
    assert found[0][0].written_at == DAY
    assert found[0][1] == good
    assert skipped.count == 3
    assert skipped.examples[0] == f"{TOPIC}:0:1: no value (a tombstone)"
    assert skipped.examples[1].startswith(f"{TOPIC}:0:2: not an outcome of schema 1 (value: ")
    assert skipped.examples[2].startswith(
        f"{TOPIC}:0:3: not an outcome of schema 1 (schema_version"
    )


def test_skipped_keeps_only_the_first_few_examples() -> None:
    skipped = Skipped()
    list(decode_all([record(None, offset=n) for n in range(10)], skipped))
    assert skipped.count == 10
    assert len(skipped.examples) == 3
