"""Fixtures for tests that run against the real Kafka broker.

The broker is the one ``scripts/kafka.sh up`` starts (``make test`` does it
first). A missing broker is a failure, never a skip: a skipped integration
suite looks green while proving nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from capillary_sandbox import Sandbox, SandboxConfig
from service.settings import KafkaSettings

BOOTSTRAP_ENV = "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
TOPIC_PARTITIONS = 3

TopicFactory = Callable[..., Awaitable[str]]
"""``await make_topic(prefix="t", partitions=3)`` returns a new topic's name."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration as ``integration``."""
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here + os.sep):
            item.add_marker(pytest.mark.integration)


def _no_broker(bootstrap: str, reason: object) -> str:
    return (
        f"no Kafka broker answers at {bootstrap} ({reason}). "
        "Run `make test`, or start one with `scripts/kafka.sh up` "
        f"(set {BOOTSTRAP_ENV} if it listens elsewhere)."
    )


@pytest.fixture(scope="session")
def bootstrap_servers() -> str:
    """Bootstrap address of the test broker; fails the test if nothing listens."""
    bootstrap = os.environ.get(BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP)
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    problem: Exception | None = None
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except (OSError, ValueError) as exc:
        problem = exc
    # Failing outside the handler keeps the report to our one-line message.
    if problem is not None:
        pytest.fail(_no_broker(bootstrap, problem), pytrace=False)
    return bootstrap


@pytest.fixture
async def kafka_admin(bootstrap_servers: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client; fails the test if the broker does not answer."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000)
    problem: KafkaError | None = None
    try:
        await admin.start()
    except KafkaError as exc:
        problem = exc
    if problem is not None:
        await admin.close()
        pytest.fail(_no_broker(bootstrap_servers, problem), pytrace=False)
    try:
        yield admin
    finally:
        await admin.close()


@pytest.fixture
async def topic_factory(kafka_admin: AIOKafkaAdminClient) -> AsyncIterator[TopicFactory]:
    """Creates uniquely named topics for one test and deletes them afterwards."""
    created: list[str] = []

    async def make_topic(prefix: str = "it", partitions: int = TOPIC_PARTITIONS) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        response = await kafka_admin.create_topics(
            [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
        )
        # Response shape differs by protocol version; the error code is
        # always the second field of each per-topic entry.
        errors = [entry[1] for entry in response.topic_errors if entry[1] != 0]
        if errors:
            raise RuntimeError(f"creating topic {name} failed with error codes {errors}")
        created.append(name)
        return name

    yield make_topic
    if created:
        await kafka_admin.delete_topics(created)


@pytest.fixture
async def fresh_topic(topic_factory: TopicFactory) -> str:
    """One new topic with three partitions, deleted after the test."""
    return await topic_factory()


@pytest.fixture
def unique_id() -> Callable[[str], str]:
    """Names for transactional ids and consumer groups that no other test shares."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0)) as running:
        yield running


@pytest.fixture
async def kafka(
    bootstrap_servers: str, topic_factory: TopicFactory, unique_id: Callable[[str], str]
) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=bootstrap_servers,
        returns_topic=await topic_factory("returns"),
        routed_topic=await topic_factory("routed"),
        outcomes_topic=await topic_factory("outcomes"),
        dead_letter_topic=await topic_factory("dead"),
        retry_topic=await topic_factory("retry"),
        state_topic=await topic_factory("state"),
        group_id=unique_id("group"),
        fetch_timeout_ms=100,
        commit_interval_ms=50,
    )
