"""report: the figures of a range of outcomes, each counted once and in its place."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import jsonschema
from rich.console import Console

from service.actions import Decision
from service.events import ReturnType
from service.operate.report import (
    NO_NEXT_STEP,
    REPORT_SCHEMA_VERSION,
    OutcomeReport,
    ReportBuilder,
    render,
    summarize,
)
from service.outcome import (
    ActionStatus,
    FirstOutcome,
    OutcomeEvent,
    OutcomeStatus,
    ReplayInfo,
)
from service.schemas import OUTCOME_REPORT_FILE, render_all
from tests.unit.operate.build import DAY, action, item, outcome

SINCE = datetime(2026, 11, 20, tzinfo=UTC)
UNTIL = datetime(2026, 11, 22, 23, 59, 59, 999_000, tzinfo=UTC)
R = ActionStatus
REPLAY = ReplayInfo(replay_id="rpl-1", reason="Capillary was down", source="returns:0:3")
UNCONFIRMED_STEP = (
    "Check in Capillary whether customer {who} holds promotion {promotion}; enrol or issue it "
    "by hand only if not."
)


def _report(*outcomes: OutcomeEvent, skipped: int = 0) -> OutcomeReport:
    return summarize(
        outcomes, topic="return-outcomes", since=SINCE, until=UNTIL, skipped_records=skipped
    )


def _unconfirmed(event_id: str, customer: str, promotion: str, at: datetime) -> OutcomeEvent:
    return outcome(
        action(
            "issue_loyalty_earn",
            item(R.UNCONFIRMED, detail={"customer": customer, "promotion": promotion}),
            next_step=UNCONFIRMED_STEP.format(who=customer, promotion=promotion),
        ),
        event_id=event_id,
        return_type=ReturnType.CANCELLED,
        decision=Decision.GIVE_BACK,
        status=OutcomeStatus.NEEDS_CHECK,
        processed_at=at,
    )


def _world() -> list[OutcomeEvent]:
    """A range with take-backs, a redeemed coupon, a give-back, failures, a duplicate, a replay."""
    day2 = DAY + timedelta(days=1)
    return [
        outcome(
            action("revoke_loyalty_earn", item(R.REVOKED), item(R.REVOKED, "loyalty_earn:975")),
            action(
                "revoke_coupon_codes",
                item(R.REVOKED, "coupon:1"),
                item(R.REVOKED, "coupon:2", asked=False),
                item(R.REFUSED_REDEEMED, "coupon:3", detail={"clawback": "flagged"}),
            ),
            event_id="evt-full",
        ),
        outcome(
            action("revoke_coupon_codes", item(R.REFUSED_REDEEMED, "coupon:4")),
            action("revoke_loyalty_enrolment", item(R.KEPT, "enrolment:2714/1")),
            action("revoke_cart_earn", item(R.NOT_FOUND, "cart_earn:x")),
            event_id="evt-partial",
            return_type=ReturnType.LINE_ITEM,
            processed_at=day2,
        ),
        outcome(
            action("enrol_loyalty", item(R.RESTORED, "enrolment:2714/1")),
            action("issue_loyalty_earn", item(R.RESTORED, detail={"earned_id": "1201"})),
            event_id="evt-cancel",
            return_type=ReturnType.CANCELLED,
            decision=Decision.GIVE_BACK,
            processed_at=day2,
        ),
        outcome(
            action(
                "revoke_cart_earn",
                item(R.FAILED, "cart_earn:y", code=503),
                next_step="Replay the event: revokes are safe to repeat.",
            ),
            event_id="evt-fail-1",
            status=OutcomeStatus.FAILED,
        ),
        outcome(
            action(
                "revoke_cart_earn",
                item(R.FAILED, "cart_earn:z", code=503),
                next_step="Replay the event: revokes are safe to repeat.",
            ),
            event_id="evt-fail-2",
            status=OutcomeStatus.FAILED,
            processed_at=DAY + timedelta(hours=1),
        ),
        outcome(
            action("deactivate_cart_promotion", item(R.FAILED, "cart_promotion:p")),
            event_id="evt-fail-3",
            status=OutcomeStatus.FAILED,
        ),
        _unconfirmed("evt-check-1", "id 555567088", "2714/202779", DAY),
        _unconfirmed("evt-check-2", "id 555567099", "2714/202780", day2),
        outcome(
            event_id="evt-full",
            status=OutcomeStatus.DUPLICATE,
            duplicate_of=FirstOutcome(
                status=OutcomeStatus.COMPLETED, input_partition=0, input_offset=0
            ),
            processed_at=day2,
        ),
        # The replay of evt-fail-1: its cart earn is taken back now, and the revoke an earlier
        # attempt made reads already_revoked.
        outcome(
            action(
                "revoke_cart_earn",
                item(R.REVOKED, "cart_earn:y"),
                item(R.ALREADY_REVOKED, "cart_earn:w"),
            ),
            event_id="evt-fail-1",
            replay=REPLAY,
            processed_at=day2,
        ),
    ]


def test_events_are_counted_by_return_type_and_status_without_duplicates_and_replays() -> None:
    report = _report(*_world())
    assert [(e.return_type, e.status, e.outcomes) for e in report.events] == [
        (ReturnType.FULL, OutcomeStatus.COMPLETED, 1),
        (ReturnType.FULL, OutcomeStatus.FAILED, 3),
        (ReturnType.LINE_ITEM, OutcomeStatus.COMPLETED, 1),
        (ReturnType.CANCELLED, OutcomeStatus.COMPLETED, 1),
        (ReturnType.CANCELLED, OutcomeStatus.NEEDS_CHECK, 2),
    ]
    assert report.totals.outcomes == 10
    assert report.totals.events == 8
    assert [(d.return_type, d.outcomes) for d in report.duplicates] == [(ReturnType.FULL, 1)]
    assert [(r.status, r.outcomes) for r in report.replays] == [(OutcomeStatus.COMPLETED, 1)]
    assert (report.totals.duplicates, report.totals.replays) == (1, 1)


def test_benefits_are_counted_by_kind_and_status_replays_included() -> None:
    report = _report(*_world())
    assert [(c.kind, c.status, c.items, c.not_asked) for c in report.taken_back] == [
        ("revoke_loyalty_earn", R.REVOKED, 2, 0),
        ("revoke_cart_earn", R.REVOKED, 1, 0),
        ("revoke_cart_earn", R.ALREADY_REVOKED, 1, 0),
        ("revoke_coupon_codes", R.REVOKED, 2, 1),
    ]
    assert [(c.kind, c.status, c.items) for c in report.given_back] == [
        ("enrol_loyalty", R.RESTORED, 1),
        ("issue_loyalty_earn", R.RESTORED, 1),
    ]
    totals = report.totals
    assert (totals.taken_back, totals.already_revoked) == (5, 1)
    assert (totals.given_back, totals.already_restored) == (2, 0)


def test_refusals_count_redeemed_items_and_those_flagged_for_clawback() -> None:
    report = _report(*_world())
    assert [(c.kind, c.status, c.items, c.flagged_for_clawback) for c in report.refusals] == [
        ("revoke_loyalty_enrolment", R.KEPT, 1, 0),
        ("revoke_cart_earn", R.NOT_FOUND, 1, 0),
        ("revoke_coupon_codes", R.REFUSED_REDEEMED, 2, 1),
    ]
    assert (report.totals.redeemed, report.totals.flagged_for_clawback) == (2, 1)
    assert report.totals.refusals == 4


def test_failures_are_grouped_by_next_step_with_the_latest_event_ids() -> None:
    report = _report(*_world())
    groups = [(g.status, g.next_step, g.outcomes, g.event_ids) for g in report.failures]
    assert groups == [
        (
            OutcomeStatus.FAILED,
            "Replay the event: revokes are safe to repeat.",
            2,
            ["evt-fail-2", "evt-fail-1"],
        ),
        # Two customers, one step: the per-event values are named, so they group together.
        (
            OutcomeStatus.NEEDS_CHECK,
            UNCONFIRMED_STEP.format(who="{customer}", promotion="{promotion}"),
            2,
            ["evt-check-2", "evt-check-1"],
        ),
        (OutcomeStatus.FAILED, NO_NEXT_STEP, 1, ["evt-fail-3"]),
    ]
    assert (report.totals.failed, report.totals.needs_check) == (3, 2)


def test_failure_groups_keep_only_a_few_event_ids() -> None:
    failed = [
        outcome(
            action("revoke_cart_earn", item(R.FAILED), next_step="Replay."),
            event_id=f"evt-{n:02}",
            status=OutcomeStatus.FAILED,
            processed_at=DAY + timedelta(minutes=n),
        )
        for n in range(12)
    ]
    [group] = _report(*failed).failures
    assert group.outcomes == 12
    assert group.event_ids == ["evt-11", "evt-10", "evt-09", "evt-08", "evt-07"]


def test_days_cover_the_whole_range_in_utc_with_empty_days_as_zero() -> None:
    late_evening_in_new_york = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)
    report = _report(
        *_world(),
        outcome(
            action("revoke_loyalty_earn", item(R.REVOKED)),
            event_id="evt-late",
            processed_at=late_evening_in_new_york,
        ),
    )
    days = [
        (d.day, d.events, d.taken_back, d.given_back, d.refused, d.failures) for d in report.days
    ]
    assert days == [
        # evt-full (2 earns, 2 coupons revoked, 1 redeemed), 3 failures, a needs_check.
        (date(2026, 11, 20), 5, 4, 0, 1, 4),
        # evt-partial (redeemed, kept, not found), the cancel, a needs_check, the duplicate
        # (no event), the replay (one revoked, not an event), evt-late.
        (date(2026, 11, 21), 4, 2, 2, 3, 1),
        (date(2026, 11, 22), 0, 0, 0, 0, 0),
    ]


def test_json_has_a_schema_version_reads_back_and_matches_the_published_schema() -> None:
    report = _report(*_world(), skipped=2)
    data = json.loads(report.model_dump_json())
    assert data["schema_version"] == REPORT_SCHEMA_VERSION == "1"
    assert data["since"] == "2026-11-20T00:00:00Z"
    assert data["skipped_records"] == 2
    assert set(data) == {
        "schema_version",
        "topic",
        "since",
        "until",
        "skipped_records",
        "totals",
        "events",
        "duplicates",
        "replays",
        "taken_back",
        "given_back",
        "refusals",
        "failures",
        "return_unknown_event_ids",
        "days",
    }
    assert data["taken_back"][0] == {
        "kind": "revoke_loyalty_earn",
        "status": "revoked",
        "items": 2,
        "not_asked": 0,
        "flagged_for_clawback": 0,
    }
    assert data["days"][0]["day"] == "2026-11-20"
    assert OutcomeReport.model_validate_json(report.model_dump_json()) == report
    jsonschema.validate(data, json.loads(render_all()[OUTCOME_REPORT_FILE]))


def test_the_builder_folds_one_outcome_at_a_time_like_summarize() -> None:
    builder = ReportBuilder(topic="return-outcomes", since=SINCE, until=UNTIL)
    for one in _world():
        builder.add(one)
    assert builder.build() == _report(*_world())


def test_an_empty_range_reports_zeros_and_every_day() -> None:
    report = _report()
    assert report.totals.outcomes == 0
    assert (report.events, report.taken_back, report.failures) == ([], [], [])
    assert [d.day for d in report.days] == [
        date(2026, 11, 20),
        date(2026, 11, 21),
        date(2026, 11, 22),
    ]


def test_render_shows_each_section_with_its_counts() -> None:
    console = Console(record=True, width=200, color_system=None)
    console.print(render(_report(*_world())))
    text = re.sub(r" +", " ", console.export_text())
    assert "Outcomes of return-outcomes, 2026-11-20 00:00:00 UTC to 2026-11-22 23:59:59 UTC" in text
    assert "10 outcome(s): 8 event(s), 1 duplicate(s), 1 replay(s)" in text
    assert "Taken back: 5 item(s), and 1 already revoked before · given back: 2, and 0" in text
    assert "Redeemed, not taken back: 2 (1 flagged for clawback) · other refusals: 2" in text
    assert "Failed: 3 outcome(s) · needs check: 2" in text
    assert "│ FULL │ 1 │ 3 │ 0 │ 4 │" in text
    assert "│ revoke_coupon_codes │ 2 │ 0 │ 1 │" in text
    assert "│ revoke_coupon_codes │ 2 │ 0 │ 0 │ 0 │ 1 │" in text
    assert "Replay the event: revokes are safe to repeat. │ 2 │ evt-fail-2, evt-fail-1" in text
    assert "│ replays │ 1 │ completed 1 │" in text
    assert "│ 2026-11-21 │ 3 │ 1 │ 2 │ 3 │ 1 │" in text
    assert "1 day(s) without outcomes left out" in text
    assert "Benefits given back (items)" in text


def _unknown(event_id: str, at: datetime, *, replay: ReplayInfo | None = None) -> OutcomeEvent:
    return outcome(
        action("report", status=R.SKIPPED),
        event_id=event_id,
        return_type=ReturnType.CANCELLED,
        decision=Decision.NOTHING_TO_DO,
        status=OutcomeStatus.RETURN_UNKNOWN,
        processed_at=at,
        replay=replay,
    )


def test_return_unknown_is_counted_apart_from_failures_with_its_latest_event_ids() -> None:
    day2 = DAY + timedelta(days=1)
    report = _report(
        *_world(),
        _unknown("evt-unknown-1", DAY),
        _unknown("evt-unknown-2", day2),
        _unknown("evt-unknown-1", day2 + timedelta(hours=1), replay=REPLAY),
    )

    assert report.totals.return_unknown == 3
    # Not failures: nothing failed, an operator looks at what the return took.
    assert (report.totals.failed, report.totals.needs_check) == (3, 2)
    assert all(g.status is not OutcomeStatus.RETURN_UNKNOWN for g in report.failures)
    assert (ReturnType.CANCELLED, OutcomeStatus.RETURN_UNKNOWN, 2) in [
        (e.return_type, e.status, e.outcomes) for e in report.events
    ]
    assert (OutcomeStatus.RETURN_UNKNOWN, 1) in [(r.status, r.outcomes) for r in report.replays]
    assert report.return_unknown_event_ids == ["evt-unknown-1", "evt-unknown-2"]
    assert [(d.day, d.return_unknown, d.failures) for d in report.days] == [
        (date(2026, 11, 20), 1, 4),
        (date(2026, 11, 21), 2, 1),
        (date(2026, 11, 22), 0, 0),
    ]
    jsonschema.validate(
        json.loads(report.model_dump_json()), json.loads(render_all()[OUTCOME_REPORT_FILE])
    )

    console = Console(record=True, width=220, color_system=None)
    console.print(render(report))
    text = re.sub(r" +", " ", console.export_text())
    assert (
        "Return unknown: 3 cancellation(s) of a return the ledger does not know, nothing given "
        "back (latest: evt-unknown-1, evt-unknown-2)" in text
    )
    # Its own column in the events table (completed, failed, needs_check, return_unknown,
    # total) and in the days table.
    assert "┃ return type ┃ completed ┃ failed ┃ needs_check ┃ return_unknown ┃ total ┃" in text
    assert "│ CANCELLED │ 1 │ 0 │ 2 │ 2 │ 5 │" in text
    assert "┃ failures ┃ return unknown ┃" in text
    assert "│ 2026-11-21 │ 4 │ 1 │ 2 │ 3 │ 1 │ 2 │" in text


def test_a_report_without_return_unknown_says_none() -> None:
    report = _report(*_world())
    assert report.totals.return_unknown == 0
    assert report.return_unknown_event_ids == []
    console = Console(record=True, width=200, color_system=None)
    console.print(render(report))
    assert "Return unknown: 0" in console.export_text()
