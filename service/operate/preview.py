"""What a replay would do, decided without calling anything: the choice and its summary.

From a source's candidates, the outcomes' history, the ledger (the state topic) and the
rules, :func:`choose` decides which events a replay re-drives, in which order, and what
each must not do again;
:func:`summarise` counts it for the operator (events, actions by kind, the Capillary calls
it would make) and :func:`render_summary` shows that as a table. The same choice is what
``--execute`` publishes, so the preview is exactly what will be asked of the service.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from service import actions
from service.capillary.codes import Endpoint
from service.capillary.config import CapillaryRateLimits
from service.capillary.coupons import codes_share_a_call
from service.capillary.limits import MAX_CART_EARN_IDS, coupon_code_batches
from service.events import ReturnEvent, ReturnType
from service.ledger import LedgerFacts, ReturnRecord
from service.operate.history import History
from service.operate.ledger import LedgerBook
from service.operate.sources import Candidate
from service.pipeline.plan import Planner


@dataclass(frozen=True)
class Chosen:
    """One event the replay re-drives."""

    sequence: int
    """Its place in the replay run, from 1."""
    candidate: Candidate
    event: ReturnEvent
    plan: actions.Plan
    """The plan as of the preview; the service plans again when it handles the event."""
    issued: frozenset[str]
    """Give-backs earlier outcomes or the ledger show as made: the service does not make
    them again."""
    allow_reissue: bool = False
    allow_cancelled: bool = False
    """A return a cancellation gave back since, replayed anyway (``--include-cancelled``)."""

    @property
    def kept_back(self) -> list[str]:
        """The plan's give-backs that will not be made again."""
        if self.allow_reissue:
            return []
        return [a.action_id for a in self.plan.actions if a.action_id in self.issued]


@dataclass(frozen=True)
class Skipped:
    """An event not replayed: it is done already, or a cancellation gave it back since."""

    candidate: Candidate
    event_id: str
    why: str


@dataclass
class Selection:
    """What a replay would do with one source."""

    source: str
    """The source, for people: e.g. ``dead letters (returns-dead-letter)``."""
    records_read: int
    chosen: list[Chosen] = field(default_factory=list)
    invalid: list[Candidate] = field(default_factory=list)
    repeated: list[Candidate] = field(default_factory=list)
    """Candidates whose event id an earlier candidate already has."""
    done: list[Skipped] = field(default_factory=list)
    held_back: list[Skipped] = field(default_factory=list)
    """Returns a cancellation gave back since: taking them back again would undo it."""
    not_matching: int = 0
    """Valid events left out because their plan does not touch ``--promotion``."""
    reissue_unselected: list[str] = field(default_factory=list)
    """``--allow-reissue`` event ids that are not in the replay."""

    @property
    def selected(self) -> int:
        """Records that matched the filters."""
        return (
            len(self.chosen)
            + len(self.invalid)
            + len(self.repeated)
            + len(self.done)
            + len(self.held_back)
        )


