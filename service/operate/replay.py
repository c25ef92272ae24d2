"""``return-handler replay``: re-drive chosen events through the running service.

The tool decides and publishes; the service executes. ``--execute`` publishes each chosen
event again to the returns topic, keyed by customer like any event, with the replay
headers (``pipeline/replays.py``). The running service handles it like any event (the
same validation, rules, rate limits and transaction) except that it is a deliberate
replay: not a duplicate, tried before, and the give-backs an earlier outcome or the ledger
shows as made are not made again. Its outcome says it is a replay, why, and which record it
re-drives.

The choice reads the ledger too (the state topic, ``ledger.py``): a return that a
cancellation gave back since is held back, since taking it back again would undo the
give-back, unless the operator asks for it (``--include-cancelled``; the record then carries
``rh-replay-allow-cancelled``).

Because the service makes the calls, a replay shares the service's own rate limiters: no
second client draws on Capillary's per-minute budget. The tool bounds its share with a
window: it publishes the next event only when an outcome of this replay came back and
fewer than ``window`` are waiting, so live events never queue behind a large replay, and
Ctrl-C stops it within one window.

A run has an id and a manifest (``manifest.py``) written before publishing starts;
``--resume ID`` asks Kafka which of its events were published and answered, and publishes
only the rest.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from service.clock import SystemClock
from service.errors import BrokerError, OperatorInputError, ReturnHandlerError
from service.events import ReturnEvent
from service.operate.connect import checked_options, client_options
from service.operate.history import History
from service.operate.ledger import read_ledger
from service.operate.manifest import (
    DEFAULT_STATE_DIR,
    Manifest,
    ManifestEntry,
    ReplayParameters,
    load,
    new_replay_id,
    save,
)
from service.operate.preview import Selection, choose, render_summary, summarise
from service.operate.read import Span, TopicRecord, read_span, topic_partitions
from service.operate.sources import (
    Candidate,
    Filters,
    SourceKind,
    candidate,
    choose_outcomes,
    fetch,
    from_dead_letters,
    from_file,
    from_outcome_choices,
    from_returns,
    in_span,
    parse_outcome,
)
from service.pipeline.process import Planner
from service.pipeline.replays import (
    REPLAY_ID_HEADER,
    REPLAY_SEQUENCE_HEADER,
    replay_headers,
)
from service.plan_display import render_plan
from service.policy_file import load_policy
from service.settings import Settings
from service.tools import key_for
from service.wiring import make_planner

T = TypeVar("T")

CLOCK_MARGIN = timedelta(minutes=5)
"""A resume reads the topics from this long before the run started: the service's and the
tool's clocks may differ."""

ReadProgress = Callable[[str, int, int], None]
"""Called with (what is being read, records read, records in range) while choosing."""


@dataclass(frozen=True)
class ReplayRequest:
    """What the operator asked for (the command line, checked)."""

    source: SourceKind
    reason: str
    filters: Filters = field(default_factory=Filters)
    file: Path | None = None
    include_done: bool = False
    allow_reissue: frozenset[str] = frozenset()
    offsets: tuple[str, ...] = ()
    """``--offsets`` as given, for the manifest."""
    include_cancelled: bool = False
    """Replay returns a cancellation gave back since, too (they are taken back again)."""


