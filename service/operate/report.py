"""``return-handler report``: a time range of outcomes added up, for analytics and finance.

The aggregation is pure: outcomes in, an :class:`OutcomeReport` out, no I/O and no clock (the
range comes in as arguments), so every figure is testable with outcomes built in a test. It
folds one outcome at a time (:class:`ReportBuilder`) because a range can hold millions of
outcomes and the report needs none of them afterwards. The report is a boundary (people
load its JSON into spreadsheets and notebooks), so it is a versioned model; rendering for the
terminal is at the end of this module.

What counts where, so the figures add up without counting anything twice:

- events: the outcomes of input events as delivered (neither duplicates nor replays), by
  return type and status; one per input event.
- duplicates and replays: counted apart. A duplicate made no call. A replay's items do
  count below (what it revoked was taken back then; what an earlier attempt had revoked
  reads ``already_revoked``), and a failed replay is a failure.
- benefits: item results, by action kind and status. Taken back: ``revoked`` (now) and
  ``already_revoked`` (an earlier attempt of the same event did it). Given back: ``restored``
  and ``already_restored``. Refusals: ``refused_redeemed`` (the customer used it: with how
  many were flagged for clawback), ``refused``, ``not_found`` and ``kept``.
- failures: ``failed`` and ``needs_check`` outcomes, grouped by the next step their failed
  (or unconfirmed) actions name.
- return unknown: ``return_unknown`` outcomes (a cancellation of a return the service's
  ledger does not know: nothing given back, an operator looks), counted apart from the
  failures, with a few of their event ids.
- days: UTC days of ``processed_at``; every day of the range is listed, empty ones too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from service.events import ReturnType
from service.operate.outcomes import Skipped, read_outcomes
from service.operate.read import Progress, Span
from service.outcome import ActionResult, ActionStatus, OutcomeEvent, OutcomeStatus

REPORT_SCHEMA_VERSION: Literal["1"] = "1"

TAKEN_BACK = (ActionStatus.REVOKED, ActionStatus.ALREADY_REVOKED)
GIVEN_BACK = (ActionStatus.RESTORED, ActionStatus.ALREADY_RESTORED)
REFUSALS = (
    ActionStatus.REFUSED_REDEEMED,
    ActionStatus.REFUSED,
    ActionStatus.NOT_FOUND,
    ActionStatus.KEPT,
)
FAILURES = (OutcomeStatus.FAILED, OutcomeStatus.NEEDS_CHECK)
# Event ids kept per failure group: enough to start from, few enough to read.
FAILURE_SAMPLES = 5
NO_NEXT_STEP = "(none given: read the outcome with return-handler inspect EVENT_ID)"

# Plan order, so tables list kinds the way a plan executes them; unknown kinds come last.
_KIND_ORDER = (
    "revoke_loyalty_earn",
    "revoke_loyalty_enrolment",
    "revoke_cart_earn",
    "deactivate_cart_promotion",
    "revoke_coupon_codes",
    "revoke_customer_coupons",
    "enrol_loyalty",
    "issue_loyalty_earn",
    "report",
)


class _Model(BaseModel):
    # Attribute docstrings become the field descriptions of schemas/outcome-report.v1.json.
    # Open to additions: fields are added within v1 (README, "Compatibility"), so a reader
    # of another version ignores the fields it does not know, and the published schema
    # allows them.
    model_config = ConfigDict(extra="ignore", frozen=True, use_attribute_docstrings=True)


class EventCount(_Model):
    """How many outcomes of one return type ended in one status."""

    return_type: ReturnType
    """FULL, LINE_ITEM, AMOUNT, EXCHANGE or CANCELLED."""
    status: OutcomeStatus
    """completed, failed, duplicate, needs_check or return_unknown."""
    outcomes: int
    """How many."""


class ItemCount(_Model):
    """How many items of one action kind ended in one status."""

    kind: str
    """The action kind, e.g. revoke_loyalty_earn, revoke_coupon_codes, issue_loyalty_earn."""
    status: ActionStatus
    """The item's status."""
    items: int
    """How many items (earns, coupon codes, enrolments)."""
    not_asked: int = 0
    """Of those, how many Capillary changed without being asked (coupons revoked beyond the
    codes sent)."""
    flagged_for_clawback: int = 0
    """Of those, how many carry clawback=flagged (refused_redeemed only)."""


