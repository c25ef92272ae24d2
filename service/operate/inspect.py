"""``return-handler inspect``: every outcome recorded for one order or event, and its ledger.

For support and operators: what was taken back or given back for an order, why, what
Capillary answered item by item, and the request ids a support ticket needs. The match is
exact, on the event id or the order id; an order returned twice has two events, and an
event handled twice (a duplicate delivery, a replay) has two outcomes: all of them show,
newest first.

Then the ledger (the state topic, ``ledger.py``): what the service holds as done for the
order, event by event, across attempts and replays: what each return took back with
Capillary's code, and what each cancellation gave back in its place, with the new earn and
issual ids. It is what a later cancellation or replay of the order is decided from.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from service.kafka.span import Progress, Span
from service.ledger import GIVE_BACK_KINDS, LedgerEntry, LedgerItem
from service.operate.ledger import LedgerBook, read_ledger
from service.operate.outcomes import OutcomePosition, Skipped, read_outcomes
from service.operate.progress import reading
from service.outcome import ActionResult, ActionStatus, ItemResult, OutcomeEvent, OutcomeStatus
from service.pipeline.state import EventState


class FoundOutcome(BaseModel):
    """One outcome of the id asked for, with where it lies: a line of ``inspect --json``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    position: OutcomePosition
    """Where the outcome lies in the outcomes topic."""
    outcome: OutcomeEvent
    """The outcome as published."""


def matches(outcome: OutcomeEvent, wanted: str) -> bool:
    """True when ``wanted`` is the outcome's event id or order id, exactly."""
    return wanted in (outcome.event.event_id, outcome.event.order_id)


def newest_first(found: Iterable[FoundOutcome]) -> list[FoundOutcome]:
    """Newest processed first; the topic position breaks ties, so the order is stable."""
    return sorted(
        found,
        key=lambda f: (
            f.outcome.processed_at,
            f.position.written_at,
            f.position.partition,
            f.position.offset,
        ),
        reverse=True,
    )


async def find_outcomes(
    client_options: Mapping[str, Any],
    topic: str,
    wanted: str,
    span: Span | None = None,
    *,
    skipped: Skipped | None = None,
    progress: Progress | None = None,
) -> list[FoundOutcome]:
    """Every outcome of ``wanted`` (event id or order id) in ``span`` of ``topic``, newest first.

    ``span``: default, the whole topic.
    """
    found = [
        FoundOutcome(position=position, outcome=outcome)
        async for position, outcome in read_outcomes(
            client_options, topic, span, skipped=skipped, progress=progress
        )
        if matches(outcome, wanted)
    ]
    return newest_first(found)


def nothing_found(
    wanted: str, topic: str, since: datetime | None, state_topic: str | None = None
) -> str:
    """The one line saying nothing matched, and what to check."""
    where = f"since {_when(since)}" if since is not None else "in the whole topic"
    if state_topic is None:
        return (
            f"no outcome for {wanted!r} in {topic} ({where}). Check the id (an event id or an "
            "order id, exact and case-sensitive), the topic "
            "(RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC) and --since."
        )
    return (
        f"no outcome for {wanted!r} in {topic} ({where}) and no ledger entry in {state_topic}. "
        "Check the id (an event id or an order id, exact and case-sensitive), the topics "
        "(RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC, RETURN_HANDLER_KAFKA__STATE_TOPIC) and --since."
    )


def ledger_of(book: LedgerBook, wanted: str) -> list[EventState]:
    """The states whose ledger tells of ``wanted``, oldest first.

    For an order id: every event of the order. For an event id: that event, and its
    return (a cancellation) or its cancellations (a return); the same for an id that is
    both.
    """
    ids = [entry.event_id for entry in book.of_order(wanted)]
    entry = book.entry(wanted)
    if entry is not None:
        ids.append(wanted)
        if entry.cancels is not None:
            ids.append(entry.cancels)
    ids += book.cancellations(wanted)
    states = [book.state(event_id) for event_id in dict.fromkeys(ids)]
    found = [s for s in states if s is not None and s.ledger is not None]
    return sorted(found, key=lambda s: (s.at, s.event_id))


