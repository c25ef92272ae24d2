"""``return-handler inspect``: every outcome recorded for one order or event, newest first.

For support and operators: what was taken back or given back for an order, why, what
Capillary answered item by item, and the request ids a support ticket needs. The match is
exact, on the event id or the order id; an order returned twice has two events, and an
event handled twice (a duplicate delivery, a replay) has two outcomes: all of them show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from service.operate.outcomes import OutcomePosition, Skipped, read_outcomes
from service.operate.read import Progress, Span
from service.outcome import ActionResult, ActionStatus, ItemResult, OutcomeEvent, OutcomeStatus


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


def nothing_found(wanted: str, topic: str, since: datetime | None) -> str:
    """The one line saying nothing matched, and what to check."""
    where = f"since {_when(since)}" if since is not None else "in the whole topic"
    return (
        f"no outcome for {wanted!r} in {topic} ({where}). Check the id (an event id or an order "
        "id, exact and case-sensitive), the topic (RETURN_HANDLER_KAFKA__OUTCOMES_TOPIC) and "
        "--since."
    )


_OUTCOME_STYLE = {
    OutcomeStatus.COMPLETED: "green",
    OutcomeStatus.FAILED: "bold red",
    OutcomeStatus.DUPLICATE: "cyan",
    OutcomeStatus.NEEDS_CHECK: "bold yellow",
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
    status = Text(outcome.status.value, style=_OUTCOME_STYLE[outcome.status])
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
    head.append(action.status.value, style=_ACTION_STYLE[action.status])
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


def _item(item: ItemResult) -> Text:
    text = Text(f"{item.item}  ")
    text.append(item.status.value, style=_ACTION_STYLE[item.status])
    if item.code is not None:
        text.append(f"  code {item.code}")
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


def as_json_line(found: FoundOutcome) -> str:
    """One line of ``inspect --json``: the position and the outcome as published."""
    return found.model_dump_json()


__all__ = [
    "FoundOutcome",
    "as_json_line",
    "find_outcomes",
    "matches",
    "newest_first",
    "nothing_found",
    "render",
]
