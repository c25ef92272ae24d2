"""run: commit only what was published, drain on stop, stop on fatal errors."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from structlog.testing import capture_logs

from service.actions import Decision, Plan, RevokeCouponCodes
from service.capillary.results import ItemResult
from service.clock import FakeClock
from service.events import ReturnEvent
from service.outcome import OutcomeEvent
from service.pipeline.execute import Executor
from service.pipeline.process import Processor
from service.pipeline.records import Record
from service.pipeline.run import Runner
from tests.factories import event_bytes
from tests.fakes import FakeCapillary, FakeSink, FakeSource


def _empty_plan(event: ReturnEvent, now: datetime) -> Plan:
    return Plan(
        event_id=event.event_id,
        decision=Decision.NOTHING_TO_DO,
        summary="nothing",
        decided_at=now,
        policy_version="p",
    )


def _coupon_plan(event: ReturnEvent, now: datetime) -> Plan:
    action = RevokeCouponCodes(
        action_id="c", reason_code="full_return", reason="r", series_id=1, codes=["A"]
    )
    return _empty_plan(event, now).model_copy(update={"actions": [action]})


def _records(partition: int, offsets: range) -> list[Record]:
    return [
        Record("returns", partition, o, None, event_bytes(event_id=f"e-{partition}-{o}"))
        for o in offsets
    ]


def _runner(source: FakeSource, sink: FakeSink, planner=_empty_plan) -> Runner:  # type: ignore[no-untyped-def]
    processor = Processor(
        planner=planner, executor=Executor(FakeCapillary()), sink=sink, clock=FakeClock()
    )
    return Runner(source=source, sink=sink, processor=processor, grace_seconds=5)


async def _run_until_drained(runner: Runner, source: FakeSource) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await source.drained.wait()
    stop.set()
    await task


async def test_run_commits_each_batch_after_its_outcomes_are_published() -> None:
    batch1 = _records(0, range(0, 3)) + _records(1, range(10, 12))
    batch2 = [*_records(0, range(3, 4)), Record("returns", 1, 12, None, b"junk")]
    source = FakeSource(batches=[batch1, batch2])
    sink = FakeSink()
    runner = _runner(source, sink)

    await _run_until_drained(runner, source)

    assert source.commits == [batch1, batch2]
    assert len(sink.outcomes) == 6
    assert len(sink.dead_letters) == 1
    assert (runner.stats.records, runner.stats.outcomes, runner.stats.dead_letters) == (7, 6, 1)
    assert source.started
    assert source.stopped


async def test_run_stop_mid_batch_commits_only_the_processed_prefix() -> None:
    batch = _records(0, range(0, 5))
    source = FakeSource(batches=[batch])
    stop = asyncio.Event()
    sink = FakeSink()
    # The stop arrives while the second record is being published.
    sink.on_outcome = lambda outcome: stop.set() if len(sink.outcomes) == 2 else None
    runner = _runner(source, sink)

    await runner.run(stop)

    assert [r.offset for r in source.commits[0]] == [0, 1]
    assert len(sink.outcomes) == 2
    assert source.stopped


async def test_run_outcome_per_record_in_partition_order() -> None:
    source = FakeSource(batches=[_records(2, range(5, 9))])
    sink = FakeSink()
    await _run_until_drained(_runner(source, sink), source)
    offsets = [o.event.record.offset for o in sink.outcomes if o.event.record]
    assert offsets == [5, 6, 7, 8]
    assert all(isinstance(o, OutcomeEvent) for o in sink.outcomes)


async def test_run_drain_past_the_grace_period_stops_cleanly_and_commits_nothing() -> None:
    call_started = asyncio.Event()

    class HangingCapillary(FakeCapillary):
        async def revoke_coupons_by_codes(
            self, codes: Any, series_id: int | None, attribution: Any = None, **_: Any
        ) -> list[ItemResult]:
            call_started.set()
            await asyncio.Event().wait()  # Capillary never answers
            raise AssertionError("unreachable")

    source = FakeSource(batches=[_records(0, range(0, 2))])
    sink = FakeSink()
    processor = Processor(
        planner=_coupon_plan, executor=Executor(HangingCapillary()), sink=sink, clock=FakeClock()
    )
    runner = Runner(source=source, sink=sink, processor=processor, grace_seconds=0.05)
    stop = asyncio.Event()

    with capture_logs() as logs:
        task = asyncio.create_task(runner.run(stop))
        await call_started.wait()
        stop.set()
        stats = await task

    assert source.commits == []
    assert stats.committed == {}
    assert sink.outcomes == []
    assert source.stopped
    assert "drain_timed_out" in [entry["event"] for entry in logs]