def choose(
    candidates: Sequence[Candidate],
    history: History,
    planner: Planner,
    now: datetime,
    *,
    source: str,
    records_read: int,
    promotion: str | None = None,
    include_done: bool = False,
    allow_reissue: frozenset[str] = frozenset(),
    ledger: LedgerBook | None = None,
    include_cancelled: bool = False,
) -> Selection:
    """Decide the replay: which candidates, in which order, and what each must not redo.

    ``ledger``: the state topic as read (``None``: an empty one). A return it shows
    cancelled since is held back unless ``include_cancelled``.
    """
    book = ledger if ledger is not None else LedgerBook()
    selection = Selection(source=source, records_read=records_read)
    seen: set[str] = set()
    for found in candidates:
        if found.event is None:
            # An invalid record cannot show that it touches the promotion.
            if promotion is None:
                selection.invalid.append(found)
            continue
        event = found.event
        # A held-back return is planned as it would be taken back: what --include-cancelled
        # would do, and what --promotion must match.
        plan = planner(event, now, facts_of(event, book))
        if promotion is not None and not touches(plan, promotion):
            selection.not_matching += 1
            continue
        if event.event_id in seen:
            # The same event twice in one replay would give back twice: what the first
            # copy gives back is not yet in any outcome when the second is published.
            selection.repeated.append(found)
            continue
        seen.add(event.event_id)
        if not include_done and history.done(event.event_id):
            latest = history.latest(event.event_id)
            where = f" ({latest.position})" if latest is not None else ""
            selection.done.append(
                Skipped(found, event.event_id, f"its newest outcome is completed{where}")
            )
            continue
        cancelled_by = (
            book.first_cancellation(event.event_id)
            if event.return_type is not ReturnType.CANCELLED
            else None
        )
        if cancelled_by is not None and not include_cancelled:
            selection.held_back.append(
                Skipped(
                    found,
                    event.event_id,
                    f"cancelled by {cancelled_by} since (its outcome gave back what it took); "
                    "--include-cancelled replays it anyway",
                )
            )
            continue
        selection.chosen.append(
            Chosen(
                sequence=len(selection.chosen) + 1,
                candidate=found,
                event=event,
                plan=plan,
                issued=history.issued(event.event_id) | book.given_back(event.event_id),
                allow_reissue=event.event_id in allow_reissue,
                allow_cancelled=cancelled_by is not None,
            )
        )
    replayed = {c.event.event_id for c in selection.chosen}
    selection.reissue_unselected = sorted(allow_reissue - replayed)
    return selection


def facts_of(event: ReturnEvent, book: LedgerBook) -> LedgerFacts | None:
    """What the ledger tells the rules about ``event``, as the service will find it.

    A cancellation gives back what its return took, as the ledger shows it, unless another
    event cancelled that return first. A return gets no facts: it is planned as taken back
    (whether a cancellation since holds it back is the replay's choice, not the rules').
    """
    cancelled = event.cancelled_return
    if event.return_type is not ReturnType.CANCELLED or cancelled is None:
        return None
    returned = book.state(cancelled.return_event_id)
    if returned is None or returned.phase != "done" or returned.ledger is None:
        # Unknown to the ledger, or not finished: the service decides when it handles it.
        return LedgerFacts()
    first = book.first_cancellation(cancelled.return_event_id)
    return LedgerFacts(
        returned=ReturnRecord.of(
            returned.ledger, cancelled_by=first if first != event.event_id else None
        )
    )


def touches(plan: actions.Plan, promotion: str) -> bool:
    """Whether an action of the plan calls Capillary about this promotion.

    Matches a loyalty promotion by id, promo identifier or ``program/promotion``, a cart
    promotion by id. Reports (no call) do not count.
    """
    for action in plan.actions:
        if isinstance(action, actions.LoyaltyCall):
            t = action.target
            reference = t.promotion_id if t.promotion_id is not None else t.promo_identifier
            names = {str(t.promotion_id), t.promo_identifier, f"{t.program_id}/{reference}"}
            if promotion in names:
                return True
        elif (
            isinstance(action, actions.CartCall)
            and promotion.lower() == action.promotion_id.lower()
        ):
            return True
    return False


def calls(action: actions.Action) -> tuple[Endpoint, int] | None:
    """The endpoint an action calls and how many calls it takes alone; ``None``: no call.

    Split as the client splits (``capillary/limits.py``); the service merges what one
    request can carry across events, so for many events this is an upper bound.
    """
    match action:
        case actions.RevokeLoyaltyEarn() | actions.RevokeLoyaltyEnrolment():
            return Endpoint.LOYALTY_REVOKE, 1
        case actions.EnrolLoyalty() | actions.IssueLoyaltyEarn():
            return Endpoint.LOYALTY_ENROL, 1
        case actions.RevokeCartEarn(earn_ids=ids):
            return Endpoint.CART_REVOKE, max(1, math.ceil(len(ids) / MAX_CART_EARN_IDS))
        case actions.DeactivateCartPromotion():
            return Endpoint.DEACTIVATE, 1
        case actions.RevokeCouponCodes(codes=codes, series_id=series, generic=generic):
            # Only a series declared free of generic codes takes several codes a call
            # (coupons.py).
            together = codes_share_a_call(generic=generic, no_generic_code=action.no_generic_code)
            per_call = series if together else None
            return Endpoint.COUPON_REVOKE, len(coupon_code_batches(codes, per_call))
        case actions.RevokeCustomerCoupons():
            return Endpoint.COUPON_REVOKE, 1
        case actions.Report():
            return None
    return None  # pragma: no cover - every kind is matched above


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InvalidRecord(_Model):
    """A record that is still not a valid event: not published."""

    source: str
    reason: str