class FailureGroup(_Model):
    """Outcomes that need an operator, grouped by what the outcome says to do."""

    status: OutcomeStatus
    """failed or needs_check."""
    next_step: str
    """The next step their failed or unconfirmed actions name; per-event values (a customer,
    a promotion) are replaced by their name in braces, so alike failures group together."""
    outcomes: int
    """How many outcomes name it."""
    event_ids: list[str]
    """A few of their event ids, most recently processed first."""


class StatusCount(_Model):
    """How many outcomes ended in one status."""

    status: OutcomeStatus
    """completed, failed, duplicate, needs_check or return_unknown."""
    outcomes: int
    """How many."""


class DayCount(_Model):
    """One UTC day of the range."""

    day: date
    """The UTC day of processed_at."""
    events: int
    """Outcomes of input events as delivered (neither duplicates nor replays)."""
    taken_back: int
    """Items revoked that day (revoked only: already_revoked was taken back before)."""
    given_back: int
    """Items restored that day."""
    refused: int
    """Items refused that day: refused_redeemed, refused, not_found and kept."""
    failures: int
    """failed and needs_check outcomes that day."""
    return_unknown: int = 0
    """return_unknown outcomes that day (cancellations of returns the ledger does not know)."""


class Totals(_Model):
    """The headline figures of the range."""

    outcomes: int
    """Every outcome read in the range, duplicates and replays included."""
    events: int
    """Outcomes of input events as delivered (neither duplicates nor replays)."""
    duplicates: int
    """Duplicate deliveries: nothing was called."""
    replays: int
    """Outcomes of events an operator replayed."""
    taken_back: int
    """Items revoked."""
    already_revoked: int
    """Items an earlier attempt of the same event had revoked."""
    given_back: int
    """Items restored."""
    already_restored: int
    """Items a replay did not give back again (an earlier outcome shows them given back)."""
    redeemed: int
    """Items not taken back because the customer had used them (refused_redeemed)."""
    flagged_for_clawback: int
    """Of the redeemed items, how many are flagged for clawback."""
    refusals: int
    """Items refused: refused_redeemed, refused, not_found and kept."""
    failed: int
    """failed outcomes."""
    needs_check: int
    """needs_check outcomes."""
    return_unknown: int = 0
    """return_unknown outcomes: cancellations of returns the service's ledger does not know;
    nothing was given back, an operator looks."""


class OutcomeReport(_Model):
    """What the outcomes of a time range add up to (``return-handler report --json``)."""

    schema_version: Literal["1"] = REPORT_SCHEMA_VERSION
    """Version of this schema; a breaking change gets a new version and file."""
    topic: str
    """The outcomes topic read."""
    since: AwareDatetime
    """Start of the range (UTC), included; by the time each outcome was written."""
    until: AwareDatetime
    """End of the range (UTC), included."""
    skipped_records: int = 0
    """Records of the range that were not outcomes this version reads (not counted)."""
    totals: Totals
    """The headline figures."""
    events: list[EventCount]
    """Input events as delivered, by return type and status."""
    duplicates: list[EventCount]
    """Duplicate deliveries, by return type."""
    replays: list[StatusCount]
    """Replayed events, by status."""
    taken_back: list[ItemCount]
    """Benefits taken back: revoked and already_revoked items, by action kind."""
    given_back: list[ItemCount]
    """Benefits given back: restored and already_restored items, by action kind."""
    refusals: list[ItemCount]
    """Benefits not taken back: refused_redeemed, refused, not_found and kept, by kind."""
    failures: list[FailureGroup]
    """Outcomes that need an operator, by next step, most frequent first."""
    return_unknown_event_ids: list[str] = Field(default_factory=list)
    """A few event ids of the return_unknown outcomes, most recently processed first."""
    days: list[DayCount] = Field(default_factory=list)
    """Every UTC day of the range, in order."""


