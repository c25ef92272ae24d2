"""process: validate, deduplicate, plan, execute; one finished result per record, no publishing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from service.actions import (
    Action,
    DeactivateCartPromotion,
    Decision,
    EnrolLoyalty,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Plan,
    RevokeCartEarn,
    RevokeCouponCodes,
)
from service.capillary.models import CustomerT
from service.capillary.requests import LoyaltyBulk
from service.capillary.results import ItemResult, ResultClass
from service.clock import FakeClock
from service.errors import CapillaryUnavailableError
from service.events import LoyaltyPromotionType, ReturnEvent, ReturnType
from service.ids import CountingIds
from service.ledger import CustomerMark, LedgerEntry, LedgerFacts, LedgerItem
from service.logging import event_context
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.pipeline.execute import Executor
from service.pipeline.plan import Planner
from service.pipeline.process import NotDue, Processor
from service.pipeline.records import (
    AlreadyFinished,
    DeadLetter,
    Finished,
    Record,
    RetryLater,
    origin_in,
)
from service.pipeline.replays import Replay
from service.pipeline.retries import RetryPolicy, retry_headers
from service.pipeline.state import EventState, Intent, OutcomeRef, StateStore
from tests.factories import event_bytes
from tests.fakes import FakeCapillary, FakeCommitter, FakeStateReader

WHY = {"reason_code": "full_return", "reason": "the whole order came back"}
TARGET = LoyaltyTarget(
    program_id=2714,
    promotion_id=202779,
    promotion_type=LoyaltyPromotionType.ISSUE_AND_EARN,
    identifier_name="id",
    identifier_value="555567088",
    source="INSTORE",
)
EVENT_ID = "evt-test-0001"


def _planner(*actions: Action, decision: Decision = Decision.TAKE_BACK) -> Planner:
    def plan(event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /) -> Plan:
        return Plan(
            event_id=event.event_id,
            decision=decision,
            summary="test plan",
            decided_at=now,
            policy_version="p1",
            actions=list(actions),
        )

    return plan


COUPONS = _planner(RevokeCouponCodes(action_id="c1", series_id=415446, codes=["A", "B"], **WHY))
GIVE_BACK = _planner(
    RevokeCartEarn(
        action_id="cart", customer_id=555567088, promotion_id="p" * 24, earn_ids=["e1"], **WHY
    ),
    EnrolLoyalty(action_id="enrol", target=TARGET, **WHY),
    IssueLoyaltyEarn(action_id="issue", target=TARGET, **WHY),
    decision=Decision.GIVE_BACK,
)
DEACTIVATE = _planner(
    DeactivateCartPromotion(
        action_id="d1", customer_id=555567088, promotion_id="p" * 24, earn_id="e9", **WHY
    )
)


class _Setup:
    def __init__(self, planner: Planner, api: FakeCapillary | None = None) -> None:
        self.api = api or FakeCapillary()
        self.reader = FakeStateReader()
        self.state = StateStore(self.reader, window=timedelta(days=35))
        self.committer = FakeCommitter(state_topic=self.reader)
        self.clock = FakeClock()
        self.planner = planner
        self.processor = self.make_processor()

    def make_processor(self) -> Processor:
        return Processor(
            planner=self.planner,
            executor=Executor(self.api),
            clock=self.clock,
            ids=CountingIds(),
            state=self.state,
            starts=self.committer,
            retry_policy=RetryPolicy(
                max_attempts=3, initial_delay_seconds=30, max_delay_seconds=600
            ),
        )

    async def ready(self) -> _Setup:
        await self.state.restore(1, self.clock.now())
        return self

    def remember(self, **fields: object) -> None:
        values: dict[str, object] = {
            "event_id": EVENT_ID,
            "at": self.clock.now() - timedelta(hours=2),
            "input_partition": 1,
            "input_offset": 3,
        }
        values.update(fields)
        self.reader.put(1, EventState.model_validate(values))


def _record(
    value: bytes, offset: int = 7, headers: list[tuple[str, bytes]] | None = None
) -> Record:
    return Record(
        topic="returns",
        partition=1,
        offset=offset,
        key=b"555567088",
        value=value,
        headers=tuple(headers or ()),
    )


def _outcome(result: Finished | NotDue) -> OutcomeEvent:
    assert isinstance(result, Finished)
    assert isinstance(result.result, OutcomeEvent)
    return result.result


async def test_handle_valid_record_finishes_with_an_outcome_and_a_done_state() -> None:
    s = await _Setup(COUPONS).ready()
    with capture_logs() as logs:
        result = await s.processor.handle(_record(event_bytes()))

    outcome = _outcome(result)
    assert isinstance(result, Finished)
    assert outcome.event.event_id == EVENT_ID
    assert outcome.event.record is not None
    assert (outcome.event.record.partition, outcome.event.record.offset) == (1, 7)
    assert outcome.status is OutcomeStatus.COMPLETED
    assert outcome.actions[0].status is ActionStatus.REVOKED
    assert result.state is not None
    assert (result.state.phase, result.state.input_offset) == ("done", 7)
    # The start was committed before the call.
    [(partition, started)] = s.committer.starts
    assert (partition, started.phase, started.event_id) == (1, "started", EVENT_ID)
    [line] = [entry for entry in logs if entry["event"] == "event_processed"]
    assert line["status"] == "completed"


async def test_handle_invalid_record_is_a_dead_letter_without_calls_or_state() -> None:
    s = await _Setup(COUPONS).ready()
    with capture_logs() as logs:
        result = await s.processor.handle(_record(b'{"event_id": 1}'))
    assert isinstance(result, Finished)
    assert isinstance(result.result, DeadLetter)
    assert result.state is None
    assert s.api.calls == []
    assert s.committer.starts == []
    assert [entry["event"] for entry in logs] == ["event_dead_lettered"]


async def test_handle_refused_request_makes_outcome_failed() -> None:
    failing = ItemResult(item="coupon:A", result_class=ResultClass.REQUEST_ERROR, code=756)
    s = await _Setup(COUPONS, FakeCapillary(answers={"revoke_coupons_by_codes": [failing]})).ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))
    assert outcome.status is OutcomeStatus.FAILED


async def test_handle_give_back_commits_each_intent_right_before_its_call() -> None:
    committer = FakeCommitter()
    seen_at_call: dict[str, int] = {}

    class Recording(FakeCapillary):
        async def loyalty(
            self, bulk: LoyaltyBulk[CustomerT], customers: Sequence[CustomerT]
        ) -> list[ItemResult]:
            step = {"ENROL": "enrol", "EARN": "issue"}.get(bulk.action.bulk_action)
            if step is not None:
                seen_at_call[step] = len(committer.starts)
            return await super().loyalty(bulk, customers)

    s = _Setup(GIVE_BACK, Recording())
    s.committer = committer
    s.processor = s.make_processor()
    await s.ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))

    assert [[i.action_id for i in state.intents] for _, state in committer.starts] == [
        [],
        ["enrol"],
        ["enrol", "issue"],
    ]
    assert seen_at_call == {"enrol": 2, "issue": 3}  # each intent committed before its call
    [_, _, (_, last)] = committer.starts
    assert [(i.customer, i.promotion) for i in last.intents] == [
        ("id:555567088", "2714/202779"),
        ("id:555567088", "2714/202779"),
    ]
    assert outcome.replay_warning is not None


async def test_same_event_id_again_is_a_duplicate_naming_the_first_outcome() -> None:
    s = _Setup(COUPONS)
    s.remember(
        phase="done", outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.COMPLETED)
    )
    await s.ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))
    assert outcome.status is OutcomeStatus.DUPLICATE
    assert s.api.calls == []
    assert s.committer.starts == []
    assert outcome.duplicate_of is not None
    assert outcome.duplicate_of.model_dump(exclude_none=True) == {
        "status": "completed",
        "outcome_partition": 2,
        "outcome_offset": 40,
        "input_partition": 1,
        "input_offset": 3,
    }


async def test_same_event_id_beyond_the_dedupe_window_is_processed_again() -> None:
    s = _Setup(COUPONS)
    s.remember(
        phase="done",
        at=s.clock.now() - timedelta(days=40),
        outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.COMPLETED),
    )
    await s.ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))
    assert outcome.status is OutcomeStatus.COMPLETED
    assert [name for name, _ in s.api.calls] == ["revoke_coupons_by_codes"]


async def test_redelivery_after_a_crash_with_give_back_intents_makes_no_second_give_back() -> None:
    gone = ItemResult(item="cart_earn:e1", result_class=ResultClass.GONE, code=731)
    s = _Setup(GIVE_BACK, FakeCapillary(answers={"revoke_cart_earns": [gone]}))
    s.remember(
        phase="started",
        intents=[
            Intent(action_id="enrol", kind="enrol_loyalty", customer="id:1", promotion="2714/1"),
            Intent(action_id="issue", kind="issue_loyalty_earn", customer="id:1", promotion="2/1"),
        ],
    )
    await s.ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))

    assert [name for name, _ in s.api.calls] == ["revoke_cart_earns"]
    assert outcome.status is OutcomeStatus.NEEDS_CHECK
    assert {a.action_id: a.status for a in outcome.actions} == {
        "cart": ActionStatus.ALREADY_REVOKED,  # tried before: 731 means the crash did it
        "enrol": ActionStatus.UNCONFIRMED,
        "issue": ActionStatus.UNCONFIRMED,
    }
    issue = outcome.actions[2]
    assert issue.next_step is not None
    assert "555567088" in issue.next_step
    assert "2714/202779" in issue.next_step


async def test_redelivery_after_a_crash_of_revokes_reads_invalid_as_already_revoked() -> None:
    gone = ItemResult(item="coupon:A", result_class=ResultClass.GONE, code=682)
    s = _Setup(COUPONS, FakeCapillary(answers={"revoke_coupons_by_codes": [gone]}))
    s.remember(phase="started")
    await s.ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))
    assert outcome.status is OutcomeStatus.COMPLETED
    assert outcome.actions[0].status is ActionStatus.ALREADY_REVOKED


async def test_open_cart_sends_the_event_down_the_retry_path() -> None:
    open_cart = ItemResult(item="deactivation:x", result_class=ResultClass.TRANSIENT, code=737)
    s = await _Setup(
        DEACTIVATE, FakeCapillary(answers={"deactivate_promotion": [open_cart]})
    ).ready()
    result = await s.processor.handle(_record(event_bytes()))

    assert isinstance(result, Finished)
    assert isinstance(result.result, RetryLater)
    assert result.result.attempt == 2
    now_ms = int(s.clock.now().timestamp() * 1000)
    assert result.result.not_before_ms == now_ms + 30_000
    assert result.state is not None
    assert (result.state.phase, result.state.attempt) == ("retrying", 2)
    # Answered (737): nothing left that may have been made without an answer.
    assert result.state.intents == []


async def test_the_retry_of_an_open_cart_asks_the_deactivation_again() -> None:
    open_cart = ItemResult(item="deactivation:x", result_class=ResultClass.TRANSIENT, code=737)
    s = await _Setup(
        DEACTIVATE, FakeCapillary(answers={"deactivate_promotion": [open_cart]})
    ).ready()
    first = await s.processor.handle(_record(event_bytes(), offset=3))
    assert isinstance(first, Finished)
    assert first.state is not None
    s.reader.put(1, first.state)
    await s.ready()
    s.api.answers.clear()  # the cart closed
    source = _record(event_bytes(), offset=3)
    headers = tuple(retry_headers(source, attempt=2, not_before_ms=0, reason="737"))
    origin = origin_in(headers, "returns")
    retry = Record("returns-retry", 1, 60, b"k", source.value, headers, None, origin)

    outcome = _outcome(await s.processor.handle(retry))

    assert [name for name, _ in s.api.calls] == ["deactivate_promotion", "deactivate_promotion"]
    assert outcome.status is OutcomeStatus.COMPLETED


async def test_retry_record_before_its_time_is_not_due() -> None:
    s = await _Setup(DEACTIVATE).ready()
    now_ms = int(s.clock.now().timestamp() * 1000)
    headers = retry_headers(
        _record(event_bytes()), attempt=2, not_before_ms=now_ms + 5_000, reason="737"
    )
    result = await s.processor.handle(_record(event_bytes(), headers=headers))
    assert result == NotDue(_record(event_bytes(), headers=headers), now_ms + 5_000)
    assert s.api.calls == []


async def test_open_cart_past_the_last_attempt_fails_with_what_to_do() -> None:
    open_cart = ItemResult(item="deactivation:x", result_class=ResultClass.TRANSIENT, code=737)
    s = await _Setup(
        DEACTIVATE, FakeCapillary(answers={"deactivate_promotion": [open_cart]})
    ).ready()
    now_ms = int(s.clock.now().timestamp() * 1000)
    headers = retry_headers(_record(event_bytes()), attempt=3, not_before_ms=now_ms, reason="737")
    outcome = _outcome(await s.processor.handle(_record(event_bytes(), headers=headers)))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.attempt == 3
    assert "cart stayed open through 3 attempts" in (outcome.actions[0].next_step or "")


async def test_capillary_unavailable_raises_and_publishes_nothing() -> None:
    down = ItemResult(item="coupon:A", result_class=ResultClass.UNAVAILABLE, message="HTTP 503")
    s = await _Setup(COUPONS, FakeCapillary(answers={"revoke_coupons_by_codes": [down]})).ready()
    with pytest.raises(CapillaryUnavailableError):
        await s.processor.handle(_record(event_bytes()))


async def test_handle_clears_log_context_after_each_record() -> None:
    s = await _Setup(COUPONS).ready()
    await s.processor.handle(_record(event_bytes()))
    assert event_context() == {}


async def test_handle_rules_crash_dead_letters_the_event_instead_of_blocking() -> None:
    def broken(event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /) -> Plan:
        raise ZeroDivisionError("division by zero")

    s = await _Setup(broken).ready()
    result = await s.processor.handle(_record(event_bytes()))
    assert isinstance(result, Finished)
    assert isinstance(result.result, DeadLetter)
    assert result.result.error_type == "rules_error"
    assert "ZeroDivisionError" in result.result.reason


async def test_outage_before_any_give_back_clears_the_intents_so_the_next_attempt_gives_back() -> (
    None
):
    down = ItemResult(item="enrolment:x", result_class=ResultClass.UNAVAILABLE, message="HTTP 503")
    s = await _Setup(GIVE_BACK, FakeCapillary(answers={"enrol": [down]})).ready()
    with pytest.raises(CapillaryUnavailableError):
        await s.processor.handle(_record(event_bytes()))
    # Capillary answered no give-back: the intent is withdrawn before the pause.
    assert [len(state.intents) for _, state in s.committer.starts] == [0, 1, 0]

    s.api.answers.clear()  # Capillary is back
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))
    assert outcome.status is OutcomeStatus.COMPLETED
    assert {a.action_id: a.status for a in outcome.actions}["issue"] is ActionStatus.RESTORED


async def test_outage_after_an_unanswered_give_back_keeps_the_intents() -> None:
    maybe = ItemResult(
        item="earn:x",
        result_class=ResultClass.UNAVAILABLE,
        message="no answer after the request may have been processed",
        after_uncertain_attempt=True,
    )
    s = await _Setup(GIVE_BACK, FakeCapillary(answers={"issue_earn": [maybe]})).ready()
    with pytest.raises(CapillaryUnavailableError):
        await s.processor.handle(_record(event_bytes()))
    assert [len(state.intents) for _, state in s.committer.starts] == [0, 1, 2]

    s.api.answers.clear()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))
    assert outcome.status is OutcomeStatus.NEEDS_CHECK


async def test_redelivery_after_a_crash_between_two_give_backs_makes_only_the_missing_one() -> None:
    s = _Setup(GIVE_BACK)
    s.remember(
        phase="started",
        intents=[Intent(action_id="enrol", kind="enrol_loyalty", customer="id:1", promotion="2/1")],
    )
    await s.ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))

    assert [name for name, _ in s.api.calls] == ["revoke_cart_earns", "issue_earn"]
    assert {a.action_id: a.status for a in outcome.actions} == {
        "cart": ActionStatus.REVOKED,
        "enrol": ActionStatus.UNCONFIRMED,
        "issue": ActionStatus.RESTORED,
    }
    assert outcome.status is OutcomeStatus.NEEDS_CHECK
    # The earlier intent stays with the new one, for a crash of this attempt too.
    assert [i.action_id for i in s.committer.starts[-1][1].intents] == ["enrol", "issue"]


async def test_outage_after_one_give_back_keeps_it_restored_and_makes_the_rest_next() -> None:
    down = ItemResult(item="earn:x", result_class=ResultClass.UNAVAILABLE, message="HTTP 503")
    s = await _Setup(GIVE_BACK, FakeCapillary(answers={"issue_earn": [down]})).ready()
    with pytest.raises(CapillaryUnavailableError):
        await s.processor.handle(_record(event_bytes()))
    # The enrolment was made; the earn was refused unprocessed (503): only its intent goes.
    assert [[i.action_id for i in st.intents] for _, st in s.committer.starts] == [
        [],
        ["enrol"],
        ["enrol", "issue"],
        ["enrol"],
    ]

    # What the interrupted attempt confirmed goes with its state: the enrolment was made.
    ledger = s.committer.starts[-1][1].ledger
    assert ledger is not None
    assert [(i.action_id, i.status) for i in ledger.items] == [
        ("cart", ActionStatus.REVOKED),
        ("enrol", ActionStatus.RESTORED),
    ]

    s.api.answers.clear()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))
    assert {a.action_id: a.status for a in outcome.actions} == {
        "cart": ActionStatus.REVOKED,
        "enrol": ActionStatus.RESTORED,
        "issue": ActionStatus.RESTORED,
    }
    assert outcome.status is OutcomeStatus.COMPLETED
    # Nothing asked twice: the cart earn and the enrolment came from the ledger.
    assert [name for name, _ in s.api.calls] == [
        "revoke_cart_earns",
        "enrol",
        "issue_earn",
        "issue_earn",
    ]


async def test_the_same_record_read_again_after_its_outcome_publishes_nothing() -> None:
    # Outcomes commit as events finish, offsets only over the finished prefix: after a
    # restart this very record (partition 1, offset 3) comes again, and is recognised.
    s = _Setup(COUPONS)
    s.remember(
        phase="done", outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.COMPLETED)
    )
    await s.ready()
    result = await s.processor.handle(_record(event_bytes(), offset=3))
    assert isinstance(result, Finished)
    assert isinstance(result.result, AlreadyFinished)
    assert result.state is None
    assert s.api.calls == []
    assert s.committer.starts == []


async def test_a_retry_record_read_again_after_it_was_sent_on_publishes_nothing() -> None:
    # Attempt 2 ended by scheduling attempt 3 (state retrying, attempt 3): reading the
    # attempt-2 record again is a read-again; the attempt-3 record itself is processed.
    s = _Setup(COUPONS)
    s.remember(phase="retrying", attempt=3)
    await s.ready()
    source = _record(event_bytes(), offset=3)

    def retry_record(attempt: int) -> Record:
        headers = tuple(retry_headers(source, attempt=attempt, not_before_ms=0, reason="737"))
        # The origin as the consumer reads it from the headers.
        origin = origin_in(headers, "returns")
        return Record("returns-retry", 1, 50 + attempt, b"k", source.value, headers, None, origin)

    again = await s.processor.handle(retry_record(2))
    assert isinstance(again, Finished)
    assert isinstance(again.result, AlreadyFinished)
    due = await s.processor.handle(retry_record(3))
    assert _outcome(due).status is OutcomeStatus.COMPLETED
    assert [name for name, _ in s.api.calls] == ["revoke_coupons_by_codes"]


async def test_a_duplicate_taken_before_the_first_outcome_is_committed_is_a_duplicate() -> None:
    # Two deliveries of one event id in flight one after the other (same customer): the
    # second must not call again although nothing has been committed yet.
    s = _Setup(COUPONS)
    await s.ready()
    first = _outcome(await s.processor.handle(_record(event_bytes(), offset=7)))
    second = _outcome(await s.processor.handle(_record(event_bytes(), offset=8)))
    assert first.status is OutcomeStatus.COMPLETED
    assert second.status is OutcomeStatus.DUPLICATE
    assert "being committed" in second.summary
    assert [name for name, _ in s.api.calls] == ["revoke_coupons_by_codes"]


# --- replays (return-handler replay) ------------------------------------------------------------


def _replay(**overrides: Any) -> list[tuple[str, bytes]]:
    values: dict[str, Any] = {
        "replay_id": "rp-1",
        "reason": "promotion 202779 was misconfigured",
        "source": "returns-dead-letter:0:12",
        "sequence": 4,
    }
    values.update(overrides)
    return Replay(**values).headers()


async def test_a_replay_of_a_done_event_is_executed_not_a_duplicate_and_says_why() -> None:
    gone = ItemResult(item="coupon:A", result_class=ResultClass.GONE, code=682)
    s = _Setup(COUPONS, FakeCapillary(answers={"revoke_coupons_by_codes": [gone]}))
    s.remember(
        phase="done", outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.FAILED)
    )
    await s.ready()
    outcome = _outcome(await s.processor.handle(_record(event_bytes(), headers=_replay())))

    assert outcome.status is OutcomeStatus.COMPLETED
    assert [name for name, _ in s.api.calls] == ["revoke_coupons_by_codes"]
    # Handled before: "invalid or already revoked" is the earlier attempt's work.
    assert outcome.actions[0].status is ActionStatus.ALREADY_REVOKED
    assert outcome.replay is not None
    assert outcome.replay.model_dump(exclude_none=True) == {
        "replay_id": "rp-1",
        "reason": "promotion 202779 was misconfigured",
        "source": "returns-dead-letter:0:12",
        "of": {"topic": "returns-dead-letter", "partition": 0, "offset": 12},
        "sequence": 4,
        "reissue_allowed": False,
    }


async def test_a_replay_does_not_make_again_a_give_back_an_earlier_outcome_shows_made() -> None:
    s = _Setup(GIVE_BACK)
    s.remember(
        phase="done", outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.FAILED)
    )
    await s.ready()
    headers = _replay(issued=frozenset({"issue"}))
    outcome = _outcome(await s.processor.handle(_record(event_bytes(), headers=headers)))

    assert [name for name, _ in s.api.calls] == ["revoke_cart_earns", "enrol"]
    assert {a.action_id: a.status for a in outcome.actions} == {
        "cart": ActionStatus.REVOKED,
        "enrol": ActionStatus.RESTORED,
        "issue": ActionStatus.ALREADY_RESTORED,
    }
    assert outcome.status is OutcomeStatus.COMPLETED
    assert "--allow-reissue" in (outcome.actions[2].next_step or "")
    # Nothing was re-issued this time: no warning about replaying it.
    assert outcome.replay_warning is None


async def test_a_replay_allowed_to_reissue_makes_the_give_back_again() -> None:
    s = await _Setup(GIVE_BACK).ready()
    headers = _replay(issued=frozenset({"issue"}), allow_reissue=True)
    outcome = _outcome(await s.processor.handle(_record(event_bytes(), headers=headers)))
    assert [name for name, _ in s.api.calls] == ["revoke_cart_earns", "enrol", "issue_earn"]
    assert outcome.actions[2].status is ActionStatus.RESTORED
    assert outcome.replay is not None
    assert outcome.replay.reissue_allowed


async def test_a_replay_record_read_again_after_its_outcome_publishes_nothing() -> None:
    s = await _Setup(COUPONS).ready()
    record = _record(event_bytes(), offset=30, headers=_replay())
    first = await s.processor.handle(record)
    assert isinstance(first, Finished)
    again = await s.processor.handle(record)
    assert isinstance(again, Finished)
    assert isinstance(again.result, AlreadyFinished)
    assert len(s.api.calls) == 1


# --- the ledger ---------------------------------------------------------------------------------


def _ledger_item(action_id: str, kind: str, item: str, status: ActionStatus) -> LedgerItem:
    return LedgerItem(action_id=action_id, kind=kind, item=item, status=status)


def _entry(*items: LedgerItem, event_id: str = EVENT_ID, cancels: str | None = None) -> LedgerEntry:
    return LedgerEntry(
        event_id=event_id,
        return_type=ReturnType.CANCELLED if cancels else ReturnType.FULL,
        order_id="ORD-1001",
        customer=CustomerMark(id=555567088),
        cancels=cancels,
        items=list(items),
    )


class _Facts:
    """A planner that plans nothing and keeps the ledger facts it was given."""

    def __init__(self) -> None:
        self.seen: list[LedgerFacts | None] = []

    def __call__(
        self, event: ReturnEvent, now: datetime, facts: LedgerFacts | None = None, /
    ) -> Plan:
        self.seen.append(facts)
        return _planner()(event, now, facts)


def _cancellation(return_event_id: str = "ret-9") -> bytes:
    return event_bytes(
        return_type="CANCELLED",
        amounts={"before": "0", "after": "120.00"},
        earned={},
        cancelled_return={"return_event_id": return_event_id},
    )


async def test_a_cancellation_of_a_return_on_the_retry_path_waits_and_gives_nothing() -> None:
    planner = _Facts()
    s = _Setup(planner)
    s.remember(event_id="ret-9", phase="retrying", attempt=2)
    await s.ready()

    result = await s.processor.handle(_record(_cancellation()))

    assert isinstance(result, Finished)
    assert isinstance(result.result, RetryLater)
    assert "waiting: its return ret-9 has no outcome yet (retrying)" in result.result.reason
    assert planner.seen == []  # nothing planned, nothing called
    assert s.api.calls == []


async def test_a_cancellation_gets_its_returns_ledger_and_who_cancelled_it_first() -> None:
    planner = _Facts()
    s = _Setup(planner)
    returned = _entry(
        _ledger_item("r1", "revoke_loyalty_earn", "loyalty_earn:957", ActionStatus.REVOKED),
        event_id="ret-9",
    )
    s.remember(
        event_id="ret-9",
        phase="done",
        outcome=OutcomeRef(partition=0, offset=1, status=OutcomeStatus.COMPLETED),
        ledger=returned,
    )
    s.remember(
        event_id="can-first",
        phase="done",
        outcome=OutcomeRef(partition=0, offset=2, status=OutcomeStatus.COMPLETED),
        ledger=_entry(event_id="can-first", cancels="ret-9"),
    )
    await s.ready()

    await s.processor.handle(_record(_cancellation()))

    [facts] = planner.seen
    assert facts is not None
    assert facts.returned is not None
    assert facts.returned.items == tuple(returned.items)
    assert facts.returned.cancelled_by == "can-first"


async def test_a_cancellation_of_a_return_the_ledger_does_not_know_plans_without_it() -> None:
    planner = _Facts()
    s = await _Setup(planner).ready()

    await s.processor.handle(_record(_cancellation()))

    assert planner.seen == [LedgerFacts()]


async def test_a_replayed_return_that_was_cancelled_since_is_planned_as_such() -> None:
    planner = _Facts()
    s = _Setup(planner)
    s.remember(
        phase="done", outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.FAILED)
    )
    s.remember(
        event_id="can-1",
        phase="done",
        outcome=OutcomeRef(partition=2, offset=41, status=OutcomeStatus.COMPLETED),
        ledger=_entry(event_id="can-1", cancels=EVENT_ID),
    )
    await s.ready()

    await s.processor.handle(_record(event_bytes(), headers=_replay()))
    await s.processor.handle(
        _record(event_bytes(), offset=9, headers=_replay(allow_cancelled=True))
    )

    assert [f.cancelled_by if f else None for f in planner.seen] == ["can-1", None]


async def test_a_replay_makes_no_deactivation_the_ledger_shows_made() -> None:
    s = _Setup(DEACTIVATE)
    s.remember(
        phase="done",
        outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.COMPLETED),
        ledger=_entry(
            _ledger_item(
                "d1", "deactivate_cart_promotion", "deactivation:p/1/e9", ActionStatus.REVOKED
            )
        ),
    )
    await s.ready()

    outcome = _outcome(await s.processor.handle(_record(event_bytes(), headers=_replay())))

    assert s.api.calls == []
    assert outcome.actions[0].status is ActionStatus.ALREADY_REVOKED
    assert "earlier outcome" in outcome.actions[0].items[0].message


async def test_a_replay_reads_invalid_as_not_found_when_the_ledger_found_it_missing_before() -> (
    None
):
    gone = ItemResult(item="coupon:A", result_class=ResultClass.GONE, code=682)
    revoked = ItemResult(item="coupon:B", result_class=ResultClass.GONE, code=682)
    s = _Setup(COUPONS, FakeCapillary(answers={"revoke_coupons_by_codes": [gone, revoked]}))
    s.remember(
        phase="done",
        outcome=OutcomeRef(partition=2, offset=40, status=OutcomeStatus.FAILED),
        ledger=_entry(
            _ledger_item("c1", "revoke_coupon_codes", "coupon:A", ActionStatus.NOT_FOUND),
            _ledger_item("c1", "revoke_coupon_codes", "coupon:B", ActionStatus.FAILED),
        ),
    )
    await s.ready()

    outcome = _outcome(await s.processor.handle(_record(event_bytes(), headers=_replay())))

    # A was missing before the first attempt; B's "invalid" now is that attempt's unknown work.
    assert [(i.item, i.status) for i in outcome.actions[0].items] == [
        ("coupon:A", ActionStatus.NOT_FOUND),
        ("coupon:B", ActionStatus.ALREADY_REVOKED),
    ]


async def test_the_last_attempt_of_the_retry_path_reports_what_the_first_one_took() -> None:
    closed = FakeCapillary()
    s = _Setup(COUPONS, closed)
    s.remember(
        phase="retrying",
        attempt=2,
        ledger=_entry(
            _ledger_item("c1", "revoke_coupon_codes", "coupon:A", ActionStatus.REVOKED),
            _ledger_item("c1", "revoke_coupon_codes", "coupon:B", ActionStatus.REVOKED),
        ),
    )
    await s.ready()
    source = _record(event_bytes(), offset=3)
    headers = tuple(retry_headers(source, attempt=2, not_before_ms=0, reason="737"))
    retry = Record(
        "returns-retry", 1, 60, b"k", source.value, headers, None, origin_in(headers, "returns")
    )

    outcome = _outcome(await s.processor.handle(retry))

    assert s.api.calls == []  # settled by attempt 1: not asked again
    assert [(i.status, i.attempt) for i in outcome.actions[0].items] == [
        (ActionStatus.REVOKED, 1),
        (ActionStatus.REVOKED, 1),
    ]


async def test_a_cancellation_waits_for_its_returns_outcome_to_be_committed() -> None:
    planner = _Facts()
    s = await _Setup(planner).ready()
    returned = EventState(
        event_id="ret-9",
        phase="done",
        at=s.clock.now(),
        input_partition=1,
        input_offset=2,
        ledger=_entry(event_id="ret-9"),
    )
    s.state.remember(1, returned)  # finished a moment ago: known, not committed
    waiting = asyncio.Event()
    committed_of = s.state.committed

    async def spied(partition: int, event_id: str, seconds: float) -> bool:
        waiting.set()
        return await committed_of(partition, event_id, seconds)

    s.state.committed = spied  # type: ignore[method-assign]
    cancel = asyncio.create_task(s.processor.handle(_record(_cancellation())))
    await waiting.wait()
    assert planner.seen == []

    committed = returned.model_copy(
        update={"outcome": OutcomeRef(partition=0, offset=5, status=OutcomeStatus.COMPLETED)}
    )
    s.state.remember(1, committed, offset=s.reader.put(1, committed))
    await cancel

    [facts] = planner.seen
    assert facts is not None
    assert facts.returned is not None


async def test_a_cancellation_whose_return_is_never_committed_takes_the_retry_path() -> None:
    planner = _Facts()
    s = await _Setup(planner).ready()
    s.processor = Processor(
        planner=planner,
        executor=Executor(s.api),
        clock=s.clock,
        ids=CountingIds(),
        state=s.state,
        starts=s.committer,
        retry_policy=RetryPolicy(max_attempts=3, initial_delay_seconds=30, max_delay_seconds=600),
        commit_wait_seconds=0.01,
    )
    s.state.remember(
        1,
        EventState(
            event_id="ret-9", phase="done", at=s.clock.now(), input_partition=1, input_offset=2
        ),
    )

    result = await s.processor.handle(_record(_cancellation()))

    assert isinstance(result, Finished)
    assert isinstance(result.result, RetryLater)
    assert "no committed outcome yet" in result.result.reason
    assert planner.seen == []


async def test_a_deactivation_called_before_a_crash_is_not_called_again() -> None:
    s = await _Setup(DEACTIVATE).ready()
    first = await s.processor.handle(_record(event_bytes()))
    # Its intent was committed before the call.
    assert [[i.action_id for i in st.intents] for _, st in s.committer.starts] == [[], ["d1"]]
    assert _outcome(first).actions[0].status is ActionStatus.REVOKED

    # A crash before the outcome was committed: the record is read again.
    crashed = _Setup(DEACTIVATE)
    crashed.reader.partitions[1] = [s.reader.partitions[1][-1]]
    await crashed.ready()
    again = _outcome(await crashed.processor.handle(_record(event_bytes())))

    assert crashed.api.calls == []
    assert again.status is OutcomeStatus.NEEDS_CHECK
    assert again.actions[0].status is ActionStatus.UNCONFIRMED
    assert "deactivate it by hand only if not" in (again.actions[0].next_step or "")


async def test_a_deactivation_left_unconfirmed_stays_uncalled_through_an_outage() -> None:
    # A crash after its call, then an outage on a later call of the re-run, then the re-run
    # of that: the deactivation is never asked again.
    down = ItemResult(item="coupon:A", result_class=ResultClass.UNAVAILABLE, message="HTTP 503")
    planner = _planner(
        DeactivateCartPromotion(
            action_id="d1", customer_id=555567088, promotion_id="p" * 24, earn_id="e9", **WHY
        ),
        RevokeCouponCodes(action_id="c1", series_id=415446, codes=["A"], **WHY),
    )
    s = _Setup(planner, FakeCapillary(answers={"revoke_coupons_by_codes": [down]}))
    intent = Intent(
        action_id="d1", kind="deactivate_cart_promotion", customer="id:1", promotion="p"
    )
    s.remember(phase="started", input_offset=7, intents=[intent])
    await s.ready()
    with pytest.raises(CapillaryUnavailableError):
        await s.processor.handle(_record(event_bytes()))

    s.api.answers.clear()
    outcome = _outcome(await s.processor.handle(_record(event_bytes())))

    assert [name for name, _ in s.api.calls] == [
        "revoke_coupons_by_codes",
        "revoke_coupons_by_codes",
    ]
    assert outcome.actions[0].status is ActionStatus.UNCONFIRMED
    assert outcome.status is OutcomeStatus.NEEDS_CHECK
