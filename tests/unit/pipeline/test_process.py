"""process: the steps in order, one outcome or dead letter per record, one log line each."""

from __future__ import annotations

from datetime import datetime

import pytest
from structlog.testing import capture_logs

from service.actions import (
    Decision,
    IssueLoyaltyEarn,
    LoyaltyTarget,
    Plan,
    RevokeCouponCodes,
)
from service.capillary.results import ItemResult, ResultClass
from service.clock import FakeClock
from service.errors import BrokerError
from service.events import LoyaltyPromotionType, ReturnEvent
from service.outcome import ActionStatus, OutcomeEvent, OutcomeStatus
from service.pipeline.execute import Executor
from service.pipeline.process import Processor
from service.pipeline.records import DeadLetter, Record
from tests.factories import event_bytes
from tests.fakes import FakeCapillary, FakeSink

WHY = {"reason_code": "full_return", "reason": "the whole order came back"}


def _coupon_planner(event: ReturnEvent, now: datetime) -> Plan:
    return Plan(
        event_id=event.event_id,
        decision=Decision.TAKE_BACK,
        summary="take back 1 coupon action",
        decided_at=now,
        policy_version="p1",
        actions=[RevokeCouponCodes(action_id="c1", series_id=415446, codes=["A", "B"], **WHY)],
    )


def _processor(api: FakeCapillary, sink: FakeSink, planner=_coupon_planner) -> Processor:  # type: ignore[no-untyped-def]
    return Processor(planner=planner, executor=Executor(api), sink=sink, clock=FakeClock())


def _record(value: bytes, offset: int = 7) -> Record:
    return Record(topic="returns", partition=1, offset=offset, key=b"555567088", value=value)


async def test_handle_valid_record_publishes_one_outcome_with_source_identity() -> None:
    sink = FakeSink()
    with capture_logs() as logs:
        result = await _processor(FakeCapillary(), sink).handle(_record(event_bytes()))

    assert isinstance(result, OutcomeEvent)
    assert sink.outcomes == [result]
    assert sink.outcome_keys == [b"555567088"]  # keyed like the input: per-customer order
    assert sink.dead_letters == []
    assert result.event.event_id == "evt-test-0001"
    assert result.event.record is not None
    assert (result.event.record.partition, result.event.record.offset) == (1, 7)
    assert result.status is OutcomeStatus.COMPLETED
    assert result.actions[0].status is ActionStatus.REVOKED
    assert result.policy_version == "p1"
    [line] = [entry for entry in logs if entry["event"] == "event_processed"]
    assert line["status"] == "completed"
    assert line["statuses"] == {"revoked": 1}


async def test_handle_invalid_record_publishes_dead_letter_and_no_outcome() -> None:
    sink = FakeSink()
    api = FakeCapillary()
    with capture_logs() as logs:
        result = await _processor(api, sink).handle(_record(b'{"event_id": 1}'))

    assert isinstance(result, DeadLetter)
    assert sink.dead_letters == [result]
    assert sink.outcomes == []
    assert api.calls == []
    assert [entry["event"] for entry in logs] == ["event_dead_lettered"]


async def test_handle_failed_action_makes_outcome_failed() -> None:
    failing = ItemResult(item="coupon:A", result_class=ResultClass.TRANSIENT, code=503)
    api = FakeCapillary(answers={"revoke_coupons_by_codes": [failing]})
    sink = FakeSink()
    result = await _processor(api, sink).handle(_record(event_bytes()))
    assert isinstance(result, OutcomeEvent)
    assert result.status is OutcomeStatus.FAILED
    assert result.actions[0].status is ActionStatus.FAILED


async def test_handle_reissue_plan_carries_replay_warning() -> None:
    target = LoyaltyTarget(
        program_id=2714,
        promotion_id=202090,
        promotion_type=LoyaltyPromotionType.DIRECT_EARN,
        identifier_name="id",
        identifier_value="555567088",
        source="INSTORE",
    )

    def reissue(event: ReturnEvent, now: datetime) -> Plan:
        return Plan(
            event_id=event.event_id,
            decision=Decision.GIVE_BACK,
            summary="give back",
            decided_at=now,
            policy_version="p1",
            actions=[IssueLoyaltyEarn(action_id="g1", target=target, **WHY)],
        )

    result = await _processor(FakeCapillary(), FakeSink(), reissue).handle(_record(event_bytes()))
    assert isinstance(result, OutcomeEvent)
    assert result.replay_warning is not None
    assert "issues them again" in result.replay_warning


async def test_handle_publish_failure_propagates_so_the_offset_is_not_committed() -> None:
    sink = FakeSink(fail_with=BrokerError("no ack"))
    with pytest.raises(BrokerError):
        await _processor(FakeCapillary(), sink).handle(_record(event_bytes()))


async def test_handle_clears_log_context_after_each_record() -> None:
    import structlog

    await _processor(FakeCapillary(), FakeSink()).handle(_record(event_bytes()))
    assert structlog.contextvars.get_contextvars() == {}


async def test_handle_rules_crash_dead_letters_the_event_instead_of_blocking() -> None:
    def broken(event: ReturnEvent, now: datetime) -> Plan:
        raise ZeroDivisionError("division by zero")

    sink = FakeSink()
    result = await _processor(FakeCapillary(), sink, broken).handle(_record(event_bytes()))
    assert isinstance(result, DeadLetter)
    assert result.error_type == "rules_error"
    assert "ZeroDivisionError" in result.reason
    assert sink.dead_letters == [result]
    assert sink.outcomes == []