@dataclass
class _FailureSamples:
    outcomes: int = 0
    latest: dict[str, datetime] = field(default_factory=dict)

    def add(self, event_id: str, processed_at: datetime) -> None:
        self.outcomes += 1
        self.latest[event_id] = max(processed_at, self.latest.get(event_id, processed_at))
        if len(self.latest) > FAILURE_SAMPLES:
            oldest = min(self.latest, key=lambda k: (self.latest[k], k))
            del self.latest[oldest]

    def event_ids(self) -> list[str]:
        return sorted(self.latest, key=lambda k: (self.latest[k], k), reverse=True)


@dataclass
class _Day:
    events: int = 0
    taken_back: int = 0
    given_back: int = 0
    refused: int = 0
    failures: int = 0
    return_unknown: int = 0


class ReportBuilder:
    """Folds outcomes into a report one at a time; keeps counts, never the outcomes."""

    def __init__(self, *, topic: str, since: datetime, until: datetime) -> None:
        self._topic = topic
        self._since = since.astimezone(UTC)
        self._until = until.astimezone(UTC)
        self._outcomes = 0
        self._events: Counter[tuple[ReturnType, OutcomeStatus]] = Counter()
        self._duplicates: Counter[ReturnType] = Counter()
        self._replays: Counter[OutcomeStatus] = Counter()
        self._items: Counter[tuple[str, ActionStatus]] = Counter()
        self._not_asked: Counter[tuple[str, ActionStatus]] = Counter()
        self._clawback: Counter[tuple[str, ActionStatus]] = Counter()
        self._failures: dict[tuple[OutcomeStatus, str], _FailureSamples] = {}
        self._unknown = _FailureSamples()
        self._days: dict[date, _Day] = {}

    def add(self, outcome: OutcomeEvent) -> None:
        """Count one outcome."""
        self._outcomes += 1
        event = outcome.event
        day = self._days.setdefault(outcome.processed_at.astimezone(UTC).date(), _Day())
        if outcome.status is OutcomeStatus.DUPLICATE:
            self._duplicates[event.return_type] += 1
            return
        if outcome.replay is not None:
            self._replays[outcome.status] += 1
        else:
            self._events[(event.return_type, outcome.status)] += 1
            day.events += 1
        for action in outcome.actions:
            for item in action.items:
                key = (action.kind, item.status)
                self._items[key] += 1
                self._not_asked[key] += not item.asked
                self._clawback[key] += item.detail.get("clawback") == "flagged"
                day.taken_back += item.status is ActionStatus.REVOKED
                day.given_back += item.status is ActionStatus.RESTORED
                day.refused += item.status in REFUSALS
        if outcome.status is OutcomeStatus.RETURN_UNKNOWN:
            day.return_unknown += 1
            self._unknown.add(event.event_id, outcome.processed_at)
        if outcome.status in FAILURES:
            day.failures += 1
            for step in _next_steps(outcome):
                samples = self._failures.setdefault((outcome.status, step), _FailureSamples())
                samples.add(event.event_id, outcome.processed_at)

    def build(self, *, skipped_records: int = 0) -> OutcomeReport:
        """The report of everything added so far."""
        items = self._item_counts()

        def total(*statuses: ActionStatus) -> int:
            return sum(c.items for c in items if c.status in statuses)

        def outcomes(status: OutcomeStatus) -> int:
            # Input events and replays alike: each one is an outcome someone acts on.
            return (
                sum(n for (_, s), n in self._events.items() if s is status) + self._replays[status]
            )

        events = [
            EventCount(return_type=return_type, status=status, outcomes=count)
            for (return_type, status), count in sorted(self._events.items(), key=_event_order)
        ]
        failures = [
            FailureGroup(
                status=status,
                next_step=step,
                outcomes=samples.outcomes,
                event_ids=samples.event_ids(),
            )
            for (status, step), samples in sorted(
                self._failures.items(), key=lambda kv: (-kv[1].outcomes, kv[0][0], kv[0][1])
            )
        ]
        return OutcomeReport(
            topic=self._topic,
            since=self._since,
            until=self._until,
            skipped_records=skipped_records,
            totals=Totals(
                outcomes=self._outcomes,
                events=sum(self._events.values()),
                duplicates=sum(self._duplicates.values()),
                replays=sum(self._replays.values()),
                taken_back=total(ActionStatus.REVOKED),
                already_revoked=total(ActionStatus.ALREADY_REVOKED),
                given_back=total(ActionStatus.RESTORED),
                already_restored=total(ActionStatus.ALREADY_RESTORED),
                redeemed=total(ActionStatus.REFUSED_REDEEMED),
                flagged_for_clawback=sum(c.flagged_for_clawback for c in items),
                refusals=total(*REFUSALS),
                failed=outcomes(OutcomeStatus.FAILED),
                needs_check=outcomes(OutcomeStatus.NEEDS_CHECK),
                return_unknown=outcomes(OutcomeStatus.RETURN_UNKNOWN),
            ),
            events=events,
            duplicates=[
                EventCount(return_type=rt, status=OutcomeStatus.DUPLICATE, outcomes=n)
                for rt, n in sorted(self._duplicates.items(), key=lambda kv: _rank(kv[0]))
            ],
            replays=[
                StatusCount(status=status, outcomes=n)
                for status, n in sorted(self._replays.items(), key=lambda kv: _rank(kv[0]))
            ],
            taken_back=[c for c in items if c.status in TAKEN_BACK],
            given_back=[c for c in items if c.status in GIVEN_BACK],
            refusals=[c for c in items if c.status in REFUSALS],
            failures=failures,
            return_unknown_event_ids=self._unknown.event_ids(),
            days=self._day_counts(),
        )

    def _item_counts(self) -> list[ItemCount]:
        return [
            ItemCount(
                kind=kind,
                status=status,
                items=count,
                not_asked=self._not_asked[(kind, status)],
                flagged_for_clawback=self._clawback[(kind, status)],
            )
            for (kind, status), count in sorted(
                self._items.items(), key=lambda kv: (_kind_rank(kv[0][0]), _rank(kv[0][1]))
            )
        ]

    def _day_counts(self) -> list[DayCount]:
        # Every day of the range, so a chart shows a quiet day as zero instead of skipping
        # it; an outcome processed just outside (written a moment later) widens the range.
        first = min([self._since.date(), *self._days])
        last = max([self._until.date(), *self._days])
        days = []
        for n in range((last - first).days + 1):
            day = first + timedelta(days=n)
            counts = self._days.get(day, _Day())
            days.append(
                DayCount(
                    day=day,
                    events=counts.events,
                    taken_back=counts.taken_back,
                    given_back=counts.given_back,
                    refused=counts.refused,
                    failures=counts.failures,
                    return_unknown=counts.return_unknown,
                )
            )
        return days


