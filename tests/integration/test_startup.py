"""A start that fails after the consumer joined the broker stops cleanly: one line, nothing left
open (no "Unclosed AIOKafkaConsumer" and the like)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import TopicFactory

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Unclosed", "Task was destroyed", "Traceback", "ResourceWarning", "Exception ignored")


async def test_topics_partitioned_apart_stop_the_started_consumer_with_one_line(
    bootstrap_servers: str, topic_factory: TopicFactory, unique_id: Callable[[str], str]
) -> None:
    # The consumer has started and read the metadata when the check refuses the topics.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RETURN_HANDLER_")},
        "PYTHONWARNINGS": "always::ResourceWarning",
        "RETURN_HANDLER_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "RETURN_HANDLER_KAFKA__RETURNS_TOPIC": await topic_factory("returns", partitions=3),
        "RETURN_HANDLER_KAFKA__ROUTED_TOPIC": await topic_factory("routed", partitions=3),
        "RETURN_HANDLER_KAFKA__RETRY_TOPIC": await topic_factory("retry", partitions=3),
        "RETURN_HANDLER_KAFKA__STATE_TOPIC": await topic_factory("state", partitions=2),
        "RETURN_HANDLER_KAFKA__GROUP_ID": unique_id("group"),
        "RETURN_HANDLER_CAPILLARY__USERNAME": "demo",
        "RETURN_HANDLER_CAPILLARY__PASSWORD": "demo",
        "RETURN_HANDLER_LOG_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service", "run",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:  # it kept running: never leave it behind
            process.kill()
            await process.wait()
    text = stderr.decode()
    assert process.returncode == 2, text
    [line] = text.splitlines()
    assert "must have the same number of partitions" in line
    assert "RETURN_HANDLER_KAFKA__ROUTED_TOPIC / __RETRY_TOPIC / __STATE_TOPIC" in line
    assert not [word for word in NOISE if word in text]