def make_request(
    *,
    source: SourceKind,
    reason: str | None,
    file: Path | None = None,
    filters: Filters | None = None,
    include_done: bool = False,
    allow_reissue: Sequence[str] = (),
    offsets: Sequence[str] = (),
    include_cancelled: bool = False,
) -> ReplayRequest:
    """Check the combination of options; one clear error for the first thing wrong."""
    filters = filters or Filters()
    if reason is None or not reason.strip():
        raise OperatorInputError(
            "--reason is required: say why these events are replayed (it goes into every outcome)",
            option="--reason",
        )
    topic_only = filters.span.since or filters.span.until or filters.span.offsets
    if source is SourceKind.FILE:
        if file is None:
            raise OperatorInputError("--source file needs --file PATH", option="--file")
        if topic_only:
            raise OperatorInputError(
                "--since, --until and --offsets select records of a topic, not lines of a file",
                option="--source",
            )
    elif file is not None:
        raise OperatorInputError("--file goes with --source file", option="--file")
    if filters.error_types and source is not SourceKind.DEAD_LETTERS:
        raise OperatorInputError(
            "--error-type selects dead letters: use it with --source dead-letters",
            option="--error-type",
        )
    if filters.statuses and source is not SourceKind.OUTCOMES:
        raise OperatorInputError(
            "--status selects outcomes: use it with --source outcomes", option="--status"
        )
    span = filters.span
    if span.since is not None and span.until is not None and span.since > span.until:
        raise OperatorInputError("--since is after --until", option="--since")
    return ReplayRequest(
        source=source,
        reason=reason.strip(),
        filters=filters,
        file=file.resolve() if file is not None else None,
        include_done=include_done,
        allow_reissue=frozenset(allow_reissue),
        offsets=tuple(offsets),
        include_cancelled=include_cancelled,
    )