def summarize(
    outcomes: Iterable[OutcomeEvent],
    *,
    topic: str,
    since: datetime,
    until: datetime,
    skipped_records: int = 0,
) -> OutcomeReport:
    """The report of ``outcomes``, read from ``topic`` between ``since`` and ``until``."""
    builder = ReportBuilder(topic=topic, since=since, until=until)
    for outcome in outcomes:
        builder.add(outcome)
    return builder.build(skipped_records=skipped_records)


def _next_steps(outcome: OutcomeEvent) -> list[str]:
    """The distinct next steps of the actions that make ``outcome`` need an operator."""
    wanted = (
        ActionStatus.FAILED if outcome.status is OutcomeStatus.FAILED else ActionStatus.UNCONFIRMED
    )
    steps = [_general(a) for a in outcome.actions if a.status is wanted]
    return list(dict.fromkeys(step for step in steps)) or [NO_NEXT_STEP]


def _general(action: ActionResult) -> str:
    """``action``'s next step with its per-event values named instead (``{customer}``)."""
    if not action.next_step:
        return NO_NEXT_STEP
    step = action.next_step
    # Short values ("1", "id") would replace parts of words; the ones that vary per event
    # (customer, promotion) are longer.
    for item in action.items:
        for key, value in sorted(item.detail.items(), key=lambda kv: -len(kv[1])):
            if len(value) >= 3:
                step = step.replace(value, "{" + key + "}")
    return step