class FoundLedger(BaseModel):
    """The ledger entries of the id asked for: the last line of ``inspect --json``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    ledger: list[LedgerEntry]
    """What each event of the order did, item by item, oldest first."""


def ledger_json_line(states: Iterable[EventState]) -> str:
    """The last line of ``inspect --json``: ``{"ledger": [entry, ...]}``."""
    entries = [state.ledger for state in states if state.ledger is not None]
    return FoundLedger(ledger=entries).model_dump_json()


_OUTCOME_STYLE = {
    OutcomeStatus.COMPLETED: "green",
    OutcomeStatus.FAILED: "bold red",
    OutcomeStatus.DUPLICATE: "cyan",
    OutcomeStatus.NEEDS_CHECK: "bold yellow",
    OutcomeStatus.RETURN_UNKNOWN: "bold magenta",
}

_ACTION_STYLE = {
    ActionStatus.REVOKED: "green",
    ActionStatus.RESTORED: "green",
    ActionStatus.ALREADY_REVOKED: "cyan",
    ActionStatus.ALREADY_RESTORED: "cyan",
    ActionStatus.REFUSED_REDEEMED: "yellow",
    ActionStatus.KEPT: "yellow",
    ActionStatus.NOT_FOUND: "yellow",
    ActionStatus.REFUSED: "yellow",
    ActionStatus.UNCONFIRMED: "bold yellow",
    ActionStatus.FAILED: "bold red",
    ActionStatus.SKIPPED: "dim",
}


def render(found: FoundOutcome) -> RenderableType:
    """One outcome for people: a title line, then the outcome's facts, then each action."""
    outcome, event = found.outcome, found.outcome.event
    who = (
        f" · customer {event.customer_id}"
        if event.customer_id is not None
        else f" · customer ext {event.customer_external_id}"
        if event.customer_external_id
        else ""
    )
    title = f"{event.event_id} · order {event.order_id}{who}"
    grid = Table.grid(padding=(0, 2))
    # One label width for every outcome, so a page of them reads as one column.
    grid.add_column(style="dim", no_wrap=True, min_width=len("  request ids"))
    grid.add_column(overflow="fold")
    # .get: a status added later still shows, unstyled, rather than stop the command.
    status = Text(outcome.status.value, style=_OUTCOME_STYLE.get(outcome.status, "bold"))
    status.append(f" · {outcome.decision} · {event.return_type}", style="default")
    if outcome.attempt > 1:
        status.append(f" · attempt {outcome.attempt}", style="default")
    grid.add_row("processed", _when(outcome.processed_at))
    grid.add_row("status", status)
    grid.add_row("summary", outcome.summary)
    input_record = event.record
    grid.add_row(
        "input",
        f"{input_record.topic}:{input_record.partition}:{input_record.offset}"
        if input_record is not None
        else "(not recorded)",
    )
    grid.add_row("outcome", f"{found.position} (written {_when(found.position.written_at)})")
    grid.add_row("replay", _replay(outcome))
    if outcome.duplicate_of is not None:
        grid.add_row("duplicate of", _duplicate_of(outcome))
    if outcome.replay_warning:
        grid.add_row("warning", Text(outcome.replay_warning, style="yellow"))
    grid.add_row("policy", outcome.policy_version)
    if not outcome.actions:
        grid.add_row("actions", "none (nothing was called)")
    for number, action in enumerate(outcome.actions, start=1):
        _add_action(grid, number, action)
    # A plain bold line, not a rule with the title in it: a rule cuts a long title short.
    return Group(Text(title, style="bold", overflow="fold"), grid)


def _add_action(grid: Table, number: int, action: ActionResult) -> None:
    head = Text(f"{action.kind}  ")
    head.append(action.status.value, style=_ACTION_STYLE.get(action.status, "bold"))
    if action.broad:
        head.append("  (broad: reaches beyond this order)", style="yellow")
    grid.add_row(f"action {number}", head)
    grid.add_row("  why", f"{action.reason} ({action.reason_code})")
    for index, item in enumerate(action.items):
        grid.add_row("  items" if index == 0 else "", _item(item))
    if action.request_ids:
        grid.add_row("  request ids", ", ".join(action.request_ids))
    elif action.attempts == 0:
        grid.add_row("  request ids", Text("none (no call was made)", style="dim"))
    if action.next_step:
        grid.add_row("  next step", Text(action.next_step, style="bold"))


def _item_head(name: str, status: ActionStatus, code: int | None) -> Text:
    """``name  status  code N``: how an item starts, in an outcome and in the ledger."""
    text = Text(f"{name}  ")
    text.append(status.value, style=_ACTION_STYLE.get(status, "bold"))
    if code is not None:
        text.append(f"  code {code}")
    return text


def _item(item: ItemResult) -> Text:
    text = _item_head(item.item, item.status, item.code)
    if item.attempt is not None:
        # An earlier attempt of this event got this result (the retry path).
        text.append(f"  attempt {item.attempt}", style="dim")
    for key, value in sorted(item.detail.items()):
        text.append(f"  {key}={value}", style="bold" if key == "clawback" else "default")
    if not item.asked:
        text.append("  (not asked: Capillary changed it beyond what was sent)", style="yellow")
    if item.message:
        # Quoted: Capillary's words ("revoked", "done") would read as one more status.
        text.append(f'  "{item.message}"', style="dim")
    return text


def _replay(outcome: OutcomeEvent) -> str:
    replay = outcome.replay
    if replay is None:
        return "no"
    of = f" of {replay.of.topic}:{replay.of.partition}:{replay.of.offset}" if replay.of else ""
    reissue = "; re-issue allowed" if replay.reissue_allowed else ""
    return (
        f"yes: {replay.reason!r} (replay {replay.replay_id} #{replay.sequence}{of}, "
        f"from {replay.source}{reissue})"
    )