async def prepare(
    settings: Settings,
    request: ReplayRequest,
    *,
    planner: Planner,
    now: datetime,
    progress: ReadProgress | None = None,
) -> Selection:
    """Read the source, the outcomes' history and the ledger, and decide the replay.

    Publishes nothing.
    """
    kafka = settings.kafka
    filters = request.filters

    def reading(what: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(what, done, total)

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
            r async for r in read_span(options, topic, filters.span, progress=reading(topic))
        ]
        read = len(records)
        candidates = (from_dead_letters if dead else from_returns)(records, filters)
        label = f"{'dead letters' if dead else 'returns'} ({topic})"
    history = History()
    # Every outcome ever written for an event may show a give-back, wherever it is: the
    # whole outcomes topic is read once (the outcomes source is chosen from the same read).
    async for record in read_span(
        options, kafka.outcomes_topic, progress=reading(kafka.outcomes_topic)
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
    ledger = await read_ledger(options, kafka.state_topic, progress=reading(kafka.state_topic))
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


def new_manifest(
    selection: Selection, request: ReplayRequest, settings: Settings, now: datetime
) -> Manifest:
    """The manifest of a new run of this selection (a new id)."""
    filters = request.filters
    return Manifest(
        replay_id=new_replay_id(),
        created_at=now,
        reason=request.reason,
        returns_topic=settings.kafka.returns_topic,
        outcomes_topic=settings.kafka.outcomes_topic,
        dead_letter_topic=settings.kafka.dead_letter_topic,
        parameters=ReplayParameters(
            source=request.source.value,
            file=str(request.file) if request.file is not None else None,
            since=filters.span.since,
            until=filters.span.until,
            offsets=list(request.offsets),
            error_types=sorted(filters.error_types),
            statuses=sorted(str(s) for s in filters.statuses),
            promotion=filters.promotion,
            event_ids=sorted(filters.event_ids),
            include_done=request.include_done,
            allow_reissue=sorted(request.allow_reissue),
            include_cancelled=request.include_cancelled,
        ),
        entries=[
            ManifestEntry(
                sequence=chosen.sequence,
                source=chosen.candidate.source,
                event_id=chosen.event.event_id,
                issued=sorted(chosen.issued),
                allow_reissue=chosen.allow_reissue,
                allow_cancelled=chosen.allow_cancelled,
            )
            for chosen in selection.chosen
        ],
    )


@dataclass(frozen=True)
class Outgoing:
    """One event as it is published for the service."""

    sequence: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def outgoing(
    manifest: Manifest, entry: ManifestEntry, event: ReturnEvent, value: bytes
) -> Outgoing:
    """The record that re-drives one entry: the event's bytes, keyed by customer, replay headers."""
    return Outgoing(
        sequence=entry.sequence,
        key=key_for(event),
        value=value,
        headers=replay_headers(
            replay_id=manifest.replay_id,
            reason=manifest.reason,
            source=entry.source,
            sequence=entry.sequence,
            issued=frozenset(entry.issued),
            allow_reissue=entry.allow_reissue,
            allow_cancelled=entry.allow_cancelled,
        ),
    )


def outgoing_of(manifest: Manifest, selection: Selection) -> list[Outgoing]:
    """The records of a new run, from the selection it was made of."""
    by_sequence = {chosen.sequence: chosen for chosen in selection.chosen}
    return [
        outgoing(
            manifest,
            entry,
            by_sequence[entry.sequence].event,
            by_sequence[entry.sequence].candidate.value,
        )
        for entry in manifest.entries
    ]


async def reload(settings: Settings, manifest: Manifest, sequences: set[int]) -> list[Outgoing]:
    """The records of a resumed run's entries, read again from where they were found.

    The bytes must still be the event the manifest names: a file edited since, or a
    record gone with the topic's retention, stops the resume with what to do.
    """
    entries = [e for e in manifest.entries if e.sequence in sequences]
    found: dict[str, bytes | None] = {}
    files = [e for e in entries if e.source.startswith("file:")]
    if files:
        path = Path(manifest.parameters.file or "")
        try:
            text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        except OSError as exc:
            raise OperatorInputError(
                f"{path} cannot be read to resume the replay: {exc}", file=str(path)
            ) from exc
        lines = text.splitlines()
        for entry in files:
            number = int(entry.source.rpartition(":")[2])
            found[entry.source] = lines[number - 1].encode() if number <= len(lines) else None
    records = await fetch(
        client_options(settings.kafka), [e.source for e in entries if e.source not in found]
    )
    found.update({position: record.value for position, record in records.items()})
    result = []
    for entry in entries:
        read = candidate(entry.source, found.get(entry.source))
        if read.event is None or read.event.event_id != entry.event_id:
            raise OperatorInputError(
                f"{entry.source} no longer holds event {entry.event_id} (sequence "
                f"{entry.sequence}); start a new replay of what is left instead",
                replay_id=manifest.replay_id,
            )
        result.append(outgoing(manifest, entry, read.event, read.value))
    return result


# --- running: publish within a window, count the answers ----------------------------------


class Publisher(Protocol):
    """Sends one replay record to the returns topic and waits for the broker's ack."""

    async def publish(self, item: Outgoing) -> None:
        """Publish ``item``."""


class Answers(Protocol):
    """What comes back for a replay's events: outcomes (and dead letters) by sequence."""

    def take(self) -> list[tuple[int, str]]:
        """(sequence, status) of the answers that came since the last call.

        The status is the outcome's, or ``dead_letter`` when the service refused the event.
        """
        ...

    async def wait(self, seconds: float) -> None:
        """Return when new answers arrived, or after ``seconds``."""


@dataclass(frozen=True)
class RunProgress:
    """Where a run is: what the progress bar shows."""

    answered: int
    published: int
    total: int


@dataclass
class RunResult:
    """How a run ended."""

    replay_id: str
    total: int
    answered: dict[int, str]
    published_now: int
    """Published by this run (a resume publishes only what was not yet)."""
    published: int = 0
    """Published by this run and the ones it resumes."""
    stopped: bool = False
    """Stopped on request (Ctrl-C) before every event was answered."""
    stalled: bool = False
    """No answer came for ``idle_seconds``: is the service running?"""

    @property
    def finished(self) -> bool:
        """Every event of the run has its answer."""
        return len(self.answered) >= self.total

    def by_status(self) -> Counter[str]:
        """Answers counted by status."""
        return Counter(self.answered.values())


async def drive(
    *,
    replay_id: str,
    sequences: Sequence[int],
    items: Sequence[Outgoing],
    published: set[int],
    publisher: Publisher,
    answers: Answers,
    window: int,
    stop: asyncio.Event,
    abandon: asyncio.Event | None = None,
    grace_seconds: float = 10.0,
    idle_seconds: float = 600.0,
    progress: Callable[[RunProgress], None] | None = None,
) -> RunResult:
    """Publish ``items`` in order, never more than ``window`` waiting for an answer.

    Returns when every sequence is answered; when ``stop`` is set (after waiting up to
    ``grace_seconds`` for what is in flight, or until ``abandon`` is set); or when nothing
    came back for ``idle_seconds`` while events were waiting.
    """
    if window < 1:
        raise OperatorInputError("--window must be at least 1", option="--window")
    wanted = set(sequences)
    queue = [item for item in items if item.sequence not in published]
    queue.reverse()  # popped from the end: first in first out
    published = set(published)
    done: dict[int, str] = {}
    # Kept up to date answer by answer: a run of a million events stays linear.
    waiting = set(published)
    published_now = 0
    last_change = time.monotonic()

    def take_answers() -> None:
        nonlocal last_change
        new = [(s, status) for s, status in answers.take() if s in wanted and s not in done]
        for sequence, status in new:
            done[sequence] = status
            # An answer proves its event was published, whatever the scan of returns found.
            published.add(sequence)
            waiting.discard(sequence)
        if new:
            last_change = time.monotonic()
            if progress is not None:
                progress(RunProgress(len(done), len(published), len(wanted)))

    def result(*, stopped: bool = False, stalled: bool = False) -> RunResult:
        return RunResult(
            replay_id, len(wanted), dict(done), published_now, len(published), stopped, stalled
        )

    while True:
        take_answers()
        if len(done) == len(wanted):
            return result()
        if stop.is_set():
            break
        while queue and len(waiting) < window and not stop.is_set():
            item = queue.pop()
            await publisher.publish(item)
            published.add(item.sequence)
            waiting.add(item.sequence)
            published_now += 1
            last_change = time.monotonic()
            if progress is not None:
                progress(RunProgress(len(done), len(published), len(wanted)))
        idle = time.monotonic() - last_change
        if idle >= idle_seconds:
            return result(stalled=True)
        await answers.wait(min(1.0, idle_seconds - idle))
    # Stopped: what is in flight gets a short grace to come back, then the run ends.
    deadline = time.monotonic() + grace_seconds
    while waiting and time.monotonic() < deadline:
        if abandon is not None and abandon.is_set():
            break
        await answers.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        take_answers()
    return result(stopped=len(done) < len(wanted))


class KafkaPublisher:
    """Publishes replay records with acks from every replica, idempotently."""

    def __init__(self, options: Mapping[str, Any], topic: str) -> None:
        self._producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
        self._topic = topic

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise BrokerError("cannot reach Kafka to publish the replay") from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def publish(self, item: Outgoing) -> None:
        try:
            await self._producer.send_and_wait(
                self._topic, value=item.value, key=item.key, headers=item.headers
            )
        except KafkaError as exc:
            raise BrokerError(
                "Kafka refused a replayed event", topic=self._topic, sequence=item.sequence
            ) from exc


class AnswerWatch:
    """Tails the outcomes and dead-letter topics for the answers to one replay.

    Outcomes name their replay (``replay.replay_id``, ``replay.sequence``); a replayed
    event the service dead-letters keeps its ``rh-replay-*`` headers. Committed records
    only, no consumer group: the tool commits nothing.
    """

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        outcomes_topic: str,
        dead_letter_topic: str,
        replay_id: str,
        since: datetime | None,
        fetch_timeout_ms: int = 200,
    ) -> None:
        self._consumer = AIOKafkaConsumer(
            **options,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        self._options = options
        self._outcomes = outcomes_topic
        self._dead = dead_letter_topic
        self._replay_id = replay_id
        self._marker = replay_id.encode()
        self._since = since
        self._fetch_timeout_ms = fetch_timeout_ms
        self._answered: dict[int, str] = {}
        self._new: list[tuple[int, str]] = []
        self._changed = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._ends: dict[TopicPartition, int] = {}
        self._task: asyncio.Task[None] | None = None
        self.extra_answers = 0
        """Answers beyond the first for one sequence (none expected: exactly once)."""

    @property
    def answered(self) -> Mapping[int, str]:
        """Every answer seen so far: sequence -> status."""
        return self._answered

    def take(self) -> list[tuple[int, str]]:
        """The answers that came since the last call."""
        new, self._new = self._new, []
        return new

    async def start(self) -> None:
        """Position on the topics (their ends, or ``since``) and start tailing."""
        consumer = self._consumer
        # Asked of the cluster: a consumer without a subscription knows no partitions.
        tps = [
            TopicPartition(topic, partition)
            for topic in (self._outcomes, self._dead)
            for partition in await topic_partitions(self._options, topic)
        ]
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise BrokerError("cannot reach Kafka to watch the replay's outcomes") from exc
        consumer.assign(tps)
        self._ends = await consumer.end_offsets(tps)
        starts = dict(self._ends)
        if self._since is not None:
            by_time = await consumer.offsets_for_times(
                {tp: int(self._since.timestamp() * 1000) for tp in tps}
            )
            for tp, found in by_time.items():
                if found is not None:
                    starts[tp] = found.offset
        for tp in tps:
            consumer.seek(tp, starts[tp])
        if all(starts[tp] >= self._ends[tp] for tp in tps):
            self._caught_up.set()
        self._task = asyncio.create_task(self._tail())

    async def caught_up(self) -> None:
        """Return once what the topics held at start has been read (a resume's past)."""
        while not self._caught_up.is_set():
            await self.wait(1.0)

    async def wait(self, seconds: float) -> None:
        """Return when new answers arrived, or after ``seconds``; raise if the watch failed."""
        if self._task is not None and self._task.done():
            self._task.result()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)
        self._changed.clear()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # Stopping: a failure of the watch was reported by wait() already.
            with suppress(asyncio.CancelledError, BrokerError):
                await self._task
        await self._consumer.stop()

    async def _tail(self) -> None:
        consumer = self._consumer
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=self._fetch_timeout_ms)
            except KafkaError as exc:
                raise BrokerError("lost Kafka while watching the replay's outcomes") from exc
            got = False
            for messages in batches.values():
                for message in messages:
                    got |= self._take(message.topic, message.value, tuple(message.headers or ()))
            if not self._caught_up.is_set():
                positions = [await consumer.position(tp) for tp in self._ends]
                if all(p >= end for p, end in zip(positions, self._ends.values(), strict=True)):
                    self._caught_up.set()
                    got = True
            if got:
                self._changed.set()

    def _take(
        self, topic: str, value: bytes | None, headers: tuple[tuple[str, bytes], ...]
    ) -> bool:
        if topic == self._dead:
            found = {k: v for k, v in headers}
            if found.get(REPLAY_ID_HEADER) != self._marker:
                return False
            try:
                sequence = int(found.get(REPLAY_SEQUENCE_HEADER, b""))
            except ValueError:
                return False
            return self._answer(sequence, "dead_letter")
        # Most outcomes are not this replay's: a byte search spares parsing them.
        if not value or self._marker not in value:
            return False
        outcome = parse_outcome(value)
        if outcome is None or outcome.replay is None or outcome.replay.replay_id != self._replay_id:
            return False
        return self._answer(outcome.replay.sequence, str(outcome.status))

    def _answer(self, sequence: int, status: str) -> bool:
        if sequence in self._answered:
            self.extra_answers += 1
            return False
        self._answered[sequence] = status
        self._new.append((sequence, status))
        return True