def _rank(value: ReturnType | OutcomeStatus | ActionStatus) -> int:
    # Enum declaration order: the order the models document them in.
    return list(type(value)).index(value)


def _kind_rank(kind: str) -> tuple[int, str]:
    return (_KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER), kind)


def _event_order(kv: tuple[tuple[ReturnType, OutcomeStatus], int]) -> tuple[int, int]:
    (return_type, status), _ = kv
    return (_rank(return_type), _rank(status))


async def read_report(
    client_options: Mapping[str, Any],
    topic: str,
    *,
    since: datetime,
    until: datetime,
    progress: Progress | None = None,
) -> OutcomeReport:
    """Read ``topic`` between ``since`` and ``until`` and fold it into a report.

    The one part of this module that does I/O; ``client_options`` come from
    ``service.operate.connect.client_options``.
    """
    builder = ReportBuilder(topic=topic, since=since, until=until)
    skipped = Skipped()
    async for _, outcome in read_outcomes(
        client_options, topic, Span(since=since, until=until), skipped=skipped, progress=progress
    ):
        builder.add(outcome)
    return builder.build(skipped_records=skipped.count)


# ---- for people: rich tables on the terminal ----------------------------------------------


def render(report: OutcomeReport) -> RenderableType:
    """The report as rich tables, headline first."""
    totals = report.totals
    head = Text()
    head.append(f"Outcomes of {report.topic}", style="bold")
    head.append(f", {_when(report.since)} to {_when(report.until)}\n")
    head.append(
        f"{totals.outcomes} outcome(s): {totals.events} event(s), "
        f"{totals.duplicates} duplicate(s), {totals.replays} replay(s)"
    )
    if report.skipped_records:
        head.append(
            f"; {report.skipped_records} record(s) skipped (not outcomes this version reads)",
            style="yellow",
        )
    head.append(
        f"\nTaken back: {totals.taken_back} item(s), and {totals.already_revoked} already "
        f"revoked before · given back: {totals.given_back}, and {totals.already_restored} "
        "already restored"
        f"\nRedeemed, not taken back: {totals.redeemed} ({totals.flagged_for_clawback} flagged "
        f"for clawback) · other refusals: {totals.refusals - totals.redeemed}"
        f"\nFailed: {totals.failed} outcome(s) · needs check: {totals.needs_check}"
    )
    if totals.return_unknown:
        latest = ", ".join(report.return_unknown_event_ids)
        head.append(
            f"\nReturn unknown: {totals.return_unknown} cancellation(s) of a return the ledger "
            f"does not know, nothing given back (latest: {latest})",
            style="magenta",
        )
    else:
        head.append("\nReturn unknown: 0")
    parts: list[RenderableType] = [
        head,
        _events_table(report),
        _items_table(
            "Benefits taken back (items)",
            report.taken_back,
            {ActionStatus.REVOKED: "revoked", ActionStatus.ALREADY_REVOKED: "already revoked"},
            not_asked=True,
        ),
        _items_table(
            "Benefits given back (items)",
            report.given_back,
            {ActionStatus.RESTORED: "restored", ActionStatus.ALREADY_RESTORED: "already restored"},
        ),
        _items_table(
            "Refusals (items not taken back)",
            report.refusals,
            {
                ActionStatus.REFUSED_REDEEMED: "redeemed",
                ActionStatus.REFUSED: "refused",
                ActionStatus.NOT_FOUND: "not found",
                ActionStatus.KEPT: "kept",
            },
            clawback=True,
        ),
        _failures_table(report),
        _apart_table(report),
        _days_table(report),
    ]
    # A blank line before each table keeps one title from reading as the last table's footer.
    spaced: list[RenderableType] = [parts[0]]
    for part in parts[1:]:
        spaced += [Text(""), part]
    return Group(*spaced)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def _none(title: str) -> Text:
    return Text.assemble((title, "bold"), ": none")