class SkippedEvent(_Model):
    """An event not replayed, and why."""

    source: str
    event_id: str
    why: str


class KeptBack(_Model):
    """Give-backs of one event that will not be made again: an earlier outcome or the ledger
    shows them made."""

    event_id: str
    action_ids: list[str]


class PreviewSummary(_Model):
    """What ``return-handler replay`` would do; ``--json`` prints this."""

    source: str
    records_read: int
    selected: int
    still_invalid: int
    same_event_again: int
    skipped_as_done: int
    held_back_as_cancelled: int = 0
    """Returns a cancellation gave back since, not replayed (``--include-cancelled``)."""
    to_replay: int
    not_touching_promotion: int
    actions_by_kind: dict[str, int]
    calls_by_endpoint: dict[str, int]
    """Capillary calls per endpoint if each event were alone: an upper bound."""
    give_backs_not_made_again: int
    invalid: list[InvalidRecord]
    skipped: list[SkippedEvent]
    kept_back: list[KeptBack]
    reissue_allowed: list[str]
    reissue_not_selected: list[str]
    cancelled_allowed: list[str] = []
    """Returns a cancellation gave back since, taken back again (``--include-cancelled``)."""
    first_events: list[str]


def summarise(selection: Selection) -> PreviewSummary:
    """Counts of a selection, for the table and for ``--json``."""
    kinds: Counter[str] = Counter()
    endpoints: Counter[str] = Counter()
    kept: list[KeptBack] = []
    for chosen in selection.chosen:
        held = set(chosen.kept_back)
        for action in chosen.plan.actions:
            kinds[action.kind] += 1
            needed = calls(action)
            if needed is not None and action.action_id not in held:
                endpoints[needed[0].value] += needed[1]
        if held:
            kept.append(KeptBack(event_id=chosen.event.event_id, action_ids=sorted(held)))
    skipped = [
        SkippedEvent(source=c.source, event_id=c.event_id or "?", why="same event id again")
        for c in selection.repeated
    ] + [
        SkippedEvent(source=s.candidate.source, event_id=s.event_id, why=s.why)
        for s in [*selection.done, *selection.held_back]
    ]
    return PreviewSummary(
        source=selection.source,
        records_read=selection.records_read,
        selected=selection.selected,
        still_invalid=len(selection.invalid),
        same_event_again=len(selection.repeated),
        skipped_as_done=len(selection.done),
        held_back_as_cancelled=len(selection.held_back),
        to_replay=len(selection.chosen),
        not_touching_promotion=selection.not_matching,
        actions_by_kind=dict(sorted(kinds.items())),
        calls_by_endpoint=dict(sorted(endpoints.items())),
        give_backs_not_made_again=sum(len(k.action_ids) for k in kept),
        invalid=[
            InvalidRecord(source=c.source, reason=c.invalid or "not a valid event")
            for c in selection.invalid
        ],
        skipped=skipped,
        kept_back=kept,
        reissue_allowed=sorted(c.event.event_id for c in selection.chosen if c.allow_reissue),
        reissue_not_selected=selection.reissue_unselected,
        cancelled_allowed=[c.event.event_id for c in selection.chosen if c.allow_cancelled],
        first_events=[c.event.event_id for c in selection.chosen[:10]],
    )