async def published_sequences(
    options: Mapping[str, Any], topic: str, replay_id: str, since: datetime
) -> set[int]:
    """Sequences of a replay already on the returns topic (read from ``since``)."""
    found: set[int] = set()
    async for record in read_span(options, topic, Span(since=since)):
        if record.header(REPLAY_ID_HEADER) != replay_id:
            continue
        try:
            found.add(int(record.header(REPLAY_SEQUENCE_HEADER) or ""))
        except ValueError:
            continue
    return found


async def run(
    settings: Settings,
    manifest: Manifest,
    *,
    items: Sequence[Outgoing] | None,
    window: int,
    stop: asyncio.Event,
    abandon: asyncio.Event | None = None,
    grace_seconds: float = 10.0,
    idle_seconds: float = 600.0,
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
    options = client_options(kafka)
    since = None if items is not None else manifest.created_at - CLOCK_MARGIN
    watch = AnswerWatch(
        options,
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
                options, manifest.returns_topic, manifest.replay_id, since
            )
            await watch.caught_up()
            published |= set(watch.answered)
            items = await reload(settings, manifest, set(sequences) - published)
        else:
            published = set()
        if ready is not None:
            answered = len([s for s in watch.answered if s in set(sequences)])
            ready(RunProgress(answered, len(published), len(sequences)))
        publisher = KafkaPublisher(options, manifest.returns_topic)
        await publisher.start()
        try:
            return await drive(
                replay_id=manifest.replay_id,
                sequences=sequences,
                items=items,
                published=published,
                publisher=publisher,
                answers=watch,
                window=window,
                stop=stop,
                abandon=abandon,
                grace_seconds=grace_seconds,
                idle_seconds=idle_seconds,
                progress=progress,
            )
        finally:
            await publisher.stop()
    finally:
        await watch.stop()


# --- the command ----------------------------------------------------------------------------


async def main(
    settings: Settings,
    *,
    request: ReplayRequest | None,
    resume: str | None,
    execute: bool,
    show: int,
    as_json: bool,
    window: int,
    state_dir: Path,
    grace_seconds: float,
    idle_seconds: float,
    out: Console,
    err: Console,
    stop: asyncio.Event,
    abandon: asyncio.Event | None = None,
) -> int:
    """``return-handler replay``: preview, or preview then run, or resume. Returns the exit code.

    0: previewed, or every event answered. 2: the command cannot be done as asked (nothing
    touched). 130: stopped by Ctrl-C (resumable). 1: Kafka does not answer, or no outcome
    came back.
    """
    items: list[Outgoing] | None = None
    try:
        if resume is not None:
            manifest = load(state_dir, resume)
            await checked_options(settings.kafka)
            out.print(
                f"Resuming replay {manifest.replay_id} of {len(manifest.entries)} event(s) "
                f"from {manifest.parameters.source}, started {manifest.created_at:%Y-%m-%d %H:%M} "
                f"UTC: {manifest.reason}",
                highlight=False,
            )
        else:
            assert request is not None
            now = SystemClock().now()
            selection = await _preview(
                settings, request, now, show=show, as_json=as_json, out=out, err=err, stop=stop
            )
            if selection is None:
                err.print("Interrupted while reading: nothing was published.")
                return 130
            if not execute:
                if not as_json:
                    then = (
                        f"Add --execute to replay these {len(selection.chosen)} event(s) "
                        "through the running service."
                        if selection.chosen
                        else "Nothing to replay with these options."
                    )
                    out.print(
                        f"\nPreview only: nothing was called or published. {then}",
                        highlight=False,
                    )
                return 0
            if not selection.chosen:
                raise OperatorInputError(
                    "nothing to replay: every selected record is invalid, repeated, done or "
                    "held back as cancelled since (--include-done replays done ones, "
                    "--include-cancelled cancelled ones)"
                )
            manifest = new_manifest(selection, request, settings, now)
            path = save(manifest, state_dir)
            items = outgoing_of(manifest, selection)
            out.print(
                f"\nReplay {manifest.replay_id}: {len(items)} event(s) to "
                f"{manifest.returns_topic}, at most {window} waiting for their outcome; "
                f"manifest {path}",
                highlight=False,
            )
    except ReturnHandlerError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        # As the other tools: 1 when Kafka does not answer, 2 for what the command asked.
        return 1 if isinstance(exc, BrokerError) else 2
    resume_hint = f"return-handler replay --resume {manifest.replay_id}"
    if state_dir != DEFAULT_STATE_DIR:
        resume_hint += f" --state-dir {state_dir}"
    try:
        result = await _run_with_bar(
            settings,
            manifest,
            items,
            err,
            window=window,
            stop=stop,
            abandon=abandon,
            grace_seconds=grace_seconds,
            idle_seconds=idle_seconds,
        )
    except ReturnHandlerError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        err.print(f"The replay can go on later: {resume_hint}", highlight=False, soft_wrap=True)
        return 2 if isinstance(exc, OperatorInputError) else 1
    statuses = ", ".join(f"{status} {n}" for status, n in sorted(result.by_status().items()))
    answered = f"{len(result.answered)} of {result.total} answered ({statuses or 'none yet'})"
    if result.finished:
        out.print(
            f"Replay {result.replay_id} done: {answered}; {result.published_now} published "
            "by this run. `return-handler outcomes` shows them.",
            highlight=False,
        )
        return 0
    if result.stalled:
        err.print(
            f"No outcome came back for {idle_seconds:.0f} s: is `return-handler run` running "
            f"against {manifest.returns_topic}? {answered}. Resume with: {resume_hint}",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    waiting = result.published - len(result.answered)
    out.print(
        f"Replay {result.replay_id} stopped: {answered}; {waiting} published and waiting for "
        f"the service, {result.total - result.published} not published. "
        f"Resume with: {resume_hint}",
        highlight=False,
    )
    return 130


async def _preview(
    settings: Settings,
    request: ReplayRequest,
    now: datetime,
    *,
    show: int,
    as_json: bool,
    out: Console,
    err: Console,
    stop: asyncio.Event,
) -> Selection | None:
    """Decide the replay and print its summary (and the first plans); ``None``: interrupted."""
    planner = make_planner(load_policy(settings.policy_path))
    with _reading(err) as reading:
        selection = await _unless_stopped(
            prepare(settings, request, planner=planner, now=now, progress=reading), stop
        )
    if selection is None:
        return None
    if selection.selected == 0:
        raise OperatorInputError(
            f"nothing selected: no record of {selection.source} matched the filters "
            f"({selection.records_read} read); widen --since/--until/--offsets or check the ids"
        )
    summary = summarise(selection)
    if as_json:
        sys.stdout.write(summary.model_dump_json(indent=2) + "\n")
        return selection
    limits = settings.capillary.rate_limits if settings.capillary else None
    out.print(render_summary(summary, limits))
    for chosen in selection.chosen[:show]:
        kept = f"; not made again: {', '.join(chosen.kept_back)}" if chosen.kept_back else ""
        if chosen.allow_cancelled:
            kept += "; taken back again although a cancellation gave it back since"
        out.print(f"\n#{chosen.sequence} from {chosen.candidate.source}{kept}", highlight=False)
        out.print(render_plan(chosen.plan))
    return selection


async def _run_with_bar(
    settings: Settings,
    manifest: Manifest,
    items: list[Outgoing] | None,
    console: Console,
    *,
    window: int,
    stop: asyncio.Event,
    abandon: asyncio.Event | None,
    grace_seconds: float,
    idle_seconds: float,
) -> RunResult:
    """:func:`run` with the progress bar: outcomes back of the total, rate, time left."""
    bar = progress_bar(console)
    with bar:
        task = bar.add_task(
            f"replay {manifest.replay_id[:8]}", total=len(manifest.entries), published=0
        )

        def ready(where: RunProgress) -> None:
            # A resume starts part-way: the bar's rate counts only what this run sees.
            bar.reset(task, completed=where.answered, total=where.total, published=where.published)

        def moved(where: RunProgress) -> None:
            bar.update(task, completed=where.answered, published=where.published)

        return await run(
            settings,
            manifest,
            items=items,
            window=window,
            stop=stop,
            abandon=abandon,
            grace_seconds=grace_seconds,
            idle_seconds=idle_seconds,
            progress=moved,
            ready=ready,
        )


async def _unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or ``None`` when ``stop`` is set first (``work`` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
    return None


@contextmanager
def _reading(console: Console) -> Iterator[ReadProgress]:
    """A transient bar per topic while the source, the outcomes and the ledger are read."""
    bars = Progress(
        TextColumn("reading {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, TaskID] = {}
    if not console.is_terminal:
        # Piped or logged: a bar that vanishes would only leave a blank line behind.
        yield lambda what, done, total: None
        return

    def update(what: str, done: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = bars.add_task(what, total=total)
        bars.update(tasks[what], completed=done, total=total)

    with bars:
        yield update


# --- the progress bar -----------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Outcomes a second, over the bar's recent past."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} ev/s" if speed else "-- ev/s", style="progress.data.speed")


def progress_bar(console: Console) -> Progress:
    """The bar of a running replay: outcomes back of the total, rate, time left."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("published {task.fields[published]}"),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    )


__all__ = [
    "AnswerWatch",
    "KafkaPublisher",
    "Outgoing",
    "ReplayRequest",
    "RunProgress",
    "RunResult",
    "drive",
    "main",
    "make_request",
    "new_manifest",
    "outgoing",
    "outgoing_of",
    "prepare",
    "progress_bar",
    "published_sequences",
    "reload",
    "run",
]
