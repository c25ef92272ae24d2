"""`make demo` can run again on a broker left running: every topic it uses is its own run's."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings import KafkaSettings

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.sh"


def test_demo_gives_every_topic_and_the_group_a_name_of_its_own_run() -> None:
    # With a shared state topic a second demo found the first one's event ids finished and
    # published no outcome at all.
    exported = dict(
        re.findall(r'^export (RETURN_HANDLER_KAFKA__\w+)="?([^"\n]*)', DEMO.read_text(), re.M)
    )
    per_run = [
        f"RETURN_HANDLER_KAFKA__{name.upper()}"
        for name in KafkaSettings.model_fields
        if name.endswith("_topic") or name == "group_id"
    ]
    assert {name: "$RUN_ID" in exported.get(name, "") for name in per_run} == dict.fromkeys(
        per_run, True
    )