def _events_table(report: OutcomeReport) -> RenderableType:
    title = "Events by return type and status"
    if not report.events:
        return _none(title)
    statuses = [s for s in OutcomeStatus if any(e.status is s for e in report.events)]
    table = _table(title, "return type", *[s.value for s in statuses], "total")
    for return_type in ReturnType:
        row = {e.status: e.outcomes for e in report.events if e.return_type is return_type}
        if row:
            table.add_row(
                return_type.value, *[str(row.get(s, 0)) for s in statuses], str(sum(row.values()))
            )
    return table


def _items_table(
    title: str,
    counts: list[ItemCount],
    columns: dict[ActionStatus, str],
    *,
    not_asked: bool = False,
    clawback: bool = False,
) -> RenderableType:
    if not counts:
        return _none(title)
    extra = (["not asked"] if not_asked else []) + (["flagged for clawback"] if clawback else [])
    table = _table(title, "kind", *columns.values(), *extra)
    kinds = list(dict.fromkeys(c.kind for c in counts))
    for kind in kinds:
        mine = {c.status: c for c in counts if c.kind == kind}
        cells = [str(mine[s].items) if s in mine else "0" for s in columns]
        if not_asked:
            cells.append(str(sum(c.not_asked for c in mine.values())))
        if clawback:
            cells.append(str(sum(c.flagged_for_clawback for c in mine.values())))
        table.add_row(kind, *cells)
    return table


def _failures_table(report: OutcomeReport) -> RenderableType:
    title = "Failures (outcomes that need an operator)"
    if not report.failures:
        return _none(title)
    table = _table(title, "status", "next step", "outcomes", "event ids (latest)")
    table.columns[1].justify = "left"
    table.columns[3].justify = "left"
    for group in report.failures:
        table.add_row(
            group.status.value, group.next_step, str(group.outcomes), ", ".join(group.event_ids)
        )
    return table


def _apart_table(report: OutcomeReport) -> RenderableType:
    table = _table("Duplicates and replays (counted apart)", "", "outcomes", "by")
    table.columns[2].justify = "left"
    table.add_row(
        "duplicates",
        str(report.totals.duplicates),
        ", ".join(f"{d.return_type.value} {d.outcomes}" for d in report.duplicates) or "-",
    )
    table.add_row(
        "replays",
        str(report.totals.replays),
        ", ".join(f"{r.status.value} {r.outcomes}" for r in report.replays) or "-",
    )
    return table


def _days_table(report: OutcomeReport) -> RenderableType:
    title = "Per UTC day"
    busy = [
        d
        for d in report.days
        if d.events or d.taken_back or d.given_back or d.refused or d.failures or d.return_unknown
    ]
    if not busy:
        return _none(title)
    table = _table(
        title, "day", "events", "taken back", "given back", "refused", "failures", "return unknown"
    )
    if len(busy) < len(report.days):
        table.caption = f"{len(report.days) - len(busy)} day(s) without outcomes left out"
    for d in busy:
        table.add_row(
            d.day.isoformat(),
            str(d.events),
            str(d.taken_back),
            str(d.given_back),
            str(d.refused),
            str(d.failures),
            str(d.return_unknown),
        )
    return table


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


__all__ = [
    "REPORT_SCHEMA_VERSION",
    "DayCount",
    "EventCount",
    "FailureGroup",
    "ItemCount",
    "OutcomeReport",
    "ReportBuilder",
    "StatusCount",
    "Totals",
    "read_report",
    "render",
    "summarize",
]
