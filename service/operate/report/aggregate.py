"""The report's figures, folded from outcomes one at a time: pure, no I/O and no clock.

The range comes in as arguments, so every figure is testable with outcomes built in a test.
It folds one outcome at a time (:class:`ReportBuilder`) because a range can hold millions of
outcomes and the report needs none of them afterwards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from service.events import ReturnType
from service.operate.report.model import (
    DayCount,
    EventCount,
    FailureGroup,
    ItemCount,
    OutcomeReport,
    StatusCount,
    Totals,
)
from service.outcome import ActionResult, ActionStatus, OutcomeEvent, OutcomeStatus

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
        # A day's figures by DayCount's field names: the model is where they are named.
        self._days: dict[date, Counter[str]] = {}

    def add(self, outcome: OutcomeEvent) -> None:
        """Count one outcome."""
        self._outcomes += 1
        event = outcome.event
        day = self._days.setdefault(outcome.processed_at.astimezone(UTC).date(), Counter())
        if outcome.status is OutcomeStatus.DUPLICATE:
            self._duplicates[event.return_type] += 1
            return
        if outcome.replay is not None:
            self._replays[outcome.status] += 1
        else:
            self._events[(event.return_type, outcome.status)] += 1
            day["events"] += 1
        for action in outcome.actions:
            for item in action.items:
                key = (action.kind, item.status)
                self._items[key] += 1
                self._not_asked[key] += not item.asked
                self._clawback[key] += item.detail.get("clawback") == "flagged"
                day["taken_back"] += item.status is ActionStatus.REVOKED
                day["given_back"] += item.status is ActionStatus.RESTORED
                day["refused"] += item.status in REFUSALS
        if outcome.status is OutcomeStatus.RETURN_UNKNOWN:
            day["return_unknown"] += 1
            self._unknown.add(event.event_id, outcome.processed_at)
        if outcome.status in FAILURES:
            day["failures"] += 1
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
        days = (first + timedelta(days=n) for n in range((last - first).days + 1))
        figures = [name for name in DayCount.model_fields if name != "day"]
        quiet: Counter[str] = Counter()  # a day without outcomes: every figure zero
        return [
            DayCount.model_validate(
                {"day": day, **{name: self._days.get(day, quiet)[name] for name in figures}}
            )
            for day in days
        ]


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


__all__ = [
    "FAILURES",
    "FAILURE_SAMPLES",
    "GIVEN_BACK",
    "NO_NEXT_STEP",
    "REFUSALS",
    "TAKEN_BACK",
    "ReportBuilder",
    "summarize",
]
