"""Readable lines for operators: outcomes and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from service.actions import Decision
from service.events import ReturnType
from service.outcome import (
    ActionResult,
    ActionStatus,
    EventIdentity,
    ItemResult,
    OutcomeEvent,
    OutcomeStatus,
    ReplayInfo,
    ServiceInfo,
)
from service.tools import format_dead_letter, format_outcome

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def _outcome(*actions: ActionResult, status: OutcomeStatus = OutcomeStatus.COMPLETED) -> bytes:
    outcome = OutcomeEvent(
        outcome_id=UUID("6f1c2b7e-1d2a-4c3b-9e4f-5a6b7c8d9e0f"),
        event=EventIdentity(
            event_id="evt-1",
            return_type=ReturnType.CANCELLED,
            occurred_at=NOW,
            order_id="O",
            transaction_id="T",
        ),
        status=status,
        decision=Decision.GIVE_BACK,
        summary="give back",
        policy_version="p",
        actions=list(actions),
        processed_at=NOW,
        duration_ms=12.0,
        service=ServiceInfo(version="0.1.0"),
        replay_warning="replaying issues again",
    )
    return outcome.model_dump_json().encode()


def test_format_outcome_shows_status_codes_new_earn_ids_and_warning() -> None:
    issued = ActionResult(
        action_id="issue:974",
        kind="issue_loyalty_earn",
        reason_code="give_back_earn",
        reason="the return revoked it",
        status=ActionStatus.RESTORED,
        items=[ItemResult(item="x", status=ActionStatus.RESTORED, detail={"earned_id": "1201"})],
    )
    failed = ActionResult(
        action_id="coupons",
        kind="revoke_coupon_codes",
        reason_code="full_return",
        reason="full return",
        status=ActionStatus.FAILED,
        items=[ItemResult(item="c", status=ActionStatus.FAILED, code=503)],
    )
    text = format_outcome(_outcome(issued, failed, status=OutcomeStatus.FAILED))
    lines = text.splitlines()
    assert lines[0].startswith("FAIL evt-1 [CANCELLED] give_back")
    assert "restored [earned_id=1201]" in lines[1]
    assert "FAILED code 503" in lines[2]
    assert lines[3] == "    ! replaying issues again"


def test_format_dead_letter_names_origin_and_reason() -> None:
    line = format_dead_letter(
        [
            ("rh-reason", b"not JSON"),
            ("rh-origin-topic", b"returns"),
            ("rh-origin-partition", b"2"),
            ("rh-origin-offset", b"41"),
        ],
        b"{broken",
    )
    assert line == "DEAD returns/2/41: not JSON | '{broken'"


def test_format_outcome_has_a_word_for_every_status_and_shows_each_fact_once() -> None:
    actions = [
        ActionResult(
            action_id=f"a-{status.value}",
            kind="revoke_loyalty_earn",
            reason_code="full_return",
            reason="full return",
            status=status,
            items=[
                ItemResult(item="loyalty_earn:1", status=status, detail={"entity_id": "9"}),
                ItemResult(item="loyalty_earn:2", status=status, detail={"entity_id": "9"}),
            ],
        )
        for status in ActionStatus
    ]
    text = format_outcome(_outcome(*actions))
    assert "a-kept: kept" in text
    assert text.count("entity_id=9") == len(ActionStatus)


def test_format_outcome_heads_each_outcome_status() -> None:
    heads = {
        status: format_outcome(_outcome(status=status)).split(" ")[0] for status in OutcomeStatus
    }
    assert heads == {
        OutcomeStatus.COMPLETED: "OK",
        OutcomeStatus.FAILED: "FAIL",
        OutcomeStatus.DUPLICATE: "DUP",
        OutcomeStatus.NEEDS_CHECK: "CHECK",
        OutcomeStatus.RETURN_UNKNOWN: "ASK",
    }


def test_format_outcome_says_which_replay_and_why() -> None:
    outcome = OutcomeEvent.model_validate_json(_outcome()).model_copy(
        update={
            "replay": ReplayInfo(
                replay_id="ab" * 16, reason="carts closed", source="returns:1:7", sequence=3
            )
        }
    )
    lines = format_outcome(outcome.model_dump_json().encode()).splitlines()
    assert lines[1] == f"    replay {'ab' * 16} #3 of returns:1:7: carts closed"