def _duplicate_of(outcome: OutcomeEvent) -> str:
    first = outcome.duplicate_of
    assert first is not None
    where = (
        f"outcome partition {first.outcome_partition} offset {first.outcome_offset}"
        if first.outcome_partition is not None and first.outcome_offset is not None
        else "an outcome not written yet (the first delivery was still being retried)"
    )
    status = f", {first.status}" if first.status is not None else ""
    return (
        f"{where}{status}; first delivery: input partition {first.input_partition} "
        f"offset {first.input_offset}"
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_ledger(
    states: list[EventState], book: LedgerBook, wanted: str, state_topic: str
) -> RenderableType:
    """The ledger section: per event, what it took back and what it gave back, and by whom."""
    title = Text(f"Ledger of {wanted} ({state_topic})", style="bold")
    if not states:
        return Group(
            title,
            Text(
                "  no entry: forgotten after the dedupe window, or handled before the ledger "
                "existed",
                style="dim",
            ),
        )
    parts: list[RenderableType] = [title]
    for state in states:
        entry = state.ledger
        assert entry is not None  # ledger_of keeps only states with a ledger
        head = Text(f"{entry.event_id} · {entry.return_type}", style="bold")
        head.append(f" · {state.phase} {_when(state.at)}", style="default")
        if state.attempt > 1:
            head.append(f" · attempt {state.attempt}", style="default")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True, min_width=len("  cancelled by"))
        grid.add_column(overflow="fold")
        if entry.cancels is not None:
            first = book.first_cancellation(entry.cancels)
            grid.add_row(
                "  cancels",
                f"{entry.cancels} (gives back what it took)"
                if first in (None, entry.event_id)
                else f"{entry.cancels} (after {first}: gives nothing back again)",
            )
        cancellations = book.cancellations(entry.event_id)
        for index, by in enumerate(cancellations):
            note = (
                "first: gives back what this took back"
                if index == 0
                else f"after {cancellations[0]}: gives nothing back again"
            )
            grid.add_row("  cancelled by", f"{by} ({note})")
        rows = [(_ledger_label(item), _ledger_item(item)) for item in entry.items]
        for label, text in sorted(rows, key=lambda row: _LABEL_ORDER.index(row[0])):
            grid.add_row(f"  {label}", text)
        if not entry.items:
            grid.add_row("  items", Text("none (no call reached Capillary)", style="dim"))
        parts += [head, grid]
    return Group(*parts)


# What kind of call touched the item; its status says how it ended.
_LABEL_ORDER = ("take back", "give back", "reported")


def _ledger_label(item: LedgerItem) -> str:
    if item.kind in GIVE_BACK_KINDS:
        return "give back"
    if item.kind == "report":
        return "reported"
    return "take back"


def _ledger_item(item: LedgerItem) -> Text:
    text = _item_head(item.item, item.status, item.code)
    if item.replaces is not None:
        text.append(f"  replaces {item.replaces}")
    if item.earned_id is not None:
        text.append(f"  earned_id={item.earned_id}", style="bold")
    if item.issual_id is not None:
        text.append(f"  issual_id={item.issual_id}")
    if item.report_kind is not None:
        text.append(f"  ({item.report_kind})")
    if item.attempt > 1:
        text.append(f"  attempt {item.attempt}", style="dim")
    return text


def as_json_line(found: FoundOutcome) -> str:
    """One line of ``inspect --json``: the position and the outcome as published."""
    return found.model_dump_json()


async def show(
    client_options: Mapping[str, Any],
    topics: tuple[str, str],
    wanted: str,
    since: datetime | None,
    *,
    as_json: bool,
    out: Console,
    err: Console,
) -> bool:
    """Read the outcomes and state ``topics``; print what they hold of ``wanted``.

    False, with nothing printed, when neither has anything of it (``nothing_found`` says so).
    """
    topic, state_topic = topics
    skipped = Skipped()
    with reading(err, f"reading {topic}") as progress:
        found = await find_outcomes(
            client_options, topic, wanted, Span(since=since), skipped=skipped, progress=progress
        )
    with reading(err, f"reading {state_topic}") as progress:
        book = await read_ledger(client_options, state_topic, progress=progress)
    for what, count in (("outcomes", skipped), ("event states", book.skipped)):
        if count.count:
            err.print(
                f"warning: {count.count} record(s) skipped, not {what} this version reads; "
                f"first: {count.examples[0]}",
                markup=False,
                soft_wrap=True,
            )
    states = ledger_of(book, wanted)
    # An order the ledger knows is found, even when its outcomes are gone (retention, --since).
    if not found and not states:
        return False
    for one in found:
        if as_json:
            sys.stdout.write(as_json_line(one) + "\n")
        else:
            out.print(render(one), highlight=False)
            out.print()
    if as_json:
        sys.stdout.write(ledger_json_line(states) + "\n")
        return True
    out.print(render_ledger(states, book, wanted, state_topic), highlight=False)
    err.print(
        f"{len(found)} outcome(s) of {wanted!r} in {topic}, newest first; "
        f"{len(states)} ledger entry(ies) in {state_topic}",
        markup=False,
    )
    return True


__all__ = [
    "FoundLedger",
    "FoundOutcome",
    "as_json_line",
    "find_outcomes",
    "ledger_json_line",
    "ledger_of",
    "matches",
    "newest_first",
    "nothing_found",
    "render",
    "render_ledger",
    "show",
]
