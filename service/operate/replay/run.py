"""One run against Kafka: the answer watch, the publisher and the drive, new or resumed.

A resume asks Kafka which of the run's events were published (the returns topic's
``rh-replay-*`` headers) and answered (the outcomes' ``replay``), and publishes only the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta

from service.errors import OperatorInputError
from service.operate.connect import client_options
from service.operate.replay.drive import RunProgress, RunResult, drive
from service.operate.replay.manifest import Manifest
from service.operate.replay.outgoing import Outgoing, reload
from service.operate.replay.publisher import KafkaPublisher
from service.operate.replay.request import RunOptions
from service.operate.replay.watch import AnswerWatch, published_sequences
from service.settings import Settings

CLOCK_MARGIN = timedelta(minutes=5)
"""A resume reads the topics from this long before the run started: the service's and the
tool's clocks may differ."""


async def run(
    settings: Settings,
    manifest: Manifest,
    *,
    items: Sequence[Outgoing] | None,
    options: RunOptions,
    progress: Callable[[RunProgress], None] | None = None,
    ready: Callable[[RunProgress], None] | None = None,
) -> RunResult:
    """Run (``items`` given: a new run) or resume (``items`` None) a replay to its end.

    ``ready`` is called once the run knows where it stands (for a resume: what was
    published and answered before), before anything is published.
    """
    kafka = settings.kafka
    if (kafka.returns_topic, kafka.outcomes_topic, kafka.dead_letter_topic) != (
        manifest.returns_topic,
        manifest.outcomes_topic,
        manifest.dead_letter_topic,
    ):
        raise OperatorInputError(
            f"replay {manifest.replay_id} ran on topics {manifest.returns_topic}, "
            f"{manifest.outcomes_topic}, {manifest.dead_letter_topic}: set "
            "RETURN_HANDLER_KAFKA__*_TOPIC as they were",
            replay_id=manifest.replay_id,
        )
    connection = client_options(kafka)
    since = None if items is not None else manifest.created_at - CLOCK_MARGIN
    watch = AnswerWatch(
        connection,
        outcomes_topic=manifest.outcomes_topic,
        dead_letter_topic=manifest.dead_letter_topic,
        replay_id=manifest.replay_id,
        since=since,
    )
    await watch.start()
    try:
        sequences = [entry.sequence for entry in manifest.entries]
        if items is None:
            assert since is not None
            published = await published_sequences(
                connection, manifest.returns_topic, manifest.replay_id, since
            )
            await watch.caught_up()
            published |= set(watch.answered)
            items = await reload(settings, manifest, set(sequences) - published)
        else:
            published = set()
        if ready is not None:
            answered = len([s for s in watch.answered if s in set(sequences)])
            ready(RunProgress(answered, len(published), len(sequences)))
        publisher = KafkaPublisher(connection, manifest.returns_topic)
        await publisher.start()
        try:
            return await drive(
                replay_id=manifest.replay_id,
                sequences=sequences,
                items=items,
                published=published,
                publisher=publisher,
                answers=watch,
                options=options,
                progress=progress,
            )
        finally:
            await publisher.stop()
    finally:
        await watch.stop()


__all__ = ["CLOCK_MARGIN", "run"]
