"""The service's topics, created where they are missing (development and the demo)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.kafka.connection import checked_connection, start_client
from service.settings import KafkaSettings


def state_topic_configs(dedupe_window_days: float) -> dict[str, str]:
    """Compacted (latest state per event id) and forgetting after the dedupe window."""
    return {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(int(dedupe_window_days * 86_400_000)),
    }


async def ensure_topics(
    kafka: KafkaSettings, partitions: int, *, dedupe_window_days: float = 35.0
) -> list[str]:
    """Create the service's six topics that do not exist yet.

    Returns the names created. For development and the demo; production topics are
    created by whoever owns the cluster, with their own partition counts and retention,
    keeping returns, routed, retry and state at one partition count. The state topic is
    compacted and forgets after the dedupe window (``dedupe_window_days``).
    """
    wanted = [
        kafka.returns_topic,
        kafka.routed_topic,
        kafka.retry_topic,
        kafka.state_topic,
        kafka.outcomes_topic,
        kafka.dead_letter_topic,
    ]
    connection = await checked_connection(kafka)
    admin = AIOKafkaAdminClient(**connection.kwargs())
    await start_client(admin.start, admin.close, bootstrap_servers=kafka.bootstrap_servers)
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name,
                        num_partitions=partitions,
                        replication_factor=1,
                        topic_configs=state_topic_configs(dedupe_window_days)
                        if name == kafka.state_topic
                        else {},
                    )
                    for name in missing
                ]
            )
        return missing
    finally:
        await admin.close()


__all__ = ["ensure_topics", "state_topic_configs"]
