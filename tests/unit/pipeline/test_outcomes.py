"""build_outcome: the outcome's status and replay warning from its results, and its identity."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from service import __version__
from service.actions import ReportKind
from service.outcome import ActionResult, ActionStatus, OutcomeEvent, OutcomeStatus
from service.pipeline.outcomes import REISSUE_WARNING, build_outcome
from service.pipeline.records import Origin, Record
from tests.factories import event, plan_of

AT = datetime(2026, 11, 25, 12, tzinfo=UTC)
OUTCOME_ID = UUID("00000000-0000-4000-8000-000000000001")


def _result(
    status: ActionStatus,
    kind: str = "revoke_loyalty_earn",
    report_kind: str | None = None,
) -> ActionResult:
    return ActionResult(
        action_id=f"{kind}:{status}",
        kind=kind,
        reason_code="full_return",
        reason="the whole order came back",
        status=status,
        report_kind=report_kind,
    )


def _build(*results: ActionResult, record: Record | None = None) -> OutcomeEvent:
    return build_outcome(
        event(),
        plan_of(),
        list(results),
        outcome_id=OUTCOME_ID,
        record=record,
        processed_at=AT,
        duration_ms=3,
    )


@pytest.mark.parametrize(
    ("results", "status"),
    [
        ((), OutcomeStatus.COMPLETED),
        ((_result(ActionStatus.REVOKED), _result(ActionStatus.SKIPPED)), OutcomeStatus.COMPLETED),
        (
            (
                _result(ActionStatus.UNCONFIRMED),
                _result(ActionStatus.SKIPPED, "report", ReportKind.RETURN_UNKNOWN),
                _result(ActionStatus.FAILED),
            ),
            OutcomeStatus.FAILED,
        ),
        (
            (
                _result(ActionStatus.UNCONFIRMED),
                _result(ActionStatus.SKIPPED, "report", ReportKind.RETURN_UNKNOWN),
            ),
            OutcomeStatus.RETURN_UNKNOWN,
        ),
        ((_result(ActionStatus.UNCONFIRMED),), OutcomeStatus.NEEDS_CHECK),
        (
            (_result(ActionStatus.SKIPPED, "report", ReportKind.TAKEN_BACK_UNCONFIRMED),),
            OutcomeStatus.NEEDS_CHECK,
        ),
        (
            (_result(ActionStatus.SKIPPED, "report", ReportKind.STILL_DESERVED),),
            OutcomeStatus.COMPLETED,
        ),
    ],
)
def test_failed_before_return_unknown_before_needs_check_before_completed(
    results: tuple[ActionResult, ...], status: OutcomeStatus
) -> None:
    assert _build(*results).status is status


@pytest.mark.parametrize(
    ("result", "warned"),
    [
        (_result(ActionStatus.RESTORED, "issue_loyalty_earn"), True),
        (_result(ActionStatus.UNCONFIRMED, "issue_loyalty_earn"), True),
        (_result(ActionStatus.ALREADY_RESTORED, "issue_loyalty_earn"), False),
        (_result(ActionStatus.RESTORED, "enrol_loyalty"), False),
    ],
)
def test_only_an_earn_this_outcome_issued_warns_against_a_replay(
    result: ActionResult, warned: bool
) -> None:
    assert _build(result).replay_warning == (REISSUE_WARNING if warned else None)


def test_the_outcome_is_what_its_own_json_reads_back_as() -> None:
    results = [_result(ActionStatus.REVOKED)]
    found = build_outcome(
        event(),
        plan_of(),
        results,
        outcome_id=OUTCOME_ID,
        record=Record("returns", 2, 41, b"k", b"{}"),
        processed_at=AT,
        duration_ms=3,
    )
    results.append(_result(ActionStatus.FAILED))  # the caller's list is not the outcome's
    assert len(found.actions) == 1
    assert found == OutcomeEvent.model_validate_json(found.model_dump_json())
    assert found.duration_ms == 3.0
    assert isinstance(found.duration_ms, float)
    assert found.service.version == __version__
    assert found.event.record is not None
    assert (found.event.record.topic, found.event.record.offset) == ("returns", 41)


def test_a_copy_names_the_producers_record() -> None:
    copy = Record("routed", 0, 5, b"k", b"{}", origin=Origin("returns", 2, 41))
    source = _build(record=copy).event.record
    assert source is not None
    assert (source.topic, source.partition, source.offset) == ("returns", 2, 41)
    assert _build().event.record is None
