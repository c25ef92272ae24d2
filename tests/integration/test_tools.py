"""Operator tools against the real broker: topics, publish, read back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from service.errors import InvalidEventError
from service.kafka.reader import read_topic
from service.kafka.topics import ensure_topics
from service.settings import KafkaSettings
from service.tools import publish_files

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "events").glob("*.json"))


@pytest.fixture
def kafka(bootstrap_servers: str, unique_id: Callable[[str], str]) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        returns_topic=unique_id("tools-returns"),
        outcomes_topic=unique_id("tools-outcomes"),
        dead_letter_topic=unique_id("tools-dead"),
        # Its own, or the test would depend on whether another left the default ones behind.
        retry_topic=unique_id("tools-retry"),
        routed_topic=unique_id("tools-routed"),
        state_topic=unique_id("tools-state"),
    )


def _names(kafka: KafkaSettings) -> list[str]:
    """The six topics, in the order ensure_topics creates them."""
    return [
        kafka.returns_topic,
        kafka.routed_topic,
        kafka.retry_topic,
        kafka.state_topic,
        kafka.outcomes_topic,
        kafka.dead_letter_topic,
    ]


async def test_ensure_topics_creates_only_what_is_missing(
    kafka: KafkaSettings, kafka_admin: AIOKafkaAdminClient
) -> None:
    names = _names(kafka)
    try:
        first = await ensure_topics(kafka, partitions=2)
        second = await ensure_topics(kafka, partitions=2)
    finally:
        await kafka_admin.delete_topics(names)
    assert first == names
    assert second == []


async def test_publish_files_keys_by_customer_and_reads_back_in_order(
    kafka: KafkaSettings, kafka_admin: AIOKafkaAdminClient
) -> None:
    try:
        await ensure_topics(kafka, partitions=1)
        lines = await publish_files(kafka, EXAMPLES[:3], kafka.returns_topic)
        records = await read_topic(kafka, kafka.returns_topic, count=3, wait_seconds=30)
    finally:
        await kafka_admin.delete_topics(_names(kafka))
    assert len(lines) == 3
    assert [r.value for r in records] == [p.read_bytes() for p in EXAMPLES[:3]]
    assert records[0].key == b"555567088"


async def test_publish_files_refuses_an_invalid_event_before_sending_anything(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"event_id": "x"}')
    with pytest.raises(InvalidEventError, match="--raw"):
        await publish_files(kafka, [EXAMPLES[0], bad], kafka.returns_topic)
