"""Running a replay: within its window, stopped and resumed, publishing nothing twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.errors import OperatorInputError
from service.events import ReturnEvent
from service.kafka.span import Span
from service.operate.replay import (
    Outgoing,
    ReplayCommand,
    ReplayRequest,
    RunOptions,
    RunProgress,
    drive,
    outgoing,
)
from service.operate.replay.manifest import Manifest, ManifestEntry, ReplayParameters
from service.operate.sources import Filters, SourceKind
from service.outcome import OutcomeStatus
from service.pipeline.records import Record
from service.pipeline.replays import replay_of
from tests.factories import event_bytes


class StandIn:
    """The running service as the replay sees it: what is published gets an outcome."""

    def __init__(self, per_wait: int = 1) -> None:
        self.per_wait = per_wait
        self.answering = True
        self.published: list[int] = []
        self._waiting: list[int] = []
        self._answered: list[tuple[int, str]] = []
        self.history: list[tuple[int, str]] = []
        self.most_waiting = 0

    async def publish(self, item: Outgoing) -> None:
        self.published.append(item.sequence)
        self._waiting.append(item.sequence)
        self.most_waiting = max(self.most_waiting, len(self._waiting))

    def take(self) -> list[tuple[int, str]]:
        new, self._answered = self._answered, []
        return new

    def watch_again(self) -> None:
        """A new watcher (a resume) reads every answer of the replay from the start again."""
        self._answered = list(self.history)

    async def wait(self, seconds: float) -> None:
        if not self.answering:
            await asyncio.sleep(seconds)  # nothing comes back: the time passes
            return
        for sequence in self._waiting[: self.per_wait]:
            self._answered.append((sequence, "completed"))
            self.history.append((sequence, "completed"))
        del self._waiting[: self.per_wait]
        await asyncio.sleep(0)


def _items(count: int) -> list[Outgoing]:
    return [Outgoing(n, b"k", b"v", []) for n in range(1, count + 1)]


async def test_a_run_never_has_more_than_its_window_waiting_and_ends_when_all_answered() -> None:
    service = StandIn()
    seen: list[RunProgress] = []
    result = await drive(
        replay_id="r",
        sequences=range(1, 21),
        items=_items(20),
        published=set(),
        publisher=service,
        answers=service,
        progress=seen.append,
        options=RunOptions(window=3),
    )
    assert result.finished
    assert not result.stopped
    assert result.published_now == 20
    assert service.most_waiting == 3
    assert service.published == list(range(1, 21))
    assert seen[-1] == RunProgress(answered=20, published=20, total=20)


async def test_a_stopped_run_resumes_and_publishes_each_event_once() -> None:
    service = StandIn()
    stop = asyncio.Event()

    def stop_after_five(where: RunProgress) -> None:
        if where.answered >= 5:
            stop.set()

    first = await drive(
        replay_id="r",
        sequences=range(1, 13),
        items=_items(12),
        published=set(),
        publisher=service,
        answers=service,
        progress=stop_after_five,
        options=RunOptions(window=2, stop=stop, grace_seconds=5),
    )
    assert first.stopped
    assert not first.finished
    # Stopped within a window; what was in flight came back during the grace.
    assert 5 <= len(first.answered) <= 7
    assert len(service.published) == len(first.answered)

    service.watch_again()
    second = await drive(
        replay_id="r",
        sequences=range(1, 13),
        items=_items(12),
        published=set(service.published),
        publisher=service,
        answers=service,
        options=RunOptions(window=2),
    )
    assert second.finished
    assert second.published_now == 12 - len(first.answered)
    assert Counter(service.published) == Counter(range(1, 13))


async def test_a_run_with_no_answer_coming_back_gives_up_as_stalled() -> None:
    service = StandIn()
    service.answering = False
    result = await drive(
        replay_id="r",
        sequences=[1, 2],
        items=_items(2),
        published=set(),
        publisher=service,
        answers=service,
        options=RunOptions(window=1, idle_seconds=0.05),
    )
    assert result.stalled
    assert service.published == [1]


async def test_a_second_interrupt_ends_the_grace_at_once() -> None:
    service = StandIn()
    service.answering = False
    stop, abandon = asyncio.Event(), asyncio.Event()
    stop.set()
    abandon.set()
    result = await drive(
        replay_id="r",
        sequences=[1],
        items=_items(1),
        published={1},
        publisher=service,
        answers=service,
        options=RunOptions(window=1, stop=stop, abandon=abandon, grace_seconds=60),
    )
    assert result.stopped
    assert result.published == 1


def test_the_published_record_carries_the_replay_contract_the_service_reads() -> None:
    event = ReturnEvent.model_validate_json(event_bytes(event_id="evt-9"))
    manifest = Manifest(
        replay_id="0" * 32,
        created_at=datetime(2026, 11, 25, tzinfo=UTC),
        reason="cart closed",
        returns_topic="returns",
        outcomes_topic="outcomes",
        dead_letter_topic="dead",
        parameters=ReplayParameters(source="outcomes"),
        entries=[],
    )
    entry = ManifestEntry(
        sequence=4,
        source="returns:1:7",
        event_id="evt-9",
        issued=["issue"],
        allow_reissue=True,
        allow_cancelled=True,
    )
    item = outgoing(manifest, entry, event, b"{}")
    assert item.key == b"555567088"  # by customer, as the service's producers key events
    replay = replay_of(
        Record(
            topic="returns", partition=0, offset=0, key=None, value=b"", headers=tuple(item.headers)
        )
    )
    assert replay is not None
    assert (replay.replay_id, replay.reason, replay.source, replay.sequence) == (
        "0" * 32,
        "cart closed",
        "returns:1:7",
        4,
    )
    assert replay.issued == frozenset({"issue"})
    assert replay.allow_reissue
    assert replay.allow_cancelled
    # Without --include-cancelled nothing says so: the service holds a cancelled return back.
    plain = outgoing(manifest, entry.model_copy(update={"allow_cancelled": False}), event, b"{}")
    assert "rh-replay-allow-cancelled" not in dict(plain.headers)


def test_a_request_refuses_what_cannot_be_done(tmp_path: Path) -> None:
    when = datetime(2026, 11, 25, tzinfo=UTC)
    cases: list[tuple[dict[str, object], str]] = [
        ({"source": SourceKind.RETURNS, "reason": "  "}, "--reason is required"),
        ({"source": SourceKind.FILE, "reason": "x"}, "needs --file"),
        (
            {
                "source": SourceKind.FILE,
                "reason": "x",
                "file": tmp_path,
                "filters": Filters(span=Span(since=when)),
            },
            "not lines of a file",
        ),
        ({"source": SourceKind.RETURNS, "reason": "x", "file": tmp_path}, "--file goes with"),
        (
            {
                "source": SourceKind.RETURNS,
                "reason": "x",
                "filters": Filters(error_types=frozenset({"empty"})),
            },
            "--error-type",
        ),
        (
            {
                "source": SourceKind.RETURNS,
                "reason": "x",
                "filters": Filters(statuses=frozenset({OutcomeStatus.FAILED})),
            },
            "--status",
        ),
    ]
    for options, message in cases:
        with pytest.raises(OperatorInputError, match=message):
            ReplayRequest(**options)  # type: ignore[arg-type]
    request = ReplayRequest(source=SourceKind.FILE, reason=" why ", file=tmp_path / "f.jsonl")
    assert request.reason == "why"
    assert request.file is not None
    assert request.file.is_absolute()


def test_the_command_line_is_checked_once_each_error_naming_its_option() -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"reason": "x"}, "--source is required"),
        ({"source": SourceKind.RETURNS, "reason": "x", "window": 0}, "--window must be at least 1"),
        ({"source": SourceKind.RETURNS, "reason": "x", "as_json": True, "execute": True}, "--json"),
        ({"source": SourceKind.RETURNS, "reason": "x", "since": "soon"}, "--since 'soon'"),
        ({"source": SourceKind.RETURNS, "reason": "x", "offsets": ["0:9-1"]}, "FROM is after TO"),
        (
            {
                "source": SourceKind.RETURNS,
                "reason": "x",
                "since": "2026-11-26",
                "until": "2026-11-25",
            },
            "give the earlier time to --since",
        ),
        ({"resume": "a" * 32, "reason": "x"}, "leave out --source, --reason"),
    ]
    for options, message in cases:
        with pytest.raises(OperatorInputError, match=message) as raised:
            ReplayCommand.from_options(**options)  # type: ignore[arg-type]
        assert str(raised.value).endswith(OperatorInputError.next_step)
    command = ReplayCommand.from_options(
        source=SourceKind.DEAD_LETTERS,
        reason="fixed",
        error_types=["invalid_event"],
        offsets=["0:1-5"],
        window=7,
        grace_seconds=2.0,
    )
    assert command.request is not None
    assert command.request.filters.error_types == frozenset({"invalid_event"})
    assert command.request.filters.span.offsets == {0: (1, 5)}
    assert command.request.offsets == ("0:1-5",)
    assert (command.run.window, command.run.grace_seconds, command.resume) == (7, 2.0, None)
    resumed = ReplayCommand.from_options(resume="a" * 32, window=3)
    assert (resumed.request, resumed.resume, resumed.run.window) == (None, "a" * 32, 3)