LISTED = 10
"""How many invalid, skipped and kept-back entries the table lists (``--json`` has all)."""


def render_summary(
    summary: PreviewSummary, limits: CapillaryRateLimits | None = None
) -> RenderableType:
    """The summary as one table, then what was left out and why."""
    limits = limits or CapillaryRateLimits()
    table = Table(
        title=f"Replay preview: {summary.source}",
        caption="Calls are counted as if each event were alone: at most that many, since the "
        "service merges calls across events. The limits are the service's, shared by live "
        "and replayed events.",
        expand=False,
    )
    table.add_column("", no_wrap=True)
    table.add_column("count", justify="right")
    table.add_column("note", overflow="fold")
    table.add_row("records read", str(summary.records_read), "")
    table.add_row("selected", str(summary.selected), "matched the filters")
    table.add_row("still invalid", str(summary.still_invalid), "not published")
    if summary.not_touching_promotion:
        table.add_row(
            "other promotions", str(summary.not_touching_promotion), "plan does not touch it"
        )
    table.add_row("same event again", str(summary.same_event_again), "replayed once")
    table.add_row(
        "skipped as done", str(summary.skipped_as_done), "newest outcome completed; --include-done"
    )
    table.add_row(
        "held back as cancelled",
        str(summary.held_back_as_cancelled),
        "a cancellation gave it back since; --include-cancelled",
    )
    table.add_row(Text("to replay", style="bold"), Text(str(summary.to_replay), style="bold"), "")
    table.add_section()
    for kind, count in summary.actions_by_kind.items():
        label = "report (no call)" if kind == "report" else kind
        table.add_row(f"action {label}", str(count), "")
    table.add_section()
    for endpoint, count in summary.calls_by_endpoint.items():
        per_minute = getattr(limits, endpoint, None)
        limit = f"limit {per_minute}/min" if isinstance(per_minute, int) else ""
        table.add_row(f"calls {endpoint}", str(count), limit)
    if not summary.calls_by_endpoint:
        table.add_row("Capillary calls", "0", "")
    table.add_section()
    table.add_row(
        "give-backs not made again",
        str(summary.give_backs_not_made_again),
        "an earlier outcome or the ledger shows them made; --allow-reissue EVENT_ID",
    )
    if summary.reissue_allowed:
        table.add_row(
            Text("re-issue ALLOWED", style="bold red"),
            str(len(summary.reissue_allowed)),
            ", ".join(summary.reissue_allowed),
        )
    if summary.cancelled_allowed:
        table.add_row(
            Text("take back again ALLOWED", style="bold red"),
            str(len(summary.cancelled_allowed)),
            ", ".join(summary.cancelled_allowed),
        )
    parts: list[RenderableType] = [table]
    parts += _listed(
        "Still invalid (not published):", [f"{i.source}: {i.reason}" for i in summary.invalid]
    )
    parts += _listed(
        "Not replayed:", [f"{s.event_id} ({s.source}): {s.why}" for s in summary.skipped]
    )
    parts += _listed(
        "Give-backs not made again:",
        [f"{k.event_id}: {', '.join(k.action_ids)}" for k in summary.kept_back],
    )
    if summary.reissue_not_selected:
        parts.append(
            Text(
                "--allow-reissue names events not in this replay: "
                + ", ".join(summary.reissue_not_selected),
                style="yellow",
            )
        )
    return Group(*parts)


def _listed(title: str, lines: list[str]) -> list[RenderableType]:
    if not lines:
        return []
    shown: list[RenderableType] = [Text(title, style="bold")]
    shown += [Text(f"  {line}") for line in lines[:LISTED]]
    if len(lines) > LISTED:
        shown.append(Text(f"  ... and {len(lines) - LISTED} more (--json lists all)"))
    return shown


__all__ = [
    "Chosen",
    "PreviewSummary",
    "Selection",
    "Skipped",
    "calls",
    "choose",
    "facts_of",
    "render_summary",
    "summarise",
    "touches",
]
