"""What earlier outcomes tell a replay: done or not, and which give-backs were made."""

from __future__ import annotations

import pytest

from service.operate.history import History, given_back
from service.outcome import OutcomeEvent
from tests.unit.operate.replay_builders import action, outcome, outcome_record


def _history(*outcomes_in_order: OutcomeEvent) -> History:
    history = History()
    for offset, found in enumerate(outcomes_in_order):
        history.add(outcome_record(found, 0, offset))
    return history


@pytest.mark.parametrize(
    ("status", "item_statuses", "counted"),
    [
        ("restored", (), True),
        ("already_restored", (), True),
        # A crash between the call and the outcome: it may have been made.
        ("unconfirmed", (), True),
        ("failed", ("restored",), True),
        ("failed", ("failed",), False),
        ("skipped", (), False),
        ("not_found", (), False),
    ],
)
def test_a_give_back_counts_as_made_when_the_outcome_shows_it_made_or_maybe_made(
    status: str, item_statuses: tuple[str, ...], counted: bool
) -> None:
    found = outcome(
        status="completed",
        actions=[action("issue:1", "issue_loyalty_earn", status, item_statuses=item_statuses)],
    )
    assert given_back(found.actions) == (frozenset({"issue:1"}) if counted else frozenset())


def test_revokes_are_never_counted_as_give_backs() -> None:
    found = outcome(actions=[action("revoke:1", "revoke_loyalty_earn", "revoked")])
    assert given_back(found.actions) == frozenset()


def test_issued_is_every_give_back_any_outcome_of_the_event_shows() -> None:
    history = _history(
        outcome(
            "evt-1", "failed", minutes=1, actions=[action("enrol", "enrol_loyalty", "restored")]
        ),
        outcome(
            "evt-1",
            "completed",
            minutes=2,
            actions=[
                action("enrol", "enrol_loyalty", "already_restored"),
                action("issue", "issue_loyalty_earn", "restored"),
            ],
        ),
        outcome("evt-2", "completed", actions=[action("x", "issue_loyalty_earn", "restored")]),
    )
    assert history.issued("evt-1") == frozenset({"enrol", "issue"})
    assert history.issued("evt-3") == frozenset()
    assert len(history) == 3


@pytest.mark.parametrize(
    ("statuses", "done"),
    [
        (["completed"], True),
        (["failed"], False),
        (["failed", "completed"], True),
        # A later failure (a replay that failed) is what counts: the event is not done.
        (["completed", "failed"], False),
        (["needs_check"], False),
        (["failed", "duplicate:completed"], True),
        (["failed", "duplicate:failed"], False),
    ],
)
def test_an_event_is_done_when_its_newest_outcome_says_it_reached_a_final_result(
    statuses: list[str], done: bool
) -> None:
    outcomes = []
    for minutes, text in enumerate(statuses):
        status, _, first = text.partition(":")
        outcomes.append(outcome("evt-1", status, minutes=minutes, first_status=first or None))
    assert _history(*outcomes).done("evt-1") is done


def test_the_newest_outcome_is_by_processing_time_not_by_reading_order() -> None:
    history = _history(outcome("evt-1", "completed", minutes=5), outcome("evt-1", "failed"))
    latest = history.latest("evt-1")
    assert latest is not None
    assert latest.position == "outcomes:0:0"
    assert history.done("evt-1")
