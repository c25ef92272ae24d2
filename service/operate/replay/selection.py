"""Which events a replay re-drives: the source read, then the choice (``preview.choose``).

The choice reads the outcomes' history and the ledger (the state topic, ``ledger.py``) as
well as the source: a give-back an earlier outcome or the ledger shows as made is not made
again, and a return that a cancellation gave back since is held back unless the operator
asks for it (``--include-cancelled``). Nothing is published here.
"""

from __future__ import annotations

from datetime import datetime

from service.kafka.span import Progress, TopicRecord, read_span
from service.operate.connect import checked_options
from service.operate.history import History
from service.operate.ledger import read_ledger
from service.operate.preview import Selection, choose
from service.operate.progress import Tracker
from service.operate.replay.request import ReplayRequest
from service.operate.sources import (
    Candidate,
    SourceKind,
    choose_outcomes,
    fetch,
    from_dead_letters,
    from_file,
    from_outcome_choices,
    from_returns,
    in_span,
)
from service.pipeline.plan import Planner
from service.settings import Settings


async def prepare(
    settings: Settings,
    request: ReplayRequest,
    *,
    planner: Planner,
    now: datetime,
    track: Tracker | None = None,
) -> Selection:
    """Read the source, the outcomes' history and the ledger, and decide the replay.

    ``track`` gives a progress callback per topic read. Publishes nothing.
    """
    kafka = settings.kafka
    filters = request.filters

    def progress(topic: str) -> Progress | None:
        return track(f"reading {topic}") if track is not None else None

    # Candidates first: a missing file or topic is reported before the long read.
    read = 0
    in_span_outcomes: list[TopicRecord] = []
    candidates: list[Candidate] = []
    label = f"outcomes ({kafka.outcomes_topic})"
    if request.source is SourceKind.FILE:
        assert request.file is not None
        candidates = from_file(request.file, filters)
        read = len(candidates)
        label = f"file {request.file.name}"
    # A wrong address, password or CA is named here, before the first read of a topic.
    options = await checked_options(kafka)
    if request.source in (SourceKind.DEAD_LETTERS, SourceKind.RETURNS):
        dead = request.source is SourceKind.DEAD_LETTERS
        topic = kafka.dead_letter_topic if dead else kafka.returns_topic
        records = [
            r async for r in read_span(options, topic, filters.span, progress=progress(topic))
        ]
        read = len(records)
        candidates = (from_dead_letters if dead else from_returns)(records, filters)
        label = f"{'dead letters' if dead else 'returns'} ({topic})"
    history = History()
    # Every outcome ever written for an event may show a give-back, wherever it is: the
    # whole outcomes topic is read once (the outcomes source is chosen from the same read).
    async for record in read_span(
        options, kafka.outcomes_topic, progress=progress(kafka.outcomes_topic)
    ):
        history.add(record)
        if request.source is SourceKind.OUTCOMES and in_span(record, filters.span):
            in_span_outcomes.append(record)
    if request.source is SourceKind.OUTCOMES:
        read = len(in_span_outcomes)
        choices = choose_outcomes(in_span_outcomes, filters)
        records_by_position = await fetch(options, [c.origin for c in choices if c.origin])
        candidates = from_outcome_choices(choices, records_by_position)
    # What the service did, item by item, and which returns were cancelled since: the
    # whole state topic (compacted: one state per event id the service still remembers).
    ledger = await read_ledger(options, kafka.state_topic, progress=progress(kafka.state_topic))
    return choose(
        candidates,
        history,
        planner,
        now,
        source=label,
        records_read=read,
        promotion=filters.promotion,
        include_done=request.include_done,
        allow_reissue=request.allow_reissue,
        ledger=ledger,
        include_cancelled=request.include_cancelled,
    )


__all__ = ["prepare"]
